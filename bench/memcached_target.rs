//! The memcached driver of `corekv bench` (`--target memcached`).
//!
//! Owns: per-session connections speaking memcached's text protocol, each
//! batch sent as one pipeline in which consecutive GETs become one multi-get
//! (`get k1 k2 …`, at most [`MULTIGET_KEYS`] keys a line) and each PUT is a
//! `set` (with `--cache-aside`, one `get` per key, so each reply tells which
//! key missed), and the `stats` monitor that gives the server-side figures. Runs the
//! same workload, pacing and recording as the other drivers
//! ([`super::driver`]); only the wire differs.
//!
//! memcached executes a connection's commands in order, so a batch's
//! operations still complete in the order generated (the seed's rule) even
//! though reads are grouped. As in the RESP driver, every session has its own
//! connection to every host, ops are spread over several hosts with corekv's
//! node hash ([`crate::routing::route`]), and writing a pipeline and
//! reading its replies run concurrently.
//!
//! Replies are parsed incrementally with bounded lines and values: a reply
//! that is not memcached's (or a value over [`MAX_VALUE`]) ends the run with
//! a clear error rather than growing memory.
//!
//! Must not touch: the workload, report formatting, the native protocol,
//! RESP.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::report::ServerNodeReport;
use super::session::{poll_hosts, HostCounters, HostPoller, Pacer, WorkerCtx};
use super::workload::{key_bytes, Generator, OpKind, MAX_KEY_LEN};
use crate::client::Half;
use crate::routing::{route, SlotTable};

/// Most keys in one `get` line (memaslap's multi-get size in the seed's
/// measurements was 64).
pub const MULTIGET_KEYS: u32 = 64;

/// Largest value accepted in a reply (memcached's own item limit is 1 MB by
/// default, 1 GB at most).
pub const MAX_VALUE: usize = 64 << 20;

/// Longest reply line accepted (a `VALUE` header is under 300 bytes).
const MAX_LINE: usize = 4096;

/// One command of a pipeline, as its reply will be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    /// A multi-get of this many keys.
    Get(u32),
    /// One `set`.
    Set,
}

/// What one parsed reply said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ReplyCounts {
    /// Bytes of the buffer the reply took.
    pub(crate) consumed: usize,
    /// Operations that failed.
    pub(crate) errors: u64,
    /// GETs that found nothing.
    pub(crate) misses: u64,
}

fn line_at(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, String> {
    let rest = &buf[pos..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((&rest[..i], pos + i + 2))),
        None if rest.len() > MAX_LINE => Err(format!(
            "reply line longer than {MAX_LINE} bytes (not memcached?)"
        )),
        None => Ok(None),
    }
}

fn is_error_line(line: &[u8]) -> bool {
    line == b"ERROR" || line.starts_with(b"CLIENT_ERROR") || line.starts_with(b"SERVER_ERROR")
}

/// Parses the reply to `cmd` at the start of `buf`: `Ok(None)` when more
/// bytes are needed, `Err` for a reply memcached would not send.
pub(crate) fn parse_reply(buf: &[u8], cmd: Cmd) -> Result<Option<ReplyCounts>, String> {
    let show = |l: &[u8]| String::from_utf8_lossy(&l[..l.len().min(80)]).into_owned();
    match cmd {
        Cmd::Set => {
            let Some((line, next)) = line_at(buf, 0)? else {
                return Ok(None);
            };
            let errors = match line {
                b"STORED" => 0,
                b"NOT_STORED" | b"EXISTS" | b"NOT_FOUND" => 1,
                l if is_error_line(l) => 1,
                l => return Err(format!("unexpected reply to set: {:?}", show(l))),
            };
            Ok(Some(ReplyCounts {
                consumed: next,
                errors,
                misses: 0,
            }))
        }
        Cmd::Get(keys) => {
            let mut pos = 0;
            let mut values = 0u64;
            loop {
                let Some((line, next)) = line_at(buf, pos)? else {
                    return Ok(None);
                };
                if line == b"END" {
                    return Ok(Some(ReplyCounts {
                        consumed: next,
                        errors: 0,
                        misses: u64::from(keys).saturating_sub(values),
                    }));
                }
                if is_error_line(line) {
                    return Ok(Some(ReplyCounts {
                        consumed: next,
                        errors: u64::from(keys),
                        misses: 0,
                    }));
                }
                // VALUE <key> <flags> <bytes> [<cas>]
                let mut tok = line.split(|&b| b == b' ');
                let len = match (tok.next(), tok.next(), tok.next(), tok.next()) {
                    (Some(b"VALUE"), Some(_), Some(_), Some(n)) => std::str::from_utf8(n)
                        .ok()
                        .and_then(|n| n.parse::<usize>().ok())
                        .ok_or_else(|| format!("bad VALUE line: {:?}", show(line)))?,
                    _ => return Err(format!("unexpected reply to get: {:?}", show(line))),
                };
                if len > MAX_VALUE {
                    return Err(format!("value of {len} bytes is over {MAX_VALUE}"));
                }
                let end = next + len + 2;
                if buf.len() < end {
                    return Ok(None);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    return Err("value not followed by CRLF".into());
                }
                values += 1;
                if values > u64::from(keys) {
                    return Err(format!("more values than the {keys} keys asked for"));
                }
                pos = end;
            }
        }
    }
}

