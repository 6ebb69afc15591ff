//! The partition: one shard's private, single-threaded key-value map with
//! expiry, eviction and memory accounting. Synchronous and I/O-free; it
//! knows nothing of sockets, executors or other shards, so it is tested
//! without an executor. Its clock comes from outside ([`Store::set_now`]),
//! so tests run it on a fake clock.
//!
//! * Keys are placed by the hash from [`crate::routing::key_hash`], computed
//!   once per operation by the caller and passed in: the store hashes a key
//!   again only to compact the arena. The table ([`table`]) is ordered open
//!   addressing keyed by that hash, so a batch can prefetch slots and
//!   entries ahead of execution.
//! * An entry is one chunk of the table's slab arena ([`arena`]) holding a
//!   3-byte header (lengths), 16 bits of metadata, the expiry when the key
//!   has (had) one (5 bytes for times from 2020 to 2054, else 8), key and
//!   value back to back: 140 bytes for a seed entry, 149 B/key with its
//!   8-byte slot. A small key with a TTL takes the compact form (a 1-byte
//!   header, 8 policy bits, 4 bytes of expiry): a seed entry with a TTL is
//!   the same 140 bytes. An insert takes a chunk
//!   from its size class; an overwrite within the class (the seed
//!   workload's same-length case) is in place.
//! * **Expiry.** A key's expiry is an absolute time in Unix milliseconds,
//!   exact, in its entry (compact, narrow or wide, see [`table`]), flagged
//!   by a has-TTL bit in its slot and metadata. The store gives its clock
//!   to the table ([`Table::set_clock`]) whenever it is set. Every access
//!   checks it (lazy expiry: for a key without TTL that is one bit test on
//!   the entry the lookup's key compare already loaded). [`Store::expire_slice`] is active
//!   expiry: it walks a cursor over the slots, a bounded number per call,
//!   reclaiming expired keys nobody touches; the shard calls it from a timer
//!   between batches.
//! * **Eviction.** With a [`Policy`] other than `noeviction`, a write that
//!   would pass the memory limit first evicts keys chosen by the policy
//!   ([`evict`]), at most [`EVICTIONS_PER_WRITE`] per write (then it
//!   proceeds, and the shard's timer evicts the rest); without a victim it
//!   fails with [`OpError::OutOfMemory`] as before.
//! * Memory accounting: [`Store::used_bytes`] is what the partition holds
//!   from the kernel: the arena's pages in use (16 KiB each, free chunks in
//!   them included; empty pages go back to the kernel), the table's slot
//!   array at its full capacity, and SIEVE's page order (8 B per page) — so
//!   it tracks RSS. A write that would take it past the limit (a new page for
//!   its size class when the class has no free chunk, or a slot array that
//!   would grow) and cannot evict fails with [`OpError::OutOfMemory`];
//!   reads, deletes and writes that do not grow the store keep working.
//!   Evicting frees chunks: a write that needs a chunk of a class evicts
//!   until that class has one or a page fits (compaction empties pages of
//!   classes with many free chunks). At the limit an insert evicts before
//!   the slot array can grow. The limit binds at page granularity: a
//!   partition below a few pages per size class in use holds little.
//!
//! * **Read-modify-write strings** (APPEND, SETRANGE, INCRBYFLOAT) build the
//!   new value in a scratch buffer the store keeps (released when it grew
//!   past 64 KiB) and store it like any write, keeping the key's TTL; their
//!   result is bounded by `max_value_len` (Redis's proto-max-bulk-len
//!   error). INCRBYFLOAT's arithmetic is C `long double` (`float`).
//! * **Databases** (RESP's SELECT; `--databases`, 16 by default). Each
//!   database is its own table, created the first time it is selected. The
//!   selected one lives in the store's own fields, so every operation works
//!   on `self.table` exactly as with one database; [`Store::select`] is one
//!   compare when the database is already selected (the shard calls it once
//!   per batch: the native protocol and DB-0 clients never switch), else a
//!   swap of a few words with the parked database. SWAPDB swaps two parked
//!   slots (O(1)); a physical id follows each table so a snapshot walking
//!   in slices is not confused by a SWAPDB between slices. The memory
//!   limit, eviction (the selected database first, then the others) and
//!   active expiry (one database per slice, in turn) span every database.
//!
//! Results are pushed into a [`ReplySink`] *while* the operation runs, so a
//! value is copied straight from the table into the reply (no intermediate
//! buffer), and `GETSET` can return the old value before it is overwritten.

mod arena;
pub mod evict;
mod float;
mod table;

/// Bytes of an arena page: the unit in which entry memory is held.
pub use arena::PAGE as PAGE_BYTES;
pub use evict::Policy;
use table::{slot_hash, Field, Table, META_POLICY, META_TTL};

use crate::op::{
    arg, format_i64, parse_i64, ExpiryArg, OpError, OpKind, OpResult, ReplySink, TtlMode,
};

/// The bytes an entry of `key_len` + `value_len` without an expiry takes
/// in the arena: its size class's chunk (5 bytes of header and metadata,
/// key, value, rounded to 4 bytes up to 256 B and to at most 1/32 above),
/// or whole pages past 16 KiB; 5 bytes more with an expiry (2020–2054). The arena
/// holds whole pages ([`Store::used_bytes`]), so this is the chunk's share.
#[inline]
pub fn entry_charge(key_len: usize, value_len: usize) -> usize {
    table::entry_charge(key_len, value_len, Field::None)
}

/// Most keys one write evicts to make room; past that it proceeds and the
/// shard's timer keeps evicting in the background.
pub const EVICTIONS_PER_WRITE: usize = 128;

/// Size limits a store enforces on each operation.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Longest key accepted, in bytes.
    pub max_key_len: usize,
    /// Longest value accepted, in bytes.
    pub max_value_len: usize,
    /// Memory budget of this partition in bytes (`usize::MAX`: none).
    pub max_memory: usize,
}

/// Counters a store keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounters {
    /// Read operations executed (GET, EXISTS, STRLEN, TTL).
    pub gets: u64,
    /// Write operations executed (PUT, the conditional/read-modify-write
    /// kinds, EXPIRE, PERSIST, GETEX).
    pub puts: u64,
    /// Deletes executed.
    pub dels: u64,
    /// Operations answered with an error.
    pub errors: u64,
    /// GETs that found their key (Redis's keyspace_hits).
    pub hits: u64,
    /// GETs that did not (keyspace_misses).
    pub misses: u64,
    /// Keys removed because their TTL passed (lazily or actively).
    pub expired_keys: u64,
    /// Keys evicted to make room.
    pub evicted_keys: u64,
}

/// What one [`Store::expire_slice`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireSlice {
    /// Slots the cursor passed.
    pub slots: usize,
    /// Keys with a TTL whose expiry was read.
    pub checked: usize,
    /// Of those, keys removed.
    pub expired: usize,
    /// The slot array shrank first (see [`Store::expire_slice`]).
    pub shrunk: bool,
}

/// The current Unix time in milliseconds (the shard's clock).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One shard's partition. `!Send` is not required here (it holds no `Rc`),
/// but by contract a `Store` is owned by exactly one shard.
pub struct Store {
    /// The selected database's table (see "Databases" in the module docs).
    table: Table,
    limits: StoreLimits,
    counters: StoreCounters,
    /// The clock, Unix ms, set from outside.
    now_ms: u64,
    policy: Policy,
    /// `policy.tracks_access()`, kept at hand for the read path.
    track: bool,
    rng: u64,
    /// Sampled eviction's probes taken ahead ([`Store::sample_victim`]).
    ahead: SampleAhead,
    /// Active expiry's position in the selected database's slot array.
    expire_cursor: usize,
    /// Keys with a TTL in the selected database.
    ttl_keys: usize,
    /// Running average of the TTL left on keys active expiry saw in the
    /// selected database, ms.
    avg_ttl_ms: u64,
    /// Keys evicted since the last [`Store::drain_evicted`] (`u16`
    /// database, `u32` length, key), kept only when a log must record
    /// evictions as deletes.
    evicted: Option<Vec<u8>>,
    /// Where APPEND, SETRANGE and INCRBYFLOAT build a new value (kept
    /// between ops unless it grew past [`SCRATCH_KEEP`]).
    scratch: Vec<u8>,
    /// The selected database (logical index) and its physical id.
    active: usize,
    active_id: u32,
    /// Every other database, by logical index: `None` at `active` and for
    /// databases never written to (created on first selection).
    parked: Vec<Option<Db>>,
    /// Sums over `parked`: keys, keys with a TTL, bytes charged, entry bytes.
    parked_len: usize,
    parked_ttl: usize,
    parked_bytes: usize,
    parked_entry: usize,
    /// The next physical id a created database gets.
    next_id: u32,
    /// The database active expiry works on next (logical index).
    expire_db: usize,
    /// Counts changes to the parked databases (a switch, a swap, a flush),
    /// so the shard knows when to republish every database's figures.
    tables_changed: u64,
}

/// A database that is not selected: its table and the state that follows
/// the table (swapped in and out of [`Store`]'s fields by `select`).
struct Db {
    table: Table,
    expire_cursor: usize,
    ttl_keys: usize,
    avg_ttl_ms: u64,
    /// Physical id: stays with the table through SWAPDB (a snapshot follows
    /// a database by it), never reused.
    id: u32,
}

impl Db {
    /// `(keys, keys with TTL, bytes charged, entry bytes)`.
    fn sums(&self) -> (usize, usize, usize, usize) {
        (
            self.table.len(),
            self.ttl_keys,
            self.table.arena_bytes() + self.table.bytes() + self.table.order_bytes(),
            self.table.arena_bytes(),
        )
    }
}

/// Default number of databases (Redis's `databases 16`).
pub const DEFAULT_DATABASES: usize = 16;
/// Most databases a store accepts (`--databases`; the persistence format
/// keeps a database index in 16 bits).
pub const MAX_DATABASES: usize = 1024;

/// What OBJECT reports about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Redis's encoding of the value: `int`, `embstr` or `raw`.
    pub encoding: &'static str,
    /// Seconds since the last access (LRU policies; 0 where not tracked).
    pub idle_secs: u64,
    /// The LFU counter, decayed (LFU policies; 0 otherwise).
    pub freq: u8,
    /// The key's value length.
    pub value_len: usize,
    /// The value as an integer, when its encoding is `int`.
    pub int_value: Option<i64>,
    /// An integer Redis would share (0..10000): its refcount is INT_MAX.
    pub small_int: bool,
    /// Where the value is (DEBUG OBJECT's `Value at:`).
    pub address: usize,
    /// Absolute expiry, Unix ms (0: none).
    pub expire_at: u64,
}

/// Redis's encoding of a string value as SET stores it: `int` when it is
/// the canonical decimal form of an `i64` (at most 20 bytes, no sign on 0,
/// no leading zeros), else `embstr` up to 44 bytes, else `raw`.
pub fn object_encoding(v: &[u8]) -> &'static str {
    let canonical_int = v.len() <= 20
        && parse_i64(v).is_some_and(|n| {
            let mut buf = [0u8; 20];
            format_i64(n, &mut buf) == v
        });
    if canonical_int {
        "int"
    } else if v.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

/// Largest scratch buffer a store keeps between read-modify-write ops.
const SCRATCH_KEEP: usize = 64 << 10;

/// Probes per eviction taken ahead, at most.
const AHEAD: usize = 8;
/// Evictions between taking a stage of probes ahead and using it: a write
/// that misses the cache evicts once, and a batch's fills come together, so
/// one eviction ahead is too close for the misses to land.
const AHEAD_DEPTH: usize = 4;

/// Sampled eviction's probes taken a few evictions ahead, so that the
/// cache misses of reading a random slot, then its entry, are waited for by
/// the requests served in between instead of by the eviction
/// ([`Store::sample_victim`]). A slot taken ahead may hold another key by
/// the time it is used (a write shifts a run by one, a resize moves
/// everything): whatever eligible key it holds then is the sample — as
/// random as the one it held. (Skipping slots whose key had changed was
/// tried: in a small table at its limit a run then reached the array's end
/// and the array grew — `the_slot_array_is_charged_and_stops_doubling_at_the_limit`
/// caught it — most likely because it steers evictions away from the
/// regions being written.)
#[derive(Default)]
struct SampleAhead {
    /// The database (physical id) and policy they were taken for.
    db: u32,
    policy: Policy,
    /// Per stage (one per eviction, round robin): random slots whose lines
    /// were prefetched [`AHEAD_DEPTH`] evictions ago, and the eligible slots
    /// found then from that stage's starts before, their entries
    /// prefetched.
    starts: [[usize; AHEAD]; AHEAD_DEPTH],
    n_starts: [usize; AHEAD_DEPTH],
    picks: [[usize; AHEAD]; AHEAD_DEPTH],
    n_picks: [usize; AHEAD_DEPTH],
    /// The stage this eviction uses.
    at: usize,
}

