//! Eviction policies: their names, the per-key metadata each keeps in the
//! entry's 15 policy bits, and SIEVE's hand. Pure data and
//! arithmetic; the store ([`super::Store`]) decides when to evict and does
//! the removing. It knows nothing of sockets, shards or configuration.
//!
//! | policy | per-key metadata | victim |
//! |---|---|---|
//! | `noeviction` | none | none: writes past the limit fail (OOM) |
//! | `allkeys-lru`, `volatile-lru` | 15-bit clock of the last access, seconds (wraps after 9 h) | the idlest of 5 sampled keys |
//! | `allkeys-lfu`, `volatile-lfu` | 8-bit logarithmic counter + 7-bit minute clock for its decay (Redis's LFU, lfu-log-factor 10, decay 1/min) | the least frequent of 5 sampled keys |
//! | `allkeys-random`, `volatile-random` | none | one sampled key |
//! | `volatile-ttl` | none (reads the expiry) | the sampled key that expires soonest |
//! | `sieve` | 1 visited bit in the entry's metadata (no queue) | the first unvisited key from the hand on, the hand visiting the slots in a fixed cyclic order |
//!
//! The policy bits live in the entry's 16-bit metadata field beside the
//! has-TTL bit, so no policy costs memory beyond it: 0 bytes of eviction
//! metadata per key for every policy. `volatile-*` consider only keys with
//! a TTL; with none, a write past the limit fails with OOM, as in Redis.
//!
//! **`sieve`** is SIEVE (Zhang et al., NSDI '24) with a fixed cyclic order
//! of the table's slots standing in for its insertion-ordered queue: a hit
//! sets the key's visited bit; to evict, the hand goes on from where it
//! stopped, clears the visited bits it passes (those keys stay where they
//! are, as in SIEVE) and evicts the first unvisited key. The order is slot
//! `i`, `i + s`, `i + 2s`, … modulo the slot count, for a stride `s` ≈
//! 0.618 × the slot count co-prime with it, so a cycle visits every slot
//! once; a resize scales the hand and picks a new stride. Not the plain slot
//! order: a hand walking it evicts a contiguous region, which leaves the
//! table empty behind the hand and packed ahead of it, and at load 0.92
//! linear probing's runs there grow without bound (measured: 0.05 M SET/s
//! instead of 5 M). A stride spreads the evictions evenly.
//!
//! Strictly, that is not SIEVE: SIEVE inserts a new key at the head of its
//! queue, so the hand reaches it only after every key between the hand and
//! the head, while here a new key lands at a pseudo-random point of the
//! hand's cycle (like CLOCK with insertion at a random position): it may be
//! examined soon after its insertion, or only after a whole cycle. What it
//! keeps from SIEVE: retained keys are not moved, and one bit per key. What
//! it gains: no 4-byte queue entry per key (a queue of 31-bit hashes
//! before), no lookup per step (the hand's next slots are known, so their
//! slots and entries are prefetched ahead), and nothing to maintain on
//! insert or delete. The miss ratio against the queue, measured on the
//! cache-aside benchmark, is in docs/performance.md §9.

use super::table::{Meta, Table, META_POLICY, META_TTL};

/// An eviction policy, with Redis's names plus `sieve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Refuse writes past the limit.
    #[default]
    NoEviction,
    /// Sampled LRU over every key.
    AllKeysLru,
    /// Sampled LFU over every key.
    AllKeysLfu,
    /// A random key.
    AllKeysRandom,
    /// Sampled LRU over keys with a TTL.
    VolatileLru,
    /// Sampled LFU over keys with a TTL.
    VolatileLfu,
    /// A random key with a TTL.
    VolatileRandom,
    /// The sampled key with a TTL that expires soonest.
    VolatileTtl,
    /// SIEVE (Zhang et al., NSDI '24) over every key.
    Sieve,
}

/// Every policy, in the order CONFIG's error message lists them.
pub const POLICIES: [Policy; 9] = [
    Policy::VolatileLru,
    Policy::VolatileLfu,
    Policy::VolatileRandom,
    Policy::VolatileTtl,
    Policy::AllKeysLru,
    Policy::AllKeysLfu,
    Policy::AllKeysRandom,
    Policy::NoEviction,
    Policy::Sieve,
];

