//! Benchmark results for the corekv load generator (`corekv::bench::report`).
//!
//! Owns the [`BenchReport`] JSON schema, exact merging of reports from
//! several client machines and the seed-style throughput figure (here); the
//! [`LatencyHistogram`] wrapper ([`histogram`]); text tables, the CSV
//! summary, `.hgrm` and `.hlog` output ([`render`]).
//!
//! Must not touch: the network, the workload generator's state (it only
//! reads figures computed by `super::workload`), plotting (`super::plot`) or
//! anything in the server. Values are pure data; filling them is the caller's
//! job.

pub mod histogram;
pub mod render;

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use histogram::{
    LatencyHistogram, LatencySummary, HIST_HIGHEST_NS, HIST_LOWEST_NS, HIST_SIGFIG,
};
pub use render::{
    csv_summary, hgrm_string, render_comparison, render_table, write_hgrm, write_hlog, CSV_HEADER,
};

/// Load model of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LoadMode {
    /// Closed loop: each session sends its next batch when the previous one
    /// completes.
    #[default]
    Closed,
    /// Open loop at a fixed offered rate.
    Open {
        /// Offered rate in ops/s (over the whole client process).
        rate_ops_per_sec: f64,
    },
}

fn one() -> u32 {
    1
}

/// Run description. `Default` is all-empty with `client_processes = 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchMeta {
    /// Version of the bench tool (e.g. `env!("CARGO_PKG_VERSION")`).
    pub tool_version: String,
    /// Host name of the client machine (comma-joined after a merge).
    pub hostname: String,
    /// Start of the run, unix seconds (earliest after a merge).
    pub start_unix_secs: u64,
    /// System under test, e.g. `"corekv"` or `"redis"`.
    pub target: String,
    /// Server addresses the client talked to.
    pub hosts: Vec<String>,
    /// Canonical workload name, e.g. `"YCSB-B"`.
    pub workload: String,
    /// Fraction of reads.
    pub read_ratio: f64,
    /// Zipfian theta.
    pub theta: f64,
    /// Key distribution (`"zipfian"` / `"uniform"`).
    pub distribution: String,
    /// Key space size.
    pub records: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Operations per batch.
    pub batch: usize,
    /// Sessions (connections) per worker thread (worker 0's, the largest,
    /// when `--clients` spreads an uneven count).
    pub sessions_per_worker: usize,
    /// Sessions over the whole process (summed over processes after a
    /// merge); 0 in reports written before it was recorded.
    #[serde(default)]
    pub total_sessions: usize,
    /// CPUs the worker threads were pinned to (first input's after a merge).
    pub worker_cpus: Vec<usize>,
    /// Measured window length requested, seconds.
    pub secs: f64,
    /// Warm-up before the measured window, seconds.
    pub warmup_secs: f64,
    /// Closed or open loop.
    pub mode: LoadMode,
    /// Base seed for [`super::workload::seed_for`].
    pub base_seed: u64,
    /// Number of client processes this report covers (1 unless merged).
    #[serde(default = "one")]
    pub client_processes: u32,
    /// The corekv commit the bench was built from (`unknown` outside git).
    #[serde(default)]
    pub corekv_commit: String,
    /// Start of the run, RFC 3339 UTC (e.g. `2026-11-26T01:30:00Z`).
    #[serde(default)]
    pub date: String,
    /// The full command line the report came from, as typed.
    #[serde(default)]
    pub command_line: Vec<String>,
    /// The client machine (first input's after a merge).
    #[serde(default)]
    pub machine: crate::bench::sysstat::Machine,
    /// A cache-aside run (`--cache-aside`): GETs, and a SET for each miss.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_aside: bool,
}

impl Default for BenchMeta {
    fn default() -> Self {
        BenchMeta {
            tool_version: String::new(),
            hostname: String::new(),
            start_unix_secs: 0,
            target: String::new(),
            hosts: Vec::new(),
            workload: String::new(),
            read_ratio: 0.0,
            theta: 0.0,
            distribution: String::new(),
            records: 0,
            value_size: 0,
            batch: 0,
            sessions_per_worker: 0,
            worker_cpus: Vec::new(),
            secs: 0.0,
            warmup_secs: 0.0,
            mode: LoadMode::Closed,
            base_seed: 0,
            client_processes: 1,
            total_sessions: 0,
            corekv_commit: String::new(),
            date: String::new(),
            command_line: Vec::new(),
            machine: crate::bench::sysstat::Machine::default(),
            cache_aside: false,
        }
    }
}

