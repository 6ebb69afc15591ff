//! # corekv
//!
//! A distributed in-memory key-value store built thread-per-core and
//! shared-nothing.
//!
//! ```text
//! client ──batch──▶ node (first hash) ──▶ shard port (second hash)
//!                                         │ local key → partition (no lock)
//!                                         └ foreign key → flume → owner shard → reply
//! ```
//!
//! Each hardware thread of a server node runs one **shard**: a glommio
//! executor pinned to that CPU, owning a private hash-map partition and its
//! own io_uring sockets. A key is routed twice — to a node, then to a shard
//! inside it — from one hash, [`routing::key_hash`]. Shard-aware clients do
//! both hops with [`routing::route`] and talk straight to the owning core's
//! port; a request that lands on the wrong core is handed to its owner over
//! flume (the shard's own `owner == this shard` test, [`routing::shard_of`]).
//! Every layer speaks one operation vocabulary, [`op`], so the protocols and
//! the store never know each other.
//!
//! ## Module map
//!
//! | module | owns | knows nothing of |
//! |---|---|---|
//! | [`op`] | the operation vocabulary: kinds, errors, results, `OpSource`, `ReplySink` | everything else |
//! | [`routing`] | key → (node, shard); the only key hash | everything else |
//! | [`protocol`] | wire formats: native rkyv frames, RESP2 | sockets, store |
//! | [`store`] | one partition: map, expiry, eviction policies, limits, memory accounting; clock injected | protocol, executors, sockets |
//! | [`shard`] | a core's shard, the flume mesh, forwarding, active-expiry timer, CONFIG SET fan-out, counters | sockets |
//! | [`server`] | start-up, listeners, connections and their memory budget, timeouts, access (password, protected mode), stats, command statistics, slow log, client registry, the Prometheus endpoint, shutdown | client |
//! | [`client`] | shard-aware cluster client, async and blocking | server internals |
//! | [`bench`](mod@bench) | load generator: workload, drivers (corekv, RESP, memcached), reports, plots, /proc sampling and the machine's description (in `bench/`) | server internals |
//! | [`log`](mod@log) | the process's log level for stderr messages | everything else |
//! | [`memlock`] | raising RLIMIT_MEMLOCK for io_uring (server, client, bench) | everything else |
//! | [`units`] | human-readable byte sizes and rates | everything else |
//! | [`config`] | validated configuration, `DEFAULT_*` constants | I/O |
//! | [`error`] | error enums per layer | — |

#[path = "../bench/mod.rs"]
pub mod bench;
pub mod client;
pub mod config;
pub mod error;
pub mod log;
pub mod memlock;
pub mod op;
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