async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let sock: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))?;
    let s = TcpStream::connect_timeout(sock, timeout)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Received bytes not yet parsed: `buf[start..end]`.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Cache-aside: record the index of each command that missed in `miss_at`.
    track_misses: bool,
    miss_at: Vec<u32>,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
            track_misses: false,
            miss_at: Vec::new(),
        }
    }

    /// Makes room for more bytes: moves the unparsed part to the front, and
    /// doubles the buffer when that part fills it (bounded by the parser's
    /// line and value limits).
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
    }

    async fn fill(&mut self, r: &mut Half, addr: &str) -> Result<u64, String> {
        self.make_room();
        match r.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err(format!("connection to {addr} lost: closed by server")),
            Ok(n) => {
                self.end += n;
                Ok(n as u64)
            }
            Err(e) => Err(format!("connection to {addr} lost: {e}")),
        }
    }

    /// Reads the replies to `cmds`: `(errors, misses, bytes read)`.
    async fn read_replies(
        &mut self,
        r: &mut Half,
        cmds: &[Cmd],
        addr: &str,
    ) -> Result<(u64, u64, u64), String> {
        let (mut errors, mut misses, mut bytes) = (0u64, 0u64, 0u64);
        let mut next = 0;
        self.miss_at.clear();
        while next < cmds.len() {
            match parse_reply(&self.buf[self.start..self.end], cmds[next])
                .map_err(|e| format!("{addr}: {e}"))?
            {
                Some(c) => {
                    self.start += c.consumed;
                    errors += c.errors;
                    misses += c.misses;
                    if self.track_misses && c.misses > 0 {
                        self.miss_at.push(next as u32);
                    }
                    next += 1;
                }
                None => bytes += self.fill(r, addr).await?,
            }
        }
        Ok((errors, misses, bytes))
    }
}

/// A pipeline being built: the bytes to send and the commands whose
/// replies will come back, in order.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    pub(crate) out: Vec<u8>,
    pub(crate) cmds: Vec<Cmd>,
    /// True while the last command in `out` is a `get` line still taking keys.
    open_get: bool,
    /// One `get` per key (cache-aside: a reply per key tells which missed).
    pub(crate) single_gets: bool,
}

impl Encoder {
    fn clear(&mut self) {
        self.out.clear();
        self.cmds.clear();
        self.open_get = false;
    }

    /// Ends an open `get` line.
    pub(crate) fn close(&mut self) {
        if self.open_get {
            self.out.extend_from_slice(b"\r\n");
            self.open_get = false;
        }
    }

    /// A GET: joins the open `get` line, or starts one.
    pub(crate) fn get(&mut self, key: &[u8]) {
        match self.cmds.last_mut() {
            Some(Cmd::Get(n)) if self.open_get && *n < MULTIGET_KEYS && !self.single_gets => {
                *n += 1;
                self.out.push(b' ');
            }
            _ => {
                self.close();
                self.cmds.push(Cmd::Get(1));
                self.out.extend_from_slice(b"get ");
                self.open_get = true;
            }
        }
        self.out.extend_from_slice(key);
    }

    /// A PUT: `set <key> 0 0 <len>` and the value.
    pub(crate) fn set(&mut self, key: &[u8], value: &[u8], exptime: u64) {
        use std::io::Write as _;
        self.close();
        self.cmds.push(Cmd::Set);
        self.out.extend_from_slice(b"set ");
        self.out.extend_from_slice(key);
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, " 0 {exptime} {}\r\n", value.len());
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
    }
}

/// The pipeline to one host within a session.
struct HostConn {
    addr: String,
    stream: Half,
    enc: Encoder,
    rd: Reader,
    /// Cache-aside: the key index of each command queued, in order.
    keys: Vec<u64>,
}