/// Counters over the measured window, with derived rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Totals {
    /// Completed operations (gets + puts, errors included).
    pub ops: u64,
    /// Completed GETs.
    pub gets: u64,
    /// Completed PUTs.
    pub puts: u64,
    /// Operations that returned an error.
    pub errors: u64,
    /// GETs that found no value (misses); `gets - get_misses` hit (errors
    /// aside). 0 in reports written before it was recorded.
    #[serde(default)]
    pub get_misses: u64,
    /// GETs completed during the warm-up (not in `gets`).
    #[serde(default)]
    pub warmup_gets: u64,
    /// Of those, misses.
    #[serde(default)]
    pub warmup_get_misses: u64,
    /// Length of the measured window, seconds.
    pub elapsed_secs: f64,
    /// Derived: `ops / elapsed_secs` (recomputed by [`Totals::derive`]).
    #[serde(default)]
    pub ops_per_sec: f64,
    /// Derived: `gets / elapsed_secs`.
    #[serde(default)]
    pub gets_per_sec: f64,
    /// Derived: `puts / elapsed_secs`.
    #[serde(default)]
    pub puts_per_sec: f64,
}

impl Totals {
    /// Recomputes the derived rates from the counters.
    pub fn derive(&mut self) {
        let rate = |n: u64| {
            if self.elapsed_secs > 0.0 {
                n as f64 / self.elapsed_secs
            } else {
                0.0
            }
        };
        self.ops_per_sec = rate(self.ops);
        self.gets_per_sec = rate(self.gets);
        self.puts_per_sec = rate(self.puts);
    }
}

/// One per-second client-side sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct TimelineSample {
    /// Seconds since the start of the measured window (end of the interval).
    pub t_secs: f64,
    /// Operations completed in the interval.
    pub ops: u64,
    /// GETs completed in the interval.
    pub gets: u64,
    /// PUTs completed in the interval.
    pub puts: u64,
    /// Errors in the interval.
    pub errors: u64,
    /// 99th percentile batch latency in the interval, ns.
    pub p99_batch_ns: u64,
}

/// Per-shard counters from a server's STATS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct ShardTotals {
    /// Shard (core) id.
    pub shard_id: u32,
    /// Operations served.
    pub ops: u64,
    /// GETs served.
    pub gets: u64,
    /// PUTs served.
    pub puts: u64,
    /// DELs served.
    pub dels: u64,
    /// Keys held.
    pub keys: u64,
    /// Memory used, bytes.
    pub memory_bytes: u64,
    /// Open connections.
    pub connections: u64,
    /// Errors.
    pub errors: u64,
}

/// Server-side view of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ServerNodeReport {
    /// Node id.
    pub node_id: u32,
    /// Address the stats were fetched from.
    pub address: String,
    /// Node throughput (ops/s) sampled once per second from STATS.
    pub per_second_ops: Vec<f64>,
    /// Per-shard totals at the end of the window.
    pub shards: Vec<ShardTotals>,
    /// The server's durability mode, from `CONFIG GET appendonly
    /// appendfsync` (e.g. `appendonly yes, appendfsync always`; empty when
    /// the server did not say).
    #[serde(default)]
    pub durability: String,
}

impl ServerNodeReport {
    /// Mean of the per-second ops/s samples (0 without samples).
    pub fn mean_ops_per_sec(&self) -> f64 {
        if self.per_second_ops.is_empty() {
            0.0
        } else {
            self.per_second_ops.iter().sum::<f64>() / self.per_second_ops.len() as f64
        }
    }

    /// The per-second ops/s samples as `(second, million op/s)`.
    pub fn mops_series(&self) -> Vec<(f64, f64)> {
        self.per_second_ops
            .iter()
            .enumerate()
            .map(|(i, v)| ((i + 1) as f64, v / 1e6))
            .collect()
    }

    /// Median of [`Self::per_second_ops`] (see [`median`]).
    pub fn median_ops_per_sec(&self) -> f64 {
        median(&self.per_second_ops)
    }
}

