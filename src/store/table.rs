//! The partition's hash table: open addressing with linear probing, built so
//! the shard's batch loop can prefetch ahead of execution.
//!
//! A slot is 16 bytes — 48 bits of the key's placement hash with 16 bits of
//! per-key metadata beside them ([`Meta`]: a has-TTL bit and the eviction
//! policy's LRU clock, LFU counter or SIEVE visited bit), and a pointer to
//! its entry block — so four slots share a cache line. Because a slot's
//! address follows from the hash alone, a lookup can be *prefetched* without
//! touching memory ([`Table::prefetch_slot`]), and, a few operations later,
//! its entry block too ([`Table::prefetch_entry`]). A general-purpose table
//! (hashbrown) cannot offer the first step: finding the slot means probing.
//!
//! * Entry block: one heap allocation,
//!   `[key_len u32][value_len u32][expire_at u64][key][value]`, so a hit
//!   touches the slot line and then the block (expiry, key and value are
//!   adjacent). `expire_at` is the absolute expiry in Unix milliseconds, read
//!   only when the slot's has-TTL bit is set. Overwriting a value of the same
//!   length reuses the block; a resize keeps the expiry.
//! * Probing compares the stored 48 hash bits first; keys are compared only
//!   on a match (a false match costs one key compare, never a wrong answer).
//! * Load factor at most 1/2 (short probe sequences for hits and misses);
//!   the table doubles when it would exceed it, re-placing slots by their
//!   stored hash (keys are never rehashed).
//! * Deletion uses backward shifting, so there are no tombstones and probe
//!   sequences never lengthen with churn.
//!
//! The table owns its blocks and frees them on removal, on `clear` and on
//! drop. It holds raw pointers, so it is neither `Send` nor `Sync`: a table
//! belongs to one shard, by construction.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::{self, NonNull};

/// Bytes of an entry block's header (lengths and expiry).
pub const HEADER: usize = 16;
const MIN_CAPACITY: usize = 1024;

/// The bits of a placement hash a slot keeps; the rest hold [`Meta`].
pub const HASH_MASK: u64 = (1 << 48) - 1;
/// Meta bit: the entry has an expiry (its block's `expire_at` is set).
pub const META_TTL: u16 = 1 << 15;
/// Meta bits the eviction policy owns.
pub const META_POLICY: u16 = META_TTL - 1;

/// 16 bits of per-key metadata kept in the slot.
pub type Meta = u16;

#[derive(Clone, Copy)]
struct Slot {
    /// Low 48 bits: the placement hash; high 16 bits: [`Meta`].
    hash: u64,
    /// Entry block; `None` marks an empty slot.
    block: Option<NonNull<u8>>,
}

impl Slot {
    #[inline]
    fn hash48(&self) -> u64 {
        self.hash & HASH_MASK
    }
    #[inline]
    fn meta(&self) -> Meta {
        (self.hash >> 48) as Meta
    }
}

const EMPTY: Slot = Slot {
    hash: 0,
    block: None,
};

/// Layout of a block holding `key_len + value_len` payload bytes.
#[inline]
fn block_layout(key_len: usize, value_len: usize) -> Layout {
    match Layout::from_size_align(HEADER + key_len + value_len, 8) {
        Ok(l) => l,
        Err(_) => handle_alloc_error(Layout::new::<u64>()),
    }
}

/// Allocates a block holding `key` and `value`, expiring at `expire_at`.
fn new_block(key: &[u8], value: &[u8], expire_at: u64) -> NonNull<u8> {
    let layout = block_layout(key.len(), value.len());
    // SAFETY: the layout has a non-zero size (HEADER > 0). The writes stay
    // inside the allocation: header, then key, then value.
    unsafe {
        let Some(p) = NonNull::new(alloc(layout)) else {
            handle_alloc_error(layout)
        };
        let raw = p.as_ptr();
        ptr::write_unaligned(raw as *mut u32, key.len() as u32);
        ptr::write_unaligned(raw.add(4) as *mut u32, value.len() as u32);
        ptr::write_unaligned(raw.add(8) as *mut u64, expire_at);
        ptr::copy_nonoverlapping(key.as_ptr(), raw.add(HEADER), key.len());
        ptr::copy_nonoverlapping(value.as_ptr(), raw.add(HEADER + key.len()), value.len());
        p
    }
}

/// `(key_len, value_len)` of a live block.
#[inline]
fn lens(block: NonNull<u8>) -> (usize, usize) {
    // SAFETY: every block the table holds starts with its two lengths.
    unsafe {
        let raw = block.as_ptr();
        (
            ptr::read_unaligned(raw as *const u32) as usize,
            ptr::read_unaligned(raw.add(4) as *const u32) as usize,
        )
    }
}

