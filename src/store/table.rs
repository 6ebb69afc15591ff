//! The partition's hash table: ordered linear probing over 8-byte slots,
//! with entries packed into a slab arena ([`super::arena`]); built so the
//! shard's batch loop can prefetch ahead of execution.
//!
//! Bytes per key, the seed's data set (1–6 byte keys, 128-byte values):
//!
//! | part | bytes | what |
//! |---|---:|---|
//! | slot | 8 / load = 8.7–9.8 | 31 bits of the key's hash, a has-TTL bit and a 32-bit arena offset, load 0.82–0.92 |
//! | entry header | 3 (1 compact) | flags, key length (5 bits), value length (16 bits); 9 for longer keys or values, or a wide expiry; compact: form, key length and the padding to the chunk in 1 byte |
//! | metadata | 2 (1 compact) | has-TTL bit + the eviction policy's 15 bits ([`Meta`]); compact: the top 8 policy bits (the TTL is implied) |
//! | expiry | 0, 4, 5 or 8 | only in entries that have (had) a TTL: compact 4 (the low 32 bits of Unix ms, read against the table's clock), narrow 5 (40 bits of ms since 2020-01-01, [`NARROW_EPOCH_MS`]: up to late 2054), else 8 (absolute Unix ms, with the 9-byte header) |
//! | key, value | 134 | |
//! | rounding | 0–3 | size classes every 4 bytes up to 256 B, no allocator header |
//!
//! so a seed entry is a 140-byte chunk with or without a TTL (5 + 134
//! rounded up, or the compact form's 6 + 134): 149–150 B/key in all.
//!
//! * **Slots.** A slot is `hash31 << 33 | ttl << 32 | offset` (all ones:
//!   empty): the top 31 bits of the key's placement hash, a has-TTL bit
//!   (so active expiry and volatile eviction pass over keys without one
//!   reading the slot alone) and the entry's arena offset, eight slots to a
//!   cache line. The home slot of a hash is `(hash31 · capacity) >> 31` —
//!   monotone in the hash — and the table is kept **ordered**: occupied
//!   slots hold non-decreasing `hash31` (an insert
//!   shifts the rest of its run right by one, like Robin Hood hashing with a
//!   monotone home). So a lookup stops at the first larger hash (a miss costs
//!   what a hit does, even at load 0.92), a walk over a hash range is a walk
//!   over a slot range ([`Table::for_each_in`]), and a resize re-places
//!   slots in one sequential pass without reading an entry. There is no
//!   wrap-around: the array has a tail past the last home slot, and its last
//!   slot is always empty (so every probe ends inside the array).
//! * **Capacity** is not a power of two: the table grows by 1/8 when the
//!   load would pass 0.92 (to 0.82), and shrinks to a load of 0.8 when it
//!   falls below 0.5 (active expiry calls [`Table::shrink`] between batches).
//! * **Prefetch.** A slot's address follows from the hash alone, so a
//!   lookup can be prefetched without touching memory
//!   ([`Table::prefetch_slot`], two lines: the home slot's and the next),
//!   and, a few operations later, its entry ([`Table::prefetch_entry`]).
//! * Probing compares the stored hash bits first; keys are compared only on
//!   a match (a false match costs one key compare, never a wrong answer).
//! * Deletion shifts the following displaced slots back (no tombstones).
//! * **Entries**: `[header][meta u16][expiry, if present][key][value]`,
//!   or, compact, `[form|pad|key length u8][policy u8][expiry u32][key][value]`.
//!   The expiry is exact to the millisecond in every form ([`Field`]):
//!   compact (4 bytes) for a key with a TTL whose entry fits 256 bytes and
//!   whose expiry is within 12.4 days of the clock; narrow (5 bytes, ms
//!   since [`NARROW_EPOCH_MS`]) when it falls between 2020 and 2054; wide
//!   (8 bytes of Unix ms, flagged in the long header) otherwise. A compact
//!   entry has no value length: its chunk's size class gives it, less the
//!   2-bit padding (the classes up to 256 B are 4 bytes apart), so parsing
//!   one reads the page's class ([`super::arena::Arena::chunk_bytes`]); its
//!   32-bit expiry is read as the time within 2^31 ms (24.8 days) of the
//!   table's clock ([`Table::set_clock`]) that has those low bits — exact
//!   for every compact key not yet 12 days past its expiry (active expiry
//!   passes over a table in minutes; a full pass at its slowest, 1024 keys
//!   with a TTL per 10 ms, takes under 3 h even for a billion keys).
//!   A value rewritten into the same size class (the seed's same-length
//!   overwrites, and most small changes) is rewritten in place; otherwise
//!   the entry moves to a chunk of its new class. Setting a TTL on an entry
//!   whose field cannot hold it (none, compact for a time too far, or
//!   narrow for a time outside its range) moves it once — unless a short
//!   entry's chunk has room for the compact form (a seed entry's has), which
//!   it then takes in place; PERSIST turns a compact entry into a short one
//!   in place (its TTL is implied by its form), and keeps other fields (a
//!   field is never narrowed again).
//! * **Compaction.** When the arena names a page to evacuate (a class with
//!   two pages' worth of free chunks), the table moves that page's live
//!   entries, finding each one's slot from its key's hash (the `hasher`,
//!   [`crate::routing::key_hash`]) and offset. Slot *positions* never change
//!   in a compaction, only the offsets they hold, so slot indices a caller
//!   holds stay valid across [`Table::remove`]'s compaction.
//!
//! * **SIEVE's hand** ([`Table::sieve_victim`]) walks the arena's pages in
//!   their order ([`super::arena`]), reading the visited bit in each entry;
//!   an entry it keeps moves into a page behind it (its slot, found as a
//!   compaction finds it, takes the new offset), a victim's slot is found
//!   the same way and returned to the store, which removes it.
//!
//! The table owns its arena and so its entries. It holds raw pointers, so it
//! is neither `Send` nor `Sync`: a table belongs to one shard, by
//! construction.

use super::arena::{self, Arena, Hand, FREE_MARK};
use std::ptr;

const MIN_CAPACITY: usize = 1024;
/// Most slots a shrink may put a key past its home ([`Table::shrink`]).
/// Keys spread evenly at load 0.8 sit within a few dozen (64 slots: eight
/// cache lines); a region twice as dense as the average pushes them by a
/// good part of the region.
const SHRINK_MAX_DISPLACEMENT: usize = 512;
/// Most slots an insert may push a key past its home before the table
/// grows ([`Table::place`]).
const INSERT_MAX_RUN: usize = 1024;

/// Meta bit: the entry has an expiry (its `expire_at` is set).
pub const META_TTL: u16 = 1 << 15;
/// Meta bits the eviction policy owns.
pub const META_POLICY: u16 = META_TTL - 1;

/// 16 bits of per-key metadata kept in the entry.
pub type Meta = u16;

/// The bits of a placement hash the table keeps (and by which eviction's
/// `protect` names a key).
#[inline]
pub fn slot_hash(hash: u64) -> u64 {
    hash >> HASH_SHIFT
}

/// A slot keeps the top 31 bits of the hash above its TTL bit and offset.
const HASH_SHIFT: u32 = 33;
/// Slot bit: the entry's key has a TTL (mirrors [`META_TTL`], so active
/// expiry and volatile eviction skip keys without one by the slot alone).
const SLOT_TTL: u64 = 1 << 32;

/// The arena's address range is exhausted (16 GiB of entries in one table,
/// or what the system let it reserve): the write fails like a full memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaFull;

/// Header flag: the long form (u32 key and value lengths).
const F_LONG: u8 = 0x40;
/// Header flag: the entry has an expiry field (narrow, or wide with
/// [`F_WIDE`]).
const F_EXPIRE: u8 = 0x20;
/// Header flag, long form only: the expiry field is wide (8 bytes). A short
/// header has no room for it, so an entry with a wide field is long.
const F_WIDE: u8 = 0x10;
/// Header bit: the compact form, `F_COMPACT | pad << 5 | key_len` (see
/// [`Field::Compact`]). Short headers are below 0x40, long ones 0x40–0x70,
/// and the arena's free mark is 0x7F: the four never meet.
const F_COMPACT: u8 = 0x80;
/// Longest key of the short header form + 1.
const SHORT_KEY: usize = 32;
/// Longest value of the short header form + 1.
const SHORT_VALUE: usize = 1 << 16;
/// Largest compact entry: the size classes up to it are 4 bytes apart, so
/// a compact entry's padding in its chunk is 0–3 bytes (2 bits).
const COMPACT_MAX: usize = 256;
/// Header, metadata and expiry of a compact entry.
const COMPACT_FIXED: usize = 1 + 1 + COMPACT;
/// How far from the clock a compact expiry may be written: 2^30 ms (12.4
/// days). It is read back exactly while the clock is within 2^31 ms (24.8
/// days) of it, so an expired compact key must be reclaimed within 12.4
/// days of its expiry: active expiry passes over a table in hours at most.
const COMPACT_AHEAD: u64 = 1 << 30;

/// The origin of a narrow expiry: 2020-01-01T00:00:00Z in Unix ms. A
/// narrow field holds `expire_at - NARROW_EPOCH_MS` in 40 bits, exact to
/// the millisecond, so expiries from 2020 to late 2054 take 5 bytes.
pub const NARROW_EPOCH_MS: u64 = 1_577_836_800_000;
/// Bytes of a compact expiry field.
const COMPACT: usize = 4;
/// Bytes of a narrow expiry field.
const NARROW: usize = 5;
/// Bytes of a wide expiry field (absolute Unix ms).
const WIDE: usize = 8;
// The header parse computes a wide field's length as a narrow one's + 3.
const _: () = assert!(NARROW + 3 == WIDE);

/// The expiry field an entry has. The discriminant is the field's length
/// (so [`Field::len`] is a move); ordered by what they hold, in practice
/// (with the clock between 2020 and 2054): a field holds every expiry a
/// smaller one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Field {
    /// No expiry field.
    None = 0,
    /// The compact form, for a key with a TTL whose entry fits 256 bytes
    /// and whose expiry is within 12.4 days of the clock: a 1-byte header
    /// (form, key length, the padding to the chunk: the value's length is
    /// the chunk's less the rest), the top 8 policy bits (the TTL bit is
    /// implied: a compact entry always has a TTL; PERSIST turns it into a
    /// short entry in place) and the low 32 bits of the expiry in Unix ms,
    /// read as the time within 2^31 ms of the table's clock that has them.
    /// A seed entry with a TTL is then the 140-byte chunk one without takes.
    Compact = COMPACT as u8,
    /// 40 bits of ms from [`NARROW_EPOCH_MS`].
    Narrow = NARROW as u8,
    /// 64 bits of Unix ms.
    Wide = WIDE as u8,
}

impl Field {
    /// True when this field can hold the expiry `at` with the clock at `now`.
    #[inline]
    pub fn holds(self, at: u64, now: u64) -> bool {
        match self {
            Field::None => false,
            Field::Compact => at.wrapping_sub(now).wrapping_add(COMPACT_AHEAD) < 2 * COMPACT_AHEAD,
            Field::Narrow => at.wrapping_sub(NARROW_EPOCH_MS) < 1 << 40,
            Field::Wide => true,
        }
    }

    /// Bytes of the field.
    #[inline(always)]
    fn len(self) -> usize {
        self as usize
    }
}

/// True when an entry of these lengths can take the compact form.
#[inline]
fn compact_fits(key_len: usize, value_len: usize) -> bool {
    key_len < SHORT_KEY && COMPACT_FIXED + key_len + value_len <= COMPACT_MAX
}

/// The smallest field an entry of these lengths takes to hold `expire`
/// (`None`: no expiry) with the clock at `now`.
#[inline]
pub fn field_for(key_len: usize, value_len: usize, expire: Option<u64>, now: u64) -> Field {
    match expire {
        None => Field::None,
        Some(at) if compact_fits(key_len, value_len) && Field::Compact.holds(at, now) => {
            Field::Compact
        }
        Some(at) if Field::Narrow.holds(at, now) => Field::Narrow,
        Some(_) => Field::Wide,
    }
}

#[inline]
fn header_len(key_len: usize, value_len: usize, field: Field) -> usize {
    if key_len < SHORT_KEY && value_len < SHORT_VALUE && field != Field::Wide {
        3
    } else {
        9
    }
}

/// Bytes of an entry's header, metadata and expiry field (where its key
/// starts).
#[inline]
fn fixed_len(key_len: usize, value_len: usize, field: Field) -> usize {
    if field == Field::Compact {
        COMPACT_FIXED
    } else {
        header_len(key_len, value_len, field) + 2 + field.len()
    }
}

/// Bytes of an entry: header, meta, expiry field, key and value.
#[inline]
pub fn entry_size(key_len: usize, value_len: usize, field: Field) -> usize {
    fixed_len(key_len, value_len, field) + key_len + value_len
}

/// The bytes an entry takes in the arena (its size class's chunk).
#[inline]
pub fn entry_charge(key_len: usize, value_len: usize, field: Field) -> usize {
    arena::charge(entry_size(key_len, value_len, field))
}

/// A compact entry's 8 policy bits: the top 8 of the 15.
#[inline(always)]
fn narrow_meta(m: Meta) -> u8 {
    (m >> 7) as u8
}