/// Median: middle element of the sorted values, mean of the two middle ones
/// for an even count, 0 for an empty slice. NaNs sort last.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Complete result of one run (or of a merge of concurrent runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BenchReport {
    /// Run description.
    pub meta: BenchMeta,
    /// Counters over the measured window.
    pub totals: Totals,
    /// Per-second client samples.
    pub timeline: Vec<TimelineSample>,
    /// Latency of whole batches (send to last reply), ns.
    pub batch_latency: LatencyHistogram,
    /// Each operation's latency: its batch's, recorded once per operation
    /// (so an op-weighted view of `batch_latency`; with fixed-size batches
    /// its percentiles equal the batch's, which is why the table and plots
    /// leave it out). Kept in the JSON and `op_latency.hgrm`.
    pub op_latency: LatencyHistogram,
    /// GET latency, ns: the latency of the batch (or pipeline) carrying each
    /// GET, recorded once per GET. At batch 1 this is each GET's own
    /// round trip, as memtier_benchmark and YCSB report it.
    #[serde(default)]
    pub get_latency: LatencyHistogram,
    /// SET (PUT) latency, ns, defined as `get_latency` is.
    #[serde(default)]
    pub set_latency: LatencyHistogram,
    /// Open loop only (empty in closed loop): how late each batch left its
    /// session, ns, from its intended send time to the moment it was handed
    /// to the connection. The part of `batch_latency` spent before the
    /// request left the load generator: its CPU, its scheduling, its
    /// pacing. Empty in older reports.
    #[serde(default)]
    pub send_lag: LatencyHistogram,
    /// Bytes written to sockets in the window.
    pub bytes_sent: u64,
    /// Bytes read from sockets in the window.
    pub bytes_received: u64,
    /// Ops the native client re-sent because a server redirected them (its
    /// cluster map was stale), over the whole run. 0 in older reports.
    #[serde(default)]
    pub redirects: u64,
    /// User + system CPU seconds of the bench process over the window.
    pub client_cpu_secs: f64,
    /// Pure single-thread generation rate of the workload generator, ops/s.
    pub generation_rate_ops: f64,
    /// Server-side figures, one entry per node.
    pub servers: Vec<ServerNodeReport>,
    /// Free-form extra data (e.g. utilization samples) filled by other modules.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Batch latency of each measured second, for the `.hlog` interval log
    /// ([`write_hlog`]). A merge sums the clients' histograms second by
    /// second, as it does the timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<IntervalHistogram>,
}

/// One interval's latency histogram.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IntervalHistogram {
    /// Start of the interval, seconds since the Unix epoch.
    pub start_unix_secs: f64,
    /// Length of the interval, seconds.
    pub secs: f64,
    /// Batch latencies completed in it, ns.
    pub batch_latency: LatencyHistogram,
}

impl BenchReport {
    /// Short description of a run for plot titles (fits a 1000 px title).
    pub fn describe(&self) -> String {
        let m = &self.meta;
        let mode = match m.mode {
            LoadMode::Closed => "closed loop".to_string(),
            LoadMode::Open { rate_ops_per_sec } => {
                format!("open loop {:.2} M op/s", rate_ops_per_sec / 1e6)
            }
        };
        let dist = if m.distribution == "zipfian" {
            format!("θ={}", m.theta)
        } else {
            m.distribution.clone()
        };
        format!("{} {dist}, batch {}, {mode}", m.workload, m.batch)
    }

    /// The client-measured throughput per second of the timeline, as
    /// `(t_secs, million op/s)`; a partial last second is scaled by its length.
    pub fn client_mops_series(&self) -> Vec<(f64, f64)> {
        self.timeline
            .iter()
            .map(|s| {
                let len = if s.t_secs.fract() > 0.0 {
                    s.t_secs.fract()
                } else {
                    1.0
                };
                (s.t_secs, s.ops as f64 / len / 1e6)
            })
            .collect()
    }

    /// Recomputes derived fields (rates in [`Totals`]).
    pub fn finalize(&mut self) {
        self.totals.derive();
    }

    /// The seed's throughput figure: sum over server nodes of the median of
    /// that node's per-second ops/s.
    pub fn seed_style_total(&self) -> f64 {
        self.servers.iter().map(|s| s.median_ops_per_sec()).sum()
    }

    /// Fraction of the measured window's GETs that missed (after warm-up).
    pub fn miss_ratio(&self) -> f64 {
        ratio(self.totals.get_misses, self.totals.gets)
    }

    /// Fraction of all GETs that missed, warm-up included (from a cold
    /// cache, for a cache-aside run started on an empty server).
    pub fn miss_ratio_whole_run(&self) -> f64 {
        ratio(
            self.totals.get_misses + self.totals.warmup_get_misses,
            self.totals.gets + self.totals.warmup_gets,
        )
    }

    /// Client-measured throughput: `ops / elapsed_secs`.
    pub fn client_ops_per_sec(&self) -> f64 {
        if self.totals.elapsed_secs > 0.0 {
            self.totals.ops as f64 / self.totals.elapsed_secs
        } else {
            0.0
        }
    }

    /// Bytes sent per operation.
    pub fn bytes_sent_per_op(&self) -> f64 {
        per_op(self.bytes_sent as f64, self.totals.ops)
    }

    /// Bytes received per operation.
    pub fn bytes_received_per_op(&self) -> f64 {
        per_op(self.bytes_received as f64, self.totals.ops)
    }

    /// Client CPU microseconds per operation.
    pub fn client_cpu_us_per_op(&self) -> f64 {
        per_op(self.client_cpu_secs * 1e6, self.totals.ops)
    }

