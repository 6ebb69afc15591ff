//! Eviction policies: their names and the per-key metadata each keeps in
//! the entry's 15 policy bits. Pure data and arithmetic; the store
//! ([`super::Store`]) decides when to evict and does the removing, and
//! SIEVE's hand is the table's ([`super::table::Table::sieve_victim`]) over
//! the arena's page order ([`super::arena`]). It knows nothing of sockets,
//! shards or configuration.
//!
//! | policy | per-key metadata | victim |
//! |---|---|---|
//! | `noeviction` | none | none: writes past the limit fail (OOM) |
//! | `allkeys-lru`, `volatile-lru` | 15-bit clock of the last access, seconds (wraps after 9 h) | the idlest of 5 sampled keys |
//! | `allkeys-lfu`, `volatile-lfu` | 8-bit logarithmic counter + 7-bit minute clock for its decay (Redis's LFU, lfu-log-factor 10, decay 1/min; the clock wraps after 127 minutes) | the least frequent of 5 sampled keys |
//! | `allkeys-random`, `volatile-random` | none | one sampled key |
//! | `volatile-ttl` | none (reads the expiry) | the sampled key that expires soonest |
//! | `sieve` | 1 visited bit in the entry's metadata (+ 8 B per 16 KiB page for the arena's page order: 0.07 B/key for seed entries) | SIEVE (NSDI '24): the first unvisited key from the hand on |
//!
//! The policy bits live in the entry's 16-bit metadata field beside the
//! has-TTL bit, so no policy costs memory beyond it. A *compact* entry (a
//! small key with a TTL, see [`super::table`]) keeps only the top 8 of the
//! 15 policy bits, so each policy puts what matters most there: LRU keeps
//! the low 8 bits of the access's second (exact idle time up to 256 s,
//! modulo 256 s beyond), LFU keeps its counter and loses the minute of its
//! last access (the counter of such a key does not decay: it expires
//! instead), SIEVE keeps its bit. `volatile-*` consider only keys with a
//! TTL; with none, a write past the limit fails with OOM, as in Redis.
//!
//! SIEVE's order is the arena's (see [`super::arena`]): new keys go to
//! their class's newest page, the hand walks the pages oldest first,
//! clearing visited bits and packing the keys it keeps into a page behind
//! it, and evicts the first unvisited key. How it got there:
//! * a queue of the keys' 31 hash bits in insertion order (rounds 1–7):
//!   SIEVE exactly, but 4 B/key outside the entry (153 B/key on the seed's
//!   data set against the target's 150);
//! * the hand walking the table's slots in a fixed order, new keys landing
//!   at pseudo-random points (round 4), or the arena in address order, a
//!   new key taking the chunk just freed (round 7): no memory, but CLOCK
//!   rather than SIEVE (a new key sits just behind the hand and gets a
//!   whole turn), and it missed more — 0.174 and 0.172 against the queue's
//!   0.152 on the 10 M-key cache-aside benchmark;
//! * the page order (round 8): 149 B/key, and a miss ratio of 0.145, below
//!   the queue's (docs/performance.md §9).

use super::table::Meta;

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

/// SIEVE's visited bit: among the top eight policy bits, which a compact
/// entry keeps (see [`super::table`]).
pub const SIEVE_VISITED: Meta = 1 << 14;
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
}