impl Store {
    /// An empty store with the given limits, no eviction, clock at 0.
    pub fn new(limits: StoreLimits) -> Store {
        Store {
            table: Table::new(),
            limits,
            counters: StoreCounters::default(),
            now_ms: 0,
            policy: Policy::NoEviction,
            track: false,
            rng: 0x9E37_79B9_7F4A_7C15,
            ahead: SampleAhead::default(),
            expire_cursor: 0,
            ttl_keys: 0,
            avg_ttl_ms: 0,
            evicted: None,
            scratch: Vec::new(),
            active: 0,
            active_id: 1,
            parked: (0..DEFAULT_DATABASES).map(|_| None).collect(),
            parked_len: 0,
            parked_ttl: 0,
            parked_bytes: 0,
            parked_entry: 0,
            next_id: 2,
            expire_db: 0,
            tables_changed: 0,
        }
    }

    /// An empty store with `databases` databases (1..=[`MAX_DATABASES`]).
    pub fn with_databases(limits: StoreLimits, databases: usize) -> Store {
        let mut s = Store::new(limits);
        s.parked = (0..databases.clamp(1, MAX_DATABASES))
            .map(|_| None)
            .collect();
        s
    }

    /// Number of databases.
    pub fn databases(&self) -> usize {
        self.parked.len()
    }

    /// The selected database.
    #[inline]
    pub fn db(&self) -> usize {
        self.active
    }

    /// Selects database `db` for the operations that follow (the shard calls
    /// it once per batch: the database is a property of a batch). Selecting
    /// the database already selected is one compare; another one swaps
    /// tables (no allocation, except the first time a database is used).
    /// An index out of range is ignored (callers check it).
    #[inline]
    pub fn select(&mut self, db: usize) {
        if db != self.active {
            self.switch(db);
        }
    }

    #[cold]
    fn switch(&mut self, db: usize) {
        if db >= self.parked.len() {
            return;
        }
        self.tables_changed += 1;
        let mut other = match self.parked[db].take() {
            Some(d) => {
                let (len, ttl, bytes, entry) = d.sums();
                self.parked_len -= len;
                self.parked_ttl -= ttl;
                self.parked_bytes -= bytes;
                self.parked_entry -= entry;
                d
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                let mut table = Table::new();
                table.set_ordered(self.policy == Policy::Sieve);
                Db {
                    table,
                    expire_cursor: 0,
                    ttl_keys: 0,
                    avg_ttl_ms: 0,
                    id,
                }
            }
        };
        std::mem::swap(&mut self.table, &mut other.table);
        self.table.set_clock(self.now_ms);
        std::mem::swap(&mut self.expire_cursor, &mut other.expire_cursor);
        std::mem::swap(&mut self.ttl_keys, &mut other.ttl_keys);
        std::mem::swap(&mut self.avg_ttl_ms, &mut other.avg_ttl_ms);
        std::mem::swap(&mut self.active_id, &mut other.id);
        let (len, ttl, bytes, entry) = other.sums();
        self.parked_len += len;
        self.parked_ttl += ttl;
        self.parked_bytes += bytes;
        self.parked_entry += entry;
        self.parked[self.active] = Some(other);
        self.active = db;
    }

    /// Makes room for `keys` keys in the selected database at once (see
    /// `Table::reserve_keys`): recovery calls it before loading a
    /// snapshot, whose keys come in hash order.
    pub fn reserve_keys(&mut self, keys: usize) {
        self.table.reserve_keys(keys);
    }

    /// Keys in the selected database (DBSIZE).
    pub fn db_len(&self) -> usize {
        self.table.len()
    }

    /// How many times the set of parked databases changed (see the field).
    pub fn tables_changed(&self) -> u64 {
        self.tables_changed
    }

    /// `(db, keys, keys with a TTL, avg TTL ms)` of database `db` (zeros
    /// for one never used).
    pub fn db_figures(&self, db: usize) -> (usize, usize, usize, u64) {
        if db == self.active {
            (db, self.table.len(), self.ttl_keys, self.avg_ttl_ms)
        } else {
            match self.parked.get(db) {
                Some(Some(d)) => (db, d.table.len(), d.ttl_keys, d.avg_ttl_ms),
                _ => (db, 0, 0, 0),
            }
        }
    }

    /// `(db, keys, keys with a TTL, avg TTL ms)` of every non-empty
    /// database, in index order (INFO keyspace).
    pub fn keyspace(&self) -> Vec<(usize, usize, usize, u64)> {
        let mut v = Vec::new();
        for (i, d) in self.parked.iter().enumerate() {
            if i == self.active {
                if !self.table.is_empty() {
                    v.push((i, self.table.len(), self.ttl_keys, self.avg_ttl_ms));
                }
            } else if let Some(d) = d {
                if !d.table.is_empty() {
                    v.push((i, d.table.len(), d.ttl_keys, d.avg_ttl_ms));
                }
            }
        }
        v
    }

    /// The physical id of database `db` (0: never created). It follows the
    /// table through [`Store::swap_db`].
    pub fn db_id(&self, db: usize) -> u32 {
        if db == self.active {
            self.active_id
        } else {
            self.parked
                .get(db)
                .and_then(|d| d.as_ref())
                .map_or(0, |d| d.id)
        }
    }

    /// The logical index now holding the database with physical id `id`.
    pub fn find_db_id(&self, id: u32) -> Option<usize> {
        if id == 0 {
            return None;
        }
        (0..self.parked.len()).find(|&db| self.db_id(db) == id)
    }

    /// Removes every key of database `db` (FLUSHDB).
    pub fn flush_db(&mut self, db: usize) {
        self.tables_changed += 1;
        if db == self.active {
            self.clear_active();
        } else if let Some(d) = self.parked.get_mut(db).and_then(Option::take) {
            let (len, ttl, bytes, entry) = d.sums();
            self.parked_len -= len;
            self.parked_ttl -= ttl;
            self.parked_bytes -= bytes;
            self.parked_entry -= entry;
        }
    }

    /// Swaps databases `a` and `b` (SWAPDB): O(1), whatever they hold.
    /// The selected index stays selected (it now names the other table).
    pub fn swap_db(&mut self, a: usize, b: usize) {
        let n = self.parked.len();
        if a == b || a >= n || b >= n {
            return;
        }
        let home = self.active;
        self.tables_changed += 1;
        self.parked.swap(a, b);
        if self.active == a {
            self.active = b;
        } else if self.active == b {
            self.active = a;
        }
        self.select(home);
    }

    /// MOVE: moves the key with placement hash `hash` from the selected
    /// database to `to`, with its expiry. False when it is absent here or
    /// present there.
    pub fn move_key(&mut self, hash: u64, key: &[u8], to: usize) -> bool {
        let home = self.active;
        if to == home || to >= self.parked.len() {
            return false;
        }
        let Some(slot) = self.find_live(hash, key) else {
            return false;
        };
        let value = self.table.value(slot).to_vec();
        let expire = (self.table.meta(slot) & META_TTL != 0).then(|| self.table.expire_at(slot));
        self.switch(to);
        let moved =
            self.find_live(hash, key).is_none() && self.insert_new(hash, key, &value, expire);
        self.switch(home);
        if moved {
            if let Some(slot) = self.table.find(hash, key) {
                self.remove_slot(slot);
            }
        }
        moved
    }

    /// Inserts a key known to be absent from the selected database, with the
    /// accounting (no memory check here: the write path checked, MOVE and
    /// recovery do not). False when the table's arena is exhausted.
    #[inline]
    fn insert_new(&mut self, hash: u64, key: &[u8], value: &[u8], expire: Option<u64>) -> bool {
        let meta = self.policy.initial(self.now_ms);
        if self.table.insert(hash, key, value, meta, expire).is_err() {
            return false;
        }
        if expire.is_some() {
            self.ttl_keys += 1;
        }
        true
    }

    /// OBJECT: what Redis reports about a key of the selected database,
    /// without counting an access.
    pub fn object(&mut self, hash: u64, key: &[u8]) -> Option<ObjectInfo> {
        let slot = self.find_live(hash, key)?;
        let meta = self.table.meta(slot);
        let score = self.policy.score(meta & META_POLICY, self.now_ms, || {
            self.table.expire_at(slot)
        });
        let (idle_secs, freq) = match self.policy {
            Policy::AllKeysLru | Policy::VolatileLru => (score, 0),
            Policy::AllKeysLfu | Policy::VolatileLfu => (0, 255u64.saturating_sub(score) as u8),
            _ => (0, 0),
        };
        let v = self.table.value(slot);
        let encoding = object_encoding(v);
        let int_value = (encoding == "int").then(|| parse_i64(v)).flatten();
        Some(ObjectInfo {
            encoding,
            idle_secs,
            freq,
            value_len: v.len(),
            int_value,
            small_int: int_value.is_some_and(|n| (0..10_000).contains(&n)),
            address: v.as_ptr() as usize,
            expire_at: if meta & META_TTL != 0 {
                self.table.expire_at(slot)
            } else {
                0
            },
        })
    }

    /// A random live key of the selected database (RANDOMKEY): a random
    /// slot, then the next full one; expired keys met on the way are
    /// reclaimed. Bounded: at most 64 tries of the whole probe.
    pub fn random_key(&mut self) -> Option<Vec<u8>> {
        for _ in 0..64 {
            if self.table.is_empty() {
                return None;
            }
            let cap = self.table.capacity();
            let mut i = (evict::next_random(&mut self.rng) % cap as u64) as usize;
            let slot = loop {
                if self.table.meta_at(i).is_some() {
                    break i;
                }
                i = (i + 1) % cap;
            };
            if self.table.meta(slot) & META_TTL != 0 && self.table.expire_at(slot) <= self.now_ms {
                self.remove_slot(slot);
                self.counters.expired_keys += 1;
                continue;
            }
            return Some(self.table.key(slot).to_vec());
        }
        None
    }

