//! The Redis-protocol driver of `corekv bench` (`--target redis` and
//! `--target corekv-resp`).
//!
//! Owns: per-session RESP connections, pipelined GET/SET batches (pipeline
//! depth = `--batch`) and the `INFO all` monitor that gives the server-side
//! figures for Redis. Runs the same workload, pacing and recording as the
//! native target ([`super::native_target`]); only the wire differs.
//!
//! Each session has its own connection to every host (Redis is one thread per
//! server; several sessions keep it busy while a session generates its next
//! batch). With several hosts, ops are spread with corekv's node hash
//! ([`crate::routing::route`]) and the per-host pipelines are sent one after
//! another, as the seed's client sent its sub-batches. Writing the pipeline
//! and reading its replies run concurrently, so a deep pipeline cannot
//! deadlock on full socket buffers.
//!
//! Must not touch: the workload, report formatting, the native protocol.

use std::cell::RefCell;
use std::rc::Rc;

use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::report::ServerNodeReport;
use super::session::{poll_hosts, HostCounters, HostPoller, Pacer, WorkerCtx};
use super::workload::{key_bytes, Generator, OpKind, MAX_KEY_LEN};
use crate::client::Half;
use crate::protocol::resp::{encode_command, skip_reply, ReplyKind};
use crate::routing::{route, SlotTable};

/// Connects to `addr` (the client's one connect helper), errors as text.
async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    crate::client::connect_stream(addr, timeout)
        .await
        .map_err(|e| e.to_string())
}

/// The connections of one worker: per session one stream per host, and
/// (worker 0) one monitor stream per host.
pub(crate) struct WorkerConns {
    sessions: RefCell<Vec<Vec<(String, TcpStream)>>>,
    monitor: RefCell<Option<Vec<TcpStream>>>,
    /// Which host a key goes to.
    table: SlotTable,
    timeout: Duration,
}

