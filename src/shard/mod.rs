//! A shard: one core's partition, the flume mesh between a node's shards, and
//! forwarding. This is the only place that knows other cores exist.
//!
//! Every shard runs on its own pinned glommio executor and owns a
//! [`Store`] inside a `RefCell` behind an `Rc`: the state is `!Send` by
//! construction, so nothing on the data path can be shared or locked. Shards
//! talk only by sending owned messages ([`ShardMsg`]) over unbounded flume
//! channels, one receiver per shard (Seastar's `invoke_on`, glommio's
//! sharding example).
//!
//! [`Shard::execute`] runs a batch from any front end (native frames or RESP
//! commands, through [`OpSource`] and [`ReplySink`]):
//!
//! Ownership is the cluster's ([`crate::cluster::ClusterMap`]): a key's hash
//! slot ([`key_slot`]) and one table lookup give its owner `(node, shard)`.
//! A shard that owns all 16384 slots (one shard, one node) skips both: every
//! key is its own, and CRC16 was 8–9 % of its time on the seed workload.
//!
//! * **owner is this shard** (the first `if`): the op runs here, straight
//!   into the reply sink, hashed once by the prefetch pipeline (`Prefetch`)
//!   that overlaps the cache misses of the next ops; the forwarding
//!   machinery costs nothing;
//! * **otherwise** — from the first foreign key on, the rest of the batch
//!   takes the mixed path: it is routed (reusing the slots and hashes the
//!   pipeline already has, so no key is hashed twice), ops of other shards
//!   of this node are grouped per owner shard into one owned [`Batch`] each
//!   (with their hashes, so owners do not hash again), sent, and their
//!   replies merged back so results stay in request order; an op whose slot
//!   another **node** owns is not executed and answered with
//!   [`OpResult::Moved`] (never a local write).
//!
//! Ordering: a connection's batches are executed one after another, and all
//! ops on one key go to the one owner in order, so per-key order (and with it
//! linearizability) holds across forwarding.
//!
//! Multi-key commands whose keys live on several shards run as transactions
//! ([`txn`]: ordered intents). While a transaction holds an intent on a key
//! of this shard, a batch (local or forwarded) that would conflict with it
//! waits for the release; while none is held, a batch pays one `Cell` read.
//!
//! The store's clock is set once per batch (one `clock_gettime`, not one
//! per op). [`Shard::run_maintenance`] is this shard's own glommio timer
//! task: every [`EXPIRE_INTERVAL`] it runs a bounded active-expiry slice
//! between batches (no lock, no timer shared with other shards). CONFIG SET
//! of the memory limit or policy reaches every shard as a
//! [`ShardMsg::Configure`].
//!
//! Counters are published once per batch into this node's [`NodeState`]
//! (one cache-padded slot per shard, single writer, relaxed atomics), where
//! the stats line and STATS requests read them without messaging.

pub mod keyspace;

pub use keyspace::{KeyspaceReply, KeyspaceReq};

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::cluster::ClusterMap;
use crate::op::{Op, OpError, OpKind, OpResult, OpSource, ReplySink};
use crate::persist::log::Aof;
use crate::persist::record::RecordOp;
use crate::protocol::native::{Batch, BatchReply, Hello, NodeStats, ShardStats, PROTOCOL_VERSION};
use crate::routing::{key_hash, key_slot, Owner, NR_SLOTS};
use crate::store::evict::POLICIES;
use crate::store::{unix_now_ms, Policy, Store, StoreLimits};

pub mod txn;

/// Counters one shard publishes for the rest of the node to read.
#[derive(Default)]
pub struct ShardSlot {
    ops: AtomicU64,
    gets: AtomicU64,
    puts: AtomicU64,
    dels: AtomicU64,
    keys: AtomicU64,
    memory_used: AtomicU64,
    connections: AtomicU64,
    conn_memory: AtomicU64,
    errors: AtomicU64,
    forwarded_out: AtomicU64,
    forwarded_in: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    // Persistence, published only when the shard has a log.
    aof_size: AtomicU64,
    aof_base_size: AtomicU64,
    aof_buffered: AtomicU64,
    aof_failed: AtomicU64,
    rewrite_running: AtomicU64,
    rewrite_failed: AtomicU64,
    rewrites: AtomicU64,
    last_save: AtomicU64,
    snapshot_max_pause_us: AtomicU64,
    aof_writes: AtomicU64,
    aof_fsyncs: AtomicU64,
    aof_write_us: AtomicU64,
    aof_fsync_us: AtomicU64,
    aof_written_bytes: AtomicU64,
    expires: AtomicU64,
    avg_ttl_ms: AtomicU64,
    expired_keys: AtomicU64,
    evicted_keys: AtomicU64,
    /// Per database: keys, keys with a TTL, average TTL (INFO keyspace,
    /// DBSIZE).
    dbs: Box<[DbSlot]>,
}

/// One database's published figures in a [`ShardSlot`].
#[derive(Default)]
struct DbSlot {
    keys: AtomicU64,
    expires: AtomicU64,
    avg_ttl_ms: AtomicU64,
}

/// One database's figures over a node's shards (INFO keyspace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Keys.
    pub keys: u64,
    /// Keys with a TTL.
    pub expires: u64,
    /// Average TTL left on keys with one (ms), weighted by each shard's count.
    pub avg_ttl_ms: u64,
}

/// Expiry and eviction counters of a node, summed over its shards (INFO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Keys with a TTL.
    pub expires: u64,
    /// Average TTL left on keys with one (ms), weighted by each shard's count.
    pub avg_ttl_ms: u64,
    /// Keys removed because their TTL passed.
    pub expired_keys: u64,
    /// Keys evicted to make room.
    pub evicted_keys: u64,
}

/// One shard's cache counters (kept apart from [`ShardStats`], a wire
/// format): GET hits and misses, keys with a TTL, expired and evicted keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keyspace {
    /// GETs that found their key.
    pub hits: u64,
    /// GETs that did not.
    pub misses: u64,
    /// Keys with a TTL.
    pub expires: u64,
    /// Keys removed because their TTL passed.
    pub expired_keys: u64,
    /// Keys evicted to make room.
    pub evicted_keys: u64,
}

/// The node's persistence state, summed or combined over its shards (INFO
/// persistence, LASTSAVE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistStats {
    /// `--appendonly yes`.
    pub enabled: bool,
    /// `--appendfsync` (Redis's name).
    pub fsync: &'static str,
    /// Bytes in the shards' current logs.
    pub aof_size: u64,
    /// Bytes those logs had after their last rewrite.
    pub aof_base_size: u64,
    /// Bytes appended but not yet written.
    pub aof_buffered: u64,
    /// Some shard's last log write failed (errno), 0 when none.
    pub aof_failed_errno: u64,
    /// Shards snapshotting now.
    pub rewrites_running: u64,
    /// Some shard's last snapshot failed.
    pub rewrite_failed: bool,
    /// Snapshots done (shard snapshots, summed).
    pub rewrites: u64,
    /// Unix seconds by which every shard had its last snapshot (the oldest).
    pub last_save: u64,
    /// Longest slice a shard's last snapshot held it, µs.
    pub snapshot_max_pause_us: u64,
    /// Log writes done (one per group commit that had records).
    pub aof_writes: u64,
    /// fdatasyncs done on the logs.
    pub aof_fsyncs: u64,
    /// µs spent in log writes (submission to completion), summed.
    pub aof_write_us: u64,
    /// µs spent in fdatasyncs, summed.
    pub aof_fsync_us: u64,
    /// Bytes written to the logs (whole blocks, with the rewritten tail).
    pub aof_written_bytes: u64,
}
/// The ports a node listens on, known once every shard has bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Native port per shard.
    pub shard_ports: Vec<u16>,
    /// Node-level RESP port (0: none).
    pub resp_port: u16,
    /// RESP port per shard (empty: none).
    pub resp_shard_ports: Vec<u16>,
}

