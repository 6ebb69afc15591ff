//! The load driver of `corekv bench` (`corekv::bench::driver`).
//!
//! Owns: pinned worker executors, the run's steps (spawn, start together,
//! collect seconds, merge), the per-second timeline and progress line, and
//! the assembly of a [`BenchReport`]. Sessions, pacing and recording are
//! `super::session`'s; each target's sessions and server monitor are in
//! `super::native_target`, `super::resp_target` and
//! `super::memcached_target`.
//!
//! Must not touch: the workload's arithmetic (`super::workload`), report
//! formatting and merging (`super::report`), plots, or server internals — the
//! driver sees servers only through the shard-aware client ([`Cluster`]), a
//! RESP socket (`super::resp_target`) or a memcached socket
//! (`super::memcached_target`).
//!
//! # Shape (shared-nothing, like Seastar's seawreck)
//!
//! One glommio executor per `--cpus` entry, pinned with
//! [`Placement::Fixed`]. Each worker owns one [`Cluster`] (RESP: one socket
//! per session and host) shared by its sessions, its own histograms and
//! counters; nothing is shared between workers on the data path except an
//! `AtomicBool` stop flag read once per batch. Once a second each worker's
//! ticker hands the finished second's bucket (counters + batch-latency
//! histogram) to the main thread over a channel; the main thread prints the
//! progress line and builds the timeline. At the end the workers' totals are
//! merged (histograms exactly).
//!
//! Sessions and pacing (closed loop, open loop without coordinated
//! omission) are described in `super::session`.
//!
//! # What is measured
//!
//! * The run is `warmup` seconds then `secs` measured seconds, both from the
//!   same start instant `t0` (all workers start together). A batch counts in
//!   the measured window when its *completion* time falls in it; each
//!   completion is bucketed by the second it completed in, so the timeline
//!   sums exactly to the totals.
//! * **Batch latency**: from sending the batch (open loop: from its intended
//!   send time) to the arrival of the last part's reply.
//! * **Per-operation latency**: the latency of the batch the op travelled in,
//!   recorded once per operation (`record_n(batch_latency, ops)`), and apart
//!   for GETs and SETs. An op's result is available to the session only when
//!   its whole batch is, so this is what a caller of the batched API
//!   observes per operation; it weights the percentiles by operations rather
//!   than by batches (with fixed-size batches the percentiles equal the
//!   batch's, so the report's table shows GET and SET rows only at batch 1).
//! * **GET misses**: GETs answered "not found" (native), a null bulk (RESP)
//!   or no `VALUE` (memcached).
//! * **Server figures** (corekv): worker 0 polls STATS every second; each
//!   node's per-second ops/s is the delta of its ops counter over the delta
//!   of its own uptime clock; per-shard totals are the counter deltas over
//!   the measured window (keys, memory and connections: values at the end).
//!   Redis: `INFO all` on a separate connection (`cmdstat_get`/`cmdstat_set`
//!   calls). memcached: `stats` (`cmd_get`, one per key, and `cmd_set`).
//! * **Client CPU**: `getrusage(RUSAGE_SELF)` (user + system, every thread of
//!   the process) between the start and the end of the measured window.
//! * **Bytes**: bytes written to / read from the sockets in the window.
//!
//! A client error (connection lost, timeout, protocol error) is fatal: every
//! session stops and [`run`] returns the error.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use glommio::{LocalExecutorBuilder, Placement};

use super::report::{
    BenchMeta, BenchReport, IntervalHistogram, LatencyHistogram, LoadMode, ServerNodeReport,
    TimelineSample, Totals,
};
pub use super::session::process_cpu_secs;
use super::session::{sleep_until, Bucket, Pacer, Timing, WorkerCtx};
use super::workload::{self, Generator, KeyDist, WorkloadConfig};
use super::{memcached_target, native_target, resp_target};
use crate::client::{ClientOptions, Cluster};
use crate::units::fmt_rate;

