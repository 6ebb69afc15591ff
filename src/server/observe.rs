//! What an operator watches, per shard and summed when read: per-command
//! statistics (calls, time, rejected and failed calls, a latency histogram),
//! error replies by code, I/O events, the slow log and the client registry.
//! INFO, LATENCY HISTOGRAM, SLOWLOG, CLIENT LIST/KILL and the Prometheus
//! endpoint ([`super::metrics`]) all read from here.
//!
//! # No lock on the data path
//!
//! Every counter is a [`Counter`]: written by exactly one thread (the shard
//! that owns it) with a relaxed load and store — a plain `mov` on x86, no
//! locked instruction — and read by anyone with a relaxed load. A shard's
//! counters sit in its own [`ShardObserve`]; readers sum over shards.
//! [`Counter::reset`] (CONFIG RESETSTAT) moves a *baseline* instead of
//! writing the value, so a reset from another thread never races the writer.
//!
//! Locks exist only off the data path: the client registry is touched on
//! connect, disconnect, CLIENT SETNAME and by readers (CLIENT LIST/KILL); the
//! slow log only when a command was slower than `slowlog-log-slower-than`.
//!
//! # Timing
//!
//! The RESP connection reads the clock once per *executed group*: a run of
//! batched key commands (one [`Shard::execute`](crate::shard::Shard::execute))
//! or one non-batched command, plus once per read event. A run's time is
//! shared evenly among its commands (a 100-command pipeline that took 50 µs
//! records 100 calls of 0.5 µs). `clock_gettime` goes through the vDSO, so no
//! syscall is added.
//!
//! This module knows command names (as slot indexes) and sockets only as raw
//! descriptors to shut down; it never touches the store.

use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_utils::CachePadded;

use super::resp::table;

/// A counter with a single writer (its shard) and any number of readers.
#[derive(Default)]
pub struct Counter {
    value: AtomicU64,
    base: AtomicU64,
}

impl Counter {
    /// Adds `n`. Only the owning shard calls this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.value
            .store(self.value.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The count since start or since the last [`Counter::reset`].
    #[inline]
    pub fn get(&self) -> u64 {
        self.value
            .load(Relaxed)
            .saturating_sub(self.base.load(Relaxed))
    }

    /// Counts from zero again (any thread).
    pub fn reset(&self) {
        self.base.store(self.value.load(Relaxed), Relaxed);
    }
}

/// Sub-buckets per power of two in [`LatencyHist`] (2^3 = 8: a bucket is at
/// most 12.5 % wide).
const SUB_BITS: u32 = 3;
/// Largest power of two tracked: 2^37 ns ≈ 137 s; slower goes to the last bucket.
const MAX_POW: u32 = 37;
/// Buckets of a [`LatencyHist`].
pub const NR_BUCKETS: usize = ((MAX_POW - SUB_BITS + 1) << SUB_BITS) as usize;

/// A log-linear latency histogram in nanoseconds with atomic buckets: every
/// power of two split into 8 equal buckets, so percentiles are within
/// 12.5 % and the power-of-two boundaries (Redis's LATENCY HISTOGRAM and the
/// Prometheus buckets) are exact.
pub struct LatencyHist {
    buckets: Box<[Counter]>,
}

impl Default for LatencyHist {
    fn default() -> Self {
        LatencyHist {
            buckets: (0..NR_BUCKETS).map(|_| Counter::default()).collect(),
        }
    }
}

/// The bucket of a value in ns.
#[inline]
pub fn bucket_of(ns: u64) -> usize {
    if ns < (1 << SUB_BITS) {
        return ns as usize;
    }
    let m = 63 - ns.leading_zeros();
    if m >= MAX_POW {
        return NR_BUCKETS - 1;
    }
    (((m - SUB_BITS + 1) << SUB_BITS) as usize) | ((ns >> (m - SUB_BITS)) as usize & 7)
}

/// The lowest value (ns) of bucket `b`, and one past its highest.
pub fn bucket_range(b: usize) -> (u64, u64) {
    if b < (1 << SUB_BITS) {
        return (b as u64, b as u64 + 1);
    }
    let m = (b >> SUB_BITS) as u32 + SUB_BITS - 1;
    let sub = (b & 7) as u64;
    let lo = (8 + sub) << (m - SUB_BITS);
    (lo, lo + (1 << (m - SUB_BITS)))
}

impl LatencyHist {
    /// Records `count` values of `ns` nanoseconds (owning shard only).
    #[inline]
    pub fn record(&self, ns: u64, count: u64) {
        self.buckets[bucket_of(ns)].add(count);
    }

