//! The partition's hash table: ordered linear probing over 8-byte slots,
//! with entries packed into a slab arena ([`super::arena`]); built so the
//! shard's batch loop can prefetch ahead of execution.
//!
//! Bytes per key, the seed's data set (1–6 byte keys, 128-byte values):
//!
//! | part | bytes | what |
//! |---|---:|---|
//! | slot | 8 / load = 8.7–9.8 | 31 bits of the key's hash, a has-TTL bit and a 32-bit arena offset, load 0.82–0.92 |
//! | entry header | 3 | flags, key length (5 bits), value length (16 bits); 9 for longer keys or values, or a wide expiry |
//! | metadata | 2 | has-TTL bit + the eviction policy's 15 bits ([`Meta`]) |
//! | expiry | 0, 5 or 8 | only in entries that have (had) a TTL: 5 bytes (40 bits of ms since 2020-01-01, [`NARROW_EPOCH_MS`]: up to late 2054), else 8 (absolute Unix ms, with the 9-byte header) |
//! | key, value | 134 | |
//! | rounding | 0–3 | size classes every 4 bytes up to 256 B, no allocator header |
//!
//! so a seed entry without TTL is a 140-byte chunk, 149–150 B/key in all;
//! with a TTL, 144 bytes (153–154 B/key).
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
//! * **Entries**: `[header][meta u16][expiry, if present][key][value]`.
//!   The expiry is exact to the millisecond in both forms: narrow (5 bytes,
//!   ms since [`NARROW_EPOCH_MS`]) when it falls between 2020 and 2054, wide
//!   (8 bytes of Unix ms, flagged in the long header) otherwise ([`Field`]).
//!   A value rewritten into the same size class (the seed's same-length
//!   overwrites, and most small changes) is rewritten in place; otherwise
//!   the entry moves to a chunk of its new class. Setting a TTL on an entry
//!   whose field cannot hold it (none, or narrow for a time outside its
//!   range) moves it once; a field is never narrowed again, and PERSIST
//!   keeps it.
//! * **Compaction.** When the arena names a page to evacuate (a class with
//!   two pages' worth of free chunks), the table moves that page's live
//!   entries, finding each one's slot from its key's hash (the `hasher`,
//!   [`crate::routing::key_hash`]) and offset. Slot *positions* never change
//!   in a compaction, only the offsets they hold, so slot indices a caller
//!   holds stay valid across [`Table::remove`]'s compaction.
//!
//! The table owns its arena and so its entries. It holds raw pointers, so it
//! is neither `Send` nor `Sync`: a table belongs to one shard, by
//! construction.

use super::arena::{self, Arena, FREE_MARK};
use std::ptr;

const MIN_CAPACITY: usize = 1024;

/// Meta bit: the entry has an expiry (its `expire_at` is set).
pub const META_TTL: u16 = 1 << 15;
/// Meta bits the eviction policy owns.
pub const META_POLICY: u16 = META_TTL - 1;

/// 16 bits of per-key metadata kept in the entry.
pub type Meta = u16;

/// The bits of a placement hash the table keeps (and by which the SIEVE
/// queue and eviction's `protect` name a key).
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
/// Longest key of the short header form + 1.
const SHORT_KEY: usize = 32;
/// Longest value of the short header form + 1.
const SHORT_VALUE: usize = 1 << 16;

/// The origin of a narrow expiry: 2020-01-01T00:00:00Z in Unix ms. A
/// narrow field holds `expire_at - NARROW_EPOCH_MS` in 40 bits, exact to
/// the millisecond, so expiries from 2020 to late 2054 take 5 bytes.
pub const NARROW_EPOCH_MS: u64 = 1_577_836_800_000;
/// Bytes of a narrow expiry field.
const NARROW: usize = 5;
/// Bytes of a wide expiry field (absolute Unix ms).
const WIDE: usize = 8;
// The header parse computes a wide field's length as a narrow one's + 3.
const _: () = assert!(NARROW + 3 == WIDE);