/// Operations generated once, single-threaded, to measure the generator's
/// pure speed before the run.
const GENERATION_PROBE_OPS: u64 = 2_000_000;
/// Delay between "all workers ready" and the common start instant.
const START_DELAY: Duration = Duration::from_millis(50);

/// The system a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// corekv's native batch protocol through the shard-aware client.
    Corekv,
    /// A corekv node's RESP port, pipelined GET/SET.
    CorekvResp,
    /// A Redis-protocol server (redis-server, valkey, ...), pipelined GET/SET.
    Redis,
    /// A Redis Cluster (or corekv as one): the masters from CLUSTER SLOTS
    /// of the first host, each key pipelined straight to its slot's master.
    RedisCluster,
    /// A memcached server, text protocol: multi-gets and sets, pipelined.
    Memcached,
}

impl Target {
    /// Parses `corekv`, `corekv-resp`, `redis` or `memcached`.
    pub fn parse(s: &str) -> Result<Target> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "corekv" | "native" => Target::Corekv,
            "corekv-resp" => Target::CorekvResp,
            "redis" | "resp" => Target::Redis,
            "redis-cluster" => Target::RedisCluster,
            "memcached" | "memcache" => Target::Memcached,
            _ => bail!("unknown target {s:?}: expected corekv, corekv-resp, redis, redis-cluster or memcached"),
        })
    }

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Corekv => "corekv",
            Target::CorekvResp => "corekv-resp",
            Target::Redis => "redis",
            Target::RedisCluster => "redis-cluster",
            Target::Memcached => "memcached",
        }
    }

    /// True for the RESP drivers.
    pub fn is_resp(self) -> bool {
        matches!(
            self,
            Target::CorekvResp | Target::Redis | Target::RedisCluster
        )
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// System under test.
    pub target: Target,
    /// Server addresses (`host:port`); corekv: any shard's native port of each node.
    pub hosts: Vec<String>,
    /// The workload (validated by [`run`]).
    pub workload: WorkloadConfig,
    /// Operations per batch (RESP: pipeline depth).
    pub batch: usize,
    /// Sessions per worker (when `total_sessions` is `None`).
    pub sessions_per_worker: usize,
    /// Sessions of the whole process (`--clients`, the seed's `-numClients`),
    /// spread over the workers: worker `w` of `W` runs `n / W` sessions, plus
    /// one when `w < n % W`. `None`: `sessions_per_worker` on every worker.
    pub total_sessions: Option<usize>,
    /// One pinned worker per CPU.
    pub cpus: Vec<usize>,
    /// Measured window, seconds.
    pub secs: f64,
    /// Warm-up before it, seconds (excluded from every figure).
    pub warmup_secs: f64,
    /// Open loop at this many ops/s in total; `None`: closed loop.
    pub rate: Option<f64>,
    /// Base seed of the sessions' generators ([`workload::seed_for`]).
    pub base_seed: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The nodes' `--requirepass`, sent as the native HELLO token.
    pub password: Option<String>,
    /// Print one progress line per second to stderr.
    pub progress: bool,
    /// Writes set keys expiring after this long (`None`: no TTL).
    pub ttl: Option<Duration>,
    /// Cache-aside (`--cache-aside`): every generated op is a GET of a
    /// key drawn from the workload's distribution, and each key a batch
    /// missed is SET (the fill) at the head of the session's next batch.
    pub cache_aside: bool,
    /// How long a worker's executor keeps polling its rings before it
    /// sleeps in the kernel (`--spin-before-park`; zero: sleep at once).
    pub spin_before_park: Duration,
}

