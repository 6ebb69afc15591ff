//! `corekv bench` and `corekv report` command lines (`corekv::bench::cli`).
//!
//! Owns: the flags, turning them into a [`DriverConfig`], printing the
//! readable report and writing the result files (JSON, `.hgrm`, PNG), and
//! reading `corekv monitor` files back for the utilization table and figure
//! of a cluster run (`report merge --monitor`, `report plot-util`).
//!
//! Must not touch: measurement (`super::driver`), report arithmetic
//! (`super::report`), figure shaping (`super::figures`) and drawing
//! (`super::plot`), sampling `/proc` (`super::sysstat`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};

use super::driver::{self, DriverConfig, Target};
use super::figures;
use super::report::{self, BenchReport};
use super::sysstat::{monitor_name, NodeUtilization};
use super::workload::{self, Distribution, WorkloadConfig};

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
    #[arg(long, default_value_t = 30.0)]
    pub secs: f64,
    /// Warm-up seconds before the measured window (excluded from all figures).
    #[arg(long, default_value_t = 2.0)]
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
    #[arg(long, default_value_t = 10.0)]
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

/// Writes `json_name`, the two `.hgrm` files and the two plots into `dir`.
pub fn write_outputs(r: &BenchReport, dir: &Path, json_name: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    r.write_json(dir.join(json_name))?;
    report::write_hgrm(&r.batch_latency, dir.join("batch_latency.hgrm"))?;
    report::write_hgrm(&r.op_latency, dir.join("op_latency.hgrm"))?;
    figures::plot_run(r, dir)?;
    Ok(())
}

/// Runs `corekv report`.
pub fn report(cmd: ReportCmd) -> Result<()> {
    match cmd {
        ReportCmd::Merge {
            files,
            out,
            monitors,
        } => report_merge(&files, out.as_deref(), &monitors),
        ReportCmd::PlotUtil {
            files,
            names,
            out,
            title,
        } => report_plot_util(&files, names.as_deref(), &out, title.as_deref()),
        ReportCmd::Show { file } => {
            let r = BenchReport::read_json(&file)?;
            print!("{}", report::render_table(&r));
            Ok(())
        }
        ReportCmd::Compare { files, names, plot } => {
            report_compare(&files, names.as_deref(), plot.as_deref())
        }
        ReportCmd::PlotSweep { csv, out, title } => {
            figures::plot_sweep(&csv, &out, title.as_deref())
        }
    }
}

/// Reads JSON reports.
fn read_reports(files: &[PathBuf]) -> Result<Vec<BenchReport>> {
    files.iter().map(BenchReport::read_json).collect()
}

/// `--names a,b,c` for `n` inputs, or the defaults.
fn names_for(
    names: Option<&str>,
    n: usize,
    what: &str,
    default: impl Fn(usize) -> String,
) -> Result<Vec<String>> {
    match names {
        Some(list) => {
            let v: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
            if v.len() != n {
                bail!("--names has {} names for {} {what}", v.len(), n);
            }
            Ok(v)
        }
        None => Ok((0..n).map(default).collect()),
    }
}

/// `corekv report merge`: one report from several client processes, with
/// the nodes' utilization when monitor files are given.
fn report_merge(files: &[PathBuf], out: Option<&Path>, monitors: &[PathBuf]) -> Result<()> {
    let mut merged = report::merge(&read_reports(files)?)?;
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
        write_outputs(&merged, dir, "merged.json")?;
        if !nodes.is_empty() {
            figures::plot_utilization(
                &nodes,
                dir.join("utilization.png"),
                &figures::utilization_title(&merged),
            )?;
        }
        eprintln!("corekv report: merged report in {}", dir.display());
    }
    Ok(())
}

/// `corekv report plot-util`: the utilization table and figure of monitor files.
fn report_plot_util(
    files: &[PathBuf],
    names: Option<&str>,
    out: &Path,
    title: Option<&str>,
) -> Result<()> {
    let names = names_for(names, files.len(), "files", |i| monitor_name(&files[i]))?;
    let nodes = files
        .iter()
        .zip(&names)
        .map(|(p, n)| NodeUtilization::read(p, n))
        .collect::<Result<Vec<_>>>()?;
    print!("{}", render_utilization(&nodes));
    figures::plot_utilization(&nodes, out, title.unwrap_or("corekv utilization"))?;
    println!("{}", out.display());
    Ok(())
}

/// `corekv report compare`: side by side, throughput ratios, and optionally
/// the batch latency curves in one figure.
fn report_compare(files: &[PathBuf], names: Option<&str>, plot: Option<&Path>) -> Result<()> {
    let reports = read_reports(files)?;
    let names = names_for(names, reports.len(), "reports", |i| {
        reports[i].meta.target.clone()
    })?;
    let rows: Vec<(&str, &BenchReport)> = names
        .iter()
        .map(|s| s.as_str())
        .zip(reports.iter())
        .collect();
    print!("{}", report::render_comparison(&rows));
    print!("{}", report::render::render_ratios(&rows));
    if let Some(path) = plot {
        figures::plot_comparison(&rows, path)?;
    }
    Ok(())
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
            crate::units::si_bytes(u.max_mem_used_bytes),
            u.mean_rx_gbit_per_sec,
            u.mean_tx_gbit_per_sec,
        );
    }
    s
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
}