/// What a node's shards share: identity, layout, published counters and the
/// memory settings CONFIG SET changes (each shard also holds its own copy,
/// updated by message). `Send + Sync`; nothing on the data path reads it
/// except to publish.
pub struct NodeState {
    /// This node's id.
    pub node_id: u32,
    /// Each shard's memory budget at start-up.
    pub shard_memory: usize,
    /// Each shard's budget for connection buffers (`--max-conn-memory`
    /// split evenly over shards).
    pub shard_conn_memory: usize,
    /// The node's memory limit as last set (0: none), bytes.
    max_memory: AtomicU64,
    /// The eviction policy as last set (index into [`POLICIES`]).
    policy: AtomicU8,
    started: Instant,
    slots: Vec<CachePadded<ShardSlot>>,
    layout: OnceLock<Layout>,
    persist: OnceLock<(bool, &'static str)>,
    cluster: OnceLock<Arc<ClusterMap>>,
    /// Databases per shard (`--databases`; 1 in cluster mode).
    databases: usize,
    /// Started with `--cluster` (Redis Cluster's rules: database 0 only).
    cluster_mode: bool,
}

impl NodeState {
    /// State for a node of `nr_shards` shards.
    pub fn new(
        node_id: u32,
        nr_shards: usize,
        shard_memory: usize,
        shard_conn_memory: usize,
    ) -> NodeState {
        let max_memory = if shard_memory == usize::MAX {
            0
        } else {
            shard_memory as u64 * nr_shards as u64
        };
        NodeState {
            node_id,
            shard_memory,
            shard_conn_memory,
            max_memory: AtomicU64::new(max_memory),
            policy: AtomicU8::new(policy_index(Policy::NoEviction)),
            started: Instant::now(),
            slots: (0..nr_shards)
                .map(|_| CachePadded::new(ShardSlot::default()))
                .collect(),
            layout: OnceLock::new(),
            persist: OnceLock::new(),
            cluster: OnceLock::new(),
            databases: 0,
            cluster_mode: false,
        }
        .with_databases(crate::store::DEFAULT_DATABASES)
    }

    /// The same state for shards of `databases` databases (before sharing).
    pub fn with_databases(mut self, databases: usize) -> NodeState {
        self.databases = databases;
        for s in self.slots.iter_mut() {
            s.dbs = (0..databases).map(|_| DbSlot::default()).collect();
        }
        self
    }

    /// The same state for a node started with `--cluster` (`true`).
    pub fn with_cluster_mode(mut self, on: bool) -> NodeState {
        self.cluster_mode = on;
        self
    }

    /// Started with `--cluster`.
    pub fn cluster_mode(&self) -> bool {
        self.cluster_mode
    }

    /// Databases per shard.
    pub fn databases(&self) -> usize {
        self.databases
    }

    /// Keys of database `db` in each shard (as last published).
    pub fn db_keys_per_shard(&self, db: usize) -> Vec<u64> {
        self.slots
            .iter()
            .map(|s| s.dbs.get(db).map_or(0, |d| d.keys.load(Relaxed)))
            .collect()
    }

    /// One database's figures summed over the shards (as last published).
    pub fn db_stats(&self, db: usize) -> DbStats {
        let mut d = DbStats::default();
        let mut ttl_weighted = 0u128;
        for s in &self.slots {
            let Some(x) = s.dbs.get(db) else { continue };
            d.keys += x.keys.load(Relaxed);
            let n = x.expires.load(Relaxed);
            d.expires += n;
            ttl_weighted += n as u128 * x.avg_ttl_ms.load(Relaxed) as u128;
        }
        if d.expires > 0 {
            d.avg_ttl_ms = (ttl_weighted / d.expires as u128) as u64;
        }
        d
    }

    /// Records the persistence mode (once, at start-up).
    pub fn set_persistence(&self, enabled: bool, fsync: &'static str) {
        let _ = self.persist.set((enabled, fsync));
    }

    /// The persistence state over every shard.
    pub fn persist_stats(&self) -> PersistStats {
        let (enabled, fsync) = self.persist.get().copied().unwrap_or((false, "everysec"));
        let mut p = PersistStats {
            enabled,
            fsync,
            last_save: u64::MAX,
            ..PersistStats::default()
        };
        for s in &self.slots {
            p.aof_size += s.aof_size.load(Relaxed);
            p.aof_base_size += s.aof_base_size.load(Relaxed);
            p.aof_buffered += s.aof_buffered.load(Relaxed);
            p.aof_failed_errno = p.aof_failed_errno.max(s.aof_failed.load(Relaxed));
            p.rewrites_running += s.rewrite_running.load(Relaxed);
            p.rewrite_failed |= s.rewrite_failed.load(Relaxed) != 0;
            p.rewrites += s.rewrites.load(Relaxed);
            p.last_save = p.last_save.min(s.last_save.load(Relaxed));
            p.aof_writes += s.aof_writes.load(Relaxed);
            p.aof_fsyncs += s.aof_fsyncs.load(Relaxed);
            p.aof_write_us += s.aof_write_us.load(Relaxed);
            p.aof_fsync_us += s.aof_fsync_us.load(Relaxed);
            p.aof_written_bytes += s.aof_written_bytes.load(Relaxed);
            p.snapshot_max_pause_us = p
                .snapshot_max_pause_us
                .max(s.snapshot_max_pause_us.load(Relaxed));
        }
        if p.last_save == u64::MAX {
            p.last_save = 0;
        }
        p
    }

    /// Unix seconds when the node started.
    pub fn started_unix(&self) -> u64 {
        crate::persist::now_ms() / 1000 - self.started.elapsed().as_secs()
    }

    /// Sets the cluster map (once, at start-up, before shards start).
    pub fn set_cluster(&self, map: Arc<ClusterMap>) {
        let _ = self.cluster.set(map);
    }

    /// The cluster map; a one-node cluster at `127.0.0.1:0` if none was set
    /// (unit tests that build shards by hand).
    pub fn cluster(&self) -> Arc<ClusterMap> {
        self.cluster
            .get_or_init(|| {
                Arc::new(ClusterMap::single(
                    "127.0.0.1:0".to_string(),
                    self.nr_shards(),
                ))
            })
            .clone()
    }

    /// Number of shards.
    pub fn nr_shards(&self) -> usize {
        self.slots.len()
    }

    /// The node's memory limit (0: none), bytes.
    pub fn max_memory(&self) -> u64 {
        self.max_memory.load(Relaxed)
    }

    /// The eviction policy.
    pub fn policy(&self) -> Policy {
        POLICIES[self.policy.load(Relaxed) as usize % POLICIES.len()]
    }

    /// Records the memory settings (the shards get them by message, or at
    /// start-up from the configuration).
    pub fn record_memory(&self, max_memory: u64, policy: Policy) {
        self.max_memory.store(max_memory, Relaxed);
        self.policy.store(policy_index(policy), Relaxed);
    }

    /// A shard's budget for a node limit of `max_memory` (0: none).
    pub fn shard_budget(&self, max_memory: u64) -> usize {
        if max_memory == 0 {
            usize::MAX
        } else {
            (max_memory / self.nr_shards().max(1) as u64).min(usize::MAX as u64) as usize
        }
    }

    /// Expiry and eviction counters summed over the shards.
    pub fn cache_stats(&self) -> CacheStats {
        let mut c = CacheStats::default();
        let mut ttl_weighted = 0u128;
        for s in &self.slots {
            let n = s.expires.load(Relaxed);
            c.expires += n;
            ttl_weighted += n as u128 * s.avg_ttl_ms.load(Relaxed) as u128;
            c.expired_keys += s.expired_keys.load(Relaxed);
            c.evicted_keys += s.evicted_keys.load(Relaxed);
        }
        if c.expires > 0 {
            c.avg_ttl_ms = (ttl_weighted / c.expires as u128) as u64;
        }
        c
    }

    /// Sets the layout (once, at start-up).
    pub fn set_layout(&self, layout: Layout) {
        let _ = self.layout.set(layout);
    }

    /// The layout, once start-up is complete.
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.get()
    }

