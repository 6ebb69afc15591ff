//! Who gets in: `--requirepass` (native HELLO token; RESP AUTH and HELLO …
//! AUTH, compared byte for byte with a real redis-server started with the
//! same password) and protected mode, tested from a non-loopback address:
//! a veth pair into a network namespace the test creates and removes.
//!
//! The namespace tests need root (they create interfaces); without root they
//! are skipped with a loud message unless `CI` is set, in which case they
//! fail. The redis-server comparisons likewise need /usr/bin/redis-server.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corekv::client::blocking::BlockingClient;
use corekv::client::{ClientOptions, OwnedResult};
use corekv::config::{allowed_cpus, ServerConfig};
use corekv::server::{run, ServerHandle};

const DEADLINE: Duration = Duration::from_secs(10);

fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> ServerHandle {
    let cpus: Vec<usize> = allowed_cpus().into_iter().take(2).collect();
    let mut cfg = ServerConfig::ephemeral(cpus);
    tweak(&mut cfg);
    run(&cfg).expect("server starts")
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// A prerequisite is missing: skip loudly, or fail under CI.
fn missing(what: &str) {
    if in_ci() {
        panic!("{what}, and CI is set");
    }
    eprintln!("SKIP: {what}");
}

/// Sends `bytes` and reads until the peer closes or `done` holds.
fn exchange(s: &mut TcpStream, bytes: &[u8], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    if !bytes.is_empty() {
        let _ = s.write_all(bytes);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let start = Instant::now();
    while !done(&got) && start.elapsed() < DEADLINE {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// True once `n` complete RESP replies have arrived.
fn replies(n: usize) -> impl Fn(&[u8]) -> bool {
    move |b: &[u8]| {
        let mut count = 0;
        let mut pos = 0;
        while let Some(end) = corekv::protocol::resp::skip_reply(&b[pos..]).ok().flatten() {
            pos += end.consumed;
            count += 1;
        }
        count >= n
    }
}

fn cmd(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    corekv::protocol::resp::encode_command(&mut out, &a);
    out
}

// ---------------------------------------------------------------------------
// A real redis-server to compare with
// ---------------------------------------------------------------------------

struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts redis-server on a free port with `args`; `None` (after a loud
/// skip, or a failure under CI) when it is not installed.
fn redis(args: &[&str]) -> Option<Redis> {
    if !std::path::Path::new("/usr/bin/redis-server").exists() {
        missing("/usr/bin/redis-server is not installed");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_s = port.to_string();
    let mut all = vec!["--port", &port_s, "--save", "", "--appendonly", "no"];
    all.extend_from_slice(args);
    let child = Command::new("/usr/bin/redis-server")
        .args(&all)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < DEADLINE, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Redis { child, port })
}

// ---------------------------------------------------------------------------
// Native protocol: HELLO token
// ---------------------------------------------------------------------------

fn client(h: &ServerHandle, password: Option<&str>) -> Result<BlockingClient, String> {
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        password: password.map(str::to_string),
        ..Default::default()
    };
    BlockingClient::connect(&[h.addr().to_string()], options).map_err(|e| e.to_string())
}

#[test]
fn native_requires_the_hello_token() {
    let h = start_with(|c| c.security.requirepass = Some("s3cret".into()));
    let c = client(&h, Some("s3cret")).expect("right token connects");
    assert_eq!(c.put(b"k", b"v").unwrap(), OwnedResult::Ok);
    assert_eq!(c.get(b"k").unwrap(), OwnedResult::Value(b"v".to_vec()));
    let e = client(&h, None).err().expect("no token is refused");
    assert!(e.contains("NOAUTH"), "{e}");
    let e = client(&h, Some("guess"))
        .err()
        .expect("a wrong token is refused");
    assert!(e.contains("WRONGPASS"), "{e}");
    // A raw batch frame before HELLO gets the NOAUTH error frame.
    let mut s = TcpStream::connect(h.addr()).unwrap();
    let mut batch = corekv::protocol::native::Batch::default();
    batch.get(b"k");
    let mut out = Vec::new();
    corekv::protocol::native::encode_archived(
        &mut out,
        corekv::protocol::native::FrameKind::Batch,
        1,
        &batch,
    )
    .unwrap();
    let got = exchange(&mut s, &out, |_| false);
    assert!(
        String::from_utf8_lossy(&got).contains("NOAUTH"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

// ---------------------------------------------------------------------------
// Protected mode, from another network namespace
// ---------------------------------------------------------------------------

/// A network namespace joined to this one by a veth pair; removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    /// Creates the namespace, or skips (`None`) when not root and not CI.
    fn create(tag: &str) -> Option<Netns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            missing("protected-mode tests need root to create a network namespace");
            return None;
        }
        let pid = std::process::id();
        let name = format!("ckv-{tag}-{pid}");
        let host_if = format!("ckh{tag}{}", pid % 100_000);
        let ns_if = format!("ckn{tag}{}", pid % 100_000);
        let (a, b) = (
            (pid % 200) as u8 + 20,
            ((pid / 200) % 60) as u8 * 4 + tag.len() as u8 % 4,
        );
        let host_ip = Ipv4Addr::new(10, a, b, 1);
        let ns_ip = Ipv4Addr::new(10, a, b, 2);
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip,
        };
        let ok = ip(&["netns", "add", &name])
            && ip(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ])
            && ip(&["link", "set", &ns_if, "netns", &name])
            && ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])
            && ip(&["link", "set", &host_if, "up"])
            && ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                &ns_if,
            ])
            && ip(&["-n", &name, "link", "set", &ns_if, "up"])
            && ip(&["-n", &name, "link", "set", "lo", "up"]);
        assert!(ok, "creating network namespace {name} failed");
        Some(ns)
    }

    /// A TCP connection to `addr` made from inside the namespace (the socket
    /// is created on a thread that joined it; it stays in it).
    fn connect(&self, addr: SocketAddr) -> TcpStream {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only, with a namespace fd we own.
            let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            let s = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect from netns");
            s.set_read_timeout(Some(DEADLINE)).unwrap();
            s
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["link", "del", &self.host_if]);
        ip(&["netns", "del", &self.name]);
    }
}