    /// Serializes to pretty JSON. Besides the fields of the struct, the
    /// top-level object carries headline figures for scripts
    /// (`cloudlab/collect.py`): `ops_per_sec` (client-measured),
    /// `seed_style_ops_per_sec` ([`Self::seed_style_total`], 0 without server
    /// figures), `p99_batch_us`, `batch_latency_us` / `op_latency_us` /
    /// `get_latency_us` / `set_latency_us` (`{count, p50, p90, p99, p999,
    /// p9999, max, mean}` in µs, so a script needs no HdrHistogram decoder)
    /// and `get_hits`. They are derived, so reading the JSON
    /// back ignores them.
    pub fn to_json(&self) -> Result<String> {
        let mut v = serde_json::to_value(self)?;
        if let serde_json::Value::Object(m) = &mut v {
            let num = |x: f64| serde_json::json!(if x.is_finite() { x } else { 0.0 });
            m.insert("ops_per_sec".into(), num(self.client_ops_per_sec()));
            m.insert(
                "seed_style_ops_per_sec".into(),
                num(self.seed_style_total()),
            );
            m.insert(
                "p99_batch_us".into(),
                num(self.batch_latency.p99() as f64 / 1000.0),
            );
            let us = |h: &LatencyHistogram| {
                let s = h.summary();
                let f = |ns: u64| ns as f64 / 1000.0;
                serde_json::json!({
                    "count": s.count,
                    "p50": f(s.p50_ns),
                    "p90": f(s.p90_ns),
                    "p99": f(s.p99_ns),
                    "p999": f(s.p999_ns),
                    "p9999": f(s.p9999_ns),
                    "max": f(s.max_ns),
                    "mean": if s.mean_ns.is_finite() { s.mean_ns / 1000.0 } else { 0.0 },
                })
            };
            m.insert("batch_latency_us".into(), us(&self.batch_latency));
            m.insert("op_latency_us".into(), us(&self.op_latency));
            m.insert("get_latency_us".into(), us(&self.get_latency));
            m.insert("set_latency_us".into(), us(&self.set_latency));
            if self.send_lag.count() > 0 {
                m.insert("send_lag_us".into(), us(&self.send_lag));
            }
            m.insert(
                "get_hits".into(),
                serde_json::json!(self.totals.gets.saturating_sub(self.totals.get_misses)),
            );
            m.insert("miss_ratio".into(), num(self.miss_ratio()));
            m.insert(
                "miss_ratio_whole_run".into(),
                num(self.miss_ratio_whole_run()),
            );
        }
        Ok(serde_json::to_string_pretty(&v)?)
    }

    /// Parses JSON.
    pub fn from_json(s: &str) -> Result<Self> {
        Ok(serde_json::from_str(s)?)
    }

    /// Writes pretty JSON to `path`.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()?).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads JSON from `path`.
    pub fn read_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let s =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&s).with_context(|| format!("parsing {}", path.display()))
    }
}

fn per_op(x: f64, ops: u64) -> f64 {
    if ops == 0 {
        0.0
    } else {
        x / ops as f64
    }
}

/// Fails unless report `i`'s run (`m`) is the same experiment as report 0's
/// (`m0`): the same work ([`workload_diffs`]) against the same target.
fn check_mergeable(m0: &BenchMeta, m: &BenchMeta, i: usize) -> Result<()> {
    let mut diffs = workload_diffs(m0, m);
    if m.target != m0.target {
        diffs.push(format!("target {:?} vs {:?}", m.target, m0.target));
    }
    if !diffs.is_empty() {
        bail!(
            "merge: report {i} does not match report 0: {}",
            diffs.join(", ")
        );
    }
    Ok(())
}

/// What makes two runs' figures comparable, as `"field A vs B"` strings for
/// every difference (empty: same work): the workload (name, read ratio,
/// skew, key space, value size), the batch size and closed vs open loop.
/// The target and the load's size (sessions, CPUs, duration) may differ.
pub fn workload_diffs(m0: &BenchMeta, m: &BenchMeta) -> Vec<String> {
    let mut diffs = Vec::new();
    if m.workload != m0.workload {
        diffs.push(format!("workload {:?} vs {:?}", m.workload, m0.workload));
    }
    if m.read_ratio != m0.read_ratio {
        diffs.push(format!("read_ratio {} vs {}", m.read_ratio, m0.read_ratio));
    }
    if m.cache_aside != m0.cache_aside {
        diffs.push(format!(
            "cache_aside {} vs {}",
            m.cache_aside, m0.cache_aside
        ));
    }
    if m.theta != m0.theta {
        diffs.push(format!("theta {} vs {}", m.theta, m0.theta));
    }
    if m.distribution != m0.distribution {
        diffs.push(format!(
            "distribution {} vs {}",
            m.distribution, m0.distribution
        ));
    }
    if m.records != m0.records {
        diffs.push(format!("records {} vs {}", m.records, m0.records));
    }
    if m.value_size != m0.value_size {
        diffs.push(format!("value_size {} vs {}", m.value_size, m0.value_size));
    }
    if m.batch != m0.batch {
        diffs.push(format!("batch {} vs {}", m.batch, m0.batch));
    }
    let loop_kind = |m: &BenchMeta| match m.mode {
        LoadMode::Closed => "closed loop",
        LoadMode::Open { .. } => "open loop",
    };
    if loop_kind(m) != loop_kind(m0) {
        diffs.push(format!("{} vs {}", loop_kind(m), loop_kind(m0)));
    }
    diffs
}