    /// The HELLO answer as given by `shard_id`.
    pub fn hello(&self, shard_id: usize) -> Hello {
        let l = self.layout().cloned().unwrap_or(Layout {
            shard_ports: vec![],
            resp_port: 0,
            resp_shard_ports: vec![],
        });
        let cluster = self.cluster();
        Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: self.node_id,
            shard_id: shard_id as u32,
            shard_ports: l.shard_ports,
            resp_port: l.resp_port,
            resp_shard_ports: l.resp_shard_ports,
            cluster: cluster.nodes.clone(),
            cluster_digest: cluster.digest,
        }
    }

    /// Every shard's cache counters.
    pub fn keyspace(&self) -> Vec<Keyspace> {
        self.slots
            .iter()
            .map(|s| Keyspace {
                hits: s.hits.load(Relaxed),
                misses: s.misses.load(Relaxed),
                expires: s.expires.load(Relaxed),
                expired_keys: s.expired_keys.load(Relaxed),
                evicted_keys: s.evicted_keys.load(Relaxed),
            })
            .collect()
    }

    /// A snapshot of every shard's counters.
    pub fn stats(&self) -> NodeStats {
        let limit = if self.shard_memory == usize::MAX {
            u64::MAX
        } else {
            self.shard_memory as u64
        };
        NodeStats {
            node_id: self.node_id,
            uptime_secs: self.started.elapsed().as_secs_f64(),
            shards: self
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| ShardStats {
                    shard_id: i as u32,
                    ops: s.ops.load(Relaxed),
                    gets: s.gets.load(Relaxed),
                    puts: s.puts.load(Relaxed),
                    dels: s.dels.load(Relaxed),
                    keys: s.keys.load(Relaxed),
                    memory_used: s.memory_used.load(Relaxed),
                    memory_limit: limit,
                    connections: s.connections.load(Relaxed),
                    conn_memory_used: s.conn_memory.load(Relaxed),
                    conn_memory_limit: self.shard_conn_memory as u64,
                    errors: s.errors.load(Relaxed),
                    forwarded_out: s.forwarded_out.load(Relaxed),
                    forwarded_in: s.forwarded_in.load(Relaxed),
                })
                .collect(),
        }
    }
}

/// A message from one shard to another. Owned data only.
pub enum ShardMsg {
    /// Execute ops this shard owns and reply with their results in order.
    Execute {
        /// The database the whole batch runs in.
        db: u16,
        /// The ops.
        batch: Batch,
        /// Their placement hashes, computed by the sender.
        hashes: Vec<u64>,
        /// Where the results go.
        reply: flume::Sender<BatchReply>,
        /// Value bytes the reply may carry; values past it are answered
        /// with [`OpError::ReplyTooLarge`] (the requesting connection's
        /// reply bound).
        max_values: usize,
    },
    /// The keys of one cluster slot this shard holds (at most `limit`),
    /// and how many there are.
    SlotKeys {
        /// The slot.
        slot: u16,
        /// Most keys to return.
        limit: usize,
        /// `(count, keys)`.
        reply: flume::Sender<(usize, Vec<Vec<u8>>)>,
    },
    /// Remove every key (FLUSHALL) and acknowledge.
    Flush {
        /// Acknowledgement.
        reply: flume::Sender<()>,
    },
    /// A keyspace request (see [`KeyspaceReq`]); the answer comes back on
    /// `reply`.
    Keyspace {
        /// What to do.
        req: KeyspaceReq,
        /// The answer.
        reply: flume::Sender<KeyspaceReply>,
    },
    /// Snapshot this shard and start a new log (BGREWRITEAOF, BGSAVE,
    /// SAVE); the reply comes when the snapshot is in place.
    Rewrite {
        /// The outcome.
        reply: flume::Sender<Result<(), String>>,
    },
    /// A cross-shard transaction's acquire or apply ([`txn`]).
    Txn(txn::TxnMsg),
    /// Take a new memory budget and eviction policy (CONFIG SET).
    Configure {
        /// This shard's budget (`usize::MAX`: none).
        max_memory: usize,
        /// The policy.
        policy: Policy,
        /// Acknowledgement.
        reply: flume::Sender<()>,
    },
}

/// Table slots walked per snapshot slice: the longest the snapshot holds
/// the shard at once is one such slice (about half as many keys).
pub const SNAPSHOT_SLICE_SLOTS: usize = 4096;

/// A [`BatchReply`] that refuses values past `max_values` bytes with
/// [`OpError::ReplyTooLarge`] (the op itself runs).
pub struct BoundedReply<'a> {
    /// The reply being built.
    pub reply: &'a mut BatchReply,
    /// Most value bytes it may hold.
    pub max_values: usize,
}

impl ReplySink for BoundedReply<'_> {
    #[inline]
    fn push(&mut self, r: OpResult<'_>) {
        match r {
            OpResult::Value(v) if self.reply.values.len() + v.len() > self.max_values => {
                self.reply.push(OpResult::Err(OpError::ReplyTooLarge))
            }
            r => self.reply.push(r),
        }
    }

    fn value_budget(&self) -> usize {
        self.max_values.saturating_sub(self.reply.values.len())
    }
}

fn policy_index(p: Policy) -> u8 {
    POLICIES.iter().position(|&q| q == p).unwrap_or(0) as u8
}

/// How often a shard runs an active-expiry slice.
pub const EXPIRE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
/// Slots one active-expiry slice walks at most.
pub const EXPIRE_SLICE_SLOTS: usize = 4096;
/// Keys with a TTL one slice reads the expiry of at most.
pub const EXPIRE_SLICE_CHECKS: usize = 1024;
/// Extra back-to-back slices per tick while a quarter or more of the keys
/// checked had expired (Redis's "fast cycle" idea), yielding between them.
pub const EXPIRE_EXTRA_SLICES: usize = 9;
/// Keys one tick evicts at most when a lowered limit left the shard over it.
pub const EVICT_PER_TICK: usize = 4096;
/// Bytes of the next slot array one tick fills ahead of a table's growth
/// ([`Store::prepare_growth`]): 128 small page faults, ~0.2 ms on the
/// project's VM; 6.5 MiB (a 700 K-key table's next array) in about 13 ticks.
pub const GROWTH_SLICE_BYTES: usize = 512 << 10;

/// One core's shard. Lives in an `Rc` on its executor; `!Send`.
pub struct Shard {
    /// This shard's id within its node.
    pub shard_id: usize,
    /// Shards in this node.
    pub nr_shards: usize,
    /// The node this shard belongs to.
    pub node: Arc<NodeState>,
    /// The cluster map (slot → owner).
    pub cluster: Arc<ClusterMap>,
    /// This shard as a slot owner: `(node_id, shard_id)`.
    me: Owner,
    /// This shard owns all 16384 slots (a one-shard, one-node cluster): no
    /// key needs its cluster slot to be routed, so the fast path skips
    /// CRC16 (the slot table is immutable once the shard exists).
    owns_all_slots: bool,
    store: RefCell<Store>,
    mesh: Vec<flume::Sender<ShardMsg>>,
    connections: Cell<u64>,
    /// Bytes of connection buffers held by this shard's connections.
    conn_memory: Cell<usize>,
    /// Rejected frames/commands (not per-op errors, which the store counts).
    protocol_errors: Cell<u64>,
    forwarded_out: Cell<u64>,
    forwarded_in: Cell<u64>,
    ops: Cell<u64>,
    /// The append-only log, when persistence is on.
    log: Option<Rc<Aof>>,
    /// Intents of cross-shard transactions on this shard's keys ([`txn`]).
    intents: txn::Intents,
    /// [`Store::tables_changed`] when every database was last published.
    published_tables: Cell<u64>,
}

/// How many operations ahead of execution the fast path hashes a key and
/// prefetches its table slot ([`Store::prefetch_slot`]).
const SLOT_AHEAD: usize = 16;
/// How many operations ahead it prefetches the entry itself
/// ([`Store::prefetch_entry`]), once the slot is likely cached. Both are
/// enough to overlap several cache misses, few enough that the lines are
/// still cached when used.
const ENTRY_AHEAD: usize = 8;

