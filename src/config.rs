//! Validated configuration with named defaults. Parsed once (from the CLI or
//! built by tests), validated here, then passed down by reference. Each
//! component has its own slice ([`Limits`] for the data path); the effective
//! configuration is printed at start by `corekv server`.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::ConfigError;

/// Default native port of shard 0; shard `i` listens on `port + i`.
pub const DEFAULT_PORT: u16 = 7000;
/// Default node-level RESP port. Not 6379, so corekv and a stock
/// redis-server can run side by side (the benchmark does exactly that).
pub const DEFAULT_RESP_PORT: u16 = 6380;
/// Default bind address: loopback only; use `--bind 0.0.0.0` to serve others.
pub const DEFAULT_BIND: &str = "127.0.0.1";
/// Default longest key (bytes).
pub const DEFAULT_MAX_KEY_LEN: usize = 4 * 1024;
/// Default longest value (bytes), memcached's default item size.
pub const DEFAULT_MAX_VALUE_LEN: usize = 1024 * 1024;
/// Default largest frame payload (bytes). A batch of 16384 ops with 128-byte
/// values is about 2.5 MiB, so this leaves room for large values.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
/// Default most operations in one batch.
pub const DEFAULT_MAX_BATCH_OPS: usize = 65_536;
/// Default most client connections per shard (native and RESP together).
pub const DEFAULT_MAX_CONNECTIONS_PER_SHARD: usize = 10_000;
/// Default largest reply one connection may have built at once (bytes): as
/// large as the largest request frame. A native batch whose values would go
/// past it gets a per-op "reply too large" error for the values that do not
/// fit; a RESP command whose reply alone would is refused with an error;
/// pipelines are executed in pieces and written out as the socket drains.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;
/// Default budget for all connection buffers of a node (reads and replies,
/// split evenly over shards): 1 GiB. Idle connections hold a few KiB each
/// (10,000 per shard is 40–80 MB), so the budget is there for requests and
/// replies in flight: sixteen maximal 64 MiB frames at once. Beyond it the
/// connection asking for more gets a clear error and is closed, instead of
/// the kernel's OOM killer taking the node.
pub const DEFAULT_MAX_CONN_MEMORY: u64 = 1 << 30;
/// Default time a partial request (native frame, RESP command) may take to
/// arrive completely before the connection is closed (seconds).
pub const DEFAULT_CLIENT_TIMEOUT_SECS: f64 = 60.0;
/// Memory glommio may lock per executor for its I/O buffers. Sockets do not
/// use registered buffers, so a small pool keeps the RLIMIT_MEMLOCK need low.
pub const DEFAULT_IO_MEMORY: usize = 512 * 1024;
/// How long an idle shard keeps polling its io_uring rings before it parks
/// in the kernel (`--spin-before-park`), also the load generator's default.
/// Zero: park at once. Polling sees a request that arrives within it without
/// the wake-up of an idle CPU (about 14 µs in a VM, besides a sleep's
/// syscalls); docs/performance.md §11 has the measurements behind 100 µs.
pub const DEFAULT_SPIN_BEFORE_PARK: Duration = Duration::from_micros(100);

/// Data-path limits. Every one of them gives a clear error when exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, bytes.
    pub max_key_len: usize,
    /// Longest value, bytes.
    pub max_value_len: usize,
    /// Largest frame payload (native) or bulk string (RESP), bytes.
    pub max_frame_bytes: usize,
    /// Most operations in one native batch (and arguments in one RESP command).
    pub max_batch_ops: usize,
    /// Most client connections per shard.
    pub max_connections_per_shard: usize,
    /// Largest reply a connection builds at once, bytes.
    pub max_reply_bytes: usize,
    /// Longest a partial request may take to arrive (`None`: forever).
    pub client_timeout: Option<Duration>,
    /// Idle connections are closed after this long (`None`: never, like
    /// Redis's default `timeout 0`).
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_batch_ops: DEFAULT_MAX_BATCH_OPS,
            max_connections_per_shard: DEFAULT_MAX_CONNECTIONS_PER_SHARD,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            client_timeout: Some(Duration::from_secs_f64(DEFAULT_CLIENT_TIMEOUT_SECS)),
            idle_timeout: None,
        }
    }
}