impl HostConn {
    async fn exchange(&mut self) -> Result<(u64, u64, u64), String> {
        self.enc.close();
        let mut w = self.stream.clone();
        let mut r = self.stream.clone();
        let out = &self.enc.out;
        let addr = &self.addr;
        let write = async move {
            w.write_all(out)
                .await
                .map_err(|e| format!("connection to {addr} lost: {e}"))
        };
        let read = self.rd.read_replies(&mut r, &self.enc.cmds, addr);
        let (wr, rd) = futures_lite::future::zip(write, read).await;
        wr?;
        rd
    }
}

/// One session's connections (one per host).
pub(crate) struct SessionConns {
    hosts: Vec<HostConn>,
    timeout: Duration,
}

/// The connections of one worker: per session one stream per host, and
/// (worker 0) one monitor stream per host.
pub(crate) struct WorkerConns {
    sessions: RefCell<Vec<Vec<(String, TcpStream)>>>,
    monitor: RefCell<Option<Vec<TcpStream>>>,
    timeout: Duration,
}

impl WorkerConns {
    pub(crate) async fn connect(
        hosts: &[String],
        sessions: usize,
        with_monitor: bool,
        timeout: Duration,
    ) -> Result<WorkerConns, String> {
        let mut all = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            let mut row = Vec::with_capacity(hosts.len());
            for h in hosts {
                row.push((h.clone(), connect(h, timeout).await?));
            }
            all.push(row);
        }
        let monitor = if with_monitor {
            let mut m = Vec::new();
            for h in hosts {
                m.push(connect(h, timeout).await?);
            }
            Some(m)
        } else {
            None
        };
        Ok(WorkerConns {
            sessions: RefCell::new(all),
            monitor: RefCell::new(monitor),
            timeout,
        })
    }

    pub(crate) fn take_sessions(&self) -> Vec<SessionConns> {
        std::mem::take(&mut *self.sessions.borrow_mut())
            .into_iter()
            .map(|row| SessionConns {
                hosts: row
                    .into_iter()
                    .map(|(addr, s)| HostConn {
                        addr,
                        stream: Half(Rc::new(RefCell::new(s))),
                        enc: Encoder {
                            out: Vec::with_capacity(64 * 1024),
                            ..Encoder::default()
                        },
                        rd: Reader::new(),
                        keys: Vec::new(),
                    })
                    .collect(),
                timeout: self.timeout,
            })
            .collect()
    }

    pub(crate) fn take_monitor(&self) -> Option<Vec<TcpStream>> {
        self.monitor.borrow_mut().take()
    }
}

/// A memcached session: generate `batch` ops, pipeline them (multi-gets and
/// sets), read every reply, record; closed or open loop as paced.
pub(crate) async fn session(
    ctx: Rc<WorkerCtx>,
    mut conns: SessionConns,
    mut gen: Generator,
    mut pacer: Pacer,
) {
    let n = ctx.batch;
    let nr_hosts = conns.hosts.len();
    // The hosts as one-shard nodes: a key's host by its hash slot.
    let table = SlotTable::new(&vec![1; nr_hosts]);
    let mut fills: Vec<u64> = Vec::new();
    let mut key_buf = [0u8; MAX_KEY_LEN];
    for h in &mut conns.hosts {
        h.enc.single_gets = ctx.cache_aside;
        h.rd.track_misses = ctx.cache_aside;
    }
    while !pacer.done(&ctx) {
        for h in &mut conns.hosts {
            h.enc.clear();
            h.keys.clear();
        }
        let mut gets = 0u64;
        let value = &ctx.value[..];
        let hosts = &mut conns.hosts;
        let host_of = |key: &[u8]| {
            if nr_hosts == 1 {
                0
            } else {
                route(key, &table).node_id
            }
        };
        let ops = if ctx.cache_aside {
            // The fills of the last batch's misses, then the GETs, one
            // command each.
            for &k in &fills {
                let key = key_bytes(k, &mut key_buf);
                let host = &mut hosts[host_of(key)];
                host.keys.push(k);
                host.enc.set(key, value, ctx.ttl_secs);
            }
            gen.fill_gets(n, &mut |k, key| {
                let host = &mut hosts[host_of(key)];
                host.keys.push(k);
                host.enc.get(key);
            });
            gets = n as u64;
            n + fills.len()
        } else {
            n
        };
        gen.fill_batch(if ctx.cache_aside { 0 } else { n }, &mut |kind, key| {
            let h = if nr_hosts == 1 {
                0
            } else {
                route(key, &table).node_id
            };
            match kind {
                OpKind::Read => {
                    gets += 1;
                    hosts[h].enc.get(key);
                }
                OpKind::Write => hosts[h].enc.set(key, value, ctx.ttl_secs),
            }
        });
        let Some(sent) = pacer.next(&ctx).await else {
            break;
        };
        if pacer.is_open() {
            ctx.record_send_lag(sent, Instant::now());
        }
        let (mut errors, mut misses) = (0u64, 0u64);
        fills.clear();
        for h in conns.hosts.iter_mut().filter(|h| !h.enc.cmds.is_empty()) {
            let r = match glommio::timer::timeout(conns.timeout, async { Ok(h.exchange().await) })
                .await
            {
                Ok(r) => r,
                Err(_) => Err(format!("{}: timed out after {:?}", h.addr, conns.timeout)),
            };
            match r {
                Ok((e, m, bytes)) => {
                    errors += e;
                    misses += m;
                    fills.extend(h.rd.miss_at.iter().map(|&i| h.keys[i as usize]));
                    ctx.bytes_sent
                        .set(ctx.bytes_sent.get() + h.enc.out.len() as u64);
                    ctx.bytes_received.set(ctx.bytes_received.get() + bytes);
                }
                Err(e) => {
                    ctx.fail(e);
                    return;
                }
            }
        }
        let done = Instant::now();
        ctx.record(sent, done, ops as u64, gets, errors, misses);
    }
}

