//! Node and process utilization, sampled from `/proc` by corekv itself.
//!
//! This module replaces the seed project's "watch `htop` and `nethogs` by
//! hand": `corekv monitor` calls [`monitor`] on every CloudLab node during a
//! run and writes the samples (plus a [`summarize`]d [`UtilizationSummary`])
//! to JSON next to the benchmark reports.
//!
//! What it owns: reading and interpreting Linux `/proc` text — `/proc/stat`
//! (node CPU busy %, overall and per CPU), `/proc/PID/stat` and
//! `/proc/PID/statm` (process CPU % and RSS), `/proc/meminfo` (node memory in
//! use), `/proc/net/dev` (network bytes/s per interface), and what machine
//! this is (`/proc/cpuinfo`, the kernel release) for reports. It must not touch
//! the network or the store: it only reads files, so it can run beside a
//! server without perturbing it beyond one small read per file per interval.
//!
//! Every parser is a pure function of the file's text (`parse_*`), so the unit
//! tests feed fixed `/proc` snapshots; [`Sampler`] glues the parsers to the
//! files and turns two consecutive snapshots into rates.
//!
//! It lives beside the bench because it serves the bench and `corekv
//! monitor`, never the server. File parsing uses `procfs-core` (the parsing
//! half of the `procfs` crate, no I/O of its own) where it fits:
//! `/proc/PID/statm`. It does not fit the others, which stay hand-written:
//! its `/proc/stat` parser requires `ctxt`/`btime` lines and its
//! `/proc/PID/stat` parser all ~50 fields (containers and short snapshots have
//! fewer, and we need only the CPU jiffies); its `/proc/meminfo` parser
//! requires some twenty keys (we need three and fall back on old kernels);
//! its `/proc/net/dev` result is a `HashMap`, losing the file's interface
//! order that the reports keep.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the loopback interface, excluded from network totals by default.
pub const LOOPBACK: &str = "lo";

/// What to sample and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorOptions {
    /// Time between samples (default 1 s). Must be positive.
    pub interval: Duration,
    /// Process to report CPU % and RSS for; `None` reports node-wide figures only.
    pub pid: Option<u32>,
    /// Interfaces whose traffic is summed, comma-separated (e.g. `"eth1"` or
    /// `"lo"`). `None`: every interface except `lo`, or `lo` if it is the only
    /// one.
    pub iface: Option<String>,
    /// Root of the proc filesystem (default `/proc`); tests point it elsewhere.
    pub proc_root: PathBuf,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            interval: Duration::from_secs(1),
            pid: None,
            iface: None,
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// Traffic of one network interface over one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IfaceRate {
    /// Interface name as in `/proc/net/dev`.
    pub name: String,
    /// Received bytes per second.
    pub rx_bytes_per_sec: f64,
    /// Transmitted bytes per second.
    pub tx_bytes_per_sec: f64,
    /// Whether this interface is included in the sample's network totals.
    pub counted: bool,
}

/// Utilization over the interval that ended at `t_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UtilizationSample {
    /// End of the interval, seconds since the [`Sampler`] was created.
    pub t_secs: f64,
    /// End of the interval, seconds since the Unix epoch (aligns nodes).
    pub unix_secs: f64,
    /// Length of the interval the rates are computed over, seconds.
    pub interval_secs: f64,
    /// Node CPU busy %, 0–100, averaged over all CPUs.
    pub node_cpu_pct: f64,
    /// Busy % of each CPU, 0–100, in `/proc/stat` order (`cpu0`, `cpu1`, …).
    pub per_cpu_pct: Vec<f64>,
    /// CPU % of the watched process, in units of one CPU (like `top`: 250.0
    /// means two and a half CPUs busy). `None` without a pid or once it exited.
    pub proc_cpu_pct: Option<f64>,
    /// Resident set size of the watched process, bytes.
    pub proc_rss_bytes: Option<u64>,
    /// Node memory in use, bytes: `MemTotal - MemAvailable` from `/proc/meminfo`.
    pub mem_used_bytes: u64,
    /// Received bytes per second summed over the counted interfaces.
    pub net_rx_bytes_per_sec: f64,
    /// Transmitted bytes per second summed over the counted interfaces.
    pub net_tx_bytes_per_sec: f64,
    /// Per-interface rates (every interface, `counted` marks those summed).
    pub per_iface: Vec<IfaceRate>,
}