/// Everything a server node needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// One shard per CPU, pinned, in this order (shard `i` on `cpus[i]`).
    pub cpus: Vec<usize>,
    /// Address to bind.
    pub bind: IpAddr,
    /// Native port of shard 0 (`0`: an ephemeral port per shard, for tests).
    pub port: u16,
    /// Node-level RESP port; shard `i`'s own RESP port is `resp_port + 1 + i`
    /// (`Some(0)`: ephemeral ports, each shard's own one too — never
    /// "ephemeral + 1 + i", which another process may hold; `None`: no RESP).
    pub resp_port: Option<u16>,
    /// This node's id in its cluster: its position in `cluster`.
    pub node_id: u32,
    /// The cluster's node list, `host:native port` of each node, the same on
    /// every node (`--cluster`); empty: a one-node cluster.
    pub cluster: Vec<String>,
    /// Memory limit of the whole node in bytes, split evenly over shards.
    pub max_memory: Option<u64>,
    /// What a shard does at its memory limit (`noeviction`: refuse writes).
    pub maxmemory_policy: crate::store::Policy,
    /// Number of databases RESP's SELECT can choose (Redis's `databases`);
    /// a node of a multi-node cluster (`--cluster`) has database 0 only.
    pub databases: usize,
    /// Data-path limits.
    pub limits: Limits,
    /// Budget for all connection buffers of the node, bytes.
    pub max_conn_memory: u64,
    /// Who may connect.
    pub security: Security,
    /// glommio I/O memory per executor.
    pub io_memory: usize,
    /// Create each shard's io_uring rings with COOP_TASKRUN | TASKRUN_FLAG
    /// where the kernel has them, so socket completions do not interrupt
    /// the shard's thread (`--no-coop-taskrun` turns it off).
    pub coop_taskrun: bool,
    /// Wait for a connection's requests on a multishot poll armed once per
    /// connection (`IORING_POLL_ADD_MULTI`, Linux 5.13+) instead of a poll
    /// armed for every read that waits (`--no-multishot-poll` turns it off).
    pub multishot_poll: bool,
    /// How long an idle shard polls its rings before it parks.
    pub spin_before_park: Duration,
    /// Persistence (append-only logs, snapshots); off by default.
    pub persist: crate::persist::PersistConfig,
}

impl ServerConfig {
    /// The databases each shard keeps: `--databases`, or 1 in cluster mode
    /// (`--cluster`: Redis Cluster has database 0 only).
    pub fn effective_databases(&self) -> usize {
        if !self.cluster.is_empty() {
            1
        } else {
            self.databases
        }
    }

    /// Defaults for a node on the given CPUs.
    pub fn new(cpus: Vec<usize>) -> ServerConfig {
        ServerConfig {
            cpus,
            bind: DEFAULT_BIND.parse().unwrap(),
            port: DEFAULT_PORT,
            resp_port: Some(DEFAULT_RESP_PORT),
            node_id: 0,
            cluster: Vec::new(),
            max_memory: None,
            maxmemory_policy: crate::store::Policy::NoEviction,
            databases: crate::store::DEFAULT_DATABASES,
            limits: Limits::default(),
            max_conn_memory: DEFAULT_MAX_CONN_MEMORY,
            security: Security::default(),
            io_memory: DEFAULT_IO_MEMORY,
            coop_taskrun: true,
            multishot_poll: true,
            spin_before_park: DEFAULT_SPIN_BEFORE_PARK,
            persist: crate::persist::PersistConfig::default(),
        }
    }

