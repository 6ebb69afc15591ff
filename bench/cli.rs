//! `corekv bench` and `corekv report` command lines (`corekv::bench::cli`).
//!
//! Owns: the flags, turning them into a [`DriverConfig`], printing the
//! readable report and writing the result files (JSON, `.hgrm`, PNG), and
//! reading `corekv monitor` files back for the utilization table and figure
//! of a cluster run (`report merge --monitor`, `report plot-util`).
//!
//! Must not touch: measurement (`super::driver`), report arithmetic
//! (`super::report`), plot drawing (`super::plot`), sampling `/proc`
//! (`crate::sysstat`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};

use super::driver::{self, DriverConfig, Target};
use super::plot;
use super::report::{self, BenchReport, LoadMode};
use super::workload::{self, Distribution, WorkloadConfig};
use crate::sysstat::{UtilizationSample, UtilizationSummary};

/// `corekv bench` arguments.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Comma-separated server addresses. corekv: any native port of each node
    /// (the client learns every shard's port); redis: each server.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub hosts: String,
    /// System under test: corekv (native batches, shard-aware), corekv-resp
    /// (a corekv RESP port) or redis (any Redis-protocol server).
    #[arg(long, default_value = "corekv")]
    pub target: String,
    /// YCSB-A (50% reads), YCSB-B (95%) or YCSB-C (100%).
    #[arg(long, default_value = "YCSB-B")]
    pub workload: String,
    /// Zipfian skew in [0, 1).
    #[arg(long, default_value_t = workload::DEFAULT_THETA)]
    pub theta: f64,
    /// Key space: keys are "0" .. records-1 in decimal.
    #[arg(long, default_value_t = workload::DEFAULT_RECORDS)]
    pub records: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = workload::DEFAULT_VALUE_SIZE)]
    pub value_size: usize,
    /// Fraction of reads; overrides the workload's.
    #[arg(long)]
    pub read_ratio: Option<f64>,
    /// Key distribution: zipfian or uniform.
    #[arg(long, default_value = "zipfian")]
    pub distribution: String,
    /// Measured seconds.
    #[arg(long, default_value_t = 30.0, value_parser = crate::config::parse_seconds)]
    pub secs: f64,
    /// Warm-up seconds before the measured window (excluded from all figures).
    #[arg(long, default_value_t = 2.0, value_parser = crate::config::parse_seconds)]
    pub warmup: f64,
    /// Sessions (the seed's client goroutines) per worker CPU.
    #[arg(long, default_value_t = 8)]
    pub sessions: usize,
    /// Operations per batch (RESP: pipeline depth).
    #[arg(long, default_value_t = 8192)]
    pub batch: usize,
    /// CPUs for the workers, one pinned worker each, e.g. `1` or `2-7`
    /// (default: every CPU this process may use).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Open loop: offered load in ops/s over the whole process; latency is
    /// measured from each batch's intended send time. Default: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Base seed of the generators (default: from the clock; printed in the report).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Request timeout, seconds.
    #[arg(long, default_value_t = 10.0, value_parser = crate::config::parse_seconds)]
    pub timeout: f64,
    /// Write report.json, batch_latency.hgrm, op_latency.hgrm, latency.png and
    /// throughput.png into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No per-second progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `corekv report` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum ReportCmd {
    /// Merge reports of client processes that ran together (one cluster run):
    /// prints the table, writes merged.json, .hgrm files and plots.
    Merge {
        /// report.json files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output directory (default: print only).
        #[arg(long)]
        out: Option<PathBuf>,
        /// `corekv monitor` JSON files of the run's nodes (NAME.monitor.json;
        /// NAME labels the node): their summaries are printed and stored in
        /// merged.json as `extra.utilization`, and --out gets utilization.png.
        #[arg(long = "monitor", num_args = 1..)]
        monitors: Vec<PathBuf>,
    },
    /// Plot `corekv monitor` JSON files: node CPU %, process CPU %, process
    /// RSS and network MB/s over time, one line per file (node), in one PNG;
    /// prints the per-node summary table.
    PlotUtil {
        /// Monitor JSON files (from `corekv monitor --out`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Comma-separated node names (default: each file name without
        /// `.monitor.json`).
        #[arg(long)]
        names: Option<String>,
        /// PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Figure title (default: "corekv utilization").
        #[arg(long)]
        title: Option<String>,
    },
    /// Print a report as a table.
    Show {
        /// report.json file.
        file: PathBuf,
    },
    /// Side-by-side table of several runs, with throughput ratios.
    Compare {
        /// report.json files; the first is the reference.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Comma-separated row names (default: each report's target).
        #[arg(long)]
        names: Option<String>,
        /// Also draw their latency percentile curves into this PNG.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Plot a sweep CSV (param,value,servers,clients,ops_per_sec,
    /// seed_style_ops_per_sec,p99_batch_us): throughput against the swept
    /// parameter, one line per servers+clients combination. With several
    /// parameters in one CSV, the first goes to --out and each other one to
    /// OUT-STEM-<param>.png.
    PlotSweep {
        /// The CSV file.
        csv: PathBuf,
        /// PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Title prefix (default: "corekv").
        #[arg(long)]
        title: Option<String>,
    },
}

