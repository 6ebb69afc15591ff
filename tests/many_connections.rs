//! 1,000 connections at once, each doing unpipelined request/response —
//! the way ordinary clients talk (issue 9). Over RESP and over the native
//! protocol, every connection owns a key; in each round every connection
//! sends one request (a write of a value unique to the connection and the
//! round, or a read of what it wrote last) and only then are the replies
//! read, so a thousand requests are in flight together while each
//! connection has one outstanding. Every reply must arrive, in order, on the
//! connection that asked — a read returns that connection's own latest value,
//! a native reply echoes that connection's request id.
//!
//! Bounded: a fixed number of rounds, sockets with read timeouts (a lost
//! reply fails the test instead of hanging it); no timing assertions. Runs
//! once with cooperative task work and multishot read polls (the defaults),
//! once with `coop_taskrun` off and once with `multishot_poll` off, so every
//! ring mode and both ways of waiting for a request carry the load, and
//! checks the modes the server reports (cooperative on Linux 5.19+,
//! multishot on 5.13+, unless turned off).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::start_with;
use corekv::op::OpResult;
use corekv::protocol::native::{
    encode_archived, padded, Batch, FrameHeader, FrameKind, ReplyView, HEADER_LEN,
};
use rkyv::util::AlignedVec;

const CONNECTIONS: usize = 1000;
/// Rounds per test: even rounds write, odd rounds read the value just written.
const ROUNDS: usize = 6;
/// Client threads; each drives CONNECTIONS / THREADS connections.
const THREADS: usize = 4;

/// Two descriptors per connection live in this process (client and server
/// ends), plus the test harness's own.
fn raise_nofile(needed: u64) {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        if r.rlim_cur < needed {
            r.rlim_cur = needed.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        }
        assert!(
            r.rlim_cur >= needed,
            "RLIMIT_NOFILE is {} (hard {}), the test needs {needed}",
            r.rlim_cur,
            r.rlim_max
        );
    }
}

/// Whether the running kernel is at least `major.minor` (uname's release).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn key(conn: usize) -> String {
    format!("many:{conn}")
}

fn value(conn: usize, round: usize) -> String {
    format!("value-of-connection-{conn}-round-{round}")
}

/// Reads one RESP reply line or bulk string (the test only sees `+OK` and
/// bulk strings) byte by byte from `s`: exact framing, nothing read past it.
fn read_resp(s: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut b).expect("RESP reply");
        line.push(b[0]);
        assert!(line.len() < 128, "runaway reply line {line:?}");
    }
    if line[0] != b'$' {
        return line;
    }
    let n: usize = std::str::from_utf8(&line[1..line.len() - 2])
        .unwrap()
        .parse()
        .expect("bulk length");
    let mut body = vec![0; n + 2];
    s.read_exact(&mut body).expect("bulk body");
    let mut out = line;
    out.extend_from_slice(&body);
    out
}

fn resp_worker(addr: SocketAddr, first: usize, count: usize) {
    let mut conns: Vec<TcpStream> = (0..count).map(|_| connect(addr)).collect();
    for round in 0..ROUNDS {
        for (i, s) in conns.iter_mut().enumerate() {
            let c = first + i;
            let (k, v) = (key(c), value(c, round - round % 2));
            let req = if round % 2 == 0 {
                format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                    k.len(),
                    v.len()
                )
            } else {
                format!("*2\r\n$3\r\nGET\r\n${}\r\n{k}\r\n", k.len())
            };
            s.write_all(req.as_bytes()).expect("send");
        }
        for (i, s) in conns.iter_mut().enumerate() {
            let c = first + i;
            let got = read_resp(s);
            let want = if round % 2 == 0 {
                b"+OK\r\n".to_vec()
            } else {
                let v = value(c, round - 1);
                format!("${}\r\n{v}\r\n", v.len()).into_bytes()
            };
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "RESP connection {c}, round {round}"
            );
        }
    }
}

fn native_worker(addr: SocketAddr, first: usize, count: usize) {
    let mut conns: Vec<TcpStream> = (0..count).map(|_| connect(addr)).collect();
    let mut out = Vec::new();
    let mut payload = AlignedVec::<16>::new();
    for round in 0..ROUNDS {
        for (i, s) in conns.iter_mut().enumerate() {
            let c = first + i;
            let mut batch = Batch::default();
            if round % 2 == 0 {
                batch.put(key(c).as_bytes(), value(c, round).as_bytes());
            } else {
                batch.get(key(c).as_bytes());
            }
            out.clear();
            let id = (c * ROUNDS + round) as u64;
            encode_archived(&mut out, FrameKind::Batch, id, &batch).unwrap();
            s.write_all(&out).expect("send");
        }
        for (i, s) in conns.iter_mut().enumerate() {
            let c = first + i;
            let mut h = [0u8; HEADER_LEN];
            s.read_exact(&mut h).expect("reply header");
            let h = FrameHeader::parse(&h, 1 << 20).expect("reply header parses");
            assert_eq!(
                h.kind,
                FrameKind::BatchReply,
                "connection {c}, round {round}"
            );
            assert_eq!(
                h.request_id,
                (c * ROUNDS + round) as u64,
                "native connection {c}, round {round}: reply to another request"
            );
            payload.clear();
            payload.resize(padded(h.len), 0);
            s.read_exact(&mut payload).expect("reply payload");
            let view = ReplyView::new(&payload[..h.len], 1).expect("reply decodes");
            let want = value(c, round - round % 2);
            match (round % 2, view.get(0)) {
                (0, OpResult::Ok) => {}
                (1, OpResult::Value(v)) => assert_eq!(
                    v,
                    want.as_bytes(),
                    "native connection {c}, round {round}: another connection's value"
                ),
                (_, other) => panic!("native connection {c}, round {round}: {other:?}"),
            }
        }
    }
}

fn run_all(addr: SocketAddr, worker: fn(SocketAddr, usize, usize)) {
    let per = CONNECTIONS / THREADS;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| s.spawn(move || worker(addr, t * per, per)))
            .collect();
        for h in handles {
            h.join().expect("client thread");
        }
    });
}

fn thousand_connections(coop_taskrun: bool, multishot_poll: bool) {
    raise_nofile(4 * CONNECTIONS as u64 + 256);
    let server = start_with(0, 1, |c| {
        c.coop_taskrun = coop_taskrun;
        c.multishot_poll = multishot_poll;
    });
    // Cooperative task work needs Linux 5.19; on an older kernel the server
    // falls back to interrupt-mode rings, and says so.
    let expected = if coop_taskrun && kernel_at_least(5, 19) {
        glommio::TaskRunMode::Cooperative
    } else {
        glommio::TaskRunMode::Interrupt
    };
    assert_eq!(server.taskrun_mode, expected);
    // Multishot polls need Linux 5.13; older kernels get one-shot polls.
    assert_eq!(
        server.multishot_poll,
        multishot_poll && kernel_at_least(5, 13)
    );
    let resp = server.resp_addr.expect("RESP is on");
    run_all(resp, resp_worker);
    run_all(server.addr(), native_worker);
    let stats = server.stats().total();
    assert!(
        stats.ops >= (2 * CONNECTIONS * ROUNDS) as u64,
        "server counted {} operations",
        stats.ops
    );
}

#[test]
fn thousand_unpipelined_connections_cooperative_rings() {
    thousand_connections(true, true);
}

#[test]
fn thousand_unpipelined_connections_interrupt_rings() {
    thousand_connections(false, true);
}

#[test]
fn thousand_unpipelined_connections_one_shot_polls() {
    thousand_connections(true, false);
}