    /// A test configuration: loopback, ephemeral ports, RESP on.
    pub fn ephemeral(cpus: Vec<usize>) -> ServerConfig {
        ServerConfig {
            port: 0,
            resp_port: Some(0),
            ..ServerConfig::new(cpus)
        }
    }

    /// Number of shards.
    pub fn nr_shards(&self) -> usize {
        self.cpus.len()
    }

    /// Memory budget of one shard.
    pub fn shard_memory(&self) -> usize {
        match self.max_memory {
            Some(m) => (m / self.cpus.len().max(1) as u64).min(usize::MAX as u64) as usize,
            None => usize::MAX,
        }
    }

    /// Connection-buffer budget of one shard.
    pub fn shard_conn_memory(&self) -> usize {
        (self.max_conn_memory / self.cpus.len().max(1) as u64).min(usize::MAX as u64) as usize
    }

    /// Checks the configuration against itself and this machine.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cpus.is_empty() {
            return Err(ConfigError::NoCpus);
        }
        let allowed = allowed_cpus();
        let mut seen = std::collections::HashSet::new();
        for &c in &self.cpus {
            if !seen.insert(c) {
                return Err(ConfigError::DuplicateCpu(c));
            }
            if !allowed.contains(&c) {
                return Err(ConfigError::CpuUnavailable {
                    cpu: c,
                    allowed: allowed.clone(),
                });
            }
        }
        let n = self.cpus.len() as u32;
        if self.port != 0 && self.port as u32 + n - 1 > u16::MAX as u32 {
            return Err(ConfigError::PortRange {
                base: self.port,
                shards: self.cpus.len(),
            });
        }
        if let Some(r) = self.resp_port {
            if r != 0 && r as u32 + n > u16::MAX as u32 {
                return Err(ConfigError::PortRange {
                    base: r,
                    shards: self.cpus.len(),
                });
            }
            if r != 0 && self.port != 0 {
                let native = self.port as u32..self.port as u32 + n;
                let resp = r as u32..r as u32 + n + 1;
                if native.start < resp.end && resp.start < native.end {
                    return Err(ConfigError::PortOverlap {
                        native: self.port,
                        resp: r,
                        shards: self.cpus.len(),
                    });
                }
            }
        }
        if self.cluster.is_empty() && self.node_id != 0 {
            return Err(ConfigError::Cluster(format!(
                "--node-id {} needs --cluster: a node without it is a one-node cluster (node 0)",
                self.node_id
            )));
        }
        if !self.cluster.is_empty() {
            // Same checks as `--cluster` on the command line.
            crate::cluster::parse_list(&self.cluster.join(","))?;
        }
        if !self.cluster.is_empty() && self.node_id as usize >= self.cluster.len() {
            return Err(ConfigError::Cluster(format!(
                "--node-id {} is outside the --cluster list of {} nodes",
                self.node_id,
                self.cluster.len()
            )));
        }
        if !(1..=crate::store::MAX_DATABASES).contains(&self.databases) {
            return Err(ConfigError::BadLimit(
                "--databases must be between 1 and 1024",
            ));
        }
        let l = &self.limits;
        if l.max_key_len == 0
            || l.max_batch_ops == 0
            || l.max_connections_per_shard == 0
            || l.max_reply_bytes == 0
        {
            return Err(ConfigError::BadLimit("limits must be positive"));
        }
        if l.max_key_len + l.max_value_len > l.max_frame_bytes {
            return Err(ConfigError::BadLimit(
                "--max-frame-bytes must hold at least one maximal key and value",
            ));
        }
        if l.max_frame_bytes > u32::MAX as usize / 2 {
            return Err(ConfigError::BadLimit(
                "--max-frame-bytes must be below 2 GiB",
            ));
        }
        if self.shard_conn_memory() < 64 * 1024 {
            return Err(ConfigError::BadLimit(
                "--max-conn-memory must leave each shard at least 64 KiB",
            ));
        }
        if matches!(&self.security.requirepass, Some(p) if p.is_empty()) {
            return Err(ConfigError::BadLimit("--requirepass must not be empty"));
        }
        Ok(())
    }
}