/// A compact entry's metadata as a [`Meta`]: the has-TTL bit (implied) and
/// its 8 bits on top of the policy bits (the low 7 read as 0).
#[inline(always)]
fn widen_meta(b: u8) -> Meta {
    META_TTL | (b as Meta) << 7
}

/// A parsed entry header.
#[derive(Clone, Copy)]
struct Entry {
    p: *mut u8,
    key_len: usize,
    value_len: usize,
    /// Offset of the meta field.
    meta_at: usize,
    /// Offset of the key (after the expiry field).
    key_at: usize,
    field: Field,
}

impl Entry {
    /// Parses the entry at arena offset `off`.
    ///
    /// # Safety
    /// `off` is a live entry written by [`write_entry`] (or rewritten in
    /// place) in `arena`.
    #[inline(always)]
    unsafe fn at(arena: &Arena, off: u32) -> Entry {
        let p = arena.ptr(off);
        // SAFETY: the caller guarantees a live entry: its header is there.
        unsafe {
            let b0 = *p;
            if b0 & (F_LONG | F_COMPACT) == 0 {
                // Short: the field's length by arithmetic on the flags (no
                // branch of its own on the read path).
                let flen = ((b0 & F_EXPIRE) >> 5) * NARROW as u8;
                return Entry {
                    p,
                    key_len: (b0 & 0x1F) as usize,
                    value_len: ptr::read_unaligned(p.add(1) as *const u16) as usize,
                    meta_at: 3,
                    key_at: 5 + flen as usize,
                    // 0 or 5: a discriminant of the `repr(u8)` Field.
                    field: std::mem::transmute::<u8, Field>(flen),
                };
            }
            Entry::at_other(arena, off, p, b0)
        }
    }

    /// [`Entry::at`] for the compact and long forms.
    ///
    /// # Safety
    /// As [`Entry::at`]; `p` is the entry's address and `b0` its first byte.
    #[inline]
    unsafe fn at_other(arena: &Arena, off: u32, p: *mut u8, b0: u8) -> Entry {
        if b0 & F_COMPACT != 0 {
            let key_len = (b0 & 0x1F) as usize;
            let pad = ((b0 >> 5) & 3) as usize;
            return Entry {
                p,
                key_len,
                // SAFETY: a compact entry's chunk is of a class up to 256 B.
                value_len: unsafe { arena.small_chunk_bytes(off) } - COMPACT_FIXED - key_len - pad,
                meta_at: 1,
                key_at: COMPACT_FIXED,
                field: Field::Compact,
            };
        }
        let e = (b0 & F_EXPIRE) >> 5;
        // 0, 5 or 8: 5 × F_EXPIRE, 3 more with F_WIDE.
        let flen = e * (NARROW as u8 + 3 * ((b0 & F_WIDE) >> 4));
        // SAFETY: a long header's lengths follow its first byte.
        unsafe {
            Entry {
                p,
                key_len: ptr::read_unaligned(p.add(1) as *const u32) as usize,
                value_len: ptr::read_unaligned(p.add(5) as *const u32) as usize,
                meta_at: 9,
                key_at: 11 + flen as usize,
                field: std::mem::transmute::<u8, Field>(flen),
            }
        }
    }
    #[inline(always)]
    fn key_at(&self) -> usize {
        self.key_at
    }
    #[inline(always)]
    fn size(&self) -> usize {
        self.key_at() + self.key_len + self.value_len
    }
    #[inline(always)]
    fn key<'a>(&self) -> &'a [u8] {
        // SAFETY: the key follows the fixed fields of a live entry; callers
        // tie the lifetime to a borrow of the table.
        unsafe { std::slice::from_raw_parts(self.p.add(self.key_at()), self.key_len) }
    }
    #[inline(always)]
    fn value<'a>(&self) -> &'a [u8] {
        // SAFETY: as in `key`; the value follows the key.
        unsafe {
            std::slice::from_raw_parts(self.p.add(self.key_at() + self.key_len), self.value_len)
        }
    }
    #[inline(always)]
    fn meta(&self) -> Meta {
        // SAFETY: every entry has its meta field at `meta_at` (one byte in
        // the compact form, two otherwise).
        unsafe {
            if self.field == Field::Compact {
                widen_meta(*self.p.add(self.meta_at))
            } else {
                ptr::read_unaligned(self.p.add(self.meta_at) as *const u16)
            }
        }
    }
    #[inline(always)]
    fn set_meta(&self, m: Meta) {
        // SAFETY: as in `meta`; the table is borrowed mutably by the caller.
        unsafe {
            if self.field == Field::Compact {
                *self.p.add(self.meta_at) = narrow_meta(m);
            } else {
                ptr::write_unaligned(self.p.add(self.meta_at) as *mut u16, m)
            }
        }
    }
    /// The expiry field's value (`now`: the table's clock, which a compact
    /// field is read against).
    #[inline(always)]
    fn expire_at(&self, now: u64) -> u64 {
        // SAFETY: an entry with an expiry field has it before its key.
        unsafe {
            read_expire(
                self.p.add(self.key_at() - self.field.len()),
                self.field,
                now,
            )
        }
    }
    /// Writes `at` into the entry's expiry field, which must hold it.
    #[inline]
    fn write_expire(&self, at: u64) {
        // SAFETY: the entry has a field of `self.field` before its key.
        unsafe { write_expire(self.p.add(self.key_at() - self.field.len()), self.field, at) }
    }
}

/// Reads an expiry field of kind `field` at `p` (0 for `Field::None`); a
/// compact one is read against the clock `now`.
///
/// # Safety
/// `p` holds such a field.
#[inline(always)]
unsafe fn read_expire(p: *const u8, field: Field, now: u64) -> u64 {
    // SAFETY: the caller guarantees the field's bytes are there.
    unsafe {
        match field {
            Field::None => 0,
            Field::Compact => {
                let low = ptr::read_unaligned(p as *const u32);
                now.wrapping_add(low.wrapping_sub(now as u32) as i32 as i64 as u64)
            }
            Field::Narrow => {
                let lo = ptr::read_unaligned(p as *const u32) as u64;
                let hi = *p.add(4) as u64;
                NARROW_EPOCH_MS + (hi << 32 | lo)
            }
            Field::Wide => ptr::read_unaligned(p as *const u64),
        }
    }
}

/// Writes `at` as an expiry field of kind `field` at `p` (which must be
/// able to hold it).
///
/// # Safety
/// `p` has room for the field.
#[inline(always)]
unsafe fn write_expire(p: *mut u8, field: Field, at: u64) {
    // SAFETY: the caller guarantees room for the field.
    unsafe {
        match field {
            Field::None => {}
            Field::Compact => ptr::write_unaligned(p as *mut u32, at as u32),
            Field::Narrow => {
                let d = at.wrapping_sub(NARROW_EPOCH_MS);
                ptr::write_unaligned(p as *mut u32, d as u32);
                *p.add(4) = (d >> 32) as u8;
            }
            Field::Wide => ptr::write_unaligned(p as *mut u64, at),
        }
    }
}

/// Writes an entry at `p` (a chunk of `entry_size + pad` bytes, `pad` ≤ 3
/// for a compact one) with an expiry field of kind `field` holding
/// `expire` (which it must hold; a field without an expiry is written
/// with a placeholder).
///
/// # Safety
/// `p` points to such a chunk, which neither `key` nor `value` overlaps.
unsafe fn write_entry(
    p: *mut u8,
    key: &[u8],
    value: &[u8],
    meta: Meta,
    field: Field,
    expire: Option<u64>,
    pad: usize,
) {
    // SAFETY: the caller guarantees the chunk is large enough and disjoint
    // from the sources.
    unsafe {
        let at = write_fixed(p, field, key.len(), value.len(), pad, meta, expire);
        ptr::copy_nonoverlapping(key.as_ptr(), p.add(at), key.len());
        ptr::copy_nonoverlapping(value.as_ptr(), p.add(at + key.len()), value.len());
    }
}

/// Writes an entry's header, metadata and expiry field (`pad`: a compact
/// entry's padding in its chunk); returns where its key goes.
///
/// # Safety
/// `p` has room for them.
unsafe fn write_fixed(
    p: *mut u8,
    field: Field,
    key_len: usize,
    value_len: usize,
    pad: usize,
    meta: Meta,
    expire: Option<u64>,
) -> usize {
    // SAFETY: the caller guarantees room for the fixed fields.
    unsafe {
        if field == Field::Compact {
            debug_assert!(pad <= 3 && compact_fits(key_len, value_len));
            *p = F_COMPACT | (pad as u8) << 5 | key_len as u8;
            *p.add(1) = narrow_meta(meta);
            write_expire(p.add(2), field, expire.unwrap_or(0));
            return COMPACT_FIXED;
        }
        let meta_at = write_header(p, field, key_len, value_len);
        ptr::write_unaligned(p.add(meta_at) as *mut u16, meta);
        write_expire(p.add(meta_at + 2), field, expire.unwrap_or(NARROW_EPOCH_MS));
        meta_at + 2 + field.len()
    }
}

/// Writes a short or long header; returns the meta field's offset.
///
/// # Safety
/// `p` has room for the header.
unsafe fn write_header(p: *mut u8, field: Field, key_len: usize, value_len: usize) -> usize {
    let flags = match field {
        Field::None | Field::Compact => 0,
        Field::Narrow => F_EXPIRE,
        Field::Wide => F_EXPIRE | F_WIDE,
    };
    // SAFETY: the caller guarantees room for the header.
    unsafe {
        if header_len(key_len, value_len, field) == 3 {
            *p = flags | key_len as u8;
            ptr::write_unaligned(p.add(1) as *mut u16, value_len as u16);
            3
        } else {
            *p = flags | F_LONG;
            ptr::write_unaligned(p.add(1) as *mut u32, key_len as u32);
            ptr::write_unaligned(p.add(5) as *mut u32, value_len as u32);
            9
        }
    }
}

#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// How many slots ahead [`Table::for_each_in`] starts loading entries.
const FOR_EACH_AHEAD: usize = 16;

/// An empty slot: larger than every full one (the arena never hands out
/// offset `u32::MAX`), so a lookup skips smaller hashes with one compare.
const EMPTY: u64 = u64::MAX;

#[inline(always)]
fn offset(slot: u64) -> u32 {
    slot as u32
}

#[inline(always)]
fn stored(slot: u64) -> u64 {
    slot >> HASH_SHIFT
}

/// Slots past the last home slot (a run can spill over the end).
#[inline]
fn tail(cap: usize) -> usize {
    64 + cap / 128
}

#[inline(always)]
fn home_in(cap: usize, h32: u64) -> usize {
    ((h32 * cap as u64) >> 31) as usize
}

/// Most keys at a capacity (load 0.92).
#[inline]
fn max_len(cap: usize) -> usize {
    cap * 23 / 25
}

/// The capacity a growth goes to.
#[inline]
fn grown(cap: usize) -> usize {
    cap + cap / 8
}

/// A slot array of EMPTY slots. Past 2 MiB it is its own mapping, advised to use
/// huge pages (THP `madvise`): lookups land anywhere in it, and 4 KiB pages
/// would cost a TLB miss on most of them.
struct Slots {
    p: *mut u64,
    len: usize,
    mapped: bool,
}

const HUGE: usize = 2 << 20;

impl Slots {
    /// A mapping for `len` slots, not yet filled (its pages are not touched:
    /// [`Table::prepare_growth`] fills it a slice at a time), or `None`
    /// when the system refuses it.
    fn reserve(len: usize) -> Option<Slots> {
        // SAFETY: an anonymous private mapping of the kernel's choosing.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then(|| Slots {
            p: p.cast(),
            len,
            mapped: true,
        })
    }

    /// Advises huge pages for a mapped array (as [`Slots::empty`] does
    /// before filling; a prepared array is advised once filled, so that
    /// filling it takes small page faults, each one short).
    fn advise_huge(&self) {
        if self.mapped {
            // SAFETY: a hint on this array's own mapping.
            unsafe { libc::madvise(self.p.cast(), self.len * 8, libc::MADV_HUGEPAGE) };
        }
    }

    fn empty(len: usize) -> Slots {
        let bytes = len * 8;
        if bytes >= HUGE {
            // SAFETY: an anonymous private mapping of the kernel's choosing.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                // SAFETY: a hint on the mapping just made, then filling it
                // (all bytes 0xFF: every slot EMPTY).
                unsafe {
                    libc::madvise(p, bytes, libc::MADV_HUGEPAGE);
                    ptr::write_bytes(p.cast::<u8>(), 0xFF, bytes);
                }
                return Slots {
                    p: p.cast(),
                    len,
                    mapped: true,
                };
            }
        }
        let b: Box<[u64]> = vec![EMPTY; len].into_boxed_slice();
        Slots {
            p: Box::into_raw(b).cast(),
            len,
            mapped: false,
        }
    }
}

impl std::ops::Deref for Slots {
    type Target = [u64];
    #[inline(always)]
    fn deref(&self) -> &[u64] {
        // SAFETY: `p` holds `len` initialised u64s for the array's life.
        unsafe { std::slice::from_raw_parts(self.p, self.len) }
    }
}

