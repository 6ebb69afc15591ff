//! Eviction policies: their names, the per-key metadata each keeps in the
//! entry's 15 policy bits, and the SIEVE queue. Pure data and
//! arithmetic; the store ([`super::Store`]) decides when to evict and does
//! the removing. It knows nothing of sockets, shards or configuration.
//!
//! | policy | per-key metadata | victim |
//! |---|---|---|
//! | `noeviction` | none | none: writes past the limit fail (OOM) |
//! | `allkeys-lru`, `volatile-lru` | 15-bit clock of the last access, seconds (wraps after 9 h) | the idlest of 5 sampled keys |
//! | `allkeys-lfu`, `volatile-lfu` | 8-bit logarithmic counter + 7-bit minute clock for its decay (Redis's LFU, lfu-log-factor 10, decay 1/min; the clock wraps after 127 minutes) | the least frequent of 5 sampled keys |
//! | `allkeys-random`, `volatile-random` | none | one sampled key |
//! | `volatile-ttl` | none (reads the expiry) | the sampled key that expires soonest |
//! | `sieve` | 1 visited bit in the entry's metadata + 4 bytes in the queue (its 31 stored hash bits) | SIEVE (NSDI '24): the first unvisited key from the hand on |
//!
//! The policy bits live in the entry's 16-bit metadata field beside the
//! has-TTL bit, so every policy costs no memory beyond it, except SIEVE's
//! queue. A *compact* entry (a small key with a TTL, see [`super::table`])
//! keeps only the top 8 of the 15 policy bits, so each policy puts what
//! matters most there: LRU keeps the low 8 bits of the access's second
//! (exact idle time up to 256 s, modulo 256 s beyond), LFU keeps its
//! counter and loses the minute of its last access (the counter of such a
//! key does not decay: it expires instead), SIEVE keeps both its bits. `volatile-*`
//! consider only keys with a TTL; with none, a write past the limit fails
//! with OOM, as in Redis.
//!
//! SIEVE keeps keys in insertion order (a `Vec` of hashes, oldest first).
//! The hand walks from the oldest towards the newest: a visited key is kept
//! in place and its bit cleared, the first unvisited one is evicted; at the
//! newest end the hand wraps to the oldest. Removal in the middle of the
//! queue is a tombstone, swept out when tombstones are half the queue.
//! Keys deleted or expired by other means leave stale entries that the hand
//! drops when it reaches them; if stale entries make the queue more than
//! twice the key count, it is compacted (and de-duplicated) in one pass.
//!
//! The queue is the one per-key cost outside the entry (4 B). Tried without
//! it — the visited bit alone, the hand visiting the table's slots in a
//! fixed cyclic order, new keys landing at pseudo-random points of it (so
//! CLOCK rather than SIEVE) — and not kept: on the 10 M-key cache-aside
//! benchmark its miss ratio was 0.174 against the queue's 0.153, at 1.4× the
//! server's CPU per request (docs/performance.md §9). The hand must not walk
//! the slots one by one: evicting a contiguous region packs the rest of a
//! table at load 0.92 until linear probing's runs explode.
//! Tried too (round 7): the hand walking the arena in address order, where a
//! key written after an eviction takes the chunk just freed. It costs no
//! memory (149 B/key with TTLs, against the queue's 153) but missed more:
//! 0.172 against 0.152 on the same benchmark.

use super::table::{Meta, Table, META_TTL};

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
            lru_idle(bits, now_ms)
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

/// SIEVE's visited bit. The policy bits a compact entry keeps are the top
/// eight (see [`super::table`]): SIEVE's two bits are among them.
pub const SIEVE_VISITED: Meta = 1 << 14;
/// SIEVE's mark bit, used only while de-duplicating the queue.
const SIEVE_MARK: Meta = 1 << 13;
/// Redis's LFU_INIT_VAL: a new key's counter.
const LFU_INIT_VAL: u8 = 5;
/// Redis's default lfu-log-factor.
const LFU_LOG_FACTOR: u64 = 10;

/// Span of the LRU clock: 127 × 256 s (about 9 h).
const LRU_SPAN: u64 = 127 * 256;

/// The LRU clock, seconds modulo [`LRU_SPAN`], laid out for the compact
/// entries, which keep only the top 8 of the 15 policy bits: the low 8
/// bits of the seconds on top (bits 7–14), the rest below as 1..=127. A
/// compact key's clock is then exact to the second modulo 256 s (its low 7
/// bits read as 0, which a full clock never has).
#[inline]
fn lru_clock(now_ms: u64) -> Meta {
    let t = now_ms / 1000 % LRU_SPAN;
    ((t & 0xFF) << 7 | ((t >> 8) + 1)) as Meta
}