// ---------------------------------------------------------------------------
// Pure parsers
// ---------------------------------------------------------------------------

/// Cumulative jiffies of one CPU line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// All time accounted (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
    /// Idle time (idle + iowait).
    pub idle: u64,
}

impl CpuTimes {
    /// Busy % between `prev` and `self` (0 when no time passed).
    pub fn busy_pct_since(&self, prev: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(prev.total);
        let idle = self.idle.saturating_sub(prev.idle);
        if total == 0 {
            return 0.0;
        }
        (total.saturating_sub(idle) as f64 / total as f64 * 100.0).clamp(0.0, 100.0)
    }
}

/// The CPU lines of `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStat {
    /// The aggregate `cpu` line.
    pub all: CpuTimes,
    /// `(N, times)` for every `cpuN` line, in file order.
    pub per_cpu: Vec<(u32, CpuTimes)>,
}

fn parse_cpu_fields(line: &str) -> Result<CpuTimes> {
    let mut vals = [0u64; 8];
    let mut n = 0;
    for (i, f) in line.split_whitespace().skip(1).take(8).enumerate() {
        vals[i] = f
            .parse()
            .with_context(|| format!("bad number {f:?} in /proc/stat line {line:?}"))?;
        n += 1;
    }
    if n < 4 {
        bail!("too few fields in /proc/stat line {line:?}");
    }
    // user nice system idle iowait irq softirq steal; guest/guest_nice are
    // already included in user/nice, so they are not added again.
    let [user, nice, system, idle, iowait, irq, softirq, steal] = vals;
    Ok(CpuTimes {
        total: user + nice + system + idle + iowait + irq + softirq + steal,
        idle: idle + iowait,
    })
}

/// Parses `/proc/stat`: the aggregate `cpu` line and every `cpuN` line.
pub fn parse_proc_stat(text: &str) -> Result<CpuStat> {
    let mut all = None;
    let mut per_cpu = Vec::new();
    for line in text.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name == "cpu" {
            all = Some(parse_cpu_fields(line)?);
        } else if let Some(id) = name.strip_prefix("cpu") {
            if let Ok(id) = id.parse::<u32>() {
                per_cpu.push((id, parse_cpu_fields(line)?));
            }
        }
    }
    let all = all.ok_or_else(|| anyhow!("no aggregate `cpu` line in /proc/stat"))?;
    Ok(CpuStat { all, per_cpu })
}

/// Parses `/proc/PID/stat` and returns the process's `utime + stime` in clock
/// ticks. The command name (field 2) may contain spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_pid_stat(text: &str) -> Result<u64> {
    let close = text
        .rfind(')')
        .ok_or_else(|| anyhow!("no `)` in /proc/PID/stat: {text:?}"))?;
    // After ") ": field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    if fields.len() < 13 {
        bail!("too few fields in /proc/PID/stat: {text:?}");
    }
    let utime: u64 = fields[11].parse().context("bad utime in /proc/PID/stat")?;
    let stime: u64 = fields[12].parse().context("bad stime in /proc/PID/stat")?;
    Ok(utime + stime)
}

/// Parses `/proc/PID/statm` and returns the resident set size in bytes.
pub fn parse_statm_rss(text: &str, page_size: u64) -> Result<u64> {
    use procfs_core::FromRead;
    let statm = procfs_core::process::StatM::from_read(text.as_bytes())
        .with_context(|| format!("bad /proc/PID/statm: {text:?}"))?;
    Ok(statm.resident * page_size)
}

/// Parses `/proc/meminfo` and returns memory in use in bytes:
/// `MemTotal - MemAvailable` (kernels older than 3.14 without `MemAvailable`:
/// `MemTotal - MemFree - Buffers - Cached`).
pub fn parse_meminfo_used(text: &str) -> Result<u64> {
    let get = |key: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kb * 1024)
        })
    };
    let total = get("MemTotal").ok_or_else(|| anyhow!("no MemTotal in /proc/meminfo"))?;
    let avail = match get("MemAvailable") {
        Some(a) => a,
        None => {
            get("MemFree").ok_or_else(|| anyhow!("no MemFree in /proc/meminfo"))?
                + get("Buffers").unwrap_or(0)
                + get("Cached").unwrap_or(0)
        }
    };
    Ok(total.saturating_sub(avail))
}