/// Who may use a node: Redis's `requirepass` and `protected-mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// The password clients must give (RESP `AUTH`/`HELLO … AUTH`, native
    /// HELLO token) before anything else; `None`: no password.
    pub requirepass: Option<String>,
    /// With no password set, refuse connections from non-loopback addresses
    /// (Redis's protected mode, on by default).
    pub protected_mode: bool,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            requirepass: None,
            protected_mode: true,
        }
    }
}

impl Security {
    /// True when a client at `peer` must be turned away by protected mode.
    pub fn refuses(&self, peer: Option<IpAddr>) -> bool {
        if !self.protected_mode || self.requirepass.is_some() {
            return false;
        }
        match peer {
            Some(IpAddr::V4(a)) => !a.is_loopback(),
            Some(IpAddr::V6(a)) => {
                !(a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
            }
            // Not a TCP peer (cannot happen on these listeners): allow, as
            // Redis does for Unix sockets.
            None => false,
        }
    }
}

/// A TTL on the command line (`corekv put --ttl`, `corekv bench --ttl`):
/// a [`parse_duration`] of at least 1 ms.
pub fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < std::time::Duration::from_millis(1) {
        return Err(format!("'{s}': a TTL must be at least 1ms"));
    }
    Ok(d)
}

/// CPUs this process may run on (its affinity mask), sorted.
pub fn allowed_cpus() -> Vec<usize> {
    let mut v: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    v.sort_unstable();
    v
}

/// Parses a CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, ConfigError> {
    let bad = || ConfigError::CpuList(s.to_string());
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Parses a byte size with Redis's conventions (`redis.conf`): a bare number
/// is bytes; `1k` = 1000, `1kb` = 1024, `1m` = 1000², `1mb` = 1024², and so
/// on through `t`/`tb` (case-insensitive); `KiB`, `MiB`, `GiB` are binary.
/// Decimals are allowed (`1.5gb`; fractional bytes round to the nearest).
pub fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let err = || ConfigError::Size(s.to_string());
    let t = s.trim();
    if t.is_empty() || t.starts_with('-') {
        return Err(err());
    }
    let lower = t.to_ascii_lowercase();
    let b = lower.as_bytes();
    // `kb`, `mb`, ...: Redis's binary units; parse-size reads them as
    // decimal unless configured binary. `KiB` and plain `k` are parse-size's
    // own (binary and decimal respectively), which is Redis's reading too.
    let binary = b.len() >= 2 && b[b.len() - 1] == b'b' && b"kmgtpe".contains(&b[b.len() - 2]);
    let cfg = if binary {
        parse_size::Config::new().with_binary()
    } else {
        parse_size::Config::new()
    };
    cfg.parse_size(t).map_err(|_| err())
}

/// [`parse_size`] for a value that must fit a `usize` (clap value parser).
pub fn parse_size_usize(s: &str) -> Result<usize, ConfigError> {
    let v = parse_size(s)?;
    usize::try_from(v).map_err(|_| ConfigError::Size(s.to_string()))
}

/// Parses a duration: a bare number is seconds (`30`, `0.5`); otherwise
/// humantime's units (`30s`, `500ms`, `2m`, `1h 30m`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, ConfigError> {
    let err = || ConfigError::Duration(s.to_string());
    let t = s.trim();
    if t.is_empty() {
        return Err(err());
    }
    if t.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        let secs: f64 = t.parse().map_err(|_| err())?;
        return std::time::Duration::try_from_secs_f64(secs).map_err(|_| err());
    }
    humantime::parse_duration(t).map_err(|_| err())
}