/// Seconds since the access an LRU clock `bits` records: exact up to 9 h
/// for a full clock; for a compact key's (the low 8 bits of its seconds
/// only), exact up to 256 s and modulo 256 s beyond. Sampled LRU only
/// tells victims apart near the cache's eviction age, which is seconds to
/// minutes in a cache turning over millions of keys a second: kept to
/// 128 s instead, a compact key's clock made `allkeys-lru` pick as
/// `allkeys-random` did there (docs/performance.md §9, round 6).
#[inline]
fn lru_idle(bits: Meta, now_ms: u64) -> u64 {
    let now = now_ms / 1000 % LRU_SPAN;
    let low = (bits >> 7) as u64;
    if bits & 0x7F == 0 {
        return ((now & 0xFF) + 256 - low) % 256;
    }
    let then = ((bits & 0x7F) as u64 - 1) << 8 | low;
    (now + LRU_SPAN - then) % LRU_SPAN
}

/// The LFU minute clock: 1..=127 (it wraps after 127 minutes); 0 in a
/// key's bits means "not known" (a compact entry keeps only the counter).
#[inline]
fn lfu_minutes(now_ms: u64) -> Meta {
    ((now_ms / 60_000) % 127 + 1) as Meta
}

/// LFU's bits: the counter on top (bits 7–14: the eight a compact entry
/// keeps), the minute clock below.
#[inline]
fn lfu_meta(now_ms: u64, counter: u8) -> Meta {
    (counter as Meta) << 7 | lfu_minutes(now_ms)
}

