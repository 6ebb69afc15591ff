//! Wire formats, and nothing else: bytes in, typed views out, and back.
//! No sockets, no executors, no store.
//!
//! * [`native`] — corekv's own length-prefixed frames carrying rkyv-archived
//!   batches (the fast path used by the shard-aware client and the bench).
//! * [`resp`] — RESP2, so redis-cli, redis-benchmark and Redis client
//!   libraries work unchanged.

pub mod native;
pub mod resp;
