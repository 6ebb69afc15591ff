//! The load driver of `corekv bench` (`corekv::bench::driver`).
//!
//! Owns: pinned worker executors, sessions (the seed's client goroutines),
//! closed- and open-loop pacing, latency recording, the per-second timeline,
//! the once-a-second server monitor and the assembly of a [`BenchReport`].
//!
//! Must not touch: the workload's arithmetic (`super::workload`), report
//! formatting and merging (`super::report`), plots, or server internals — the
//! driver sees servers only through the shard-aware client ([`Cluster`]) or a
//! RESP socket ([`super::resp_target`]).
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
//! # Sessions
//!
//! A session owns one seeded [`Generator`], one [`Batch`], one [`Splitter`]
//! and one [`BatchResults`], all reused: no heap allocation per operation.
//! It draws `batch` operations in the generator's order, sends them through
//! the client (split per node and shard, parts in flight together), waits for
//! every result and counts per-operation errors. Closed loop: the next batch
//! is generated as soon as the previous one is answered. Open loop
//! (`rate`): session `g` of `S` sends batch `n` at the intended time
//! `t0 + (n + g/S) * S * batch / rate`; its batch is generated before that
//! time, and latency is measured from the *intended* send time, so a stall
//! shows up in the latency of every batch that should have been sent during
//! it (no coordinated omission). A session that falls behind sends at once
//! and never skips an operation.
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
//!   recorded once per operation (`record_n(batch_latency, ops)`). An op's
//!   result is available to the session only when its whole batch is, so
//!   this is what a caller of the batched API observes per operation; it
//!   weights the percentiles by operations rather than by batches.
//! * **Server figures** (corekv): worker 0 polls STATS every second; each
//!   node's per-second ops/s is the delta of its ops counter over the delta
//!   of its own uptime clock; per-shard totals are the counter deltas over
//!   the measured window (keys, memory and connections: values at the end).
//!   Redis: `INFO all` on a separate connection (`cmdstat_get`/`cmdstat_set`
//!   calls).
//! * **Client CPU**: `getrusage(RUSAGE_SELF)` (user + system, every thread of
//!   the process) between the start and the end of the measured window.
//! * **Bytes**: bytes written to / read from the sockets in the window.
//!
//! A client error (connection lost, timeout, protocol error) is fatal: every
//! session stops and [`run`] returns the error.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use glommio::{LocalExecutorBuilder, Placement};

use super::report::{
    BenchMeta, BenchReport, LatencyHistogram, LoadMode, ServerNodeReport, ShardTotals,
    TimelineSample, Totals,
};
use super::resp_target;
use super::workload::{self, Generator, KeyDist, OpKind, WorkloadConfig};
use crate::client::{BatchResults, ClientOptions, Cluster, Splitter};
use crate::protocol::native::{Batch, NodeStats};
use crate::store::OpResult;

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
}

impl Target {
    /// Parses `corekv`, `corekv-resp` or `redis`.
    pub fn parse(s: &str) -> Result<Target> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "corekv" | "native" => Target::Corekv,
            "corekv-resp" => Target::CorekvResp,
            "redis" | "resp" => Target::Redis,
            _ => bail!("unknown target {s:?}: expected corekv, corekv-resp or redis"),
        })
    }

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Corekv => "corekv",
            Target::CorekvResp => "corekv-resp",
            Target::Redis => "redis",
        }
    }

    /// True for the RESP drivers.
    pub fn is_resp(self) -> bool {
        !matches!(self, Target::Corekv)
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
    /// Sessions per worker.
    pub sessions_per_worker: usize,
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
    /// Print one progress line per second to stderr.
    pub progress: bool,
    /// Writes set keys expiring after this long (`None`: no TTL).
    pub ttl: Option<Duration>,
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
            cpus,
            secs: 10.0,
            warmup_secs: 2.0,
            rate: None,
            ttl: None,
            base_seed: 1,
            timeout: crate::client::DEFAULT_TIMEOUT,
            progress: false,
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
        if self.batch == 0 || self.sessions_per_worker == 0 {
            bail!("--batch and --sessions must be at least 1");
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
}

/// The run's clock: warm-up from `t0`, measured window `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) t0: Instant,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    /// Index of the first (warm-up) second: `-ceil(warmup)`.
    pub(crate) first_second: i64,
    /// Number of measured seconds: `ceil(secs)` (the last may be partial).
    pub(crate) seconds: i64,
}