fn parse_hosts(s: &str) -> Vec<String> {
    s.split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

impl BenchArgs {
    /// The driver configuration these flags describe.
    pub fn to_config(&self) -> Result<DriverConfig> {
        let mut w = WorkloadConfig::from_name(&self.workload)?;
        w.theta = self.theta;
        w.records = self.records;
        w.value_size = self.value_size;
        w.distribution = Distribution::parse(&self.distribution)?;
        if let Some(r) = self.read_ratio {
            w.read_ratio = r;
        }
        w.validate()?;
        let cpus = match &self.cpus {
            Some(s) => crate::config::parse_cpu_list(s)?,
            None => crate::config::allowed_cpus(),
        };
        let base_seed = self.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            t ^ ((std::process::id() as u64) << 32)
        });
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            bail!("--timeout must be > 0");
        }
        Ok(DriverConfig {
            target: Target::parse(&self.target)?,
            hosts: parse_hosts(&self.hosts),
            workload: w,
            batch: self.batch,
            sessions_per_worker: self.sessions,
            cpus,
            secs: self.secs,
            warmup_secs: self.warmup,
            rate: self.rate,
            base_seed,
            timeout: Duration::from_secs_f64(self.timeout),
            progress: !self.quiet,
        })
    }
}

/// Runs `corekv bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let cfg = args.to_config()?;
    if !args.quiet {
        eprintln!(
            "corekv bench: {} {:?}, {} (read {:.2}, {} theta {}, {} records, {} B values), batch {}, \
             {} session(s) on each of CPUs {:?}, {} s + {} s warm-up, {}, seed {}",
            cfg.target.as_str(),
            cfg.hosts,
            cfg.workload.name,
            cfg.workload.read_ratio,
            cfg.workload.distribution,
            cfg.workload.theta,
            cfg.workload.records,
            cfg.workload.value_size,
            cfg.batch,
            cfg.sessions_per_worker,
            cfg.cpus,
            cfg.secs,
            cfg.warmup_secs,
            match cfg.rate {
                Some(r) => format!("open loop at {r:.0} op/s"),
                None => "closed loop".to_string(),
            },
            cfg.base_seed,
        );
    }
    let report = driver::run(&cfg)?;
    print!("{}", report::render_table(&report));
    if let Some(dir) = &args.out {
        write_outputs(&report, dir, "report.json")?;
        eprintln!("corekv bench: results in {}", dir.display());
    }
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    Ok(())
}

