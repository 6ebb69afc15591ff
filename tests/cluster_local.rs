//! End-to-end tests of the cluster scripts (`cloudlab/run-cluster.sh`,
//! `collect.py`) in local mode: the same orchestration as on CloudLab —
//! servers started and awaited, clients started together, monitors,
//! `corekv report merge`, the summary — with every "node" on 127.0.0.1 and
//! this build's `corekv` binary. Fault tests: a server that fails to start, a
//! missing node, an unreachable node (a fake `ssh`), a client that dies; each
//! must name the node, exit non-zero and leave no process of its run behind.
//!
//! Tests run in parallel, so each gets its own port range (`PORT`), log root
//! and run tag; every run is bounded by a timeout.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cloudlab/run-cluster.sh");
const COREKV: &str = env!("CARGO_BIN_EXE_corekv");
/// Longest a run may take before the test stops it and fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Small, short workload: a run takes a few seconds even with a debug build.
const BENCH_ARGS: &str = "--secs 2 --warmup 1 --records 1000 --batch 64 --sessions 2";

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    log_root: PathBuf,
    tag: String,
}

/// A temp dir unique to this test process and `name`.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corekv-cluster-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// First base port from `want` (in steps of 1000) whose local-mode ports for
/// two servers (base, +50, +100, +150 and a few shards above each) are free.
fn free_port_base(want: u16) -> u16 {
    let mut base = want;
    loop {
        let ok = [0u16, 1, 50, 51, 100, 101, 150, 151]
            .iter()
            .all(|o| TcpListener::bind(("127.0.0.1", base + o)).is_ok());
        if ok {
            return base;
        }
        base += 1000;
        assert!(base < 32000, "no free port range found");
    }
}

/// Runs `run-cluster.sh SERVERS CLIENTS SERVER_ARGS CLIENT_ARGS` with `env`
/// (LOCAL=1 unless overridden), bounded by [`RUN_TIMEOUT`]: on timeout the
/// script gets SIGTERM (its cleanup stops what it started), then SIGKILL.
fn run_cluster(
    name: &str,
    port: u16,
    servers: u32,
    clients: u32,
    server_args: &str,
    client_args: &str,
    env: &[(&str, &str)],
) -> Run {
    let dir = temp_dir(name);
    let log_root = dir.join("logs");
    let tag = format!("ckvtest{}{}", std::process::id(), name.replace('_', ""));
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT)
        .arg(servers.to_string())
        .arg(clients.to_string())
        .arg(server_args)
        .arg(client_args)
        .env("LOCAL", "1")
        .env("COREKV_BIN", COREKV)
        .env("LOG_ROOT", &log_root)
        .env("PORT", port.to_string())
        .env("RUN_TAG", &tag)
        .env("READY_TIMEOUT", "30")
        .env("BENCH_SLACK", "30")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("running bash");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > RUN_TIMEOUT {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(20));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "run-cluster.sh ({name}) did not finish within {RUN_TIMEOUT:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        log_root,
        tag,
    }
}