/// Merges reports of client processes that ran concurrently against the same
/// cluster with the same workload.
///
/// * Errors when workload, read ratio, theta, distribution, records,
///   value size, batch, closed/open loop or target differ, or when
///   `reports` is empty.
/// * Counters, bytes and client CPU are summed; histograms are added
///   exactly; `elapsed_secs` is the maximum (the runs overlap), so the merged
///   ops/s is total ops over the longest window.
/// * Timelines are summed by second index; the per-second `p99_batch_ns` is
///   the MAX of the inputs' p99s for that second (an upper bound — the exact
///   merged p99 is not recoverable from per-second p99s). Interval
///   histograms are added exactly, second by second.
/// * `servers` is taken from the first report that has any (all clients saw
///   the same cluster, so the server view must not be added up).
/// * `generation_rate_ops` is the minimum over inputs (slowest generator).
/// * meta: first input's, with hostnames and hosts unioned, earliest start,
///   longest `secs`, `client_processes` and `total_sessions` summed.
///   `extra` keys: first wins.
pub fn merge(reports: &[BenchReport]) -> Result<BenchReport> {
    let Some(first) = reports.first() else {
        bail!("merge: no reports");
    };
    for (i, r) in reports.iter().enumerate().skip(1) {
        check_mergeable(&first.meta, &r.meta, i)?;
    }

    let mut out = first.clone();
    out.servers = reports
        .iter()
        .find(|r| !r.servers.is_empty())
        .map(|r| r.servers.clone())
        .unwrap_or_default();
    let mut hostnames: Vec<String> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for r in reports {
        for h in r.meta.hostname.split(',').filter(|h| !h.is_empty()) {
            if !hostnames.iter().any(|x| x == h) {
                hostnames.push(h.to_string());
            }
        }
        for h in &r.meta.hosts {
            if !hosts.contains(h) {
                hosts.push(h.clone());
            }
        }
    }
    out.meta.hostname = hostnames.join(",");
    out.meta.hosts = hosts;

    for r in &reports[1..] {
        out.meta.start_unix_secs = out.meta.start_unix_secs.min(r.meta.start_unix_secs);
        out.meta.secs = out.meta.secs.max(r.meta.secs);
        out.meta.client_processes += r.meta.client_processes;
        out.meta.total_sessions += r.meta.total_sessions;

        out.totals.ops += r.totals.ops;
        out.totals.gets += r.totals.gets;
        out.totals.puts += r.totals.puts;
        out.totals.errors += r.totals.errors;
        out.totals.get_misses += r.totals.get_misses;
        out.totals.warmup_gets += r.totals.warmup_gets;
        out.totals.warmup_get_misses += r.totals.warmup_get_misses;
        out.totals.elapsed_secs = out.totals.elapsed_secs.max(r.totals.elapsed_secs);

        out.batch_latency.add(&r.batch_latency)?;
        out.op_latency.add(&r.op_latency)?;
        out.get_latency.add(&r.get_latency)?;
        out.set_latency.add(&r.set_latency)?;
        out.send_lag.add(&r.send_lag)?;
        out.bytes_sent += r.bytes_sent;
        out.bytes_received += r.bytes_received;
        out.redirects += r.redirects;
        out.client_cpu_secs += r.client_cpu_secs;
        out.generation_rate_ops = out.generation_rate_ops.min(r.generation_rate_ops);

        for (i, s) in r.timeline.iter().enumerate() {
            if i >= out.timeline.len() {
                out.timeline.push(*s);
                continue;
            }
            let t = &mut out.timeline[i];
            t.ops += s.ops;
            t.gets += s.gets;
            t.puts += s.puts;
            t.errors += s.errors;
            t.p99_batch_ns = t.p99_batch_ns.max(s.p99_batch_ns);
        }
        for (i, iv) in r.intervals.iter().enumerate() {
            match out.intervals.get_mut(i) {
                Some(o) => {
                    o.start_unix_secs = o.start_unix_secs.min(iv.start_unix_secs);
                    o.secs = o.secs.max(iv.secs);
                    o.batch_latency.add(&iv.batch_latency)?;
                }
                None => out.intervals.push(iv.clone()),
            }
        }
        for (k, v) in &r.extra {
            out.extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    out.finalize();
    Ok(out)
}

/// `a / b`, 0 when `b` is 0.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Deterministic, wide-spread latencies (ns), ~1 µs .. ~10 ms.
    fn sample_values(seed: u64, n: usize) -> Vec<u64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let r = xorshift(&mut s);
                let exp = (r % 14) as u32; // 2^0..2^13
                1000 + (r >> 20) % (1u64 << (exp + 10))
            })
            .collect()
    }

    fn report(seed: u64, n: usize) -> BenchReport {
        let mut r = BenchReport::default();
        r.meta.tool_version = "0.1.0".into();
        r.meta.hostname = format!("client{seed}");
        r.meta.target = "corekv".into();
        r.meta.hosts = vec!["10.0.0.1:7000".into()];
        r.meta.workload = "YCSB-B".into();
        r.meta.read_ratio = 0.95;
        r.meta.theta = 0.99;
        r.meta.distribution = "zipfian".into();
        r.meta.records = 1_000_000;
        r.meta.value_size = 128;
        r.meta.batch = 32;
        r.meta.client_processes = 1;
        r.meta.start_unix_secs = 1_700_000_000 + seed;
        let vals = sample_values(seed, n);
        for &v in &vals {
            r.op_latency.record(v);
            r.batch_latency.record(v * 4);
        }
        r.totals = Totals {
            ops: n as u64,
            gets: (n as u64) * 95 / 100,
            puts: n as u64 - (n as u64) * 95 / 100,
            errors: 0,
            elapsed_secs: 10.0,
            ..Totals::default()
        };
        r.timeline = (0..3)
            .map(|i| TimelineSample {
                t_secs: (i + 1) as f64,
                ops: 100 * (i + 1) + seed,
                gets: 95,
                puts: 5,
                errors: 0,
                p99_batch_ns: 1000 * seed + i,
            })
            .collect();
        r.bytes_sent = 1000 * seed;
        r.bytes_received = 2000 * seed;
        r.client_cpu_secs = 1.5;
        r.generation_rate_ops = 1e7 * seed as f64;
        r.finalize();
        r
    }

    #[test]
    fn interval_log_reads_back_with_hdrhistograms_reader() {
        use base64::Engine as _;
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
        use hdrhistogram::serialization::Deserializer;
        use hdrhistogram::Histogram;
        let mut r = report(1, 10);
        for i in 0..3u64 {
            let mut h = LatencyHistogram::new();
            h.record_n(1_000_000 * (i + 1), 10 + i);
            r.intervals.push(IntervalHistogram {
                start_unix_secs: 1_700_000_000.5 + i as f64,
                secs: 1.0,
                batch_latency: h,
            });
        }
        let dir = std::env::temp_dir().join(format!("corekv-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("batch_latency.hlog");
        write_hlog(&r, &p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("#corekv bench"), "{text}");
        assert!(text.contains("#[BaseTime: 1700000000.500"), "{text}");
        let mut seen = Vec::new();
        for e in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(h) = e.unwrap() {
                assert_eq!(h.tag().unwrap().as_str(), "batch");
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(h.encoded_histogram())
                    .unwrap();
                let hist: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut std::io::Cursor::new(decoded))
                    .unwrap();
                seen.push((
                    h.start_timestamp().as_secs_f64().round(),
                    hist.len(),
                    h.max(),
                ));
            }
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].1, 10);
        assert_eq!(seen[2].1, 12);
        assert_eq!(seen[2].0, 2.0);
        assert!((seen[1].2 - 2.0).abs() < 0.01, "max in ms: {}", seen[1].2);
        // A merge sums second by second.
        let m = merge(&[r.clone(), r.clone()]).unwrap();
        assert_eq!(m.intervals.len(), 3);
        assert_eq!(m.intervals[2].batch_latency.count(), 24);
        // And the intervals survive the JSON round trip.
        let back = BenchReport::from_json(&r.to_json().unwrap()).unwrap();
        assert_eq!(back.intervals, r.intervals);
        // No intervals: no file.
        let p2 = dir.join("none.hlog");
        write_hlog(&report(2, 10), &p2).unwrap();
        assert!(!p2.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn csv_summary_has_redis_benchmark_columns() {
        let mut r = report(1, 1000);
        r.batch_latency = LatencyHistogram::new();
        for ms in [1u64, 2, 3, 4] {
            r.batch_latency.record(ms * 1_000_000);
        }
        r.totals.elapsed_secs = 2.0;
        r.totals.ops = 3000;
        let csv = csv_summary(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert!(lines[0].starts_with("\"test\",\"rps\",\"avg_latency_ms\""));
        let cells: Vec<&str> = lines[1].split(',').map(|c| c.trim_matches('"')).collect();
        assert_eq!(cells[0], "corekv YCSB-B batch 32");
        assert_eq!(cells[1], "1500.00");
        assert_eq!(cells[2], "2.500");
        assert_eq!(cells[3], "1.000");
        assert_eq!(cells.len(), 8);
        assert!(cells[7].starts_with("4.0"), "{csv}");
    }

    #[test]
    fn different_work_is_named() {
        let a = report(1, 10).meta;
        assert!(workload_diffs(&a, &a).is_empty());
        let mut b = a.clone();
        b.target = "redis".into();
        b.total_sessions = 99;
        assert!(
            workload_diffs(&a, &b).is_empty(),
            "target and load size may differ"
        );
        b.records = 1000;
        b.mode = LoadMode::Open {
            rate_ops_per_sec: 1e6,
        };
        let d = workload_diffs(&a, &b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("records 1000 vs 1000000"), "{d:?}");
        assert_eq!(d[1], "open loop vs closed loop");
    }

    #[test]
    fn get_and_set_latency_and_misses_merge() {
        let mut a = report(1, 100);
        let mut b = report(2, 100);
        a.get_latency.record_n(1000, 95);
        a.set_latency.record_n(2000, 5);
        a.totals.get_misses = 7;
        b.get_latency.record_n(3000, 95);
        b.totals.get_misses = 3;
        let m = merge(&[a, b]).unwrap();
        assert_eq!(m.get_latency.count(), 190);
        assert_eq!(m.set_latency.count(), 5);
        assert_eq!(m.totals.get_misses, 10);
        let v: serde_json::Value = serde_json::from_str(&m.to_json().unwrap()).unwrap();
        assert_eq!(v["get_latency_us"]["count"], 190);
        assert_eq!(v["get_hits"], m.totals.gets - 10);
        // Reports written before these fields existed still read.
        let mut old = v.clone();
        let o = old.as_object_mut().unwrap();
        o.remove("get_latency");
        o.remove("set_latency");
        o["totals"].as_object_mut().unwrap().remove("get_misses");
        let back = BenchReport::from_json(&old.to_string()).unwrap();
        assert!(back.get_latency.is_empty());
        assert_eq!(back.totals.get_misses, 0);
    }

    #[test]
    fn histogram_json_round_trip_is_exact() {
        let mut h = LatencyHistogram::new();
        for v in sample_values(3, 50_000) {
            h.record(v);
        }
        h.record(0);
        h.record(u64::MAX); // clamped to 60 s
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.starts_with('"'));
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.count(), 50_002);
        assert_eq!(back.summary(), h.summary());
        assert!(h.max() >= HIST_HIGHEST_NS);
        for v in h.inner().iter_recorded() {
            assert_eq!(
                back.inner().count_at(v.value_iterated_to()),
                v.count_at_value()
            );
        }
    }

    #[test]
    fn report_json_round_trip() {
        let mut r = report(1, 1000);
        r.meta.mode = LoadMode::Open {
            rate_ops_per_sec: 5e5,
        };
        r.servers = vec![ServerNodeReport {
            node_id: 1,
            address: "a:1".into(),
            per_second_ops: vec![1.0, 2.0],
            shards: vec![ShardTotals {
                shard_id: 0,
                ops: 5,
                ..Default::default()
            }],
            durability: "appendonly yes, appendfsync always".into(),
        }];
        r.extra.insert("util".into(), serde_json::json!([1, 2]));
        let s = r.to_json().unwrap();
        assert!(s.contains("\"kind\": \"open\""));
        let back = BenchReport::from_json(&s).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn merge_is_exact() {
        let a = report(1, 20_000);
        let b = report(2, 30_000);
        let m = merge(&[a.clone(), b.clone()]).unwrap();
        let mut all_op = LatencyHistogram::new();
        let mut all_batch = LatencyHistogram::new();
        for v in sample_values(1, 20_000)
            .into_iter()
            .chain(sample_values(2, 30_000))
        {
            all_op.record(v);
            all_batch.record(v * 4);
        }
        assert_eq!(m.op_latency, all_op);
        assert_eq!(m.batch_latency, all_batch);
        assert_eq!(m.op_latency.count(), 50_000);
        assert_eq!(m.op_latency.summary(), all_op.summary());
        assert_eq!(m.totals.ops, 50_000);
        assert_eq!(m.totals.elapsed_secs, 10.0);
        assert_eq!(m.totals.ops_per_sec, 5_000.0);
        assert_eq!(m.bytes_sent, 3000);
        assert_eq!(m.client_cpu_secs, 3.0);
        assert_eq!(m.generation_rate_ops, 1e7);
        assert_eq!(m.meta.client_processes, 2);
        assert_eq!(m.meta.hostname, "client1,client2");
        assert_eq!(m.meta.start_unix_secs, 1_700_000_001);
        assert_eq!(m.timeline.len(), 3);
        assert_eq!(m.timeline[0].ops, 100 + 1 + 100 + 2);
        assert_eq!(m.timeline[2].p99_batch_ns, 2002);

        // Merging the JSON-round-tripped reports gives the same result.
        let a2 = BenchReport::from_json(&a.to_json().unwrap()).unwrap();
        let b2 = BenchReport::from_json(&b.to_json().unwrap()).unwrap();
        assert_eq!(merge(&[a2, b2]).unwrap(), m);
    }

    #[test]
    fn merge_keeps_first_servers_and_rejects_mismatch() {
        let a = report(1, 100);
        let mut b = report(2, 100);
        b.servers = vec![ServerNodeReport {
            node_id: 7,
            ..Default::default()
        }];
        let mut c = report(3, 100);
        c.servers = vec![ServerNodeReport {
            node_id: 9,
            ..Default::default()
        }];
        let m = merge(&[a.clone(), b, c]).unwrap();
        assert_eq!(m.servers.len(), 1);
        assert_eq!(m.servers[0].node_id, 7);

        for f in [
            (|r: &mut BenchReport| r.meta.workload = "YCSB-A".into()) as fn(&mut BenchReport),
            |r| r.meta.value_size = 64,
            |r| r.meta.records = 10,
            |r| r.meta.theta = 0.5,
            |r| r.meta.target = "redis".into(),
        ] {
            let mut x = report(2, 100);
            f(&mut x);
            let err = merge(&[a.clone(), x]).unwrap_err().to_string();
            assert!(err.contains("does not match"), "{err}");
        }
        assert!(merge(&[]).is_err());
    }

    #[test]
    fn seed_style_median_sum() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        let mut r = report(1, 10);
        r.servers = vec![
            ServerNodeReport {
                node_id: 0,
                per_second_ops: vec![100.0, 900.0, 200.0, 150.0, 5.0],
                ..Default::default()
            },
            ServerNodeReport {
                node_id: 1,
                per_second_ops: vec![10.0, 30.0, 20.0, 40.0],
                ..Default::default()
            },
        ];
        // 150 (odd median) + 25 (mean of 20 and 30).
        assert_eq!(r.seed_style_total(), 175.0);
        assert_eq!(r.client_ops_per_sec(), 1.0);
        let t = render_table(&r);
        assert!(t.contains("seed-style total"), "{t}");
        assert!(t.contains("p99.99"));
        let c = render_comparison(&[("corekv", &r), ("redis", &report(2, 20))]);
        assert!(c.contains("2.00x"), "{c}");
        assert!(c.contains("1.00x"));
    }

    #[test]
    fn hgrm_format() {
        let mut h = LatencyHistogram::new();
        for v in sample_values(5, 100_000) {
            h.record(v);
        }
        let s = hgrm_string(&h);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        let n = lines.len();
        assert!(lines[n - 3].starts_with("#[Mean    = "));
        assert!(lines[n - 2].starts_with("#[Max     = "));
        assert!(lines[n - 2].ends_with(&format!("Total count    = {:>12}]", 100_000)));
        assert_eq!(
            lines[n - 1],
            format!(
                "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
                h.inner().buckets(),
                2048
            )
        );
        // Data lines: monotone value, percentile and count; last is 1.0 / total.
        let data: Vec<Vec<&str>> = lines[2..n - 3]
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(data.len() > 50);
        let mut prev = (0.0f64, -1.0f64, 0u64);
        for d in &data[..data.len() - 1] {
            assert_eq!(d.len(), 4, "{d:?}");
            let v: f64 = d[0].parse().unwrap();
            let p: f64 = d[1].parse().unwrap();
            let c: u64 = d[2].parse().unwrap();
            assert!(
                v >= prev.0 && p > prev.1 && c >= prev.2,
                "{d:?} after {prev:?}"
            );
            prev = (v, p, c);
        }
        let last = &data[data.len() - 1];
        assert_eq!(last.len(), 3);
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "100000");
        let max_us: f64 = last[0].parse().unwrap();
        assert!((max_us - h.max() as f64 / 1000.0).abs() < 1e-9);
        // First line is the 0% line at the minimum value.
        assert_eq!(data[0][1], "0.000000000000");
        assert!(data[0][3] == "1.00");

        let dir = std::env::temp_dir().join(format!("corekv-hgrm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.hgrm");
        write_hgrm(&h, &p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