/// The counter decayed by one per minute since its last access (not at all
/// when the minute is not known).
#[inline]
fn lfu_decayed(bits: Meta, now_ms: u64) -> u8 {
    let counter = (bits >> 7) as u8;
    let then = bits & 0x7F;
    if then == 0 {
        return counter;
    }
    let elapsed = (lfu_minutes(now_ms) + 127 - then) % 127;
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

/// A queue entry that was evicted or found stale.
const TOMB: u32 = u32::MAX;
/// How far ahead of the hand SIEVE prefetches slots, and entries.
const PREFETCH_SLOTS_AHEAD: usize = 8;
const PREFETCH_ENTRIES_AHEAD: usize = 4;

/// The SIEVE queue: the keys' 31 stored hash bits
/// ([`super::table::slot_hash`]) in insertion order, oldest first.
#[derive(Default)]
pub struct Sieve {
    queue: Vec<u32>,
    hand: usize,
    tombs: usize,
}

impl Sieve {
    /// A queue holding every key of `table`, in slot order (the insertion
    /// order of keys written before SIEVE was chosen is not known).
    pub fn from_table(table: &mut Table) -> Sieve {
        let mut queue = Vec::with_capacity(table.len());
        for i in 0..table.capacity() {
            if let Some(m) = table.meta_at(i) {
                queue.push(table.hash_at(i) as u32);
                table.set_meta(i, m & META_TTL);
            }
        }
        Sieve {
            queue,
            hand: 0,
            tombs: 0,
        }
    }

    /// Entries in the queue (live, stale and tombstones).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes the queue holds (its capacity).
    pub fn bytes(&self) -> usize {
        self.queue.capacity() * 4
    }

    /// Appends a newly inserted key (the newest end).
    #[inline]
    pub fn push(&mut self, hash: u64, table: &mut Table) {
        self.queue.push(hash as u32);
        if self.queue.len() > 2 * table.len() + 1024 {
            self.dedup(table);
        }
    }

    /// Picks the next victim, clearing visited bits on the way; `protect`
    /// (a [`super::table::slot_hash`]) is never chosen. Returns its slot.
    pub fn victim(&mut self, table: &mut Table, protect: u64) -> Option<usize> {
        let mut steps = 2 * self.queue.len() + 2;
        while steps > 0 {
            steps -= 1;
            if self.hand >= self.queue.len() {
                self.hand = 0;
                if self.queue.is_empty() {
                    return None;
                }
            }
            // The hand walks the queue in order: load the slots of the keys
            // it will reach a few steps on, and the entries of nearer ones
            // (whose slots should be in by now), so its cache misses overlap.
            if let Some(&ahead) = self.queue.get(self.hand + PREFETCH_SLOTS_AHEAD) {
                if ahead != TOMB {
                    table.prefetch_slot_of(ahead as u64);
                }
            }
            if let Some(&ahead) = self.queue.get(self.hand + PREFETCH_ENTRIES_AHEAD) {
                if ahead != TOMB {
                    table.prefetch_entry_of(ahead as u64);
                }
            }
            let h = self.queue[self.hand];
            if h == TOMB {
                self.hand += 1;
                continue;
            }
            match table.find_hash(h as u64) {
                None => self.bury(),
                Some(_) if h as u64 == protect => self.hand += 1,
                Some(slot) => {
                    let m = table.meta(slot);
                    if m & SIEVE_VISITED != 0 {
                        table.set_meta(slot, m & !SIEVE_VISITED);
                        self.hand += 1;
                    } else {
                        self.bury();
                        return Some(slot);
                    }
                }
            }
        }
        None
    }

    /// Turns the entry under the hand into a tombstone and moves on;
    /// sweeps tombstones out once they are half the queue.
    fn bury(&mut self) {
        self.queue[self.hand] = TOMB;
        self.hand += 1;
        self.tombs += 1;
        if self.tombs * 2 > self.queue.len() {
            let hand = self.hand;
            let mut kept_before_hand = 0;
            let mut w = 0;
            for r in 0..self.queue.len() {
                let h = self.queue[r];
                if h != TOMB {
                    self.queue[w] = h;
                    w += 1;
                    if r < hand {
                        kept_before_hand += 1;
                    }
                }
            }
            self.queue.truncate(w);
            self.hand = kept_before_hand;
            self.tombs = 0;
        }
    }

    /// Drops stale entries and duplicates (a key deleted and written again
    /// is queued twice; its oldest entry is kept), in order.
    fn dedup(&mut self, table: &mut Table) {
        let hand = self.hand;
        let mut kept_before_hand = 0;
        let mut w = 0;
        for r in 0..self.queue.len() {
            let h = self.queue[r];
            if h == TOMB {
                continue;
            }
            let Some(slot) = table.find_hash(h as u64) else {
                continue;
            };
            let m = table.meta(slot);
            if m & SIEVE_MARK != 0 {
                continue;
            }
            table.set_meta(slot, m | SIEVE_MARK);
            self.queue[w] = h;
            w += 1;
            if r < hand {
                kept_before_hand += 1;
            }
        }
        self.queue.truncate(w);
        for &h in &self.queue {
            if let Some(slot) = table.find_hash(h as u64) {
                let m = table.meta(slot);
                table.set_meta(slot, m & !SIEVE_MARK);
            }
        }
        self.hand = kept_before_hand;
        self.tombs = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(p.score(p.initial(now), now, || 0), 0);
        // Exact up to the clock's span (~9 h), across its wrap.
        for at in [0u64, 1_000, 32_511_000, 32_512_000, 1_764_115_200_000] {
            for idle in [0u64, 1, 255, 256, 300, 32_000] {
                let m = p.initial(at);
                assert_ne!(m & 0x7F, 0, "a full clock is never compact");
                assert_eq!(p.score(m, at + idle * 1000, || 0), idle, "{at} {idle}");
                // A compact entry keeps the top 8 bits: the seconds
                // modulo 256.
                let compact = m & !0x7F;
                assert_eq!(p.score(compact, at + idle * 1000, || 0), idle % 256);
            }
        }
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
    fn sieve_keeps_visited_and_evicts_in_insertion_order() {
        let mut t = Table::new();
        let mut s = Sieve::default();
        let h = |i: u32| crate::routing::key_hash(&i.to_le_bytes());
        for i in 0..10u32 {
            t.insert(h(i), &i.to_le_bytes(), b"v", 0, None).unwrap();
            s.push(super::super::table::slot_hash(h(i)), &mut t);
        }
        // Visit 0, 1 and 3: the first victims are 2, 4, 5, then (after the
        // hand wraps and finds 0, 1, 3 cleared) 0.
        for i in [0u32, 1, 3] {
            let slot = t.find(h(i), &i.to_le_bytes()).unwrap();
            let m = t.meta(slot);
            t.set_meta(slot, Policy::Sieve.touched(m, 0, &mut 1));
        }
        let mut order = Vec::new();
        for _ in 0..8 {
            let slot = s.victim(&mut t, u64::MAX).unwrap();
            let k = u32::from_le_bytes(t.key(slot).try_into().unwrap());
            order.push(k);
            t.remove(slot);
        }
        assert_eq!(order, vec![2, 4, 5, 6, 7, 8, 9, 0]);
        // A stale entry (deleted behind the queue's back) is skipped.
        let slot = t.find(h(1), &1u32.to_le_bytes()).unwrap();
        t.remove(slot);
        let slot = s.victim(&mut t, u64::MAX).unwrap();
        assert_eq!(t.key(slot), &3u32.to_le_bytes());
        t.remove(slot);
        assert!(s.victim(&mut t, u64::MAX).is_none());
    }

    #[test]
    fn sieve_queue_stays_bounded_under_churn() {
        let mut t = Table::new();
        let mut s = Sieve::default();
        for round in 0..50u32 {
            for i in 0..100u32 {
                let k = i.to_le_bytes();
                let h = crate::routing::key_hash(&k);
                if let Some(slot) = t.find(h, &k) {
                    t.remove(slot);
                }
                t.insert(h, &k, &round.to_le_bytes(), 0, None).unwrap();
                s.push(super::super::table::slot_hash(h), &mut t);
            }
        }
        assert!(s.len() <= 2 * t.len() + 1024 + 1, "{}", s.len());
        for i in 0..t.capacity() {
            if let Some(m) = t.meta_at(i) {
                assert_eq!(m & SIEVE_MARK, 0);
            }
        }
    }
}