/// Cumulative byte counters of one interface from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceCounters {
    /// Interface name.
    pub name: String,
    /// Bytes received since boot.
    pub rx_bytes: u64,
    /// Bytes transmitted since boot.
    pub tx_bytes: u64,
}

/// Parses `/proc/net/dev` (two header lines, then `name: rx_bytes … tx_bytes …`).
pub fn parse_net_dev(text: &str) -> Result<Vec<IfaceCounters>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue; // header lines have `|`, not `:`
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 9 {
            bail!("too few fields in /proc/net/dev line {line:?}");
        }
        let num = |s: &str| -> Result<u64> {
            s.parse()
                .with_context(|| format!("bad number {s:?} in /proc/net/dev line {line:?}"))
        };
        out.push(IfaceCounters {
            name: name.to_string(),
            rx_bytes: num(f[0])?,
            tx_bytes: num(f[8])?,
        });
    }
    Ok(out)
}

/// Decides which interfaces are summed: those named in `filter`
/// (comma-separated) if given, else every interface but `lo`, else `lo` when
/// it is the only one.
pub fn counted_ifaces(names: &[&str], filter: Option<&str>) -> Vec<String> {
    match filter {
        Some(f) => {
            let wanted: Vec<&str> = f
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            names
                .iter()
                .filter(|n| wanted.contains(n))
                .map(|n| n.to_string())
                .collect()
        }
        None => {
            let non_lo: Vec<String> = names
                .iter()
                .filter(|n| **n != LOOPBACK)
                .map(|n| n.to_string())
                .collect();
            if non_lo.is_empty() {
                names.iter().map(|n| n.to_string()).collect()
            } else {
                non_lo
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Sampler
// ---------------------------------------------------------------------------

/// Everything read from `/proc` at one instant.
#[derive(Debug, Clone)]
struct Snapshot {
    at: Instant,
    cpu: CpuStat,
    proc_ticks: Option<u64>,
    proc_rss: Option<u64>,
    mem_used: u64,
    net: Vec<IfaceCounters>,
}

/// Turns consecutive `/proc` snapshots into [`UtilizationSample`]s.
#[derive(Debug)]
pub struct Sampler {
    opts: MonitorOptions,
    start: Instant,
    prev: Snapshot,
    clk_tck: f64,
    page_size: u64,
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

impl Sampler {
    /// Takes the baseline snapshot. Fails if `/proc` is unreadable, the pid
    /// does not exist, or an `iface` filter names no existing interface.
    pub fn new(opts: &MonitorOptions) -> Result<Sampler> {
        if opts.interval.is_zero() {
            bail!("sampling interval must be positive");
        }
        // SAFETY: sysconf only reads a configuration value.
        let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // SAFETY: as above.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let mut s = Sampler {
            opts: opts.clone(),
            start: Instant::now(),
            prev: Snapshot {
                at: Instant::now(),
                cpu: CpuStat::default(),
                proc_ticks: None,
                proc_rss: None,
                mem_used: 0,
                net: Vec::new(),
            },
            clk_tck: if clk_tck > 0 { clk_tck as f64 } else { 100.0 },
            page_size: if page_size > 0 {
                page_size as u64
            } else {
                4096
            },
        };
        let snap = s.snapshot()?;
        if let Some(pid) = opts.pid {
            if snap.proc_ticks.is_none() {
                bail!(
                    "process {pid} not found (no readable {}/{pid}/stat)",
                    opts.proc_root.display()
                );
            }
        }
        if let Some(filter) = opts.iface.as_deref() {
            let names: Vec<&str> = snap.net.iter().map(|c| c.name.as_str()).collect();
            if counted_ifaces(&names, Some(filter)).is_empty() {
                bail!(
                    "no network interface matches {filter:?}; available: {}",
                    names.join(", ")
                );
            }
        }
        s.start = snap.at;
        s.prev = snap;
        Ok(s)
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let root = &self.opts.proc_root;
        let cpu = parse_proc_stat(&read(&root.join("stat"))?)?;
        let mem_used = parse_meminfo_used(&read(&root.join("meminfo"))?)?;
        let net = parse_net_dev(&read(&root.join("net/dev"))?)?;
        let (proc_ticks, proc_rss) = match self.opts.pid {
            // A process that exited (or is unreadable) yields None, not an error:
            // a monitor outliving the server it watches keeps reporting the node.
            Some(pid) => {
                let dir = root.join(pid.to_string());
                let ticks = fs::read_to_string(dir.join("stat"))
                    .ok()
                    .and_then(|t| parse_pid_stat(&t).ok());
                let rss = fs::read_to_string(dir.join("statm"))
                    .ok()
                    .and_then(|t| parse_statm_rss(&t, self.page_size).ok());
                (ticks, rss)
            }
            None => (None, None),
        };
        Ok(Snapshot {
            at: Instant::now(),
            cpu,
            proc_ticks,
            proc_rss,
            mem_used,
            net,
        })
    }

    /// Reads `/proc` and returns utilization since the previous call (the
    /// first call: since [`Sampler::new`]).
    pub fn sample(&mut self) -> Result<UtilizationSample> {
        let cur = self.snapshot()?;
        let sample = self.diff(&cur);
        self.prev = cur;
        Ok(sample)
    }

    fn diff(&self, cur: &Snapshot) -> UtilizationSample {
        let prev = &self.prev;
        let dt = cur.at.duration_since(prev.at).as_secs_f64();
        let per_sec = |d: u64| if dt > 0.0 { d as f64 / dt } else { 0.0 };

        let per_cpu_pct = cur
            .cpu
            .per_cpu
            .iter()
            .map(
                |(id, t)| match prev.cpu.per_cpu.iter().find(|(p, _)| p == id) {
                    Some((_, pt)) => t.busy_pct_since(pt),
                    None => 0.0, // CPU came online during the interval
                },
            )
            .collect();

        let proc_cpu_pct = match (prev.proc_ticks, cur.proc_ticks) {
            (Some(a), Some(b)) if dt > 0.0 => {
                Some(b.saturating_sub(a) as f64 / self.clk_tck / dt * 100.0)
            }
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };

        let names: Vec<&str> = cur.net.iter().map(|c| c.name.as_str()).collect();
        let counted = counted_ifaces(&names, self.opts.iface.as_deref());
        let mut per_iface = Vec::with_capacity(cur.net.len());
        let (mut rx, mut tx) = (0.0, 0.0);
        for c in &cur.net {
            // An interface that appeared in this interval has no baseline: 0.
            let (r, t) = match prev.net.iter().find(|p| p.name == c.name) {
                Some(p) => (
                    per_sec(c.rx_bytes.saturating_sub(p.rx_bytes)),
                    per_sec(c.tx_bytes.saturating_sub(p.tx_bytes)),
                ),
                None => (0.0, 0.0),
            };
            let is_counted = counted.contains(&c.name);
            if is_counted {
                rx += r;
                tx += t;
            }
            per_iface.push(IfaceRate {
                name: c.name.clone(),
                rx_bytes_per_sec: r,
                tx_bytes_per_sec: t,
                counted: is_counted,
            });
        }

        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        UtilizationSample {
            t_secs: cur.at.duration_since(self.start).as_secs_f64(),
            unix_secs,
            interval_secs: dt,
            node_cpu_pct: cur.cpu.all.busy_pct_since(&prev.cpu.all),
            per_cpu_pct,
            proc_cpu_pct,
            proc_rss_bytes: cur.proc_rss,
            mem_used_bytes: cur.mem_used,
            net_rx_bytes_per_sec: rx,
            net_tx_bytes_per_sec: tx,
            per_iface,
        }
    }
}

/// Samples every `opts.interval` for `secs` seconds (`secs <= 0` or infinite:
/// until `stop` is set) and returns the samples. Returns early, with the
/// samples taken so far, once `stop` is set (checked every 50 ms).
pub fn monitor(
    opts: &MonitorOptions,
    secs: f64,
    stop: &AtomicBool,
) -> Result<Vec<UtilizationSample>> {
    let mut sampler = Sampler::new(opts)?;
    let start = Instant::now();
    let limit = if secs > 0.0 && secs.is_finite() {
        Some(Duration::from_secs_f64(secs))
    } else {
        None
    };
    let mut samples = Vec::new();
    let mut k: u32 = 0;
    loop {
        k += 1;
        // Absolute schedule so the period does not drift by the sampling cost.
        let due = opts.interval.saturating_mul(k);
        if limit.is_some_and(|l| due > l + Duration::from_millis(1)) {
            return Ok(samples);
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(samples);
            }
            let now = start.elapsed();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
        samples.push(sampler.sample()?);
    }
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

/// Aggregate of a run's samples, in the units the seed report quotes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UtilizationSummary {
    /// Number of samples summarized.
    pub samples: usize,
    /// Sum of the sample intervals, seconds.
    pub duration_secs: f64,
    /// Mean node CPU busy %.
    pub mean_node_cpu_pct: f64,
    /// Highest node CPU busy %.
    pub max_node_cpu_pct: f64,
    /// Mean CPU % of the watched process (units of one CPU), if watched.
    pub mean_proc_cpu_pct: Option<f64>,
    /// Highest RSS of the watched process, bytes, if watched.
    pub max_rss_bytes: Option<u64>,
    /// Highest node memory in use, bytes.
    pub max_mem_used_bytes: u64,
    /// Mean received bytes/s over the counted interfaces.
    pub mean_rx_bytes_per_sec: f64,
    /// Mean transmitted bytes/s over the counted interfaces.
    pub mean_tx_bytes_per_sec: f64,
    /// `mean_rx_bytes_per_sec` in Gbit/s (10^9 bits).
    pub mean_rx_gbit_per_sec: f64,
    /// `mean_tx_bytes_per_sec` in Gbit/s.
    pub mean_tx_gbit_per_sec: f64,
    /// rx + tx in Gbit/s (the seed's "6.7 Gbps" is this figure).
    pub mean_total_gbit_per_sec: f64,
}

fn gbit(bytes_per_sec: f64) -> f64 {
    bytes_per_sec * 8.0 / 1e9
}

/// Summarizes samples (all zero / `None` for an empty slice).
pub fn summarize(samples: &[UtilizationSample]) -> UtilizationSummary {
    if samples.is_empty() {
        return UtilizationSummary::default();
    }
    let n = samples.len() as f64;
    let mean = |f: fn(&UtilizationSample) -> f64| samples.iter().map(f).sum::<f64>() / n;
    let proc: Vec<f64> = samples.iter().filter_map(|s| s.proc_cpu_pct).collect();
    let rx = mean(|s| s.net_rx_bytes_per_sec);
    let tx = mean(|s| s.net_tx_bytes_per_sec);
    UtilizationSummary {
        samples: samples.len(),
        duration_secs: samples.iter().map(|s| s.interval_secs).sum(),
        mean_node_cpu_pct: mean(|s| s.node_cpu_pct),
        max_node_cpu_pct: samples.iter().map(|s| s.node_cpu_pct).fold(0.0, f64::max),
        mean_proc_cpu_pct: (!proc.is_empty()).then(|| proc.iter().sum::<f64>() / proc.len() as f64),
        max_rss_bytes: samples.iter().filter_map(|s| s.proc_rss_bytes).max(),
        max_mem_used_bytes: samples.iter().map(|s| s.mem_used_bytes).max().unwrap_or(0),
        mean_rx_bytes_per_sec: rx,
        mean_tx_bytes_per_sec: tx,
        mean_rx_gbit_per_sec: gbit(rx),
        mean_tx_gbit_per_sec: gbit(tx),
        mean_total_gbit_per_sec: gbit(rx + tx),
    }
}

impl fmt::Display for UtilizationSummary {
    /// One line, e.g. `cpu mean 78.1% max 91.0% | proc cpu 612% | rss max
    /// 1.79 GB | mem used max 3.10 GB | net rx 0.89 tx 5.83 = 6.72 Gbit/s (12 samples)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.samples == 0 {
            return write!(f, "no utilization samples");
        }
        write!(
            f,
            "cpu mean {:.1}% max {:.1}%",
            self.mean_node_cpu_pct, self.max_node_cpu_pct
        )?;
        if let Some(p) = self.mean_proc_cpu_pct {
            write!(f, " | proc cpu {p:.0}%")?;
        }
        if let Some(r) = self.max_rss_bytes {
            write!(f, " | rss max {}", crate::units::si_bytes(r))?;
        }
        write!(
            f,
            " | mem used max {} | net rx {:.2} tx {:.2} = {:.2} Gbit/s ({} samples)",
            crate::units::si_bytes(self.max_mem_used_bytes),
            self.mean_rx_gbit_per_sec,
            self.mean_tx_gbit_per_sec,
            self.mean_total_gbit_per_sec,
            self.samples
        )
    }
}

/// A machine, as a reader of a benchmark report needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Machine {
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu_model: String,
    /// Online logical CPUs.
    pub cores: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
}

/// This machine: CPU model, online CPUs, kernel release.
pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Machine {
        cpu_model: parse_cpu_model(&cpuinfo),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

/// The first `model name` of `/proc/cpuinfo` (x86), else its `Model` /
/// `CPU part` line (Arm), else empty.
pub fn parse_cpu_model(cpuinfo: &str) -> String {
    for key in ["model name", "Model", "CPU part"] {
        for line in cpuinfo.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim() == key && !v.trim().is_empty() {
                    return v.trim().to_string();
                }
            }
        }
    }
    String::new()
}

