//! The `corekv` binary: parses the command line (clap) and runs one
//! subcommand. Thin on purpose; everything it calls is in the library.
//!
//! Before clap sees the command line, the seed's single-dash flags are
//! rewritten to corekv's ([`corekv::bench::cli::rewrite_seed_flags`]), and a
//! `--config FILE` of `server` or `bench` is read as flags placed before the
//! command line's own ([`config::config_file_args`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use corekv::client::blocking::BlockingClient;
use corekv::client::{ClientOptions, OwnedResult};
use corekv::config::{self, Limits, ServerConfig};
use corekv::server::stats::StatsLine;

#[derive(Parser)]
#[command(
    name = "corekv",
    version = corekv::VERSION,
    about = "A thread-per-core, shared-nothing in-memory key-value store",
    long_about = "A thread-per-core, shared-nothing in-memory key-value store.\n\n\
        Data lives in memory only. `corekv server` serves the native batch protocol \
        (shard i on port 7000+i) and Redis's protocol (RESP2, port 6380). Sizes take \
        Redis's units (1k = 1000, 1kb = 1024, 1.5gb); durations take units (30s, 2m, \
        500ms; a bare number is seconds)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server node: one pinned shard per CPU.
    Server(ServerArgs),
    /// Write a key.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Expire the key after this long (e.g. 10s, 500ms, 2m, 1h; a bare
        /// number is seconds).
        #[arg(long, value_parser = config::parse_ttl)]
        ttl: Option<Duration>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print a key's time to live in milliseconds (-1: no TTL; exit code 1
    /// when not found).
    Ttl {
        /// Key.
        key: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Read a key (prints the value; exit code 1 when not found).
    Get {
        /// Key.
        key: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete a key.
    Del {
        /// Key.
        key: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print every node's and shard's counters.
    Stats {
        #[command(flatten)]
        conn: ConnArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the load generator (the seed's YCSB workload) against a cluster.
    Bench(Box<corekv::bench::cli::BenchArgs>),
    /// Merge, print and plot benchmark reports.
    #[command(subcommand)]
    Report(corekv::bench::cli::ReportCmd),
    /// Sample CPU, memory and network utilization from /proc.
    Monitor(MonitorArgs),
    /// Check a persistence file (like redis-check-aof); --fix truncates it
    /// to its last good record.
    CheckAof {
        /// Truncate the file to the end of its last good record.
        #[arg(long)]
        fix: bool,
        /// The file (`shard-<id>.<generation>.aof` or `.snap`).
        file: std::path::PathBuf,
    },
    /// Print a shell completion script (e.g. `corekv completions bash >
    /// /etc/bash_completion.d/corekv`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per subcommand into a
    /// directory (`corekv man --out man/` → man/corekv.1, man/corekv-server.1, …).
    Man {
        /// Directory to write the pages into (default: print corekv.1).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(clap::Args)]
struct ConnArgs {
    /// Comma-separated node addresses (any shard's native port of each node).
    #[arg(long, default_value = "127.0.0.1:7000")]
    hosts: String,
    /// Request timeout (e.g. 5s, 500ms; a bare number is seconds).
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    timeout: Duration,
    /// The node's password (its --requirepass), sent as the HELLO token.
    #[arg(long)]
    password: Option<String>,
}

/// A duration flag that must be above zero (a request timeout of 0 would
/// fail every request).
fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = config::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("{s:?} must be above zero"));
    }
    Ok(d)
}

/// A `yes`/`no` flag value, as Redis spells them.
fn yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not yes or no")),
    }
}

#[derive(clap::Args)]
#[command(args_override_self = true)]
struct ServerArgs {
    /// Read flags from this TOML file: keys are the flags' names
    /// (`max-memory = "4gb"`, `cpus = "0-3"`, `no-resp = true`); flags on the
    /// command line win.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// CPUs to run shards on, e.g. `0-3,8` (default: every CPU this process may use).
    #[arg(long)]
    cpus: Option<String>,
    /// Native port of shard 0; shard i listens on port+i.
    #[arg(long, default_value_t = config::DEFAULT_PORT)]
    port: u16,
    /// Address to bind (0.0.0.0 to serve other hosts).
    #[arg(long, default_value = config::DEFAULT_BIND)]
    bind: IpAddr,
    /// The cluster: every node's `host:native port` (of its shard 0), the same
    /// list on every node; node id = position. Without it, a one-node cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// This node's position in --cluster (default: the entry matching --bind
    /// and --port).
    #[arg(long)]
    node_id: Option<u32>,
    /// Node-level RESP (Redis protocol) port; shard i also has resp-port+1+i.
    #[arg(long, default_value_t = config::DEFAULT_RESP_PORT)]
    resp_port: u16,
    /// Do not serve RESP.
    #[arg(long)]
    no_resp: bool,
    /// Memory limit of this node, all shards together (e.g. 4gb = 4 GiB,
    /// 4g = 4·10⁹ B): each of the N shards gets 1/N of it; what happens when
    /// a write would take a shard past its share is --maxmemory-policy's
    /// choice. Default: no limit.
    #[arg(long, value_parser = config::parse_size)]
    max_memory: Option<u64>,
    /// Budget for all connection buffers of the node, reads and replies
    /// (e.g. 1gb); the connection that would pass it gets an error and is closed.
    #[arg(long, default_value_t = config::DEFAULT_MAX_CONN_MEMORY, value_parser = config::parse_size)]
    max_conn_memory: u64,
    /// Largest reply one connection builds at once (e.g. 64mb); values past it are refused.
    #[arg(long, default_value_t = config::DEFAULT_MAX_REPLY_BYTES, value_parser = config::parse_size_usize)]
    max_reply_bytes: usize,
    /// At the memory limit: noeviction (writes get an out-of-memory error),
    /// allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu,
    /// volatile-random, volatile-ttl, or sieve. Changeable at run time with
    /// CONFIG SET maxmemory-policy.
    #[arg(long, default_value = "noeviction", value_parser = parse_policy)]
    maxmemory_policy: corekv::store::Policy,
    /// Number of databases (RESP SELECT 0..N-1), as Redis's `databases`.
    /// A node of a multi-node cluster (--cluster) has database 0 only.
    #[arg(long, default_value_t = corekv::store::DEFAULT_DATABASES)]
    databases: usize,
    /// Longest key (e.g. 4096, 4kb).
    #[arg(long, default_value_t = config::DEFAULT_MAX_KEY_LEN, value_parser = config::parse_size_usize)]
    max_key_len: usize,
    /// Longest value (e.g. 1mb).
    #[arg(long, default_value_t = config::DEFAULT_MAX_VALUE_LEN, value_parser = config::parse_size_usize)]
    max_value_len: usize,
    /// Largest frame payload (e.g. 64mb).
    #[arg(long, default_value_t = config::DEFAULT_MAX_FRAME_BYTES, value_parser = config::parse_size_usize)]
    max_frame_bytes: usize,
    /// Most operations per batch.
    #[arg(long, default_value_t = config::DEFAULT_MAX_BATCH_OPS)]
    max_batch_ops: usize,
    /// Most client connections per shard.
    #[arg(long, default_value_t = config::DEFAULT_MAX_CONNECTIONS_PER_SHARD)]
    max_connections: usize,
    /// How long a partial request (native frame, RESP command) may take to
    /// arrive before the connection is closed; also bounds a reply write the
    /// client does not read (e.g. 60s; 0: never).
    #[arg(long, default_value = "60s", value_parser = config::parse_duration)]
    client_timeout: Duration,
    /// Close connections idle this long (e.g. 300s; 0: never, Redis's `timeout` default).
    #[arg(long, default_value = "0", value_parser = config::parse_duration)]
    timeout: Duration,
    /// Password clients must give first: RESP AUTH / HELLO AUTH, native HELLO token.
    #[arg(long)]
    requirepass: Option<String>,
    /// With no password, refuse clients from other hosts (yes/no, Redis's protected mode).
    #[arg(long, value_parser = yes_no, default_value = "yes", action = clap::ArgAction::Set)]
    protected_mode: bool,
    /// Time between stats lines on stdout (e.g. 1s, 10s; 0 turns them off).
    /// A line: `stats node=0 t=12s get/s=… put/s=… ops/s=… keys=… mem=…
    /// conns=… errors=… fwd/s=…`, rates over the interval; fwd/s counts
    /// requests handed to their owner core.
    #[arg(long, default_value = "1s", value_parser = config::parse_duration)]
    stats_interval: Duration,
    /// Also print a stats line per shard.
    #[arg(long, short)]
    verbose: bool,
    /// Create io_uring rings without COOP_TASKRUN (every socket completion then
    /// interrupts the shard's thread); for comparison and old-kernel testing.
    #[arg(long)]
    no_coop_taskrun: bool,
    /// Arm a one-shot io_uring poll for every read that waits instead of one
    /// multishot poll per connection; for comparison and old-kernel testing.
    #[arg(long)]
    no_multishot_poll: bool,
    /// How long an idle shard keeps polling its rings before it sleeps in the
    /// kernel (e.g. 50us; 0: sleep at once). Trades CPU for wake-up latency.
    #[arg(long, default_value = "100us", value_parser = config::parse_duration)]
    spin_before_park: Duration,
    /// Serve Prometheus metrics over HTTP on this port (`GET /metrics`, on
    /// the --bind address; 0: an ephemeral port). Off by default.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// What corekv writes to stderr: error, warn, info (start-up banner,
    /// shutdown) or debug (also every RESP client connecting and leaving).
    #[arg(long, value_enum, default_value = "info")]
    log_level: LogLevel,
    /// Quiet: --log-level warn and no stats line (--stats-interval 0).
    #[arg(long, short)]
    quiet: bool,
    /// Log every write to a per-shard append-only file in --dir (yes|no).
    #[arg(long, default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    appendonly: bool,
    /// When the log is synced: always (before every reply: one group commit
    /// per batch), everysec, or no (as Redis).
    #[arg(long, default_value = "everysec")]
    appendfsync: corekv::persist::Fsync,
    /// Directory of the persistence files.
    #[arg(long, default_value = corekv::persist::DEFAULT_DIR)]
    dir: std::path::PathBuf,
    /// Rewrite a shard's log when it grew by this many percent since its
    /// last rewrite (0: never automatically).
    #[arg(long, default_value_t = corekv::persist::DEFAULT_REWRITE_PERCENTAGE)]
    auto_aof_rewrite_percentage: u64,
    /// ... and is at least this large (e.g. 64M).
    #[arg(long, default_value = "64M", value_parser = config::parse_size)]
    auto_aof_rewrite_min_size: u64,
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("expected yes or no, not {s:?}")),
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl From<LogLevel> for corekv::log::Level {
    fn from(l: LogLevel) -> Self {
        use corekv::log::Level;
        match l {
            LogLevel::Error => Level::Error,
            LogLevel::Warn => Level::Warn,
            LogLevel::Info => Level::Info,
            LogLevel::Debug => Level::Debug,
        }
    }
}

#[derive(clap::Args)]
struct MonitorArgs {
    /// How long to sample (e.g. 30s, 2m; 0: until SIGINT/SIGTERM).
    #[arg(long, default_value = "0", value_parser = config::parse_duration)]
    secs: Duration,
    /// Time between samples (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = config::parse_duration)]
    interval: Duration,
    /// Also report this process's CPU and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Count only these network interfaces (comma-separated).
    #[arg(long)]
    iface: Option<String>,
    /// Write samples and summary as JSON here.
    #[arg(long)]
    out: Option<String>,
}

/// Parses the command line: the seed's spellings rewritten, then a
/// subcommand's `--config FILE` expanded in front of its own flags.
fn parse_cli() -> Result<Cli> {
    let argv = corekv::bench::cli::rewrite_seed_flags(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let file = match &cli.command {
        Command::Server(a) => a.config.clone().map(|f| (f, "server")),
        Command::Bench(a) => a.config.clone().map(|f| (f, "bench")),
        _ => None,
    };
    let Some((file, sub)) = file else {
        return Ok(cli);
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let cmd = Cli::command();
    let sub_cmd = cmd.find_subcommand(sub).expect("subcommand exists").clone();
    let known: Vec<&str> = sub_cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .collect();
    let from_file = config::config_file_args(&text, &known)
        .with_context(|| format!("in {}", file.display()))?;
    // argv[0], the subcommand, the file's flags, then the command line's own
    // flags (which override: args_override_self).
    let at = argv
        .iter()
        .position(|a| a.to_str() == Some(sub))
        .expect("the subcommand was parsed from argv");
    let mut merged: Vec<std::ffi::OsString> = argv[..=at].to_vec();
    merged.extend(from_file.into_iter().map(Into::into));
    merged.extend(argv[at + 1..].iter().cloned());
    let matches = Cli::command().try_get_matches_from(&merged);
    match matches.and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(c) => Ok(c),
        Err(e) => e.exit(),
    }
}

fn main() {
    let cli = match parse_cli() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corekv: error: {e:#}");
            std::process::exit(2);
        }
    };
    let result = match cli.command {
        Command::Server(a) => server(a),
        Command::Put {
            key,
            value,
            ttl: None,
            conn,
        } => one_op(&conn, |c| c.put(key.as_bytes(), value.as_bytes())),
        Command::Put {
            key,
            value,
            ttl: Some(ttl),
            conn,
        } => one_op(&conn, |c| c.put_ttl(key.as_bytes(), value.as_bytes(), ttl)),
        Command::Ttl { key, conn } => one_op(&conn, |c| match c.pttl(key.as_bytes())? {
            OwnedResult::Int(-2) => Ok(OwnedResult::NotFound),
            other => Ok(other),
        }),
        Command::Get { key, conn } => one_op(&conn, |c| c.get(key.as_bytes())),
        Command::Del { key, conn } => one_op(&conn, |c| c.del(key.as_bytes())),
        Command::Stats { conn, json } => stats(&conn, json),
        Command::Bench(a) => corekv::bench::cli::run(*a),
        Command::Report(r) => corekv::bench::cli::report(r),
        Command::Monitor(a) => monitor(a),
        Command::CheckAof { fix, file } => check_aof(&file, fix),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "corekv", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { out } => man(out),
    };
    if let Err(e) = result {
        eprintln!("corekv: error: {e:#}");
        std::process::exit(2);
    }
}

/// `corekv check-aof [--fix] FILE`: reports the file's state; exits 1 when
/// it is damaged and was not fixed.
fn check_aof(file: &std::path::Path, fix: bool) -> Result<()> {
    use corekv::persist::record::ScanEnd;
    let r = corekv::persist::check_file(file, fix).map_err(anyhow::Error::msg)?;
    println!(
        "{}: {} records, size {}, ok up to {}, {} bytes after it",
        file.display(),
        r.records,
        r.file_len,
        r.good_end,
        r.file_len - r.good_end
    );
    let damaged = match r.end {
        ScanEnd::Clean { .. } if r.snapshot_complete == Some(false) => {
            println!(
                "truncated snapshot: no end record (recovery refuses it; --fix cannot repair it)"
            );
            true
        }
        ScanEnd::Clean { .. } => {
            println!("file is valid");
            false
        }
        ScanEnd::Torn { end } => {
            println!("torn tail: the last record, at offset {end}, is incomplete");
            true
        }
        ScanEnd::Corrupt { offset, reason } => {
            println!("corrupt record at offset {offset}: {reason}");
            true
        }
    };
    if damaged {
        if r.snapshot_complete == Some(false) {
            println!("truncated snapshot: no end record, so it cannot be used (move it away to start from the logs)");
            std::process::exit(1);
        }
        if fix {
            println!("fixed: truncated to {} bytes", r.good_end);
        } else {
            println!("run with --fix to truncate the file to the last good record");
            std::process::exit(1);
        }
    }
    Ok(())
}

/// SIGINT and SIGTERM set the returned flag; a second one while the flag
/// is set (a stop already under way: start-up being abandoned, shutdown in
/// progress) exits at once with status 130.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Order matters: the conditional exit sees the flag as it was
        // before this signal set it.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())
            .context("installing signal handler")?;
        signal_hook::flag::register(sig, flag.clone()).context("installing signal handler")?;
    }
    Ok(flag)
}