    /// The bucket counts (a snapshot).
    pub fn counts(&self) -> Vec<u64> {
        self.buckets.iter().map(Counter::get).collect()
    }

    fn reset(&self) {
        self.buckets.iter().for_each(Counter::reset);
    }
}

/// Adds `b`'s counts into `a` (summing shards).
pub fn add_counts(a: &mut [u64], b: &[u64]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// The value (ns, the bucket's highest) at percentile `p` (0–100) of bucket
/// counts, or `None` when empty.
pub fn percentile(counts: &[u64], p: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let target = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (b, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= target {
            return Some(bucket_range(b).1 - 1);
        }
    }
    None
}

/// Values below `2^pow` ns (a power-of-two boundary, exact in these buckets).
pub fn count_below_pow2(counts: &[u64], pow: u32) -> u64 {
    let end = bucket_of(1u64 << pow.min(MAX_POW));
    counts[..end].iter().sum()
}

/// One command's statistics on one shard.
#[derive(Default)]
pub struct CmdStat {
    /// Executed calls.
    pub calls: Counter,
    /// Time spent, in nanoseconds.
    pub nanos: Counter,
    /// Calls refused before running (wrong arity, out of memory).
    pub rejected: Counter,
    /// Calls that ran and answered an error.
    pub failed: Counter,
    /// Per-call latency.
    pub hist: LatencyHist,
}

/// The error codes counted apart (the first word of an error reply); any
/// other counts as `ERR`.
pub const ERROR_CODES: &[&str] = &[
    "ERR",
    "OOM",
    "NOPROTO",
    "WRONGPASS",
    "NOAUTH",
    "NOPERM",
    "WRONGTYPE",
    "MOVED",
    "ASK",
    "CROSSSLOT",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "BUSYKEY",
    "EXECABORT",
    "READONLY",
    "LOADING",
    "MISCONF",
];

/// The index in [`ERROR_CODES`] of an error text (without the `-`).
pub fn error_code(text: &[u8]) -> usize {
    let word = text.split(|&b| b == b' ').next().unwrap_or_default();
    ERROR_CODES
        .iter()
        .position(|c| c.as_bytes() == word)
        .unwrap_or(0)
}

/// Container commands whose statistics are kept per subcommand, as Redis 7
/// does (`cmdstat_config|get`).
pub const SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "client",
        &[
            "id", "getname", "setname", "setinfo", "list", "info", "kill", "help",
        ],
    ),
    ("config", &["get", "set", "resetstat", "help"]),
    ("command", &["count", "list", "info", "docs"]),
    ("latency", &["histogram", "help"]),
    ("slowlog", &["get", "len", "reset", "help"]),
    (
        "cluster",
        &["info", "nodes", "slots", "shards", "myid", "keyslot"],
    ),
];

struct StatNames {
    names: Vec<String>,
    /// Per table row: the first slot of its subcommands and their names.
    subs: Vec<Option<(usize, &'static [&'static str])>>,
}

fn stat_names() -> &'static StatNames {
    static NAMES: OnceLock<StatNames> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<String> = table::all().map(|s| s.name.to_string()).collect();
        let subs = table::all()
            .map(|s| {
                SUBCOMMANDS
                    .iter()
                    .find(|(c, _)| *c == s.name)
                    .map(|(c, list)| {
                        let first = names.len();
                        names.extend(list.iter().map(|x| format!("{c}|{x}")));
                        (first, *list)
                    })
            })
            .collect();
        StatNames { names, subs }
    })
}

/// Number of statistics slots: one per command, one per known subcommand.
pub fn nr_slots() -> usize {
    stat_names().names.len()
}

/// The name of slot `i` (`get`, `config|get`).
pub fn slot_name(i: usize) -> &'static str {
    stat_names().names.get(i).map_or("unknown", String::as_str)
}

