//! Error types of the library, one enum per layer (`thiserror`). Errors a
//! request causes become responses (see [`crate::op::OpError`] and
//! [`crate::protocol::native::FrameError`]); these are for configuration,
//! start-up and clients. `anyhow` is used only in `main.rs`.

use std::net::SocketAddr;

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--cpus` names no CPU.
    #[error("no CPUs given: --cpus must name at least one CPU")]
    NoCpus,
    /// A CPU twice.
    #[error("CPU {0} is listed twice in --cpus")]
    DuplicateCpu(usize),
    /// A CPU outside the affinity mask.
    #[error("CPU {cpu} is not available to this process (allowed: {allowed:?})")]
    CpuUnavailable {
        /// The CPU asked for.
        cpu: usize,
        /// What the process may use.
        allowed: Vec<usize>,
    },
    /// Unparsable CPU list.
    #[error("cannot parse CPU list {0:?}: use e.g. 0-3,8")]
    CpuList(String),
    /// Unparsable size.
    #[error(
        "cannot parse size {0:?}: use e.g. 1048576, 512mb, 1.5gb (Redis's units: \
         1k = 1000, 1kb = 1024, 1m = 1000000, 1mb = 1048576, ...; KiB, MiB, GiB too)"
    )]
    Size(String),
    /// Unparsable duration.
    #[error("cannot parse duration {0:?}: use e.g. 30 (seconds), 30s, 500ms, 2m, 1h 30m")]
    Duration(String),
    /// A configuration file that cannot be used.
    #[error("config file: {0}")]
    File(String),
    /// Ports past 65535.
    #[error("ports {base}..{base}+{shards} run past 65535")]
    PortRange {
        /// First port.
        base: u16,
        /// Shards.
        shards: usize,
    },
    /// Native and RESP port ranges overlap.
    #[error("native ports {native}+ and RESP ports {resp}+ overlap for {shards} shards")]
    PortOverlap {
        /// Native base port.
        native: u16,
        /// RESP base port.
        resp: u16,
        /// Shards.
        shards: usize,
    },
    /// A limit that makes no sense.
    #[error("invalid limit: {0}")]
    BadLimit(&'static str),
    /// A `--cluster` list or `--node-id` that cannot work.
    #[error("{0}")]
    Cluster(String),
}

/// A server that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not bind.
    #[error("shard {shard_id}: cannot listen on {addr}: {reason}")]
    Bind {
        /// Shard that failed.
        shard_id: usize,
        /// Address it tried.
        addr: SocketAddr,
        /// Why (kept out of the error chain so it is printed once).
        reason: std::io::Error,
    },
    /// Persistence files could not be read, were refused, or cannot be written.
    #[error("persistence: {0}")]
    Persist(String),
    /// An executor failed to start (CPU, io_uring, locked memory).
    #[error("shard {shard_id} on CPU {cpu} failed to start: {message}{hint}")]
    Executor {
        /// Shard that failed.
        shard_id: usize,
        /// Its CPU.
        cpu: usize,
        /// The executor's error.
        message: String,
        /// A hint about the likely cause.
        hint: String,
    },
    /// A stop was asked for (SIGINT/SIGTERM) before every shard had started.
    #[error("interrupted during start-up")]
    Interrupted,
}

/// What a client call can fail with. Never a panic.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {addr}: {message}")]
    Connect {
        /// Address.
        addr: String,
        /// Why.
        message: String,
    },
    /// The connection broke; requests in flight on it have unknown outcome.
    #[error("connection to {addr} lost: {message}")]
    ConnectionLost {
        /// Address.
        addr: String,
        /// Why.
        message: String,
    },
    /// The server sent an error frame (and closed the connection).
    #[error("server {addr} rejected the request: {message}")]
    Server {
        /// Address.
        addr: String,
        /// The server's message.
        message: String,
    },
    /// The server sent something that is not valid protocol.
    #[error("protocol error from {addr}: {message}")]
    Protocol {
        /// Address.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// No reply in time; the outcome is unknown.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The cluster description is inconsistent.
    #[error("bad cluster: {0}")]
    Topology(String),
    /// The node owning a key could not be reached (it was down when the
    /// client connected); keys of the other nodes are still served.
    #[error("node {node_id} ({addr}) is down: {message}")]
    NodeDown {
        /// The failed node's id.
        node_id: usize,
        /// Its address.
        addr: String,
        /// Why it is considered down.
        message: String,
    },
    /// The client's executor thread is gone.
    #[error("client is shut down")]
    Closed,
}