impl std::ops::DerefMut for Slots {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `deref`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.p, self.len) }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if self.mapped {
            // SAFETY: mapped by `zeroed` with this length.
            unsafe { libc::munmap(self.p.cast(), self.len * 8) };
        } else {
            // SAFETY: made by `Box::into_raw` of a boxed slice of `len`.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.p, self.len)) });
        }
    }
}

/// How an entry takes an expiry ([`Table::set_expire`]).
enum ExpirePlan {
    /// Its field holds it: written in place.
    Write,
    /// A short entry becomes compact in its own chunk (with this padding).
    Convert(usize),
    /// It moves to a new chunk with this field, of this size.
    Move(Field, usize),
}

/// The table. Slot indices returned by [`Table::find`] stay valid until the
/// next insert or remove (a remove's compaction moves no slot).
pub struct Table {
    slots: Slots,
    /// Home slots: `0..cap`; the array is `cap + tail(cap)` long.
    cap: usize,
    len: usize,
    arena: Arena,
    /// The placement hash of a key (compaction finds an entry's slot by it).
    hasher: fn(&[u8]) -> u64,
    /// The slot array of the next growth, filled ahead of it
    /// ([`Table::prepare_growth`]), and how many of its slots are filled.
    spare: Option<(Slots, usize)>,
    /// The clock (Unix ms) compact expiries are read against and chosen by
    /// ([`Table::set_clock`]).
    now_ms: u64,
    /// Calls of [`Table::shrink`] to let pass after a refusal.
    shrink_wait: usize,
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

impl Table {
    /// An empty table hashing keys with [`crate::routing::key_hash`] (the
    /// callers' placement hash must be that one).
    pub fn new() -> Table {
        Table::with_hasher(crate::routing::key_hash)
    }

    /// An empty table whose callers place keys by `hasher` (tests).
    pub fn with_hasher(hasher: fn(&[u8]) -> u64) -> Table {
        Table {
            slots: Slots::empty(MIN_CAPACITY + tail(MIN_CAPACITY)),
            cap: MIN_CAPACITY,
            len: 0,
            arena: Arena::new(),
            hasher,
            spare: None,
            now_ms: 0,
            shrink_wait: 0,
        }
    }

    /// Sets the clock (Unix ms) the table reads compact expiries against
    /// and chooses expiry fields by; it must not lag the real one by more
    /// than days (the store sets it with its own, once per batch).
    #[inline]
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// The smallest expiry field a key of these lengths takes to hold
    /// `expire` now ([`field_for`] at the table's clock).
    #[inline]
    pub fn field_for(&self, key_len: usize, value_len: usize, expire: Option<u64>) -> Field {
        field_for(key_len, value_len, expire, self.now_ms)
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn home(&self, h32: u64) -> usize {
        home_in(self.cap, h32)
    }

    #[inline(always)]
    fn entry(&self, slot: usize) -> Entry {
        let s = self.slots[slot];
        assert!(s != EMPTY, "slot {slot} is empty");
        // SAFETY: a full slot's offset names a live entry in the arena.
        unsafe { Entry::at(&self.arena, offset(s)) }
    }

    /// Starts loading the home slot of `hash` into the cache, and the next
    /// line (where its run may continue); no memory is read.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        self.prefetch_slot_of(slot_hash(hash));
    }

    /// [`Table::prefetch_slot`] by stored hash bits (a [`slot_hash`]).
    #[inline]
    fn prefetch_slot_of(&self, h: u64) {
        self.prefetch_index(self.home(h));
    }

    /// Starts loading slot `i` and the next line.
    #[inline]
    pub fn prefetch_index(&self, i: usize) {
        let p = self.slots.as_ptr().wrapping_add(i);
        prefetch(p.cast());
        prefetch(p.wrapping_add(8).cast());
    }

    /// Starts loading the first line of full slot `i`'s entry (its header
    /// and metadata).
    #[inline]
    pub fn prefetch_entry_at(&self, i: usize) {
        let s = self.slots[i];
        if s != EMPTY {
            prefetch(self.arena.ptr(offset(s)));
        }
    }

    /// True when slot `i` holds an entry.
    #[inline]
    pub fn is_full(&self, i: usize) -> bool {
        self.slots[i] != EMPTY
    }

    /// Starts loading the entry of `hash`, if its slot (prefetched earlier)
    /// shows one: the lines a seed-sized entry spans.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        self.prefetch_entry_of(slot_hash(hash));
    }

    /// [`Table::prefetch_entry`] by stored hash bits (a [`slot_hash`]).
    #[inline]
    fn prefetch_entry_of(&self, h: u64) {
        let home = self.home(h);
        for i in home..home + 16 {
            let s = self.slots[i];
            if s == EMPTY || stored(s) > h {
                return;
            }
            if stored(s) == h {
                self.prefetch_entry_in(s);
                return;
            }
        }
    }

    /// Starts loading the entry full slot value `s` names: the lines a
    /// seed-sized entry spans (140 bytes at any 4-byte boundary: up to
    /// four), and for a key with a TTL its page's metadata (a compact
    /// entry's value length needs its page's class).
    #[inline]
    fn prefetch_entry_in(&self, s: u64) {
        let p = self.arena.ptr(offset(s)) as *const u8;
        prefetch(p);
        prefetch(p.wrapping_add(64));
        prefetch(p.wrapping_add(128));
        prefetch(p.wrapping_add(139));
        if s & SLOT_TTL != 0 {
            prefetch(self.arena.page_meta_addr(offset(s)));
        }
    }

