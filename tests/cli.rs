//! End-to-end tests of the `corekv` binary's command line: `--version` with
//! the git commit, shell completions and man pages, `server --config FILE`
//! (keys are the flags' names, the command line wins), sizes and durations
//! with units, what STATS prints for "no memory limit", and the seed's
//! single-dash flags running a real benchmark whose report records the
//! machine, the commit, the date and the command line, and the start-up
//! lines that say how the shards' io_uring rings run and sleep.
//!
//! Servers run as child processes on loopback (`--port 0`: ephemeral ports)
//! and are stopped with SIGTERM; every child is killed when its guard drops.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Output, Stdio};

use corekv::config::allowed_cpus;

const BIN: &str = env!("CARGO_BIN_EXE_corekv");

fn corekv(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("corekv runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corekv-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `corekv server` child: its ready line's first port, its stderr's first
/// line (the effective configuration) and the rest of its stderr. SIGTERM,
/// then wait, on drop.
struct Server {
    child: Child,
    port: u16,
    config_line: String,
    err: BufReader<ChildStderr>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("corekv server starts");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut config_line = String::new();
        err.read_line(&mut config_line).unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        out.read_line(&mut ready).unwrap();
        assert!(
            ready.starts_with("corekv ready"),
            "no ready line: {ready:?} (stderr: {config_line:?})"
        );
        // `ports=A-B`
        let ports = ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ports="))
            .unwrap();
        let port = ports.split('-').next().unwrap().parse().unwrap();
        Server {
            child,
            port,
            config_line,
            err,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn cpu() -> String {
    allowed_cpus()[0].to_string()
}

#[test]
fn version_names_the_git_commit() {
    let o = corekv(&["--version"]);
    assert!(o.status.success());
    let v = stdout(&o);
    assert!(
        v.starts_with(&format!("corekv {} (git ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains(corekv::GIT_COMMIT), "{v}");
    let commit = corekv::GIT_COMMIT;
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    // In a git checkout with git installed, it is this checkout's HEAD.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(h) = head {
        if h.status.success() {
            assert_eq!(String::from_utf8_lossy(&h.stdout).trim(), commit);
        }
    }
}

#[test]
fn completions_and_man_pages_come_from_the_flags() {
    let o = corekv(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bash = stdout(&o);
    for needle in ["_corekv", "--clients", "--max-memory", "--stats-interval"] {
        assert!(bash.contains(needle), "bash completion lacks {needle}");
    }
    let o = corekv(&["completions", "zsh"]);
    assert!(o.status.success() && stdout(&o).contains("#compdef corekv"));
    assert!(!corekv(&["completions", "tcsh-nope"]).status.success());

    let o = corekv(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH corekv 1"), "{page}");
    assert!(page.contains("server"));

    let dir = temp_dir("man");
    let o = corekv(&["man", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let server_page = std::fs::read_to_string(dir.join("corekv-server.1")).unwrap();
    assert!(server_page.contains("max\\-memory"), "{server_page}");
    assert!(dir.join("corekv.1").exists());
    assert!(dir.join("corekv-bench.1").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

fn stats_json(host: &str) -> serde_json::Value {
    let o = corekv(&["stats", "--hosts", host, "--json", "--timeout", "5s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn server_reads_a_config_file_and_the_command_line_wins() {
    let dir = temp_dir("config");
    let file = dir.join("corekv.toml");
    std::fs::write(
        &file,
        format!(
            "# a corekv server\ncpus = \"{}\"\nport = 0\nno-resp = true\n\
             max-memory = \"1mb\"\nstats-interval = \"0\"\nmax-value-len = \"64kb\"\n",
            cpu()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();

    // The file alone: 1mb = 1048576 B on one shard.
    let s = Server::start(&["--config", f]);
    assert!(
        s.config_line
            .contains("max memory 1048576 B (1048576 B per shard)"),
        "{}",
        s.config_line
    );
    assert!(s.config_line.contains("value 65536 B"), "{}", s.config_line);
    assert!(s.config_line.contains("resp off"), "{}", s.config_line);
    let v = stats_json(&s.host());
    assert_eq!(v[0]["shards"][0]["memory_limit"], 1_048_576);
    drop(s);

    // The command line overrides the file; 1.5m is decimal (Redis's units).
    let s = Server::start(&["--config", f, "--max-memory", "1.5m"]);
    assert!(
        s.config_line.contains("max memory 1500000 B"),
        "{}",
        s.config_line
    );
    drop(s);

    // A key that is not a flag is refused, naming it.
    std::fs::write(&file, "max_memory = \"1mb\"\n").unwrap();
    let o = corekv(&["server", "--config", f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown key \"max_memory\""),
        "{}",
        stderr(&o)
    );
    // A file that is not TOML, and a missing file.
    std::fs::write(&file, "port = = 3\n").unwrap();
    let o = corekv(&["server", "--config", f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("config file"), "{}", stderr(&o));
    let o = corekv(&[
        "server",
        "--config",
        dir.join("nope.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn startup_says_how_shards_spin_and_sleep() {
    let cpu = cpu();
    for (extra, spin) in [
        (None, "spin before park 100 us"),
        (Some("0"), "spin before park 0 us"),
    ] {
        let mut args = vec!["--cpus", cpu.as_str(), "--port", "0", "--no-resp"];
        if let Some(v) = extra {
            args.extend(["--spin-before-park", v]);
        }
        let mut s = Server::start(&args);
        // The start-up lines precede the ready line; read at most 20.
        let mut lines = vec![s.config_line.trim_end().to_string()];
        for line in (&mut s.err).lines().map_while(Result::ok).take(20) {
            let done = line.starts_with("corekv io_uring: sleep");
            lines.push(line);
            if done {
                break;
            }
        }
        let all = lines.join("\n");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("corekv io_uring: task work") && l.ends_with(spin)),
            "{all}"
        );
        // Which sleep this kernel allows: one io_uring_enter with the timer
        // in it (5.11+) or timeout requests; MSG_RING (5.18+) or an eventfd.
        let sleep = lines.last().unwrap();
        assert!(sleep.starts_with("corekv io_uring: sleep "), "{all}");
        assert!(sleep.contains(", preemption timer "), "{all}");
    }
}

#[test]
fn no_memory_limit_is_shown_as_none() {
    let s = Server::start(&[
        "--cpus",
        &cpu(),
        "--port",
        "0",
        "--no-resp",
        "--stats-interval",
        "0",
    ]);
    assert!(
        s.config_line.contains("max memory unlimited"),
        "{}",
        s.config_line
    );
    let v = stats_json(&s.host());
    assert!(v[0]["shards"][0]["memory_limit"].is_null(), "{v}");
    let o = corekv(&["stats", "--hosts", &s.host()]);
    let table = stdout(&o);
    assert!(table.contains("none"), "{table}");
    assert!(!table.contains("18446744073709551615"), "{table}");
}

#[test]
fn bad_sizes_and_durations_are_clear_errors() {
    let o = corekv(&["server", "--max-memory", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot parse size \"lots\""),
        "{}",
        stderr(&o)
    );
    let o = corekv(&["server", "--stats-interval", "often"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot parse duration"),
        "{}",
        stderr(&o)
    );
    let o = corekv(&["bench", "-secs", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--secs"), "{}", stderr(&o));
}

#[test]
fn the_seeds_flags_run_a_benchmark() {
    let cpus = allowed_cpus();
    let (server_cpu, bench_cpu) = (cpus[0], *cpus.last().unwrap());
    let s = Server::start(&[
        "--cpus",
        &server_cpu.to_string(),
        "--port",
        "0",
        "--no-resp",
        "--stats-interval",
        "0",
    ]);
    let dir = temp_dir("seed-bench");
    let json = dir.join("report.json");
    // The seed's client arguments as its run-cluster.sh passed them, plus
    // corekv's own flags for what the seed did not have.
    let o = corekv(&[
        "bench",
        "-hosts",
        &s.host(),
        "-workload",
        "YCSB-A",
        "-theta",
        "0.9",
        "-secs",
        "1",
        "-numClients",
        "3",
        "-batchSize",
        "32",
        "--warmup",
        "200ms",
        "--records",
        "1000",
        "--cpus",
        &bench_cpu.to_string(),
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let m = &r["meta"];
    assert_eq!(m["workload"], "YCSB-A");
    assert_eq!(m["theta"], 0.9);
    assert_eq!(m["secs"], 1.0);
    assert_eq!(m["warmup_secs"], 0.2);
    assert_eq!(m["batch"], 32);
    assert_eq!(m["total_sessions"], 3);
    assert_eq!(m["sessions_per_worker"], 3);
    assert_eq!(m["corekv_commit"], corekv::GIT_COMMIT);
    assert!(m["date"].as_str().unwrap().ends_with('Z'), "{m}");
    let line: Vec<&str> = m["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(line.contains(&"-numClients"), "{line:?}");
    assert_eq!(line[1], "bench");
    assert!(m["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(!m["machine"]["kernel"].as_str().unwrap().is_empty());
    assert!(r["totals"]["ops"].as_u64().unwrap() > 0);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs a short `corekv bench` against `host` with `extra` flags.
fn short_bench(host: &str, extra: &[&str]) -> Output {
    let bench_cpu = allowed_cpus().last().unwrap().to_string();
    let mut args = vec![
        "bench",
        "--hosts",
        host,
        "--secs",
        "1",
        "--warmup",
        "0",
        "--records",
        "1000",
        "--cpus",
        &bench_cpu,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    corekv(&args)
}

#[test]
fn reports_split_get_and_set_print_csv_and_compare_only_the_same_work() {
    let s = Server::start(&[
        "--cpus",
        &cpu(),
        "--port",
        "0",
        "--no-resp",
        "--stats-interval",
        "0",
    ]);
    let dir = temp_dir("reports");
    let a = dir.join("a");
    let o = short_bench(
        &s.host(),
        &[
            "--batch",
            "1",
            "--clients",
            "2",
            "--out",
            a.to_str().unwrap(),
            "--csv",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // --csv: redis-benchmark's columns, one row, instead of the table.
    let csv = stdout(&o);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert_eq!(lines[0], corekv::bench::report::CSV_HEADER);
    assert!(
        lines[1].starts_with("\"corekv YCSB-B batch 1\",\""),
        "{csv}"
    );
    assert_eq!(lines[1].split(',').count(), 8, "{csv}");
    let rps: f64 = lines[1]
        .split(',')
        .nth(1)
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    assert!(rps > 0.0);

    let file = a.join("report.json");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let t = &r["totals"];
    let (gets, puts) = (t["gets"].as_u64().unwrap(), t["puts"].as_u64().unwrap());
    assert!(gets > 0 && puts > 0, "{t}");
    assert_eq!(r["get_latency_us"]["count"], gets);
    assert_eq!(r["set_latency_us"]["count"], puts);
    // Nothing is preloaded: the first reads of many keys miss.
    let misses = t["get_misses"].as_u64().unwrap();
    assert!(misses > 0 && misses < gets, "{t}");
    assert_eq!(r["get_hits"].as_u64().unwrap() + misses, gets);
    for png in ["latency.png", "throughput.png"] {
        assert!(
            std::fs::metadata(a.join(png)).unwrap().len() > 1000,
            "{png}"
        );
    }

    // The table: GET and SET rows at batch 1, hits and misses, no per-op row.
    let o = corekv(&["report", "show", file.to_str().unwrap()]);
    let table = stdout(&o);
    assert!(table.contains("  GET "), "{table}");
    assert!(table.contains("  SET "), "{table}");
    assert!(table.contains(&format!("misses {misses}")), "{table}");
    assert!(!table.contains("per-op"), "{table}");
    let o = corekv(&["report", "show", file.to_str().unwrap(), "--csv"]);
    assert_eq!(
        stdout(&o).lines().next(),
        Some(corekv::bench::report::CSV_HEADER)
    );

    // Same work compares; other work is refused, naming the difference.
    let o = corekv(&[
        "report",
        "compare",
        file.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b = dir.join("b.json");
    let o = short_bench(
        &s.host(),
        &[
            "--batch",
            "4",
            "--workload",
            "YCSB-C",
            "--json",
            b.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = corekv(&[
        "report",
        "compare",
        file.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("ran different work"), "{e}");
    assert!(e.contains("workload \"YCSB-C\" vs \"YCSB-B\""), "{e}");
    assert!(e.contains("batch 4 vs 1"), "{e}");
    // At batch > 1 the table says why GET and SET have no rows of their own.
    let o = corekv(&["report", "show", b.to_str().unwrap()]);
    assert!(stdout(&o).contains("GET and SET ride in the same batches"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_reads_a_config_file_too() {
    let s = Server::start(&[
        "--cpus",
        &cpu(),
        "--port",
        "0",
        "--no-resp",
        "--stats-interval",
        "0",
    ]);
    let dir = temp_dir("bench-config");
    let file = dir.join("bench.toml");
    let bench_cpu = allowed_cpus().last().unwrap().to_string();
    std::fs::write(
        &file,
        format!(
            "workload = \"YCSB-C\"\nsecs = \"1s\"\nwarmup = \"0\"\nrecords = 100\n\
             batch = 8\nclients = 1\ncpus = \"{bench_cpu}\"\nquiet = true\n"
        ),
    )
    .unwrap();
    let json = dir.join("r.json");
    let o = corekv(&[
        "bench",
        "--config",
        file.to_str().unwrap(),
        "--hosts",
        &s.host(),
        "--batch",
        "16",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["meta"]["workload"], "YCSB-C");
    assert_eq!(r["meta"]["records"], 100);
    assert_eq!(r["meta"]["batch"], 16, "the command line wins");
    assert_eq!(r["meta"]["total_sessions"], 1);
    assert_eq!(r["totals"]["puts"], 0, "YCSB-C only reads");
    std::fs::remove_dir_all(dir).unwrap();
}