/// The expiry field an entry has: none, narrow (5 bytes, ms since
/// [`NARROW_EPOCH_MS`]) or wide (8 bytes, Unix ms). Ordered: a field can
/// hold every expiry a smaller one can.
/// The discriminant is the field's length (so [`Field::len`] is a move).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Field {
    /// No expiry field.
    None = 0,
    /// 40 bits of ms from [`NARROW_EPOCH_MS`].
    Narrow = NARROW as u8,
    /// 64 bits of Unix ms.
    Wide = WIDE as u8,
}

impl Field {
    /// The smallest field that holds `expire` (`None`: no expiry).
    #[inline]
    pub fn of(expire: Option<u64>) -> Field {
        match expire {
            None => Field::None,
            Some(at) if at.wrapping_sub(NARROW_EPOCH_MS) < 1 << 40 => Field::Narrow,
            Some(_) => Field::Wide,
        }
    }

    /// Bytes of the field.
    #[inline(always)]
    fn len(self) -> usize {
        self as usize
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

/// Bytes of an entry: header, meta, expiry field, key and value.
#[inline]
pub fn entry_size(key_len: usize, value_len: usize, field: Field) -> usize {
    header_len(key_len, value_len, field) + 2 + field.len() + key_len + value_len
}

/// The bytes an entry takes in the arena (its size class's chunk).
#[inline]
pub fn entry_charge(key_len: usize, value_len: usize, field: Field) -> usize {
    arena::charge(entry_size(key_len, value_len, field))
}

/// A parsed entry header.
#[derive(Clone, Copy)]
struct Entry {
    p: *mut u8,
    key_len: usize,
    value_len: usize,
    /// Offset of the meta field.
    meta_at: usize,
    field: Field,
}

impl Entry {
    /// Parses the entry at `p`.
    ///
    /// # Safety
    /// `p` is a live entry written by [`write_entry`].
    #[inline(always)]
    unsafe fn at(p: *mut u8) -> Entry {
        // SAFETY: the caller guarantees a live entry: its header is there.
        unsafe {
            let b0 = *p;
            // The field's length by arithmetic on the flags (no branch of
            // its own on the read path): 5 × F_EXPIRE, 3 more with F_WIDE,
            // which only a long header has (in a short one that bit is the
            // key length's).
            let e = (b0 & F_EXPIRE) >> 5;
            let (key_len, value_len, meta_at, flen) = if b0 & F_LONG == 0 {
                (
                    (b0 & 0x1F) as usize,
                    ptr::read_unaligned(p.add(1) as *const u16) as usize,
                    3,
                    e * NARROW as u8,
                )
            } else {
                (
                    ptr::read_unaligned(p.add(1) as *const u32) as usize,
                    ptr::read_unaligned(p.add(5) as *const u32) as usize,
                    9,
                    e * (NARROW as u8 + 3 * ((b0 & F_WIDE) >> 4)),
                )
            };
            // `flen` is 0, 5 or 8: a discriminant of the `repr(u8)` Field.
            let field = std::mem::transmute::<u8, Field>(flen);
            Entry {
                p,
                key_len,
                value_len,
                meta_at,
                field,
            }
        }
    }
    #[inline(always)]
    fn key_at(&self) -> usize {
        self.meta_at + 2 + self.field.len()
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
        // SAFETY: every entry has its meta field at `meta_at`.
        unsafe { ptr::read_unaligned(self.p.add(self.meta_at) as *const u16) }
    }
    #[inline(always)]
    fn set_meta(&self, m: Meta) {
        // SAFETY: as in `meta`; the table is borrowed mutably by the caller.
        unsafe { ptr::write_unaligned(self.p.add(self.meta_at) as *mut u16, m) }
    }
    #[inline(always)]
    fn expire_at(&self) -> u64 {
        // SAFETY: an entry with an expiry field has it after its meta.
        unsafe { read_expire(self.p.add(self.meta_at + 2), self.field) }
    }
    /// Writes `at` into the entry's expiry field, which must hold it
    /// (`Field::of(Some(at)) <= self.field`).
    #[inline]
    fn write_expire(&self, at: u64) {
        debug_assert!(Field::of(Some(at)) <= self.field);
        // SAFETY: the entry has a field of `self.field` after its meta.
        unsafe { write_expire(self.p.add(self.meta_at + 2), self.field, at) }
    }
}

/// Reads an expiry field of kind `field` at `p` (0 for `Field::None`).
///
/// # Safety
/// `p` holds such a field.
#[inline(always)]
unsafe fn read_expire(p: *const u8, field: Field) -> u64 {
    // SAFETY: the caller guarantees the field's bytes are there.
    unsafe {
        match field {
            Field::None => 0,
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
            Field::Narrow => {
                let d = at - NARROW_EPOCH_MS;
                ptr::write_unaligned(p as *mut u32, d as u32);
                *p.add(4) = (d >> 32) as u8;
            }
            Field::Wide => ptr::write_unaligned(p as *mut u64, at),
        }
    }
}

/// Writes an entry at `p` (a chunk of at least `entry_size` bytes) with an
/// expiry field of kind `field` holding `expire` (which it must hold; a
/// field without an expiry is written as the field's smallest value).
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
) {
    // SAFETY: the caller guarantees the chunk is large enough and disjoint
    // from the sources.
    unsafe {
        let meta_at = write_header(p, field, key.len(), value.len());
        ptr::write_unaligned(p.add(meta_at) as *mut u16, meta);
        let at = meta_at + 2;
        write_expire(p.add(at), field, expire.unwrap_or(NARROW_EPOCH_MS));
        let at = at + field.len();
        ptr::copy_nonoverlapping(key.as_ptr(), p.add(at), key.len());
        ptr::copy_nonoverlapping(value.as_ptr(), p.add(at + key.len()), value.len());
    }
}

/// Writes a header; returns the meta field's offset.
///
/// # Safety
/// `p` has room for the header.
unsafe fn write_header(p: *mut u8, field: Field, key_len: usize, value_len: usize) -> usize {
    let flags = match field {
        Field::None => 0,
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
        }
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
        unsafe { Entry::at(self.arena.ptr(offset(s))) }
    }