fn parse_policy(s: &str) -> Result<corekv::store::Policy, String> {
    corekv::store::Policy::parse(s).ok_or_else(|| {
        let names: Vec<&str> = corekv::store::evict::POLICIES
            .iter()
            .map(|p| p.name())
            .collect();
        format!("unknown policy '{s}' (one of: {})", names.join(", "))
    })
}

fn server(a: ServerArgs) -> Result<()> {
    let cpus = match &a.cpus {
        Some(s) => config::parse_cpu_list(s)?,
        None => config::allowed_cpus(),
    };
    let max_memory = a.max_memory;
    let secs = |d: Duration| (!d.is_zero()).then_some(d);
    let cluster = match &a.cluster {
        Some(list) => corekv::cluster::parse_list(list)?,
        None => Vec::new(),
    };
    let node_id = if cluster.is_empty() {
        a.node_id.unwrap_or(0)
    } else {
        corekv::cluster::find_self(&cluster, a.node_id, a.bind, a.port)? as u32
    };
    let cfg = ServerConfig {
        cpus,
        bind: a.bind,
        port: a.port,
        resp_port: if a.no_resp { None } else { Some(a.resp_port) },
        node_id,
        cluster,
        max_memory,
        maxmemory_policy: a.maxmemory_policy,
        databases: a.databases,
        limits: Limits {
            max_key_len: a.max_key_len,
            max_value_len: a.max_value_len,
            max_frame_bytes: a.max_frame_bytes,
            max_batch_ops: a.max_batch_ops,
            max_connections_per_shard: a.max_connections,
            max_reply_bytes: a.max_reply_bytes,
            client_timeout: secs(a.client_timeout),
            idle_timeout: secs(a.timeout),
        },
        max_conn_memory: a.max_conn_memory,
        security: config::Security {
            requirepass: a.requirepass.clone(),
            protected_mode: a.protected_mode,
        },
        io_memory: config::DEFAULT_IO_MEMORY,
        persist: corekv::persist::PersistConfig {
            appendonly: a.appendonly,
            fsync: a.appendfsync,
            dir: a.dir.clone(),
            rewrite_percentage: a.auto_aof_rewrite_percentage,
            rewrite_min_size: a.auto_aof_rewrite_min_size,
        },
        coop_taskrun: !a.no_coop_taskrun,
        multishot_poll: !a.no_multishot_poll,
        spin_before_park: a.spin_before_park,
    };
    corekv::log::set_level(if a.quiet {
        corekv::log::Level::Warn.min(a.log_level.into())
    } else {
        a.log_level.into()
    });
    let stop = stop_flag()?;
    tune_allocator();
    corekv::log!(
        corekv::log::Level::Info,
        "corekv {} (git {}): node {} of {} with {} shards on CPUs {:?}, bind {}, native port {}{}, resp {}, max memory {} ({}), connection memory {} B, limits: key {} B, value {} B, frame {} B, reply {} B, batch {} ops, {} conns/shard, client timeout {}, idle timeout {}, {}",
        env!("CARGO_PKG_VERSION"),
        corekv::GIT_COMMIT,
        cfg.node_id,
        if cfg.cluster.is_empty() {
            "a one-node cluster".to_string()
        } else {
            format!("cluster {}", cfg.cluster.join(","))
        },
        cfg.nr_shards(),
        cfg.cpus,
        cfg.bind,
        cfg.port,
        if cfg.nr_shards() > 1 { "+shard" } else { "" },
        cfg.resp_port.map_or("off".to_string(), |p| p.to_string()),
        cfg.max_memory.map_or("unlimited".to_string(), |m| format!(
            "{m} B ({} B per shard)",
            cfg.shard_memory()
        )),
        cfg.maxmemory_policy,
        cfg.max_conn_memory,
        cfg.limits.max_key_len,
        cfg.limits.max_value_len,
        cfg.limits.max_frame_bytes,
        cfg.limits.max_reply_bytes,
        cfg.limits.max_batch_ops,
        cfg.limits.max_connections_per_shard,
        cfg.limits.client_timeout.map_or("off".to_string(), |d| format!("{d:?}")),
        cfg.limits.idle_timeout.map_or("off".to_string(), |d| format!("{d:?}")),
        match (&cfg.security.requirepass, cfg.security.protected_mode) {
            (Some(_), _) => "password required",
            (None, true) => "protected mode (loopback clients only)",
            (None, false) => "open to every host (no password, protected mode off)",
        },
    );
    if cfg.persist.appendonly {
        corekv::log!(
            corekv::log::Level::Info,
            "corekv: appendonly yes, appendfsync {}, dir {}: loading",
            cfg.persist.fsync.name(),
            cfg.persist.dir.display()
        );
    } else {
        corekv::log!(
            corekv::log::Level::Info,
            "corekv: appendonly no: in-memory only, nothing survives a restart"
        );
    }
    let handle = match corekv::server::run_until(&cfg, &stop) {
        Ok(h) => h,
        Err(corekv::error::ServerError::Interrupted) => {
            eprintln!("corekv: interrupted during start-up");
            std::process::exit(130);
        }
        Err(e) => return Err(e.into()),
    };
    let metrics = match a.metrics_port {
        Some(port) => Some(
            corekv::server::metrics::MetricsServer::start(
                std::net::SocketAddr::new(cfg.bind, port),
                handle.node_state().clone(),
                handle.observe().clone(),
            )
            .with_context(|| format!("binding the metrics port {}:{port}", cfg.bind))?,
        ),
        None => None,
    };
    for r in &handle.recovery {
        for n in &r.notes {
            corekv::log!(
                corekv::log::Level::Warn,
                "corekv: shard {}: {n}",
                r.shard_id
            );
        }
        corekv::log!(
            corekv::log::Level::Info,
            "corekv: shard {}: {} keys loaded ({} records) in {:.3} s",
            r.shard_id,
            r.keys,
            r.records,
            r.secs
        );
    }
    let ports: Vec<u16> = handle.shard_addrs.iter().map(|a| a.port()).collect();
    let (level, why) = match (cfg.coop_taskrun, handle.taskrun_mode) {
        (false, _) => (corekv::log::Level::Info, " (--no-coop-taskrun)"),
        (true, glommio::TaskRunMode::Interrupt) => (
            corekv::log::Level::Warn,
            " (the kernel refused COOP_TASKRUN: Linux 5.19+ needed; socket completions interrupt the shard)",
        ),
        (true, _) => (corekv::log::Level::Info, ""),
    };
    corekv::log!(
        level,
        "corekv io_uring: task work {}{}, spin before park {} us",
        handle.taskrun_mode,
        why,
        cfg.spin_before_park.as_micros(),
    );
    let (level, poll) = match (cfg.multishot_poll, handle.multishot_poll) {
        (_, true) => (
            corekv::log::Level::Info,
            "multishot (armed once per connection)",
        ),
        (false, _) => (
            corekv::log::Level::Info,
            "one-shot per read (--no-multishot-poll)",
        ),
        (true, false) => (
            corekv::log::Level::Warn,
            "one-shot per read (the kernel has no multishot poll: Linux 5.13+ needed)",
        ),
    };
    corekv::log!(level, "corekv io_uring: read readiness {poll}");
    let (timeout_in_enter, msg_ring) = handle.sleep_features;
    let level = if timeout_in_enter {
        corekv::log::Level::Info
    } else {
        corekv::log::Level::Warn
    };
    corekv::log!(
        level,
        "corekv io_uring: sleep {}, preemption timer {}",
        if timeout_in_enter {
            "in one io_uring_enter (timer as its timeout)"
        } else {
            "with timeout requests armed and cancelled around it (Linux 5.11+ needed for EXT_ARG)"
        },
        if msg_ring {
            "posts with MSG_RING"
        } else {
            "writes an eventfd (glommio's stock path)"
        },
    );
    println!(
        "corekv ready node_id={} shards={} ports={}-{} resp_port={} metrics_port={}",
        handle.node_id,
        ports.len(),
        ports[0],
        ports[ports.len() - 1],
        handle.resp_addr.map_or(0, |a| a.port()),
        metrics.as_ref().map_or(0, |m| m.addr().port()),
    );
    let mut line = StatsLine::new();
    let interval = if a.quiet {
        Duration::ZERO
    } else {
        a.stats_interval
    };
    let mut next = Instant::now() + interval;
    let mut trim = TrimOnClose::default();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        trim.check(&handle.stats());
        if !interval.is_zero() && Instant::now() >= next {
            next += interval;
            for l in line.lines(&handle.stats(), a.verbose) {
                println!("{l}");
            }
        }
    }
    corekv::log!(corekv::log::Level::Info, "corekv: stopping");
    drop(metrics);
    handle.shutdown();
    Ok(())
}