impl Timing {
    fn new(t0: Instant, warmup: f64, secs: f64) -> Timing {
        let start = t0 + Duration::from_secs_f64(warmup);
        Timing {
            t0,
            start,
            end: start + Duration::from_secs_f64(secs),
            first_second: -(warmup.ceil() as i64),
            seconds: (secs.ceil() as i64).max(1),
        }
    }

    /// The second `t` falls in: `floor((t - start) / 1 s)`, negative in the warm-up.
    #[inline]
    pub(crate) fn second_of(&self, t: Instant) -> i64 {
        const NS: u128 = 1_000_000_000;
        if t >= self.start {
            ((t - self.start).as_nanos() / NS) as i64
        } else {
            -((self.start - t).as_nanos().div_ceil(NS) as i64)
        }
    }

    /// Start of second `k` (clamped to `[t0, end]`).
    pub(crate) fn second_start(&self, k: i64) -> Instant {
        self.at(k)
    }

    /// End of second `k` (clamped to `[t0, end]`).
    pub(crate) fn second_end(&self, k: i64) -> Instant {
        self.at(k + 1)
    }

    fn at(&self, k: i64) -> Instant {
        let t = if k >= 0 {
            self.start + Duration::from_secs(k as u64)
        } else {
            self.start
                .checked_sub(Duration::from_secs((-k) as u64))
                .unwrap_or(self.t0)
        };
        t.clamp(self.t0, self.end)
    }
}

/// Counters and batch latencies of one second of one worker (or, merged, of
/// all workers).
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    pub(crate) ops: u64,
    pub(crate) gets: u64,
    pub(crate) puts: u64,
    pub(crate) errors: u64,
    pub(crate) batches: u64,
    pub(crate) batch_hist: LatencyHistogram,
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        self.ops += o.ops;
        self.gets += o.gets;
        self.puts += o.puts;
        self.errors += o.errors;
        self.batches += o.batches;
        let _ = self.batch_hist.add(&o.batch_hist);
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
    bytes_sent: u64,
    bytes_received: u64,
    cpu_secs: Option<f64>,
    servers: Vec<ServerNodeReport>,
    error: Option<String>,
    warnings: Vec<String>,
}

/// A worker's recording state, shared by its sessions and its ticker.
pub(crate) struct WorkerState {
    timing: Timing,
    buckets: BTreeMap<i64, Bucket>,
    batch_hist: LatencyHistogram,
    op_hist: LatencyHistogram,
}

impl WorkerState {
    /// Records one completed batch of `ops` operations.
    #[inline]
    fn record(&mut self, sent: Instant, done: Instant, ops: u64, gets: u64, errors: u64) {
        if done >= self.timing.end {
            return;
        }
        let idx = self.timing.second_of(done);
        let ns = done.saturating_duration_since(sent).as_nanos() as u64;
        let b = self.buckets.entry(idx).or_default();
        b.ops += ops;
        b.gets += gets;
        b.puts += ops - gets;
        b.errors += errors;
        b.batches += 1;
        b.batch_hist.record(ns);
        if idx >= 0 {
            self.batch_hist.record(ns);
            self.op_hist.record_n(ns, ops);
        }
    }
}

