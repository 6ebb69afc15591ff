//! `corekv bench` and `corekv report` command lines (`corekv::bench::cli`).
//!
//! Owns: the flags (and the seed's single-dash spellings of them,
//! [`rewrite_seed_flags`]), turning them into a [`DriverConfig`], printing the
//! readable report and writing the result files (JSON, `.hgrm`, PNG), and
//! reading `corekv monitor` files back for the utilization table and figure
//! of a cluster run (`report merge --monitor`, `report plot-util`).
//!
//! Must not touch: measurement (`super::driver`), report arithmetic
//! (`super::report`), plot drawing (`super::plot`), sampling `/proc`
//! (`crate::sysstat`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};

use super::driver::{self, DriverConfig, Target};
use super::plot;
use super::report::{self, BenchReport, LoadMode};
use super::workload::{self, Distribution, WorkloadConfig};
use crate::sysstat::{UtilizationSample, UtilizationSummary};

/// The seed's client flags (Go's single-dash spellings) and corekv's
/// equivalents: `-numClients` counts goroutines per client machine, which is
/// `--clients` (per process), not `--sessions` (per worker CPU). The seed's
/// server flag `-port` is `--port`.
pub const SEED_FLAGS: &[(&str, &str)] = &[
    ("-hosts", "--hosts"),
    ("-theta", "--theta"),
    ("-workload", "--workload"),
    ("-secs", "--secs"),
    ("-numClients", "--clients"),
    ("-batchSize", "--batch"),
    ("-port", "--port"),
];

/// Rewrites the seed's single-dash long flags (`-numClients 128`,
/// `-batchSize=8192`, see [`SEED_FLAGS`]) into corekv's, so the seed's
/// scripts run unchanged: clap has no single-dash long flags, and would read
/// `-hosts` as `-h -o -s -t -s`. Everything after a `--` is left alone, and so
/// is every other argument.
pub fn rewrite_seed_flags(argv: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut rest = false;
    for (i, a) in argv.into_iter().enumerate() {
        if i == 0 || rest {
            out.push(a);
            continue;
        }
        if a == "--" {
            rest = true;
            out.push(a);
            continue;
        }
        let Some(s) = a.to_str() else {
            out.push(a);
            continue;
        };
        let (flag, value) = match s.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (s, None),
        };
        match SEED_FLAGS.iter().find(|(seed, _)| *seed == flag) {
            Some((_, ours)) => out.push(match value {
                Some(v) => format!("{ours}={v}").into(),
                None => (*ours).into(),
            }),
            None => out.push(a),
        }
    }
    out
}