impl DriverConfig {
    /// A closed-loop corekv run with the seed's workload on the given hosts
    /// and CPUs; the remaining fields have small, test-friendly defaults.
    pub fn new(hosts: Vec<String>, cpus: Vec<usize>) -> DriverConfig {
        DriverConfig {
            target: Target::Corekv,
            hosts,
            workload: WorkloadConfig::default(),
            batch: 8192,
            sessions_per_worker: 8,
            total_sessions: None,
            cpus,
            secs: 10.0,
            warmup_secs: 2.0,
            rate: None,
            base_seed: 1,
            timeout: crate::client::DEFAULT_TIMEOUT,
            password: None,
            progress: false,
            ttl: None,
            cache_aside: false,
            spin_before_park: crate::config::DEFAULT_SPIN_BEFORE_PARK,
        }
    }

    fn validate(&self) -> Result<()> {
        self.workload.validate()?;
        if self.hosts.is_empty() {
            bail!("no hosts given (--hosts h1:port,h2:port)");
        }
        if self.cpus.is_empty() {
            bail!("no CPUs given (--cpus)");
        }
        if self.batch == 0 || self.sessions_per_worker == 0 || self.total_sessions == Some(0) {
            bail!("--batch, --sessions and --clients must be at least 1");
        }
        if let Some(n) = self.total_sessions {
            if n < self.cpus.len() {
                bail!(
                    "--clients {n} is fewer than the {} worker CPUs: give --cpus at most {n} CPUs",
                    self.cpus.len()
                );
            }
        }
        if !(self.secs > 0.0 && self.secs.is_finite()) {
            bail!("--secs must be > 0, got {}", self.secs);
        }
        if !(self.warmup_secs >= 0.0 && self.warmup_secs.is_finite()) {
            bail!("--warmup must be >= 0, got {}", self.warmup_secs);
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                bail!("--rate must be > 0, got {r}");
            }
        }
        Ok(())
    }

    /// Sessions worker `worker` runs.
    pub fn sessions_of(&self, worker: usize) -> usize {
        match self.total_sessions {
            Some(n) => {
                let w = self.cpus.len().max(1);
                n / w + usize::from(worker < n % w)
            }
            None => self.sessions_per_worker,
        }
    }

    /// Sessions of the whole process.
    pub fn total_sessions(&self) -> usize {
        self.total_sessions
            .unwrap_or(self.cpus.len() * self.sessions_per_worker)
    }

    /// Index, over the whole process, of worker `worker`'s first session.
    fn first_session_of(&self, worker: usize) -> usize {
        (0..worker).map(|w| self.sessions_of(w)).sum()
    }
}

/// What workers tell the main thread while running.
enum Msg {
    Second {
        idx: i64,
        bucket: Box<Bucket>,
    },
    /// The worker's sessions are done; `WorkerResult` follows at join.
    Finished,
}

/// What a worker hands back at the end.
#[derive(Default)]
struct WorkerResult {
    batch_hist: LatencyHistogram,
    op_hist: LatencyHistogram,
    get_hist: LatencyHistogram,
    set_hist: LatencyHistogram,
    send_lag_hist: LatencyHistogram,
    bytes_sent: u64,
    bytes_received: u64,
    /// Ops the native client re-sent after a redirect.
    redirects: u64,
    cpu_secs: Option<f64>,
    servers: Vec<ServerNodeReport>,
    error: Option<String>,
    warnings: Vec<String>,
}

/// What a worker thread is given.
struct WorkerSetup {
    worker: usize,
    cfg: DriverConfig,
    keys: KeyDist,
    stop: Arc<AtomicBool>,
    ready: flume::Sender<Result<(), String>>,
    start: flume::Receiver<Timing>,
    msgs: flume::Sender<(usize, Msg)>,
}

/// The connections of one worker.
enum Conns {
    Native(Rc<Cluster>),
    Resp(resp_target::WorkerConns),
    Memcached(memcached_target::WorkerConns),
}

impl Conns {
    /// Bytes written to / read from this worker's sockets so far.
    fn bytes(&self, ctx: &WorkerCtx) -> (u64, u64) {
        match self {
            Conns::Native(c) => c.bytes(),
            Conns::Resp(_) | Conns::Memcached(_) => {
                (ctx.bytes_sent.get(), ctx.bytes_received.get())
            }
        }
    }
}