/// Counters from one `stats` reply.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct StatsSnapshot {
    pub(crate) gets: u64,
    pub(crate) sets: u64,
    pub(crate) items: u64,
    pub(crate) bytes: u64,
    pub(crate) connections: u64,
    /// True when the reply named a memcached version.
    pub(crate) has_version: bool,
}

/// Parses the text of a `stats` reply (`STAT name value` lines).
pub(crate) fn parse_stats(text: &str) -> StatsSnapshot {
    let mut s = StatsSnapshot::default();
    for line in text.lines() {
        let mut t = line.split_whitespace();
        if t.next() != Some("STAT") {
            continue;
        }
        let (Some(name), Some(v)) = (t.next(), t.next()) else {
            continue;
        };
        let n = v.parse().unwrap_or(0);
        match name {
            "cmd_get" => s.gets = n,
            "cmd_set" => s.sets = n,
            "curr_items" => s.items = n,
            "bytes" => s.bytes = n,
            "curr_connections" => s.connections = n,
            "version" => s.has_version = true,
            _ => {}
        }
    }
    s
}

async fn stats(h: &mut Half, rd: &mut Reader, addr: &str) -> Result<StatsSnapshot, String> {
    h.write_all(b"stats\r\n")
        .await
        .map_err(|e| format!("connection to {addr} lost: {e}"))?;
    let mut pos = rd.start;
    loop {
        while let Some((line, next)) =
            line_at(&rd.buf[..rd.end], pos).map_err(|e| format!("{addr}: {e}"))?
        {
            if line == b"END" {
                let text = String::from_utf8_lossy(&rd.buf[rd.start..pos]).into_owned();
                rd.start = next;
                return Ok(parse_stats(&text));
            }
            if is_error_line(line) {
                return Err(format!(
                    "{addr} answered stats with {:?}",
                    String::from_utf8_lossy(line)
                ));
            }
            pos = next;
        }
        let offset = pos - rd.start;
        rd.fill(h, addr).await?;
        pos = rd.start + offset;
    }
}

/// `stats` from every host.
struct StatsPoller<'a> {
    conns: Vec<(Half, Reader)>,
    hosts: &'a [String],
}

impl HostPoller for StatsPoller<'_> {
    async fn snapshot(&mut self) -> Result<Vec<(Instant, HostCounters)>, String> {
        let mut v = Vec::with_capacity(self.conns.len());
        for ((h, rd), addr) in self.conns.iter_mut().zip(self.hosts) {
            let s = stats(h, rd, addr).await?;
            let c = HostCounters {
                gets: s.gets,
                sets: s.sets,
                keys: s.items,
                memory: s.bytes,
                connections: s.connections,
                errors: 0,
                recognised: s.has_version,
            };
            v.push((Instant::now(), c));
        }
        Ok(v)
    }
}