/// Marks an entry of the mixed path's owner list as another node's key:
/// `OTHER_NODE | slot << 16 | node_id`.
const OTHER_NODE: u32 = 1 << 31;

/// The fast path's software pipeline: op `i + SLOT_AHEAD` is hashed (its
/// store hash and its cluster slot) and its table slot prefetched, op
/// `i + ENTRY_AHEAD` (slot now cached) has its entry prefetched, op `i`
/// executes. `ring` and `slots` hold the hashes and cluster slots of ops
/// `i..i + SLOT_AHEAD`, so each key goes through each function once — also
/// when the batch turns to the mixed path, which takes what is known here.
struct Prefetch {
    ring: [u64; SLOT_AHEAD],
    slots: [u16; SLOT_AHEAD],
    len: usize,
    /// Whether cluster slots are computed (false when the shard owns every
    /// slot: `slots` then stays zero and is never read).
    with_slots: bool,
}

impl Prefetch {
    /// Hashes the first ops and starts loading their slots and entries.
    #[inline]
    fn start<S: OpSource + ?Sized>(batch: &S, store: &Store, with_slots: bool) -> Prefetch {
        let len = batch.len();
        let mut ring = [0u64; SLOT_AHEAD];
        let mut slots = [0u16; SLOT_AHEAD];
        for j in 0..len.min(SLOT_AHEAD) {
            let key = batch.key(j);
            ring[j] = key_hash(key);
            if with_slots {
                slots[j] = key_slot(key);
            }
            store.prefetch_slot(ring[j]);
        }
        for h in ring.iter().take(len.min(ENTRY_AHEAD)) {
            store.prefetch_entry(*h);
        }
        Prefetch {
            ring,
            slots,
            len,
            with_slots,
        }
    }

    /// The cluster slot of op `i` (same window as [`Prefetch::hash`]).
    #[inline]
    fn slot(&self, i: usize) -> u16 {
        self.slots[i % SLOT_AHEAD]
    }

    /// The hash of op `i`, valid while `i` is among the next `SLOT_AHEAD`
    /// ops not yet passed to [`Prefetch::advance`].
    #[inline]
    fn hash(&self, i: usize) -> u64 {
        self.ring[i % SLOT_AHEAD]
    }

    /// Op `i` is about to execute: prefetch the entry of `i + ENTRY_AHEAD`,
    /// hash `i + SLOT_AHEAD` into `i`'s place and prefetch its slot.
    #[inline]
    fn advance<S: OpSource + ?Sized>(&mut self, batch: &S, store: &Store, i: usize) {
        if i + ENTRY_AHEAD < self.len {
            store.prefetch_entry(self.ring[(i + ENTRY_AHEAD) % SLOT_AHEAD]);
        }
        if i + SLOT_AHEAD < self.len {
            let key = batch.key(i + SLOT_AHEAD);
            let h = key_hash(key);
            self.ring[i % SLOT_AHEAD] = h;
            if self.with_slots {
                self.slots[i % SLOT_AHEAD] = key_slot(key);
            }
            store.prefetch_slot(h);
        }
    }
}

/// How the execution loop logs writes. Monomorphised twice: [`NoLog`]
/// (persistence off) compiles to the plain loop, so the in-memory path pays
/// only the one `Option` check per batch in [`Shard::execute`].
trait Logger {
    /// False for [`NoLog`]: every logging branch is removed at compile time.
    const ON: bool;
    /// Writes are refused (the log cannot be written).
    fn refuse_writes(&self) -> bool;
    /// Logs the effect of a write whose result was `seen`: the key's state
    /// in `store` afterwards.
    fn record(&self, store: &Store, kind: OpKind, key: &[u8], hash: u64, seen: Seen);
    /// Logs that `key` of database `db` is gone (evicted to make room).
    fn deleted(&self, db: u16, key: &[u8]);
}

/// Persistence off.
struct NoLog;

impl Logger for NoLog {
    const ON: bool = false;
    #[inline(always)]
    fn refuse_writes(&self) -> bool {
        false
    }
    #[inline(always)]
    fn record(&self, _: &Store, _: OpKind, _: &[u8], _: u64, _: Seen) {}
    #[inline(always)]
    fn deleted(&self, _: u16, _: &[u8]) {}
}

impl Logger for Aof {
    const ON: bool = true;
    #[inline]
    fn refuse_writes(&self) -> bool {
        self.failed().is_some()
    }
    #[inline]
    fn record(&self, store: &Store, kind: OpKind, key: &[u8], hash: u64, seen: Seen) {
        let db = store.db() as u16;
        // Did the op change the key? Errors and unmet conditions did not.
        let changed = match (kind, seen) {
            (_, Seen::Err | Seen::Nothing) => false,
            (OpKind::Del | OpKind::PutIfAbsent | OpKind::PutIfPresent, s) => {
                matches!(s, Seen::Ok)
            }
            (OpKind::GetDel, s) => matches!(s, Seen::Value),
            _ => true,
        };
        if !changed {
            return;
        }
        // A record is the key's resulting state with its absolute expiry
        // (INCRBY becomes the SET of its result, EXPIRE the SET with the new
        // time), so replay needs nothing else and is idempotent.
        match store.state(hash, key) {
            Some((v, expire_at)) => self.append_in(db, RecordOp::Set, expire_at, key, v),
            None => self.append_in(db, RecordOp::Del, 0, key, b""),
        }
    }
    #[inline]
    fn deleted(&self, db: u16, key: &[u8]) {
        self.append_in(db, RecordOp::Del, 0, key, b"");
    }
}

/// What a write's result was, for the log.
#[derive(Clone, Copy)]
enum Seen {
    Nothing,
    Ok,
    NotFound,
    Value,
    Int,
    Err,
}

/// Passes results on and remembers the last one's shape.
struct Watch<'a, R> {
    inner: &'a mut R,
    seen: Seen,
}

impl<R: ReplySink> ReplySink for Watch<'_, R> {
    #[inline]
    fn push(&mut self, result: OpResult<'_>) {
        self.seen = match result {
            OpResult::Ok => Seen::Ok,
            OpResult::NotFound => Seen::NotFound,
            OpResult::Value(_) => Seen::Value,
            OpResult::Int(_) => Seen::Int,
            OpResult::Err(_) | OpResult::Moved { .. } => Seen::Err,
        };
        self.inner.push(result);
    }
}

/// True for the kinds that may change a key (what the log records).
#[inline]
fn mutates(kind: OpKind) -> bool {
    kind.writes_value()
        || matches!(
            kind,
            OpKind::Del | OpKind::Expire | OpKind::Persist | OpKind::GetEx | OpKind::GetDel
        )
}

/// Executes one op as its source handed it out; an unrecognised kind is
/// answered with [`OpError::BadOp`]. With a log, a write is refused while
/// the log is failing, and its effect is appended to the log.
#[inline]
fn exec_one<L: Logger + ?Sized>(
    store: &mut Store,
    (kind, key, value): Op<'_>,
    hash: u64,
    sink: &mut impl ReplySink,
    log: &L,
) {
    match kind {
        Some(kind) if L::ON && mutates(kind) => {
            if log.refuse_writes() {
                return sink.push(OpResult::Err(OpError::PersistFailed));
            }
            let mut watch = Watch {
                inner: sink,
                seen: Seen::Nothing,
            };
            store.execute(kind, key, value, hash, &mut watch);
            let seen = watch.seen;
            if store.has_evicted() {
                // Keys evicted to make room: deletes in the log, before
                // this write (a restart must not bring them back).
                store.drain_evicted(|db, k| log.deleted(db, k));
            }
            log.record(store, kind, key, hash, seen);
        }
        Some(kind) => store.execute(kind, key, value, hash, sink),
        None => sink.push(OpResult::Err(OpError::BadOp)),
    }
}

impl Shard {
    /// A shard with an empty store. `mesh[i]` sends to shard `i`.
    pub fn new(
        shard_id: usize,
        node: Arc<NodeState>,
        limits: StoreLimits,
        mesh: Vec<flume::Sender<ShardMsg>>,
    ) -> Shard {
        Shard::with_store(shard_id, node, Store::new(limits), mesh, None)
    }