/// A spawned monitor: STATS (native), INFO (RESP) or stats (memcached), and
/// how its failure reads.
type MonitorTask = (
    glommio::Task<Result<Vec<ServerNodeReport>, String>>,
    &'static str,
);

/// `(bytes sent, bytes received)` and process CPU seconds at one instant.
type Snap = ((u64, u64), f64);

async fn connect_worker(s: &WorkerSetup) -> Result<Conns, String> {
    let cfg = &s.cfg;
    if cfg.target == Target::Memcached {
        let c = memcached_target::WorkerConns::connect(
            &cfg.hosts,
            cfg.sessions_of(s.worker),
            s.worker == 0,
            cfg.timeout,
        )
        .await?;
        return Ok(Conns::Memcached(c));
    }
    if cfg.target.is_resp() {
        let (hosts, table) = if cfg.target == Target::RedisCluster {
            let seed = cfg.hosts.first().ok_or("no hosts given")?;
            let (masters, table) = resp_target::cluster_masters(seed, cfg.timeout).await?;
            (masters, Some(table))
        } else {
            (cfg.hosts.clone(), None)
        };
        let c = resp_target::WorkerConns::connect(
            &hosts,
            table,
            cfg.sessions_of(s.worker),
            s.worker == 0,
            cfg.timeout,
        )
        .await?;
        return Ok(Conns::Resp(c));
    }
    let options = ClientOptions {
        timeout: cfg.timeout,
        password: cfg.password.clone(),
        ..Default::default()
    };
    Cluster::connect(&cfg.hosts, options)
        .await
        .map(Conns::Native)
        .map_err(|e| e.to_string())
}

/// A worker: connect, report ready, wait for the common clock, run the
/// sessions, the ticker and (worker 0) the monitor, hand back its results.
async fn worker_main(s: WorkerSetup) -> WorkerResult {
    let conns = match connect_worker(&s).await {
        Ok(c) => c,
        Err(e) => {
            let _ = s.ready.send(Err(e.clone()));
            return WorkerResult {
                error: Some(e),
                ..Default::default()
            };
        }
    };
    let _ = s.ready.send(Ok(()));
    let Ok(timing) = s.start.recv_async().await else {
        // The run was called off (another worker failed to start).
        return WorkerResult::default();
    };
    let cfg = &s.cfg;
    let ctx = Rc::new(
        WorkerCtx::new(timing, cfg.batch, cfg.workload.value(), s.stop.clone())
            .with_ttl(cfg.ttl)
            .with_cache_aside(cfg.cache_aside),
    );
    let conns = Rc::new(conns);
    sleep_until(timing.t0).await;
    let (sessions, monitor) = spawn_sessions(&s, &ctx, &conns);
    let ticker = glommio::spawn_local(tick(ctx.clone(), conns.clone(), s.msgs.clone(), s.worker));
    for session in sessions {
        session.await;
    }
    let (start_snap, end_snap) = ticker.await;
    let mut result = WorkerResult::default();
    if let Conns::Native(c) = &*conns {
        result.redirects = c.redirects();
    }
    if let (Some(((s0, r0), c0)), Some(((s1, r1), c1))) = (start_snap, end_snap) {
        result.bytes_sent = s1.saturating_sub(s0);
        result.bytes_received = r1.saturating_sub(r0);
        if s.worker == 0 {
            result.cpu_secs = Some(c1 - c0);
        }
    }
    if let Some((m, what)) = monitor {
        match m.await {
            Ok(servers) => result.servers = servers,
            Err(e) => result
                .warnings
                .push(format!("server {what} unavailable: {e}")),
        }
    }
    let _ = s.msgs.send((s.worker, Msg::Finished));
    let mut st = ctx.state.borrow_mut();
    result.batch_hist = std::mem::take(&mut st.batch_hist);
    result.op_hist = std::mem::take(&mut st.op_hist);
    result.get_hist = std::mem::take(&mut st.get_hist);
    result.set_hist = std::mem::take(&mut st.set_hist);
    result.send_lag_hist = std::mem::take(&mut st.send_lag_hist);
    drop(st);
    result.error = ctx.take_error();
    result
}