/// Makes glibc's malloc return connection memory instead of keeping it.
///
/// glibc serves allocations above its mmap threshold (128 KiB) with mmap,
/// but raises that threshold to the size of every such block freed, up to
/// 32 MiB. After one large request buffer is freed, later large buffers come
/// from the heap arenas, where a few long-lived blocks pin everything freed
/// below them. A fixed threshold keeps large buffers on mmap (given back on
/// free); connection buffers that stay small come from the heap.
fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tunables; called before the
    // shard threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Gives freed heap memory back to the system after many connections have
/// closed (`malloc_trim`): thousands of small per-connection blocks freed
/// together leave whole pages free inside the heap, which glibc keeps until
/// asked. Runs on the main thread, only when the node's connection count
/// has dropped by [`TrimOnClose::DROP`] since its high-water mark.
#[derive(Default)]
struct TrimOnClose {
    high: u64,
}

impl TrimOnClose {
    const DROP: u64 = 256;

    fn check(&mut self, stats: &corekv::protocol::native::NodeStats) {
        let now = stats.total().connections;
        self.high = self.high.max(now);
        if self.high - now >= Self::DROP {
            self.high = now;
            #[cfg(target_env = "gnu")]
            // SAFETY: malloc_trim is thread-safe; it only releases free pages.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

fn connect(conn: &ConnArgs) -> Result<BlockingClient> {
    let hosts: Vec<String> = conn
        .hosts
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let options = ClientOptions {
        timeout: conn.timeout,
        password: conn.password.clone(),
        ..Default::default()
    };
    Ok(BlockingClient::connect(&hosts, options)?)
}

fn one_op(
    conn: &ConnArgs,
    op: impl FnOnce(&BlockingClient) -> Result<OwnedResult, corekv::error::ClientError>,
) -> Result<()> {
    let client = connect(conn)?;
    match op(&client)? {
        OwnedResult::Value(v) => println!("{}", String::from_utf8_lossy(&v)),
        OwnedResult::Ok => println!("OK"),
        OwnedResult::Int(i) => println!("{i}"),
        OwnedResult::NotFound => {
            eprintln!("(not found)");
            std::process::exit(1);
        }
        OwnedResult::Err(e) => bail!("server: {e}"),
        OwnedResult::Moved { slot, node_id } => {
            bail!("slot {slot} is owned by node {node_id} and the redirect was not resolved")
        }
    }
    Ok(())
}

/// A shard's memory limit as STATS carries it (`u64::MAX`: none), as the
/// user reads it: `None` for no limit (JSON `null`, table `none`), never
/// 18446744073709551615.
fn memory_limit(wire: u64) -> Option<u64> {
    (wire != u64::MAX).then_some(wire)
}

fn stats(conn: &ConnArgs, json: bool) -> Result<()> {
    let client = connect(conn)?;
    let nodes = client.stats()?;
    if json {
        let v: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "node_id": n.node_id,
                    "uptime_secs": n.uptime_secs,
                    "shards": n.shards.iter().map(|s| serde_json::json!({
                        "shard_id": s.shard_id, "ops": s.ops, "gets": s.gets, "puts": s.puts,
                        "dels": s.dels, "keys": s.keys, "memory_used": s.memory_used,
                        "memory_limit": memory_limit(s.memory_limit), "connections": s.connections, "errors": s.errors,
                        "conn_memory_used": s.conn_memory_used, "conn_memory_limit": s.conn_memory_limit,
                        "forwarded_out": s.forwarded_out, "forwarded_in": s.forwarded_in,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:>4} {:>5} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>7} {:>10} {:>10}",
        "node",
        "shard",
        "ops",
        "gets",
        "puts",
        "dels",
        "keys",
        "memory",
        "limit",
        "conn_mem",
        "conns",
        "errors",
        "fwd_out",
        "fwd_in"
    );
    for n in &nodes {
        let t = n.total();
        let rows = n
            .shards
            .iter()
            .map(|s| (s.shard_id.to_string(), s))
            .chain(std::iter::once(("all".to_string(), &t)));
        for (label, s) in rows {
            println!(
                "{:>4} {:>5} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>7} {:>10} {:>10}",
                n.node_id,
                label,
                s.ops,
                s.gets,
                s.puts,
                s.dels,
                s.keys,
                corekv::units::human_bytes(s.memory_used),
                memory_limit(s.memory_limit).map_or("none".to_string(), corekv::units::human_bytes),
                corekv::units::human_bytes(s.conn_memory_used),
                s.connections,
                s.errors,
                s.forwarded_out,
                s.forwarded_in
            );
        }
    }
    Ok(())
}

fn monitor(a: MonitorArgs) -> Result<()> {
    use corekv::bench::sysstat;
    let stop = stop_flag()?;
    let opts = sysstat::MonitorOptions {
        interval: a.interval.max(Duration::from_millis(50)),
        pid: a.pid,
        iface: a.iface.clone(),
        ..Default::default()
    };
    let samples = sysstat::monitor(&opts, a.secs.as_secs_f64(), &stop)?;
    let summary = sysstat::summarize(&samples);
    eprintln!("{summary}");
    if let Some(out) = &a.out {
        let v = serde_json::json!({ "samples": samples, "summary": summary });
        std::fs::write(out, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("writing {out}"))?;
    }
    Ok(())
}

/// `corekv man`: the page of `corekv` on stdout, or every page into a directory.
fn man(out: Option<std::path::PathBuf>) -> Result<()> {
    let cmd = Cli::command();
    match out {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("writing the man page")?,
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!("corekv: man pages in {}", dir.display());
        }
    }
    Ok(())
}