    /// A shard over a (recovered) store, logging into `log` when given.
    pub fn with_store(
        shard_id: usize,
        node: Arc<NodeState>,
        store: Store,
        mesh: Vec<flume::Sender<ShardMsg>>,
        log: Option<Rc<Aof>>,
    ) -> Shard {
        let cluster = node.cluster();
        let mut store = store;
        store.keep_evicted(log.is_some());
        let me = Owner {
            node_id: cluster.node_id as u16,
            shard_id: shard_id as u16,
        };
        let owns_all_slots = (0..NR_SLOTS as u16).all(|slot| cluster.owner(slot) == me);
        Shard {
            shard_id,
            nr_shards: mesh.len(),
            me,
            owns_all_slots,
            cluster,
            node,
            store: RefCell::new(store),
            mesh,
            connections: Cell::new(0),
            conn_memory: Cell::new(0),
            protocol_errors: Cell::new(0),
            forwarded_out: Cell::new(0),
            forwarded_in: Cell::new(0),
            ops: Cell::new(0),
            log,
            intents: txn::Intents::default(),
            published_tables: Cell::new(u64::MAX),
        }
    }

    /// The shard's append-only log, when persistence is on.
    pub fn log(&self) -> Option<&Rc<Aof>> {
        self.log.as_ref()
    }

    /// Where this shard's log stands (0 without one): taken before a batch,
    /// passed to [`Shard::before_reply`] after it.
    #[inline]
    pub fn log_mark(&self) -> u64 {
        self.log.as_ref().map_or(0, |l| l.appended())
    }