/// The slot of a command: table row `row`, and for a container command its
/// first argument (the subcommand).
#[inline]
pub fn slot_of(row: usize, sub: Option<&[u8]>) -> usize {
    match (stat_names().subs.get(row), sub) {
        (Some(Some((first, list))), Some(sub)) => list
            .iter()
            .position(|x| sub.eq_ignore_ascii_case(x.as_bytes()))
            .map_or(row, |j| first + j),
        _ => row,
    }
}

/// One slow log entry (SLOWLOG GET).
#[derive(Clone, Debug)]
pub struct SlowEntry {
    /// Unique, increasing.
    pub id: u64,
    /// Unix time, seconds.
    pub unix_secs: u64,
    /// Duration, microseconds.
    pub micros: u64,
    /// The command's words, shortened as Redis does.
    pub args: Vec<Vec<u8>>,
    /// Client `ip:port`.
    pub addr: String,
    /// Client name.
    pub name: Vec<u8>,
}

/// Most arguments kept of a slow command (Redis's SLOWLOG_ENTRY_MAX_ARGC).
const SLOWLOG_MAX_ARGC: usize = 32;
/// Longest argument kept (Redis's SLOWLOG_ENTRY_MAX_STRING).
const SLOWLOG_MAX_STRING: usize = 128;

/// A command's words as the slow log keeps them.
pub fn slowlog_args(words: &[&[u8]]) -> Vec<Vec<u8>> {
    let keep = if words.len() > SLOWLOG_MAX_ARGC {
        SLOWLOG_MAX_ARGC - 1
    } else {
        words.len()
    };
    let mut out: Vec<Vec<u8>> = words[..keep]
        .iter()
        .map(|w| {
            if w.len() > SLOWLOG_MAX_STRING {
                let mut s = w[..SLOWLOG_MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", w.len() - SLOWLOG_MAX_STRING).as_bytes(),
                );
                s
            } else {
                w.to_vec()
            }
        })
        .collect();
    if keep < words.len() {
        out.push(format!("... ({} more arguments)", words.len() - keep).into_bytes());
    }
    out
}

/// A RESP client as other shards see it (CLIENT LIST, CLIENT KILL).
pub struct ClientShared {
    /// CLIENT ID.
    pub id: u64,
    /// Peer `ip:port`.
    pub addr: String,
    /// Local `ip:port`.
    pub laddr: String,
    /// The socket's descriptor (valid while registered).
    pub fd: RawFd,
    /// The shard serving it.
    pub shard_id: usize,
    /// When it connected.
    pub created: Instant,
    /// CLIENT SETNAME (changed rarely: a lock is fine).
    pub name: Mutex<Vec<u8>>,
    /// Slot of its last command (`u32::MAX`: none yet).
    pub last_cmd: AtomicU32,
    /// Milliseconds since the node started, at its last read event.
    pub last_active_ms: AtomicU64,
    /// Read buffer size (rbs) and unparsed bytes in it (qbuf).
    pub read_buf: AtomicU64,
    /// Unparsed bytes in the read buffer.
    pub qbuf: AtomicU64,
    /// Output buffer capacity.
    pub out_buf: AtomicU64,
    /// Set by CLIENT KILL: the connection closes.
    pub killed: AtomicBool,
    /// The protocol version it speaks (2, or 3 after HELLO 3).
    pub resp: AtomicU8,
    /// The database the client has selected (CLIENT LIST's `db=`).
    pub db: AtomicU32,
}

impl ClientShared {
    /// A client just connected to `shard_id` on socket `fd`, with a fresh id.
    pub fn new(shard_id: usize, fd: RawFd, addr: String, laddr: String) -> ClientShared {
        ClientShared {
            id: NEXT_CLIENT_ID.fetch_add(1, Relaxed),
            addr,
            laddr,
            fd,
            shard_id,
            created: Instant::now(),
            name: Mutex::new(Vec::new()),
            last_cmd: AtomicU32::new(u32::MAX),
            db: AtomicU32::new(0),
            last_active_ms: AtomicU64::new(0),
            read_buf: AtomicU64::new(0),
            qbuf: AtomicU64::new(0),
            out_buf: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            resp: AtomicU8::new(2),
        }
    }
}

/// Client ids, unique in the process (CLIENT ID, HELLO, CLIENT LIST).
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// A client's name (empty: none).
pub fn lock_name(c: &ClientShared) -> Vec<u8> {
    lock(&c.name).clone()
}