fn on_all(h: &ServerHandle) -> (u16, u16) {
    (h.addr().port(), h.resp_addr.unwrap().port())
}

#[test]
fn protected_mode_refuses_other_hosts_like_redis() {
    let Some(ns) = Netns::create("p") else { return };
    let to = |port: u16| SocketAddr::new(IpAddr::V4(ns.host_ip), port);

    // Default: protected mode on, no password.
    let h = start_with(|c| c.bind = "0.0.0.0".parse().unwrap());
    let (native, resp) = on_all(&h);
    let mut s = ns.connect(to(resp));
    let denied = exchange(&mut s, &cmd(&["PING"]), |_| false);
    assert!(
        denied.starts_with(b"-DENIED Redis is running in protected mode"),
        "{:?}",
        String::from_utf8_lossy(&denied)
    );
    let mut s = ns.connect(to(native));
    let got = exchange(&mut s, &[], |_| false);
    assert!(
        String::from_utf8_lossy(&got).contains("protected mode"),
        "native: {:?}",
        String::from_utf8_lossy(&got)
    );
    // Loopback clients are served as usual.
    let mut s = TcpStream::connect(("127.0.0.1", resp)).unwrap();
    assert_eq!(exchange(&mut s, &cmd(&["PING"]), replies(1)), b"+PONG\r\n");

    // The same bytes as redis-server in the same situation.
    if let Some(r) = redis(&[]) {
        let mut s = ns.connect(to(r.port));
        let theirs = exchange(&mut s, &cmd(&["PING"]), |_| false);
        assert_eq!(
            String::from_utf8_lossy(&denied),
            String::from_utf8_lossy(&theirs)
        );
    }
    drop(h);

    // --protected-mode no: everyone is served.
    let h = start_with(|c| {
        c.bind = "0.0.0.0".parse().unwrap();
        c.security.protected_mode = false;
    });
    let (_, resp) = on_all(&h);
    let mut s = ns.connect(to(resp));
    assert_eq!(exchange(&mut s, &cmd(&["PING"]), replies(1)), b"+PONG\r\n");
    drop(h);

    // A password replaces protected mode: other hosts may connect, and must
    // authenticate.
    let h = start_with(|c| {
        c.bind = "0.0.0.0".parse().unwrap();
        c.security.requirepass = Some("s3cret".into());
    });
    let (native, _) = on_all(&h);
    let mut s = ns.connect(to(native));
    let mut out = Vec::new();
    corekv::protocol::native::encode_frame::<()>(
        &mut out,
        corekv::protocol::native::FrameKind::Hello,
        1,
        |o| {
            o.extend_from_slice(b"s3cret");
            Ok(())
        },
    )
    .unwrap();
    let got = exchange(&mut s, &out, |b| b.len() >= 16);
    assert_eq!(got.get(3), Some(&0x82), "HELLO reply from another host");
}