    /// Starts loading the home slot of `hash` into the cache, and the next
    /// line (where its run may continue); no memory is read.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        self.prefetch_slot_of(slot_hash(hash));
    }

    /// [`Table::prefetch_slot`] by stored hash bits (a [`slot_hash`]).
    #[inline]
    pub fn prefetch_slot_of(&self, h: u64) {
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
    pub fn prefetch_entry_of(&self, h: u64) {
        let home = self.home(h);
        for i in home..home + 16 {
            let s = self.slots[i];
            if s == EMPTY || stored(s) > h {
                return;
            }
            if stored(s) == h {
                let p = self.arena.ptr(offset(s)) as *const u8;
                // A 140-byte entry at any 4-byte boundary spans up to
                // four lines.
                prefetch(p);
                prefetch(p.wrapping_add(64));
                prefetch(p.wrapping_add(128));
                prefetch(p.wrapping_add(139));
                return;
            }
        }
    }

    /// The slot holding `key` (whose placement hash is `hash`).
    #[inline]
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        self.find_with_meta(hash, key).map(|(i, _)| i)
    }

    /// [`Table::find`], with the entry's metadata (read while its key was).
    /// Always inlined: it is the read path's lookup, and as a call of its
    /// own (which the header parse's few more instructions made it) the seed
    /// workload's server ran ~3 % more CPU per op.
    #[inline(always)]
    pub fn find_with_meta(&self, hash: u64, key: &[u8]) -> Option<(usize, Meta)> {
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
            let e = unsafe { Entry::at(self.arena.ptr(offset(s))) };
            if e.key() == key {
                return Some((i, e.meta()));
            }
            i += 1;
        }
    }

    /// The first slot whose stored hash bits are `h` (a [`slot_hash`]; the
    /// SIEVE queue names entries by it: on a collision it finds one of the
    /// colliding keys, which is as good a victim as the other).
    pub fn find_hash(&self, h: u64) -> Option<usize> {
        if h >> 31 != 0 {
            return None;
        }
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == EMPTY || stored(s) > h {
                return None;
            }
            if stored(s) == h {
                return Some(i);
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
        self.entry(slot).expire_at()
    }

    /// Bytes the arena would grow by to give `slot` a field holding `at` now.
    pub fn expire_growth(&self, slot: usize, at: u64) -> usize {
        let e = self.entry(slot);
        let want = Field::of(Some(at));
        if e.field >= want {
            0
        } else {
            self.arena.growth(entry_size(e.key_len, e.value_len, want))
        }
    }

    /// Sets (`Some`) or clears (`None`) the expiry of a full slot, keeping
    /// the has-TTL meta bit in step. An entry whose field cannot hold the
    /// expiry (none, or narrow for a time outside its range) moves to a
    /// chunk with one that can (which can fail only when the arena is full).
    pub fn set_expire(&mut self, slot: usize, expire_at: Option<u64>) -> Result<(), ArenaFull> {
        let e = self.entry(slot);
        let Some(at) = expire_at else {
            e.set_meta(e.meta() & !META_TTL);
            self.slots[slot] &= !SLOT_TTL;
            return Ok(());
        };
        let want = Field::of(Some(at));
        if e.field >= want {
            e.write_expire(at);
            e.set_meta(e.meta() | META_TTL);
            self.slots[slot] |= SLOT_TTL;
            return Ok(());
        }
        let size = entry_size(e.key_len, e.value_len, want);
        let off = self.arena.alloc(size).ok_or(ArenaFull)?;
        // SAFETY: a fresh chunk of `size` bytes, disjoint from the old entry.
        unsafe {
            write_entry(
                self.arena.ptr(off),
                e.key(),
                e.value(),
                e.meta() | META_TTL,
                want,
                Some(at),
            )
        };
        self.relink(slot, off);
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
    #[inline]
    pub fn payload_len(&self, slot: usize) -> usize {
        let (k, v) = self.lens(slot);
        k + v
    }

    /// `(key_len, value_len)` of a full slot.
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
        let field = e.field.max(want);
        let size = entry_size(e.key_len, value_len, field);
        let chunk = self.arena.chunk_bytes(offset(self.slots[slot]));
        // Its own class's chunk; or, shrinking within the small classes, the
        // chunk it has when its own class has no free one (a move would take
        // a page: at the memory limit, a smaller value must still fit).
        let same = arena::charge(size) == chunk
            || (size < chunk && chunk <= arena::MAX_CLASS_SIZE && self.arena.growth(size) > 0);
        (size, same)
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
        let field = e.field.max(want);
        if e.value_len == value.len() && field == e.field {
            // SAFETY: the entry has exactly that many value bytes, and
            // `value` cannot alias it (we hold `&mut self`).
            unsafe {
                let at = e.p.add(e.key_at() + e.key_len);
                ptr::copy_nonoverlapping(value.as_ptr(), at, value.len());
            }
            return Ok(());
        }
        let (size, same) = self.resized(slot, value.len(), want);
        let meta = e.meta();
        // A field that widens keeps the time it held (it fits the wider one).
        let expire = (e.field != Field::None).then(|| e.expire_at());
        if same {
            // Same chunk: the header may change length (and the expiry
            // field appear or widen), so the key moves first (memmove),
            // then the fixed fields and the value.
            // SAFETY: the chunk holds `size` bytes; `value` does not alias
            // it; the key is moved with an overlapping copy.
            unsafe {
                let new_key_at = header_len(e.key_len, value.len(), field) + 2 + field.len();
                ptr::copy(e.p.add(e.key_at()), e.p.add(new_key_at), e.key_len);
                let meta_at = write_header(e.p, field, e.key_len, value.len());
                ptr::write_unaligned(e.p.add(meta_at) as *mut u16, meta);
                write_expire(
                    e.p.add(meta_at + 2),
                    field,
                    expire.unwrap_or(NARROW_EPOCH_MS),
                );
                let at = e.p.add(new_key_at + e.key_len);
                ptr::copy_nonoverlapping(value.as_ptr(), at, value.len());
            }
            return Ok(());
        }
        let off = self.arena.alloc(size).ok_or(ArenaFull)?;
        // SAFETY: a fresh chunk, disjoint from the old entry and `value`.
        unsafe { write_entry(self.arena.ptr(off), e.key(), value, meta, field, expire) };
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
        let field = Field::of(expire_at);
        let size = entry_size(key.len(), value.len(), field);
        let off = self.arena.alloc(size).ok_or(ArenaFull)?;
        let meta = match expire_at {
            Some(_) => meta | META_TTL,
            None => meta & !META_TTL,
        };
        // SAFETY: a fresh chunk of `size` bytes, disjoint from the inputs.
        unsafe { write_entry(self.arena.ptr(off), key, value, meta, field, expire_at) };
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
    /// right by one. `None` when that would fill the array's last slot.
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
        slots.copy_within(i..end, i + 1);
        slots[i] = slot;
        Some(i)
    }

    /// Shrinks the slot array once the load has fallen below 0.5 (after
    /// mass expiry or deletion: half the keys gone since the last growth),
    /// to a load of 0.8; the minimum capacity aside. One pass over the
    /// slots, like a growth; the caller runs it between batches, never per
    /// operation. True when it shrank.
    pub fn shrink(&mut self) -> bool {
        if self.cap <= MIN_CAPACITY || self.len * 2 >= self.cap {
            return false;
        }
        let new = (self.len * 5 / 4).max(MIN_CAPACITY);
        if new >= self.cap {
            return false;
        }
        self.resize(new);
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
            let mut next = 0;
            for &s in self.slots.iter().filter(|&&s| s != EMPTY) {
                let pos = home_in(cap, stored(s)).max(next);
                if pos + 1 >= n {
                    cap = grown(cap);
                    continue 'retry;
                }
                new[pos] = s;
                next = pos + 1;
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
            if unsafe { *p } & FREE_MARK != 0 {
                continue;
            }
            // SAFETY: a live entry (no free mark).
            let e = unsafe { Entry::at(p) };
            let h = slot_hash((self.hasher)(e.key()));
            let chunk = self.arena.chunk_bytes(off);
            let (Some(slot), Some(to)) = (self.find_offset(h, off), self.arena.alloc(chunk)) else {
                debug_assert!(false, "an evacuated entry has a slot and a chunk");
                break;
            };
            // SAFETY: two distinct live chunks of at least `e.size()` bytes.
            unsafe { ptr::copy_nonoverlapping(p, self.arena.ptr(to), e.size()) };
            self.slots[slot] = self.slots[slot] & !0xFFFF_FFFF | to as u64;
            self.arena.free(off);
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
        for i in self.home(lo32)..self.slots.len() {
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
                let ttl = (e.meta() & META_TTL != 0).then(|| e.expire_at());
                f(e.key(), e.value(), ttl);
            }
        }
    }

    /// The width of position range holding about `slots` home slots at the
    /// current capacity (for [`Table::for_each_in`] slices).
    pub fn position_span(&self, slots: usize) -> u128 {
        (((slots as u128) << 64) / self.cap as u128).max(1 << HASH_SHIFT)
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
            t.insert(h(&k), &k, b"v", (i % 100) as Meta, ttl).unwrap();
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
            assert_eq!(t.find_hash(slot_hash(h(&k))), Some(s));
            assert_eq!(t.meta(s) & META_POLICY, (i % 100) as Meta);
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
        assert_eq!(Field::of(None), Field::None);
        for at in [lo, lo + 1, 1_764_115_200_123, hi] {
            assert_eq!(Field::of(Some(at)), Field::Narrow, "{at}");
        }
        for at in [1, lo - 1, hi + 1, u64::MAX >> 1, i64::MAX as u64] {
            assert_eq!(Field::of(Some(at)), Field::Wide, "{at}");
        }
        let mut t = Table::new();
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
            let want = entry_charge(k.len(), 5, Field::of(Some(at)));
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
}