/// Short description of a run for plot titles (fits a 1000 px title).
fn describe(r: &BenchReport) -> String {
    let m = &r.meta;
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

/// Writes `json_name`, the two `.hgrm` files and the two plots into `dir`.
pub fn write_outputs(r: &BenchReport, dir: &Path, json_name: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    r.write_json(dir.join(json_name))?;
    report::write_hgrm(&r.batch_latency, dir.join("batch_latency.hgrm"))?;
    report::write_hgrm(&r.op_latency, dir.join("op_latency.hgrm"))?;
    let target = &r.meta.target;
    plot::plot_latency_percentiles(
        &[
            ("per batch (send → last reply)", &r.batch_latency),
            ("per operation (its batch's latency)", &r.op_latency),
        ],
        dir.join("latency.png"),
        &format!("{target} latency — {}", describe(r)),
    )?;
    let client: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .map(|s| {
            let len = if s.t_secs.fract() > 0.0 {
                s.t_secs.fract()
            } else {
                1.0
            };
            (s.t_secs, s.ops as f64 / len / 1e6)
        })
        .collect();
    let mut names = vec![format!(
        "client-measured ({} process{})",
        r.meta.client_processes,
        if r.meta.client_processes == 1 {
            ""
        } else {
            "es"
        }
    )];
    let mut lines = vec![client];
    for s in &r.servers {
        names.push(format!("server node {} ({})", s.node_id, s.address));
        lines.push(
            s.per_second_ops
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as f64, v / 1e6))
                .collect(),
        );
    }
    let series: Vec<(&str, &[(f64, f64)])> = names
        .iter()
        .map(|n| n.as_str())
        .zip(lines.iter().map(|l| l.as_slice()))
        .collect();
    plot::plot_timeline(
        &series,
        dir.join("throughput.png"),
        &format!("{target} throughput — {}", describe(r)),
        "Throughput (million op/s)",
    )?;
    Ok(())
}

/// Runs `corekv report`.
pub fn report(cmd: ReportCmd) -> Result<()> {
    match cmd {
        ReportCmd::Merge {
            files,
            out,
            monitors,
        } => {
            let reports = files
                .iter()
                .map(BenchReport::read_json)
                .collect::<Result<Vec<_>>>()?;
            let mut merged = report::merge(&reports)?;
            let nodes = monitors
                .iter()
                .map(|p| NodeUtilization::read(p, &monitor_name(p)))
                .collect::<Result<Vec<_>>>()?;
            if !nodes.is_empty() {
                let rows = nodes
                    .iter()
                    .map(|n| {
                        let mut v = serde_json::to_value(&n.summary)?;
                        if let serde_json::Value::Object(m) = &mut v {
                            m.insert("node".into(), n.name.clone().into());
                        }
                        Ok(v)
                    })
                    .collect::<Result<Vec<_>>>()?;
                merged.extra.insert("utilization".into(), rows.into());
            }
            print!("{}", report::render_table(&merged));
            if !nodes.is_empty() {
                print!("{}", render_utilization(&nodes));
            }
            if let Some(dir) = out {
                write_outputs(&merged, &dir, "merged.json")?;
                if !nodes.is_empty() {
                    plot_utilization(
                        &nodes,
                        dir.join("utilization.png"),
                        &utilization_title(&merged),
                    )?;
                }
                eprintln!("corekv report: merged report in {}", dir.display());
            }
        }
        ReportCmd::PlotUtil {
            files,
            names,
            out,
            title,
        } => {
            let names: Vec<String> = match names {
                Some(n) => {
                    let v: Vec<String> = n.split(',').map(|s| s.trim().to_string()).collect();
                    if v.len() != files.len() {
                        bail!("--names has {} names for {} files", v.len(), files.len());
                    }
                    v
                }
                None => files.iter().map(|p| monitor_name(p)).collect(),
            };
            let nodes = files
                .iter()
                .zip(&names)
                .map(|(p, n)| NodeUtilization::read(p, n))
                .collect::<Result<Vec<_>>>()?;
            print!("{}", render_utilization(&nodes));
            plot_utilization(
                &nodes,
                &out,
                title.as_deref().unwrap_or("corekv utilization"),
            )?;
            println!("{}", out.display());
        }
        ReportCmd::Show { file } => {
            let r = BenchReport::read_json(&file)?;
            print!("{}", report::render_table(&r));
        }
        ReportCmd::Compare { files, names, plot } => {
            let reports = files
                .iter()
                .map(BenchReport::read_json)
                .collect::<Result<Vec<_>>>()?;
            let names: Vec<String> = match names {
                Some(n) => {
                    let v: Vec<String> = n.split(',').map(|s| s.trim().to_string()).collect();
                    if v.len() != reports.len() {
                        bail!(
                            "--names has {} names for {} reports",
                            v.len(),
                            reports.len()
                        );
                    }
                    v
                }
                None => reports.iter().map(|r| r.meta.target.clone()).collect(),
            };
            let rows: Vec<(&str, &BenchReport)> = names
                .iter()
                .map(|s| s.as_str())
                .zip(reports.iter())
                .collect();
            print!("{}", report::render_comparison(&rows));
            if let Some((first_name, first)) = rows.first() {
                for (name, r) in &rows[1..] {
                    let (a, b) = (first.client_ops_per_sec(), r.client_ops_per_sec());
                    if b > 0.0 {
                        println!(
                            "{first_name} / {name}: {:.2}x throughput (client-measured)",
                            a / b
                        );
                    }
                    let (a, b) = (first.seed_style_total(), r.seed_style_total());
                    if a > 0.0 && b > 0.0 {
                        println!(
                            "{first_name} / {name}: {:.2}x throughput (seed-style, from server counters)",
                            a / b
                        );
                    }
                }
            }
            if let Some(path) = plot {
                let mut series = Vec::new();
                let labels: Vec<String> = rows
                    .iter()
                    .map(|(n, r)| format!("{n} (batch {})", r.meta.batch))
                    .collect();
                for (l, (_, r)) in labels.iter().zip(&rows) {
                    series.push((l.as_str(), &r.batch_latency));
                }
                let title = match rows.first() {
                    Some((_, r)) => format!("Batch latency — {}", describe(r)),
                    None => "Batch latency".to_string(),
                };
                plot::plot_latency_percentiles(&series, &path, &title)?;
            }
        }
        ReportCmd::PlotSweep { csv, out, title } => plot_sweep(&csv, &out, title.as_deref())?,
    }
    Ok(())
}

