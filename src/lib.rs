//! # corekv
//!
//! A distributed in-memory key-value store built thread-per-core and
//! shared-nothing.
//!
//! ```text
//! client ──batch──▶ node (slot's node) ──▶ shard port (slot's shard)
//!                                         │ local key → partition (no lock)
//!                                         ├ other shard's key → flume → owner shard → reply
//!                                         └ other node's key → MOVED / per-op redirect
//! ```
//!
//! Each hardware thread of a server node runs one **shard**: a glommio
//! executor pinned to that CPU, owning a private hash-map partition and its
//! own io_uring sockets. Placement is Redis Cluster's: a key's hash slot
//! ([`routing::key_slot`], CRC16 with hash tags) and the [`cluster`] map's
//! slot table give its owner `(node, shard)`, every shard presented to Redis
//! Cluster clients as a master with its own RESP port. Shard-aware clients
//! (native and Redis Cluster ones) do both hops with [`routing::route`] and
//! talk straight to the owning core's port; a request that lands on the
//! wrong core of the right node is handed to its owner over flume, one for
//! another node is redirected. The store places keys in its table by its
//! own hash, [`routing::key_hash`].
//! Every layer speaks one operation vocabulary, [`op`], so the protocols and
//! the store never know each other.
//!
//! ## Module map
//!
//! | module | owns | knows nothing of |
//! |---|---|---|
//! | [`op`] | the operation vocabulary: kinds, errors, results, `OpSource`, `ReplySink` | everything else |
//! | [`routing`] | key → slot → (node, shard), the slot table; the store's key hash | everything else |
//! | [`cluster`] | the cluster map: membership (`--cluster`), peers' layouts, node ids, what HELLO / MOVED / CLUSTER report | sockets, store |
//! | [`protocol`] | wire formats: native rkyv frames, RESP2 and RESP3 | sockets, store |
//! | [`store`] | one partition: its databases' tables (ordered hash tables over slab arenas), expiry, eviction policies, limits, memory accounting; clock injected | protocol, executors, sockets |
//! | [`shard`] | a core's shard, the flume mesh, forwarding (a batch's database travels with it), keyspace requests (FLUSHDB, SWAPDB, MOVE, SCAN, KEYS, …) and their fan-outs, cross-shard transactions (ordered intents, `shard::txn`), active-expiry timer, CONFIG SET fan-out, counters | sockets |
//! | [`persist`] | per-shard append-only logs, snapshots, recovery, `check-aof` | sockets, other shards |
//! | [`server`] | start-up, listeners, connections and their memory budget, timeouts, their turn on the shard (a connection that never waits still lets timers and other sockets run), access (password, protected mode), greeting peers, stats, command statistics, slow log, client registry, the Prometheus endpoint, shutdown | client |
//! | [`client`] | shard-aware cluster client, async and blocking | server internals |
//! | [`bench`](mod@bench) | load generator: workload, drivers (corekv, RESP, memcached), reports, plots, /proc sampling and the machine's description (in `bench/`) | server internals |
//! | [`log`](mod@log) | the process's log level for stderr messages | everything else |
//! | [`memlock`] | raising RLIMIT_MEMLOCK for io_uring (server, client, bench) | everything else |
//! | [`units`] | human-readable byte sizes and rates | everything else |
//! | [`glob`](mod@glob) | Redis's glob matching (KEYS, SCAN MATCH) | everything else |
//! | [`config`] | validated configuration, `DEFAULT_*` constants | I/O |
//! | [`error`] | error enums per layer | — |

#[path = "../bench/mod.rs"]
pub mod bench;
pub mod client;
pub mod cluster;
pub mod config;
pub mod error;
pub mod glob;
pub mod log;
pub mod memlock;
pub mod op;
pub mod persist;
pub mod protocol;
pub mod routing;
pub mod server;
pub mod shard;
pub mod store;
pub mod units;

/// The git commit this binary was built from (12 hex digits), or `unknown`
/// when built outside a git checkout (set by `build.rs`).
pub const GIT_COMMIT: &str = env!("COREKV_GIT_COMMIT");

/// `corekv --version`: the package version and the git commit.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("COREKV_GIT_COMMIT"),
    ")"
);