/// Polls `stats` on every host at the window's start and after each measured
/// second; per-node ops/s from `cmd_get` (one per key) + `cmd_set`.
pub(crate) async fn monitor(
    ctx: Rc<WorkerCtx>,
    streams: Vec<TcpStream>,
    hosts: Vec<String>,
) -> Result<Vec<ServerNodeReport>, String> {
    let mut poller = StatsPoller {
        conns: streams
            .into_iter()
            .map(|s| (Half(Rc::new(RefCell::new(s))), Reader::new()))
            .collect(),
        hosts: &hosts,
    };
    let mut reports = poll_hosts(
        &ctx,
        &hosts,
        &mut poller,
        "stats names no version (not a memcached server?)",
    )
    .await?;
    for r in &mut reports {
        r.durability = "in-memory (memcached)".into();
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_orders_sets_between_multigets() {
        let mut h = Encoder::default();
        h.get(b"1");
        h.get(b"2");
        h.set(b"3", b"abc", 0);
        h.get(b"4");
        for k in 0..(MULTIGET_KEYS + 1) {
            h.get(k.to_string().as_bytes());
        }
        h.close();
        let text = String::from_utf8(h.out.clone()).unwrap();
        assert!(
            text.starts_with("get 1 2\r\nset 3 0 0 3\r\nabc\r\nget 4 0 1 "),
            "{text}"
        );
        assert_eq!(
            h.cmds,
            vec![Cmd::Get(2), Cmd::Set, Cmd::Get(MULTIGET_KEYS), Cmd::Get(2)]
        );
        assert!(text.ends_with(" 64\r\n"), "{text}");
    }

    #[test]
    fn replies_are_parsed_incrementally() {
        // A multi-get of 3 keys, one found.
        let r = b"VALUE 2 0 3\r\nabc\r\nEND\r\n";
        for cut in 0..r.len() {
            assert_eq!(
                parse_reply(&r[..cut], Cmd::Get(3)).unwrap(),
                None,
                "cut {cut}"
            );
        }
        assert_eq!(
            parse_reply(r, Cmd::Get(3)).unwrap(),
            Some(ReplyCounts {
                consumed: r.len(),
                errors: 0,
                misses: 2
            })
        );
        // With a CAS token, and followed by the next reply.
        let r = b"VALUE 2 0 1 99\r\nx\r\nEND\r\nSTORED\r\n";
        let c = parse_reply(r, Cmd::Get(1)).unwrap().unwrap();
        assert_eq!((c.errors, c.misses), (0, 0));
        let c2 = parse_reply(&r[c.consumed..], Cmd::Set).unwrap().unwrap();
        assert_eq!(c2.consumed, 8);
        assert_eq!(c2.errors, 0);
        // Errors count per operation.
        let c = parse_reply(b"SERVER_ERROR out of memory\r\n", Cmd::Set)
            .unwrap()
            .unwrap();
        assert_eq!(c.errors, 1);
        let c = parse_reply(b"CLIENT_ERROR bad\r\n", Cmd::Get(5))
            .unwrap()
            .unwrap();
        assert_eq!(c.errors, 5);
        assert_eq!(
            parse_reply(b"NOT_STORED\r\n", Cmd::Set)
                .unwrap()
                .unwrap()
                .errors,
            1
        );
    }

    #[test]
    fn foreign_replies_are_errors_not_growth() {
        assert!(parse_reply(b"+OK\r\n", Cmd::Set).is_err());
        assert!(parse_reply(b"$3\r\nabc\r\n", Cmd::Get(1)).is_err());
        assert!(parse_reply(b"VALUE 1 0 x\r\n", Cmd::Get(1)).is_err());
        assert!(parse_reply(b"VALUE 1 0 999999999999\r\n", Cmd::Get(1)).is_err());
        assert!(parse_reply(b"VALUE 1 0 1\r\nxyz", Cmd::Get(1)).is_err());
        assert!(parse_reply(b"VALUE 1 0 1\r\nx\r\nVALUE 1 0 1\r\nx\r\n", Cmd::Get(1)).is_err());
        assert!(parse_reply(&[b'x'; MAX_LINE + 1], Cmd::Set).is_err());
        assert_eq!(parse_reply(&[b'x'; 100], Cmd::Set).unwrap(), None);
    }

    #[test]
    fn stats_are_parsed() {
        let text = "STAT pid 1\r\nSTAT version 1.6.21\r\nSTAT curr_connections 3\r\n\
                    STAT cmd_get 100\r\nSTAT cmd_set 7\r\nSTAT get_misses 4\r\n\
                    STAT curr_items 42\r\nSTAT bytes 9000\r\n";
        assert_eq!(
            parse_stats(text),
            StatsSnapshot {
                gets: 100,
                sets: 7,
                items: 42,
                bytes: 9000,
                connections: 3,
                has_version: true,
            }
        );
        assert!(!parse_stats("+OK\r\n").has_version);
    }
}