/// Sets a client's name.
pub fn set_name(c: &ClientShared, name: &[u8]) {
    let mut n = lock(&c.name);
    n.clear();
    n.extend_from_slice(name);
}

/// One shard's statistics. Written only by that shard's thread.
pub struct ShardObserve {
    /// Per statistics slot.
    pub cmds: Box<[CmdStat]>,
    /// Error replies per [`ERROR_CODES`] entry.
    pub errors: Box<[Counter]>,
    /// Read events (a read from a client socket that returned data).
    pub reads: Counter,
    /// Write events (a write of replies to a client socket).
    pub writes: Counter,
    /// Bytes read from client sockets.
    pub net_in: Counter,
    /// Bytes written to client sockets.
    pub net_out: Counter,
    /// Connections accepted.
    pub accepted: Counter,
    /// Connections refused (at the connection limit).
    pub rejected_conns: Counter,
    slowlog: Mutex<VecDeque<SlowEntry>>,
    clients: Mutex<HashMap<u64, Arc<ClientShared>>>,
}

impl ShardObserve {
    fn new() -> ShardObserve {
        ShardObserve {
            cmds: (0..nr_slots()).map(|_| CmdStat::default()).collect(),
            errors: ERROR_CODES.iter().map(|_| Counter::default()).collect(),
            reads: Counter::default(),
            writes: Counter::default(),
            net_in: Counter::default(),
            net_out: Counter::default(),
            accepted: Counter::default(),
            rejected_conns: Counter::default(),
            slowlog: Mutex::new(VecDeque::new()),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Records a group of `calls` calls of slot `slot` that took `nanos` in all.
    #[inline]
    pub fn record(&self, slot: usize, calls: u64, nanos: u64) {
        if let Some(c) = self.cmds.get(slot) {
            c.calls.add(calls);
            c.nanos.add(nanos);
            c.hist.record(nanos / calls.max(1), calls);
        }
    }

    /// Counts an error reply.
    #[inline]
    pub fn count_error(&self, text: &[u8]) {
        self.errors[error_code(text)].add(1);
    }
}

/// Default `slowlog-log-slower-than`, µs (Redis's).
pub const DEFAULT_SLOWLOG_SLOWER_THAN: i64 = 10_000;
/// Default `slowlog-max-len` (Redis's).
pub const DEFAULT_SLOWLOG_MAX_LEN: u64 = 128;

/// A node's observability state: one [`ShardObserve`] per shard plus the
/// settings CONFIG SET changes at run time. `Send + Sync`.
pub struct Observe {
    shards: Vec<CachePadded<ShardObserve>>,
    /// `slowlog-log-slower-than`, µs (negative: off, 0: every command).
    pub slowlog_slower_than: AtomicI64,
    /// `slowlog-max-len`.
    pub slowlog_max_len: AtomicU64,
    slowlog_next_id: AtomicU64,
    started: Instant,
    /// The node counters at the last CONFIG RESETSTAT (see [`NodeBase`]).
    node_base: Mutex<NodeBase>,
}

/// Node counters kept by the shards themselves (commands, error replies,
/// GET hits and misses) as they were at the last CONFIG RESETSTAT: INFO
/// reports the difference.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeBase {
    /// total_commands_processed.
    pub ops: u64,
    /// total_error_replies.
    pub errors: u64,
    /// keyspace_hits.
    pub hits: u64,
    /// keyspace_misses.
    pub misses: u64,
}

impl Observe {
    /// State for `nr_shards` shards.
    pub fn new(nr_shards: usize) -> Observe {
        Observe {
            shards: (0..nr_shards)
                .map(|_| CachePadded::new(ShardObserve::new()))
                .collect(),
            slowlog_slower_than: AtomicI64::new(DEFAULT_SLOWLOG_SLOWER_THAN),
            slowlog_max_len: AtomicU64::new(DEFAULT_SLOWLOG_MAX_LEN),
            slowlog_next_id: AtomicU64::new(0),
            started: Instant::now(),
            node_base: Mutex::new(NodeBase::default()),
        }
    }

    /// Shard `i`'s statistics.
    pub fn shard(&self, i: usize) -> &ShardObserve {
        &self.shards[i]
    }

    /// Every shard's statistics.
    pub fn shards(&self) -> impl Iterator<Item = &ShardObserve> {
        self.shards.iter().map(|s| &**s)
    }