/// Per-worker context shared by its tasks (`Rc`, never crosses threads).
pub(crate) struct WorkerCtx {
    pub(crate) timing: Timing,
    pub(crate) batch: usize,
    pub(crate) value: Vec<u8>,
    /// With `--ttl`: the native SET-with-TTL op's value (its expiry
    /// argument, then `value`), built once.
    pub(crate) ttl_value: Option<Vec<u8>>,
    /// With `--ttl`: the TTL in milliseconds, as decimal text (RESP's PX).
    pub(crate) ttl_ms_text: Option<Vec<u8>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) state: RefCell<WorkerState>,
    /// Socket byte counters of the RESP driver (the native client keeps its own).
    pub(crate) bytes_sent: Cell<u64>,
    pub(crate) bytes_received: Cell<u64>,
    error: RefCell<Option<String>>,
}

impl WorkerCtx {
    /// Stops the whole run with `e` (the first error wins).
    pub(crate) fn fail(&self, e: String) {
        if self.error.borrow().is_none() {
            *self.error.borrow_mut() = Some(e);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn record(&self, sent: Instant, done: Instant, ops: u64, gets: u64, errors: u64) {
        self.state
            .borrow_mut()
            .record(sent, done, ops, gets, errors);
    }
}

/// Pacing of one session: closed loop, or its slot in the open-loop schedule.
pub(crate) struct Pacer {
    /// `(first intended send time, interval between this session's batches)`.
    schedule: Option<(Instant, Duration)>,
    sent: u64,
}

impl Pacer {
    fn new(cfg: &DriverConfig, timing: &Timing, worker: usize, session: usize) -> Pacer {
        let schedule = cfg.rate.map(|rate| {
            let total = (cfg.cpus.len() * cfg.sessions_per_worker) as f64;
            let g = (worker * cfg.sessions_per_worker + session) as f64;
            let interval = total * cfg.batch as f64 / rate;
            (
                timing.t0 + Duration::from_secs_f64(interval * g / total),
                Duration::from_secs_f64(interval),
            )
        });
        Pacer { schedule, sent: 0 }
    }

    /// Waits for the next send slot and returns the instant latency is
    /// measured from; `None` when the run is over.
    #[inline]
    pub(crate) async fn next(&mut self, ctx: &WorkerCtx) -> Option<Instant> {
        if ctx.stopped() {
            return None;
        }
        match self.schedule {
            None => {
                let now = Instant::now();
                (now < ctx.timing.end).then_some(now)
            }
            Some((first, interval)) => {
                let intended = first + interval.mul_f64(self.sent as f64);
                if intended >= ctx.timing.end {
                    return None;
                }
                self.sent += 1;
                let now = Instant::now();
                if intended > now {
                    glommio::timer::sleep(intended - now).await;
                }
                (!ctx.stopped()).then_some(intended)
            }
        }
    }

    /// True when no further batch will be sent (cheap pre-check before
    /// generating one).
    #[inline]
    pub(crate) fn done(&self, ctx: &WorkerCtx) -> bool {
        if ctx.stopped() {
            return true;
        }
        match self.schedule {
            None => Instant::now() >= ctx.timing.end,
            Some((first, interval)) => first + interval.mul_f64(self.sent as f64) >= ctx.timing.end,
        }
    }
}

async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        glommio::timer::sleep(t - now).await;
    }
}

/// User + system CPU seconds of this process so far.
pub fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

// ---------------------------------------------------------------------------
// corekv native sessions and monitor
// ---------------------------------------------------------------------------

async fn corekv_session(
    ctx: Rc<WorkerCtx>,
    cluster: Rc<Cluster>,
    mut gen: Generator,
    mut pacer: Pacer,
) {
    let mut batch = Batch::default();
    let mut splitter = Splitter::default();
    let mut results = BatchResults::default();
    let n = ctx.batch;
    while !pacer.done(&ctx) {
        batch.clear();
        let mut gets = 0u64;
        let value = &ctx.value[..];
        gen.fill_batch(n, &mut |kind, key| match kind {
            OpKind::Read => {
                gets += 1;
                batch.get(key);
            }
            OpKind::Write => match &ctx.ttl_value {
                None => batch.put(key, value),
                Some(v) => batch.push_raw(crate::store::OpKind::Set as u8, key, v),
            },
        });
        let Some(sent) = pacer.next(&ctx).await else {
            break;
        };
        if let Err(e) = cluster.execute(&batch, &mut splitter, &mut results).await {
            ctx.fail(e.to_string());
            return;
        }
        let done = Instant::now();
        let mut errors = 0u64;
        results.for_each(|_, r| {
            if let OpResult::Err(_) = r {
                errors += 1;
            }
        });
        ctx.record(sent, done, n as u64, gets, errors);
    }
}