/// Turns a TOML configuration file into command-line tokens for one
/// subcommand: each key is a long flag's name (`max-memory = "4gb"` →
/// `--max-memory=4gb`, `no-resp = true` → `--no-resp`, `false` → nothing).
/// `known` lists the subcommand's long flags; any other key is an error, as
/// are tables and arrays. The tokens go before the command line's own, so the
/// command line wins.
pub fn config_file_args(text: &str, known: &[&str]) -> Result<Vec<String>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::File(e.to_string().trim().to_string()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        if key == "config" || !known.contains(&key.as_str()) {
            return Err(ConfigError::File(format!(
                "unknown key {key:?} (keys are the flags' names: {})",
                known
                    .iter()
                    .filter(|k| **k != "config")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let v = match value {
            toml::Value::Boolean(true) => {
                out.push(format!("--{key}"));
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(ConfigError::File(format!(
                    "key {key:?}: {} is not a flag value (use a string, number or boolean)",
                    other.type_str()
                )))
            }
        };
        out.push(format!("--{key}={v}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8").unwrap(), vec![0, 1, 2, 3, 8]);
        assert_eq!(parse_cpu_list("1").unwrap(), vec![1]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn sizes_follow_redis() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("1k").unwrap(), 1000);
        assert_eq!(parse_size("1kb").unwrap(), 1024);
        assert_eq!(parse_size("1K").unwrap(), 1000);
        assert_eq!(parse_size("1KB").unwrap(), 1024);
        assert_eq!(parse_size("1m").unwrap(), 1_000_000);
        assert_eq!(parse_size("1mb").unwrap(), 1 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("2gb").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5gb").unwrap(), 3 << 29);
        assert_eq!(parse_size("1.5g").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("1tb").unwrap(), 1 << 40);
        assert_eq!(parse_size("7b").unwrap(), 7);
        assert!(parse_size("2Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1k").is_err());
        assert!(parse_size("99999999999999tb").is_err());
        assert!(parse_size_usize("1kb").is_ok());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1.2.3").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn config_files_become_flags() {
        let known = [
            "cpus",
            "max-memory",
            "no-resp",
            "verbose",
            "port",
            "theta",
            "config",
        ];
        let args = config_file_args(
            "cpus = \"0-3\"\nmax-memory = \"1.5gb\"\nno-resp = true\nverbose = false\nport = 7100\ntheta = 0.5\n",
            &known,
        )
        .unwrap();
        assert_eq!(
            args,
            vec![
                "--cpus=0-3",
                "--max-memory=1.5gb",
                "--no-resp",
                "--port=7100",
                "--theta=0.5"
            ]
        );
        let e = config_file_args("max_memory = 1", &known)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key \"max_memory\""), "{e}");
        assert!(config_file_args("config = \"x.toml\"", &known).is_err());
        assert!(config_file_args("cpus = [0, 1]", &known).is_err());
        assert!(config_file_args("[server]\ncpus = \"0\"", &known).is_err());
        assert!(config_file_args("cpus = ", &known).is_err());
    }

    #[test]
    fn validation() {
        let cpu = allowed_cpus()[0];
        let ok = ServerConfig::new(vec![cpu]);
        ok.validate().unwrap();
        assert!(matches!(
            ServerConfig::new(vec![]).validate(),
            Err(ConfigError::NoCpus)
        ));
        assert!(matches!(
            ServerConfig::new(vec![cpu, cpu]).validate(),
            Err(ConfigError::DuplicateCpu(_))
        ));
        assert!(matches!(
            ServerConfig::new(vec![100_000]).validate(),
            Err(ConfigError::CpuUnavailable { .. })
        ));
        let mut c = ServerConfig::new(vec![cpu]);
        c.port = 65535;
        c.resp_port = None;
        c.validate().unwrap();
        c.resp_port = Some(65535);
        assert!(c.validate().is_err());
        let mut c = ServerConfig::new(vec![cpu]);
        c.resp_port = Some(c.port);
        assert!(matches!(c.validate(), Err(ConfigError::PortOverlap { .. })));
        let mut c = ServerConfig::new(vec![cpu]);
        c.limits.max_frame_bytes = 10;
        assert!(matches!(c.validate(), Err(ConfigError::BadLimit(_))));
    }
}