/// Spawns the worker's sessions (each with its seeded generator and pacer)
/// and, on worker 0, the server monitor of its target.
fn spawn_sessions(
    s: &WorkerSetup,
    ctx: &Rc<WorkerCtx>,
    conns: &Conns,
) -> (Vec<glommio::Task<()>>, Option<MonitorTask>) {
    let cfg = &s.cfg;
    let total = cfg.total_sessions();
    let first = cfg.first_session_of(s.worker);
    let parts = |i: usize| {
        let gen = Generator::from_parts(
            s.keys,
            cfg.workload.read_ratio,
            session_seed(cfg, s.worker, i),
        )
        .expect("workload validated before the run");
        let g = first + i;
        (gen, Pacer::new(cfg.rate, total, g, cfg.batch, &ctx.timing))
    };
    let mut sessions = Vec::new();
    let mut monitor: Option<MonitorTask> = None;
    match conns {
        Conns::Native(cluster) => {
            for i in 0..cfg.sessions_of(s.worker) {
                let (gen, pacer) = parts(i);
                let task = native_target::session(ctx.clone(), cluster.clone(), gen, pacer);
                sessions.push(glommio::spawn_local(task));
            }
            if s.worker == 0 {
                let task = native_target::monitor(ctx.clone(), cluster.clone());
                monitor = Some((glommio::spawn_local(task), "STATS"));
            }
        }
        Conns::Resp(wc) => {
            for (i, streams) in wc.take_sessions().into_iter().enumerate() {
                let (gen, pacer) = parts(i);
                let task = resp_target::session(ctx.clone(), streams, gen, pacer);
                sessions.push(glommio::spawn_local(task));
            }
            if let Some(m) = wc.take_monitor() {
                let task = resp_target::monitor(ctx.clone(), m, cfg.hosts.clone());
                monitor = Some((glommio::spawn_local(task), "INFO"));
            }
        }
        Conns::Memcached(wc) => {
            for (i, streams) in wc.take_sessions().into_iter().enumerate() {
                let (gen, pacer) = parts(i);
                let task = memcached_target::session(ctx.clone(), streams, gen, pacer);
                sessions.push(glommio::spawn_local(task));
            }
            if let Some(m) = wc.take_monitor() {
                let task = memcached_target::monitor(ctx.clone(), m, cfg.hosts.clone());
                monitor = Some((glommio::spawn_local(task), "stats"));
            }
        }
    }
    (sessions, monitor)
}

/// The worker's ticker: hands each finished second's bucket to the main
/// thread, and snapshots bytes and CPU at the measured window's edges.
async fn tick(
    ctx: Rc<WorkerCtx>,
    conns: Rc<Conns>,
    msgs: flume::Sender<(usize, Msg)>,
    worker: usize,
) -> (Option<Snap>, Option<Snap>) {
    let t = ctx.timing;
    let snap = || (conns.bytes(&ctx), process_cpu_secs());
    let mut start_snap = (t.first_second == 0).then(snap);
    let mut end_snap = None;
    for k in t.first_second..t.seconds {
        sleep_until(t.second_end(k)).await;
        let now = Instant::now();
        if k == -1 {
            start_snap = Some(snap());
        }
        if k == t.seconds - 1 {
            end_snap = Some(snap());
        }
        let bucket = take_second(&ctx, k);
        let _ = msgs.send((
            worker,
            Msg::Second {
                idx: k,
                bucket: Box::new(bucket),
            },
        ));
        if ctx.stopped() && now < t.end {
            break;
        }
    }
    (start_snap, end_snap)
}