    /// Milliseconds since the node started (the clients' activity clock).
    pub fn millis(&self, now: Instant) -> u64 {
        now.duration_since(self.started).as_millis() as u64
    }

    /// CONFIG RESETSTAT: every counter of every shard from zero.
    pub fn reset_stats(&self) {
        for s in self.shards() {
            for c in s.cmds.iter() {
                c.calls.reset();
                c.nanos.reset();
                c.rejected.reset();
                c.failed.reset();
                c.hist.reset();
            }
            s.errors.iter().for_each(Counter::reset);
            for c in [
                &s.reads,
                &s.writes,
                &s.net_in,
                &s.net_out,
                &s.accepted,
                &s.rejected_conns,
            ] {
                c.reset();
            }
        }
    }

    /// Sets the node counters' baseline (CONFIG RESETSTAT).
    pub fn set_node_base(&self, base: NodeBase) {
        *lock(&self.node_base) = base;
    }

    /// The node counters' baseline.
    pub fn node_base(&self) -> NodeBase {
        *lock(&self.node_base)
    }

    /// A command's figures summed over shards: (calls, nanos, rejected, failed).
    pub fn cmd_totals(&self, slot: usize) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for s in self.shards() {
            let c = &s.cmds[slot];
            t.0 += c.calls.get();
            t.1 += c.nanos.get();
            t.2 += c.rejected.get();
            t.3 += c.failed.get();
        }
        t
    }

    /// A command's histogram summed over shards.
    pub fn cmd_hist(&self, slot: usize) -> Vec<u64> {
        let mut counts = vec![0; NR_BUCKETS];
        for s in self.shards() {
            add_counts(&mut counts, &s.cmds[slot].hist.counts());
        }
        counts
    }

    /// Error replies per code, summed over shards.
    pub fn error_totals(&self) -> Vec<u64> {
        let mut t = vec![0; ERROR_CODES.len()];
        for s in self.shards() {
            add_counts(
                &mut t,
                &s.errors.iter().map(Counter::get).collect::<Vec<_>>(),
            );
        }
        t
    }

    /// Sum of one counter over shards.
    pub fn sum(&self, f: impl Fn(&ShardObserve) -> &Counter) -> u64 {
        self.shards().map(|s| f(s).get()).sum()
    }

    /// Whether a command of `nanos` goes to the slow log.
    #[inline]
    pub fn is_slow(&self, nanos: u64) -> bool {
        let t = self.slowlog_slower_than.load(Relaxed);
        t >= 0 && nanos / 1000 >= t as u64
    }

    /// Adds a slow log entry on `shard_id`.
    pub fn log_slow(
        &self,
        shard_id: usize,
        micros: u64,
        args: Vec<Vec<u8>>,
        addr: String,
        name: Vec<u8>,
    ) {
        let max = self.slowlog_max_len.load(Relaxed) as usize;
        let entry = SlowEntry {
            id: self.slowlog_next_id.fetch_add(1, Relaxed),
            unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            micros,
            args,
            addr,
            name,
        };
        let mut log = lock(&self.shards[shard_id].slowlog);
        log.push_front(entry);
        log.truncate(max);
    }