/// One STATS snapshot: per node `(uptime, stats)`.
type Snapshot = Vec<NodeStats>;

fn shard_deltas(first: &NodeStats, last: &NodeStats) -> Vec<ShardTotals> {
    last.shards
        .iter()
        .map(|s| {
            let f = first
                .shards
                .iter()
                .find(|x| x.shard_id == s.shard_id)
                .cloned()
                .unwrap_or_default();
            ShardTotals {
                shard_id: s.shard_id,
                ops: s.ops.saturating_sub(f.ops),
                gets: s.gets.saturating_sub(f.gets),
                puts: s.puts.saturating_sub(f.puts),
                dels: s.dels.saturating_sub(f.dels),
                keys: s.keys,
                memory_bytes: s.memory_used,
                connections: s.connections,
                errors: s.errors.saturating_sub(f.errors),
            }
        })
        .collect()
}

/// Polls STATS at the start of the window and after each measured second.
async fn corekv_monitor(
    ctx: Rc<WorkerCtx>,
    cluster: Rc<Cluster>,
) -> Result<Vec<ServerNodeReport>, String> {
    let t = ctx.timing;
    sleep_until(t.start).await;
    let first: Snapshot = cluster.stats().await.map_err(|e| e.to_string())?;
    let mut prev = first.clone();
    let mut per_second: Vec<Vec<f64>> = vec![Vec::new(); first.len()];
    for k in 0..t.seconds {
        sleep_until(t.second_end(k)).await;
        if ctx.stopped() && Instant::now() < t.end {
            break;
        }
        let now = cluster.stats().await.map_err(|e| e.to_string())?;
        for (i, (a, b)) in prev.iter().zip(&now).enumerate() {
            let dt = b.uptime_secs - a.uptime_secs;
            if dt > 0.0 {
                let ops = b.total().ops.saturating_sub(a.total().ops);
                per_second[i].push(ops as f64 / dt);
            }
        }
        prev = now;
    }
    Ok(cluster
        .nodes()
        .iter()
        .zip(first.iter().zip(&prev))
        .zip(per_second)
        .map(|((node, (f, l)), ps)| ServerNodeReport {
            node_id: node.hello.node_id,
            address: node.addr.clone(),
            per_second_ops: ps,
            shards: shard_deltas(f, l),
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------

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
}

async fn connect_worker(s: &WorkerSetup) -> Result<Conns, String> {
    let cfg = &s.cfg;
    if cfg.target.is_resp() {
        let c = resp_target::WorkerConns::connect(
            &cfg.hosts,
            cfg.sessions_per_worker,
            s.worker == 0,
            cfg.timeout,
        )
        .await?;
        return Ok(Conns::Resp(c));
    }
    let options = ClientOptions {
        timeout: cfg.timeout,
        ..Default::default()
    };
    Cluster::connect(&cfg.hosts, options)
        .await
        .map(Conns::Native)
        .map_err(|e| e.to_string())
}

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
    let ctx = Rc::new(WorkerCtx {
        timing,
        batch: cfg.batch,
        value: cfg.workload.value(),
        ttl_value: cfg.ttl.map(|t| {
            let mut v = Vec::new();
            crate::store::ExpiryArg {
                flags: crate::store::arg::REL,
                when: t.as_millis().max(1).min(i64::MAX as u128) as i64,
            }
            .encode(&mut v);
            v.extend_from_slice(&cfg.workload.value());
            v
        }),
        ttl_ms_text: cfg
            .ttl
            .map(|t| t.as_millis().max(1).to_string().into_bytes()),
        stop: s.stop.clone(),
        state: RefCell::new(WorkerState {
            timing,
            buckets: BTreeMap::new(),
            batch_hist: LatencyHistogram::new(),
            op_hist: LatencyHistogram::new(),
        }),
        bytes_sent: Cell::new(0),
        bytes_received: Cell::new(0),
        error: RefCell::new(None),
    });
    let bytes = {
        let conns = match &conns {
            Conns::Native(c) => Some(c.clone()),
            Conns::Resp(_) => None,
        };
        let ctx = ctx.clone();
        move || match &conns {
            Some(c) => c.bytes(),
            None => (ctx.bytes_sent.get(), ctx.bytes_received.get()),
        }
    };

    sleep_until(timing.t0).await;
    let mut sessions = Vec::new();
    let mut monitor = None;
    let mut resp_monitor = None;
    match &conns {
        Conns::Native(cluster) => {
            for i in 0..cfg.sessions_per_worker {
                let gen = Generator::from_parts(
                    s.keys,
                    cfg.workload.read_ratio,
                    session_seed(cfg, s.worker, i),
                )
                .expect("workload validated before the run");
                let pacer = Pacer::new(cfg, &timing, s.worker, i);
                sessions.push(glommio::spawn_local(corekv_session(
                    ctx.clone(),
                    cluster.clone(),
                    gen,
                    pacer,
                )));
            }
            if s.worker == 0 {
                monitor = Some(glommio::spawn_local(corekv_monitor(
                    ctx.clone(),
                    cluster.clone(),
                )));
            }
        }
        Conns::Resp(wc) => {
            for (i, streams) in wc.take_sessions().into_iter().enumerate() {
                let gen = Generator::from_parts(
                    s.keys,
                    cfg.workload.read_ratio,
                    session_seed(cfg, s.worker, i),
                )
                .expect("workload validated before the run");
                let pacer = Pacer::new(cfg, &timing, s.worker, i);
                sessions.push(glommio::spawn_local(resp_target::session(
                    ctx.clone(),
                    streams,
                    gen,
                    pacer,
                )));
            }
            if let Some(m) = wc.take_monitor() {
                resp_monitor = Some(glommio::spawn_local(resp_target::monitor(
                    ctx.clone(),
                    m,
                    cfg.hosts.clone(),
                )));
            }
        }
    }

    // Ticker: hands each finished second to the main thread; snapshots bytes
    // and CPU at the window's edges.
    let ticker = {
        let ctx = ctx.clone();
        let msgs = s.msgs.clone();
        let worker = s.worker;
        glommio::spawn_local(async move {
            let t = ctx.timing;
            let mut start_snap = None;
            let mut end_snap = None;
            let snap = |bytes: &dyn Fn() -> (u64, u64)| (bytes(), process_cpu_secs());
            if t.first_second == 0 {
                start_snap = Some(snap(&bytes));
            }
            for k in t.first_second..t.seconds {
                sleep_until(t.second_end(k)).await;
                let now = Instant::now();
                if k == -1 {
                    start_snap = Some(snap(&bytes));
                }
                if k == t.seconds - 1 {
                    end_snap = Some(snap(&bytes));
                }
                let done: Vec<i64> = {
                    let st = ctx.state.borrow();
                    st.buckets.keys().copied().filter(|&i| i <= k).collect()
                };
                let mut st = ctx.state.borrow_mut();
                for i in done {
                    if i < k {
                        // Cannot happen (completions are recorded at once);
                        // fold stragglers into this second.
                        if let Some(b) = st.buckets.remove(&i) {
                            st.buckets.entry(k).or_default().add(&b);
                        }
                    }
                }
                let bucket = st.buckets.remove(&k).unwrap_or_default();
                drop(st);
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
        })
    };

    for s in sessions {
        s.await;
    }
    let (start_snap, end_snap) = ticker.await;
    let mut result = WorkerResult::default();
    if let (Some(((s0, r0), c0)), Some(((s1, r1), c1))) = (start_snap, end_snap) {
        result.bytes_sent = s1.saturating_sub(s0);
        result.bytes_received = r1.saturating_sub(r0);
        if s.worker == 0 {
            result.cpu_secs = Some(c1 - c0);
        }
    }
    if let Some(m) = monitor {
        match m.await {
            Ok(servers) => result.servers = servers,
            Err(e) => result
                .warnings
                .push(format!("server STATS unavailable: {e}")),
        }
    }
    if let Some(m) = resp_monitor {
        match m.await {
            Ok(servers) => result.servers = servers,
            Err(e) => result
                .warnings
                .push(format!("server INFO unavailable: {e}")),
        }
    }
    let _ = s.msgs.send((s.worker, Msg::Finished));
    let mut st = ctx.state.borrow_mut();
    result.batch_hist = std::mem::take(&mut st.batch_hist);
    result.op_hist = std::mem::take(&mut st.op_hist);
    result.error = ctx.error.borrow_mut().take();
    drop(st);
    drop(conns);
    result
}

fn session_seed(cfg: &DriverConfig, worker: usize, session: usize) -> u64 {
    workload::seed_for(worker, session, cfg.base_seed)
}

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:7.3} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:7.1} k", x / 1e3)
    } else {
        format!("{x:7.1}  ")
    }
}