/// Removes second `k`'s bucket from the worker's state, folding any earlier
/// straggler into it (cannot happen: completions are recorded at once).
fn take_second(ctx: &WorkerCtx, k: i64) -> Bucket {
    let mut st = ctx.state.borrow_mut();
    let stragglers: Vec<i64> = st.buckets.range(..k).map(|(&i, _)| i).collect();
    for i in stragglers {
        if let Some(b) = st.buckets.remove(&i) {
            st.buckets.entry(k).or_default().add(&b);
        }
    }
    st.buckets.remove(&k).unwrap_or_default()
}

fn session_seed(cfg: &DriverConfig, worker: usize, session: usize) -> u64 {
    workload::seed_for(worker, session, cfg.base_seed)
}

fn fmt_us(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// The running workers: their join handles (with their CPUs) and the
/// channels that start them and carry their seconds.
struct Workers {
    joins: Vec<(usize, glommio::ExecutorJoinHandle<WorkerResult>)>,
    starts: Vec<flume::Sender<Timing>>,
    readies: Vec<flume::Receiver<Result<(), String>>>,
    msgs: flume::Receiver<(usize, Msg)>,
}

/// Runs a benchmark and returns its report. Blocks the calling thread; the
/// work happens on one pinned executor per CPU in `cfg.cpus`.
pub fn run(cfg: &DriverConfig) -> Result<BenchReport> {
    cfg.validate()?;
    let keys = cfg.workload.key_dist()?;
    let generation_rate =
        workload::generation_rate_with(keys, cfg.workload.read_ratio, GENERATION_PROBE_OPS);
    crate::memlock::raise_memlock(
        crate::config::DEFAULT_IO_MEMORY as u64 * 2 * cfg.cpus.len() as u64,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_workers(cfg, keys, &stop)?;
    let Workers {
        joins,
        starts,
        readies,
        msgs,
    } = workers;
    if let Err(e) = await_ready(cfg, &readies) {
        drop(starts);
        let mut detail = String::new();
        for (cpu, j) in joins {
            if let Err(err) = j.join() {
                detail = format!(" (executor on CPU {cpu}: {err})");
            }
        }
        bail!("{e}{detail}");
    }
    let start_unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let timing = Timing::new(Instant::now() + START_DELAY, cfg.warmup_secs, cfg.secs);
    // The measured window's start on the wall clock, for interval logs.
    let window_unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
        + timing
            .start
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
    for s in &starts {
        let _ = s.send(timing);
    }
    drop(starts);
    let (mut totals, timeline, intervals) = collect_seconds(cfg, &timing, window_unix_secs, &msgs)?;
    let mut report = merge_workers(joins)?;
    report.generation_rate_ops = generation_rate;
    totals.elapsed_secs = (timing.end - timing.start).as_secs_f64();
    report.totals = totals;
    report.timeline = timeline;
    report.intervals = intervals;
    report.meta = meta(cfg, start_unix_secs);
    report.finalize();
    Ok(report)
}

/// Starts one pinned executor per CPU, each running [`worker_main`].
fn spawn_workers(cfg: &DriverConfig, keys: KeyDist, stop: &Arc<AtomicBool>) -> Result<Workers> {
    let (msg_tx, msg_rx) = flume::unbounded::<(usize, Msg)>();
    let mut w = Workers {
        joins: Vec::new(),
        starts: Vec::new(),
        readies: Vec::new(),
        msgs: msg_rx,
    };
    for (worker, &cpu) in cfg.cpus.iter().enumerate() {
        let (ready_tx, ready_rx) = flume::bounded(1);
        let (start_tx, start_rx) = flume::bounded(1);
        let setup = WorkerSetup {
            worker,
            cfg: cfg.clone(),
            keys,
            stop: stop.clone(),
            ready: ready_tx,
            start: start_rx,
            msgs: msg_tx.clone(),
        };
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("corekv-bench-{worker}"))
            .io_memory(crate::config::DEFAULT_IO_MEMORY);
        if !cfg.spin_before_park.is_zero() {
            builder = builder.spin_before_park(cfg.spin_before_park);
        }
        let join = builder
            .spawn(move || worker_main(setup))
            .map_err(|e| anyhow::anyhow!("starting bench worker {worker} on CPU {cpu}: {e}"))?;
        w.joins.push((cpu, join));
        w.starts.push(start_tx);
        w.readies.push(ready_rx);
    }
    Ok(w)
}

/// Waits until every worker is connected; the first reason one is not.
fn await_ready(
    cfg: &DriverConfig,
    readies: &[flume::Receiver<Result<(), String>>],
) -> Result<(), String> {
    let mut start_error = None;
    for (worker, ready) in readies.iter().enumerate() {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                start_error.get_or_insert(format!("worker {worker}: {e}"));
            }
            Err(_) => {
                start_error.get_or_insert(format!(
                    "worker {worker} (CPU {}) exited during start-up",
                    cfg.cpus[worker]
                ));
            }
        }
    }
    start_error.map_or(Ok(()), Err)
}