/// One node's `corekv monitor` file: what `corekv monitor --out` writes.
#[derive(Debug, Clone, serde::Deserialize)]
struct MonitorFile {
    samples: Vec<UtilizationSample>,
    summary: UtilizationSummary,
}

/// A named node's utilization samples and their summary.
#[derive(Debug, Clone)]
struct NodeUtilization {
    name: String,
    samples: Vec<UtilizationSample>,
    summary: UtilizationSummary,
}

impl NodeUtilization {
    fn read(path: &Path, name: &str) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
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
fn monitor_name(path: &Path) -> String {
    let file = path.file_name().and_then(|s| s.to_str()).unwrap_or("node");
    file.strip_suffix(".monitor.json")
        .or_else(|| file.strip_suffix(".json"))
        .unwrap_or(file)
        .to_string()
}

fn utilization_title(r: &BenchReport) -> String {
    format!("{} utilization — {}", r.meta.target, describe(r))
}

/// The per-node utilization table printed after a merged report.
fn render_utilization(nodes: &[NodeUtilization]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nUtilization (corekv monitor, per node; proc = the corekv process on it)"
    );
    let _ = writeln!(
        s,
        "  {:<10} {:>8} {:>9} {:>8} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "node",
        "samples",
        "cpu mean",
        "cpu max",
        "proc cpu",
        "rss max",
        "mem used",
        "rx Gbit/s",
        "tx Gbit/s"
    );
    for n in nodes {
        let u = &n.summary;
        let _ = writeln!(
            s,
            "  {:<10} {:>8} {:>8.1}% {:>7.1}% {:>9} {:>9} {:>10} {:>10.3} {:>10.3}",
            n.name,
            u.samples,
            u.mean_node_cpu_pct,
            u.max_node_cpu_pct,
            u.mean_proc_cpu_pct
                .map_or("-".to_string(), |p| format!("{p:.0}%")),
            u.max_rss_bytes
                .map_or("-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            format!("{:.2} GB", u.max_mem_used_bytes as f64 / 1e9),
            u.mean_rx_gbit_per_sec,
            u.mean_tx_gbit_per_sec,
        );
    }
    s
}

/// One PNG: node CPU busy %, process CPU %, process RSS and network rx+tx
/// over time, one line per node, time aligned across nodes by the samples'
/// wall clock (0 = start of the earliest sample interval).
fn plot_utilization(nodes: &[NodeUtilization], path: impl AsRef<Path>, title: &str) -> Result<()> {
    let t0 = nodes
        .iter()
        .flat_map(|n| n.samples.iter().map(|s| s.unix_secs - s.interval_secs))
        .fold(f64::INFINITY, f64::min);
    let series = |f: &dyn Fn(&UtilizationSample) -> Option<f64>| -> Vec<Vec<(f64, f64)>> {
        nodes
            .iter()
            .map(|n| {
                n.samples
                    .iter()
                    .filter_map(|s| f(s).map(|y| (s.unix_secs - t0, y)))
                    .collect()
            })
            .collect()
    };
    let cpu = series(&|s| Some(s.node_cpu_pct));
    let proc_cpu = series(&|s| s.proc_cpu_pct);
    let rss = series(&|s| s.proc_rss_bytes.map(|b| b as f64 / 1e6));
    let net = series(&|s| Some((s.net_rx_bytes_per_sec + s.net_tx_bytes_per_sec) / 1e6));
    fn named<'a>(
        nodes: &'a [NodeUtilization],
        lines: &'a [Vec<(f64, f64)>],
    ) -> Vec<(&'a str, &'a [(f64, f64)])> {
        nodes
            .iter()
            .zip(lines)
            .filter(|(_, l)| !l.is_empty())
            .map(|(n, l)| (n.name.as_str(), l.as_slice()))
            .collect()
    }
    let mut panels = vec![plot::TimelinePanel {
        title: "Node CPU busy",
        y_label: "CPU busy (% of all the node's CPUs)",
        series: named(nodes, &cpu),
    }];
    let proc_series = named(nodes, &proc_cpu);
    if !proc_series.is_empty() {
        panels.push(plot::TimelinePanel {
            title: "corekv process CPU",
            y_label: "CPU (% of one CPU)",
            series: proc_series,
        });
    }
    let rss_series = named(nodes, &rss);
    if !rss_series.is_empty() {
        panels.push(plot::TimelinePanel {
            title: "corekv process RSS",
            y_label: "Resident set size (MB)",
            series: rss_series,
        });
    }
    panels.push(plot::TimelinePanel {
        title: "Network, rx + tx of the counted interfaces",
        y_label: "Network (MB/s)",
        series: named(nodes, &net),
    });
    plot::plot_timeline_panels(&panels, path, title)
}