/// The `expire_at` field of a live block.
#[inline]
fn block_expire(block: NonNull<u8>) -> u64 {
    // SAFETY: every block the table holds has a 16-byte header.
    unsafe { ptr::read_unaligned(block.as_ptr().add(8) as *const u64) }
}

/// Frees a block.
///
/// # Safety
/// `block` was made by [`new_block`] and is no longer referenced.
unsafe fn free_block(block: NonNull<u8>) {
    let (k, v) = lens(block);
    // SAFETY: the caller guarantees `block` came from `new_block`, which
    // allocated it with exactly this layout, and that nothing refers to it.
    unsafe { dealloc(block.as_ptr(), block_layout(k, v)) };
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

/// The table. Slot indices returned by [`Table::find`] stay valid until the
/// next insert or remove.
pub struct Table {
    slots: Box<[Slot]>,
    /// `64 - log2(capacity)`: the home slot is the top bits of a multiply.
    shift: u32,
    len: usize,
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table::with_capacity_pow2(MIN_CAPACITY)
    }

    fn with_capacity_pow2(cap: usize) -> Table {
        debug_assert!(cap.is_power_of_two());
        Table {
            slots: vec![EMPTY; cap].into_boxed_slice(),
            shift: 64 - cap.trailing_zeros(),
            len: 0,
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

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Home slot of a hash. Multiplying mixes every bit of the placement hash
    /// into the top bits, which matters because routing used the hash's top
    /// 32 bits to choose this shard.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((hash & HASH_MASK).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Starts loading the home slot of `hash` into the cache (no memory is read).
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        prefetch(self.slots.as_ptr().wrapping_add(self.home(hash)).cast());
    }

    /// Starts loading the entry block of `hash`, if its slot (prefetched
    /// earlier) shows one: the first lines, where the key and the start of
    /// the value are.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        let mask = self.mask();
        let mut i = self.home(hash);
        let h = hash & HASH_MASK;
        for _ in 0..4 {
            let s = self.slots[i];
            match s.block {
                None => return,
                Some(b) if s.hash48() == h => {
                    let p = b.as_ptr() as *const u8;
                    // A 16-byte header, a short key and a 128-byte value
                    // (the seed's entry, 150 B) starting 48 bytes into a
                    // line span four lines: prefetch them all, or a quarter
                    // of such reads stall in the value copy.
                    prefetch(p);
                    prefetch(p.wrapping_add(64));
                    prefetch(p.wrapping_add(128));
                    prefetch(p.wrapping_add(192));
                    return;
                }
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// The slot holding `key` (whose placement hash is `hash`).
    #[inline]
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(hash);
        let h = hash & HASH_MASK;
        loop {
            let s = self.slots[i];
            let b = s.block?;
            if s.hash48() == h && self.key_of(b) == key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The first slot whose stored hash bits equal `hash`'s (the SIEVE
    /// queue names entries by hash; on a 48-bit collision it finds one of
    /// the colliding keys, which is as good a victim as the other).
    pub fn find_hash(&self, hash: u64) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(hash);
        let h = hash & HASH_MASK;
        loop {
            let s = self.slots[i];
            s.block?;
            if s.hash48() == h {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Number of slots (a power of two); slot indices are `0..capacity()`.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The metadata of slot `i`, or `None` when it is empty.
    #[inline]
    pub fn meta_at(&self, i: usize) -> Option<Meta> {
        let s = self.slots[i];
        s.block.map(|_| s.meta())
    }

    /// The stored 48 hash bits of a full slot.
    #[inline]
    pub fn hash_at(&self, slot: usize) -> u64 {
        self.slots[slot].hash48()
    }

    /// The metadata of a full slot.
    #[inline]
    pub fn meta(&self, slot: usize) -> Meta {
        self.slots[slot].meta()
    }

    /// Sets the metadata of a full slot.
    #[inline]
    pub fn set_meta(&mut self, slot: usize, meta: Meta) {
        let s = &mut self.slots[slot];
        s.hash = s.hash48() | (meta as u64) << 48;
    }

    /// The absolute expiry of a full slot (ms; meaningful when its meta has
    /// [`META_TTL`]).
    #[inline]
    pub fn expire_at(&self, slot: usize) -> u64 {
        block_expire(self.block(slot))
    }

    /// Sets (`Some`) or clears (`None`) the expiry of a full slot, keeping
    /// the has-TTL meta bit in step.
    #[inline]
    pub fn set_expire(&mut self, slot: usize, expire_at: Option<u64>) {
        let b = self.block(slot);
        let meta = self.meta(slot);
        match expire_at {
            Some(at) => {
                // SAFETY: every block has a 16-byte header; `&mut self`.
                unsafe { ptr::write_unaligned(b.as_ptr().add(8) as *mut u64, at) };
                self.set_meta(slot, meta | META_TTL);
            }
            None => self.set_meta(slot, meta & !META_TTL),
        }
    }

    /// The key in a full slot.
    #[inline]
    pub fn key(&self, slot: usize) -> &[u8] {
        self.key_of(self.block(slot))
    }

    #[inline]
    fn key_of(&self, b: NonNull<u8>) -> &[u8] {
        let (k, _) = lens(b);
        // SAFETY: the block holds k key bytes after its header and lives
        // as long as it is in the table, which `&self` borrows.
        unsafe { std::slice::from_raw_parts(b.as_ptr().add(HEADER), k) }
    }

    #[inline]
    fn block(&self, slot: usize) -> NonNull<u8> {
        match self.slots[slot].block {
            Some(b) => b,
            None => panic!("slot {slot} is empty"),
        }
    }

    /// Calls `f` with every key in the table (table order), until it
    /// returns `false`.
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8]) -> bool) {
        for s in self.slots.iter() {
            if let Some(b) = s.block {
                if !f(self.key_of(b)) {
                    return;
                }
            }
        }
    }

    /// The value in a slot returned by [`Table::find`].
    #[inline]
    pub fn value(&self, slot: usize) -> &[u8] {
        let b = self.block(slot);
        let (k, v) = lens(b);
        // SAFETY: as in `key_of`; the value follows the key.
        unsafe { std::slice::from_raw_parts(b.as_ptr().add(HEADER + k), v) }
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
        lens(self.block(slot))
    }

    /// Bytes of the slot array.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    /// Bytes the slot array would grow by if one more key were inserted now
    /// (0 unless that insert doubles it).
    #[inline]
    pub fn growth_bytes(&self) -> usize {
        if (self.len + 1) * 2 > self.slots.len() {
            self.bytes()
        } else {
            0
        }
    }

    /// Replaces a slot's value, in place when the length is unchanged.
    #[inline]
    pub fn set_value(&mut self, slot: usize, value: &[u8]) {
        let b = self.block(slot);
        let (k, v) = lens(b);
        if v == value.len() {
            // SAFETY: the block has exactly v value bytes after the key, and
            // `value` cannot alias it (we hold `&mut self`).
            unsafe { ptr::copy_nonoverlapping(value.as_ptr(), b.as_ptr().add(HEADER + k), v) };
            return;
        }
        // The new block copies the key straight from the old one (no
        // temporary); the borrow of the old block ends before the slot changes.
        let nb = new_block(self.key_of(b), value, block_expire(b));
        self.slots[slot].block = Some(nb);
        // SAFETY: the old block was just unlinked from its slot.
        unsafe { free_block(b) };
    }

    /// Inserts a key that is not in the table, with metadata `meta` and,
    /// when `expire_at` is `Some`, an expiry (the has-TTL bit follows it).
    /// Returns its slot.
    pub fn insert(
        &mut self,
        hash: u64,
        key: &[u8],
        value: &[u8],
        meta: Meta,
        expire_at: Option<u64>,
    ) -> usize {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let block = new_block(key, value, expire_at.unwrap_or(0));
        let meta = match expire_at {
            Some(_) => meta | META_TTL,
            None => meta & !META_TTL,
        };
        let i = self.place(Slot {
            hash: (hash & HASH_MASK) | (meta as u64) << 48,
            block: Some(block),
        });
        self.len += 1;
        i
    }

    /// Puts a slot at the first free position of its probe sequence.
    fn place(&mut self, slot: Slot) -> usize {
        let mask = self.mask();
        let mut i = self.home(slot.hash);
        while self.slots[i].block.is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
        i
    }

    fn grow(&mut self) {
        self.resize(self.slots.len() * 2);
    }

    /// Halves (or more) the slot array once the load has fallen below 1/6
    /// (after mass expiry or deletion), to a load of 1/4–1/2; the minimum
    /// capacity aside. One pass over the slots, like a doubling; the caller
    /// runs it between batches, never per operation. True when it shrank.
    pub fn shrink(&mut self) -> bool {
        let cap = self.slots.len();
        if cap <= MIN_CAPACITY || self.len * 6 >= cap {
            return false;
        }
        let new = (self.len * 3).next_power_of_two().max(MIN_CAPACITY);
        if new >= cap {
            return false;
        }
        self.resize(new);
        true
    }

    fn resize(&mut self, cap: usize) {
        let mut other = Table::with_capacity_pow2(cap);
        for s in self.slots.iter().filter(|s| s.block.is_some()) {
            other.place(*s);
        }
        other.len = self.len;
        // Blocks moved to `other`; the old slots are dropped without freeing.
        self.slots = std::mem::take(&mut other.slots);
        self.shift = other.shift;
        other.len = 0;
    }

    /// Removes the entry in `slot`, closing the gap by shifting later entries
    /// of the same cluster back (no tombstones).
    pub fn remove(&mut self, slot: usize) {
        let b = self.block(slot);
        // SAFETY: the block is unlinked below before anything can see it.
        unsafe { free_block(b) };
        let mask = self.mask();
        let mut hole = slot;
        let mut j = (slot + 1) & mask;
        loop {
            let s = self.slots[j];
            if s.block.is_none() {
                break;
            }
            let home = self.home(s.hash);
            // Move `s` into the hole if its home is not cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & mask;
            let dist_hole = j.wrapping_sub(hole) & mask;
            if dist_home >= dist_hole {
                self.slots[hole] = s;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    /// Removes every entry and returns to the initial size.
    /// Calls `f(key, value)` for every entry whose *position* — the 64-bit
    /// product the home slot is the top bits of — lies in `lo..hi`
    /// (`hi` up to 2^64). The position of a key never changes (it follows
    /// from its hash alone), so a walk over consecutive ranges, one range at
    /// a time with writes in between, visits every key that is present for
    /// the whole walk exactly once, whatever resizes and deletes happen
    /// meanwhile. This is how a snapshot is taken in slices without a fork.
    /// Entries with a position in the range are found from their home slot
    /// to the end of its probe cluster, so the cost is the range's slots.
    /// `f` gets the key, the value and the expiry (`None` without TTL).
    pub fn for_each_in(&self, lo: u128, hi: u128, mut f: impl FnMut(&[u8], &[u8], Option<u64>)) {
        if lo >= hi || self.len == 0 {
            return;
        }
        let cap = self.slots.len();
        let mask = self.mask();
        let first = (lo >> self.shift) as usize;
        let last_home = ((hi - 1) >> self.shift) as usize;
        let mut i = first;
        while i < first + cap {
            let s = self.slots[i & mask];
            match s.block {
                None if i >= last_home => break,
                None => {}
                Some(b) => {
                    let pos = s.hash48().wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128;
                    if pos >= lo && pos < hi {
                        let (k, v) = lens(b);
                        let key = self.key_of(b);
                        // SAFETY: as in `value`; the value follows the key.
                        let value =
                            unsafe { std::slice::from_raw_parts(b.as_ptr().add(HEADER + k), v) };
                        let ttl = (s.meta() & META_TTL != 0).then(|| block_expire(b));
                        f(key, value, ttl);
                    }
                }
            }
            i += 1;
        }
    }

    /// The width of position range holding about `slots` home slots at the
    /// current capacity (for [`Table::for_each_in`] slices).
    pub fn position_span(&self, slots: usize) -> u128 {
        (slots as u128) << self.shift
    }

    pub fn clear(&mut self) {
        self.free_all();
        *self = Table::new();
    }

    fn free_all(&mut self) {
        for s in self.slots.iter_mut() {
            if let Some(b) = s.block.take() {
                // SAFETY: each block is owned by exactly one slot.
                unsafe { free_block(b) };
            }
        }
        self.len = 0;
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        self.free_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn h(k: &[u8]) -> u64 {
        crate::routing::key_hash(k)
    }

    /// A walk in slices with inserts, deletes and resizes between slices
    /// visits every key present throughout exactly once.
    #[test]
    fn sliced_walk_sees_every_stable_key_once() {
        let mut t = Table::new();
        for i in 0..5000u32 {
            let k = format!("stable{i}").into_bytes();
            t.insert(h(&k), &k, b"s", 0, None);
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
                t.insert(h(&k), &k, b"c", 0, None);
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
                    let v = format!("v{step}-{}", "x".repeat((x >> 40) as usize % 40)).into_bytes();
                    match t.find(hash, &k) {
                        Some(s) => t.set_value(s, &v),
                        None => {
                            t.insert(hash, &k, &v, 0, None);
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
        }
        for (k, v) in &model {
            let s = t.find(h(k), k).expect("present");
            assert_eq!(t.value(s), &v[..]);
            assert_eq!(t.payload_len(s), k.len() + v.len());
        }
        t.clear();
        assert!(t.is_empty());
        assert!(t.find(h(b"k1"), b"k1").is_none());
    }

    #[test]
    fn colliding_hashes_and_wraparound() {
        // Equal hashes force one probe cluster; keys still tell entries apart.
        let mut t = Table::new();
        let cap = t.slots.len();
        let same = 0xDEAD_BEEF_u64;
        for i in 0..20u8 {
            t.insert(same, &[i], &[i; 3], 0, None);
        }
        for i in 0..20u8 {
            let s = t.find(same, &[i]).unwrap();
            assert_eq!(t.value(s), &[i; 3]);
        }
        // Remove from the middle of the cluster; the rest stay reachable.
        for i in (0..20u8).step_by(3) {
            let s = t.find(same, &[i]).unwrap();
            t.remove(s);
        }
        for i in 0..20u8 {
            assert_eq!(t.find(same, &[i]).is_some(), i % 3 != 0, "key {i}");
        }
        // A cluster that wraps past the end of the slot array.
        let mut wrap = Table::new();
        let last = (0u64..).find(|&x| wrap.home(x) == cap - 1).unwrap();
        for i in 0..5u8 {
            wrap.insert(last, &[i], b"v", 0, None);
        }
        let s = wrap.find(last, &[0]).unwrap();
        wrap.remove(s);
        for i in 1..5u8 {
            assert!(wrap.find(last, &[i]).is_some());
        }
    }

    #[test]
    fn grows_and_keeps_everything() {
        let mut t = Table::new();
        for i in 0..50_000u32 {
            let k = i.to_le_bytes();
            t.insert(h(&k), &k, &k, 0, None);
        }
        assert!(t.slots.len() >= 100_000);
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
        assert!(
            t.capacity() < before && t.capacity() >= 4 * t.len() && t.capacity() <= 8 * t.len()
        );
        assert!(!t.shrink(), "load is 1/4..1/2 now");
        for i in 48_000..50_000u32 {
            let k = i.to_le_bytes();
            let s = t.find(h(&k), &k).unwrap();
            assert_eq!(t.value(s), &k);
        }
        // Resizing a value keeps the key; empty values and keys work.
        let s = t
            .find(h(&49_007u32.to_le_bytes()), &49_007u32.to_le_bytes())
            .unwrap();
        t.set_value(s, b"a longer value than before");
        let s = t
            .find(h(&49_007u32.to_le_bytes()), &49_007u32.to_le_bytes())
            .unwrap();
        assert_eq!(t.value(s), b"a longer value than before");
        t.insert(h(b""), b"", b"", 0, None);
        let s = t.find(h(b""), b"").unwrap();
        assert_eq!(t.value(s), b"");
    }

    #[test]
    fn meta_and_expiry_survive_resize_shift_and_growth() {
        let mut t = Table::new();
        for i in 0..5_000u32 {
            let k = i.to_le_bytes();
            let ttl = (i % 3 == 0).then_some(1_000 + i as u64);
            t.insert(h(&k), &k, b"v", (i % 100) as Meta, ttl);
        }
        // Resize some values and remove others (backward shifts move slots).
        for i in (0..5_000u32).step_by(5) {
            let k = i.to_le_bytes();
            let s = t.find(h(&k), &k).unwrap();
            if i % 2 == 0 {
                t.set_value(s, b"a much longer value than v");
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
            assert_eq!(t.find_hash(h(&k)), Some(s));
            assert_eq!(t.meta(s) & META_POLICY, (i % 100) as Meta);
            assert_eq!(t.key(s), &k);
            if i % 3 == 0 {
                assert_ne!(t.meta(s) & META_TTL, 0);
                assert_eq!(t.expire_at(s), 1_000 + i as u64);
            } else {
                assert_eq!(t.meta(s) & META_TTL, 0);
            }
        }
        let k = 1u32.to_le_bytes();
        let s = t.find(h(&k), &k).unwrap();
        t.set_expire(s, Some(77));
        assert_eq!((t.meta(s) & META_TTL, t.expire_at(s)), (META_TTL, 77));
        t.set_expire(s, None);
        assert_eq!(t.meta(s) & META_TTL, 0);
        t.set_meta(s, 5);
        assert_eq!(t.meta_at(s), Some(5));
        assert_eq!(t.hash_at(s), h(&k) & HASH_MASK);
    }
}