/// The measured totals, the per-second timeline and interval histograms.
type Collected = (Totals, Vec<TimelineSample>, Vec<IntervalHistogram>);

/// Collects the workers' seconds until every worker has finished: merges
/// each second over all workers, adds the measured ones to the totals, the
/// timeline and the interval histograms (`window_unix_secs`: the measured
/// window's start on the wall clock), and prints the progress line.
fn collect_seconds(
    cfg: &DriverConfig,
    timing: &Timing,
    window_unix_secs: f64,
    msgs: &flume::Receiver<(usize, Msg)>,
) -> Result<Collected> {
    let n = cfg.cpus.len();
    let mut pending: BTreeMap<i64, (usize, Bucket)> = BTreeMap::new();
    let mut timeline = Vec::new();
    let mut totals = Totals::default();
    let mut intervals = Vec::new();
    let mut so_far = LatencyHistogram::new();
    let mut finished = 0;
    while finished < n {
        let Ok((_, msg)) = msgs.recv() else { break };
        let (idx, bucket) = match msg {
            Msg::Finished => {
                finished += 1;
                continue;
            }
            Msg::Second { idx, bucket } => (idx, bucket),
        };
        let e = pending.entry(idx).or_default();
        e.0 += 1;
        e.1.add(&bucket);
        if e.0 < n {
            continue;
        }
        let (_, b) = pending.remove(&idx).unwrap_or_default();
        let t_to = timing.second_end(idx);
        if idx < 0 {
            totals.warmup_gets += b.gets;
            totals.warmup_get_misses += b.get_misses;
        }
        if idx >= 0 {
            so_far.add(&b.batch_hist)?;
            totals.ops += b.ops;
            totals.gets += b.gets;
            totals.puts += b.puts;
            totals.errors += b.errors;
            totals.get_misses += b.get_misses;
            let t_from = timing.second_start(idx);
            intervals.push(IntervalHistogram {
                start_unix_secs: window_unix_secs + (t_from - timing.start).as_secs_f64(),
                secs: (t_to - t_from).as_secs_f64(),
                batch_latency: b.batch_hist.clone(),
            });
            timeline.push(TimelineSample {
                t_secs: (t_to - timing.start).as_secs_f64(),
                ops: b.ops,
                gets: b.gets,
                puts: b.puts,
                errors: b.errors,
                p99_batch_ns: b.batch_hist.p99(),
            });
        }
        if cfg.progress {
            progress_line(cfg, timing, idx, &b, &so_far, totals.errors);
        }
    }
    Ok((totals, timeline, intervals))
}