    /// Sets the clock (Unix ms). The shard calls it once per batch and per
    /// active-expiry slice; every expiry decision until the next call uses it.
    #[inline]
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.table.set_clock(now_ms);
    }

    /// The clock as last set.
    pub fn now(&self) -> u64 {
        self.now_ms
    }

    /// Number of keys in every database (including expired keys not yet
    /// reclaimed).
    pub fn len(&self) -> usize {
        self.table.len() + self.parked_len
    }

    /// True when the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys with a TTL, in every database.
    pub fn ttl_keys(&self) -> usize {
        self.ttl_keys + self.parked_ttl
    }

    /// Average TTL left on keys with one, as last sampled by active expiry (ms).
    pub fn avg_ttl_ms(&self) -> u64 {
        self.avg_ttl_ms
    }

    /// Bytes charged against the memory limit (INFO's `used_memory`): the
    /// arena pages holding the entries, the slot array and SIEVE's page
    /// order.
    #[inline]
    pub fn used_bytes(&self) -> usize {
        self.table.arena_bytes() + self.table.bytes() + self.policy_bytes() + self.parked_bytes
    }

    /// The entries' share of [`Store::used_bytes`]: the arena's pages in use.
    pub fn entry_bytes(&self) -> usize {
        self.table.arena_bytes() + self.parked_entry
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Changes the memory budget (CONFIG SET maxmemory). Keys over a lower
    /// budget are evicted by [`Store::evict_over_limit`], not here.
    pub fn set_max_memory(&mut self, max_memory: usize) {
        self.limits.max_memory = max_memory;
    }

    /// The eviction policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Changes the eviction policy (CONFIG SET maxmemory-policy): resets
    /// every key's policy bits, and starts or stops keeping the arenas'
    /// pages in SIEVE's order. O(keys), once per change.
    pub fn set_policy(&mut self, policy: Policy) {
        if policy == self.policy {
            return;
        }
        self.policy = policy;
        self.track = policy.tracks_access();
        let home = self.active;
        for db in 0..self.parked.len() {
            if db != home && self.parked[db].is_some() {
                self.switch(db);
                self.reset_policy_bits();
            }
        }
        self.switch_back(home);
        self.reset_policy_bits();
    }

    /// Selects `home` again after a walk over databases.
    fn switch_back(&mut self, home: usize) {
        if self.active != home {
            self.switch(home);
        }
    }

    /// The selected database's policy bits, and its arena's page order
    /// (SIEVE's), for the policy.
    fn reset_policy_bits(&mut self) {
        let policy = self.policy;
        self.table.set_ordered(policy == Policy::Sieve);
        let init = policy.initial(self.now_ms);
        for i in 0..self.table.capacity() {
            if let Some(m) = self.table.meta_at(i) {
                self.table.set_meta(i, (m & META_TTL) | init);
            }
        }
    }

    /// Bytes of eviction metadata outside the entries (SIEVE's page order).
    pub fn policy_bytes(&self) -> usize {
        self.table.order_bytes()
    }

    /// Operation counters since start.
    pub fn counters(&self) -> StoreCounters {
        self.counters
    }

    /// Removes every key of every database (FLUSHALL).
    pub fn clear(&mut self) {
        self.tables_changed += 1;
        for d in self.parked.iter_mut() {
            *d = None;
        }
        self.parked_len = 0;
        self.parked_ttl = 0;
        self.parked_bytes = 0;
        self.parked_entry = 0;
        self.clear_active();
    }

    /// Removes every key of the selected database.
    fn clear_active(&mut self) {
        self.table.clear();
        self.ttl_keys = 0;
        self.expire_cursor = 0;
        self.avg_ttl_ms = 0;
    }

    /// Calls `f(key, value, expire_at)` (Unix ms, 0: none) for every live
    /// key whose position lies in `lo..hi`; see `Table::for_each_in` (a
    /// snapshot walks the store in such slices). Expired keys are skipped.
    pub fn for_each_in(&self, lo: u128, hi: u128, mut f: impl FnMut(&[u8], &[u8], u64)) {
        let now = self.now_ms;
        self.table.for_each_in(lo, hi, |k, v, ttl| match ttl {
            None => f(k, v, 0),
            Some(at) if at > now => f(k, v, at),
            Some(_) => {}
        })
    }

    /// Width of a position range of about `slots` table slots.
    pub fn position_span(&self, slots: usize) -> u128 {
        self.table.position_span(slots)
    }

    /// The value and absolute expiry (Unix ms, 0: none) of the key with
    /// placement hash `hash`, if present and not expired: what the log
    /// records after a write (the key's resulting state).
    #[inline]
    pub fn state(&self, hash: u64, key: &[u8]) -> Option<(&[u8], u64)> {
        let slot = self.table.find(hash, key)?;
        let expire_at = if self.table.meta(slot) & META_TTL != 0 {
            let at = self.table.expire_at(slot);
            if at <= self.now_ms {
                return None;
            }
            at
        } else {
            0
        };
        Some((self.table.value(slot), expire_at))
    }

    /// Calls `f` with every key until it returns `false` (CLUSTER
    /// COUNTKEYSINSLOT / GETKEYSINSLOT: a scan, not a hot path).
    pub fn for_each_key(&self, f: impl FnMut(&[u8]) -> bool) {
        self.table.for_each_key(f)
    }

    /// Reads a key (convenience for tests and tools; the hot path uses
    /// [`Store::execute`]). An expired key reads as absent.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let hash = crate::routing::key_hash(key);
        let slot = self.table.find(hash, key)?;
        if self.table.meta(slot) & META_TTL != 0 && self.table.expire_at(slot) <= self.now_ms {
            return None;
        }
        Some(self.table.value(slot))
    }

    /// A hint with no effect on the contents: starts loading the table slot
    /// of the key with placement hash `hash` into the CPU cache. The shard
    /// calls it many operations ahead of executing a batch's ops, then
    /// [`Store::prefetch_entry`] a few operations ahead, so the cache misses
    /// of several operations overlap instead of being paid one after another.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        self.table.prefetch_slot(hash);
    }

    /// A hint: starts loading the entry (key and value) of `hash`, reading
    /// its slot, which [`Store::prefetch_slot`] should have brought in.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        self.table.prefetch_entry(hash);
    }

    /// The live slot of `key`: a key whose TTL has passed is removed here
    /// (lazy expiry) and reads as absent. For a key without TTL the check is
    /// one bit test on the slot the lookup already loaded.
    #[inline]
    fn find_live(&mut self, hash: u64, key: &[u8]) -> Option<usize> {
        let (slot, expire_at) = self.table.find_with_expiry(hash, key)?;
        if expire_at <= self.now_ms {
            self.remove_slot(slot);
            self.counters.expired_keys += 1;
            return None;
        }
        Some(slot)
    }

    /// Records an access for the eviction policy.
    #[inline]
    fn touch(&mut self, slot: usize) {
        if self.track {
            let m = self.table.meta(slot);
            let bits = self
                .policy
                .touched(m & META_POLICY, self.now_ms, &mut self.rng);
            self.table.set_meta(slot, (m & META_TTL) | bits);
        }
    }

    /// Removes a full slot, keeping the accounting in step.
    fn remove_slot(&mut self, slot: usize) {
        if self.table.has_ttl_at(slot) {
            self.ttl_keys -= 1;
        }
        self.table.remove(slot);
    }

    /// Sets or clears a full slot's expiry, keeping the TTL count in step.
    /// Setting one on an entry whose expiry field cannot hold it moves the
    /// entry (its chunk grows by 5 or 8 bytes; not checked against the limit, like
    /// Redis's own expires dict), which fails only when the table's arena
    /// is exhausted.
    #[inline]
    fn set_expire(&mut self, slot: usize, expire_at: Option<u64>) -> Result<(), OpError> {
        // The slot's bit: a write that gives an entry the compact form
        // (whose TTL is implied) sets its expiry right after.
        let had = self.table.has_ttl_at(slot);
        if !had && expire_at.is_none() {
            return Ok(()); // the seed's overwrites: no store to the entry
        }
        if self.table.set_expire(slot, expire_at).is_err() {
            return Err(OpError::OutOfMemory);
        }
        match (had, expire_at.is_some()) {
            (false, true) => self.ttl_keys += 1,
            (true, false) => self.ttl_keys -= 1,
            _ => {}
        }
        Ok(())
    }

    /// Executes one operation whose key has placement hash `hash`, pushing its
    /// result into `sink`. `value` is ignored by operations that take none.
    #[inline]
    pub fn execute(
        &mut self,
        kind: OpKind,
        key: &[u8],
        value: &[u8],
        hash: u64,
        sink: &mut impl ReplySink,
    ) {
        if key.len() > self.limits.max_key_len {
            self.counters.errors += 1;
            return sink.push(OpResult::Err(OpError::KeyTooLarge));
        }
        if kind.writes_value() && !kind.computes_value() {
            let len = if kind == OpKind::Set {
                value.len().saturating_sub(ExpiryArg::LEN)
            } else {
                value.len()
            };
            if len > self.limits.max_value_len {
                self.counters.errors += 1;
                return sink.push(OpResult::Err(OpError::ValueTooLarge));
            }
        }
        match kind {
            OpKind::Get => {
                self.counters.gets += 1;
                match self.find_live(hash, key) {
                    Some(slot) => {
                        self.counters.hits += 1;
                        self.touch(slot);
                        sink.push(OpResult::Value(self.table.value(slot)))
                    }
                    None => {
                        self.counters.misses += 1;
                        sink.push(OpResult::NotFound)
                    }
                }
            }
            OpKind::Exists => {
                self.counters.gets += 1;
                let found = self.find_live(hash, key).is_some();
                sink.push(OpResult::Int(found as i64));
            }
            OpKind::Strlen => {
                self.counters.gets += 1;
                let len = self
                    .find_live(hash, key)
                    .map_or(0, |slot| self.table.value(slot).len());
                sink.push(OpResult::Int(len as i64));
            }
            OpKind::Del => {
                self.counters.dels += 1;
                match self.find_live(hash, key) {
                    Some(slot) => {
                        self.remove_slot(slot);
                        sink.push(OpResult::Ok);
                    }
                    None => sink.push(OpResult::NotFound),
                }
            }
            OpKind::Ttl => {
                self.counters.gets += 1;
                let r = self.ttl(key, value, hash);
                if let OpResult::Err(_) = r {
                    self.counters.errors += 1;
                }
                sink.push(r);
            }
            OpKind::Expire | OpKind::Persist => {
                self.counters.puts += 1;
                let r = self.expire(kind, key, value, hash);
                if let OpResult::Err(_) = r {
                    self.counters.errors += 1;
                }
                sink.push(r);
            }
            OpKind::GetEx => {
                self.counters.puts += 1;
                if self.getex(key, value, hash, sink).is_err() {
                    self.counters.errors += 1;
                }
            }
            OpKind::GetDel => {
                self.counters.dels += 1;
                match self.find_live(hash, key) {
                    Some(slot) => {
                        sink.push(OpResult::Value(self.table.value(slot)));
                        self.remove_slot(slot);
                    }
                    None => sink.push(OpResult::NotFound),
                }
            }
            OpKind::GetRange => {
                self.counters.gets += 1;
                let Some((start, end)) = decode_range(value) else {
                    self.counters.errors += 1;
                    return sink.push(OpResult::Err(OpError::BadArgument));
                };
                match self.find_live(hash, key) {
                    Some(slot) => {
                        self.counters.hits += 1;
                        self.touch(slot);
                        let v = self.table.value(slot);
                        sink.push(OpResult::Value(byte_range(v, start, end)))
                    }
                    None => {
                        self.counters.misses += 1;
                        sink.push(OpResult::Value(b""))
                    }
                }
            }
            OpKind::SetRange | OpKind::Append | OpKind::IncrByFloat => {
                self.counters.puts += 1;
                let mut buf = std::mem::take(&mut self.scratch);
                if self.modify(kind, key, value, hash, &mut buf, sink).is_err() {
                    self.counters.errors += 1;
                }
                if buf.capacity() <= SCRATCH_KEEP {
                    self.scratch = buf;
                }
            }
            OpKind::Put
            | OpKind::PutIfAbsent
            | OpKind::PutIfPresent
            | OpKind::GetSet
            | OpKind::IncrBy
            | OpKind::Set => {
                self.counters.puts += 1;
                let r = self.write(kind, key, value, hash, sink);
                if r.is_err() {
                    self.counters.errors += 1;
                }
            }
        }
    }

    /// An absolute expiry from an argument's `when` (REL: from the clock).
    #[inline]
    fn absolute(&self, a: &ExpiryArg) -> i64 {
        if a.flags & arg::REL != 0 {
            (self.now_ms as i64).saturating_add(a.when)
        } else {
            a.when
        }
    }

    /// TTL / PTTL / EXPIRETIME / PEXPIRETIME, Redis's arithmetic.
    fn ttl(&mut self, key: &[u8], value: &[u8], hash: u64) -> OpResult<'static> {
        let mode = match value.first() {
            Some(0) => TtlMode::Secs,
            Some(1) => TtlMode::Millis,
            Some(2) => TtlMode::AtSecs,
            Some(3) => TtlMode::AtMillis,
            _ => return OpResult::Err(OpError::BadArgument),
        };
        let Some(slot) = self.find_live(hash, key) else {
            return OpResult::Int(-2);
        };
        if self.table.meta(slot) & META_TTL == 0 {
            return OpResult::Int(-1);
        }
        let at = self.table.expire_at(slot) as i64;
        let ttl = match mode {
            TtlMode::Secs | TtlMode::Millis => (at - self.now_ms as i64).max(0),
            TtlMode::AtSecs | TtlMode::AtMillis => at,
        };
        OpResult::Int(match mode {
            TtlMode::Millis | TtlMode::AtMillis => ttl,
            // Redis rounds to the nearest second (and its sum may wrap).
            TtlMode::Secs | TtlMode::AtSecs => ttl.wrapping_add(500) / 1000,
        })
    }

    /// EXPIRE (with NX/XX/GT/LT) and PERSIST.
    fn expire(&mut self, kind: OpKind, key: &[u8], value: &[u8], hash: u64) -> OpResult<'static> {
        let a = if kind == OpKind::Expire {
            match ExpiryArg::decode(value) {
                Some((a, _)) => Some(a),
                None => return OpResult::Err(OpError::BadArgument),
            }
        } else {
            None
        };
        let Some(slot) = self.find_live(hash, key) else {
            return OpResult::Int(0);
        };
        let has_ttl = self.table.meta(slot) & META_TTL != 0;
        let Some(a) = a else {
            // PERSIST
            if has_ttl {
                let _ = self.set_expire(slot, None); // clearing cannot fail
            }
            return OpResult::Int(has_ttl as i64);
        };
        let when = self.absolute(&a);
        let current = if has_ttl {
            self.table.expire_at(slot) as i64
        } else {
            -1
        };
        let f = a.flags;
        let refused = (f & arg::NX != 0 && current != -1)
            || (f & arg::XX != 0 && current == -1)
            || (f & arg::GT != 0 && (when <= current || current == -1))
            || (f & arg::LT != 0 && current != -1 && when >= current);
        if refused {
            return OpResult::Int(0);
        }
        if when <= self.now_ms as i64 {
            self.remove_slot(slot);
        } else if let Err(e) = self.set_expire(slot, Some(when as u64)) {
            return OpResult::Err(e);
        }
        OpResult::Int(1)
    }

    /// GETEX: the value, then the TTL change.
    fn getex(
        &mut self,
        key: &[u8],
        value: &[u8],
        hash: u64,
        sink: &mut impl ReplySink,
    ) -> Result<(), OpError> {
        let Some((a, _)) = ExpiryArg::decode(value) else {
            sink.push(OpResult::Err(OpError::BadArgument));
            return Err(OpError::BadArgument);
        };
        let Some(slot) = self.find_live(hash, key) else {
            sink.push(OpResult::NotFound);
            return Ok(());
        };
        self.touch(slot);
        let when = self.absolute(&a);
        if a.flags & arg::PERSIST == 0 && a.when != 0 && when > self.now_ms as i64 {
            // A future expiry first (it may move the entry; the value is
            // the same), so a failure can still be the reply.
            if let Err(e) = self.set_expire(slot, Some(when as u64)) {
                sink.push(OpResult::Err(e));
                return Err(e);
            }
        }
        sink.push(OpResult::Value(self.table.value(slot)));
        if a.flags & arg::PERSIST != 0 {
            let _ = self.set_expire(slot, None); // clearing cannot fail
        } else if a.when != 0 && when <= self.now_ms as i64 {
            self.remove_slot(slot);
        }
        Ok(())
    }

    /// APPEND, SETRANGE, INCRBYFLOAT: the new value is built in `buf` from
    /// the old one (absent: empty, or 0 for INCRBYFLOAT) and stored, keeping
    /// the key's TTL. Pushes exactly one result; `Err` when it was an error.
    fn modify(
        &mut self,
        kind: OpKind,
        key: &[u8],
        value: &[u8],
        hash: u64,
        buf: &mut Vec<u8>,
        sink: &mut impl ReplySink,
    ) -> Result<(), OpError> {
        let fail = |sink: &mut dyn FnMut(OpResult<'_>), e: OpError| {
            sink(OpResult::Err(e));
            Err(e)
        };
        let max = self.limits.max_value_len;
        let found = self.find_live(hash, key);
        let old: &[u8] = match found {
            Some(slot) => self.table.value(slot),
            None => b"",
        };
        buf.clear();
        match kind {
            OpKind::SetRange => {
                let Some((offset, bytes)) = decode_offset(value) else {
                    return fail(&mut |r| sink.push(r), OpError::BadArgument);
                };
                // Writing nothing changes nothing, and creates no key.
                if bytes.is_empty() {
                    sink.push(OpResult::Int(old.len() as i64));
                    return Ok(());
                }
                if offset.saturating_add(bytes.len() as u64) > max as u64 {
                    return fail(&mut |r| sink.push(r), OpError::StringTooLong);
                }
                let offset = offset as usize;
                buf.extend_from_slice(old);
                if buf.len() < offset + bytes.len() {
                    buf.resize(offset + bytes.len(), 0);
                }
                buf[offset..offset + bytes.len()].copy_from_slice(bytes);
            }
            OpKind::Append => {
                if old.len().saturating_add(value.len()) > max {
                    return fail(&mut |r| sink.push(r), OpError::StringTooLong);
                }
                buf.extend_from_slice(old);
                buf.extend_from_slice(value);
            }
            _ => {
                let mut out = [0u8; float::OUT_LEN];
                let current: &[u8] = if found.is_some() { old } else { b"0" };
                match float::incr_by_float(current, value, &mut out) {
                    Ok(v) if v.len() > max => {
                        return fail(&mut |r| sink.push(r), OpError::ValueTooLarge)
                    }
                    Ok(v) => buf.extend_from_slice(v),
                    Err(e) => return fail(&mut |r| sink.push(r), e),
                }
            }
        }
        if let Err(e) = self.store_computed(found, key, hash, buf) {
            return fail(&mut |r| sink.push(r), e);
        }
        match kind {
            OpKind::IncrByFloat => sink.push(OpResult::Value(buf)),
            _ => sink.push(OpResult::Int(buf.len() as i64)),
        }
        Ok(())
    }

    /// Stores a value the store computed for `key` (live in `found`, or
    /// absent): its TTL is kept; the memory limit and eviction apply as to
    /// any write.
    fn store_computed(
        &mut self,
        found: Option<usize>,
        key: &[u8],
        hash: u64,
        new_value: &[u8],
    ) -> Result<(), OpError> {
        match found {
            Some(mut slot) => {
                let (size, in_place) = self.table.resized(slot, new_value.len(), Field::None);
                if !in_place {
                    let grow = self.table.arena_growth(size);
                    if self.used_bytes().saturating_add(grow) > self.limits.max_memory {
                        if !self.make_room(size, false, slot_hash(hash)) {
                            return Err(OpError::OutOfMemory);
                        }
                        // Evictions move slots; the key was protected.
                        slot = self.table.find(hash, key).ok_or(OpError::OutOfMemory)?;
                    }
                }
                if self.table.set_value(slot, new_value, Field::None).is_err() {
                    return Err(OpError::OutOfMemory);
                }
                self.touch(slot);
            }
            None => {
                let size = table::entry_size(key.len(), new_value.len(), Field::None);
                let growth = self
                    .table
                    .insert_growth(key.len(), new_value.len(), Field::None);
                if self.used_bytes().saturating_add(growth) > self.limits.max_memory
                    && !self.make_room(size, true, u64::MAX)
                {
                    return Err(OpError::OutOfMemory);
                }
                if !self.insert_new(hash, key, new_value, None) {
                    return Err(OpError::OutOfMemory);
                }
            }
        }
        Ok(())
    }

    /// Evicts keys by the policy until an entry of `size` bytes (and, for
    /// an insert, the slot array's growth) fits within the limit: until
    /// its size class has a free chunk or a page fits, and the slot array
    /// need not grow. Never evicts the key whose [`slot_hash`] is
    /// `protect`. False when the policy has no victim. After
    /// [`EVICTIONS_PER_WRITE`] evictions it lets the write proceed (Redis's
    /// "eviction still running"): a large value may need more, and SIEVE
    /// frees a page only once its hand has emptied one, and the shard's timer
    /// evicts the rest ([`Store::evict_over_limit`]).
    fn make_room(&mut self, size: usize, insert: bool, protect: u64) -> bool {
        let limit = self.limits.max_memory;
        let mut evicted = 0;
        loop {
            let mut need = self.table.arena_growth(size);
            if insert {
                need += self.table.growth_bytes();
            }
            if self.used_bytes().saturating_add(need) <= limit || evicted == EVICTIONS_PER_WRITE {
                return true;
            }
            if !self.evict_one(protect) {
                return false;
            }
            evicted += 1;
        }
    }

    /// Keeps the keys it evicts from now on (`true`) for
    /// [`Store::drain_evicted`], so a log can record them as deletes.
    pub fn keep_evicted(&mut self, on: bool) {
        self.evicted = on.then(Vec::new);
    }

    /// True when keys were evicted since the last [`Store::drain_evicted`].
    #[inline]
    pub fn has_evicted(&self) -> bool {
        self.evicted.as_ref().is_some_and(|v| !v.is_empty())
    }

    /// Hands each key evicted since the last call to `f` with its
    /// database (logical index), oldest first.
    pub fn drain_evicted(&mut self, mut f: impl FnMut(u16, &[u8])) {
        let Some(log) = &mut self.evicted else { return };
        let mut at = 0;
        while at + 6 <= log.len() {
            let db = u16::from_le_bytes([log[at], log[at + 1]]);
            let n =
                u32::from_le_bytes([log[at + 2], log[at + 3], log[at + 4], log[at + 5]]) as usize;
            let end = (at + 6 + n).min(log.len());
            f(db, &log[at + 6..end]);
            at = end;
        }
        log.clear();
    }

    /// Evicts keys until the store is within its limit (after CONFIG SET
    /// lowered it), at most `max` of them. Returns how many it evicted.
    pub fn evict_over_limit(&mut self, max: usize) -> usize {
        let mut n = 0;
        while self.used_bytes() > self.limits.max_memory && n < max && self.evict_one(u64::MAX) {
            n += 1;
        }
        n
    }

    /// Evicts one key chosen by the policy: from the selected database
    /// when it has a candidate, else from the other databases in index
    /// order. False when there is none to evict (noeviction, or volatile-*
    /// without keys with a TTL).
    fn evict_one(&mut self, protect: u64) -> bool {
        if self.evict_here(protect) {
            return true;
        }
        if self.parked_len == 0 || self.policy == Policy::NoEviction {
            return false;
        }
        let home = self.active;
        let volatile = self.policy.volatile();
        for db in 0..self.parked.len() {
            let candidate = match &self.parked[db] {
                Some(d) if db != home => !d.table.is_empty() && (!volatile || d.ttl_keys > 0),
                _ => false,
            };
            if candidate {
                self.switch(db);
                let done = self.evict_here(u64::MAX);
                self.switch(home);
                if done {
                    return true;
                }
            }
        }
        false
    }

    /// Evicts one key of the selected database chosen by the policy.
    fn evict_here(&mut self, protect: u64) -> bool {
        let victim = match self.policy {
            Policy::NoEviction => None,
            Policy::Sieve => self.table.sieve_victim(evict::SIEVE_VISITED, protect),
            p => self.sample_victim(p, protect),
        };
        match victim {
            Some(slot) => {
                if let Some(log) = &mut self.evicted {
                    let key = self.table.key(slot);
                    log.extend_from_slice(&(self.active as u16).to_le_bytes());
                    log.extend_from_slice(&(key.len() as u32).to_le_bytes());
                    log.extend_from_slice(key);
                }
                self.remove_slot(slot);
                self.counters.evicted_keys += 1;
                true
            }
            None => false,
        }
    }

    /// Redis-style sampling: the best of a few random keys by the policy's
    /// score. Pipelined across evictions ([`SampleAhead`]): the keys scored
    /// now are the ones whose slots were found [`AHEAD_DEPTH`] evictions ago
    /// (their entries prefetched then), from random slots chosen as many
    /// evictions before that (their lines prefetched then); each eviction
    /// chooses and prefetches the ones for later. At the limit a write
    /// evicts about once, so the misses land while the requests in between
    /// run (allkeys-lru on the cache-aside benchmark: a fifth less server
    /// CPU per request, the same miss ratio at the same load). When too few
    /// keys come from there (the first eviction, another database, few
    /// eligible keys), the rest are sampled here: at most 32 probes of 16
    /// slots each, a few at a time — slot lines prefetched together, then
    /// the entries, then the metadata read. Should every probe miss (a
    /// nearly empty slot array), a scan from a random slot finds the first
    /// eligible key, so a victim is found whenever one exists.
    fn sample_victim(&mut self, p: Policy, protect: u64) -> Option<usize> {
        let volatile = p.volatile();
        if self.table.is_empty() || (volatile && self.ttl_keys == 0) {
            return None;
        }
        let cap = self.table.capacity();
        let want = p.samples();
        let eligible = |t: &Table, i: usize| {
            i < t.capacity()
                && t.is_full(i)
                && (!volatile || t.has_ttl_at(i))
                && t.hash_at(i) != protect
        };
        let find_from = |t: &Table, start: usize| {
            (0..16)
                .map(|k| (start + k) % t.capacity())
                .find(|&i| eligible(t, i))
        };
        let mut best: Option<(u64, usize)> = None;
        let mut found = 0;
        let now = self.now_ms;
        let consider = |t: &Table, i: usize, best: &mut Option<(u64, usize)>| {
            let meta = t.meta(i);
            let score = p.score(meta & META_POLICY, now, || t.expire_at(i));
            if best.map_or(true, |(b, _)| score > b) {
                *best = Some((score, i));
            }
        };
        // Taken ahead: score the picks, turn the starts into the next picks,
        // choose the next starts.
        let a = &mut self.ahead;
        if a.db != self.active_id || a.policy != p {
            *a = SampleAhead {
                db: self.active_id,
                policy: p,
                ..SampleAhead::default()
            };
        }
        let r = a.at;
        a.at = (a.at + 1) % AHEAD_DEPTH;
        for &i in &a.picks[r][..a.n_picks[r]] {
            if found < want && eligible(&self.table, i) {
                consider(&self.table, i, &mut best);
                found += 1;
            }
        }
        a.n_picks[r] = 0;
        for &start in &a.starts[r][..a.n_starts[r]] {
            if let Some(i) = find_from(&self.table, start) {
                self.table.prefetch_entry_at(i);
                a.picks[r][a.n_picks[r]] = i;
                a.n_picks[r] += 1;
            }
        }
        a.n_starts[r] = want.min(AHEAD);
        for s in a.starts[r].iter_mut().take(a.n_starts[r]) {
            *s = (evict::next_random(&mut self.rng) % cap as u64) as usize;
            self.table.prefetch_index(*s);
        }
        // The rest, here and now.
        let per_round = (want + 3).min(8);
        let first = (evict::next_random(&mut self.rng) % cap as u64) as usize;
        let mut probes = 0;
        while found < want && probes < 32 {
            let mut starts = [0usize; 8];
            for s in starts.iter_mut().take(per_round) {
                *s = (evict::next_random(&mut self.rng) % cap as u64) as usize;
                self.table.prefetch_index(*s);
            }
            probes += per_round;
            let mut picks = [usize::MAX; 8];
            for (j, &start) in starts.iter().take(per_round).enumerate() {
                if let Some(i) = find_from(&self.table, start) {
                    self.table.prefetch_entry_at(i);
                    picks[j] = i;
                }
            }
            for &i in picks.iter().take(per_round).filter(|&&i| i != usize::MAX) {
                if found >= want {
                    break;
                }
                consider(&self.table, i, &mut best);
                found += 1;
            }
        }
        if best.is_none() {
            return (0..cap)
                .map(|k| (first + k) % cap)
                .find(|&i| eligible(&self.table, i));
        }
        best.map(|(_, slot)| slot)
    }

    /// Active expiry: walks up to `max_slots` slots from the cursor, reading
    /// the expiry of at most `max_checks` keys with a TTL and removing those
    /// that have passed. Bounded work whatever the key count; a full pass
    /// over the table takes `capacity / max_slots` calls. Keys without a
    /// TTL cost a slot read (the slot's TTL bit), no entry read. First,
    /// when keys have fallen below half the slots, it shrinks the slot array
    /// (one sequential pass, as a growth is, and rare: it needs the key
    /// count to drop by about 40% since the last resize).
    ///
    /// With several databases in use, each call works on one of them, in
    /// turn: the next one once a pass over this one is complete.
    pub fn expire_slice(&mut self, max_slots: usize, max_checks: usize) -> ExpireSlice {
        if self.parked_len == 0 && self.parked_ttl == 0 && self.expire_db == self.active {
            let (r, _) = self.expire_slice_here(max_slots, max_checks);
            return r;
        }
        let home = self.active;
        let n = self.parked.len();
        let mut db = self.expire_db % n;
        // The next database with work, from `expire_db` on: keys with a TTL,
        // or a slot array to give back. Databases without any are skipped,
        // so unused ones cost expiry nothing.
        let needs_work = |table: &Table, ttl_keys: usize| {
            ttl_keys > 0 || (table.capacity() > 1024 && table.len() * 6 < table.capacity())
        };
        let mut found = false;
        for _ in 0..n {
            found = match &self.parked[db] {
                _ if db == home => needs_work(&self.table, self.ttl_keys),
                Some(d) => needs_work(&d.table, d.ttl_keys),
                None => false,
            };
            if found {
                break;
            }
            db = (db + 1) % n;
        }
        if !found {
            return ExpireSlice::default();
        }
        self.select(db);
        let (r, wrapped) = self.expire_slice_here(max_slots, max_checks);
        if wrapped || self.ttl_keys == 0 {
            self.expire_db = (db + 1) % n;
        } else {
            self.expire_db = db;
        }
        self.switch_back(home);
        r
    }

    /// Fills up to `budget` bytes of the selected database's next slot
    /// array ahead of its growth ([`Table::prepare_growth`]: the growth
    /// then pays no page faults), if the whole array fits under the memory
    /// limit; otherwise frees what was prepared (the growth allocates it
    /// then, as always). Returns the bytes filled. The shard calls it from
    /// its maintenance tick, between batches.
    pub fn prepare_growth(&mut self, budget: usize) -> usize {
        if self.used_bytes().saturating_add(self.table.spare_left()) > self.limits.max_memory {
            self.table.drop_spare();
            return 0;
        }
        self.table.prepare_growth(budget)
    }

    /// [`Store::expire_slice`] on the selected database; true when its
    /// cursor went past the end of the slot array (a pass is complete).
    fn expire_slice_here(&mut self, max_slots: usize, max_checks: usize) -> (ExpireSlice, bool) {
        // After mass expiry or deletion, give the slot array back; the
        // cursor keeps its place in the hash space (not its index), so a
        // pass neither skips nor repeats a region.
        let cap = self.table.capacity();
        let mut r = ExpireSlice {
            shrunk: self.table.shrink(),
            ..ExpireSlice::default()
        };
        if r.shrunk {
            self.expire_cursor =
                (self.expire_cursor as u128 * self.table.capacity() as u128 / cap as u128) as usize;
        }
        if self.ttl_keys == 0 {
            return (r, true);
        }
        let mut wrapped = false;
        let cap = self.table.capacity();
        let mut i = self.expire_cursor;
        if i >= cap {
            i = 0;
        }
        let now = self.now_ms;
        let (mut ttl_sum, mut ttl_n) = (0u64, 0u64);
        while r.slots < max_slots && r.checked < max_checks {
            r.slots += 1;
            // The slot's TTL bit: keys without one cost no entry read.
            if self.table.has_ttl_at(i) {
                r.checked += 1;
                let at = self.table.expire_at(i);
                if at <= now {
                    // Backward shifting may move the next entry into
                    // slot i: look at it again.
                    self.remove_slot(i);
                    self.counters.expired_keys += 1;
                    r.expired += 1;
                    continue;
                }
                ttl_sum = ttl_sum.saturating_add(at - now);
                ttl_n += 1;
            }
            i += 1;
            if i == cap {
                i = 0;
                wrapped = true;
            }
        }
        if wrapped || (self.ttl_keys == 0 && r.expired > 0) {
            // A pass is complete, or the last key with a TTL is gone: what
            // expired is gone everywhere, so the keys are spread as evenly
            // as the inserts and deletes made them (a shrink refused
            // halfway through may fit now).
            self.table.allow_shrink();
        }
        self.expire_cursor = i;
        if let Some(avg) = ttl_sum.checked_div(ttl_n) {
            // Redis's running estimate: 2% of the new sample's average.
            self.avg_ttl_ms = if self.avg_ttl_ms == 0 {
                avg
            } else {
                (self.avg_ttl_ms / 50) * 49 + avg / 50
            };
        }
        if self.ttl_keys == 0 {
            self.avg_ttl_ms = 0;
        }
        (r, wrapped)
    }

    /// The write kinds. Pushes exactly one result; returns `Err` when that
    /// result was an error (for counting).
    #[inline]
    fn write(
        &mut self,
        kind: OpKind,
        key: &[u8],
        value: &[u8],
        hash: u64,
        sink: &mut impl ReplySink,
    ) -> Result<(), OpError> {
        let (flags, expire, payload) = match kind {
            OpKind::Set => match ExpiryArg::decode(value) {
                Some((a, v)) if a.when >= 0 => {
                    let at = (a.when != 0).then(|| self.absolute(&a).max(1) as u64);
                    (a.flags, at, v)
                }
                _ => {
                    sink.push(OpResult::Err(OpError::BadArgument));
                    return Err(OpError::BadArgument);
                }
            },
            OpKind::PutIfAbsent => (arg::NX, None, value),
            OpKind::PutIfPresent => (arg::XX, None, value),
            OpKind::GetSet => (arg::GET, None, value),
            OpKind::IncrBy => (arg::KEEPTTL, None, value),
            _ => (0, None, value),
        };
        let get = flags & arg::GET != 0;
        let keep_ttl = flags & arg::KEEPTTL != 0;
        let mut incr_buf = [0u8; 20];
        let fail = |sink: &mut dyn FnMut(OpResult<'_>), e: OpError| {
            sink(OpResult::Err(e));
            Err(e)
        };
        match self.find_live(hash, key) {
            Some(mut slot) => {
                if flags & arg::NX != 0 {
                    let r = if get {
                        OpResult::Value(self.table.value(slot))
                    } else {
                        OpResult::NotFound
                    };
                    sink.push(r);
                    return Ok(());
                }
                let new_value: &[u8] = if kind == OpKind::IncrBy {
                    match incr(self.table.value(slot), payload, &mut incr_buf) {
                        Some(v) => v,
                        None => return fail(&mut |r| sink.push(r), OpError::NotInteger),
                    }
                } else {
                    payload
                };
                let old_len = self.table.value(slot).len();
                // A TTL set by this write needs an expiry field in the entry
                // that holds it.
                let want_field = if keep_ttl {
                    Field::None
                } else {
                    self.table.field_for(key.len(), new_value.len(), expire)
                };
                if new_value.len() != old_len || want_field != Field::None {
                    let (size, in_place) = self.table.resized(slot, new_value.len(), want_field);
                    if !in_place {
                        let grow = self.table.arena_growth(size);
                        if self.used_bytes().saturating_add(grow) > self.limits.max_memory {
                            let protect = slot_hash(hash);
                            if !self.make_room(size, false, protect) {
                                return fail(&mut |r| sink.push(r), OpError::OutOfMemory);
                            }
                            // Evictions move slots: find the key again (it
                            // was protected, so it is there).
                            match self.table.find(hash, key) {
                                Some(s) => slot = s,
                                None => return fail(&mut |r| sink.push(r), OpError::OutOfMemory),
                            }
                        }
                        // After this the move below cannot fail.
                        if self.table.reserve(size).is_err() {
                            return fail(&mut |r| sink.push(r), OpError::OutOfMemory);
                        }
                    }
                }
                match kind {
                    // `incr` produced a valid i64 in decimal.
                    OpKind::IncrBy => sink.push(OpResult::Int(parse_i64(new_value).unwrap_or(0))),
                    _ if get => sink.push(OpResult::Value(self.table.value(slot))),
                    _ => sink.push(OpResult::Ok),
                }
                if self.table.set_value(slot, new_value, want_field).is_err() {
                    return Err(OpError::OutOfMemory); // reserved above: unreachable
                }
                if !keep_ttl && self.set_expire(slot, expire).is_err() {
                    return Err(OpError::OutOfMemory); // the field exists: unreachable
                }
                self.touch(slot);
                Ok(())
            }
            None => {
                if flags & arg::XX != 0 {
                    sink.push(OpResult::NotFound);
                    return Ok(());
                }
                let new_value: &[u8] = if kind == OpKind::IncrBy {
                    match incr(b"0", payload, &mut incr_buf) {
                        Some(v) => v,
                        None => return fail(&mut |r| sink.push(r), OpError::NotInteger),
                    }
                } else {
                    payload
                };
                // The entry's chunk (if its class has no free one) and a
                // slot array about to grow are charged; if they do not fit,
                // evictions free chunks (or pages) and keep the array from
                // growing.
                let field = self.table.field_for(key.len(), new_value.len(), expire);
                let size = table::entry_size(key.len(), new_value.len(), field);
                let growth = self.table.insert_growth(key.len(), new_value.len(), field);
                if self.used_bytes().saturating_add(growth) > self.limits.max_memory
                    && !self.make_room(size, true, u64::MAX)
                {
                    return fail(&mut |r| sink.push(r), OpError::OutOfMemory);
                }
                if !self.insert_new(hash, key, new_value, expire) {
                    return fail(&mut |r| sink.push(r), OpError::OutOfMemory);
                }
                match kind {
                    OpKind::IncrBy => sink.push(OpResult::Int(parse_i64(new_value).unwrap_or(0))),
                    _ if get => sink.push(OpResult::NotFound),
                    _ => sink.push(OpResult::Ok),
                }
                Ok(())
            }
        }
    }
}