/// One node's `corekv monitor` file: what `corekv monitor --out` writes.
#[derive(Debug, Clone, serde::Deserialize)]
struct MonitorFile {
    samples: Vec<UtilizationSample>,
    summary: UtilizationSummary,
}

/// A named node's utilization samples and their summary.
#[derive(Debug, Clone)]
pub struct NodeUtilization {
    /// The node's name (from its monitor file's name).
    pub name: String,
    /// Its samples, in time order.
    pub samples: Vec<UtilizationSample>,
    /// Their summary.
    pub summary: UtilizationSummary,
}

impl NodeUtilization {
    /// Reads a `corekv monitor --out` file as node `name`.
    pub fn read(path: &Path, name: &str) -> Result<Self> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let f: MonitorFile = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} (a `corekv monitor` file)", path.display()))?;
        Ok(NodeUtilization {
            name: name.to_string(),
            samples: f.samples,
            summary: f.summary,
        })
    }
}

/// `dir/server0.monitor.json` → `server0` (else the file stem).
pub fn monitor_name(path: &Path) -> String {
    let file = path.file_name().and_then(|s| s.to_str()).unwrap_or("node");
    file.strip_suffix(".monitor.json")
        .or_else(|| file.strip_suffix(".json"))
        .unwrap_or(file)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_A: &str = "cpu  100 0 100 800 0 0 0 0 0 0\n\
cpu0 50 0 50 400 0 0 0 0 0 0\n\
cpu1 50 0 50 400 0 0 0 0 0 0\n\
intr 1 2 3\nctxt 5\nbtime 1\n";
    // +100 jiffies per CPU: cpu0 fully busy (user), cpu1 25 busy / 75 idle+iowait.
    const STAT_B: &str = "cpu  225 0 100 850 25 0 0 0 0 0\n\
cpu0 150 0 50 400 0 0 0 0 0 0\n\
cpu1 75 0 50 450 25 0 0 0 0 0\n\
intr 1 2 3\n";

    const NET_A: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      29    0    0    0     0          0         0     1000      29    0    0    0     0       0          0
  eth0: 5000    2690    0    0    0     0          0         0   7000    1766    0    0    0     0       0          0
  eth1:10      1    0    0    0     0          0         0   20    1    0    0    0     0       0          0
";

    #[test]
    fn cpu_model_from_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 86\n\
                   model name\t: Intel(R) Xeon(R) CPU D-1548 @ 2.00GHz\nflags\t: fpu\n";
        assert_eq!(
            parse_cpu_model(x86),
            "Intel(R) Xeon(R) CPU D-1548 @ 2.00GHz"
        );
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n";
        assert_eq!(parse_cpu_model(arm), "0xd0c");
        assert_eq!(parse_cpu_model(""), "");
        let m = machine();
        assert!(m.cores >= 1);
        assert!(!m.kernel.is_empty());
    }

    #[test]
    fn proc_stat_parses_and_busy_pct() {
        let a = parse_proc_stat(STAT_A).unwrap();
        let b = parse_proc_stat(STAT_B).unwrap();
        assert_eq!(a.per_cpu.len(), 2);
        assert_eq!(
            a.all,
            CpuTimes {
                total: 1000,
                idle: 800
            }
        );
        assert_eq!(b.per_cpu[1].0, 1);
        assert!((b.per_cpu[0].1.busy_pct_since(&a.per_cpu[0].1) - 100.0).abs() < 1e-9);
        assert!((b.per_cpu[1].1.busy_pct_since(&a.per_cpu[1].1) - 25.0).abs() < 1e-9);
        assert!((b.all.busy_pct_since(&a.all) - 62.5).abs() < 1e-9);
        // No time passed / counters went backwards: 0, never NaN or negative.
        assert_eq!(a.all.busy_pct_since(&b.all), 0.0);
        assert!(parse_proc_stat("intr 1\n").is_err());
        assert!(parse_proc_stat("cpu 1 x 3 4\n").is_err());
    }

    #[test]
    fn pid_stat_handles_odd_comm() {
        let t = "4242 (my (odd) prog) S 1 2 3 0 -1 4194304 100 0 0 0 1234 566 0 0 20 0 9 0 25155 3133440 406 18446744073709551615\n";
        assert_eq!(parse_pid_stat(t).unwrap(), 1800);
        assert!(parse_pid_stat("12 (x) S 1 2").is_err());
        assert!(parse_pid_stat("no paren").is_err());
    }

    #[test]
    fn statm_and_meminfo() {
        assert_eq!(
            parse_statm_rss("765 421 393 5 0 123 0\n", 4096).unwrap(),
            421 * 4096
        );
        assert!(parse_statm_rss("765", 4096).is_err());
        let mi = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\nBuffers: 10 kB\n";
        assert_eq!(parse_meminfo_used(mi).unwrap(), 400 * 1024);
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(parse_meminfo_used(old).unwrap(), 600 * 1024);
        assert!(parse_meminfo_used("MemFree: 1 kB\n").is_err());
    }

    #[test]
    fn net_dev_and_iface_selection() {
        let n = parse_net_dev(NET_A).unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!(
            n[2],
            IfaceCounters {
                name: "eth1".into(),
                rx_bytes: 10,
                tx_bytes: 20
            }
        );
        let names: Vec<&str> = n.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(counted_ifaces(&names, None), vec!["eth0", "eth1"]);
        assert_eq!(counted_ifaces(&["lo"], None), vec!["lo"]);
        assert_eq!(counted_ifaces(&names, Some("lo")), vec!["lo"]);
        assert_eq!(counted_ifaces(&names, Some("eth1, lo")), vec!["lo", "eth1"]);
        assert!(counted_ifaces(&names, Some("ib0")).is_empty());
    }

    /// A fake /proc tree so the Sampler is tested end to end with known numbers.
    fn fake_proc(dir: &Path, stat: &str, net: &str, ticks: u64, rss_pages: u64) {
        fs::create_dir_all(dir.join("net")).unwrap();
        fs::create_dir_all(dir.join("77")).unwrap();
        fs::write(dir.join("stat"), stat).unwrap();
        fs::write(dir.join("net/dev"), net).unwrap();
        fs::write(
            dir.join("meminfo"),
            "MemTotal: 2000 kB\nMemAvailable: 500 kB\n",
        )
        .unwrap();
        fs::write(
            dir.join("77/stat"),
            format!("77 (corekv) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 1 1 1\n"),
        )
        .unwrap();
        fs::write(dir.join("77/statm"), format!("100 {rss_pages} 0 0 0 0 0\n")).unwrap();
    }

    #[test]
    fn sampler_on_fake_proc() {
        let dir = std::env::temp_dir().join(format!("sysstat-test-{}", std::process::id()));
        fake_proc(&dir, STAT_A, NET_A, 0, 10);
        let opts = MonitorOptions {
            pid: Some(77),
            proc_root: dir.clone(),
            ..Default::default()
        };
        let mut s = Sampler::new(&opts).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let net_b = NET_A
            .replace("  eth0: 5000 ", "  eth0: 1005000 ")
            .replace("   7000 ", "   2007000 ");
        fake_proc(&dir, STAT_B, &net_b, 1000, 20);
        let x = s.sample().unwrap();
        fs::remove_dir_all(&dir).ok();
        assert!((x.node_cpu_pct - 62.5).abs() < 1e-9);
        assert_eq!(x.per_cpu_pct.len(), 2);
        assert_eq!(x.mem_used_bytes, 1500 * 1024);
        assert_eq!(x.proc_rss_bytes, Some(20 * page_size()));
        // 1,000,000 rx and 2,000,000 tx bytes in ~dt seconds, on eth0 only.
        let dt = x.interval_secs;
        assert!(dt >= 0.1);
        assert!((x.net_rx_bytes_per_sec - 1e6 / dt).abs() < 1.0);
        assert!((x.net_tx_bytes_per_sec - 2e6 / dt).abs() < 1.0);
        assert!(x.per_iface.iter().any(|i| i.name == "lo" && !i.counted));
        // 1000 ticks of CPU in dt seconds.
        let expect = 1000.0 / clk_tck() / dt * 100.0;
        assert!((x.proc_cpu_pct.unwrap() - expect).abs() < 1e-6);
    }

    fn page_size() -> u64 {
        // SAFETY: sysconf only reads a configuration value.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
    }
    fn clk_tck() -> f64 {
        // SAFETY: as above.
        unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
    }

    #[test]
    fn bad_pid_and_iface_are_errors() {
        let e = Sampler::new(&MonitorOptions {
            pid: Some(u32::MAX),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
        let e = Sampler::new(&MonitorOptions {
            iface: Some("no-such-iface0".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("available"), "{e}");
    }

    #[test]
    fn real_proc_monitor_and_stop() {
        let opts = MonitorOptions {
            interval: Duration::from_millis(100),
            pid: Some(std::process::id()),
            ..Default::default()
        };
        let stop = AtomicBool::new(false);
        let samples = monitor(&opts, 0.35, &stop).unwrap();
        // Three 100 ms samples fit in 0.35 s; a loaded machine may fit fewer
        // (no timed assertions), never more.
        assert!((1..=3).contains(&samples.len()), "{samples:?}");
        for s in &samples {
            assert!((0.0..=100.0).contains(&s.node_cpu_pct));
            assert!(!s.per_cpu_pct.is_empty());
            assert!(s.proc_rss_bytes.unwrap() > 0);
            assert!(s.proc_cpu_pct.unwrap() >= 0.0);
            assert!(s.mem_used_bytes > 0);
            assert!(s.interval_secs > 0.05);
        }
        assert!(samples.windows(2).all(|w| w[1].t_secs > w[0].t_secs));
        let sum = summarize(&samples);
        assert_eq!(sum.samples, samples.len());
        assert!(sum.max_rss_bytes.unwrap() > 0);
        let json = serde_json::to_string(&samples[0]).unwrap();
        let back: UtilizationSample = serde_json::from_str(&json).unwrap();
        // serde_json's default float parsing may differ in the last ulp.
        assert_eq!(back.per_cpu_pct.len(), samples[0].per_cpu_pct.len());
        assert_eq!(back.proc_rss_bytes, samples[0].proc_rss_bytes);
        assert!((back.unix_secs - samples[0].unix_secs).abs() < 1e-6);
        assert_eq!(back.per_iface.len(), samples[0].per_iface.len());
        // A set stop flag returns at once with what was collected.
        stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        assert!(monitor(&opts, 10.0, &stop).unwrap().is_empty());
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn summary_math_and_display() {
        assert_eq!(summarize(&[]).to_string(), "no utilization samples");
        let mk = |cpu: f64, rx: f64, tx: f64, rss: Option<u64>| UtilizationSample {
            t_secs: 0.0,
            unix_secs: 0.0,
            interval_secs: 1.0,
            node_cpu_pct: cpu,
            per_cpu_pct: vec![cpu],
            proc_cpu_pct: rss.map(|_| 100.0),
            proc_rss_bytes: rss,
            mem_used_bytes: 3_000_000_000,
            net_rx_bytes_per_sec: rx,
            net_tx_bytes_per_sec: tx,
            per_iface: vec![],
        };
        // The seed's node0: 109 MB/s received, 728 MB/s sent ≈ 6.7 Gbit/s.
        let s = summarize(&[
            mk(70.0, 100e6, 700e6, Some(1_700_000_000)),
            mk(90.0, 118e6, 756e6, Some(1_790_000_000)),
        ]);
        assert!((s.mean_node_cpu_pct - 80.0).abs() < 1e-9);
        assert_eq!(s.max_node_cpu_pct, 90.0);
        assert_eq!(s.max_rss_bytes, Some(1_790_000_000));
        assert!((s.mean_rx_gbit_per_sec - 0.872).abs() < 1e-9);
        assert!((s.mean_total_gbit_per_sec - 6.696).abs() < 1e-9);
        let line = s.to_string();
        assert!(line.contains("cpu mean 80.0% max 90.0%"), "{line}");
        assert!(line.contains("rss max 1.79 GB"), "{line}");
        assert!(line.contains("= 6.70 Gbit/s (2 samples)"), "{line}");
    }
}