/// One second's progress line on stderr.
fn progress_line(
    cfg: &DriverConfig,
    timing: &Timing,
    idx: i64,
    b: &Bucket,
    so_far: &LatencyHistogram,
    errors: u64,
) {
    let t_from = timing.second_start(idx);
    let t_to = timing.second_end(idx);
    let dur = (t_to - t_from).as_secs_f64().max(1e-9);
    let label = if idx < 0 {
        format!("warm-up {:>3}", idx)
    } else {
        format!(
            "{:>5.1}/{:<5.1}s",
            (t_to - timing.start).as_secs_f64(),
            cfg.secs
        )
    };
    let p99_total = if idx >= 0 {
        format!(" (run {})", fmt_us(so_far.p99()))
    } else {
        String::new()
    };
    eprintln!(
        "[{label}] {:>9}op/s  p99 batch {}{}  errors {}",
        fmt_rate(b.ops as f64 / dur),
        fmt_us(b.batch_hist.p99()),
        p99_total,
        errors + if idx < 0 { b.errors } else { 0 },
    );
}

/// Joins the workers and merges their histograms, byte counts, client CPU
/// and server figures; the first worker error aborts the run.
fn merge_workers(
    joins: Vec<(usize, glommio::ExecutorJoinHandle<WorkerResult>)>,
) -> Result<BenchReport> {
    let mut report = BenchReport::default();
    let mut error = None;
    let mut warnings = Vec::new();
    for (worker, (cpu, j)) in joins.into_iter().enumerate() {
        match j.join() {
            Ok(r) => {
                report.batch_latency.add(&r.batch_hist)?;
                report.op_latency.add(&r.op_hist)?;
                report.get_latency.add(&r.get_hist)?;
                report.set_latency.add(&r.set_hist)?;
                report.send_lag.add(&r.send_lag_hist)?;
                report.bytes_sent += r.bytes_sent;
                report.bytes_received += r.bytes_received;
                report.redirects += r.redirects;
                if let Some(c) = r.cpu_secs {
                    report.client_cpu_secs = c;
                }
                if !r.servers.is_empty() {
                    report.servers = r.servers;
                }
                warnings.extend(r.warnings);
                if let Some(e) = r.error {
                    error.get_or_insert(format!("worker {worker}: {e}"));
                }
            }
            Err(e) => {
                error.get_or_insert(format!("worker {worker} (CPU {cpu}) failed: {e}"));
            }
        }
    }
    if let Some(e) = error {
        bail!("benchmark aborted: {e}");
    }
    for w in warnings {
        eprintln!("corekv bench: warning: {w}");
    }
    Ok(report)
}

/// The report's description of this run.
fn meta(cfg: &DriverConfig, start_unix_secs: u64) -> BenchMeta {
    BenchMeta {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: hostname(),
        start_unix_secs,
        target: cfg.target.as_str().to_string(),
        hosts: cfg.hosts.clone(),
        workload: cfg.workload.name.clone(),
        read_ratio: if cfg.cache_aside {
            1.0
        } else {
            cfg.workload.read_ratio
        },
        theta: cfg.workload.theta,
        distribution: cfg.workload.distribution.as_str().to_string(),
        records: cfg.workload.records,
        value_size: cfg.workload.value_size,
        batch: cfg.batch,
        sessions_per_worker: cfg.sessions_of(0),
        total_sessions: cfg.total_sessions(),
        worker_cpus: cfg.cpus.clone(),
        secs: cfg.secs,
        warmup_secs: cfg.warmup_secs,
        mode: match cfg.rate {
            None => LoadMode::Closed,
            Some(r) => LoadMode::Open {
                rate_ops_per_sec: r,
            },
        },
        base_seed: cfg.base_seed,
        cache_aside: cfg.cache_aside,
        client_processes: 1,
        corekv_commit: crate::GIT_COMMIT.to_string(),
        date: humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(start_unix_secs))
            .to_string(),
        command_line: Vec::new(),
        machine: super::sysstat::machine(),
    }
}

/// This machine's host name (empty if unknown).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names() {
        for t in [
            Target::Corekv,
            Target::CorekvResp,
            Target::Redis,
            Target::RedisCluster,
            Target::Memcached,
        ] {
            assert_eq!(Target::parse(t.as_str()).unwrap(), t);
        }
        // memcached is a target now (bench/memcached_target.rs).
        assert!(Target::parse("mongodb").is_err());
    }
}