    /// The slot holding `key` (whose placement hash is `hash`).
    #[inline]
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        self.find_with_expiry(hash, key).map(|(i, _)| i)
    }

    /// [`Table::find`], with the key's expiry (`u64::MAX` without a TTL:
    /// the slot's bit says which), read from the entry its key was (one
    /// header parse). Always inlined: it is the read path's lookup, and as a
    /// call of its own (which the header parse's few more instructions made
    /// it) the seed workload's server ran ~3 % more CPU per op.
    #[inline(always)]
    pub fn find_with_expiry(&self, hash: u64, key: &[u8]) -> Option<(usize, u64)> {
        let h = slot_hash(hash);
        let first = h << HASH_SHIFT;
        let mut i = self.home(h);
        // Skip the run's smaller hashes: one compare a slot (an EMPTY slot
        // is larger than any full one).
        while self.slots[i] < first {
            i += 1;
        }
        loop {
            let s = self.slots[i];
            if stored(s) != h || s == EMPTY {
                return None;
            }
            // SAFETY: a full slot names a live entry.
            let e = unsafe { Entry::at(&self.arena, offset(s)) };
            if e.key() == key {
                let at = if s & SLOT_TTL != 0 {
                    e.expire_at(self.now_ms)
                } else {
                    u64::MAX
                };
                return Some((i, at));
            }
            i += 1;
        }
    }

    /// The slot holding the entry at arena offset `off`, whose hash bits are `h`.
    fn find_offset(&self, h: u64, off: u32) -> Option<usize> {
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == EMPTY || stored(s) > h {
                return None;
            }
            if s & !SLOT_TTL == (h << HASH_SHIFT | off as u64) {
                return Some(i);
            }
            i += 1;
        }
    }

    /// Number of slots; slot indices are `0..capacity()`.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The metadata of slot `i`, or `None` when it is empty.
    #[inline]
    pub fn meta_at(&self, i: usize) -> Option<Meta> {
        (self.slots[i] != EMPTY).then(|| self.entry(i).meta())
    }

    /// The stored hash bits of a full slot (its [`slot_hash`]).
    #[inline]
    pub fn hash_at(&self, slot: usize) -> u64 {
        stored(self.slots[slot])
    }

    /// The metadata of a full slot.
    #[inline]
    pub fn meta(&self, slot: usize) -> Meta {
        self.entry(slot).meta()
    }

    /// Sets the policy bits of a full slot's metadata (the has-TTL bit
    /// follows [`Table::set_expire`] only).
    #[inline]
    pub fn set_meta(&mut self, slot: usize, meta: Meta) {
        let e = self.entry(slot);
        e.set_meta((e.meta() & META_TTL) | (meta & META_POLICY));
    }

    /// The absolute expiry of a full slot (ms; meaningful when its meta has
    /// [`META_TTL`]).
    #[inline]
    pub fn expire_at(&self, slot: usize) -> u64 {
        self.entry(slot).expire_at(self.now_ms)
    }

    /// Bytes the arena would grow by to give `slot` a field holding `at` now.
    #[cfg(test)]
    pub fn expire_growth(&self, slot: usize, at: u64) -> usize {
        let e = self.entry(slot);
        match self.expire_plan(slot, &e, at) {
            ExpirePlan::Move(_, size) => self.arena.growth(size),
            _ => 0,
        }
    }

    /// How `slot`'s entry `e` takes the expiry `at`.
    fn expire_plan(&self, slot: usize, e: &Entry, at: u64) -> ExpirePlan {
        let now = self.now_ms;
        if e.field != Field::None && e.field.holds(at, now) {
            return ExpirePlan::Write;
        }
        let want = field_for(e.key_len, e.value_len, Some(at), now);
        let field = match e.field.max(want) {
            f if f.holds(at, now) => f,
            _ => Field::Wide,
        };
        let size = entry_size(e.key_len, e.value_len, field);
        if e.field == Field::None && field == Field::Compact {
            // A short entry whose chunk has room for the compact form (the
            // seed's: 139 bytes in a 140-byte chunk) takes it in place.
            let chunk = self.arena.chunk_bytes(offset(self.slots[slot]));
            if size <= chunk && chunk - size <= 3 {
                return ExpirePlan::Convert(chunk - size);
            }
        }
        ExpirePlan::Move(field, size)
    }

    /// Sets (`Some`) or clears (`None`) the expiry of a full slot, keeping
    /// the has-TTL bits in step. An entry whose field cannot hold the
    /// expiry (none, compact for a time too far, narrow for a time outside
    /// its range) moves to a chunk with one that can (which can fail only
    /// when the arena is full) — unless it is a short entry whose chunk has
    /// room for the compact form, which it takes in place. Clearing the
    /// expiry of a compact entry makes it a short one in place (one byte
    /// smaller, in the same chunk); other fields stay.
    pub fn set_expire(&mut self, slot: usize, expire_at: Option<u64>) -> Result<(), ArenaFull> {
        let e = self.entry(slot);
        let Some(at) = expire_at else {
            if e.field == Field::Compact {
                let meta = e.meta() & !META_TTL;
                let (k, v) = (e.key_len, e.value_len);
                // SAFETY: key and value move down by one byte in their own
                // chunk (an overlapping copy), then the short header and
                // meta (5 bytes) go before them.
                unsafe {
                    let to = fixed_len(k, v, Field::None);
                    ptr::copy(e.p.add(COMPACT_FIXED), e.p.add(to), k + v);
                    write_fixed(e.p, Field::None, k, v, 0, meta, None);
                }
            } else {
                e.set_meta(e.meta() & !META_TTL);
            }
            self.slots[slot] &= !SLOT_TTL;
            return Ok(());
        };
        match self.expire_plan(slot, &e, at) {
            ExpirePlan::Write => {
                e.write_expire(at);
                e.set_meta(e.meta() | META_TTL);
            }
            ExpirePlan::Convert(pad) => {
                let (k, v) = (e.key_len, e.value_len);
                // SAFETY: the chunk holds the compact entry (`pad` to
                // spare): key and value move up by one byte (an
                // overlapping copy), then the compact fixed fields.
                unsafe {
                    ptr::copy(e.p.add(e.key_at()), e.p.add(COMPACT_FIXED), k + v);
                    write_fixed(e.p, Field::Compact, k, v, pad, e.meta(), Some(at));
                }
            }
            ExpirePlan::Move(field, size) => {
                let off = self.arena.alloc(size).ok_or(ArenaFull)?;
                // SAFETY: a fresh chunk of `size` bytes (its class's:
                // `charge(size) - size` to spare), disjoint from the old entry.
                unsafe {
                    write_entry(
                        self.arena.ptr(off),
                        e.key(),
                        e.value(),
                        e.meta() | META_TTL,
                        field,
                        Some(at),
                        arena::charge(size) - size,
                    )
                };
                self.relink(slot, off);
            }
        }
        self.slots[slot] |= SLOT_TTL;
        Ok(())
    }

    /// True when full slot `i` holds a key with a TTL (from the slot
    /// alone: no entry is read); false for an empty slot.
    #[inline]
    pub fn has_ttl_at(&self, i: usize) -> bool {
        let s = self.slots[i];
        s != EMPTY && s & SLOT_TTL != 0
    }

    /// Points `slot` at the entry `off` and frees the one it held.
    fn relink(&mut self, slot: usize, off: u32) {
        let old = offset(self.slots[slot]);
        self.slots[slot] = self.slots[slot] & !0xFFFF_FFFF | off as u64;
        self.free_chunk(old);
    }

    /// The key in a full slot.
    #[inline]
    pub fn key(&self, slot: usize) -> &[u8] {
        self.entry(slot).key()
    }

    /// Calls `f` with every key in the table (hash order), until it
    /// returns `false`.
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8]) -> bool) {
        for i in 0..self.slots.len() {
            if self.slots[i] != EMPTY && !f(self.entry(i).key()) {
                return;
            }
        }
    }

    /// The value in a slot returned by [`Table::find`].
    #[inline]
    pub fn value(&self, slot: usize) -> &[u8] {
        self.entry(slot).value()
    }

    /// Key and value bytes of a slot.
    #[cfg(test)]
    #[inline]
    pub fn payload_len(&self, slot: usize) -> usize {
        let (k, v) = self.lens(slot);
        k + v
    }

    /// `(key_len, value_len)` of a full slot.
    #[cfg(test)]
    #[inline]
    pub fn lens(&self, slot: usize) -> (usize, usize) {
        let e = self.entry(slot);
        (e.key_len, e.value_len)
    }

    /// Bytes of the slot array (and of the part of the next one filled
    /// ahead of its growth).
    #[inline]
    pub fn bytes(&self) -> usize {
        self.slots.len() * 8 + self.spare.as_ref().map_or(0, |(_, filled)| filled * 8)
    }

    /// Bytes of the arena's pages in use (the entries, with their free
    /// chunks: what the process holds for them).
    #[inline]
    pub fn arena_bytes(&self) -> usize {
        self.arena.held_bytes()
    }

    /// Bytes the slot array would grow by if one more key were inserted now
    /// (0 unless that insert grows it).
    #[inline]
    pub fn growth_bytes(&self) -> usize {
        if self.len + 1 > max_len(self.cap) {
            // The old array and the spare go: what remains is the new one.
            (self.grown_len() * 8).saturating_sub(self.bytes())
        } else {
            0
        }
    }

    /// Fills up to `budget` bytes more of the slot array the next growth
    /// will take, once the table is within 1/16 of that growth and the
    /// array is a large one (at least 2 MiB). Returns the bytes filled.
    ///
    /// Why: a growth allocates the new array and fills it (every slot
    /// EMPTY) before re-placing the slots, and first touching several MiB
    /// of fresh memory stalled the shard for 1.5–15 ms a growth on the
    /// project's VM (page faults; huge-page ones the slowest), long enough
    /// to put the batches of that moment in the open-loop p99. Filled a
    /// slice per maintenance tick instead, small page faults each (huge
    /// pages are advised once it is full), the growth only re-places the
    /// slots (~1 ms at 700 K keys).
    pub fn prepare_growth(&mut self, budget: usize) -> usize {
        if !self.growth_near() {
            return 0;
        }
        let n = self.grown_len();
        if self.spare.as_ref().is_some_and(|(s, _)| s.len != n) {
            self.spare = None;
        }
        if self.spare.is_none() {
            self.spare = Slots::reserve(n).map(|s| (s, 0));
        }
        let Some((s, filled)) = &mut self.spare else {
            return 0;
        };
        let k = (n - *filled).min(budget / 8);
        if k == 0 {
            return 0;
        }
        s[*filled..*filled + k].fill(EMPTY);
        *filled += k;
        if *filled == n {
            s.advise_huge();
        }
        k * 8
    }

    /// Bytes [`Table::prepare_growth`] has still to fill before the next
    /// growth's array is ready (all of it when none is being prepared).
    pub fn spare_left(&self) -> usize {
        let n = self.grown_len();
        match &self.spare {
            Some((s, filled)) if s.len == n => (n - filled) * 8,
            _ => n * 8,
        }
    }

    /// True when [`Table::prepare_growth`] works now: the table is within
    /// 1/16 of a growth to an array of 2 MiB or more.
    pub(crate) fn growth_near(&self) -> bool {
        self.len + self.len / 16 >= max_len(self.cap) && self.grown_len() * 8 >= HUGE
    }

    /// Slots of the array the next growth makes (its tail included).
    fn grown_len(&self) -> usize {
        let new = grown(self.cap);
        new + tail(new)
    }

    /// Frees the array prepared for the next growth, if any.
    pub fn drop_spare(&mut self) {
        self.spare = None;
    }

    /// Bytes held memory would grow by if a key of these lengths (and an
    /// expiry field of kind `field`) were inserted now: its chunk (if its
    /// class has no free one) and the slot array's growth.
    #[inline]
    pub fn insert_growth(&self, key_len: usize, value_len: usize, field: Field) -> usize {
        self.arena.growth(entry_size(key_len, value_len, field)) + self.growth_bytes()
    }

    /// Bytes the arena would grow by to allocate an entry of `size` bytes
    /// ([`entry_size`]) now.
    #[inline]
    pub fn arena_growth(&self, size: usize) -> usize {
        self.arena.growth(size)
    }

    /// The entry size `slot` would have with a value of `value_len` bytes
    /// (and an expiry field that holds what its own and `want` hold), and
    /// whether that entry would be rewritten in place (same chunk).
    #[inline]
    pub fn resized(&self, slot: usize, value_len: usize, want: Field) -> (usize, bool) {
        let e = self.entry(slot);
        let (_, size, same) = self.value_plan(slot, &e, value_len, want);
        (size, same)
    }

    /// The field, size and in-place-ness of `slot`'s entry `e` with a value
    /// of `value_len` bytes and a field holding what its own and `want`
    /// hold ([`Table::resized`]).
    fn value_plan(
        &self,
        slot: usize,
        e: &Entry,
        value_len: usize,
        want: Field,
    ) -> (Field, usize, bool) {
        let now = self.now_ms;
        let mut field = e.field.max(want);
        if field == Field::Compact && !compact_fits(e.key_len, value_len) {
            // Too long for the compact form: the field that holds the
            // entry's expiry (the caller's `want` is compact only for a
            // value that fits).
            field = match e.field {
                Field::Compact if !Field::Narrow.holds(e.expire_at(now), now) => Field::Wide,
                _ => Field::Narrow,
            };
        }
        let size = entry_size(e.key_len, value_len, field);
        let chunk = self.arena.chunk_bytes(offset(self.slots[slot]));
        // Shrinking within the small classes when the entry's own class has
        // no free chunk (a move would take a page: at the memory limit, a
        // smaller value must still fit), it keeps the chunk it has.
        let keep = |size: usize| {
            size < chunk && chunk <= arena::MAX_CLASS_SIZE && self.arena.growth(size) > 0
        };
        if field == Field::Compact {
            // A compact entry's padding must fit its 2 bits: its own
            // class's chunk, or a narrow field in the one it has.
            if arena::charge(size) == chunk {
                return (field, size, true);
            }
            let narrow = entry_size(e.key_len, value_len, Field::Narrow);
            let t = if e.field == Field::None {
                now
            } else {
                e.expire_at(now)
            };
            if keep(size) && narrow <= chunk && Field::Narrow.holds(t, now) {
                return (Field::Narrow, narrow, true);
            }
            return (field, size, false);
        }
        (field, size, arena::charge(size) == chunk || keep(size))
    }

    /// Makes sure an entry of `size` bytes can be allocated without
    /// failing: a class with no free chunk gets a page now. Large blocks
    /// are not reserved.
    pub fn reserve(&mut self, size: usize) -> Result<(), ArenaFull> {
        self.arena.reserve(size).ok_or(ArenaFull)
    }

    /// Replaces a slot's value, giving the entry an expiry field that holds
    /// what `want` holds (for a TTL set right after) if its own does not: in
    /// place when the entry stays in its chunk, else in a new chunk (which
    /// can fail only when the arena is full: see [`Table::reserve`]). Keeps
    /// the key, meta and expiry.
    #[inline]
    pub fn set_value(&mut self, slot: usize, value: &[u8], want: Field) -> Result<(), ArenaFull> {
        let e = self.entry(slot);
        if e.value_len == value.len() && e.field >= want {
            // SAFETY: the entry has exactly that many value bytes, and
            // `value` cannot alias it (we hold `&mut self`).
            unsafe {
                let at = e.p.add(e.key_at() + e.key_len);
                ptr::copy_nonoverlapping(value.as_ptr(), at, value.len());
            }
            return Ok(());
        }
        let (field, size, same) = self.value_plan(slot, &e, value.len(), want);
        let meta = e.meta();
        // A field that widens keeps the time it held (it fits the wider one).
        let expire = (e.field != Field::None).then(|| e.expire_at(self.now_ms));
        if same {
            // Same chunk: the header may change length (and the expiry
            // field appear or widen), so the key moves first (memmove),
            // then the fixed fields and the value.
            let pad = self.arena.chunk_bytes(offset(self.slots[slot])) - size;
            // SAFETY: the chunk holds `size` bytes; `value` does not alias
            // it; the key is moved with an overlapping copy.
            unsafe {
                let new_key_at = fixed_len(e.key_len, value.len(), field);
                ptr::copy(e.p.add(e.key_at()), e.p.add(new_key_at), e.key_len);
                write_fixed(e.p, field, e.key_len, value.len(), pad, meta, expire);
                let at = e.p.add(new_key_at + e.key_len);
                ptr::copy_nonoverlapping(value.as_ptr(), at, value.len());
            }
            return Ok(());
        }
        let off = self.arena.alloc(size).ok_or(ArenaFull)?;
        let pad = arena::charge(size) - size;
        // SAFETY: a fresh chunk, disjoint from the old entry and `value`.
        unsafe {
            write_entry(
                self.arena.ptr(off),
                e.key(),
                value,
                meta,
                field,
                expire,
                pad,
            )
        };
        self.relink(slot, off);
        Ok(())
    }

    /// Inserts a key that is not in the table, with metadata `meta` and,
    /// when `expire_at` is `Some`, an expiry (the has-TTL bit follows it).
    /// Returns its slot; fails only when the arena is full.
    pub fn insert(
        &mut self,
        hash: u64,
        key: &[u8],
        value: &[u8],
        meta: Meta,
        expire_at: Option<u64>,
    ) -> Result<usize, ArenaFull> {
        if self.len + 1 > max_len(self.cap) {
            self.resize(grown(self.cap));
        }
        let field = self.field_for(key.len(), value.len(), expire_at);
        let size = entry_size(key.len(), value.len(), field);
        let off = self.arena.alloc(size).ok_or(ArenaFull)?;
        let meta = match expire_at {
            Some(_) => meta | META_TTL,
            None => meta & !META_TTL,
        };
        let pad = arena::charge(size) - size;
        // SAFETY: a fresh chunk of its class (`size` + `pad` bytes),
        // disjoint from the inputs.
        unsafe { write_entry(self.arena.ptr(off), key, value, meta, field, expire_at, pad) };
        let ttl = if expire_at.is_some() { SLOT_TTL } else { 0 };
        let slot = slot_hash(hash) << HASH_SHIFT | ttl | off as u64;
        let i = loop {
            match self.place(slot) {
                Some(i) => break i,
                // The run reached the end of the array: grow (rare).
                None => self.resize(grown(self.cap)),
            }
        };
        self.len += 1;
        Ok(i)
    }

    /// Puts a slot at its place in hash order, shifting the rest of its run
    /// right by one. `None` when that would fill the array's last slot, or
    /// push a key more than [`INSERT_MAX_RUN`] slots past its home while the
    /// table is at least half full: the caller grows the array. The load is
    /// kept as a table-wide average, and keys deleted unevenly over the hash
    /// space (active expiry's cursor halfway through a mass expiry) leave
    /// the rest of it denser than that: inserts there would build runs far
    /// longer than any at load 0.92 (at most ~70 slots in 3 M keys, spread
    /// evenly), and a growth spreads them out again. Below half full a
    /// long run is left alone: keys sharing a home (hash bits chosen by an
    /// attacker) are not spread by any growth.
    fn place(&mut self, slot: u64) -> Option<usize> {
        let h = stored(slot);
        let mut i = self.home(h);
        let slots: &mut [u64] = &mut self.slots;
        while slots[i] != EMPTY && stored(slots[i]) <= h {
            i += 1;
        }
        let mut end = i;
        while slots[end] != EMPTY {
            end += 1;
        }
        if end + 1 >= slots.len() {
            return None;
        }
        if end - home_in(self.cap, h) > INSERT_MAX_RUN && self.len * 2 > self.cap {
            return None;
        }
        slots.copy_within(i..end, i + 1);
        slots[i] = slot;
        Some(i)
    }

    /// Shrinks the slot array once the load has fallen below 0.5 (after
    /// mass expiry or deletion: half the keys gone since the last growth),
    /// to a load of 0.8; the minimum capacity aside. One pass over the
    /// slots, like a growth; the caller runs it between batches, never per
    /// operation. True when it shrank.
    ///
    /// The load is a table-wide average, but a home is a fixed share of
    /// the hash space: keys deleted unevenly over it — active expiry's
    /// cursor halfway through a mass expiry has removed the keys of the
    /// hashes behind it and none ahead — leave regions twice as dense as
    /// the average, which an array sized for the average cannot hold
    /// without runs of hundreds of thousands of slots (measured: the seed
    /// workload fell from 15 M to 0.2 M op/s, and removals took 60 ms per
    /// thousand keys). So a read-only pass first checks that the smaller
    /// array would displace no key by more than [`SHRINK_MAX_DISPLACEMENT`]
    /// slots, trying a few capacities up to ¾ of the current one; if none
    /// fits, the table keeps its array and lets the next `capacity / 4096`
    /// calls (at least 64) pass before it tries again — about the time
    /// active expiry takes to pass over the table, which calls this once per
    /// slice of 4096 slots — or until [`Table::allow_shrink`] says a pass is
    /// complete.
    pub fn shrink(&mut self) -> bool {
        if self.cap <= MIN_CAPACITY || self.len * 2 >= self.cap {
            return false;
        }
        if self.shrink_wait > 0 {
            self.shrink_wait -= 1;
            return false;
        }
        let mut new = (self.len * 5 / 4).max(MIN_CAPACITY);
        while new < self.cap * 3 / 4 {
            if self.spreads_evenly(new) {
                self.resize(new);
                return true;
            }
            new += new / 4;
        }
        self.shrink_wait = (self.slots.len() / 4096).max(64);
        false
    }

    /// Lets [`Table::shrink`] try again at its next call (after a refusal).
    pub fn allow_shrink(&mut self) {
        self.shrink_wait = 0;
    }

    /// True when re-placing the slots in an array of `cap` home slots
    /// displaces none by more than [`SHRINK_MAX_DISPLACEMENT`] (and fits
    /// its tail): one read pass, nothing written.
    fn spreads_evenly(&self, cap: usize) -> bool {
        self.placements(cap, |_, home, pos| pos - home <= SHRINK_MAX_DISPLACEMENT)
    }

    /// Where each full slot would go in an array of `cap` home slots, in
    /// order (at its home, or right after the one before: slots are in hash
    /// order and homes are monotone): `f(slot, home, position)`, until it
    /// returns false. False when `f` stopped it or a slot would not fit the
    /// array's tail (its last slot stays empty).
    fn placements(&self, cap: usize, mut f: impl FnMut(u64, usize, usize) -> bool) -> bool {
        let n = cap + tail(cap);
        let mut next = 0;
        for &s in self.slots.iter().filter(|&&s| s != EMPTY) {
            let home = home_in(cap, stored(s));
            let pos = home.max(next);
            if pos + 1 >= n || !f(s, home, pos) {
                return false;
            }
            next = pos + 1;
        }
        true
    }

    /// Grows the slot array, once, so that `keys` keys fit at a load of
    /// 0.82 (no growth on the way). For loading keys in hash order (a
    /// snapshot is written by key position): inserted into a table still
    /// growing, they would all have homes in its low part — runs of
    /// hundreds of thousands of slots, quadratic (1 M keys took 129 s).
    pub fn reserve_keys(&mut self, keys: usize) {
        let cap = keys.saturating_mul(50) / 41;
        if max_len(self.cap) < keys && cap > self.cap {
            self.resize(cap);
        }
    }

    /// Re-places every slot in an array of `cap` home slots: one sequential
    /// pass (slots are in hash order, homes are monotone).
    fn resize(&mut self, mut cap: usize) {
        'retry: loop {
            let n = cap + tail(cap);
            // The array prepared ahead, if it is this one (a mismatched one
            // is dropped: it belongs to a growth that did not come).
            let mut new = match self.spare.take() {
                Some((mut s, filled)) if s.len == n => {
                    if filled < n {
                        s[filled..].fill(EMPTY);
                        s.advise_huge();
                    }
                    s
                }
                _ => Slots::empty(n),
            };
            let placed = self.placements(cap, |s, _, pos| {
                new[pos] = s;
                true
            });
            if !placed {
                cap = grown(cap);
                continue 'retry;
            }
            self.slots = new;
            self.cap = cap;
            return;
        }
    }

    /// Removes the entry in `slot`, closing the gap by shifting the
    /// following displaced slots back (no tombstones). Its chunk is freed,
    /// which may compact the arena (moving entries, never slots).
    pub fn remove(&mut self, slot: usize) {
        assert!(self.slots[slot] != EMPTY, "slot {slot} is empty");
        let off = offset(self.slots[slot]);
        let cap = self.cap;
        let slots: &mut [u64] = &mut self.slots;
        // The displaced slots after it: up to the first empty one or one at
        // its home (the array's last slot is empty: the scan ends in it).
        // Found first, then moved back by one in a single memmove: at load
        // ~0.9 such a run is tens of slots long.
        let mut end = slot + 1;
        while end < slots.len() {
            let s = slots[end];
            if s == EMPTY || home_in(cap, stored(s)) >= end {
                break;
            }
            end += 1;
        }
        slots.copy_within(slot + 1..end, slot);
        slots[end - 1] = EMPTY;
        self.len -= 1;
        self.free_chunk(off);
    }

    /// Frees a chunk no slot refers to; evacuates the page the arena names.
    fn free_chunk(&mut self, off: u32) {
        if let Some(page) = self.arena.free(off) {
            self.evacuate(page);
        }
    }

    /// Moves the live entries of `page` into other chunks of their class,
    /// so the page empties and goes back (see [`super::arena`]).
    fn evacuate(&mut self, page: usize) {
        let chunks = self.arena.begin_evacuation(page);
        for off in chunks {
            if self.arena.page_is_free(page) {
                break; // its last live entry moved: the page went back
            }
            let p = self.arena.ptr(off);
            // SAFETY: `off` is a carved chunk of the page: its first byte is
            // either the free mark or a live entry's header.
            if unsafe { *p } == FREE_MARK {
                continue;
            }
            // SAFETY: a live entry (no free mark).
            let e = unsafe { Entry::at(&self.arena, off) };
            let h = slot_hash((self.hasher)(e.key()));
            let chunk = self.arena.chunk_bytes(off);
            let (Some(slot), Some(to)) = (self.find_offset(h, off), self.arena.alloc(chunk)) else {
                debug_assert!(false, "an evacuated entry has a slot and a chunk");
                break;
            };
            self.move_entry(slot, &e, off, to);
        }
        self.arena.end_evacuation(page);
    }

    /// Calls `f(key, value, expiry)` for every entry whose *position* lies
    /// in `lo..hi` (`hi` up to 2^64). An entry's position is its hash's top
    /// 31 bits, shifted back up (`slot_hash(h) << 33`): it never changes,
    /// so a walk over consecutive ranges, one range at a time with writes
    /// in between, visits every key that is present for the whole walk
    /// exactly once, whatever resizes and deletes happen meanwhile. This is
    /// how a snapshot is taken in slices without a fork. The table is in
    /// hash order, so the cost is the range's slots. `f` gets the key, the
    /// value and the expiry (`None` without TTL).
    pub fn for_each_in(&self, lo: u128, hi: u128, mut f: impl FnMut(&[u8], &[u8], Option<u64>)) {
        let lo32 = lo.div_ceil(1 << HASH_SHIFT).min(1 << 31) as u64;
        let hi32 = hi.div_ceil(1 << HASH_SHIFT).min(1 << 31) as u64;
        if lo32 >= hi32 || self.len == 0 {
            return;
        }
        let last_home = self.home(hi32 - 1);
        // Entries sit anywhere in the arena, slots in hash order: each
        // entry read is a cache miss unless started early. Starting the
        // one FOR_EACH_AHEAD slots ahead halved a snapshot's time per key.
        let ahead = |j: usize| {
            if let Some(&s) = self.slots.get(j).filter(|&&s| s != EMPTY) {
                self.prefetch_entry_in(s);
            }
        };
        let first = self.home(lo32);
        (first..first + FOR_EACH_AHEAD).for_each(ahead);
        for i in first..self.slots.len() {
            ahead(i + FOR_EACH_AHEAD);
            let s = self.slots[i];
            if s == EMPTY {
                if i > last_home {
                    break;
                }
                continue;
            }
            if stored(s) >= hi32 {
                break;
            }
            if stored(s) >= lo32 {
                let e = self.entry(i);
                let ttl = (e.meta() & META_TTL != 0).then(|| e.expire_at(self.now_ms));
                f(e.key(), e.value(), ttl);
            }
        }
    }

    /// The width of position range holding about `slots` home slots at the
    /// current capacity (for [`Table::for_each_in`] slices).
    pub fn position_span(&self, slots: usize) -> u128 {
        (((slots as u128) << 64) / self.cap as u128).max(1 << HASH_SHIFT)
    }

    /// Keeps the arena's pages in SIEVE's order, or stops
    /// ([`Arena::set_ordered`]): [`Table::sieve_victim`] needs it.
    pub fn set_ordered(&mut self, on: bool) {
        self.arena.set_ordered(on);
    }

    /// Bytes the arena's page order takes (SIEVE's only metadata outside
    /// the entries).
    pub fn order_bytes(&self) -> usize {
        self.arena.order_bytes()
    }

    /// SIEVE's next victim, in an ordered arena ([`Table::set_ordered`]).
    /// The hand walks the entries page by page, oldest page first, and
    /// wraps from the newest to the oldest. An entry with `visited` in its
    /// metadata has the bit cleared and is kept: moved into its class's
    /// *fill* page behind the hand while that has room, so the pages the
    /// hand passes empty and go back. The first entry without the bit is
    /// the victim, unless its [`slot_hash`] is `protect`. Returns its slot;
    /// `None` when no entry qualifies within two passes.
    pub fn sieve_victim(&mut self, visited: Meta, protect: u64) -> Option<usize> {
        let mut steps = 2 * (self.len + self.arena.pages_in_use()) + 2;
        while steps > 0 {
            steps -= 1;
            match self.arena.hand_next() {
                Hand::Empty => return None,
                Hand::PageDone(p) => self.arena.hand_left(p),
                Hand::Block(off) => {
                    // SAFETY: the hand stops on live blocks: entries.
                    let e = unsafe { Entry::at(&self.arena, off) };
                    let m = e.meta();
                    if m & visited != 0 {
                        e.set_meta(m & !visited);
                        self.keep(off, &e);
                        continue;
                    }
                    let h = slot_hash((self.hasher)(e.key()));
                    if h == protect {
                        continue;
                    }
                    let slot = self.find_offset(h, off);
                    debug_assert!(slot.is_some(), "a live entry has a slot");
                    if slot.is_some() {
                        return slot;
                    }
                }
            }
        }
        None
    }

    /// Moves the entry `e` at `off`, which SIEVE's hand keeps, into its
    /// class's fill page, if that has room (else it stays).
    fn keep(&mut self, off: u32, e: &Entry) {
        let Some(to) = self.arena.alloc_in_fill(off) else {
            return;
        };
        let h = slot_hash((self.hasher)(e.key()));
        let Some(slot) = self.find_offset(h, off) else {
            debug_assert!(false, "a live entry has a slot");
            let _ = self.arena.free(to);
            return;
        };
        self.move_entry(slot, e, off, to);
    }

    /// Moves the live entry `e` of `slot` from chunk `off` to chunk `to`
    /// (a free chunk of its class): copies it, points the slot at it, frees
    /// `off`. A page the free names for evacuation is left to a later free
    /// (both callers are compacting already: an evacuation, or SIEVE's hand).
    fn move_entry(&mut self, slot: usize, e: &Entry, off: u32, to: u32) {
        // SAFETY: two distinct live chunks of the same class, of at least
        // `e.size()` bytes.
        unsafe { ptr::copy_nonoverlapping(e.p, self.arena.ptr(to), e.size()) };
        self.slots[slot] = self.slots[slot] & !0xFFFF_FFFF | to as u64;
        let _ = self.arena.free(off);
    }

    /// Removes every entry and returns to the initial size.
    pub fn clear(&mut self) {
        self.slots = Slots::empty(MIN_CAPACITY + tail(MIN_CAPACITY));
        self.cap = MIN_CAPACITY;
        self.len = 0;
        self.arena.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn h(k: &[u8]) -> u64 {
        crate::routing::key_hash(k)
    }

    /// Every full slot's hash is in order, at or after its home, with no
    /// gap between its home and it, and names a live entry.
    fn check_invariants(t: &Table) {
        let mut prev = 0;
        let mut n = 0;
        for i in 0..t.slots.len() {
            let s = t.slots[i];
            if s == EMPTY {
                continue;
            }
            n += 1;
            assert!(stored(s) >= prev, "slot {i} out of order");
            prev = stored(s);
            let home = t.home(stored(s));
            assert!(home <= i, "slot {i} before its home {home}");
            assert!(
                (home..i).all(|j| t.slots[j] != EMPTY),
                "gap before slot {i}"
            );
            let k = t.key(i);
            assert_eq!(slot_hash((t.hasher)(k)), stored(s));
            assert_eq!(
                s & SLOT_TTL != 0,
                t.meta(i) & META_TTL != 0,
                "slot {i}'s TTL bit"
            );
        }
        assert_eq!(n, t.len);
        assert_eq!(*t.slots.last().unwrap(), EMPTY);
    }

    /// A walk in slices with inserts, deletes and resizes between slices
    /// visits every key present throughout exactly once.
    #[test]
    fn sliced_walk_sees_every_stable_key_once() {
        let mut t = Table::new();
        for i in 0..5000u32 {
            let k = format!("stable{i}").into_bytes();
            t.insert(h(&k), &k, b"s", 0, None).unwrap();
        }
        let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
        let end: u128 = 1u128 << 64;
        let mut lo: u128 = 0;
        let mut round = 0u32;
        while lo < end {
            let hi = (lo + t.position_span(64)).min(end);
            t.for_each_in(lo, hi, |k, _, _| *seen.entry(k.to_vec()).or_default() += 1);
            lo = hi;
            // Churn between slices: grow the table and delete other keys.
            for j in 0..40u32 {
                let k = format!("churn{round}-{j}").into_bytes();
                t.insert(h(&k), &k, b"c", 0, None).unwrap();
            }
            if round > 0 {
                for j in 0..30u32 {
                    let k = format!("churn{}-{j}", round - 1).into_bytes();
                    if let Some(s) = t.find(h(&k), &k) {
                        t.remove(s);
                    }
                }
            }
            round += 1;
        }
        assert!(round > 10, "the walk took several slices");
        for i in 0..5000u32 {
            let k = format!("stable{i}").into_bytes();
            assert_eq!(seen.get(&k), Some(&1), "stable{i}");
        }
        check_invariants(&t);
    }

    #[test]
    fn matches_a_model_under_random_churn() {
        let mut t = Table::new();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut x = 0x243F_6A88_85A3_08D3u64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // A small key space so inserts, overwrites and removes collide.
            let k = format!("k{}", x % 3000).into_bytes();
            let hash = h(&k);
            match (x >> 20) % 4 {
                0 | 1 => {
                    let v =
                        format!("v{step}-{}", "x".repeat((x >> 40) as usize % 300)).into_bytes();
                    match t.find(hash, &k) {
                        Some(s) => t.set_value(s, &v, Field::None).unwrap(),
                        None => {
                            t.insert(hash, &k, &v, 0, None).unwrap();
                        }
                    }
                    model.insert(k, v);
                }
                2 => {
                    if let Some(s) = t.find(hash, &k) {
                        t.remove(s);
                    }
                    model.remove(&k);
                }
                _ => {
                    let got = t.find(hash, &k).map(|s| t.value(s).to_vec());
                    assert_eq!(got.as_ref(), model.get(&k), "step {step}");
                }
            }
            assert_eq!(t.len(), model.len());
            if step % 20_000 == 0 {
                check_invariants(&t);
            }
        }
        for (k, v) in &model {
            let s = t.find(h(k), k).expect("present");
            assert_eq!(t.value(s), &v[..]);
            assert_eq!(t.payload_len(s), k.len() + v.len());
        }
        check_invariants(&t);
        // Fragmentation stays bounded: the arena holds the live chunks plus
        // at most about two pages per size class in use (sizes span ~40
        // classes here) and the partly carved pages.
        let live: usize = model
            .iter()
            .map(|(k, v)| entry_charge(k.len(), v.len(), Field::None))
            .sum();
        let held = t.arena_bytes();
        assert!(
            held <= live + 3 * 80 * arena::PAGE,
            "held {held}, live {live}"
        );
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.arena_bytes(), 0);
        assert!(t.find(h(b"k1"), b"k1").is_none());
    }

    /// A growth prepared a slice at a time takes the prepared array: the
    /// same table as an unprepared growth, the spare counted in `bytes` and
    /// taken off the growth's cost; a prepared array that no growth takes
    /// (a shrink came first) is dropped.
    #[test]
    fn prepared_growth_is_taken_and_counted() {
        let mut t = Table::new();
        let mut u = Table::new();
        let mut i = 0u64;
        let key = |i: u64| i.to_le_bytes();
        // Up to the first growth whose array is 2 MiB or more, then to
        // within 1/16 of the next one.
        while !t.growth_near() {
            let k = key(i);
            t.insert(h(&k), &k, b"v", 0, None).unwrap();
            u.insert(h(&k), &k, b"v", 0, None).unwrap();
            i += 1;
        }
        assert_eq!(t.prepare_growth(0), 0);
        let before = t.bytes();
        let whole = t.spare_left();
        assert_eq!(t.prepare_growth(64 << 10), 64 << 10);
        assert_eq!(t.bytes(), before + (64 << 10));
        assert_eq!(t.spare_left(), whole - (64 << 10));
        assert_eq!(u.growth_bytes(), 0);
        // Fill it all, in slices.
        while t.prepare_growth(1 << 20) > 0 {}
        assert_eq!(t.spare_left(), 0);
        assert_eq!(t.bytes(), before + whole);
        // Grow both: the prepared one grows for nothing more.
        let cap = t.cap;
        while t.cap == cap {
            if t.len + 1 > max_len(t.cap) {
                assert_eq!(t.growth_bytes(), 0, "the spare is the new array");
                assert!(u.growth_bytes() > 0);
            }
            let k = key(i);
            t.insert(h(&k), &k, b"v", 0, None).unwrap();
            u.insert(h(&k), &k, b"v", 0, None).unwrap();
            i += 1;
        }
        assert!(t.spare.is_none());
        assert_eq!(t.cap, u.cap);
        assert_eq!(&t.slots[..], &u.slots[..]);
        assert_eq!(t.bytes(), u.bytes());
        check_invariants(&t);
        for j in 0..i {
            let k = key(j);
            assert!(t.find(h(&k), &k).is_some(), "key {j}");
        }
        // A spare no growth takes: freed by a shrink's resize, or by hand.
        while t.len + t.len / 16 < max_len(t.cap) {
            let k = key(i);
            t.insert(h(&k), &k, b"v", 0, None).unwrap();
            i += 1;
        }
        assert!(t.prepare_growth(1 << 20) > 0);
        for j in 0..i * 3 / 4 {
            let k = key(j);
            let s = t.find(h(&k), &k).unwrap();
            t.remove(s);
        }
        assert!(t.shrink());
        assert!(t.spare.is_none());
        assert_eq!(t.bytes(), t.slots.len() * 8);
        check_invariants(&t);
        t.drop_spare();
    }

    /// Equal hashes for every key: one run; keys still tell entries apart,
    /// removes in the middle keep the rest reachable, and compaction (which
    /// finds slots through the hasher) works in such a run.
    #[test]
    fn colliding_hashes_and_the_array_end() {
        fn same(_: &[u8]) -> u64 {
            0xDEAD_BEEF_0000_0000
        }
        let mut t = Table::with_hasher(same);
        for i in 0..200u8 {
            t.insert(same(&[i]), &[i], &[i; 30], 0, None).unwrap();
        }
        check_invariants(&t);
        for i in 0..200u8 {
            let s = t.find(same(&[i]), &[i]).unwrap();
            assert_eq!(t.value(s), &[i; 30]);
        }
        for i in (0..200u8).step_by(3) {
            let s = t.find(same(&[i]), &[i]).unwrap();
            t.remove(s);
        }
        for i in 0..200u8 {
            assert_eq!(t.find(same(&[i]), &[i]).is_some(), i % 3 != 0, "key {i}");
        }
        check_invariants(&t);
        // Keys whose home is the last home slot spill into the tail; more
        // than the tail holds makes the table grow instead of overflowing.
        fn last(_: &[u8]) -> u64 {
            u64::MAX
        }
        let mut t = Table::with_hasher(last);
        for i in 0..200u32 {
            t.insert(u64::MAX, &i.to_le_bytes(), b"v", 0, None).unwrap();
        }
        check_invariants(&t);
        for i in 0..200u32 {
            assert!(t.find(u64::MAX, &i.to_le_bytes()).is_some());
        }
    }

    #[test]
    fn reserving_for_sorted_keys_keeps_them_all() {
        let mut t = Table::new();
        t.reserve_keys(50_000);
        let cap = t.cap;
        assert!(max_len(cap) >= 50_000, "{cap}");
        // Keys inserted in hash order (as a snapshot holds them): no growth.
        let mut keys: Vec<[u8; 4]> = (0..50_000u32).map(|i| i.to_le_bytes()).collect();
        keys.sort_by_key(|k| h(k));
        for k in &keys {
            t.insert(h(k), k, k, 0, None).unwrap();
        }
        assert_eq!(t.cap, cap);
        check_invariants(&t);
        for k in &keys {
            assert!(t.find(h(k), k).is_some());
        }
        // A smaller reservation never shrinks it.
        t.reserve_keys(10);
        assert_eq!(t.cap, cap);
    }

    #[test]
    fn grows_and_keeps_everything() {
        let mut t = Table::new();
        for i in 0..50_000u32 {
            let k = i.to_le_bytes();
            t.insert(h(&k), &k, &k, 0, None).unwrap();
        }
        assert!(t.cap >= 50_000 && t.len() <= max_len(t.cap));
        // The load stays between 0.8 and 0.92 while growing.
        assert!(t.len() * 100 >= t.cap * 80, "{} in {}", t.len(), t.cap);
        for i in (0..50_000u32).step_by(97) {
            let k = i.to_le_bytes();
            let s = t.find(h(&k), &k).unwrap();
            assert_eq!(t.value(s), &k);
            t.prefetch_slot(h(&k));
            t.prefetch_entry(h(&k));
        }
        // Removing most keys shrinks the slot array; the rest stay.
        for i in 0..48_000u32 {
            let k = i.to_le_bytes();
            let s = t.find(h(&k), &k).unwrap();
            t.remove(s);
        }
        let before = t.capacity();
        assert!(t.shrink());
        assert!(t.capacity() < before && t.len() * 100 >= t.cap * 79);
        assert!(!t.shrink(), "load is 0.8 now");
        check_invariants(&t);
        for i in 48_000..50_000u32 {
            let k = i.to_le_bytes();
            let s = t.find(h(&k), &k).unwrap();
            assert_eq!(t.value(s), &k);
        }
        // Resizing a value keeps the key; empty values and keys work.
        let k = 49_007u32.to_le_bytes();
        let s = t.find(h(&k), &k).unwrap();
        t.set_value(s, b"a longer value than before", Field::None)
            .unwrap();
        let s = t.find(h(&k), &k).unwrap();
        assert_eq!(t.value(s), b"a longer value than before");
        t.insert(h(b""), b"", b"", 0, None).unwrap();
        let s = t.find(h(b""), b"").unwrap();
        assert_eq!(t.value(s), b"");
    }

    #[test]
    fn meta_and_expiry_survive_resize_shift_and_growth() {
        let mut t = Table::new();
        for i in 0..5_000u32 {
            let k = i.to_le_bytes();
            let ttl = (i % 3 == 0).then_some(1_000 + i as u64);
            // Policy bits a compact entry keeps (bits 7-14).
            t.insert(h(&k), &k, b"v", ((i % 100) as Meta) << 7, ttl)
                .unwrap();
        }
        // Resize some values and remove others (backward shifts move slots).
        for i in (0..5_000u32).step_by(5) {
            let k = i.to_le_bytes();
            let s = t.find(h(&k), &k).unwrap();
            if i % 2 == 0 {
                t.set_value(s, b"a much longer value than v", Field::None)
                    .unwrap();
            } else {
                t.remove(s);
            }
        }
        for i in 0..5_000u32 {
            let k = i.to_le_bytes();
            let found = t.find(h(&k), &k);
            if i % 5 == 0 && i % 2 == 1 {
                assert!(found.is_none());
                continue;
            }
            let s = found.unwrap();
            assert_eq!(t.meta(s) & META_POLICY, ((i % 100) as Meta) << 7);
            assert_eq!(t.key(s), &k);
            if i % 3 == 0 {
                assert_ne!(t.meta(s) & META_TTL, 0);
                assert_eq!(t.expire_at(s), 1_000 + i as u64);
            } else {
                assert_eq!(t.meta(s) & META_TTL, 0);
            }
        }
        // An expiry on an entry without the field moves it; PERSIST keeps
        // the field, so setting one again is in place.
        let k = 1u32.to_le_bytes();
        let s = t.find(h(&k), &k).unwrap();
        assert!(t.expire_growth(s, 77) <= arena::PAGE);
        t.set_expire(s, Some(77)).unwrap();
        let s = t.find(h(&k), &k).unwrap();
        assert_eq!((t.meta(s) & META_TTL, t.expire_at(s)), (META_TTL, 77));
        assert_eq!((t.key(s), t.value(s)), (&k[..], &b"v"[..]));
        t.set_expire(s, None).unwrap();
        assert_eq!(t.meta(s) & META_TTL, 0);
        assert_eq!(t.expire_growth(s, 77), 0);
        t.set_meta(s, 5);
        assert_eq!(t.meta_at(s), Some(5));
        assert_eq!(t.hash_at(s), slot_hash(h(&k)));
    }

    /// The entry format round-trips through both header forms, and a value
    /// rewritten within its size class stays in its chunk (key moved when
    /// the header changes length).
    #[test]
    fn entry_forms_and_in_place_rewrites() {
        let mut t = Table::new();
        // A clock far from the expiries below: no compact form here (see
        // `compact_expiry_form`).
        t.set_clock(1 << 62);
        let long_key = vec![b'k'; 40];
        let cases: [(&[u8], usize); 4] =
            [(b"a", 0), (b"seed12", 128), (&long_key, 10), (b"b", 70_000)];
        for (key, vlen) in cases {
            let v = vec![7u8; vlen];
            let s = t.insert(h(key), key, &v, 3, Some(99)).unwrap();
            assert_eq!((t.key(s), t.value(s)), (key, &v[..]));
            assert_eq!((t.meta(s), t.expire_at(s)), (3 | META_TTL, 99));
        }
        assert_eq!(entry_size(6, 128, Field::None), 139);
        assert_eq!(entry_charge(6, 128, Field::None), 140);
        assert_eq!(entry_size(6, 128, Field::Narrow), 144);
        assert_eq!(entry_charge(6, 128, Field::Narrow), 144);
        // A wide field takes the long header (9 bytes) and 8 bytes.
        assert_eq!(entry_size(6, 128, Field::Wide), 153);
        // 65 535 → 65 536 bytes changes the header form (3 → 9 bytes) in a
        // large run of the same length: in place, key moved.
        let k = b"hdr";
        let s = t.insert(h(k), k, &vec![1u8; 65_535], 9, None).unwrap();
        let off = offset(t.slots[s]);
        assert!(t.resized(s, 65_536, Field::None).1);
        t.set_value(s, &vec![2u8; 65_536], Field::None).unwrap();
        let s = t.find(h(k), k).unwrap();
        assert_eq!(offset(t.slots[s]), off, "rewritten in place");
        assert_eq!((t.key(s), t.value(s)), (&k[..], &vec![2u8; 65_536][..]));
        assert_eq!(t.meta(s), 9);
        // One byte more in the same class: in place; far more: moved.
        let s = t.find(h(b"seed12"), b"seed12").unwrap();
        let off = offset(t.slots[s]);
        t.set_value(s, &[5u8; 129], Field::None).unwrap();
        assert_eq!(offset(t.slots[s]), off);
        t.set_value(s, &[6u8; 300], Field::None).unwrap();
        assert_ne!(offset(t.slots[s]), off);
        assert_eq!((t.value(s), t.expire_at(s)), (&[6u8; 300][..], 99));
        check_invariants(&t);
    }

    /// Expiries in the narrow range take 5 bytes and read back exactly to
    /// the millisecond at both ends; outside it they take the wide form. A
    /// narrow entry given a time outside the range moves to a wide field
    /// (in place when its chunk has room), and keeps key, value and meta.
    #[test]
    fn narrow_and_wide_expiry_fields() {
        let lo = NARROW_EPOCH_MS;
        let hi = NARROW_EPOCH_MS + (1 << 40) - 1;
        // A clock far from every expiry here: no compact form.
        let now = 1 << 62;
        let of = |at| field_for(4, 5, at, now);
        assert_eq!(of(None), Field::None);
        for at in [lo, lo + 1, 1_764_115_200_123, hi] {
            assert_eq!(of(Some(at)), Field::Narrow, "{at}");
        }
        for at in [1, lo - 1, hi + 1, u64::MAX >> 1, i64::MAX as u64] {
            assert_eq!(of(Some(at)), Field::Wide, "{at}");
        }
        let mut t = Table::new();
        t.set_clock(now);
        let times = [
            lo,
            hi,
            1_764_115_200_123,
            1,
            hi + 1,
            lo - 1,
            i64::MAX as u64,
        ];
        for (i, &at) in times.iter().enumerate() {
            let k = format!("key{i}").into_bytes();
            let s = t.insert(h(&k), &k, b"value", 7, Some(at)).unwrap();
            assert_eq!(t.expire_at(s), at);
            let want = entry_charge(k.len(), 5, field_for(k.len(), 5, Some(at), now));
            assert_eq!(t.arena.chunk_bytes(offset(t.slots[s])), want, "{at}");
        }
        // Narrow → wide (moves: a 3-byte header becomes 9, 5 bytes become 8),
        // then back to a narrow time (stays wide, in place).
        let k = b"key0";
        let s = t.find(h(k), k).unwrap();
        assert_eq!(t.expire_growth(s, hi), 0);
        t.set_expire(s, Some(5)).unwrap();
        let s = t.find(h(k), k).unwrap();
        let off = offset(t.slots[s]);
        assert_eq!((t.expire_at(s), t.meta(s)), (5, 7 | META_TTL));
        assert_eq!((t.key(s), t.value(s)), (&k[..], &b"value"[..]));
        t.set_expire(s, Some(lo + 9)).unwrap();
        assert_eq!((offset(t.slots[s]), t.expire_at(s)), (off, lo + 9));
        // A value rewrite that widens the field keeps the expiry.
        let k = b"key1";
        let s = t.find(h(k), k).unwrap();
        t.set_value(s, b"other", Field::Wide).unwrap();
        let s = t.find(h(k), k).unwrap();
        assert_eq!((t.value(s), t.expire_at(s)), (&b"other"[..], hi));
        t.set_expire(s, Some(u64::MAX >> 2)).unwrap();
        assert_eq!(t.expire_at(s), u64::MAX >> 2);
        // A rewrite in place that widens the field (the chunk has room).
        let k = b"wide-in-place";
        let s = t.insert(h(k), k, &[1u8; 200], 0, Some(lo)).unwrap();
        let off = offset(t.slots[s]);
        assert!(t.resized(s, 192, Field::Wide).1);
        t.set_value(s, &[2u8; 192], Field::Wide).unwrap();
        let s = t.find(h(k), k).unwrap();
        assert_eq!(offset(t.slots[s]), off);
        assert_eq!((t.value(s), t.expire_at(s)), (&[2u8; 192][..], lo));
        t.set_expire(s, Some(3)).unwrap();
        assert_eq!((offset(t.slots[s]), t.expire_at(s)), (off, 3));
        check_invariants(&t);
    }

    /// Under churn of many sizes, compaction keeps the arena within a few
    /// pages per class of the live chunks, and never loses an entry.
    #[test]
    fn compaction_bounds_fragmentation() {
        let mut t = Table::new();
        let n = 20_000u32;
        let len_of = |i: u32, r: u32| {
            40 + ((i.wrapping_mul(2_654_435_761) ^ r.wrapping_mul(40_503)) % 361) as usize
        };
        for i in 0..n {
            let k = format!("key:{i}").into_bytes();
            t.insert(h(&k), &k, &vec![b'a'; len_of(i, 0)], 0, None)
                .unwrap();
        }
        for r in 1..=3 {
            for i in 0..n {
                let k = format!("key:{i}").into_bytes();
                let s = t.find(h(&k), &k).unwrap();
                t.set_value(s, &vec![b'a' + r as u8; len_of(i, r)], Field::None)
                    .unwrap();
            }
        }
        // Delete three quarters: pages empty or get compacted.
        for i in (0..n).filter(|i| i % 4 != 0) {
            let k = format!("key:{i}").into_bytes();
            let s = t.find(h(&k), &k).unwrap();
            t.remove(s);
        }
        check_invariants(&t);
        let mut live = 0;
        for i in (0..n).step_by(4) {
            let k = format!("key:{i}").into_bytes();
            let s = t.find(h(&k), &k).unwrap();
            assert_eq!(t.value(s), &vec![b'a' + 3; len_of(i, 3)][..]);
            live += entry_charge(k.len(), len_of(i, 3), Field::None);
        }
        let held = t.arena_bytes();
        // ~100 classes in use, at most ~2 pages of free chunks each.
        assert!(
            held <= live + 2 * 110 * arena::PAGE,
            "held {held}, live {live}"
        );
    }

    /// A small key with a TTL takes the compact form: the chunk a key
    /// without one takes (140 bytes for a seed key), its expiry exact to
    /// the millisecond while the clock stays within 2^31 ms of it, its
    /// policy bits' top 8 kept; PERSIST and a new TTL switch forms in place;
    /// values that outgrow it, keys too long and times too far take the
    /// narrow field.
    #[test]
    fn compact_expiry_form() {
        let now = 1_764_115_200_000u64;
        let mut t = Table::new();
        t.set_clock(now);
        assert_eq!(entry_size(6, 128, Field::Compact), 140);
        assert_eq!(entry_charge(6, 128, Field::Compact), 140);
        assert_eq!(
            field_for(6, 128, Some(now + 3_600_000), now),
            Field::Compact
        );
        assert_eq!(field_for(6, 244, Some(now + 1), now), Field::Compact);
        assert_eq!(field_for(6, 245, Some(now + 1), now), Field::Narrow);
        assert_eq!(field_for(32, 1, Some(now + 1), now), Field::Narrow);
        let edge = now + COMPACT_AHEAD - 1;
        assert_eq!(field_for(6, 128, Some(edge), now), Field::Compact);
        assert_eq!(field_for(6, 128, Some(edge + 1), now), Field::Narrow);
        let meta = 0x5A80; // policy bits 7-14 (kept) and none below
        let v = [9u8; 128];
        let k = b"123456";
        let at = now + 3_600_123;
        let s = t.insert(h(k), k, &v, meta, Some(at)).unwrap();
        let off = offset(t.slots[s]);
        assert_eq!(t.arena.chunk_bytes(off), 140);
        assert_eq!((t.key(s), t.value(s)), (&k[..], &v[..]));
        assert_eq!((t.expire_at(s), t.meta(s)), (at, meta | META_TTL));
        assert!(t.has_ttl_at(s));
        // The low 7 policy bits are not kept.
        t.set_meta(s, 0x7F);
        assert_eq!(t.meta(s), META_TTL);
        t.set_meta(s, meta);
        // Read back exactly with the clock anywhere within 2^31 ms of it.
        for clock in [now, at, at + (1 << 31) - 1, at - (1 << 31) + 1] {
            t.set_clock(clock);
            assert_eq!(t.expire_at(s), at, "clock {clock}");
        }
        t.set_clock(now);
        // Every value length up to the largest compact one: the chunk is
        // the class of the entry, the value reads back.
        for len in [0usize, 1, 2, 3, 4, 5, 100, 200, 243, 244] {
            let k = format!("len{len}").into_bytes();
            let v = vec![len as u8; len];
            let s = t.insert(h(&k), &k, &v, 0, Some(now + len as u64)).unwrap();
            assert_eq!(t.value(s), &v[..], "{len}");
            assert_eq!(t.expire_at(s), now + len as u64);
            let size = entry_size(k.len(), len, Field::Compact);
            assert_eq!(t.arena.chunk_bytes(offset(t.slots[s])), arena::charge(size));
        }
        // PERSIST: a short entry in the same chunk; a TTL again: compact in
        // the same chunk.
        let s = t.find(h(k), k).unwrap();
        t.set_expire(s, None).unwrap();
        assert_eq!(offset(t.slots[s]), off);
        assert!(!t.has_ttl_at(s));
        assert_eq!((t.key(s), t.value(s), t.meta(s)), (&k[..], &v[..], meta));
        assert_eq!(t.expire_growth(s, now + 5), 0);
        t.set_expire(s, Some(now + 5)).unwrap();
        assert_eq!(offset(t.slots[s]), off);
        assert_eq!((t.expire_at(s), t.meta(s)), (now + 5, meta | META_TTL));
        assert_eq!((t.key(s), t.value(s)), (&k[..], &v[..]));
        // A time too far for it: a narrow field (moved); a near one again
        // stays narrow.
        let far = now + 30 * 86_400_000;
        assert!(t.expire_growth(s, far) > 0);
        t.set_expire(s, Some(far)).unwrap();
        assert_eq!(t.arena.chunk_bytes(offset(t.slots[s])), 144);
        assert_eq!((t.expire_at(s), t.value(s)), (far, &v[..]));
        t.set_expire(s, Some(now + 7)).unwrap();
        assert_eq!(t.expire_at(s), now + 7);
        // Value rewrites keep the expiry: same length in place, other
        // lengths in their class, past the compact limit a narrow field.
        let k = b"abc";
        let s = t.insert(h(k), k, &[1u8; 10], meta, Some(now + 9)).unwrap();
        let off = offset(t.slots[s]);
        t.set_value(s, &[2u8; 10], Field::None).unwrap();
        assert_eq!(offset(t.slots[s]), off);
        for len in [11usize, 40, 247, 248, 600, 20] {
            let v = vec![len as u8; len];
            assert_eq!(t.resized(s, len, Field::None).0, {
                let f = if compact_fits(3, len) {
                    Field::Compact
                } else {
                    Field::Narrow
                };
                entry_size(3, len, f.max(field_of(&t, s)))
            });
            t.set_value(s, &v, Field::None).unwrap();
            assert_eq!((t.value(s), t.expire_at(s)), (&v[..], now + 9), "{len}");
            assert_eq!(t.meta(s), meta | META_TTL);
        }
        // A value SET on a short key with a TTL wanted (the store's SET EX):
        // the compact form in place, the expiry set right after.
        let k = b"seedky";
        let s = t.insert(h(k), k, &[1u8; 128], 0, None).unwrap();
        let off = offset(t.slots[s]);
        let want = t.field_for(6, 128, Some(now + 11));
        assert_eq!(want, Field::Compact);
        assert_eq!(t.resized(s, 128, want), (140, true));
        t.set_value(s, &[3u8; 128], want).unwrap();
        t.set_expire(s, Some(now + 11)).unwrap();
        assert_eq!(offset(t.slots[s]), off);
        assert_eq!((t.value(s), t.expire_at(s)), (&[3u8; 128][..], now + 11));
        check_invariants(&t);
    }

    fn field_of(t: &Table, s: usize) -> Field {
        t.entry(s).field
    }

    /// Churn of compact entries of many sizes (TTLs, PERSIST, rewrites)
    /// with compaction moving them: every key keeps its value and expiry.
    #[test]
    fn compact_entries_survive_churn_and_compaction() {
        let now = 1_764_115_200_000u64;
        let mut t = Table::new();
        t.set_clock(now);
        let n = 20_000u32;
        let len_of = |i: u32, r: u32| ((i.wrapping_mul(2_654_435_761) ^ r) % 240) as usize;
        let ttl_of = |i: u32, r: u32| (i % 3 != r % 3).then(|| now + 1 + (i as u64 * 7 + r as u64));
        let mut want = HashMap::new();
        for i in 0..n {
            let k = format!("k{i}").into_bytes();
            let v = vec![i as u8; len_of(i, 0)];
            t.insert(h(&k), &k, &v, 0, ttl_of(i, 0)).unwrap();
            want.insert(k, (v, ttl_of(i, 0)));
        }
        for r in 1..=3 {
            for i in 0..n {
                let k = format!("k{i}").into_bytes();
                let Some(s) = t.find(h(&k), &k) else {
                    continue;
                };
                let v = vec![(i + r) as u8; len_of(i, r)];
                let ttl = ttl_of(i, r);
                let f = t.field_for(k.len(), v.len(), ttl);
                t.set_value(s, &v, f).unwrap();
                t.set_expire(s, ttl).unwrap();
                want.insert(k, (v, ttl));
            }
            for i in (0..n).filter(|i| (i + r) % 3 == 0) {
                let k = format!("k{i}").into_bytes();
                if let Some(s) = t.find(h(&k), &k) {
                    t.remove(s);
                    want.remove(&k);
                }
            }
        }
        check_invariants(&t);
        assert_eq!(t.len(), want.len());
        for (k, (v, ttl)) in &want {
            let s = t.find(h(k), k).unwrap();
            assert_eq!(t.value(s), &v[..]);
            assert_eq!(t.has_ttl_at(s), ttl.is_some());
            if let Some(at) = ttl {
                assert_eq!(t.expire_at(s), *at);
                assert_eq!(t.meta(s) & META_TTL, META_TTL);
            } else {
                assert_eq!(t.meta(s) & META_TTL, 0);
            }
        }
    }

    /// The largest distance between a key's home and its slot.
    fn max_displacement(t: &Table) -> usize {
        (0..t.slots.len())
            .filter(|&i| t.slots[i] != EMPTY)
            .map(|i| i - t.home(stored(t.slots[i])))
            .max()
            .unwrap_or(0)
    }

    /// Keys deleted unevenly over the hash space (all of them in its lower
    /// 60 %, as active expiry's cursor leaves a mass expiry halfway): a
    /// shrink sized for the average load would pack the upper part at
    /// twice its density. It is refused (the array stays), for a while,
    /// then tried again on request; once the rest is deleted evenly too,
    /// it shrinks, and no key is ever far from its home.
    #[test]
    fn shrink_refuses_keys_spread_unevenly() {
        let mut t = Table::new();
        let n = 200_000u32;
        let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}").into_bytes()).collect();
        for k in &keys {
            t.insert(h(k), k, b"v", 0, None).unwrap();
        }
        let cap = t.capacity();
        let low = |k: &[u8]| slot_hash(h(k)) < (1u64 << 31) * 6 / 10;
        // Half the keys go, all from the lower 60 % of the hash space.
        for k in keys.iter().filter(|k| low(k)).take(n as usize / 2) {
            let s = t.find(h(k), k).unwrap();
            t.remove(s);
        }
        assert!(t.len() * 2 < t.cap);
        assert!(!t.shrink(), "uneven: refused");
        assert_eq!(t.capacity(), cap);
        assert!(!t.shrink(), "and not tried again at once");
        t.allow_shrink();
        assert!(!t.shrink(), "still uneven");
        // The upper part thinned out as much: even again, it shrinks.
        for k in keys.iter().filter(|k| !low(k)).step_by(2) {
            let s = t.find(h(k), k).unwrap();
            t.remove(s);
        }
        t.allow_shrink();
        assert!(t.shrink(), "even: shrinks");
        assert!(t.capacity() < cap);
        assert!(max_displacement(&t) <= SHRINK_MAX_DISPLACEMENT);
        check_invariants(&t);
        for k in &keys {
            if let Some(s) = t.find(h(k), k) {
                assert_eq!(t.key(s), &k[..]);
            }
        }
    }

    /// Inserts into a part of the hash space denser than the average (the
    /// rest thinned out by deletes) grow the table before any key lands
    /// more than 1024 slots past its home; keys sharing one home (as
    /// chosen hash bits would) do not make it grow below half full.
    #[test]
    fn inserts_into_a_dense_part_grow_the_table() {
        let mut t = Table::new();
        let keys: Vec<Vec<u8>> = (0..200_000u32)
            .map(|i| format!("k{i}").into_bytes())
            .collect();
        for k in &keys {
            t.insert(h(k), k, b"v", 0, None).unwrap();
        }
        // Thin the upper 60 % of the hash space out to a fifth of its keys
        // (the dense part is not at the array's end, where a run would
        // reach the last slot and grow it anyway).
        let high = |k: &[u8]| slot_hash(h(k)) >= (1u64 << 31) * 4 / 10;
        for (j, k) in keys.iter().filter(|k| high(k)).enumerate() {
            if j % 5 != 0 {
                let s = t.find(h(k), k).unwrap();
                t.remove(s);
            }
        }
        let cap = t.cap;
        // As many new keys again, landing everywhere.
        for i in 0..150_000u32 {
            let k = format!("new{i}").into_bytes();
            t.insert(h(&k), &k, b"v", 0, None).unwrap();
        }
        assert!(t.cap > cap, "it grew");
        assert!(max_displacement(&t) <= 1025, "{}", max_displacement(&t));
        check_invariants(&t);
        // Keys sharing one home: a long run, no growth (the table is
        // below half full).
        let mut t = Table::with_hasher(|_| 0x1234_5678 << 33);
        for i in 0..3000u32 {
            let k = i.to_le_bytes();
            t.insert(0x1234_5678 << 33, &k, b"v", 0, None).unwrap();
        }
        assert!(t.cap < 8192, "{}", t.cap);
        assert_eq!(t.len(), 3000);
    }

    /// SIEVE's visited bit (the store's is [`super::super::evict::SIEVE_VISITED`]).
    const VISITED: Meta = 1 << 14;

    fn key_of(t: &Table, slot: usize) -> u32 {
        u32::from_le_bytes(t.key(slot).try_into().unwrap())
    }

    #[test]
    fn sieve_keeps_visited_and_evicts_in_insertion_order() {
        let mut t = Table::new();
        t.set_ordered(true);
        for i in 0..10u32 {
            let k = i.to_le_bytes();
            t.insert(h(&k), &k, b"v", 0, None).unwrap();
        }
        // Visit 0, 1 and 3: the first victims are 2, 4, 5, then (after the
        // hand wraps and finds 0, 1, 3 cleared) 0.
        for i in [0u32, 1, 3] {
            let k = i.to_le_bytes();
            let slot = t.find(h(&k), &k).unwrap();
            t.set_meta(slot, VISITED);
        }
        let mut order = Vec::new();
        for _ in 0..8 {
            let slot = t.sieve_victim(VISITED, u64::MAX).unwrap();
            order.push(key_of(&t, slot));
            t.remove(slot);
        }
        assert_eq!(order, vec![2, 4, 5, 6, 7, 8, 9, 0]);
        // A key deleted behind the hand's back is not found; a protected
        // one is passed over.
        let k1 = 1u32.to_le_bytes();
        let slot = t.find(h(&k1), &k1).unwrap();
        t.remove(slot);
        let k3 = 3u32.to_le_bytes();
        assert_eq!(t.sieve_victim(VISITED, slot_hash(h(&k3))), None);
        let slot = t.sieve_victim(VISITED, u64::MAX).unwrap();
        assert_eq!(key_of(&t, slot), 3);
        t.remove(slot);
        assert!(t.sieve_victim(VISITED, u64::MAX).is_none());
        assert_eq!(t.arena_bytes(), 0, "the last page went back");
    }

    /// Over many pages: the hand's kept keys are packed behind it, so the
    /// pages it passes go back; keys written meanwhile are newer than every
    /// key the hand has not reached.
    #[test]
    fn sieve_packs_what_it_keeps_and_new_keys_come_last() {
        let mut t = Table::new();
        t.set_ordered(true);
        let put = |t: &mut Table, i: u32| {
            let k = i.to_le_bytes();
            t.insert(h(&k), &k, &[7u8; 120], 0, None).unwrap();
        };
        for i in 0..10_000u32 {
            put(&mut t, i);
        }
        // Every third key visited.
        for i in (0..10_000u32).step_by(3) {
            let k = i.to_le_bytes();
            let slot = t.find(h(&k), &k).unwrap();
            t.set_meta(slot, VISITED);
        }
        let pages = t.arena_bytes() / arena::PAGE;
        // Evict the first half's unvisited keys (in order), writing a new
        // key per eviction, as a cache at its limit does.
        let mut next = 10_000u32;
        let mut victims = Vec::new();
        while victims.len() < 3_333 {
            let slot = t.sieve_victim(VISITED, u64::MAX).unwrap();
            victims.push(key_of(&t, slot));
            t.remove(slot);
            put(&mut t, next);
            next += 1;
        }
        let expect: Vec<u32> = (0..5_000u32).filter(|i| i % 3 != 0).collect();
        assert_eq!(victims, expect, "unvisited keys go oldest first");
        check_invariants(&t);
        // What the hand kept was packed: no more pages than the keys need,
        // plus the classes' head and fill and the hand's own page.
        let per_page = arena::PAGE / arena::charge(entry_size(4, 120, Field::None));
        let needed = t.len().div_ceil(per_page);
        let held = t.arena_bytes() / arena::PAGE;
        assert!(held <= needed + 3, "{held} pages for {needed}");
        assert!(held <= pages + 3, "{held} pages, {pages} before");
        // Then the second half's unvisited keys, then the keys written
        // meanwhile (the newest end, reached before the hand wraps), then
        // the kept keys, their bits cleared by the hand's first pass.
        let evict = |t: &mut Table, n: usize| -> Vec<u32> {
            (0..n)
                .map(|_| {
                    let slot = t.sieve_victim(VISITED, u64::MAX).unwrap();
                    let k = key_of(t, slot);
                    t.remove(slot);
                    k
                })
                .collect()
        };
        let expect: Vec<u32> = (5_000..10_000u32).filter(|i| i % 3 != 0).collect();
        assert_eq!(evict(&mut t, 3_333), expect);
        assert_eq!(evict(&mut t, 3_333), (10_000..next).collect::<Vec<_>>());
        check_invariants(&t);
        let mut kept = evict(&mut t, 3_334);
        kept.sort_unstable();
        assert_eq!(kept, (0..10_000u32).step_by(3).collect::<Vec<_>>());
        assert!(t.is_empty() && t.sieve_victim(VISITED, u64::MAX).is_none());
        assert_eq!(t.arena_bytes(), 0);
    }

    /// Random writes of every size (large blocks included), deletes,
    /// resizes, visits and SIEVE evictions, with the order switched on and
    /// off: every key stays readable with its value, the table stays
    /// ordered, and the arena holds little beyond the live entries.
    #[test]
    fn sieve_survives_random_churn() {
        let mut t = Table::new();
        t.set_ordered(true);
        let mut model: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..60_000u32 {
            let r = next();
            let i = (r % 3_000) as u32;
            let k = i.to_le_bytes();
            let size = match (r >> 20) % 16 {
                0 => 20_000 + (r >> 32) as usize % 20_000,
                1..=3 => 300 + (r >> 32) as usize % 3_000,
                _ => (r >> 32) as usize % 200,
            };
            let value = vec![(round % 251) as u8; size];
            match (r >> 12) % 8 {
                0..=3 => match t.find(h(&k), &k) {
                    Some(slot) => {
                        t.set_value(slot, &value, Field::None).unwrap();
                        model.insert(i, value);
                    }
                    None => {
                        t.insert(h(&k), &k, &value, 0, None).unwrap();
                        model.insert(i, value);
                    }
                },
                4 => {
                    if let Some(slot) = t.find(h(&k), &k) {
                        t.remove(slot);
                        model.remove(&i);
                    }
                }
                5 => {
                    if let Some(slot) = t.find(h(&k), &k) {
                        t.set_meta(slot, VISITED);
                    }
                }
                _ if t.arena.is_ordered() => {
                    let protect = slot_hash(h(&k));
                    if let Some(slot) = t.sieve_victim(VISITED, protect) {
                        let v = key_of(&t, slot);
                        assert_ne!(slot_hash(h(&v.to_le_bytes())), protect);
                        t.remove(slot);
                        model.remove(&v);
                    }
                }
                _ => {}
            }
            if round % 20_000 == 10_000 {
                t.set_ordered(false);
            } else if round % 20_000 == 15_000 {
                t.set_ordered(true);
            }
        }
        check_invariants(&t);
        assert_eq!(t.len(), model.len());
        for (i, v) in &model {
            let k = i.to_le_bytes();
            let slot = t.find(h(&k), &k).unwrap();
            assert_eq!(t.value(slot), &v[..], "key {i}");
        }
        let live: usize = model
            .values()
            .map(|v| entry_charge(4, v.len(), Field::None))
            .sum();
        let held = t.arena_bytes();
        assert!(
            held <= live + 4 * 80 * arena::PAGE,
            "held {held}, live {live}"
        );
        // Emptied by the hand alone, every page goes back.
        while let Some(slot) = t.sieve_victim(VISITED, u64::MAX) {
            t.remove(slot);
        }
        assert!(t.is_empty());
        assert_eq!(t.arena_bytes(), 0);
    }
}
