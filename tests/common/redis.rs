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
//!   returns every mismatch, with [`Cmp`] saying how a reply is compared;
//!   [`diff_calls`] does the same with binary-safe arguments.

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

/// Is `tool` installed? When it is not: `false` (the caller skips, with a
/// loud message naming the `package` to install), or a panic when `CI` is
/// set — CI installs it.
pub fn need(tool: &str, package: &str) -> bool {
    if installed(tool) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is not installed but CI is set: install {package}");
    }
    eprintln!("\n\n*** SKIPPING: {tool} not found (apt-get install {package}) ***\n");
    false
}

/// A redis-server on a free loopback port, with `extra` arguments; `None`
/// (skip) when it is not installed and `CI` is unset.
pub fn redis_server_with(extra: &[&str]) -> Option<Redis> {
    if !need("redis-server", "redis-server") {
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

    /// Sends a command given as text arguments (they may hold spaces).
    pub fn strs(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call(&args)
    }

    /// Sends a command whose reply must be an integer, and returns it.
    pub fn int(&mut self, args: &[&str]) -> i64 {
        let r = self.strs(args);
        int_of(&r).unwrap_or_else(|| panic!("{args:?}: not an integer: {}", show(&r)))
    }

    /// Sends a command whose reply must be text (a bulk string, or RESP3's
    /// verbatim string without its `txt:` format), and returns it.
    pub fn text(&mut self, args: &[&str]) -> String {
        let r = self.strs(args);
        text_of(&r).unwrap_or_else(|| panic!("{args:?}: not text: {}", show(&r)))
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
        self.try_reply().expect("connection closed before a reply")
    }

    /// Reads the next reply's bytes, or `None` when the server closed the
    /// connection (EOF or reset) first.
    pub fn try_reply(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(n) = frame_len(&self.buf) {
                return Some(self.buf.drain(..n).collect());
            }
            let mut chunk = [0u8; 65536];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => panic!("reply within timeout: {e}"),
            };
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes raw bytes (pipelines, malformed input).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Expects the server to close the connection after at most the
    /// replies already sent (they are discarded).
    pub fn expect_eof(&mut self) {
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => continue,
                // A reset after close is fine too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("expected EOF, got {e}"),
            }
        }
    }

    /// This end's address (what CLIENT LIST shows as `addr`).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// The server's address (what CLIENT LIST shows as `laddr`).
    pub fn peer_addr(&self) -> SocketAddr {
        self.stream.peer_addr().expect("peer address")
    }
}

/// How a scripted reply is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// Byte for byte.
    Exact,
    /// The same bytes, or both `:integer` replies not negative and at most
    /// this far apart (clock-dependent TTLs: -1 and -2 must match exactly).
    Near(i64),
    /// Both arrays (or sets) holding the same elements in any order (KEYS,
    /// SMEMBERS-like replies whose order is the table's).
    Unordered,
    /// Only the reply's first byte (its RESP type) must match.
    SameType,
}

fn int_of(r: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(r.strip_prefix(b":")?).ok()?;
    s.strip_suffix("\r\n")?.parse().ok()
}

/// The text of a bulk string or verbatim string reply.
fn text_of(r: &[u8]) -> Option<String> {
    let (kind, rest) = r.split_first()?;
    let nl = rest.windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    let body = rest.get(nl + 2..nl + 2 + len)?;
    let body = match kind {
        b'$' => body,
        b'=' => body.get(4..)?,
        _ => return None,
    };
    Some(String::from_utf8_lossy(body).into_owned())
}

/// A reply for a failure message: lossy text, long ones cut.
pub fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}… ({} bytes)", &s[..end], b.len())
    } else {
        format!("{s:?}")
    }
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
            _ if ours == theirs => true,
            (Some(a), Some(b)) => a >= 0 && b >= 0 && (a - b).abs() <= tol,
            _ => false,
        },
        Cmp::Unordered => {
            ours[..1] == theirs[..1]
                && sorted_elements(ours).is_some()
                && sorted_elements(ours) == sorted_elements(theirs)
        }
        Cmp::SameType => ours.first() == theirs.first(),
    }
}

/// Fails the test with every differing reply listed, if there is any.
#[track_caller]
pub fn assert_no_diffs(diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{} replies differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// Runs each `(command line, comparison)` against both connections, in
/// order, and returns a description of every reply that differs (empty:
/// they agree). Lines are split on single spaces; use [`diff_calls`] for
/// arguments with spaces or binary bytes.
pub fn run_diff(ours: &mut Conn, theirs: &mut Conn, script: &[(String, Cmp)]) -> Vec<String> {
    let steps: Vec<(Vec<Vec<u8>>, Cmp)> = script
        .iter()
        .map(|(line, cmp)| {
            (
                line.split(' ').map(|w| w.as_bytes().to_vec()).collect(),
                *cmp,
            )
        })
        .collect();
    diff_calls(ours, theirs, &steps)
}

/// Runs each `(arguments, comparison)` against both connections, in order,
/// and returns a description of every reply that differs (empty: they
/// agree). Arguments are binary-safe.
pub fn diff_calls(
    ours: &mut Conn,
    theirs: &mut Conn,
    steps: &[(Vec<Vec<u8>>, Cmp)],
) -> Vec<String> {
    let mut bad = Vec::new();
    for (args, cmp) in steps {
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let a = ours.call(&args);
        let b = theirs.call(&args);
        if !agree(*cmp, &a, &b) {
            let line: Vec<String> = args
                .iter()
                .map(|a| match std::str::from_utf8(a) {
                    Ok(s) if s.len() <= 40 => s.to_string(),
                    _ => format!("<{} bytes>", a.len()),
                })
                .collect();
            bad.push(format!(
                "{}\n  corekv: {}\n  redis:  {}",
                line.join(" "),
                show(&a),
                show(&b)
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

    #[test]
    fn comparisons() {
        assert!(agree(Cmp::Near(1), b":10\r\n", b":9\r\n"));
        assert!(agree(Cmp::Near(1), b":-2\r\n", b":-2\r\n"));
        assert!(!agree(Cmp::Near(1), b":-1\r\n", b":-2\r\n"));
        assert!(!agree(Cmp::Near(1), b":-1\r\n", b":0\r\n"));
        assert!(!agree(Cmp::Near(1), b":10\r\n", b":12\r\n"));
        assert_eq!(text_of(b"=9\r\ntxt:a:1\r\n\r\n").unwrap(), "a:1\r\n");
        assert_eq!(text_of(b"$2\r\nab\r\n").unwrap(), "ab");
        assert_eq!(text_of(b":1\r\n"), None);
    }
}