/// GETRANGE's argument: `[start i64 LE][end i64 LE]`.
fn decode_range(value: &[u8]) -> Option<(i64, i64)> {
    let start = i64::from_le_bytes(value.get(0..8)?.try_into().ok()?);
    let end = i64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    Some((start, end))
}

/// SETRANGE's argument: `[offset u64 LE]` then the bytes.
fn decode_offset(value: &[u8]) -> Option<(u64, &[u8])> {
    let offset = u64::from_le_bytes(value.get(0..8)?.try_into().ok()?);
    Some((offset, &value[8..]))
}

/// The bytes GETRANGE returns: `start..=end` of `v`, negative indexes
/// counted from the end, clamped as Redis clamps them.
pub fn byte_range(v: &[u8], start: i64, end: i64) -> &[u8] {
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return b"";
    }
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end }.max(0).min(len - 1);
    if start > end || len == 0 {
        return b"";
    }
    &v[start as usize..=end as usize]
}

/// `current + delta` as decimal text in `buf`; `None` when either is not an
/// integer or the sum overflows.
fn incr<'b>(current: &[u8], delta: &[u8], buf: &'b mut [u8; 20]) -> Option<&'b [u8]> {
    let sum = parse_i64(current)?.checked_add(parse_i64(delta)?)?;
    Some(format_i64(sum, buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::OwnedResult as Owned;
    use crate::routing::key_hash;

    /// Collects results as owned values.
    #[derive(Default)]
    struct Collect(Vec<Owned>);
    impl ReplySink for Collect {
        fn push(&mut self, r: OpResult<'_>) {
            assert!(
                !matches!(r, OpResult::Moved { .. }),
                "the store never redirects"
            );
            self.0.push(r.into())
        }
    }

    fn store(max_memory: usize) -> Store {
        Store::new(StoreLimits {
            max_key_len: 16,
            max_value_len: 64,
            max_memory,
        })
    }

    /// What an empty store holds: its slot array.
    fn empty_bytes() -> usize {
        store(usize::MAX).used_bytes()
    }

    fn run(s: &mut Store, kind: OpKind, key: &[u8], value: &[u8]) -> Owned {
        let mut c = Collect::default();
        s.execute(kind, key, value, key_hash(key), &mut c);
        assert_eq!(c.0.len(), 1, "exactly one result per op");
        c.0.pop().unwrap()
    }

    #[test]
    fn databases_are_separate_and_swap_move_flush_keep_the_accounting() {
        let mut s = store(usize::MAX);
        let empty = empty_bytes();
        run(&mut s, OpKind::Put, b"k", b"zero");
        s.select(3);
        assert_eq!(s.db(), 3);
        assert_eq!(run(&mut s, OpKind::Get, b"k", b""), Owned::NotFound);
        run(&mut s, OpKind::Put, b"k", b"three");
        run(&mut s, OpKind::Set, b"t", &xarg(arg::REL, 10_000, b"v"));
        assert_eq!((s.len(), s.db_len(), s.ttl_keys()), (3, 2, 1));
        s.select(0);
        assert_eq!(s.get(b"k"), Some(&b"zero"[..]));
        assert_eq!(s.db_len(), 1);
        assert_eq!(
            s.keyspace(),
            vec![(0, 1, 0, 0), (3, 2, 1, 0)],
            "only non-empty databases"
        );
        let id3 = s.db_id(3);
        assert_ne!(id3, 0);
        s.swap_db(0, 3);
        assert_eq!(s.db(), 0, "the selected index stays selected");
        assert_eq!(s.get(b"k"), Some(&b"three"[..]));
        assert_eq!(s.find_db_id(id3), Some(0), "the id follows the table");
        // MOVE: absent here, present there, and a real move with its TTL.
        assert!(!s.move_key(key_hash(b"nope"), b"nope", 5));
        assert!(!s.move_key(key_hash(b"k"), b"k", 3), "k exists in db 3");
        assert!(s.move_key(key_hash(b"t"), b"t", 5));
        assert_eq!(s.db_len(), 1);
        s.select(5);
        assert_eq!(ttl(&mut s, b"t", TtlMode::Millis), Owned::Int(10_000));
        assert_eq!(s.ttl_keys(), 1);
        // Each database's table has its own arena: a page each.
        let total = s.entry_bytes();
        assert_eq!(total, 3 * PAGE_BYTES);
        s.flush_db(0);
        assert_eq!(s.len(), 2);
        assert_eq!(s.entry_bytes(), 2 * PAGE_BYTES);
        s.clear();
        assert_eq!((s.len(), s.entry_bytes(), s.ttl_keys()), (0, 0, 0));
        assert!(s.used_bytes() >= empty);
        // Out of range selects are ignored.
        s.select(99);
        assert_eq!(s.db(), 5);
    }

    #[test]
    fn expiry_and_eviction_span_every_database() {
        let mut s = store(usize::MAX);
        s.set_now(T0);
        for db in [0usize, 7] {
            s.select(db);
            for i in 0..100u32 {
                let k = format!("k{i}");
                run(
                    &mut s,
                    OpKind::Set,
                    k.as_bytes(),
                    &xarg(arg::REL, 1000, b"v"),
                );
            }
        }
        s.select(0);
        s.set_now(T0 + 1000);
        let mut expired = 0;
        for _ in 0..100 {
            expired += s.expire_slice(4096, 4096).expired;
        }
        assert_eq!(expired, 200, "active expiry reaches database 7 too");
        assert_eq!(s.db(), 0);
        // Eviction: database 2 holds the one page that fits, writes in
        // database 0 evict its keys until that page is given back.
        let limit = 2 * empty_bytes() + PAGE_BYTES + 1000;
        let mut s = store(limit);
        s.set_policy(Policy::AllKeysLru);
        s.select(2);
        fill(&mut s, 90, 0);
        s.select(0);
        let (ok, oom) = fill(&mut s, 200, 0);
        assert_eq!((ok, oom), (200, 0));
        assert!(s.counters().evicted_keys > 0);
        assert!(s.used_bytes() <= limit);
    }

    #[test]
    fn object_encoding_follows_redis() {
        assert_eq!(object_encoding(b"123"), "int");
        assert_eq!(object_encoding(b"-9223372036854775808"), "int");
        assert_eq!(object_encoding(b"0"), "int");
        assert_eq!(object_encoding(b"-0"), "embstr");
        assert_eq!(object_encoding(b"007"), "embstr");
        assert_eq!(object_encoding(b"+1"), "embstr");
        assert_eq!(object_encoding(b"1 "), "embstr");
        assert_eq!(object_encoding(b""), "embstr");
        assert_eq!(object_encoding(&[b'x'; 44]), "embstr");
        assert_eq!(object_encoding(&[b'x'; 45]), "raw");
    }

    #[test]
    fn put_get_del() {
        let mut s = store(usize::MAX);
        assert_eq!(run(&mut s, OpKind::Get, b"k", b""), Owned::NotFound);
        assert_eq!(run(&mut s, OpKind::Put, b"k", b"v1"), Owned::Ok);
        assert_eq!(
            run(&mut s, OpKind::Get, b"k", b""),
            Owned::Value(b"v1".to_vec())
        );
        assert_eq!(run(&mut s, OpKind::Put, b"k", b"v2"), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Put, b"k", b"longer"), Owned::Ok);
        assert_eq!(s.get(b"k"), Some(&b"longer"[..]));
        assert_eq!(s.len(), 1);
        // One entry holds one arena page.
        assert_eq!(s.entry_bytes(), PAGE_BYTES);
        assert_eq!(s.used_bytes(), PAGE_BYTES + empty_bytes());
        assert_eq!(run(&mut s, OpKind::Del, b"k", b""), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Del, b"k", b""), Owned::NotFound);
        assert_eq!(s.entry_bytes(), 0);
        assert_eq!(s.used_bytes(), empty_bytes());
        assert!(s.is_empty());
        let c = s.counters();
        assert_eq!((c.gets, c.puts, c.dels, c.errors), (2, 3, 2, 0));
    }

    #[test]
    fn conditional_writes_and_counters() {
        let mut s = store(usize::MAX);
        assert_eq!(
            run(&mut s, OpKind::PutIfPresent, b"k", b"x"),
            Owned::NotFound
        );
        assert_eq!(run(&mut s, OpKind::PutIfAbsent, b"k", b"a"), Owned::Ok);
        assert_eq!(
            run(&mut s, OpKind::PutIfAbsent, b"k", b"b"),
            Owned::NotFound
        );
        assert_eq!(
            run(&mut s, OpKind::GetSet, b"k", b"c"),
            Owned::Value(b"a".to_vec())
        );
        assert_eq!(run(&mut s, OpKind::PutIfPresent, b"k", b"d"), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Exists, b"k", b""), Owned::Int(1));
        assert_eq!(run(&mut s, OpKind::Strlen, b"k", b""), Owned::Int(1));
        assert_eq!(run(&mut s, OpKind::Exists, b"nope", b""), Owned::Int(0));
        assert_eq!(run(&mut s, OpKind::GetSet, b"new", b"v"), Owned::NotFound);
        assert_eq!(s.get(b"new"), Some(&b"v"[..]));
    }

    #[test]
    fn incr() {
        let mut s = store(usize::MAX);
        assert_eq!(run(&mut s, OpKind::IncrBy, b"n", b"5"), Owned::Int(5));
        assert_eq!(run(&mut s, OpKind::IncrBy, b"n", b"-7"), Owned::Int(-2));
        assert_eq!(s.get(b"n"), Some(&b"-2"[..]));
        run(&mut s, OpKind::Put, b"t", b"abc");
        assert_eq!(
            run(&mut s, OpKind::IncrBy, b"t", b"1"),
            Owned::Err(OpError::NotInteger)
        );
        run(&mut s, OpKind::Put, b"m", i64::MAX.to_string().as_bytes());
        assert_eq!(
            run(&mut s, OpKind::IncrBy, b"m", b"1"),
            Owned::Err(OpError::NotInteger)
        );
        assert_eq!(
            run(&mut s, OpKind::IncrBy, b"n", b"01"),
            Owned::Err(OpError::NotInteger)
        );
        assert_eq!(s.counters().errors, 3);
    }

    #[test]
    fn limits() {
        let mut s = store(usize::MAX);
        assert_eq!(
            run(&mut s, OpKind::Put, &[b'k'; 17], b"v"),
            Owned::Err(OpError::KeyTooLarge)
        );
        assert_eq!(
            run(&mut s, OpKind::Get, &[b'k'; 17], b""),
            Owned::Err(OpError::KeyTooLarge)
        );
        assert_eq!(
            run(&mut s, OpKind::Put, b"k", &[b'v'; 65]),
            Owned::Err(OpError::ValueTooLarge)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn memory_limit_blocks_growth_not_reads() {
        // Room for one arena page: 256 entries of 64 bytes (3-byte keys,
        // 53-byte values, 5 bytes of header and metadata, 3 of rounding).
        let per = entry_charge(3, 53);
        assert_eq!(per, 64);
        let per_page = PAGE_BYTES / per;
        let mut s = store(empty_bytes() + PAGE_BYTES);
        let key = |i: usize| [b'k', (i >> 8) as u8, i as u8];
        for i in 0..per_page {
            assert_eq!(run(&mut s, OpKind::Put, &key(i), &[b'v'; 53]), Owned::Ok);
        }
        assert_eq!(
            run(&mut s, OpKind::Put, &key(per_page), &[b'v'; 53]),
            Owned::Err(OpError::OutOfMemory)
        );
        // Growing an existing value past its chunk fails (another class
        // needs a page); within it, or smaller, works (a smaller entry
        // stays in its chunk when its own class has no free one).
        assert!(entry_charge(3, 60) > per && entry_charge(3, 54) == per);
        assert_eq!(
            run(&mut s, OpKind::Put, &key(0), &[b'x'; 60]),
            Owned::Err(OpError::OutOfMemory)
        );
        assert_eq!(run(&mut s, OpKind::Put, &key(0), &[b'y'; 54]), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Put, &key(0), b"abcdefgh"), Owned::Ok);
        assert_eq!(
            run(&mut s, OpKind::Get, &key(0), b""),
            Owned::Value(b"abcdefgh".to_vec())
        );
        assert_eq!(
            run(&mut s, OpKind::Get, &key(per_page), b""),
            Owned::NotFound
        );
        // Deleting frees room.
        assert_eq!(run(&mut s, OpKind::Del, &key(1), b""), Owned::Ok);
        assert_eq!(
            run(&mut s, OpKind::Put, &key(per_page), &[b'v'; 53]),
            Owned::Ok
        );
        assert_eq!(s.used_bytes(), empty_bytes() + PAGE_BYTES);
    }

    #[test]
    fn many_keys_and_clear() {
        let mut s = store(usize::MAX);
        for i in 0..10_000u32 {
            let k = i.to_string();
            assert_eq!(
                run(&mut s, OpKind::Put, k.as_bytes(), &i.to_le_bytes()),
                Owned::Ok
            );
        }
        assert_eq!(s.len(), 10_000);
        for i in (0..10_000u32).step_by(7) {
            let k = i.to_string();
            assert_eq!(s.get(k.as_bytes()), Some(&i.to_le_bytes()[..]));
        }
        // 16-byte chunks (5 + 4 + 4, rounded) and 8-byte slots at load ≤ 0.92.
        assert!(s.entry_bytes() >= 10_000 * 16, "chunks");
        assert!(
            s.used_bytes() >= s.entry_bytes() + 10_000 * 8,
            "chunks and slots"
        );
        s.clear();
        assert_eq!((s.len(), s.used_bytes()), (0, empty_bytes()));
    }

    #[test]
    fn format_and_parse_i64() {
        let mut b = [0u8; 20];
        for v in [0, 1, -1, 42, i64::MAX, i64::MIN, -1000] {
            assert_eq!(format_i64(v, &mut b), v.to_string().as_bytes());
            assert_eq!(parse_i64(v.to_string().as_bytes()), Some(v));
        }
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b"-0",
            b"1 ",
            b"x",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    fn xarg(flags: u8, when: i64, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        ExpiryArg { flags, when }.encode(&mut v);
        v.extend_from_slice(value);
        v
    }

    fn ttl(s: &mut Store, key: &[u8], mode: TtlMode) -> Owned {
        run(s, OpKind::Ttl, key, &[mode as u8])
    }

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn lazy_expiry_on_a_fake_clock() {
        let mut s = store(usize::MAX);
        s.set_now(T0);
        assert_eq!(
            run(
                &mut s,
                OpKind::Set,
                b"k",
                &xarg(0, (T0 + 1500) as i64, b"v")
            ),
            Owned::Ok
        );
        assert_eq!(
            run(&mut s, OpKind::Set, b"rel", &xarg(arg::REL, 10_000, b"v")),
            Owned::Ok
        );
        assert_eq!(s.ttl_keys(), 2);
        assert_eq!(ttl(&mut s, b"k", TtlMode::Millis), Owned::Int(1500));
        assert_eq!(ttl(&mut s, b"k", TtlMode::Secs), Owned::Int(2));
        assert_eq!(
            ttl(&mut s, b"k", TtlMode::AtMillis),
            Owned::Int((T0 + 1500) as i64)
        );
        assert_eq!(
            ttl(&mut s, b"k", TtlMode::AtSecs),
            Owned::Int((T0 / 1000 + 2) as i64)
        );
        assert_eq!(ttl(&mut s, b"rel", TtlMode::Millis), Owned::Int(10_000));
        s.set_now(T0 + 1499);
        assert_eq!(
            run(&mut s, OpKind::Get, b"k", b""),
            Owned::Value(b"v".to_vec())
        );
        assert_eq!(ttl(&mut s, b"k", TtlMode::Secs), Owned::Int(0));
        s.set_now(T0 + 1500);
        assert_eq!(s.get(b"k"), None);
        assert_eq!(run(&mut s, OpKind::Exists, b"k", b""), Owned::Int(0));
        assert_eq!(ttl(&mut s, b"k", TtlMode::Millis), Owned::Int(-2));
        assert_eq!(s.counters().expired_keys, 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.ttl_keys(), 1);
        assert_eq!(s.entry_bytes(), PAGE_BYTES, "not reclaimed yet");
        assert_eq!(run(&mut s, OpKind::Put, b"p", b"v"), Owned::Ok);
        assert_eq!(ttl(&mut s, b"p", TtlMode::Secs), Owned::Int(-1));
    }

    fn offset_arg(offset: u64, v: &[u8]) -> Vec<u8> {
        let mut a = offset.to_le_bytes().to_vec();
        a.extend_from_slice(v);
        a
    }

    #[test]
    fn read_modify_write_string_ops() {
        let mut s = store(usize::MAX);
        s.set_now(T0);
        let at = (T0 + 60_000) as i64;
        // GETDEL
        assert_eq!(run(&mut s, OpKind::GetDel, b"k", b""), Owned::NotFound);
        run(&mut s, OpKind::Put, b"k", b"v");
        assert_eq!(
            run(&mut s, OpKind::GetDel, b"k", b""),
            Owned::Value(b"v".to_vec())
        );
        assert_eq!(s.len(), 0);
        // GETRANGE
        let range = |a: i64, b: i64| {
            let mut v = a.to_le_bytes().to_vec();
            v.extend_from_slice(&b.to_le_bytes());
            v
        };
        assert_eq!(
            run(&mut s, OpKind::GetRange, b"k", &range(0, -1)),
            Owned::Value(vec![])
        );
        run(&mut s, OpKind::Set, b"k", &xarg(0, at, b"Hello"));
        assert_eq!(
            run(&mut s, OpKind::GetRange, b"k", &range(-3, 100)),
            Owned::Value(b"llo".to_vec())
        );
        assert_eq!(
            run(&mut s, OpKind::GetRange, b"k", b"short"),
            Owned::Err(OpError::BadArgument)
        );
        // SETRANGE and APPEND keep the TTL; past the end pads with zeros.
        assert_eq!(
            run(&mut s, OpKind::SetRange, b"k", &offset_arg(7, b"!")),
            Owned::Int(8)
        );
        assert_eq!(s.get(b"k").unwrap(), b"Hello\0\0!");
        assert_eq!(run(&mut s, OpKind::Append, b"k", b"??"), Owned::Int(10));
        assert_eq!(ttl(&mut s, b"k", TtlMode::AtMillis), Owned::Int(at));
        assert_eq!(
            run(&mut s, OpKind::IncrByFloat, b"k", b"1"),
            Owned::Err(OpError::NotFloat)
        );
        // Writing nothing creates nothing.
        assert_eq!(
            run(&mut s, OpKind::SetRange, b"new", &offset_arg(9, b"")),
            Owned::Int(0)
        );
        assert_eq!(run(&mut s, OpKind::Exists, b"new", b""), Owned::Int(0));
        // The value-size limit (64 in `store`) bounds the result.
        assert_eq!(
            run(&mut s, OpKind::SetRange, b"new", &offset_arg(64, b"x")),
            Owned::Err(OpError::StringTooLong)
        );
        assert_eq!(
            run(
                &mut s,
                OpKind::SetRange,
                b"new",
                &offset_arg(u64::MAX, b"x")
            ),
            Owned::Err(OpError::StringTooLong)
        );
        assert_eq!(
            run(&mut s, OpKind::SetRange, b"new", &offset_arg(63, b"x")),
            Owned::Int(64)
        );
        assert_eq!(
            run(&mut s, OpKind::Append, b"new", b"y"),
            Owned::Err(OpError::StringTooLong)
        );
        // INCRBYFLOAT, created without a TTL, kept with one.
        assert_eq!(
            run(&mut s, OpKind::IncrByFloat, b"f", b"0.1"),
            Owned::Value(b"0.1".to_vec())
        );
        assert_eq!(
            run(&mut s, OpKind::IncrByFloat, b"f", b"5.0e3"),
            Owned::Value(b"5000.10000000000000009".to_vec())
        );
        assert_eq!(
            run(&mut s, OpKind::IncrByFloat, b"f", b"inf"),
            Owned::Err(OpError::NanOrInfinity)
        );
        assert_eq!(ttl(&mut s, b"f", TtlMode::Secs), Owned::Int(-1));
        let used = s.used_bytes();
        // Three entries of three size classes: a page each.
        assert!(
            entry_charge(1, 10) < entry_charge(1, 22) && entry_charge(1, 22) < entry_charge(3, 64)
        );
        assert_eq!(s.entry_bytes(), 3 * PAGE_BYTES);
        assert!(used >= s.entry_bytes());
    }

    #[test]
    fn read_modify_write_ops_respect_the_memory_limit() {
        // One page: "a" with 8 bytes fits (a 16-byte chunk); growing it to
        // 32 bytes needs a page of another size class, and so does "b".
        let mut s = store(empty_bytes() + PAGE_BYTES);
        assert_eq!(
            run(&mut s, OpKind::Append, b"a", b"12345678"),
            Owned::Int(8)
        );
        assert_eq!(
            run(&mut s, OpKind::Append, b"a", &[b'x'; 24]),
            Owned::Err(OpError::OutOfMemory)
        );
        assert_eq!(
            run(&mut s, OpKind::IncrByFloat, b"b", b"1"),
            Owned::Err(OpError::OutOfMemory)
        );
        assert_eq!(s.get(b"a").unwrap(), b"12345678");
    }

    #[test]
    fn which_writes_keep_the_ttl() {
        let mut s = store(usize::MAX);
        s.set_now(T0);
        let at = (T0 + 60_000) as i64;
        let has_ttl = |s: &mut Store, k: &[u8]| ttl(s, k, TtlMode::AtMillis) == Owned::Int(at);
        run(&mut s, OpKind::Set, b"n", &xarg(0, at, b"1"));
        assert_eq!(run(&mut s, OpKind::IncrBy, b"n", b"41"), Owned::Int(42));
        assert!(has_ttl(&mut s, b"n"), "INCR keeps the TTL");
        assert_eq!(
            run(&mut s, OpKind::Set, b"n", &xarg(arg::KEEPTTL, 0, b"longer")),
            Owned::Ok
        );
        assert!(has_ttl(&mut s, b"n"), "SET KEEPTTL keeps it");
        assert_eq!(run(&mut s, OpKind::Put, b"n", b"x"), Owned::Ok);
        assert_eq!(
            ttl(&mut s, b"n", TtlMode::Secs),
            Owned::Int(-1),
            "SET clears it"
        );
        for kind in [OpKind::GetSet, OpKind::PutIfPresent] {
            run(&mut s, OpKind::Set, b"n", &xarg(0, at, b"1"));
            run(&mut s, kind, b"n", b"2");
            assert_eq!(ttl(&mut s, b"n", TtlMode::Secs), Owned::Int(-1), "{kind:?}");
        }
        assert_eq!(s.ttl_keys(), 0);
        // SET NX GET / XX GET.
        assert_eq!(
            run(
                &mut s,
                OpKind::Set,
                b"n",
                &xarg(arg::NX | arg::GET, 0, b"3")
            ),
            Owned::Value(b"2".to_vec())
        );
        assert_eq!(
            run(
                &mut s,
                OpKind::Set,
                b"m",
                &xarg(arg::XX | arg::GET, 0, b"3")
            ),
            Owned::NotFound
        );
        assert_eq!(
            run(
                &mut s,
                OpKind::Set,
                b"m",
                &xarg(arg::NX | arg::GET, 0, b"3")
            ),
            Owned::NotFound
        );
        assert_eq!(
            run(
                &mut s,
                OpKind::Set,
                b"m",
                &xarg(arg::XX | arg::GET, at, b"4")
            ),
            Owned::Value(b"3".to_vec())
        );
        assert!(has_ttl(&mut s, b"m"));
        assert_eq!(
            run(&mut s, OpKind::Set, b"m", &xarg(arg::NX, 0, b"5")),
            Owned::NotFound
        );
        assert_eq!(s.get(b"m"), Some(&b"4"[..]));
        assert_eq!(
            run(&mut s, OpKind::Set, b"m", b"short"),
            Owned::Err(OpError::BadArgument)
        );
        assert_eq!(
            run(&mut s, OpKind::Set, b"m", &xarg(0, -5, b"x")),
            Owned::Err(OpError::BadArgument)
        );
    }

    #[test]
    fn expire_conditions_persist_and_getex() {
        let mut s = store(usize::MAX);
        s.set_now(T0);
        let t = |d: i64| T0 as i64 + d;
        let exp =
            |s: &mut Store, f: u8, when: i64| run(s, OpKind::Expire, b"k", &xarg(f, when, b""));
        assert_eq!(exp(&mut s, 0, t(1000)), Owned::Int(0), "missing key");
        run(&mut s, OpKind::Put, b"k", b"v");
        assert_eq!(exp(&mut s, arg::XX, t(1000)), Owned::Int(0));
        assert_eq!(
            exp(&mut s, arg::GT, t(1000)),
            Owned::Int(0),
            "no TTL counts as infinite"
        );
        assert_eq!(exp(&mut s, arg::LT, t(1000)), Owned::Int(1));
        assert_eq!(exp(&mut s, arg::NX, t(2000)), Owned::Int(0));
        assert_eq!(exp(&mut s, arg::GT, t(1000)), Owned::Int(0));
        assert_eq!(exp(&mut s, arg::GT, t(3000)), Owned::Int(1));
        assert_eq!(exp(&mut s, arg::LT, t(5000)), Owned::Int(0));
        assert_eq!(exp(&mut s, arg::XX | arg::LT, t(2000)), Owned::Int(1));
        assert_eq!(ttl(&mut s, b"k", TtlMode::Millis), Owned::Int(2000));
        assert_eq!(run(&mut s, OpKind::Persist, b"k", b""), Owned::Int(1));
        assert_eq!(run(&mut s, OpKind::Persist, b"k", b""), Owned::Int(0));
        assert_eq!(run(&mut s, OpKind::Persist, b"nope", b""), Owned::Int(0));
        // GETEX sets, persists, or deletes with a past time.
        assert_eq!(
            run(&mut s, OpKind::GetEx, b"k", &xarg(arg::REL, 5000, b"")),
            Owned::Value(b"v".to_vec())
        );
        assert_eq!(ttl(&mut s, b"k", TtlMode::Millis), Owned::Int(5000));
        assert_eq!(
            run(&mut s, OpKind::GetEx, b"k", &xarg(0, 0, b"")),
            Owned::Value(b"v".to_vec())
        );
        assert_eq!(ttl(&mut s, b"k", TtlMode::Millis), Owned::Int(5000));
        assert_eq!(
            run(&mut s, OpKind::GetEx, b"k", &xarg(arg::PERSIST, 0, b"")),
            Owned::Value(b"v".to_vec())
        );
        assert_eq!(ttl(&mut s, b"k", TtlMode::Millis), Owned::Int(-1));
        assert_eq!(
            run(&mut s, OpKind::GetEx, b"k", &xarg(0, 1, b"")),
            Owned::Value(b"v".to_vec())
        );
        assert_eq!(
            run(&mut s, OpKind::GetEx, b"k", &xarg(0, 0, b"")),
            Owned::NotFound
        );
        // A past or negative time deletes (and answers 1).
        run(&mut s, OpKind::Put, b"k", b"v");
        assert_eq!(exp(&mut s, 0, -5), Owned::Int(1));
        assert_eq!(run(&mut s, OpKind::Exists, b"k", b""), Owned::Int(0));
        assert_eq!(s.entry_bytes(), 0);
        assert_eq!(s.ttl_keys(), 0);
        assert_eq!(
            run(&mut s, OpKind::Expire, b"k", b""),
            Owned::Err(OpError::BadArgument)
        );
        assert_eq!(
            run(&mut s, OpKind::Ttl, b"k", b""),
            Owned::Err(OpError::BadArgument)
        );
    }

    #[test]
    fn active_expiry_is_bounded_per_slice_and_reclaims_everything() {
        let mut s = store(usize::MAX);
        s.set_now(T0);
        for i in 0..20_000u32 {
            let k = i.to_string();
            let when = if i % 2 == 0 {
                T0 + 1000
            } else {
                T0 + 1_000_000
            };
            run(
                &mut s,
                OpKind::Set,
                k.as_bytes(),
                &xarg(0, when as i64, b"v"),
            );
        }
        for i in 0..1_000u32 {
            run(&mut s, OpKind::Put, format!("p{i}").as_bytes(), b"v");
        }
        // Nothing is due yet: slices only sample.
        let r = s.expire_slice(1024, 256);
        assert_eq!(r.expired, 0);
        assert!(r.slots <= 1024 && r.checked <= 256);
        assert!(s.avg_ttl_ms() > 0);
        s.set_now(T0 + 1000);
        let cap = s.table.capacity();
        let mut calls = 0;
        let mut expired = 0;
        while s.ttl_keys() > 10_000 {
            let r = s.expire_slice(1024, 1024);
            assert!(r.slots <= 1024 && r.checked <= 1024);
            expired += r.expired;
            calls += 1;
            assert!(
                calls <= 2 * cap / 1024 + 2,
                "a pass takes about capacity/budget slices"
            );
        }
        assert_eq!(expired, 10_000);
        assert_eq!(s.counters().expired_keys, 10_000);
        assert_eq!(s.len(), 11_000);
        for i in (1..20_000u32).step_by(2) {
            assert!(s.get(i.to_string().as_bytes()).is_some());
        }
        // The arena holds the live chunks and, per size class (three
        // here), at most about two pages of free ones (compaction).
        let live = (1..20_000)
            .step_by(2)
            .map(|i: u32| {
                let k = i.to_string().len();
                let field = table::field_for(k, 1, Some(T0 + 1_000_000), T0);
                assert_eq!(field, Field::Compact);
                table::entry_charge(k, 1, field)
            })
            .sum::<usize>()
            + (0..1000)
                .map(|i: u32| entry_charge(format!("p{i}").len(), 1))
                .sum::<usize>();
        let held = s.entry_bytes();
        assert!(
            held >= live && held <= live + 3 * 3 * PAGE_BYTES,
            "arena {held} B for {live} B of chunks"
        );
    }

    fn fill(s: &mut Store, n: u32, ttl_every: u32) -> (u32, u32) {
        let (mut ok, mut oom) = (0, 0);
        for i in 0..n {
            let k = format!("key{i}");
            let r = if ttl_every > 0 && i % ttl_every == 0 {
                run(
                    s,
                    OpKind::Set,
                    k.as_bytes(),
                    &xarg(arg::REL, 1_000_000 + i as i64, &[b'x'; 32]),
                )
            } else {
                run(s, OpKind::Put, k.as_bytes(), &[b'x'; 32])
            };
            match r {
                Owned::Ok => ok += 1,
                Owned::Err(OpError::OutOfMemory) => oom += 1,
                other => panic!("{other:?}"),
            }
        }
        (ok, oom)
    }

    #[test]
    fn evicted_keys_are_kept_for_the_log_only_when_asked() {
        let limit = empty_bytes() + 2 * PAGE_BYTES;
        let mut s = store(limit);
        s.set_policy(Policy::AllKeysRandom);
        fill(&mut s, 3000, 0);
        assert!(s.counters().evicted_keys > 0);
        assert!(!s.has_evicted(), "not kept unless asked");
        s.keep_evicted(true);
        let before = s.counters().evicted_keys;
        for i in 3000..3300 {
            run(
                &mut s,
                OpKind::Put,
                format!("key{i}").as_bytes(),
                &[b'x'; 32],
            );
        }
        let mut gone = Vec::new();
        s.drain_evicted(|db, k| {
            assert_eq!(db, 0);
            gone.push(k.to_vec())
        });
        assert_eq!(gone.len() as u64, s.counters().evicted_keys - before);
        for k in &gone {
            assert!(k.starts_with(b"key") && s.get(k).is_none());
        }
        assert!(!s.has_evicted(), "drained");
    }

    #[test]
    fn every_policy_keeps_the_store_within_its_limit() {
        // Two pages (about 710 keys of 44-byte entries and, with the
        // compact form's 1 byte more, 44 or 48-byte ones: a page per class
        // in use).
        let limit = empty_bytes() + 2 * PAGE_BYTES;
        for p in evict::POLICIES {
            let mut s = store(limit);
            s.set_now(T0);
            s.set_policy(p);
            let (ok, oom) = fill(&mut s, 3000, 2);
            assert!(s.used_bytes() <= limit, "{p}");
            match p {
                Policy::NoEviction => {
                    assert!(ok < 750 && oom > 0, "{p}: {ok}");
                    assert_eq!(s.counters().evicted_keys, 0);
                }
                _ if p.volatile() => {
                    // Only keys with a TTL go; once none is left, OOM.
                    assert!(oom > 0, "{p}");
                    assert!(s.counters().evicted_keys > 0, "{p}");
                }
                _ => {
                    assert_eq!((ok, oom), (3000, 0), "{p}");
                    // About 700 keys fit in the two pages.
                    let evicted = s.counters().evicted_keys;
                    assert!(evicted >= 2250, "{p}: {evicted}");
                }
            }
        }
    }

    /// Samples taken ahead by one eviction are used by a later one, after
    /// the table may have shrunk or another database been selected: they
    /// are checked then (a slot past the array's end is no sample), and
    /// every write at the limit still evicts instead of failing.
    #[test]
    fn samples_taken_ahead_survive_a_flush_and_a_switch() {
        for p in [Policy::AllKeysLru, Policy::AllKeysLfu, Policy::VolatileTtl] {
            let mut s = store(usize::MAX);
            s.set_policy(p);
            // A big table (about 8 000 slots), then a limit a few pages
            // high: the limit evicts by sampling it.
            assert_eq!(fill(&mut s, 6000, 1), (6000, 0));
            s.set_max_memory(empty_bytes() + 3 * PAGE_BYTES + 500);
            let n = s.evict_over_limit(usize::MAX);
            assert!(n > 4000, "{p}: {n}");
            // Back to the smallest table: what was sampled ahead points past
            // its end.
            s.clear();
            assert_eq!(fill(&mut s, 3000, 1), (3000, 0), "{p}");
            assert!(s.counters().evicted_keys > n as u64, "{p}");
            // Another database at the limit: samples taken in database 0 are
            // not used in 1.
            s.select(1);
            assert_eq!(fill(&mut s, 500, 1), (500, 0), "{p}");
            s.select(0);
            assert_eq!(fill(&mut s, 3000, 1), (3000, 0), "{p}");
        }
    }

    #[test]
    fn the_slot_array_is_charged_and_stops_doubling_at_the_limit() {
        let per = entry_charge(5, 32);
        assert_eq!(per, 44);
        assert_eq!(entry_charge(0, 0), 8);
        assert_eq!(
            entry_charge(1, 150_000),
            (9 + 2 + 1 + 150_000usize).div_ceil(PAGE_BYTES) * PAGE_BYTES
        );
        // Room for three pages of 44-byte entries (1116), but the 943rd key
        // would grow the 1024-slot array (load 0.92) by 1032 bytes, which
        // do not fit.
        let limit = empty_bytes() + 3 * PAGE_BYTES + 500;
        let mut s = store(limit);
        s.set_policy(Policy::AllKeysLru);
        let (ok, oom) = fill(&mut s, 2000, 0);
        assert_eq!((ok, oom), (2000, 0));
        assert_eq!(s.used_bytes(), empty_bytes() + s.entry_bytes());
        assert_eq!(s.len(), 942, "evicts instead of growing");
        let mut s = store(limit);
        let (ok, _) = fill(&mut s, 2000, 0);
        assert_eq!(ok, 942, "noeviction: OOM once the array cannot grow");
        s.set_max_memory(usize::MAX);
        run(&mut s, OpKind::Put, b"more", b"v");
        assert!(s.used_bytes() > empty_bytes() + s.entry_bytes());
        assert_eq!(s.used_bytes(), s.table.bytes() + s.entry_bytes());
    }

    /// The next slot array is prepared only when all of it fits under the
    /// limit, is charged while it waits, and is what the growth takes.
    #[test]
    fn growth_is_prepared_only_within_the_limit() {
        // Past the first growth to a 2 MiB array (~235 K keys), to within
        // 1/16 of the next one.
        let mut s = store(usize::MAX);
        let mut n = 0u32;
        while !s.table.growth_near() {
            run(&mut s, OpKind::Put, format!("k{n}").as_bytes(), b"v");
            n += 1;
        }
        // A limit that leaves less room than the array: nothing prepared.
        let used = s.used_bytes();
        s.set_max_memory(used + s.table.spare_left() - 1);
        assert_eq!(s.prepare_growth(1 << 20), 0);
        assert_eq!(s.used_bytes(), used);
        // Room for it: prepared a slice at a time, and charged.
        s.set_max_memory(used + s.table.spare_left());
        assert_eq!(s.prepare_growth(1 << 20), 1 << 20);
        assert_eq!(s.used_bytes(), used + (1 << 20));
        // The limit drops: what was prepared is given back.
        s.set_max_memory(used + 1000);
        assert_eq!(s.prepare_growth(1 << 20), 0);
        assert_eq!(s.used_bytes(), used);
        // Prepared in full, then the growth: the same charge as without.
        s.set_max_memory(usize::MAX);
        while s.prepare_growth(1 << 20) > 0 {}
        let cap = s.table.capacity();
        while s.table.capacity() == cap {
            run(&mut s, OpKind::Put, format!("k{n}").as_bytes(), b"v");
            n += 1;
        }
        assert_eq!(s.used_bytes(), s.table.bytes() + s.entry_bytes());
        assert_eq!(s.table.bytes(), s.table.capacity() * 8);
    }

    #[test]
    fn lru_and_sieve_keep_a_hot_set() {
        // 50 hot keys read between every write of a stream of cold keys:
        // LRU, LFU and SIEVE keep nearly all hot keys; random does not.
        for p in [
            Policy::AllKeysLru,
            Policy::AllKeysLfu,
            Policy::Sieve,
            Policy::AllKeysRandom,
        ] {
            let mut s = Store::new(StoreLimits {
                max_key_len: 16,
                max_value_len: 64,
                // 16 pages: about 5 000 keys (44-byte entries, 8-byte
                // slots).
                max_memory: empty_bytes() + 16 * PAGE_BYTES,
            });
            s.set_policy(p);
            let mut now = T0;
            for i in 0..50u32 {
                run(
                    &mut s,
                    OpKind::Put,
                    format!("hot{i:03}").as_bytes(),
                    &[b'h'; 32],
                );
            }
            for i in 0..30_000u32 {
                now += 1000;
                s.set_now(now);
                for h in 0..50u32 {
                    if (i + h) % 5 == 0 {
                        run(&mut s, OpKind::Get, format!("hot{h:03}").as_bytes(), b"");
                    }
                }
                run(
                    &mut s,
                    OpKind::Put,
                    format!("c{i:05}").as_bytes(),
                    &[b'c'; 32],
                );
            }
            let hot = (0..50u32)
                .filter(|h| s.get(format!("hot{h:03}").as_bytes()).is_some())
                .count();
            eprintln!("{p}: {hot} hot keys kept");
            if p == Policy::AllKeysRandom {
                assert!(hot < 10, "{p}: {hot}");
            } else {
                assert!(hot >= 35, "{p}: {hot}");
            }
        }
    }

    #[test]
    fn volatile_ttl_evicts_the_soonest_and_limits_can_shrink() {
        // One page holds 16 entries of 1 KiB (2-byte keys, 1000-byte
        // values, header, metadata and expiry: 1014 B in 1024-byte chunks).
        assert_eq!(table::entry_charge(2, 1000, Field::Narrow), 1024);
        let mut s = Store::new(StoreLimits {
            max_key_len: 16,
            max_value_len: 1000,
            max_memory: empty_bytes() + PAGE_BYTES,
        });
        s.set_now(T0);
        s.set_policy(Policy::VolatileTtl);
        for i in 0..16u8 {
            let k = [b'k', b'a' + i];
            let r = run(
                &mut s,
                OpKind::Set,
                &k,
                &xarg(arg::REL, 10_000 + (i as i64) * 1000, &[b'v'; 1000]),
            );
            assert_eq!(r, Owned::Ok);
        }
        assert_eq!(s.counters().evicted_keys, 0);
        run(
            &mut s,
            OpKind::Set,
            b"kx",
            &xarg(arg::REL, 100_000, &[b'v'; 1000]),
        );
        // The soonest sampled one went; the latest stays.
        assert_eq!(s.counters().evicted_keys, 1);
        assert!(s.get(b"kp").is_some());
        // A lower limit: noeviction evicts nothing; volatile-ttl evicts
        // until the page is given back.
        s.set_policy(Policy::NoEviction);
        s.set_max_memory(empty_bytes() + PAGE_BYTES / 2);
        assert_eq!(s.evict_over_limit(100), 0);
        s.set_policy(Policy::VolatileTtl);
        // Sampling a nearly empty slot array can come back empty-handed
        // (as the shard's timer does, call again).
        let mut evicted = 0;
        for _ in 0..100 {
            evicted += s.evict_over_limit(100);
        }
        assert_eq!(evicted, 16);
        assert_eq!(s.used_bytes(), empty_bytes());
    }
}