/// Processes whose command line carries this run's tag (`corekv-<tag>-<name>`).
fn leftover_processes(tag: &str) -> Vec<String> {
    let needle = format!("corekv-{tag}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        // A zombie has an empty cmdline; a live process of the run has the tag.
        if cmdline.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Asserts no process of the run is left, then removes its temp dir.
fn finish(run: Run) {
    assert_nothing_left(&run);
    if let Some(dir) = run.log_root.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Asserts no process of the run is left (allowing a moment for exits).
fn assert_nothing_left(run: &Run) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = leftover_processes(&run.tag);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("processes of run {} still running: {left:#?}", run.tag);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(bytes.len() > 1000, "{} is tiny", path.display());
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
}

#[test]
fn two_servers_two_clients_merged_report() {
    let port = free_port_base(23000);
    let run = run_cluster("ok", port, 2, 2, "", BENCH_ARGS, &[]);
    assert!(
        run.status.success(),
        "run failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    let dir = run.log_root.join("latest");
    assert!(dir.is_dir(), "no logs/latest");

    let merged = json(&dir.join("merged/merged.json"));
    let ops = merged["ops_per_sec"].as_f64().unwrap();
    let seed = merged["seed_style_ops_per_sec"].as_f64().unwrap();
    assert!(ops > 0.0, "ops_per_sec {ops}");
    assert!(seed > 0.0, "seed_style_ops_per_sec {seed}");
    assert!(merged["p99_batch_us"].as_f64().unwrap() > 0.0);
    assert!(merged["batch_latency_us"]["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(merged["totals"]["errors"].as_u64(), Some(0));
    assert_eq!(merged["meta"]["client_processes"].as_u64(), Some(2));
    let mut node_ids: Vec<u64> = merged["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node_id"].as_u64().unwrap())
        .collect();
    node_ids.sort();
    assert_eq!(node_ids, vec![0, 1], "both servers in the merged report");
    for s in merged["servers"].as_array().unwrap() {
        let busy = s["per_second_ops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.as_f64().unwrap() > 0.0)
            .count();
        assert!(busy > 0, "server {s} served nothing");
    }

    // Utilization: one summary per process, each with samples; and a plot.
    let util = merged["extra"]["utilization"]
        .as_array()
        .expect("extra.utilization");
    let mut names: Vec<&str> = util.iter().map(|u| u["node"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["client0", "client1", "server0", "server1"]);
    for u in util {
        assert!(u["samples"].as_u64().unwrap() >= 1, "no samples: {u}");
        assert!(u["max_rss_bytes"].as_u64().unwrap() > 0, "no RSS: {u}");
    }
    for png in ["utilization.png", "throughput.png", "latency.png"] {
        assert_png(&dir.join("merged").join(png));
    }
    for f in [
        "client0/report.json",
        "client1/report.json",
        "server0.out",
        "server1.out",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }

    // The printed summary and summary.json (sweep.sh's input).
    assert!(run.stdout.contains("client-measured"), "{}", run.stdout);
    assert!(run.stdout.contains("seed-style"), "{}", run.stdout);
    assert!(run.stdout.contains("merged latency"), "{}", run.stdout);
    assert!(run.stdout.contains("utilization"), "{}", run.stdout);
    let summary = json(&dir.join("summary.json"));
    assert_eq!(summary["ops_per_sec"].as_f64(), Some(ops));
    assert_eq!(summary["server_nodes"].as_u64(), Some(2));
    assert_eq!(summary["errors"].as_u64(), Some(0));
    assert_eq!(summary["warnings"].as_array().map(|w| w.len()), Some(0));
    finish(run);
}

/// Network namespaces and links whose name carries `id` (the script's pid,
/// as in `ckv<id>b`).
fn netns_leftovers(id: &str) -> Vec<String> {
    let mut left = Vec::new();
    for (what, args) in [
        ("netns", &["netns", "list"][..]),
        ("link", &["-o", "link", "show"][..]),
    ] {
        let out = Command::new("ip").args(args).output().expect("ip");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.contains(&format!("ckvn{id}n")) || line.contains(&format!("ckv{id}")) {
                left.push(format!("{what}: {line}"));
            }
        }
    }
    left
}

/// `NETNS=1`: every node in its own network namespace with its own address,
/// the servers one cluster over those addresses; everything it created is
/// gone afterwards. Needs root (CI runs as root); skipped otherwise.
#[test]
fn netns_mode_gives_every_node_its_own_address() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("\n*** SKIPPING: NETNS=1 needs root ***\n");
        return;
    }
    let port = free_port_base(24000);
    let run = run_cluster("netns", port, 2, 1, "", BENCH_ARGS, &[("NETNS", "1")]);
    assert!(
        run.status.success(),
        "run failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    // "network namespaces: 3 nodes on 10.A.B.0/24 (bridge ckv<id>b)"
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("network namespaces:"))
        .unwrap_or_else(|| panic!("no namespace line:\n{}", run.stderr));
    let net = line
        .split(" on ")
        .nth(1)
        .unwrap()
        .split(".0/24")
        .next()
        .unwrap();
    let id = line
        .split("bridge ckv")
        .nth(1)
        .unwrap()
        .trim_end_matches("b)");
    for (s, ip) in [(0, format!("{net}.1")), (1, format!("{net}.2"))] {
        let want = format!(
            "--bind {ip} --cluster {net}.1:{port},{net}.2:{}",
            port + 100
        );
        assert!(
            run.stderr.contains(&want),
            "server{s} bound to its own address in one cluster ({want}):\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains(&format!("--hosts {net}.1:{port}")),
        "{}",
        run.stderr
    );
    let merged = json(&run.log_root.join("latest/merged/merged.json"));
    assert_eq!(merged["totals"]["errors"].as_u64(), Some(0));
    assert!(merged["ops_per_sec"].as_f64().unwrap() > 0.0);
    // Namespace teardown is asynchronous in the kernel: bounded wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = netns_leftovers(id);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    finish(run);
}

#[test]
fn server_that_fails_to_start_is_named() {
    let port = free_port_base(24000);
    // Server 1's native port is taken, so server 0 starts and server 1 fails.
    let _taken = TcpListener::bind(("127.0.0.1", port + 100)).unwrap();
    let run = run_cluster("srvfail", port, 2, 1, "", BENCH_ARGS, &[]);
    assert!(!run.status.success(), "run succeeded:\n{}", run.stderr);
    assert!(
        run.stderr.contains("server1") && run.stderr.contains("before it was ready"),
        "stderr does not name server1:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Address already in use"),
        "{}",
        run.stderr
    );
    finish(run);

    // An invalid flag value: the server exits at once.
    let run = run_cluster("srvbad", port, 1, 1, "--max-memory bogus", BENCH_ARGS, &[]);
    assert!(!run.status.success());
    assert!(run.stderr.contains("server0"), "{}", run.stderr);
    finish(run);
}

#[test]
fn client_that_dies_is_named() {
    let port = free_port_base(25000);
    let run = run_cluster(
        "clifail",
        port,
        1,
        2,
        "",
        "--secs 2 --warmup 1 --records 1000 --batch 64 --workload NOPE",
        &[],
    );
    assert!(!run.status.success(), "run succeeded:\n{}", run.stderr);
    assert!(
        run.stderr.contains("client on local client0") && run.stderr.contains("failed"),
        "stderr does not name the client:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("unknown workload"), "{}", run.stderr);
    finish(run);
}

#[test]
fn client_killed_mid_run_is_named() {
    let port = free_port_base(28000);
    let name = "clikill";
    // temp_dir(name) is recreated by run_cluster; this thread waits for the
    // run's client1 pidfile there, lets the bench run a moment, then kills it.
    let logs = std::env::temp_dir()
        .join(format!("corekv-cluster-{}-{name}", std::process::id()))
        .join("logs");
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let pidfile = logs.join("latest").join("client1.pid");
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                std::thread::sleep(Duration::from_millis(1500));
                // SAFETY: kill(2) on the bench process this test's script started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let run = run_cluster(
        name,
        port,
        1,
        2,
        "",
        "--secs 3 --warmup 1 --records 1000 --batch 64 --sessions 2",
        &[],
    );
    assert!(killer.join().unwrap(), "client1 never started");
    assert!(!run.status.success(), "run succeeded:\n{}", run.stderr);
    assert!(
        run.stderr.contains("client on local client1") && run.stderr.contains("status 137"),
        "stderr does not name client1:\n{}",
        run.stderr
    );
    finish(run);
}

/// A fake `ssh` in a PATH directory: logs each call to `calls`, fails like an
/// unreachable host for `deadhost`, succeeds (doing nothing) otherwise.
fn fake_ssh_dir(name: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(&format!("{name}-ssh"));
    let calls = dir.join("calls.txt");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\ncase \" $* \" in *' deadhost '*) \
         echo 'ssh: connect to host deadhost port 22: Connection timed out' >&2; exit 255;; esac\n\
         exit 0\n",
        calls.display()
    );
    let ssh = dir.join("ssh");
    std::fs::write(&ssh, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, calls)
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn missing_node_is_named_before_any_ssh() {
    let port = free_port_base(26000);
    let (bin, calls) = fake_ssh_dir("missing");
    let hosts = bin.join("hosts");
    std::fs::write(&hosts, "# one node only\n10.10.1.1\n").unwrap();
    let path = path_with(&bin);
    let run = run_cluster(
        "missing",
        port,
        1,
        2,
        "",
        BENCH_ARGS,
        &[
            ("LOCAL", "0"),
            ("HOSTS_FILE", hosts.to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("node1 (client0)") && run.stderr.contains("node2 (client1)"),
        "stderr does not name the missing nodes:\n{}",
        run.stderr
    );
    assert!(!calls.exists(), "ssh was called before the node check");
    finish(run);
    let _ = std::fs::remove_dir_all(&bin);
}

#[test]
fn unreachable_node_is_named_before_anything_starts() {
    let port = free_port_base(27000);
    let (bin, calls) = fake_ssh_dir("unreach");
    let hosts = bin.join("hosts");
    std::fs::write(&hosts, "goodhost\ndeadhost\n").unwrap();
    let path = path_with(&bin);
    let run = run_cluster(
        "unreach",
        port,
        1,
        1,
        "",
        BENCH_ARGS,
        &[
            ("LOCAL", "0"),
            ("HOSTS_FILE", hosts.to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("node1 (deadhost) [client0]") && run.stderr.contains("unreachable"),
        "stderr does not name the unreachable node:\n{}",
        run.stderr
    );
    let calls = std::fs::read_to_string(calls).unwrap();
    assert!(
        calls.lines().all(|l| l.ends_with("true'")),
        "something besides the reachability check ran over ssh:\n{calls}"
    );
    finish(run);
    let _ = std::fs::remove_dir_all(&bin);
}
