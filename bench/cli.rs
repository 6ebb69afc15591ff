//! `corekv bench` and `corekv report` command lines (`corekv::bench::cli`).
//!
//! Owns: the flags (and the seed's single-dash spellings of them,
//! [`rewrite_seed_flags`]), turning them into a [`DriverConfig`], printing
//! the readable report (or its CSV line) and writing the result files (JSON,
//! `.hgrm`, `.hlog`, PNG), and
//! reading `corekv monitor` files back for the utilization table and figure
//! of a cluster run (`report merge --monitor`, `report plot-util`).
//!
//! Must not touch: measurement (`super::driver`), report arithmetic
//! (`super::report`), figure shaping (`super::figures`) and drawing
//! (`super::plot`), sampling `/proc` (`super::sysstat`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};

use super::driver::{self, DriverConfig, Target};
use super::figures;
use super::report::{self, BenchReport};
use super::sysstat::{monitor_name, NodeUtilization};
use super::workload::{self, Distribution, WorkloadConfig};

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
    /// (a corekv RESP port), redis (any Redis-protocol server), redis-cluster
    /// (a Redis Cluster or corekv cluster: masters from CLUSTER SLOTS of the
    /// first host, each key sent to its slot's master) or memcached (text
    /// protocol: multi-gets of up to 64 keys and sets, pipelined).
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
    /// The nodes' --requirepass (native target: sent as the HELLO token).
    #[arg(long)]
    pub password: Option<String>,
    /// Writes set keys that expire after this long (e.g. 10s, 500ms):
    /// corekv's SET-with-TTL op, `SET key value PX ms` over RESP, memcached's
    /// exptime (whole seconds, rounded up).
    #[arg(long, value_parser = crate::config::parse_ttl)]
    pub ttl: Option<Duration>,
    /// Cache-aside: every generated op is a GET (the workload's read ratio
    /// is ignored; its key distribution, --theta and --records are used),
    /// and each key a batch missed is SET at the head of the session's next
    /// batch, as an application filling its cache does. The report adds the
    /// miss ratio after warm-up and over the whole run; puts are the fills.
    #[arg(long)]
    pub cache_aside: bool,
    /// How long a worker keeps polling its rings for replies before it
    /// sleeps in the kernel (e.g. 100us; 0: sleep at once). Spinning saves
    /// the wake-up of an idle CPU per round trip at the cost of that CPU's
    /// idle time.
    #[arg(long, default_value = "100us", value_parser = crate::config::parse_duration)]
    pub spin_before_park: Duration,
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
            password: self.password.clone(),
            progress: !self.quiet,
            ttl: self.ttl,
            cache_aside: self.cache_aside,
            spin_before_park: self.spin_before_park,
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

/// Writes `json_name`, the two `.hgrm` files, the `.hlog` interval log and
/// the two plots into `dir`.
pub fn write_outputs(r: &BenchReport, dir: &Path, json_name: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    r.write_json(dir.join(json_name))?;
    report::write_hgrm(&r.batch_latency, dir.join("batch_latency.hgrm"))?;
    report::write_hgrm(&r.op_latency, dir.join("op_latency.hgrm"))?;
    report::write_hlog(r, dir.join("batch_latency.hlog"))?;
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
        ReportCmd::Show { file, csv } => {
            let r = BenchReport::read_json(&file)?;
            if csv {
                print!("{}", report::csv_summary(&r));
            } else {
                print!("{}", report::render_table(&r));
            }
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
}