/// The masters of the Redis Cluster `seed` belongs to (CLUSTER SLOTS) and
/// the slot table mapping each slot to one of them (`--target
/// redis-cluster`): sessions then send each key straight to its master.
pub(crate) async fn cluster_masters(
    seed: &str,
    timeout: Duration,
) -> Result<(Vec<String>, SlotTable), String> {
    use crate::protocol::resp::{parse_reply, Reply};
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect(seed, timeout).await?;
    let mut out = Vec::new();
    encode_command(&mut out, &[b"CLUSTER", b"SLOTS"]);
    s.write_all(&out)
        .await
        .map_err(|e| format!("{seed}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let seed_host = seed.rsplit_once(':').map_or(seed, |(h, _)| h);
    loop {
        match parse_reply(&buf) {
            Ok(Some((reply, _))) => {
                let Reply::Array(Some(ranges)) = reply else {
                    return Err(format!(
                        "{seed}: CLUSTER SLOTS: unexpected reply (is it a cluster?)"
                    ));
                };
                let mut masters: Vec<String> = Vec::new();
                let mut owner = vec![u16::MAX; crate::routing::NR_SLOTS];
                for r in &ranges {
                    let Reply::Array(Some(f)) = r else { continue };
                    let (
                        Some(Reply::Integer(a)),
                        Some(Reply::Integer(b)),
                        Some(Reply::Array(Some(m))),
                    ) = (f.first(), f.get(1), f.get(2))
                    else {
                        return Err(format!("{seed}: CLUSTER SLOTS: malformed entry"));
                    };
                    let (Some(Reply::Bulk(Some(host))), Some(Reply::Integer(port))) =
                        (m.first(), m.get(1))
                    else {
                        return Err(format!("{seed}: CLUSTER SLOTS: malformed node"));
                    };
                    let host = String::from_utf8_lossy(host);
                    let host = if host.is_empty() {
                        seed_host.into()
                    } else {
                        host
                    };
                    let addr = format!("{host}:{port}");
                    let idx = match masters.iter().position(|m| *m == addr) {
                        Some(i) => i,
                        None => {
                            masters.push(addr);
                            masters.len() - 1
                        }
                    };
                    let (a, b) = ((*a).clamp(0, 16383) as usize, (*b).clamp(0, 16383) as usize);
                    for o in owner.iter_mut().take(b + 1).skip(a) {
                        *o = idx as u16;
                    }
                }
                if let Some(slot) = owner.iter().position(|&o| o == u16::MAX) {
                    return Err(format!("{seed}: slot {slot} is not served by any master"));
                }
                let table = SlotTable::from_slot_nodes(&owner)
                    .ok_or_else(|| format!("{seed}: CLUSTER SLOTS: bad table"))?;
                return Ok((masters, table));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("{seed}: CLUSTER SLOTS: {e}")),
        }
        let n = glommio::timer::timeout(timeout, async { Ok(s.read(&mut chunk).await) })
            .await
            .map_err(|_| format!("{seed}: CLUSTER SLOTS timed out"))?
            .map_err(|e| format!("{seed}: {e}"))?;
        if n == 0 {
            return Err(format!("{seed}: closed during CLUSTER SLOTS"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl WorkerConns {
    /// Connects every session to every host; `table` says which host a
    /// key goes to (`None`: the hosts as one-shard nodes, split by slot).
    pub(crate) async fn connect(
        hosts: &[String],
        table: Option<SlotTable>,
        sessions: usize,
        with_monitor: bool,
        timeout: Duration,
    ) -> Result<WorkerConns, String> {
        let table = table.unwrap_or_else(|| SlotTable::new(&vec![1; hosts.len()]));
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
            table,
            timeout,
        })
    }

    pub(crate) fn take_sessions(&self) -> Vec<SessionConns> {
        std::mem::take(&mut *self.sessions.borrow_mut())
            .into_iter()
            .map(|row| SessionConns {
                table: self.table.clone(),
                hosts: row
                    .into_iter()
                    .map(|(addr, s)| HostConn {
                        addr,
                        stream: Half(Rc::new(RefCell::new(s))),
                        out: Vec::with_capacity(64 * 1024),
                        expect: 0,
                        rd: RespReader::new(),
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

/// Received bytes not yet parsed: `buf[start..end]`.
struct RespReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Cache-aside: record the position of each null reply in `null_at`.
    track_nulls: bool,
    null_at: Vec<u32>,
}

impl RespReader {
    fn new() -> RespReader {
        RespReader {
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
            track_nulls: false,
            null_at: Vec::new(),
        }
    }

    /// Reads until `expect` complete replies were consumed; returns
    /// `(error replies, null replies, bytes read)`. With `track_nulls`,
    /// `null_at` gets the position (0-based, in this exchange) of each null.
    async fn read_replies(
        &mut self,
        r: &mut Half,
        mut expect: usize,
        addr: &str,
    ) -> Result<(u64, u64, u64), String> {
        let mut errors = 0u64;
        let mut nulls = 0u64;
        let mut bytes = 0u64;
        let total = expect;
        self.null_at.clear();
        loop {
            while expect > 0 {
                match skip_reply(&self.buf[self.start..self.end]) {
                    Ok(Some(s)) => {
                        match s.kind {
                            ReplyKind::Error => errors += 1,
                            ReplyKind::NullBulk => {
                                nulls += 1;
                                if self.track_nulls {
                                    self.null_at.push((total - expect) as u32);
                                }
                            }
                            _ => {}
                        }
                        self.start += s.consumed;
                        expect -= 1;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("malformed reply from {addr}: {e}")),
                }
            }
            if expect == 0 {
                return Ok((errors, nulls, bytes));
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
            match r.read(&mut self.buf[self.end..]).await {
                Ok(0) => return Err(format!("connection to {addr} lost: closed by server")),
                Ok(n) => {
                    self.end += n;
                    bytes += n as u64;
                }
                Err(e) => return Err(format!("connection to {addr} lost: {e}")),
            }
        }
    }
}

struct HostConn {
    addr: String,
    stream: Half,
    out: Vec<u8>,
    expect: usize,
    rd: RespReader,
    /// Cache-aside: the key index of each command queued, in order.
    keys: Vec<u64>,
}

impl HostConn {
    /// Sends the queued pipeline and reads its replies: `(errors, null
    /// replies, bytes read)`.
    async fn exchange(&mut self) -> Result<(u64, u64, u64), String> {
        let mut w = self.stream.clone();
        let mut r = self.stream.clone();
        let out = &self.out;
        let addr = &self.addr;
        let write = async move {
            w.write_all(out)
                .await
                .map_err(|e| format!("connection to {addr} lost: {e}"))
        };
        let read = self.rd.read_replies(&mut r, self.expect, addr);
        let (wr, rd) = futures_lite::future::zip(write, read).await;
        wr?;
        rd
    }
}

/// One session's connections (one per host).
pub(crate) struct SessionConns {
    hosts: Vec<HostConn>,
    /// Which host a key goes to: the hosts as one-shard nodes, by slot.
    table: SlotTable,
    timeout: Duration,
}

/// A RESP session: generate `batch` ops, pipeline them as GET/SET, read all
/// replies, record; closed or open loop as paced.
pub(crate) async fn session(
    ctx: Rc<WorkerCtx>,
    mut conns: SessionConns,
    mut gen: Generator,
    mut pacer: Pacer,
) {
    let n = ctx.batch;
    let nr_hosts = conns.hosts.len();
    let mut fills: Vec<u64> = Vec::new();
    let mut key_buf = [0u8; MAX_KEY_LEN];
    for h in &mut conns.hosts {
        h.rd.track_nulls = ctx.cache_aside;
    }
    while !pacer.done(&ctx) {
        for h in &mut conns.hosts {
            h.out.clear();
            h.expect = 0;
            h.keys.clear();
        }
        let mut gets = 0u64;
        let value = &ctx.value[..];
        let hosts = &mut conns.hosts;
        let host_of = |key: &[u8]| {
            if nr_hosts == 1 {
                0
            } else {
                route(key, &conns.table).node_id
            }
        };
        let ops = if ctx.cache_aside {
            // The fills of the last batch's misses, then the GETs.
            for &k in &fills {
                let key = key_bytes(k, &mut key_buf);
                let host = &mut hosts[host_of(key)];
                host.expect += 1;
                host.keys.push(k);
                match &ctx.ttl_ms_text {
                    None => encode_command(&mut host.out, &[b"SET", key, value]),
                    Some(ms) => encode_command(&mut host.out, &[b"SET", key, value, b"PX", ms]),
                }
            }
            gen.fill_gets(n, &mut |k, key| {
                let host = &mut hosts[host_of(key)];
                host.expect += 1;
                host.keys.push(k);
                encode_command(&mut host.out, &[b"GET", key]);
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
                route(key, &conns.table).node_id
            };
            let host = &mut hosts[h];
            host.expect += 1;
            match kind {
                OpKind::Read => {
                    gets += 1;
                    encode_command(&mut host.out, &[b"GET", key]);
                }
                OpKind::Write => match &ctx.ttl_ms_text {
                    None => encode_command(&mut host.out, &[b"SET", key, value]),
                    Some(ms) => encode_command(&mut host.out, &[b"SET", key, value, b"PX", ms]),
                },
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
        for h in conns.hosts.iter_mut().filter(|h| h.expect > 0) {
            let r = match glommio::timer::timeout(conns.timeout, async { Ok(h.exchange().await) })
                .await
            {
                Ok(r) => r,
                Err(_) => Err(format!("{}: timed out after {:?}", h.addr, conns.timeout)),
            };
            match r {
                Ok((e, nulls, bytes)) => {
                    errors += e;
                    // Only GET answers a null bulk (SET answers +OK).
                    misses += nulls;
                    fills.extend(h.rd.null_at.iter().map(|&i| h.keys[i as usize]));
                    ctx.bytes_sent
                        .set(ctx.bytes_sent.get() + h.out.len() as u64);
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

/// Counters from one `INFO all` reply.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct InfoSnapshot {
    pub(crate) gets: u64,
    pub(crate) sets: u64,
    pub(crate) keys: u64,
    pub(crate) memory: u64,
    pub(crate) clients: u64,
    pub(crate) errors: u64,
    /// True when the reply had a `# Commandstats` section.
    pub(crate) has_commandstats: bool,
}

fn field(line: &str, name: &str) -> Option<u64> {
    // `cmdstat_get:calls=12,usec=...` or `db0:keys=3,expires=0`.
    line.split(',')
        .find_map(|kv| kv.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// [`durability`] asked on a thread of its own (blocking I/O must not stall
/// a worker's executor): the answer arrives on the returned channel.
pub(crate) fn durability_later(addr: String) -> flume::Receiver<String> {
    let (tx, rx) = flume::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(durability(&addr));
    });
    rx
}

/// The durability mode of the Redis-protocol server at `addr` (`host:port`),
/// from `CONFIG GET appendonly` and `CONFIG GET appendfsync`, over a short
/// blocking connection; empty when it cannot be told.
pub(crate) fn durability(addr: &str) -> String {
    use std::io::{Read, Write};
    let ask = || -> Option<String> {
        let sa = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .ok()?
            .next()?;
        let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        let mut get = |name: &str| -> Option<String> {
            let mut cmd = Vec::new();
            encode_command(&mut cmd, &[b"CONFIG", b"GET", name.as_bytes()]);
            s.write_all(&cmd).ok()?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 512];
            loop {
                if let Ok(Some((crate::protocol::resp::Reply::Array(Some(a)), _))) =
                    crate::protocol::resp::parse_reply(&buf)
                {
                    return match a.get(1) {
                        Some(crate::protocol::resp::Reply::Bulk(Some(v))) => {
                            Some(String::from_utf8_lossy(v).into_owned())
                        }
                        _ => None,
                    };
                }
                let n = s.read(&mut chunk).ok()?;
                if n == 0 || buf.len() > 4096 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        let on = get("appendonly")?;
        Some(if on == "yes" {
            format!("appendonly yes, appendfsync {}", get("appendfsync")?)
        } else {
            "in-memory (appendonly no)".to_string()
        })
    };
    ask().unwrap_or_default()
}

/// Parses the text of an `INFO all` reply.
pub(crate) fn parse_info(text: &str) -> InfoSnapshot {
    let mut s = InfoSnapshot::default();
    for line in text.lines() {
        let line = line.trim();
        if line.eq_ignore_ascii_case("# commandstats") {
            s.has_commandstats = true;
        } else if let Some(rest) = line.strip_prefix("cmdstat_get:") {
            s.gets = field(rest, "calls=").unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("cmdstat_set:") {
            s.sets = field(rest, "calls=").unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("db") {
            if let Some((_, kv)) = rest.split_once(':') {
                s.keys += field(kv, "keys=").unwrap_or(0);
            }
        } else if let Some(v) = line.strip_prefix("used_memory:") {
            s.memory = v.parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("connected_clients:") {
            s.clients = v.parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("total_error_replies:") {
            s.errors = v.parse().unwrap_or(0);
        }
    }
    s
}

async fn info(h: &mut Half, rd: &mut RespReader, addr: &str) -> Result<InfoSnapshot, String> {
    let mut out = Vec::new();
    encode_command(&mut out, &[b"INFO", b"all"]);
    h.write_all(&out)
        .await
        .map_err(|e| format!("connection to {addr} lost: {e}"))?;
    // Read one reply and keep its text.
    loop {
        match skip_reply(&rd.buf[rd.start..rd.end]) {
            Ok(Some(s)) => {
                let base = rd.start;
                rd.start += s.consumed;
                if s.kind == ReplyKind::Error {
                    let msg = s
                        .value
                        .map(|v| {
                            String::from_utf8_lossy(&rd.buf[base + v.start..base + v.end])
                                .into_owned()
                        })
                        .unwrap_or_default();
                    return Err(format!("{addr} answered INFO with an error: {msg}"));
                }
                let text = s
                    .value
                    .map(|v| {
                        String::from_utf8_lossy(&rd.buf[base + v.start..base + v.end]).into_owned()
                    })
                    .unwrap_or_default();
                return Ok(parse_info(&text));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("malformed INFO reply from {addr}: {e}")),
        }
        if rd.start > 0 {
            rd.buf.copy_within(rd.start..rd.end, 0);
            rd.end -= rd.start;
            rd.start = 0;
        }
        if rd.end == rd.buf.len() {
            let n = rd.buf.len() * 2;
            rd.buf.resize(n, 0);
        }
        match h.read(&mut rd.buf[rd.end..]).await {
            Ok(0) => return Err(format!("connection to {addr} lost: closed by server")),
            Ok(n) => rd.end += n,
            Err(e) => return Err(format!("connection to {addr} lost: {e}")),
        }
    }
}

/// `INFO all` from every host.
struct InfoPoller<'a> {
    conns: Vec<(Half, RespReader)>,
    hosts: &'a [String],
}

impl HostPoller for InfoPoller<'_> {
    async fn snapshot(&mut self) -> Result<Vec<(Instant, HostCounters)>, String> {
        let mut v = Vec::with_capacity(self.conns.len());
        for ((h, rd), addr) in self.conns.iter_mut().zip(self.hosts) {
            let s = info(h, rd, addr).await?;
            let c = HostCounters {
                gets: s.gets,
                sets: s.sets,
                keys: s.keys,
                memory: s.memory,
                connections: s.clients,
                errors: s.errors,
                recognised: s.has_commandstats,
            };
            v.push((Instant::now(), c));
        }
        Ok(v)
    }
}

/// Polls `INFO all` on every host at the window's start and after each
/// measured second; per-node ops/s from `cmdstat_get` + `cmdstat_set` calls.
pub(crate) async fn monitor(
    ctx: Rc<WorkerCtx>,
    streams: Vec<TcpStream>,
    hosts: Vec<String>,
) -> Result<Vec<ServerNodeReport>, String> {
    // Each server's durability mode, asked off the executor.
    let asked: Vec<_> = hosts.iter().map(|h| durability_later(h.clone())).collect();
    let mut poller = InfoPoller {
        conns: streams
            .into_iter()
            .map(|s| (Half(Rc::new(RefCell::new(s))), RespReader::new()))
            .collect(),
        hosts: &hosts,
    };
    let mut reports = poll_hosts(
        &ctx,
        &hosts,
        &mut poller,
        "INFO has no command statistics (not a Redis server?)",
    )
    .await?;
    for (r, rx) in reports.iter_mut().zip(asked) {
        r.durability = rx.recv_async().await.unwrap_or_default();
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_parsed() {
        let text = "# Server\r\nredis_version:7.0.15\r\n# Clients\r\nconnected_clients:3\r\n\
                    # Memory\r\nused_memory:123456\r\n# Stats\r\ntotal_error_replies:2\r\n\
                    # Commandstats\r\ncmdstat_get:calls=100,usec=5,usec_per_call=0.05\r\n\
                    cmdstat_set:calls=7,usec=1\r\ncmdstat_info:calls=3,usec=1\r\n\
                    # Keyspace\r\ndb0:keys=42,expires=0,avg_ttl=0\r\n";
        let s = parse_info(text);
        assert_eq!(
            s,
            InfoSnapshot {
                gets: 100,
                sets: 7,
                keys: 42,
                memory: 123456,
                clients: 3,
                errors: 2,
                has_commandstats: true,
            }
        );
    }
}