/// `corekv bench` arguments.
#[derive(Args, Debug, Clone)]
#[command(args_override_self = true)]
pub struct BenchArgs {
    /// Read flags from this TOML file: keys are the flags' names
    /// (`workload = "YCSB-A"`, `clients = 128`, `secs = "30s"`); flags on
    /// the command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Comma-separated server addresses. corekv: any native port of each node
    /// (the client learns every shard's port); redis: each server.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub hosts: String,
    /// System under test: corekv (native batches, shard-aware), corekv-resp
    /// (a corekv RESP port), redis (any Redis-protocol server) or memcached
    /// (text protocol: multi-gets of up to 64 keys and sets, pipelined).
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
    /// Bytes per written value (e.g. 128, 1kb).
    #[arg(long, default_value_t = workload::DEFAULT_VALUE_SIZE, value_parser = crate::config::parse_size_usize)]
    pub value_size: usize,
    /// Fraction of reads; overrides the workload's.
    #[arg(long)]
    pub read_ratio: Option<f64>,
    /// Key distribution: zipfian or uniform.
    #[arg(long, default_value = "zipfian")]
    pub distribution: String,
    /// Measured time (e.g. 30s, 2m; a bare number is seconds). The seed: `-secs`.
    #[arg(long, default_value = "30s", value_parser = crate::config::parse_duration)]
    pub secs: Duration,
    /// Warm-up before the measured window, excluded from all figures (e.g. 2s).
    #[arg(long, default_value = "2s", value_parser = crate::config::parse_duration)]
    pub warmup: Duration,
    /// Sessions per worker CPU (each session is one of the seed's client
    /// goroutines: one batch in flight at a time).
    #[arg(long, default_value_t = 8, conflicts_with = "clients")]
    pub sessions: usize,
    /// Sessions of this whole process, spread evenly over the worker CPUs
    /// (the first `N mod CPUs` workers get one more): the seed's
    /// `-numClients`, goroutines per client machine. With fewer clients than
    /// CPUs, only the first N CPUs run a worker.
    #[arg(long, value_name = "N")]
    pub clients: Option<usize>,
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
    /// Request timeout (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
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
    /// Print a one-line CSV summary (redis-benchmark's `--csv` columns)
    /// instead of the table.
    #[arg(long)]
    pub csv: bool,
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
        /// Print a one-line CSV summary (redis-benchmark's `--csv` columns)
        /// instead of the table.
        #[arg(long)]
        csv: bool,
    },
    /// Side-by-side table of several runs, with throughput ratios. Runs of
    /// different work (workload, read ratio, skew, key space, value size,
    /// batch, closed vs open loop) are refused.
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
        // Fewer clients than CPUs: one worker per client, on the first CPUs.
        let mut cpus = cpus;
        if let Some(n) = self.clients {
            if n > 0 && n < cpus.len() {
                cpus.truncate(n);
            }
        }
        let base_seed = self.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            t ^ ((std::process::id() as u64) << 32)
        });
        if self.timeout.is_zero() {
            bail!("--timeout must be > 0");
        }
        Ok(DriverConfig {
            target: Target::parse(&self.target)?,
            hosts: parse_hosts(&self.hosts),
            workload: w,
            batch: self.batch,
            sessions_per_worker: self.sessions,
            total_sessions: self.clients,
            cpus,
            secs: self.secs.as_secs_f64(),
            warmup_secs: self.warmup.as_secs_f64(),
            rate: self.rate,
            base_seed,
            timeout: self.timeout,
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
             {} session(s) on CPUs {:?}, {} s + {} s warm-up, {}, seed {}",
            cfg.target.as_str(),
            cfg.hosts,
            cfg.workload.name,
            cfg.workload.read_ratio,
            cfg.workload.distribution,
            cfg.workload.theta,
            cfg.workload.records,
            cfg.workload.value_size,
            cfg.batch,
            match cfg.total_sessions {
                Some(n) => format!("{n} (--clients)"),
                None => format!("{} per CPU", cfg.sessions_per_worker),
            },
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
    let mut report = driver::run(&cfg)?;
    report.meta.command_line = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.csv {
        print!("{}", report::csv_summary(&report));
    } else {
        print!("{}", report::render_table(&report));
    }
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

/// Two footer lines for a report's plots: what built and ran it, where and
/// when, and the command line.
pub fn footer(r: &BenchReport) -> String {
    let m = &r.meta;
    let mut first = Vec::new();
    if !m.corekv_commit.is_empty() {
        first.push(format!(
            "corekv {} (git {})",
            m.tool_version, m.corekv_commit
        ));
    }
    if !m.date.is_empty() {
        first.push(m.date.clone());
    }
    let mach = &m.machine;
    if mach.cores > 0 {
        let model = if mach.cpu_model.is_empty() {
            "unknown CPU"
        } else {
            &mach.cpu_model
        };
        first.push(format!("{} × {model}, Linux {}", mach.cores, mach.kernel));
    }
    if !m.hostname.is_empty() {
        first.push(format!("host {}", m.hostname));
    }
    let mut out = first.join(" · ");
    if !m.command_line.is_empty() {
        out.push('\n');
        out.push_str(&m.command_line.join(" "));
    }
    out
}

/// Writes `json_name`, the two `.hgrm` files and the two plots into `dir`.
pub fn write_outputs(r: &BenchReport, dir: &Path, json_name: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    r.write_json(dir.join(json_name))?;
    report::write_hgrm(&r.batch_latency, dir.join("batch_latency.hgrm"))?;
    report::write_hgrm(&r.op_latency, dir.join("op_latency.hgrm"))?;
    report::write_hlog(r, dir.join("batch_latency.hlog"))?;
    let target = &r.meta.target;
    let foot = footer(r);
    let mut curves = vec![("per batch (send → last reply)", &r.batch_latency)];
    if r.meta.batch == 1 {
        // At batch 1 a batch is one operation: GET and SET apart.
        curves = vec![("GET", &r.get_latency), ("SET", &r.set_latency)];
    }
    curves.retain(|(_, h)| !h.is_empty());
    plot::plot_latency_percentiles_footed(
        &curves,
        dir.join("latency.png"),
        &format!("{target} latency — {}", describe(r)),
        &foot,
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
    plot::plot_timeline_footed(
        &series,
        dir.join("throughput.png"),
        &format!("{target} throughput — {}", describe(r)),
        "Throughput (million op/s)",
        &foot,
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
        ReportCmd::Show { file, csv } => {
            let r = BenchReport::read_json(&file)?;
            if csv {
                print!("{}", report::csv_summary(&r));
            } else {
                print!("{}", report::render_table(&r));
            }
        }
        ReportCmd::Compare { files, names, plot } => {
            let reports = files
                .iter()
                .map(BenchReport::read_json)
                .collect::<Result<Vec<_>>>()?;
            if let Some(first) = reports.first() {
                for (file, r) in files.iter().zip(&reports).skip(1) {
                    let diffs = report::workload_diffs(&first.meta, &r.meta);
                    if !diffs.is_empty() {
                        bail!(
                            "{} ran different work from {}: {}; compare runs of one workload",
                            file.display(),
                            files[0].display(),
                            diffs.join(", ")
                        );
                    }
                }
            }
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
                // Every run has the same batch (refused otherwise): the
                // title says it once, the legend names the runs.
                for (n, r) in &rows {
                    series.push((*n, &r.batch_latency));
                }
                let title = match rows.first() {
                    Some((_, r)) => format!("Batch latency — {}", describe(r)),
                    None => "Batch latency".to_string(),
                };
                let foot = rows.first().map(|(_, r)| footer(r)).unwrap_or_default();
                plot::plot_latency_percentiles_footed(&series, &path, &title, &foot)?;
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
    p99_us: Option<f64>,
}

/// Groups repeated measurements of one x into its median, min and max
/// (points in x order).
fn spread(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<plot::SweepPoint> {
    let mut by_x: Vec<(f64, Vec<f64>)> = Vec::new();
    for (x, y) in points {
        match by_x.iter_mut().find(|(x0, _)| *x0 == x) {
            Some((_, ys)) => ys.push(y),
            None => by_x.push((x, vec![y])),
        }
    }
    by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
    by_x.into_iter()
        .map(|(x, mut ys)| {
            ys.sort_by(|a, b| a.total_cmp(b));
            plot::SweepPoint {
                x,
                median: report::median(&ys),
                min: ys[0],
                max: ys[ys.len() - 1],
            }
        })
        .collect()
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
    let ip99 = col("p99_batch_us").ok();
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
            p99_us: ip99.and_then(num),
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
        let mut p99_names = Vec::new();
        let mut p99_lines = Vec::new();
        let of_param = || rows.iter().filter(|r| &r.param == param);
        if param == "nodes" {
            // The seed's 1+1, 2+2, 4+4 table: one line per way of counting.
            names.push("client-measured".to_string());
            lines.push(spread(
                of_param().filter_map(|r| r.ops_per_sec.map(|y| (r.value, y / 1e6))),
            ));
            names.push("seed-style (sum of per-server-node medians)".to_string());
            lines.push(spread(
                of_param().filter_map(|r| r.seed_style.map(|y| (r.value, y / 1e6))),
            ));
            p99_names.push("p99 batch latency".to_string());
            p99_lines.push(spread(
                of_param().filter_map(|r| r.p99_us.map(|y| (r.value, y / 1e3))),
            ));
        } else {
            for (s, c) in &combos {
                let name = format!("{}, {}", plural(s, "server node"), plural(c, "client node"));
                let combo = || of_param().filter(|r| &r.servers == s && &r.clients == c);
                lines.push(spread(combo().filter_map(|r| {
                    r.ops_per_sec.or(r.seed_style).map(|y| (r.value, y / 1e6))
                })));
                p99_lines.push(spread(
                    combo().filter_map(|r| r.p99_us.map(|y| (r.value, y / 1e3))),
                ));
                names.push(name.clone());
                p99_names.push(name);
            }
        }
        let repeated = lines.iter().flatten().any(|p| p.max > p.min);
        let series: Vec<(&str, &[plot::SweepPoint])> = names
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
            ("sessions", true) => "Sessions per client node (log2 scale)",
            ("sessions", false) => "Sessions per client node",
            ("nodes", true) => "Server nodes = client nodes (log2 scale)",
            ("nodes", false) => "Server nodes = client nodes",
            (other, _) => other,
        };
        let y_label = if param == "nodes" {
            "Throughput (million op/s)"
        } else {
            "Throughput (million op/s, client-measured)"
        };
        let note = if repeated {
            " (median, bars: min–max)"
        } else {
            ""
        };
        plot::plot_sweep_ranges(
            &series,
            &path,
            &format!("{prefix}: throughput vs {param}{note}"),
            x_label,
            y_label,
            pow2,
        )?;
        println!("{}", path.display());
        // p99 batch latency against the same parameter, when the CSV has it.
        if p99_lines.iter().any(|l| !l.is_empty()) {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
            let p99_path = path.with_file_name(format!("{stem}-p99.png"));
            let p99_series: Vec<(&str, &[plot::SweepPoint])> = p99_names
                .iter()
                .map(|n| n.as_str())
                .zip(p99_lines.iter().map(|l| l.as_slice()))
                .collect();
            plot::plot_sweep_ranges(
                &p99_series,
                &p99_path,
                &format!("{prefix}: p99 batch latency vs {param}{note}"),
                x_label,
                "p99 batch latency (ms)",
                pow2,
            )?;
            println!("{}", p99_path.display());
        }
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

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn seed_spellings_are_rewritten() {
        let argv = os(&[
            "corekv",
            "bench",
            "-hosts",
            "a:1,b:2",
            "-theta=0.9",
            "-workload",
            "YCSB-A",
            "-secs",
            "5",
            "-numClients",
            "128",
            "-batchSize",
            "8192",
            "--cpus",
            "0",
        ]);
        assert_eq!(
            rewrite_seed_flags(argv),
            os(&[
                "corekv",
                "bench",
                "--hosts",
                "a:1,b:2",
                "--theta=0.9",
                "--workload",
                "YCSB-A",
                "--secs",
                "5",
                "--clients",
                "128",
                "--batch",
                "8192",
                "--cpus",
                "0",
            ])
        );
        // argv[0], other arguments, values and everything after `--` stay.
        let argv = os(&["-secs", "put", "-numClientsX", "-hosts", "--", "-secs"]);
        assert_eq!(
            rewrite_seed_flags(argv),
            os(&["-secs", "put", "-numClientsX", "--hosts", "--", "-secs"])
        );
        // And the rewritten line parses to the seed's meaning.
        let argv = rewrite_seed_flags(os(&[
            "x",
            "-hosts",
            "h:1",
            "-numClients",
            "6",
            "-batchSize",
            "64",
            "-secs",
            "2m",
            "-workload",
            "YCSB-C",
            "-theta",
            "0.5",
            "--cpus",
            "0",
        ]));
        let c = Cli::parse_from(argv).bench.to_config().unwrap();
        assert_eq!(c.hosts, vec!["h:1"]);
        assert_eq!(c.total_sessions, Some(6));
        assert_eq!(c.total_sessions(), 6);
        assert_eq!(c.batch, 64);
        assert_eq!(c.secs, 120.0);
        assert_eq!(c.workload.name, "YCSB-C");
        assert_eq!(c.workload.theta, 0.5);
    }

    #[test]
    fn clients_spread_over_workers() {
        let mut c = DriverConfig::new(vec!["h:1".into()], vec![0, 1, 2, 3]);
        c.total_sessions = Some(10);
        let per: Vec<usize> = (0..4).map(|w| c.sessions_of(w)).collect();
        assert_eq!(per, vec![3, 3, 2, 2]);
        assert_eq!(c.total_sessions(), 10);
        c.total_sessions = None;
        c.sessions_per_worker = 5;
        assert_eq!(c.sessions_of(3), 5);
        assert_eq!(c.total_sessions(), 20);
        // --clients and --sessions exclude each other.
        assert!(Cli::try_parse_from(["x", "--clients", "4", "--sessions", "2"]).is_err());
        // Fewer clients than CPUs: one worker each.
        let c = Cli::parse_from(["x", "--clients", "1", "--cpus", "0-3"])
            .bench
            .to_config()
            .unwrap();
        assert_eq!(c.cpus, vec![0]);
        assert_eq!(c.total_sessions(), 1);
    }

    #[test]
    fn durations_and_sizes_take_units() {
        let cli = Cli::parse_from([
            "x",
            "--secs",
            "1m30s",
            "--warmup",
            "500ms",
            "--timeout",
            "2",
            "--value-size",
            "1kb",
            "--cpus",
            "0",
        ]);
        let c = cli.bench.to_config().unwrap();
        assert_eq!(c.secs, 90.0);
        assert_eq!(c.warmup_secs, 0.5);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.workload.value_size, 1024);
        assert_eq!(
            Cli::parse_from(["x", "--value-size", "1k"])
                .bench
                .value_size,
            1000
        );
        assert!(Cli::try_parse_from(["x", "--secs", "soon"]).is_err());
        assert!(Cli::try_parse_from(["x", "--value-size", "big"]).is_err());
        // A later flag overrides an earlier one (a config file's flags come first).
        assert_eq!(
            Cli::parse_from(["x", "--batch", "1", "--batch", "2"])
                .bench
                .batch,
            2
        );
    }

    #[test]
    fn sweeps_plot_repeats_and_p99() {
        let pts = spread([(2.0, 5.0), (1.0, 1.0), (2.0, 3.0), (2.0, 4.0)]);
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].x, 1.0);
        assert_eq!((pts[1].min, pts[1].median, pts[1].max), (3.0, 4.0, 5.0));

        let dir = std::env::temp_dir().join(format!("corekv-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("sweep.csv");
        let mut text =
            "param,value,servers,clients,ops_per_sec,seed_style_ops_per_sec,p99_batch_us\n"
                .to_string();
        for rep in 0..3 {
            for b in [1, 2, 4, 8] {
                text.push_str(&format!(
                    "batch,{b},1,1,{},,{}\n",
                    1e5 * b as f64 + 1e4 * rep as f64,
                    100.0 * b as f64 + rep as f64
                ));
            }
            text.push_str(&format!("sessions,4,1,1,{},,\n", 5e5 + rep as f64));
        }
        std::fs::write(&csv, text).unwrap();
        let out = dir.join("sweep.png");
        plot_sweep(&csv, &out, Some("test")).unwrap();
        for f in ["sweep.png", "sweep-p99.png", "sweep-sessions.png"] {
            let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
            assert!(len > 1000, "{f} missing");
        }
        // No p99 data for sessions: no p99 plot for it.
        assert!(!dir.join("sweep-sessions-p99.png").exists());
        std::fs::remove_dir_all(dir).unwrap();
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