fn fmt_us(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// Runs a benchmark and returns its report. Blocks the calling thread; the
/// work happens on one pinned executor per CPU in `cfg.cpus`.
pub fn run(cfg: &DriverConfig) -> Result<BenchReport> {
    cfg.validate()?;
    let keys = cfg.workload.key_dist()?;
    let generation_rate =
        workload::generation_rate_with(keys, cfg.workload.read_ratio, GENERATION_PROBE_OPS);
    crate::server::raise_memlock(
        crate::config::DEFAULT_IO_MEMORY as u64 * 2 * cfg.cpus.len() as u64,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (msg_tx, msg_rx) = flume::unbounded::<(usize, Msg)>();
    let mut joins = Vec::new();
    let mut starts = Vec::new();
    let mut readies = Vec::new();
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
        let join = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("corekv-bench-{worker}"))
            .io_memory(crate::config::DEFAULT_IO_MEMORY)
            .spawn(move || worker_main(setup))
            .map_err(|e| anyhow::anyhow!("starting bench worker {worker} on CPU {cpu}: {e}"))?;
        joins.push((cpu, join));
        starts.push(start_tx);
        readies.push(ready_rx);
    }
    drop(msg_tx);

    // Wait until every worker is connected (or reports why not).
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
    if let Some(e) = start_error {
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
    for s in &starts {
        let _ = s.send(timing);
    }
    drop(starts);

    // Collect seconds until every worker has finished.
    let n = cfg.cpus.len();
    let mut pending: BTreeMap<i64, (usize, Bucket)> = BTreeMap::new();
    let mut timeline = Vec::new();
    let mut totals = Totals::default();
    let mut so_far = LatencyHistogram::new();
    let mut finished = 0;
    while finished < n {
        let Ok((_, msg)) = msg_rx.recv() else { break };
        match msg {
            Msg::Finished => finished += 1,
            Msg::Second { idx, bucket } => {
                let e = pending.entry(idx).or_default();
                e.0 += 1;
                e.1.add(&bucket);
                if e.0 < n {
                    continue;
                }
                let (_, b) = pending.remove(&idx).unwrap_or_default();
                let t_from = timing.second_start(idx);
                let t_to = timing.second_end(idx);
                let dur = (t_to - t_from).as_secs_f64().max(1e-9);
                if idx >= 0 {
                    so_far.add(&b.batch_hist)?;
                    totals.ops += b.ops;
                    totals.gets += b.gets;
                    totals.puts += b.puts;
                    totals.errors += b.errors;
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
                        "[{label}] {}op/s  p99 batch {}{}  errors {}",
                        fmt_rate(b.ops as f64 / dur),
                        fmt_us(b.batch_hist.p99()),
                        p99_total,
                        totals.errors + if idx < 0 { b.errors } else { 0 },
                    );
                }
            }
        }
    }

    let mut report = BenchReport {
        generation_rate_ops: generation_rate,
        ..Default::default()
    };
    let mut error = None;
    let mut warnings = Vec::new();
    for (worker, (cpu, j)) in joins.into_iter().enumerate() {
        match j.join() {
            Ok(r) => {
                report.batch_latency.add(&r.batch_hist)?;
                report.op_latency.add(&r.op_hist)?;
                report.bytes_sent += r.bytes_sent;
                report.bytes_received += r.bytes_received;
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
    totals.elapsed_secs = (timing.end - timing.start).as_secs_f64();
    report.totals = totals;
    report.timeline = timeline;
    report.meta = BenchMeta {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: hostname(),
        start_unix_secs,
        target: cfg.target.as_str().to_string(),
        hosts: cfg.hosts.clone(),
        workload: cfg.workload.name.clone(),
        read_ratio: cfg.workload.read_ratio,
        theta: cfg.workload.theta,
        distribution: cfg.workload.distribution.as_str().to_string(),
        records: cfg.workload.records,
        value_size: cfg.workload.value_size,
        batch: cfg.batch,
        sessions_per_worker: cfg.sessions_per_worker,
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
        client_processes: 1,
    };
    report.finalize();
    Ok(report)
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
    fn seconds_are_bucketed_from_the_window_start() {
        let t0 = Instant::now();
        let t = Timing::new(t0, 2.0, 2.5);
        assert_eq!(t.first_second, -2);
        assert_eq!(t.seconds, 3);
        assert_eq!(t.second_of(t0), -2);
        assert_eq!(t.second_of(t0 + Duration::from_millis(1500)), -1);
        assert_eq!(t.second_of(t.start), 0);
        assert_eq!(t.second_of(t.start + Duration::from_millis(999)), 0);
        assert_eq!(t.second_of(t.start + Duration::from_millis(2400)), 2);
        assert_eq!(t.second_end(2), t.end);
        assert_eq!(t.second_start(-2), t0);
    }

    #[test]
    fn fractional_warmup_starts_at_t0() {
        let t0 = Instant::now();
        let t = Timing::new(t0, 0.5, 1.0);
        assert_eq!(t.first_second, -1);
        assert_eq!(t.second_start(-1), t0);
        assert_eq!(t.second_of(t0), -1);
    }

    #[test]
    fn record_ignores_late_completions_and_counts_the_window() {
        let t0 = Instant::now();
        let timing = Timing::new(t0, 1.0, 1.0);
        let mut st = WorkerState {
            timing,
            buckets: BTreeMap::new(),
            batch_hist: LatencyHistogram::new(),
            op_hist: LatencyHistogram::new(),
        };
        st.record(t0, t0 + Duration::from_millis(10), 8, 6, 0); // warm-up
        st.record(
            timing.start,
            timing.start + Duration::from_millis(2),
            8,
            7,
            1,
        );
        st.record(timing.end, timing.end + Duration::from_millis(1), 8, 8, 0); // after
        assert_eq!(st.batch_hist.count(), 1);
        assert_eq!(st.op_hist.count(), 8);
        assert_eq!(st.buckets[&-1].ops, 8);
        assert_eq!(st.buckets[&0].puts, 1);
        assert_eq!(st.buckets[&0].errors, 1);
        assert_eq!(st.buckets.len(), 2);
    }

    #[test]
    fn target_names() {
        for t in [Target::Corekv, Target::CorekvResp, Target::Redis] {
            assert_eq!(Target::parse(t.as_str()).unwrap(), t);
        }
        assert!(Target::parse("memcached").is_err());
    }
}