    /// The newest `count` slow log entries of the node (`None`: all kept),
    /// newest first.
    pub fn slowlog(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let mut all: Vec<SlowEntry> = self
            .shards()
            .flat_map(|s| lock(&s.slowlog).iter().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.id));
        let max = self.slowlog_max_len.load(Relaxed) as usize;
        all.truncate(count.unwrap_or(usize::MAX).min(max));
        all
    }

    /// SLOWLOG LEN: entries kept on the node.
    pub fn slowlog_len(&self) -> usize {
        let n: usize = self.shards().map(|s| lock(&s.slowlog).len()).sum();
        n.min(self.slowlog_max_len.load(Relaxed) as usize)
    }

    /// SLOWLOG RESET.
    pub fn slowlog_reset(&self) {
        self.shards().for_each(|s| lock(&s.slowlog).clear());
    }

    /// Registers a connected client.
    pub fn register(&self, c: Arc<ClientShared>) {
        lock(&self.shards[c.shard_id].clients).insert(c.id, c);
    }

    /// Removes a client; called by its connection *before* its socket is
    /// closed, so a concurrent [`Observe::kill`] never shuts down a reused
    /// descriptor.
    pub fn unregister(&self, shard_id: usize, id: u64) {
        lock(&self.shards[shard_id].clients).remove(&id);
    }

    /// Every registered client, by id.
    pub fn clients(&self) -> Vec<Arc<ClientShared>> {
        let mut v: Vec<Arc<ClientShared>> = self
            .shards()
            .flat_map(|s| lock(&s.clients).values().cloned().collect::<Vec<_>>())
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Kills a client: marks it, and unless it is `me` (which closes after
    /// its reply) shuts its socket down so its connection ends. Returns
    /// whether it was still connected and not already killed.
    pub fn kill(&self, c: &ClientShared, me: u64) -> bool {
        let clients = lock(&self.shards[c.shard_id].clients);
        // Gone, or already killed and on its way out.
        if !clients.contains_key(&c.id) || c.killed.swap(true, Relaxed) {
            return false;
        }
        if c.id != me {
            // SAFETY: the client is registered, and its connection removes
            // it (under this lock, which we hold) before closing the socket,
            // so `fd` is still that connection's socket. shutdown(2) only
            // wakes its pending reads and writes.
            unsafe { libc::shutdown(c.fd, libc::SHUT_RDWR) };
        }
        true
    }
}

/// Locks a mutex, ignoring poisoning (the data is counters and lists).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_exact_at_powers_of_two() {
        let mut prev_hi = 0;
        for b in 0..NR_BUCKETS {
            let (lo, hi) = bucket_range(b);
            assert_eq!(lo, prev_hi, "bucket {b}");
            assert!(hi > lo);
            assert_eq!(bucket_of(lo), b);
            assert_eq!(bucket_of(hi - 1), b);
            prev_hi = hi;
        }
        for pow in 4..MAX_POW {
            assert_eq!(bucket_range(bucket_of(1 << pow)).0, 1 << pow);
        }
        assert_eq!(bucket_of(u64::MAX), NR_BUCKETS - 1);
    }

    #[test]
    fn percentiles_within_an_eighth() {
        let h = LatencyHist::default();
        for v in 1..=1000u64 {
            h.record(v * 1000, 1);
        }
        let c = h.counts();
        let p50 = percentile(&c, 50.0).unwrap() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.125, "{p50}");
        let p99 = percentile(&c, 99.0).unwrap() as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.125, "{p99}");
        assert_eq!(count_below_pow2(&c, 10), 1); // 1000 ns < 1024 ns
        assert_eq!(count_below_pow2(&c, 20), 1000);
        assert!(percentile(&[0; 4], 50.0).is_none());
    }

    #[test]
    fn reset_moves_the_baseline() {
        let o = Observe::new(2);
        o.shard(1).record(0, 3, 3000);
        o.shard(0).record(0, 1, 1000);
        assert_eq!(o.cmd_totals(0), (4, 4000, 0, 0));
        o.reset_stats();
        assert_eq!(o.cmd_totals(0), (0, 0, 0, 0));
        o.shard(0).record(0, 2, 10);
        assert_eq!(o.cmd_totals(0).0, 2);
        assert_eq!(o.cmd_hist(0).iter().sum::<u64>(), 2);
    }

    #[test]
    fn slots_per_subcommand() {
        let config_row = table::all().position(|s| s.name == "config").unwrap();
        let s = slot_of(config_row, Some(b"GET"));
        assert_eq!(slot_name(s), "config|get");
        assert_eq!(slot_of(config_row, Some(b"nosuch")), config_row);
        assert_eq!(slot_of(0, Some(b"get")), 0);
        assert_eq!(slot_name(0), "get");
    }

    #[test]
    fn error_codes_and_slowlog_args() {
        assert_eq!(ERROR_CODES[error_code(b"OOM command not allowed")], "OOM");
        assert_eq!(ERROR_CODES[error_code(b"WHATEVER x")], "ERR");
        let long = [b'x'; 200];
        let words: Vec<&[u8]> = std::iter::repeat(&long[..]).take(40).collect();
        let a = slowlog_args(&words);
        assert_eq!(a.len(), 32);
        assert_eq!(a[31], b"... (9 more arguments)");
        assert!(a[0].ends_with(b"... (72 more bytes)"));
    }
}