impl Policy {
    /// The configuration name (`allkeys-lru`, …).
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::AllKeysLfu => "allkeys-lfu",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
            Policy::Sieve => "sieve",
        }
    }

    /// Parses a name, ignoring ASCII case.
    pub fn parse(name: &str) -> Option<Policy> {
        POLICIES
            .iter()
            .copied()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Only keys with a TTL are candidates.
    pub fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    /// Accesses update the key's metadata.
    pub fn tracks_access(self) -> bool {
        matches!(
            self,
            Policy::AllKeysLru
                | Policy::VolatileLru
                | Policy::AllKeysLfu
                | Policy::VolatileLfu
                | Policy::Sieve
        )
    }

    fn is_lru(self) -> bool {
        matches!(self, Policy::AllKeysLru | Policy::VolatileLru)
    }

    fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    /// The policy bits of a key just written.
    #[inline]
    pub fn initial(self, now_ms: u64) -> Meta {
        if self.is_lru() {
            lru_clock(now_ms)
        } else if self.is_lfu() {
            lfu_meta(now_ms, LFU_INIT_VAL)
        } else {
            0
        }
    }

    /// The policy bits after an access to a key whose bits were `bits`.
    #[inline]
    pub fn touched(self, bits: Meta, now_ms: u64, rng: &mut u64) -> Meta {
        if self.is_lru() {
            lru_clock(now_ms)
        } else if self.is_lfu() {
            let c = lfu_decayed(bits, now_ms);
            lfu_meta(now_ms, lfu_log_incr(c, rng))
        } else if self == Policy::Sieve {
            bits | SIEVE_VISITED
        } else {
            bits
        }
    }

    /// How good a victim a key is (higher: evict first), for the sampled
    /// policies. `expire_at` is read only by `volatile-ttl`.
    #[inline]
    pub fn score(self, bits: Meta, now_ms: u64, expire_at: impl FnOnce() -> u64) -> u64 {
        if self.is_lru() {
            (lru_clock(now_ms).wrapping_sub(bits) & META_POLICY) as u64
        } else if self.is_lfu() {
            255 - lfu_decayed(bits, now_ms) as u64
        } else if self == Policy::VolatileTtl {
            u64::MAX - expire_at()
        } else {
            0
        }
    }

    /// Keys sampled per eviction (Redis's maxmemory-samples default).
    pub fn samples(self) -> usize {
        match self {
            Policy::AllKeysRandom | Policy::VolatileRandom => 1,
            _ => 5,
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// SIEVE's visited bit.
pub const SIEVE_VISITED: Meta = 1;
/// Redis's LFU_INIT_VAL: a new key's counter.
const LFU_INIT_VAL: u8 = 5;
/// Redis's default lfu-log-factor.
const LFU_LOG_FACTOR: u64 = 10;

#[inline]
fn lru_clock(now_ms: u64) -> Meta {
    ((now_ms / 1000) as Meta) & META_POLICY
}

#[inline]
fn lfu_minutes(now_ms: u64) -> Meta {
    ((now_ms / 60_000) & 0x7F) as Meta
}

#[inline]
fn lfu_meta(now_ms: u64, counter: u8) -> Meta {
    (lfu_minutes(now_ms) << 8) | counter as Meta
}

/// The counter decayed by one per minute since its last access.
#[inline]
fn lfu_decayed(bits: Meta, now_ms: u64) -> u8 {
    let counter = (bits & 0xFF) as u8;
    let then = (bits >> 8) & 0x7F;
    let elapsed = lfu_minutes(now_ms).wrapping_sub(then) & 0x7F;
    counter.saturating_sub(elapsed.min(255) as u8)
}

/// Redis's LFULogIncr: increments with probability 1/((c-5)*10+1).
#[inline]
fn lfu_log_incr(c: u8, rng: &mut u64) -> u8 {
    if c == 255 {
        return 255;
    }
    let base = c.saturating_sub(LFU_INIT_VAL) as u64;
    let r = next_random(rng);
    // P(increment) = 1 / (base * factor + 1), without floating point.
    if r % (base * LFU_LOG_FACTOR + 1) == 0 {
        c + 1
    } else {
        c
    }
}

/// xorshift64*: the store's source of sampling randomness.
#[inline]
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// How many steps ahead of the hand SIEVE starts loading slots, and entries.
const PREFETCH_SLOTS_AHEAD: usize = 16;
const PREFETCH_ENTRIES_AHEAD: usize = 8;

/// SIEVE's hand over a table's slots. There is no queue: the hand visits
/// the slots in a fixed cyclic order, a stride co-prime with the slot count
/// at a time, and the visited bit is in each entry's metadata, so the
/// policy costs no memory per key (see the module docs for why a stride,
/// and how this differs from SIEVE's insertion-ordered queue).
#[derive(Default)]
pub struct Sieve {
    /// The slot the hand is at.
    hand: usize,
    /// The table's slot count the hand and stride are for (a resize scales
    /// the hand to the same place and picks a new stride).
    cap: usize,
    /// The hand's step: co-prime with `cap`, so a cycle visits every slot.
    stride: usize,
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Sieve {
    /// A hand at the start of `table`, every visited bit cleared.
    pub fn from_table(table: &mut Table) -> Sieve {
        for i in 0..table.capacity() {
            if let Some(m) = table.meta_at(i) {
                table.set_meta(i, m & META_TTL);
            }
        }
        let mut s = Sieve::default();
        s.fit(table.capacity());
        s
    }

    /// Fits the hand and stride to `n` slots.
    fn fit(&mut self, n: usize) {
        if self.cap == n {
            return;
        }
        self.hand = (self.hand as u128 * n as u128 / self.cap.max(1) as u128) as usize % n.max(1);
        self.cap = n;
        // About n/φ: consecutive steps land far apart, so evictions thin the
        // table evenly (a hand walking slots in order would empty one region
        // and pack the rest, and linear probing's runs would grow without
        // bound there).
        let mut stride = ((n as u128 * 618_034 / 1_000_000) as usize).max(1);
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        self.stride = stride % n.max(1);
    }

    #[inline]
    fn ahead(&self, i: usize, k: usize) -> usize {
        ((i as u128 + k as u128 * self.stride as u128) % self.cap as u128) as usize
    }

    /// Picks the next victim, clearing visited bits on the way; `protect`
    /// (a [`super::table::slot_hash`]) is never chosen. Returns its slot;
    /// the hand moves on past it (the key the removal shifts into that slot
    /// waits for the next cycle, and the slots ahead, whose entries are
    /// being loaded, stay next). At most two cycles over the slots (the
    /// first clears every bit).
    pub fn victim(&mut self, table: &mut Table, protect: u64) -> Option<usize> {
        let n = table.capacity();
        if table.is_empty() {
            return None;
        }
        self.fit(n);
        let mut i = self.hand;
        for _ in 0..2 * n + 1 {
            // The hand's next positions are known: load their slots, then
            // (once those are in) their entries, so the misses overlap.
            table.prefetch_index(self.ahead(i, PREFETCH_SLOTS_AHEAD));
            table.prefetch_entry_at(self.ahead(i, PREFETCH_ENTRIES_AHEAD));
            if let Some(m) = table.meta_at(i) {
                if table.hash_at(i) != protect {
                    if m & SIEVE_VISITED == 0 {
                        self.hand = i + self.stride;
                        if self.hand >= n {
                            self.hand -= n;
                        }
                        return Some(i);
                    }
                    table.set_meta(i, m & !SIEVE_VISITED);
                }
            }
            i += self.stride;
            if i >= n {
                i -= n;
            }
        }
        self.hand = i;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::table::slot_hash;

    #[test]
    fn names_round_trip() {
        for p in POLICIES {
            assert_eq!(Policy::parse(p.name()), Some(p));
            assert_eq!(Policy::parse(&p.name().to_uppercase()), Some(p));
        }
        assert_eq!(Policy::parse("lru"), None);
        assert_eq!(Policy::default(), Policy::NoEviction);
    }

    #[test]
    fn lru_scores_idle_time() {
        let p = Policy::AllKeysLru;
        let old = p.initial(1_000_000);
        let new = p.initial(1_060_000);
        let now = 1_070_000;
        assert!(p.score(old, now, || 0) > p.score(new, now, || 0));
        assert_eq!(p.score(new, now, || 0), 10);
    }

    #[test]
    fn lfu_counts_logarithmically_and_decays() {
        let p = Policy::AllKeysLfu;
        let mut rng = 0x1234_5678_9ABC_DEF1;
        let mut hot = p.initial(0);
        for _ in 0..10_000 {
            hot = p.touched(hot, 0, &mut rng);
        }
        let cold = p.touched(p.initial(0), 0, &mut rng);
        let (hc, cc) = (lfu_decayed(hot, 0), lfu_decayed(cold, 0));
        // Logarithmic: 10 000 hits give a counter well below 255 but far above 5.
        assert!(hc > 20 && hc < 255, "{hc}");
        assert!(cc <= 6);
        assert!(p.score(cold, 0, || 0) > p.score(hot, 0, || 0));
        // Ten minutes later the counter decayed by ten.
        assert_eq!(lfu_decayed(hot, 600_000), hc - 10);
    }

    #[test]
    fn sieve_keeps_visited_keys_for_a_cycle() {
        let mut t = Table::new();
        let h = |i: u32| crate::routing::key_hash(&i.to_le_bytes());
        for i in 0..10u32 {
            t.insert(h(i), &i.to_le_bytes(), b"v", 0, None).unwrap();
        }
        let mut s = Sieve::from_table(&mut t);
        // Visit 0, 1 and 3: the first seven victims are the other keys (in
        // the hand's order), then (the hand having cleared their bits) one
        // of 0, 1 and 3.
        for i in [0u32, 1, 3] {
            let slot = t.find(h(i), &i.to_le_bytes()).unwrap();
            let m = t.meta(slot);
            t.set_meta(slot, Policy::Sieve.touched(m, 0, &mut 1));
        }
        let mut victims = Vec::new();
        for _ in 0..8 {
            let slot = s.victim(&mut t, u64::MAX).unwrap();
            victims.push(u32::from_le_bytes(t.key(slot).try_into().unwrap()));
            t.remove(slot);
        }
        let mut first: Vec<u32> = victims[..7].to_vec();
        first.sort();
        assert_eq!(first, vec![2, 4, 5, 6, 7, 8, 9]);
        assert!([0, 1, 3].contains(&victims[7]), "{victims:?}");
        // The protected key is passed over; with only it left, no victim.
        let left: Vec<u32> = [0u32, 1, 3]
            .into_iter()
            .filter(|&k| k != victims[7])
            .collect();
        let (a, b) = (left[0], left[1]);
        let slot = s.victim(&mut t, slot_hash(h(a))).unwrap();
        assert_eq!(t.key(slot), &b.to_le_bytes());
        t.remove(slot);
        assert!(s.victim(&mut t, slot_hash(h(a))).is_none());
        let slot = s.victim(&mut t, u64::MAX).unwrap();
        t.remove(slot);
        assert!(s.victim(&mut t, u64::MAX).is_none(), "empty");
    }

    /// Through inserts that grow the table, hits and evictions, the hand
    /// keeps evicting unvisited keys and never loops: a hot set survives.
    /// At the limit the table stays at its highest load (0.92), as the
    /// store's does; evictions must thin it evenly, or linear probing's
    /// runs grow long where they do not (a hand walking the slots in order
    /// empties the region behind it and packs the rest: runs of thousands).
    #[test]
    fn sieve_hand_survives_resizes_keeps_a_hot_set_and_thins_evenly() {
        let mut t = Table::new();
        let mut s = Sieve::from_table(&mut t);
        let key = |i: u32| i.to_le_bytes();
        let h = |i: u32| crate::routing::key_hash(&key(i));
        let mut evicted = 0;
        let mut longest = 0;
        for i in 0..100_000u32 {
            // Room for about 8 000 keys: past that, evict instead of growing.
            if t.len() >= 8_000 && t.growth_bytes() > 0 {
                let slot = s.victim(&mut t, u64::MAX).unwrap();
                t.remove(slot);
                evicted += 1;
            }
            t.insert(h(i), &key(i), b"v", 0, None).unwrap();
            // Keys 0..100 are read after every write.
            let hot = i % 100;
            if let Some(slot) = t.find(h(hot), &key(hot)) {
                let m = t.meta(slot);
                t.set_meta(slot, Policy::Sieve.touched(m, 0, &mut 1));
            }
            if i % 1000 == 0 {
                longest = longest.max(t.longest_run());
            }
        }
        assert!(
            evicted > 90_000,
            "{evicted} evicted: the table grew instead"
        );
        assert!(t.len() * 100 >= t.capacity() * 88, "load 0.92 at the limit");
        let kept = (0..100u32)
            .filter(|&k| t.find(h(k), &key(k)).is_some())
            .count();
        assert!(kept >= 95, "{kept} hot keys kept");
        // Runs as uniform random keys make at load 0.92 in ~8 700 slots (the
        // longest ~1 500); a hand stepping one slot at a time (stride 1)
        // makes the table spill over its end and grow past the limit.
        assert!(longest < 4_000, "a run of {longest} full slots");
    }
}
