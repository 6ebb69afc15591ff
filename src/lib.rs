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
//! inside it — by one function, [`routing::route`]. Shard-aware clients do
//! both hops and talk straight to the owning core's port; a request that
//! lands on the wrong core is handed to its owner over flume.
//!
//! ## Module map
//!
//! | module | owns | knows nothing of |
//! |---|---|---|
//! | [`routing`] | key → (node, shard); the only key hash | everything else |
//! | [`protocol`] | wire formats: native rkyv frames, RESP2 | sockets, store |
//! | [`store`] | one partition: map, limits, memory accounting | executors, sockets |
//! | [`shard`] | a core's shard, the flume mesh, forwarding, counters | sockets |
//! | [`server`] | start-up, listeners, connections and their memory budget, timeouts, access (password, protected mode), stats, shutdown | client |
//! | [`client`] | shard-aware cluster client, async and blocking | server internals |
//! | [`linearizability`] | checker for recorded histories (WGL) | sockets, store |
//! | [`bench`] | load generator: workload, drivers, reports, plots (in `bench/`) | server internals |
//! | [`sysstat`] | CPU, memory, network utilization from /proc | the store, the network |
//! | [`config`] | validated configuration, `DEFAULT_*` constants | I/O |
//! | [`error`] | error enums per layer | — |

#![warn(missing_docs, rust_2018_idioms)]

#[path = "../bench/mod.rs"]
pub mod bench;
pub mod client;
pub mod config;
pub mod error;
pub mod linearizability;
pub mod protocol;
pub mod routing;
pub mod server;
pub mod shard;
pub mod store;
pub mod sysstat;