    /// Runs `f` on the store (snapshots, INFO).
    pub fn with_store_ref<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.store.borrow())
    }

    /// Call before releasing the replies of the batches executed so far:
    /// under `appendfsync always` it waits for their group commit (one write
    /// and one fdatasync for everything this shard logged meanwhile); an
    /// `Err` means they may not be durable and must be answered with it.
    /// Without a log it returns at once.
    /// `mark` is [`Shard::log_mark`] taken before those batches executed.
    #[inline]
    pub async fn before_reply(&self, mark: u64) -> Result<(), OpError> {
        match &self.log {
            None => Ok(()),
            Some(log) => {
                let r = log.before_reply(mark).await;
                self.publish();
                r.map_err(|_| OpError::PersistFailed)
            }
        }
    }

    /// Executes a batch, pushing one result per op into `sink` in order.
    ///
    /// Each op's owner decides: owned by this shard, it runs here, straight
    /// into the sink; owned by another, the rest of the batch takes the
    /// mixed path (routed, forwarded, merged back in order).
    pub async fn execute<S: OpSource + ?Sized, R: ReplySink>(&self, batch: &S, sink: &mut R) {
        self.execute_in(0, batch, sink).await
    }

    /// [`Shard::execute`] in database `db` (RESP's SELECT): the database
    /// is a property of the whole batch, selected once, and carried with
    /// the parts forwarded to other shards. `db` must be below the node's
    /// `--databases` (the connection checked it).
    pub async fn execute_in<S: OpSource + ?Sized, R: ReplySink>(
        &self,
        db: u16,
        batch: &S,
        sink: &mut R,
    ) {
        match &self.log {
            None => self.execute_with(db, batch, sink, &NoLog).await,
            Some(log) => {
                self.execute_with(db, batch, sink, &**log).await;
                // everysec / no: stream the records to the disk in large
                // writes as they gather (one comparison per batch).
                log.after_batch();
            }
        }
    }

    /// [`Shard::execute_in`] with a logger (see [`Logger`]).
    async fn execute_with<S: OpSource + ?Sized, R: ReplySink, L: Logger + ?Sized>(
        &self,
        db: u16,
        batch: &S,
        sink: &mut R,
        log: &L,
    ) {
        let n = batch.len();
        if self.intents.active() {
            // A transaction holds intents here: wait until none is on a key
            // this batch touches (the one check a batch pays, see `txn`).
            self.wait_unblocked(db, batch, 0..n).await;
        }
        let (first_foreign, pipe) = {
            let mut store = self.store.borrow_mut();
            store.set_now(unix_now_ms());
            store.select(db as usize);
            let all_mine = self.owns_all_slots;
            let mut pipe = Prefetch::start(batch, &store, !all_mine);
            let mut i = 0;
            while i < n {
                let hash = pipe.hash(i);
                if all_mine || self.cluster.owner(pipe.slot(i)) == self.me {
                    // The owner is this shard: run here.
                    pipe.advance(batch, &store, i);
                    exec_one(&mut store, batch.op(i), hash, sink, log);
                    i += 1;
                } else {
                    // Another shard owns it: forward (the mixed path, below).
                    break;
                }
            }
            (i, pipe)
        };
        if first_foreign < n {
            self.execute_mixed(db, batch, first_foreign, &pipe, sink, log)
                .await;
        }
        self.count_batch(n);
    }

    /// Counts an executed batch and publishes the counters.
    fn count_batch(&self, n: usize) {
        self.ops.set(self.ops.get() + n as u64);
        self.publish();
    }

    /// The mixed path, from op `from` on (see the module docs). `pipe` has
    /// the hashes of the ops just after `from`; the rest are hashed here, once.
    async fn execute_mixed<S: OpSource + ?Sized, R: ReplySink, L: Logger + ?Sized>(
        &self,
        db: u16,
        batch: &S,
        from: usize,
        pipe: &Prefetch,
        sink: &mut R,
        log: &L,
    ) {
        let n = batch.len();
        // Only a shard that does not own every slot gets here.
        debug_assert!(pipe.with_slots);
        let mut owners: Vec<u32> = Vec::with_capacity(n - from);
        let mut hashes: Vec<u64> = Vec::with_capacity(n - from);
        let mut parts: Vec<Option<(Batch, Vec<u64>)>> = (0..self.nr_shards).map(|_| None).collect();
        for i in from..n {
            let (hash, slot) = if i < from + SLOT_AHEAD {
                (pipe.hash(i), pipe.slot(i))
            } else {
                let key = batch.key(i);
                (key_hash(key), key_slot(key))
            };
            let o = self.cluster.owner(slot);
            hashes.push(hash);
            if o.node_id != self.me.node_id {
                // Another node's key: answered with a redirect, not executed.
                owners.push(OTHER_NODE | (slot as u32) << 16 | o.node_id as u32);
                continue;
            }
            let owner = o.shard_id as usize;
            owners.push(owner as u32);
            if owner != self.shard_id {
                let (b, h) = parts[owner].get_or_insert_with(Default::default);
                b.push_op(batch.op(i));
                h.push(hash);
            }
        }
        let replies = self.forward(db, parts, sink.value_budget()).await;
        if self.intents.active() {
            self.wait_unblocked(db, batch, from..n).await;
        }
        self.merge(db, batch, from, &owners, &hashes, replies, sink, log);
    }

    /// Sends each foreign part to its owner and waits for every reply; a
    /// `None` where the owner is gone (the node is shutting down). Each
    /// reply carries at most `max_values` value bytes (the requester's
    /// reply bound).
    async fn forward(
        &self,
        db: u16,
        parts: Vec<Option<(Batch, Vec<u64>)>>,
        max_values: usize,
    ) -> Vec<Option<(BatchReply, usize)>> {
        let mut waiting = Vec::new();
        for (owner, part) in parts.into_iter().enumerate() {
            if let Some((b, h)) = part {
                self.forwarded_out
                    .set(self.forwarded_out.get() + b.len() as u64);
                let (tx, rx) = flume::bounded(1);
                let msg = ShardMsg::Execute {
                    db,
                    batch: b,
                    hashes: h,
                    reply: tx,
                    max_values,
                };
                if self.mesh[owner].send(msg).is_ok() {
                    waiting.push((owner, rx));
                }
            }
        }
        let mut replies: Vec<Option<(BatchReply, usize)>> =
            (0..self.nr_shards).map(|_| None).collect();
        for (owner, rx) in waiting {
            if let Ok(r) = rx.recv_async().await {
                replies[owner] = Some((r, 0));
            }
        }
        replies
    }

    /// Runs the local ops of the mixed path and merges the owners' replies,
    /// so results reach `sink` in request order.
    #[allow(clippy::too_many_arguments)]
    fn merge<S: OpSource + ?Sized, R: ReplySink, L: Logger + ?Sized>(
        &self,
        db: u16,
        batch: &S,
        from: usize,
        owners: &[u32],
        hashes: &[u64],
        mut replies: Vec<Option<(BatchReply, usize)>>,
        sink: &mut R,
        log: &L,
    ) {
        let mut store = self.store.borrow_mut();
        store.set_now(unix_now_ms());
        store.select(db as usize);
        for (j, i) in (from..batch.len()).enumerate() {
            if owners[j] & OTHER_NODE != 0 {
                sink.push(OpResult::Moved {
                    slot: (owners[j] >> 16) as u16 & 0x3FFF,
                    node_id: owners[j] as u16,
                });
                continue;
            }
            let owner = owners[j] as usize;
            if owner == self.shard_id {
                exec_one(&mut store, batch.op(i), hashes[j], sink, log);
            } else {
                match &mut replies[owner] {
                    Some((r, cursor)) if *cursor < r.len() => {
                        sink.push(r.get(*cursor));
                        *cursor += 1;
                    }
                    // The owner shard is gone (node shutting down).
                    _ => sink.push(OpResult::Err(OpError::Unavailable)),
                }
            }
        }
    }

    /// Serves other shards' messages until every sender is gone.
    pub async fn serve_mesh(self: Rc<Self>, rx: flume::Receiver<ShardMsg>) {
        while let Ok(msg) = rx.recv_async().await {
            match msg {
                ShardMsg::Execute {
                    db,
                    batch,
                    hashes,
                    reply,
                    max_values,
                } => {
                    if self.intents.active()
                        && self.intents.batch_conflicts(db, &batch, 0..batch.len())
                    {
                        // Parked behind a transaction's intent: a task waits
                        // for the release; the mesh goes on meanwhile.
                        let me = self.clone();
                        glommio::spawn_local(async move {
                            me.wait_unblocked(db, &batch, 0..batch.len()).await;
                            me.run_forwarded(db, batch, hashes, reply, max_values);
                        })
                        .detach();
                    } else {
                        self.run_forwarded(db, batch, hashes, reply, max_values);
                    }
                }
                ShardMsg::Txn(msg) => self.serve_txn(msg),
                ShardMsg::Rewrite { reply } => {
                    let me = self.clone();
                    glommio::spawn_local(async move {
                        let _ = reply.send(me.rewrite().await);
                    })
                    .detach();
                }
                ShardMsg::SlotKeys { slot, limit, reply } => {
                    let _ = reply.send(self.local_slot_keys(slot, limit));
                }
                ShardMsg::Flush { reply } => {
                    self.clear_local();
                    self.publish();
                    let _ = self.before_reply(0).await;
                    let _ = reply.send(());
                }
                ShardMsg::Keyspace { req, reply } => {
                    let mark = self.log_mark();
                    let r = self.keyspace_local(req);
                    let _ = self.before_reply(mark).await;
                    let _ = reply.send(r);
                }
                ShardMsg::Configure {
                    max_memory,
                    policy,
                    reply,
                } => {
                    self.configure(max_memory, policy);
                    let _ = reply.send(());
                }
            }
        }
    }

    /// Executes a batch forwarded by another shard and sends its results
    /// (after the group commit under `appendfsync always`).
    fn run_forwarded(
        self: &Rc<Self>,
        db: u16,
        batch: Batch,
        hashes: Vec<u64>,
        reply: flume::Sender<BatchReply>,
        max_values: usize,
    ) {
        let mark = self.log_mark();
        let mut out = BatchReply::default();
        out.status.reserve(batch.len());
        out.value_ends.reserve(batch.len());
        {
            let mut store = self.store.borrow_mut();
            store.set_now(unix_now_ms());
            store.select(db as usize);
            let mut sink = BoundedReply {
                reply: &mut out,
                max_values,
            };
            let ops = hashes.iter().enumerate().take(batch.len());
            match &self.log {
                None => {
                    for (i, &hash) in ops {
                        exec_one(&mut store, OpSource::op(&batch, i), hash, &mut sink, &NoLog);
                    }
                }
                Some(log) => {
                    for (i, &hash) in ops {
                        exec_one(&mut store, OpSource::op(&batch, i), hash, &mut sink, &**log);
                    }
                }
            }
        }
        self.forwarded_in
            .set(self.forwarded_in.get() + batch.len() as u64);
        self.publish();
        match self.log.clone() {
            // Under `always` the owner commits before replying;
            // the commit runs as its own task so the mesh keeps
            // executing (and the next commit groups more).
            Some(log) if log.has_pending() => {
                let me = self.clone();
                glommio::spawn_local(async move {
                    let failed = log.before_reply(mark).await.is_err();
                    me.publish();
                    if failed {
                        let n = out.len();
                        out.clear();
                        for _ in 0..n {
                            out.push(OpResult::Err(OpError::PersistFailed));
                        }
                    }
                    let _ = reply.send(out);
                })
                .detach();
            }
            _ => {
                let _ = reply.send(out);
            }
        }
    }

    /// `(count, up to limit keys)` of `slot` in this shard's store: a scan.
    fn local_slot_keys(&self, slot: u16, limit: usize) -> (usize, Vec<Vec<u8>>) {
        let mut count = 0;
        let mut keys = Vec::new();
        let mut store = self.store.borrow_mut();
        store.select(0); // cluster mode has database 0 only
        store.for_each_key(|k| {
            if key_slot(k) == slot {
                count += 1;
                if keys.len() < limit {
                    keys.push(k.to_vec());
                }
            }
            true
        });
        (count, keys)
    }

    /// `(count, up to limit keys)` of `slot` on this node: asked of the
    /// shard owning it (0 and none when another node owns it, as Redis
    /// answers for slots a node does not hold).
    pub async fn slot_keys(&self, slot: u16, limit: usize) -> (usize, Vec<Vec<u8>>) {
        let o = self.cluster.owner(slot);
        if o.node_id != self.me.node_id {
            return (0, Vec::new());
        }
        let owner = o.shard_id as usize;
        if owner == self.shard_id {
            return self.local_slot_keys(slot, limit);
        }
        let (tx, rx) = flume::bounded(1);
        if self.mesh[owner]
            .send(ShardMsg::SlotKeys {
                slot,
                limit,
                reply: tx,
            })
            .is_err()
        {
            return (0, Vec::new());
        }
        rx.recv_async().await.unwrap_or_default()
    }

    /// The node was started with `--cluster`.
    pub fn cluster_mode(&self) -> bool {
        self.node.cluster_mode()
    }

    /// This shard as a slot owner `(node_id, shard_id)`.
    pub fn me(&self) -> Owner {
        self.me
    }

    /// Applies a memory budget and policy to this shard's store.
    fn configure(&self, max_memory: usize, policy: Policy) {
        let mut store = self.store.borrow_mut();
        store.set_now(unix_now_ms());
        store.set_max_memory(max_memory);
        store.set_policy(policy);
        drop(store);
        self.publish();
    }

    /// Sets the node's memory limit (0: none) and eviction policy on every
    /// shard (CONFIG SET maxmemory / maxmemory-policy); returns once all
    /// have taken it.
    pub async fn configure_all(&self, max_memory: u64, policy: Policy) {
        self.node.record_memory(max_memory, policy);
        let budget = self.node.shard_budget(max_memory);
        let mut acks = Vec::new();
        for (i, tx) in self.mesh.iter().enumerate() {
            if i == self.shard_id {
                self.configure(budget, policy);
                continue;
            }
            let (atx, arx) = flume::bounded(1);
            let msg = ShardMsg::Configure {
                max_memory: budget,
                policy,
                reply: atx,
            };
            if tx.send(msg).is_ok() {
                acks.push(arx);
            }
        }
        for a in acks {
            let _ = a.recv_async().await;
        }
    }

    /// Sets this shard's policy at start-up (`--maxmemory-policy`; the
    /// node records it once, before the shards start).
    pub fn set_policy(&self, policy: Policy) {
        let mut store = self.store.borrow_mut();
        store.set_now(unix_now_ms());
        store.set_policy(policy);
    }

    /// One active-expiry tick: a bounded slice (more while many keys are
    /// expiring, yielding between slices), and eviction back under a
    /// lowered limit. Returns the keys it reclaimed.
    pub async fn maintenance_tick(&self) -> usize {
        let mut reclaimed = 0;
        let mut shrunk = false;
        for extra in 0..=EXPIRE_EXTRA_SLICES {
            let r = {
                let mut store = self.store.borrow_mut();
                store.set_now(unix_now_ms());
                if extra == 0 {
                    reclaimed += store.evict_over_limit(EVICT_PER_TICK);
                    if let Some(log) = &self.log {
                        store.drain_evicted(|db, k| log.deleted(db, k));
                    }
                    store.prepare_growth(GROWTH_SLICE_BYTES);
                }
                store.expire_slice(EXPIRE_SLICE_SLOTS, EXPIRE_SLICE_CHECKS)
            };
            reclaimed += r.expired;
            shrunk |= r.shrunk;
            if r.checked == 0 || r.expired * 4 < r.checked {
                break;
            }
            glommio::executor().yield_task_queue_now().await;
        }
        if reclaimed > 0 || shrunk {
            self.publish();
        }
        reclaimed
    }

    /// Runs [`Shard::maintenance_tick`] every [`EXPIRE_INTERVAL`] until dropped.
    pub async fn run_maintenance(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(EXPIRE_INTERVAL).await;
            self.maintenance_tick().await;
        }
    }

    /// Removes every key on every shard of this node.
    pub async fn flush_all(&self) {
        let mut acks = Vec::new();
        for (i, tx) in self.mesh.iter().enumerate() {
            if i == self.shard_id {
                self.clear_local();
                continue;
            }
            let (atx, arx) = flume::bounded(1);
            if tx.send(ShardMsg::Flush { reply: atx }).is_ok() {
                acks.push(arx);
            }
        }
        for a in acks {
            let _ = a.recv_async().await;
        }
        let _ = self.before_reply(0).await;
        self.publish();
    }

    /// Snapshots every shard of this node (each in its own slices, in
    /// parallel) and waits for all; the first error, if any.
    pub async fn rewrite_all(&self) -> Result<(), String> {
        let mut waits = Vec::new();
        for (i, tx) in self.mesh.iter().enumerate() {
            if i == self.shard_id {
                continue;
            }
            let (rtx, rrx) = flume::bounded(1);
            if tx.send(ShardMsg::Rewrite { reply: rtx }).is_ok() {
                waits.push(rrx);
            }
        }
        let mut result = self.rewrite().await;
        for w in waits {
            let r = w
                .recv_async()
                .await
                .unwrap_or_else(|_| Err("shard stopped".into()));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Snapshots this shard without fork: new records go to a new log
    /// (generation `g+1`) from now on; the table is walked by key position
    /// in slices of [`SNAPSHOT_SLICE_SLOTS`] slots, yielding to the shard's
    /// other tasks between slices, into snapshot `g+1`; then generation `g`
    /// is deleted. A key present throughout is in the snapshot; a key
    /// written meanwhile is (also) in the new log, which recovery replays
    /// after the snapshot.
    pub async fn rewrite(&self) -> Result<(), String> {
        use crate::persist::{self, record::FileKind, snapshot};
        let Some(log) = &self.log else {
            return Err("persistence is off (corekv --appendonly yes)".into());
        };
        let st = &log.rewrite;
        if st.running.replace(true) {
            return Err("Background append only file rewriting already in progress".into());
        }
        self.publish();
        let id = self.shard_id;
        let result = async {
            let g = log.generation() + 1;
            let dir = log.dir().to_path_buf();
            let path = persist::log_path(&dir, id, g);
            let file = persist::log::open_file(&path, 0, log.fsync())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            log.switch_to(file, path.clone(), g).await.map_err(|e| {
                format!(
                    "{}: {}",
                    path.display(),
                    std::io::Error::from_raw_os_error(e)
                )
            })?;
            let spath = persist::snap_path(&dir, id, g);
            let err = |e: std::io::Error| format!("{}: {e}", spath.display());
            let mut w =
                snapshot::SnapshotWriter::create(spath.clone(), &log.header(FileKind::Snapshot, g))
                    .await
                    .map_err(err)?;
            let end: u128 = 1 << 64;
            let mut max_pause = 0u64;
            // Each database is followed by its physical id, so a SWAPDB
            // between slices does not mix two databases up: its keys are
            // written under the index it had when the new log started (the
            // log, replayed after the snapshot, has the SWAP). A database
            // flushed or created meanwhile has its story in the log too.
            let dbs: Vec<(u16, u32)> = {
                let store = self.store.borrow();
                (0..store.databases())
                    .map(|db| (db as u16, store.db_id(db)))
                    .filter(|&(_, id)| id != 0)
                    .collect()
            };
            let mut current = 0;
            let mut lo: u128 = 0;
            while current < dbs.len() {
                let started = Instant::now();
                {
                    let mut store = self.store.borrow_mut();
                    let (db, id) = dbs[current];
                    match store.find_db_id(id) {
                        Some(now_at) => {
                            store.select(now_at);
                            let hi = (lo + store.position_span(SNAPSHOT_SLICE_SLOTS)).min(end);
                            store.set_now(unix_now_ms());
                            store.for_each_in(lo, hi, |k, v, at| w.add(db, k, v, at));
                            lo = hi;
                        }
                        None => lo = end, // flushed: the log says so
                    }
                    if lo >= end {
                        current += 1;
                        lo = 0;
                    }
                }
                max_pause = max_pause.max(started.elapsed().as_micros() as u64);
                if w.buffered() >= snapshot::FLUSH_BYTES {
                    if let Err(e) = w.flush_buffer().await {
                        w.abandon().await;
                        return Err(err(e));
                    }
                }
                // Between slices, the connections' reads and commits get
                // the rings looked at (a bare yield let a rewrite run slice
                // after slice, with commit completions unreaped).
                crate::persist::log::reactor_pass().await;
            }
            let (_, snapshot_size) = w.finish().await.map_err(err)?;
            snapshot::retire_async(dir.clone(), id, g)
                .await
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            log.set_snapshot_size(snapshot_size);
            st.max_pause_us.set(max_pause);
            Ok(())
        }
        .await;
        st.running.set(false);
        self.publish();
        match &result {
            Ok(()) => {
                st.last_save.set(crate::persist::now_ms() / 1000);
                st.last_failed.set(false);
                st.done.set(st.done.get() + 1);
            }
            Err(e) => {
                st.last_failed.set(true);
                eprintln!("corekv: shard {id}: snapshot failed: {e}");
            }
        }
        self.publish();
        result
    }

    /// Starts a snapshot of every shard of this node in the background
    /// (BGSAVE, BGREWRITEAOF); `false` when one is already running here.
    pub fn start_rewrite_all(&self) -> bool {
        if self.log.as_ref().is_some_and(|l| l.rewrite.running.get()) {
            return false;
        }
        for tx in &self.mesh {
            let (rtx, _) = flume::bounded(1);
            let _ = tx.send(ShardMsg::Rewrite { reply: rtx });
        }
        true
    }

    /// The shard's persistence timer: once a second, the log's tick (write,
    /// and sync under `everysec`; retry a failed write), and an automatic
    /// rewrite when the log outgrew the data (`--auto-aof-rewrite-*`).
    pub async fn run_persistence(self: Rc<Self>, percentage: u64, min_size: u64) {
        let Some(log) = self.log.clone() else { return };
        loop {
            glommio::timer::sleep(std::time::Duration::from_secs(1)).await;
            log.tick().await;
            self.publish();
            if log.wants_rewrite(percentage, min_size) {
                // In its own task: the once-a-second write (everysec's
                // promise) goes on while the snapshot is taken.
                let me = self.clone();
                glommio::spawn_local(async move {
                    let _ = me.rewrite().await;
                })
                .detach();
            }
        }
    }

    /// Removes this shard's keys, every database's (and logs it).
    fn clear_local(&self) {
        self.store.borrow_mut().clear();
        if let Some(log) = &self.log {
            log.append_in(0, RecordOp::FlushAll, 0, b"", b"");
        }
    }

    /// Keys held by the whole node (as last published by each shard, which
    /// happens before any reply is sent, so it reflects every acknowledged write).
    pub fn node_keys(&self) -> u64 {
        self.publish();
        self.node.stats().shards.iter().map(|s| s.keys).sum()
    }

    /// Keys in this shard.
    pub fn local_keys(&self) -> usize {
        self.store.borrow().len()
    }

    /// Counts an accepted connection; `false` (and not counted) when the
    /// shard is at its limit.
    pub fn try_add_connection(&self, max: usize) -> bool {
        if self.connections.get() >= max as u64 {
            self.count_protocol_error();
            return false;
        }
        self.connections.set(self.connections.get() + 1);
        self.publish();
        true
    }

    /// Counts a closed connection.
    pub fn remove_connection(&self) {
        self.connections
            .set(self.connections.get().saturating_sub(1));
        self.publish();
    }

    /// Changes the connection-buffer bytes charged to this shard from `old`
    /// to `new` for one connection. Growth beyond the shard's share of
    /// `--max-conn-memory` is refused (`false`, nothing charged); shrinking
    /// always succeeds.
    pub fn recharge_conn_memory(&self, old: usize, new: usize) -> bool {
        let used = self.conn_memory.get().saturating_sub(old);
        if new > old && used.saturating_add(new) > self.node.shard_conn_memory {
            return false;
        }
        self.conn_memory.set(used + new);
        self.node.slots[self.shard_id]
            .conn_memory
            .store((used + new) as u64, Relaxed);
        true
    }

    /// Bytes of connection buffers this shard may still hand out.
    pub fn conn_memory_left(&self) -> usize {
        self.node
            .shard_conn_memory
            .saturating_sub(self.conn_memory.get())
    }

    /// Counts a rejected frame or command.
    pub fn count_protocol_error(&self) {
        self.protocol_errors.set(self.protocol_errors.get() + 1);
        self.publish();
    }

    /// Publishes this shard's counters into the node's slot.
    pub fn publish(&self) {
        let store = self.store.borrow();
        let c = store.counters();
        let s = &self.node.slots[self.shard_id];
        s.ops.store(self.ops.get(), Relaxed);
        s.gets.store(c.gets, Relaxed);
        s.puts.store(c.puts, Relaxed);
        s.dels.store(c.dels, Relaxed);
        s.keys.store(store.len() as u64, Relaxed);
        s.memory_used.store(store.used_bytes() as u64, Relaxed);
        s.connections.store(self.connections.get(), Relaxed);
        s.errors
            .store(c.errors + self.protocol_errors.get(), Relaxed);
        s.forwarded_out.store(self.forwarded_out.get(), Relaxed);
        s.forwarded_in.store(self.forwarded_in.get(), Relaxed);
        s.hits.store(c.hits, Relaxed);
        s.misses.store(c.misses, Relaxed);
        s.expires.store(store.ttl_keys() as u64, Relaxed);
        s.avg_ttl_ms.store(store.avg_ttl_ms(), Relaxed);
        s.expired_keys.store(c.expired_keys, Relaxed);
        s.evicted_keys.store(c.evicted_keys, Relaxed);
        // Only the selected database changes while selected: the others'
        // figures are republished when the set of tables changed.
        let (db, keys, ttl, avg) = store.db_figures(store.db());
        if let Some(d) = s.dbs.get(db) {
            d.keys.store(keys as u64, Relaxed);
            d.expires.store(ttl as u64, Relaxed);
            d.avg_ttl_ms.store(avg, Relaxed);
        }
        if store.tables_changed() != self.published_tables.get() {
            self.published_tables.set(store.tables_changed());
            for (d, slot) in s.dbs.iter().enumerate() {
                let (_, keys, ttl, avg) = store.db_figures(d);
                slot.keys.store(keys as u64, Relaxed);
                slot.expires.store(ttl as u64, Relaxed);
                slot.avg_ttl_ms.store(avg, Relaxed);
            }
        }
        if let Some(log) = &self.log {
            let r = &log.rewrite;
            s.aof_size.store(log.files_size(), Relaxed);
            s.aof_base_size.store(log.base_size(), Relaxed);
            s.aof_buffered
                .store(log.appended().saturating_sub(log.durable()), Relaxed);
            s.aof_failed
                .store(log.failed().unwrap_or(0) as u64, Relaxed);
            s.rewrite_running.store(r.running.get() as u64, Relaxed);
            s.rewrite_failed.store(r.last_failed.get() as u64, Relaxed);
            s.rewrites.store(r.done.get(), Relaxed);
            s.last_save.store(r.last_save.get(), Relaxed);
            s.snapshot_max_pause_us.store(r.max_pause_us.get(), Relaxed);
            let (writes, syncs) = log.io_counts();
            s.aof_writes.store(writes, Relaxed);
            s.aof_fsyncs.store(syncs, Relaxed);
            let (write_us, sync_us, bytes) = log.io_times();
            s.aof_write_us.store(write_us, Relaxed);
            s.aof_fsync_us.store(sync_us, Relaxed);
            s.aof_written_bytes.store(bytes, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::native::Batch;

    fn limits() -> StoreLimits {
        StoreLimits {
            max_key_len: 64,
            max_value_len: 64,
            max_memory: usize::MAX,
        }
    }

    /// Two shards on one executor thread: forwarding works the same way as
    /// across cores (flume does not care), which keeps this a unit test.
    #[test]
    fn forwarding_keeps_order_and_results() {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(crate::config::DEFAULT_IO_MEMORY)
            .make()
            .unwrap();
        ex.run(async {
            let node = Arc::new(NodeState::new(0, 2, usize::MAX, usize::MAX));
            let (t0, r0) = flume::unbounded();
            let (t1, r1) = flume::unbounded();
            let mesh = vec![t0, t1];
            let s0 = Rc::new(Shard::new(0, node.clone(), limits(), mesh.clone()));
            let s1 = Rc::new(Shard::new(1, node.clone(), limits(), mesh));
            glommio::spawn_local(s0.clone().serve_mesh(r0)).detach();
            glommio::spawn_local(s1.clone().serve_mesh(r1)).detach();
            let mut b = Batch::default();
            for i in 0..200u32 {
                b.put(i.to_string().as_bytes(), &i.to_le_bytes());
            }
            for i in 0..200u32 {
                b.get(i.to_string().as_bytes());
            }
            b.get(b"missing");
            b.push_raw(99, b"k", b"");
            let mut out = BatchReply::default();
            s0.execute(&b, &mut out).await;
            assert_eq!(out.len(), 402);
            for i in 0..200usize {
                assert_eq!(out.get(i), OpResult::Ok);
                assert_eq!(out.get(200 + i), OpResult::Value(&(i as u32).to_le_bytes()));
            }
            assert_eq!(out.get(400), OpResult::NotFound);
            assert_eq!(out.get(401), OpResult::Err(OpError::BadOp));
            // Both shards hold some keys, and the same batch from shard 1 agrees.
            assert!(s0.local_keys() > 50 && s1.local_keys() > 50);
            assert_eq!(s0.local_keys() + s1.local_keys(), 200);
            let mut out1 = BatchReply::default();
            s1.execute(&b, &mut out1).await;
            assert_eq!(out.status, out1.status);
            assert_eq!(out.values, out1.values);
            let st = node.stats();
            assert_eq!(st.total().keys, 200);
            assert!(st.shards[0].forwarded_out > 0 && st.shards[1].forwarded_in > 0);
            s1.flush_all().await;
            assert_eq!(s0.node_keys(), 0);
        });
    }
}