// ---------------------------------------------------------------------------
// RESP: AUTH and HELLO … AUTH, byte for byte against redis-server
// ---------------------------------------------------------------------------

/// One connection to each server; every command's reply must be the same
/// bytes, except HELLO's map (server version and client id differ), which
/// must have the same shape.
fn same_replies(ours: u16, theirs: u16, commands: &[&[&str]]) {
    let mut a = TcpStream::connect(("127.0.0.1", ours)).unwrap();
    let mut b = TcpStream::connect(("127.0.0.1", theirs)).unwrap();
    for c in commands {
        let x = exchange(&mut a, &cmd(c), replies(1));
        let y = exchange(&mut b, &cmd(c), replies(1));
        let hello_ok = c[0].eq_ignore_ascii_case("hello") && y.starts_with(b"*14\r\n");
        if hello_ok {
            assert!(
                x.starts_with(b"*14\r\n"),
                "{c:?}: {:?}",
                String::from_utf8_lossy(&x)
            );
        } else {
            assert_eq!(
                String::from_utf8_lossy(&x),
                String::from_utf8_lossy(&y),
                "{c:?}: corekv (left) and redis-server (right) differ"
            );
        }
    }
}

#[test]
fn auth_matches_redis_with_requirepass() {
    let Some(r) = redis(&["--requirepass", "s3cret"]) else {
        return;
    };
    let h = start_with(|c| c.security.requirepass = Some("s3cret".into()));
    let ours = h.resp_addr.unwrap().port();
    same_replies(
        ours,
        r.port,
        &[
            &["PING"],
            &["GET", "k"],
            &["SET", "k", "v"],
            &["GET"],
            &["NOSUCHCOMMAND", "x"],
            &["HELLO"],
            &["HELLO", "2"],
            &["HELLO", "2", "SETNAME", "me"],
            &["HELLO", "2", "AUTH", "default", "wrong"],
            &["HELLO", "2", "AUTH", "default"],
            &["HELLO", "two"],
            &["AUTH", "wrong"],
            &["AUTH", "default", "wrong"],
            &["AUTH", "nobody", "s3cret"],
            &["AUTH", "a", "b", "c"],
            &["AUTH"],
            &["PING"],
            &["AUTH", "s3cret"],
            &["PING"],
            &["SET", "k", "v"],
            &["GET", "k"],
            &["AUTH", "wrong"],
            &["PING"],
        ],
    );
    same_replies(
        ours,
        r.port,
        &[&["AUTH", "default", "s3cret"], &["GET", "k"]],
    );
    same_replies(
        ours,
        r.port,
        &[
            &["HELLO", "2", "AUTH", "default", "s3cret", "SETNAME", "me"],
            &["CLIENT", "GETNAME"],
            &["GET", "k"],
        ],
    );
    // QUIT works before AUTH.
    same_replies(ours, r.port, &[&["QUIT"]]);
}

#[test]
fn auth_matches_redis_without_a_password() {
    let Some(r) = redis(&[]) else { return };
    let h = start_with(|_| {});
    let ours = h.resp_addr.unwrap().port();
    same_replies(
        ours,
        r.port,
        &[
            &["AUTH", "anything"],
            &["AUTH", "default", "anything"],
            &["AUTH", "nobody", "anything"],
            &["HELLO", "2", "AUTH", "default", "anything"],
            &["HELLO", "2", "AUTH", "nobody", "anything"],
            &["PING"],
        ],
    );
}

#[test]
fn bench_and_cli_give_the_password() {
    let h = start_with(|c| c.security.requirepass = Some("s3cret".into()));
    let host = h.addr().to_string();
    let bin = env!("CARGO_BIN_EXE_corekv");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run corekv");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let cpu = allowed_cpus()[0].to_string();
    let bench = [
        "bench",
        "--hosts",
        &host,
        "--cpus",
        &cpu,
        "--sessions",
        "1",
        "--batch",
        "16",
        "--records",
        "1000",
        "--secs",
        "0.3",
        "--warmup",
        "0",
        "--quiet",
    ];
    let (code, text) = run(&[&bench[..], &["--password", "s3cret"]].concat());
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&bench);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("NOAUTH"), "{text}");
    let (code, text) = run(&["put", "k", "v", "--hosts", &host, "--password", "s3cret"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["get", "k", "--hosts", &host, "--password", "wrong"]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("WRONGPASS"), "{text}");
}
