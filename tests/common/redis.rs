//! Differential testing against a real `redis-server` (Redis 7): start one
//! on a free loopback port, talk raw RESP (2 or 3) to it and to corekv, and
//! compare the replies byte for byte.
//!
//! * [`redis_server`] starts redis-server with persistence off, or returns
//!   `None` (skip, loudly) when it is not installed — unless `CI` is set, in
//!   which case it panics: CI installs it.
//! * [`Conn`] sends one command and returns its reply's raw bytes; the frame
//!   is delimited by [`frame_len`], a self-contained RESP2 + RESP3 reader (it
//!   does not use corekv's parser, so it cannot share its bugs).
//! * [`run_diff`] runs a script of command lines against both servers and
//!   returns every mismatch, with [`Cmp`] saying how a reply is compared.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running redis-server, killed on drop.
pub struct Redis {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Is `tool` on PATH (answers `--version`)?
pub fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A redis-server on a free loopback port, with `extra` arguments; `None`
/// (skip) when it is not installed and `CI` is unset.
pub fn redis_server_with(extra: &[&str]) -> Option<Redis> {
    if !installed("redis-server") {
        if std::env::var_os("CI").is_some() {
            panic!("redis-server is not installed but CI is set: install redis-server");
        }
        eprintln!("\n\n*** SKIPPING: redis-server not found (apt-get install redis-server) ***\n");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let redis = Redis {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(redis.addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(redis)
}

/// [`redis_server_with`] without extra arguments.
pub fn redis_server() -> Option<Redis> {
    redis_server_with(&[])
}

/// The length of the first complete RESP2/RESP3 frame in `buf`, `None` when
/// it is incomplete. Panics on bytes that are not RESP (a test failure).
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rel = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[at..at + rel], at + rel + 2))
    }
    fn num(b: &[u8]) -> i64 {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad length {:?}", String::from_utf8_lossy(b)))
    }
    fn frame(buf: &[u8], at: usize) -> Option<usize> {
        let kind = *buf.get(at)?;
        let (head, next) = line(buf, at + 1)?;
        match kind {
            b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Some(next),
            b'$' | b'!' | b'=' => {
                let n = num(head);
                if n < 0 {
                    return Some(next);
                }
                let end = next + n as usize + 2;
                (buf.len() >= end).then_some(end)
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = num(head);
                if n < 0 {
                    return Some(next);
                }
                let items = if kind == b'%' || kind == b'|' {
                    2 * n
                } else {
                    n
                };
                let mut pos = next;
                for _ in 0..items {
                    pos = frame(buf, pos)?;
                }
                // An attribute (`|`) precedes the reply it describes.
                if kind == b'|' {
                    return frame(buf, pos);
                }
                Some(pos)
            }
            other => panic!(
                "not RESP: byte {:?} in {:?}",
                other as char,
                String::from_utf8_lossy(buf)
            ),
        }
    }
    frame(buf, 0)
}

/// A raw RESP connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects with a read timeout and TCP_NODELAY.
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends one command (each argument a bulk string) and returns its
    /// reply's bytes.
    pub fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        self.reply()
    }

    /// Sends a command line split on single spaces.
    pub fn line(&mut self, line: &str) -> Vec<u8> {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.call(&args)
    }

    /// Sends one command without reading its reply (pipelining).
    pub fn send(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).expect("send");
    }

    /// Reads the next reply's bytes.
    pub fn reply(&mut self) -> Vec<u8> {
        loop {
            if let Some(n) = frame_len(&self.buf) {
                return self.buf.drain(..n).collect();
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("reply within timeout");
            assert!(n > 0, "connection closed before a reply");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// How a scripted reply is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// Byte for byte.
    Exact,
    /// Both `:integer` replies at most this far apart (clock-dependent).
    Near(i64),
    /// Both arrays (or sets) holding the same elements in any order (KEYS,
    /// SMEMBERS-like replies whose order is the table's).
    Unordered,
    /// Only the reply's first byte (its RESP type) must match.
    SameType,
}

fn int_of(r: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(r.strip_prefix(b":")?).ok()?;
    s.trim_end().parse().ok()
}

/// The top-level elements of an array/set reply, as raw frames, sorted.
fn sorted_elements(r: &[u8]) -> Option<Vec<Vec<u8>>> {
    if !(r.starts_with(b"*") || r.starts_with(b"~")) {
        return None;
    }
    let nl = r.windows(2).position(|w| w == b"\r\n")?;
    let n: usize = std::str::from_utf8(&r[1..nl]).ok()?.parse().ok()?;
    let mut pos = nl + 2;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = frame_len(&r[pos..])?;
        out.push(r[pos..pos + len].to_vec());
        pos += len;
    }
    out.sort();
    Some(out)
}

/// Do two replies agree under `cmp`?
pub fn agree(cmp: Cmp, ours: &[u8], theirs: &[u8]) -> bool {
    match cmp {
        Cmp::Exact => ours == theirs,
        Cmp::Near(tol) => match (int_of(ours), int_of(theirs)) {
            (Some(a), Some(b)) => (a - b).abs() <= tol,
            _ => ours == theirs,
        },
        Cmp::Unordered => {
            ours[..1] == theirs[..1]
                && sorted_elements(ours).is_some()
                && sorted_elements(ours) == sorted_elements(theirs)
        }
        Cmp::SameType => ours.first() == theirs.first(),
    }
}

/// Runs each `(command line, comparison)` against both connections, in
/// order, and returns a description of every reply that differs (empty:
/// they agree). Lines are split on single spaces; use [`Conn::call`]
/// directly for arguments with spaces or binary bytes.
pub fn run_diff(ours: &mut Conn, theirs: &mut Conn, script: &[(String, Cmp)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (line, cmp) in script {
        let a = ours.line(line);
        let b = theirs.line(line);
        if !agree(*cmp, &a, &b) {
            bad.push(format!(
                "{line}\n  corekv: {:?}\n  redis:  {:?}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            ));
        }
    }
    bad
}

/// `script![("GET k", Exact), …]`-style helper: command lines with one
/// comparison each.
pub fn lines(cmp: Cmp, ls: &[&str]) -> Vec<(String, Cmp)> {
    ls.iter().map(|l| (l.to_string(), cmp)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_every_type() {
        assert_eq!(frame_len(b"+OK\r\n"), Some(5));
        assert_eq!(frame_len(b"$3\r\nabc\r\n+x"), Some(9));
        assert_eq!(frame_len(b"$3\r\nab"), None);
        assert_eq!(frame_len(b"*2\r\n:1\r\n$-1\r\n"), Some(13));
        assert_eq!(frame_len(b"%1\r\n+a\r\n,1.5\r\n"), Some(14));
        assert_eq!(frame_len(b"_\r\n"), Some(3));
        assert_eq!(frame_len(b"*1\r\n"), None);
    }
}