/// One row of a sweep CSV.
#[derive(Debug, Clone, PartialEq)]
struct SweepRow {
    param: String,
    value: f64,
    servers: String,
    clients: String,
    ops_per_sec: Option<f64>,
    seed_style: Option<f64>,
}

fn parse_sweep_csv(text: &str) -> Result<Vec<SweepRow>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .context("empty CSV")?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("CSV has no {name:?} column (header: {})", header.join(",")))
    };
    let (ip, iv, is, ic, io) = (
        col("param")?,
        col("value")?,
        col("servers")?,
        col("clients")?,
        col("ops_per_sec")?,
    );
    let iseed = col("seed_style_ops_per_sec").ok();
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        let num = |i: usize| get(i).parse::<f64>().ok().filter(|x| x.is_finite());
        let Some(value) = num(iv) else {
            bail!("line {}: value {:?} is not a number", n + 2, get(iv));
        };
        rows.push(SweepRow {
            param: get(ip).to_string(),
            value,
            servers: get(is).to_string(),
            clients: get(ic).to_string(),
            ops_per_sec: num(io),
            seed_style: iseed.and_then(num),
        });
    }
    Ok(rows)
}

fn plot_sweep(csv: &Path, out: &Path, title: Option<&str>) -> Result<()> {
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let rows = parse_sweep_csv(&text).with_context(|| format!("parsing {}", csv.display()))?;
    let mut params: Vec<String> = Vec::new();
    for r in &rows {
        if !params.contains(&r.param) {
            params.push(r.param.clone());
        }
    }
    if params.is_empty() {
        bail!("{}: no data rows", csv.display());
    }
    let prefix = title.unwrap_or("corekv");
    for (i, param) in params.iter().enumerate() {
        let path = if i == 0 {
            out.to_path_buf()
        } else {
            let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
            out.with_file_name(format!("{stem}-{param}.png"))
        };
        let mut combos: Vec<(String, String)> = Vec::new();
        for r in rows.iter().filter(|r| &r.param == param) {
            let c = (r.servers.clone(), r.clients.clone());
            if !combos.contains(&c) {
                combos.push(c);
            }
        }
        let plural = |n: &str, w: &str| {
            if n == "1" {
                format!("{n} {w}")
            } else {
                format!("{n} {w}s")
            }
        };
        let mut names = Vec::new();
        let mut lines = Vec::new();
        let of_param = || rows.iter().filter(|r| &r.param == param);
        if param == "nodes" {
            // The seed's 1+1, 2+2, 4+4 table: one line per way of counting.
            names.push("client-measured".to_string());
            lines.push(
                of_param()
                    .filter_map(|r| r.ops_per_sec.map(|y| (r.value, y / 1e6)))
                    .collect::<Vec<_>>(),
            );
            names.push("seed-style (sum of per-server-node medians)".to_string());
            lines.push(
                of_param()
                    .filter_map(|r| r.seed_style.map(|y| (r.value, y / 1e6)))
                    .collect::<Vec<_>>(),
            );
        } else {
            for (s, c) in &combos {
                names.push(format!(
                    "{}, {}",
                    plural(s, "server node"),
                    plural(c, "client node")
                ));
                lines.push(
                    of_param()
                        .filter(|r| &r.servers == s && &r.clients == c)
                        .filter_map(|r| r.ops_per_sec.or(r.seed_style).map(|y| (r.value, y / 1e6)))
                        .collect::<Vec<_>>(),
                );
            }
        }
        let series: Vec<(&str, &[(f64, f64)])> = names
            .iter()
            .map(|n| n.as_str())
            .zip(lines.iter().map(|l| l.as_slice()))
            .collect();
        // Powers of two (batch 512..16384, sessions 16..256, nodes 1, 2, 4)
        // get a log2 axis with a tick at each.
        let pow2 = of_param().all(|r| {
            r.value >= 1.0 && r.value.fract() == 0.0 && (r.value as u64).is_power_of_two()
        });
        let x_label = match (param.as_str(), pow2) {
            ("batch", true) => "Batch size (operations per batch, log2 scale)",
            ("batch", false) => "Batch size (operations per batch)",
            ("sessions", true) => "Sessions per client CPU (log2 scale)",
            ("sessions", false) => "Sessions per client CPU",
            ("nodes", true) => "Server nodes = client nodes (log2 scale)",
            ("nodes", false) => "Server nodes = client nodes",
            (other, _) => other,
        };
        let y_label = if param == "nodes" {
            "Throughput (million op/s)"
        } else {
            "Throughput (million op/s, client-measured)"
        };
        plot::plot_sweep(
            &series,
            &path,
            &format!("{prefix}: throughput vs {param}"),
            x_label,
            y_label,
            pow2,
        )?;
        println!("{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn flags_become_a_config() {
        let cli = Cli::parse_from([
            "x",
            "--hosts",
            "a:1, b:2",
            "--workload",
            "c",
            "--read-ratio",
            "0.5",
            "--distribution",
            "uniform",
            "--cpus",
            "0",
            "--rate",
            "1000",
            "--seed",
            "7",
            "--target",
            "redis",
        ]);
        let c = cli.bench.to_config().unwrap();
        assert_eq!(c.hosts, vec!["a:1", "b:2"]);
        assert_eq!(c.workload.name, "YCSB-C");
        assert_eq!(c.workload.read_ratio, 0.5);
        assert_eq!(c.workload.distribution, Distribution::Uniform);
        assert_eq!(c.cpus, vec![0]);
        assert_eq!(c.rate, Some(1000.0));
        assert_eq!(c.base_seed, 7);
        assert_eq!(c.target, Target::Redis);
        assert!(Cli::parse_from(["x", "--theta", "1.5"])
            .bench
            .to_config()
            .is_err());
    }

    #[test]
    fn sweep_csv_is_parsed() {
        let rows = parse_sweep_csv(
            "param,value,servers,clients,ops_per_sec,seed_style_ops_per_sec,p99_batch_us\n\
             batch,1,1,1,1000.0,,5.0\nbatch,2,1,1,,1500.0,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].ops_per_sec, Some(1000.0));
        assert_eq!(rows[1].ops_per_sec, None);
        assert_eq!(rows[1].seed_style, Some(1500.0));
        assert!(parse_sweep_csv("a,b\n1,2\n").is_err());
    }
}
