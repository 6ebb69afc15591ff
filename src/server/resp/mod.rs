//! RESP (Redis protocol) connections: read, parse, dispatch, answer.
//!
//! This module owns the connection loop and the dispatch of one command:
//! look its name up in the table, check its arity, flush the queued run
//! first unless it is a batched key command, run its handler, and turn a
//! handler's error into Redis's error reply. Every key operation goes
//! through [`Shard::execute`] (see `run`), so forwarding to the owner
//! shard, per-key order and counters are the same as for native batches. It
//! knows sockets and the reply format, not the store's internals.
//!
//! | module | holds |
//! |---|---|
//! | `table` | `Spec` (a table row), the `Parse` argument cursor, `CmdError` |
//! | `run` | the batched path: queued ops, one `Shard::execute`, the reply sink |
//! | `fast` | the fast lane: plain GET / SET frames recognised from their bytes and queued without the general parse and dispatch |
//! | `strings` | GET SET MGET MSET INCR DECR INCRBY DECRBY INCRBYFLOAT STRLEN SETNX GETSET GETDEL GETRANGE SUBSTR SETRANGE APPEND LCS |
//! | `keys` | DEL EXISTS (and later the other generic key commands) |
//! | `multikey` | MSETNX RENAME RENAMENX COPY, and MSET MGET DEL EXISTS over keys of several shards: one transaction each (`shard::txn`) |
//! | `keyspace` | SWAPDB MOVE KEYS SCAN RANDOMKEY TYPE TOUCH UNLINK OBJECT DEBUG |
//! | `expiry` | SET's expiry options, SETEX PSETEX GETEX EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST |
//! | `server` | DBSIZE FLUSHDB FLUSHALL INFO COMMAND CONFIG SAVE BGSAVE BGREWRITEAOF LASTSAVE |
//! | `diagnostics` | SLOWLOG LATENCY (from `server::observe`) |
//! | `connection` | PING ECHO SELECT CLIENT HELLO AUTH QUIT |
//! | `cluster` | CLUSTER READONLY READWRITE ASKING, and the MOVED/CROSSSLOT check |
//!
//! A new family is a module with a `COMMANDS` slice, listed in
//! `table::FAMILIES`.
//!
//! On a cluster of more than one node, every command with keys (a row with
//! `first_key > 0`) passes `cluster::check_keys` before its handler (after
//! the NOAUTH check, as Redis): a key
//! of another node is answered `-MOVED` / `-CROSSSLOT` and never queued.
//!
//! # Statistics
//!
//! Every dispatched command is counted in this shard's
//! [`ShardObserve`](super::observe::ShardObserve) (INFO commandstats,
//! errorstats, latencystats; LATENCY HISTOGRAM; SLOWLOG): one clock reading
//! per executed run of batched commands (its time shared evenly among them)
//! and one per other command, never a lock or an allocation. Wrong arity is a
//! rejected call; a handler's error or an error reply from the store is a
//! failed call.
//!
//! # Adding a command (one place)
//!
//! In its family module, add a `table::Spec` row to `COMMANDS` (name,
//! arity, flags, key positions, docs, `batched`, `handler`) and write the
//! handler beside it: `fn(&mut Connection, &mut Parse) -> Result<Effect,
//! CmdError>`. Read arguments with `p.next_range()?` (a key or value queued
//! in place), `p.next_bytes()?`, `p.next_int()?`, and end with `p.finish()?`;
//! a missing or extra argument becomes Redis's wrong-arity error. A batched
//! handler queues ops (`conn.run.op(kind, key, value)` then
//! `conn.run.plan(style, n)`) only after every argument is checked; any other
//! handler writes its reply into `conn.out`. Errors are Redis's exact texts;
//! prove them with a differential test against redis-server (tests/resp.rs).
//!
//! # Bad input
//!
//! A framing error (see [`crate::protocol::resp`]) is answered with
//! `-ERR Protocol error: ...` after the replies to the commands before it,
//! and the connection is closed; so is a command bigger than the query buffer
//! limit ([`Limits::max_frame_bytes`]). Errors in a well-formed command
//! (unknown command, wrong arity, syntax) are ordinary replies, counted with
//! [`Shard::count_protocol_error`]. Nothing here panics on network input.
//!
//! # Bounds and access
//!
//! The read buffer starts small and doubles only when full, each growth
//! charged first to the shard's `--max-conn-memory` share (see
//! [`super::conn`]). A run is executed as soon as its worst-case reply
//! passes `--max-reply-bytes`, and replies are written out once
//! [`DRAIN_AT`] bytes are pending (`Flow::Drain`), so a pipeline of big
//! values streams; one command whose reply alone passes the bound (an MGET
//! of one big key 512 times) is answered with an error instead. A command
//! left half-sent past `--client-timeout` closes the connection; idle
//! buffers are released. With `--requirepass`, every command but AUTH,
//! HELLO and QUIT (`no_auth` in the table) gets Redis's NOAUTH until the
//! client authenticates; unknown commands and wrong arity are answered
//! first, as Redis does.

pub(crate) mod cluster;
pub(crate) mod connection;
pub(crate) mod diagnostics;
pub(crate) mod expiry;
pub(crate) mod fast;
pub(crate) mod keys;
pub(crate) mod keyspace;
pub(crate) mod multikey;
pub(crate) mod run;
pub(crate) mod server;
pub(crate) mod strings;
pub(crate) mod table;

use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::config::{Limits, Security};
use crate::op::OpError;
use crate::protocol::resp::{self, parse_command, Proto};
use crate::shard::Shard;

use super::observe::{self, ClientShared, Observe, ShardObserve};

use connection::Client;
pub(crate) use run::Style;
use run::{RespSink, Run};
use table::{CmdError, Effect, Parse};

use super::conn::{
    let_reactor_run, Charge, Deadlines, Expired, BUDGET_EXCEEDED, DRAIN_AT, INITIAL_READ,
    KEEP_BUFFER,
};

/// The Redis version corekv reports (INFO, HELLO): the command set and
/// reply formats follow Redis 7.0.
pub const REDIS_COMPAT_VERSION: &str = "7.0.0";

/// A read that fills the buffer doubles it for the next read, up to this
/// size: a pipeline of this many bytes is then read, executed and answered
/// in one read and one write, not in 4 KiB slices (a `-P 256` SET pipeline
/// is ~45 KB). Equal to [`KEEP_BUFFER`], so a buffer grown this way is kept
/// when the connection goes quiet.
const READ_GROW_MAX: usize = KEEP_BUFFER;

/// When the free space after a partial command drops below this, the partial
/// command is moved to the front of the read buffer.
const COMPACT_BELOW: usize = 16 * 1024;

/// What the connection loop does after a read has been processed.
pub(crate) enum Flow {
    /// Keep reading.
    Continue,
    /// Write what is pending, then close (QUIT, protocol error).
    Close,
    /// Write what is pending now, then go on with the rest of the buffer
    /// before reading more (replies piled up past [`DRAIN_AT`]).
    Drain,
}

/// Until `serve` gives a connection the node's rules: no password.
static OPEN: Security = Security {
    requirepass: None,
    protected_mode: false,
};

/// One RESP connection's state. Buffers are reused for its whole life.
pub(crate) struct Connection<'s> {
    pub(crate) shard: &'s Shard,
    pub(crate) limits: &'s Limits,
    /// The node's statistics, slow log and clients.
    pub(crate) obs: &'s Observe,
    /// This shard's statistics (written only here, on this shard).
    stats: &'s ShardObserve,
    parse_limits: resp::Limits,
    args: Vec<Range<usize>>,
    pub(crate) run: Run,
    /// Per command queued in the run: its statistics slot and frame.
    queued: Vec<(u32, Range<usize>)>,
    /// Error replies of the last run, by plan (for the statistics).
    failed: Vec<(u32, OpError)>,
    /// The last clock reading: the start of the next group's time.
    last: Instant,
    pub(crate) out: Vec<u8>,
    pub(crate) client: Client,
    /// Who may do what (`--requirepass`).
    pub(crate) security: &'s Security,
    /// The client has authenticated (or no password is set).
    pub(crate) authed: bool,
    /// Worst-case reply bytes of the queued run.
    run_worst: usize,
    /// The protocol this connection speaks (HELLO 3 switches to RESP3).
    pub(crate) proto: Proto,
    /// The selected database (SELECT): every command of a queued run runs
    /// in it, and SELECT, not being batched, ends the run.
    pub(crate) db: u16,
    /// A keyspace command checked by its handler, answered by
    /// [`keyspace::finish`] ([`Effect::Keyspace`]).
    pub(crate) pending: Option<keyspace::Pending>,
    /// A multi-key command a handler left to run as a transaction.
    pub(crate) atomic: Option<multikey::Atomic>,
}

impl<'s> Connection<'s> {
    fn new(
        shard: &'s Shard,
        limits: &'s Limits,
        obs: &'s Observe,
        client: Client,
    ) -> Connection<'s> {
        Connection {
            shard,
            limits,
            obs,
            stats: obs.shard(shard.shard_id),
            parse_limits: parse_limits(limits),
            args: Vec::new(),
            run: Run::default(),
            queued: Vec::new(),
            failed: Vec::new(),
            last: Instant::now(),
            out: Vec::new(),
            client,
            security: &OPEN,
            authed: true,
            run_worst: 0,
            proto: Proto::Resp2,
            db: 0,
            pending: None,
            atomic: None,
        }
    }

    /// Applies the node's access rules: with a password, nothing but AUTH,
    /// HELLO and QUIT until the client authenticates.
    fn with_security(mut self, security: &'s Security) -> Connection<'s> {
        self.security = security;
        self.authed = security.requirepass.is_none();
        self
    }

    /// Bytes this connection's buffers other than the read buffer hold.
    fn cost(&self) -> usize {
        self.out.capacity()
            + self.args.capacity() * std::mem::size_of::<Range<usize>>()
            + self.queued.capacity() * std::mem::size_of::<(u32, Range<usize>)>()
            + self.run.capacity_bytes()
    }

    /// Gives idle buffers back (after a quiet spell).
    fn shrink(&mut self) {
        self.out = Vec::new();
        self.args = Vec::new();
        self.queued = Vec::new();
        self.run = Run::default();
    }

    /// Executes the queued run (one [`Shard::execute`]) and encodes its
    /// replies into `out`; then one clock reading times the whole run.
    pub(crate) async fn flush(&mut self, buf: &[u8]) {
        if self.run.is_empty() {
            return;
        }
        let view = self.run.view(buf);
        let mark = self.out.len();
        let log_mark = self.shard.log_mark();
        // One command's reply may take `--max-reply-bytes`; all of them
        // together no more than half of what the budget has left.
        let end = self
            .out
            .len()
            .saturating_add(self.shard.conn_memory_left() / 2);
        let limit = self.limits.max_reply_bytes;
        let mut sink = RespSink::new(
            self.run.plans(),
            &mut self.out,
            &mut self.failed,
            limit,
            end,
        )
        .proto(self.proto)
        .lcs_limit(self.limits.max_value_len);
        self.shard.execute_in(self.db, &view, &mut sink).await;
        // With `appendfsync always`: the run's one group commit, before any
        // of its replies is released; if it fails, each command gets MISCONF.
        if let Err(e) = self.shard.before_reply(log_mark).await {
            self.out.truncate(mark);
            self.failed.clear();
            for i in 0..self.run.plans().len() {
                run::push_op_error(&mut self.out, e);
                self.failed.push((i as u32, e));
            }
        }
        self.run.clear();
        self.run_worst = 0;
        self.account_run(buf);
    }

    /// The run's statistics: its time shared evenly among its commands
    /// (consecutive calls of one command recorded together), its error
    /// replies, and slow-log entries.
    fn account_run(&mut self, buf: &[u8]) {
        let nanos = self.lap();
        let n = self.queued.len().max(1) as u64;
        let per_call = nanos / n;
        let mut i = 0;
        while i < self.queued.len() {
            let slot = self.queued[i].0;
            let mut j = i + 1;
            while j < self.queued.len() && self.queued[j].0 == slot {
                j += 1;
            }
            self.stats
                .record(slot as usize, (j - i) as u64, per_call * (j - i) as u64);
            i = j;
        }
        if let Some(&(slot, _)) = self.queued.last() {
            self.client.shared.last_cmd.store(slot, Relaxed);
        }
        let mut last_failed = u32::MAX;
        for &(plan, e) in &self.failed {
            let code = match e {
                OpError::OutOfMemory => "OOM",
                OpError::PersistFailed => "MISCONF",
                _ => "ERR",
            };
            self.stats.count_error(code.as_bytes());
            if plan != last_failed {
                if let Some(&(slot, _)) = self.queued.get(plan as usize) {
                    self.stats.cmds[slot as usize].failed.add(1);
                }
                last_failed = plan;
            }
        }
        self.failed.clear();
        if self.obs.is_slow(per_call) {
            let max = self.obs.slowlog_max_len.load(Relaxed) as usize;
            let queued = std::mem::take(&mut self.queued);
            for (_, frame) in queued.iter().take(max) {
                let mut words = Vec::new();
                if let Ok(Some(_)) =
                    parse_command(&buf[frame.clone()], &self.parse_limits, &mut words)
                {
                    let words: Vec<&[u8]> = words
                        .iter()
                        .map(|r| &buf[frame.start + r.start..frame.start + r.end])
                        .collect();
                    self.log_slow(per_call, &words);
                }
            }
            self.queued = queued;
        }
        self.queued.clear();
    }

    /// Nanoseconds since the last clock reading, and a new reading.
    #[inline]
    fn lap(&mut self) -> u64 {
        let now = Instant::now();
        let nanos = now.duration_since(self.last).as_nanos() as u64;
        self.last = now;
        nanos
    }

    fn log_slow(&self, nanos: u64, words: &[&[u8]]) {
        let name = observe::lock_name(&self.client.shared);
        self.obs.log_slow(
            self.shard.shard_id,
            nanos / 1000,
            observe::slowlog_args(words),
            self.client.shared.addr.clone(),
            name,
        );
    }

    /// Runs one command (`args[0]` its name, ranges into `buf`, the whole
    /// command `frame`).
    async fn dispatch(&mut self, buf: &[u8], args: &[Range<usize>], frame: Range<usize>) -> Flow {
        let (row, spec) = match table::lookup_row(&buf[args[0].clone()]) {
            Some((row, spec)) if spec.arity_ok(args.len()) => (row, spec),
            Some((row, spec)) => {
                let flow = self.reject(buf, CmdError::wrong_arity(spec.name)).await;
                self.stats.cmds[row].rejected.add(1);
                return flow;
            }
            None => return self.reject(buf, table::unknown_command(buf, args)).await,
        };
        // As Redis: unknown commands and wrong arity first, then NOAUTH,
        // then the cluster's redirects.
        if !self.authed && !spec.flags.contains(&"no_auth") {
            let flow = self
                .reject(buf, CmdError::msg("NOAUTH Authentication required."))
                .await;
            self.stats.cmds[row].rejected.add(1);
            return flow;
        }
        if spec.first_key > 0 && self.shard.cluster.nr_nodes() > 1 {
            if let Err(e) = cluster::check_keys(self, spec, buf, args) {
                return self.reject(buf, e).await;
            }
        }
        if !spec.batched {
            self.flush(buf).await;
        }
        let slot = if spec.batched {
            row
        } else {
            observe::slot_of(row, args.get(1).map(|a| &buf[a.clone()]))
        };
        let mut parse = Parse::new(spec.name, buf, &args[1..]);
        let result = (spec.handler)(self, &mut parse);
        let flow = match result {
            Ok(Effect::Continue) if spec.batched => {
                self.queued.push((slot as u32, frame));
                return Flow::Continue;
            }
            Ok(Effect::Continue) => Flow::Continue,
            Ok(Effect::Close) => Flow::Close,
            Ok(Effect::Save) => {
                match self.shard.rewrite_all().await {
                    Ok(()) => self.out.extend_from_slice(b"+OK\r\n"),
                    Err(e) => resp::error(&mut self.out, &format!("ERR {e}")),
                }
                Flow::Continue
            }
            Ok(Effect::Atomic) => {
                // The commands queued before it run first.
                self.flush(buf).await;
                match multikey::execute(self).await {
                    Ok(()) => {}
                    Err(e) => {
                        self.stats.count_error(e.0.as_bytes());
                        resp::error(&mut self.out, &e.0);
                        self.stats.cmds[slot].failed.add(1);
                    }
                }
                Flow::Continue
            }
            Ok(Effect::Keyspace) => {
                keyspace::finish(self).await;
                Flow::Continue
            }
            Ok(Effect::FlushDb) => {
                // Under the node-wide barrier, as FLUSHALL.
                let shard = self.shard;
                match shard.with_barrier(shard.flush_db(self.db)).await {
                    Ok(()) => self.out.extend_from_slice(b"+OK\r\n"),
                    Err(e) => {
                        self.shard.count_protocol_error();
                        run::push_op_error(&mut self.out, e);
                    }
                }
                Flow::Continue
            }
            Ok(Effect::FlushAll) => {
                if self.shard.log().is_some_and(|l| l.failed().is_some()) {
                    // A write while the log cannot be written: MISCONF.
                    self.shard.count_protocol_error();
                    run::push_op_error(&mut self.out, crate::op::OpError::PersistFailed);
                } else {
                    // A node-wide barrier: no cross-shard transaction is
                    // half-applied when the shards are emptied.
                    let shard = self.shard;
                    shard.with_barrier(shard.flush_all()).await;
                    self.out.extend_from_slice(b"+OK\r\n");
                }
                Flow::Continue
            }
            Ok(Effect::SlotKeys { slot, limit }) => {
                let (count, keys) = self.shard.slot_keys(slot, limit.unwrap_or(0)).await;
                cluster::slot_keys_reply(&mut self.out, limit, count, &keys);
                Flow::Continue
            }
            Ok(Effect::Configure { max_memory, policy }) => {
                self.shard.configure_all(max_memory, policy).await;
                self.out.extend_from_slice(b"+OK\r\n");
                Flow::Continue
            }
            Err(e) => {
                let flow = self.reject(buf, e).await;
                self.stats.cmds[slot].failed.add(1);
                flow
            }
        };
        // A non-batched command (or a batched one that failed): one clock
        // reading for this command alone.
        let nanos = self.lap();
        self.stats.record(slot, 1, nanos);
        self.client.shared.last_cmd.store(slot as u32, Relaxed);
        if self.obs.is_slow(nanos) {
            let words: Vec<&[u8]> = args.iter().map(|a| &buf[a.clone()]).collect();
            self.log_slow(nanos, &words);
        }
        flow
    }

    /// Answers a command with an error, after the replies of the commands
    /// queued before it.
    async fn reject(&mut self, buf: &[u8], e: CmdError) -> Flow {
        self.flush(buf).await;
        self.shard.count_protocol_error();
        self.stats.count_error(e.0.as_bytes());
        resp::error(&mut self.out, &e.0);
        Flow::Continue
    }

    /// Whether plain GET and SET frames may take the fast lane (`fast`):
    /// nothing but queueing applies to them — the client is authenticated,
    /// the node is the whole cluster (no MOVED check), and the parser takes
    /// commands of three arguments.
    #[inline]
    fn fast_lane(&self) -> bool {
        self.authed && self.parse_limits.max_args >= 3 && self.shard.cluster.nr_nodes() <= 1
    }

    /// After a command queued into the run: bound what one run can reply
    /// (execute it once its worst case passes the reply limit), and have
    /// replies written out as they pile up (`Some(Flow::Drain)`).
    #[inline]
    async fn queued_one(&mut self, buf: &[u8]) -> Option<Flow> {
        let worst = self.run.worst_of_last(self.limits.max_value_len);
        self.run_worst = self.run_worst.saturating_add(worst);
        if self.run_worst > self.limits.max_reply_bytes {
            self.flush(buf).await;
        }
        (self.out.len() >= DRAIN_AT).then_some(Flow::Drain)
    }

    /// Handles every complete command in `buf[pos..]`. Returns where the
    /// first incomplete command starts and what to do next. The run is
    /// flushed before returning.
    async fn process(&mut self, buf: &[u8], mut pos: usize) -> (usize, Flow) {
        let mut args = std::mem::take(&mut self.args);
        let mut lane = self.fast_lane();
        let max_bulk = self.parse_limits.max_bulk_len;
        let flow = loop {
            if lane {
                if let Some((cmd, n)) = fast::recognise(buf, pos, max_bulk) {
                    let frame = pos..pos + n;
                    pos += n;
                    let row = match cmd {
                        fast::Fast::Get { key } => {
                            strings::queue_get(self, key);
                            fast::GET_ROW
                        }
                        fast::Fast::Set { key, value } => {
                            let value_bytes = &buf[value.clone()];
                            expiry::queue_set(self, key, value, value_bytes, 0, 0);
                            fast::SET_ROW
                        }
                    };
                    self.queued.push((row, frame));
                    if let Some(flow) = self.queued_one(buf).await {
                        break flow;
                    }
                    continue;
                }
            }
            match parse_command(&buf[pos..], &self.parse_limits, &mut args) {
                Ok(Some(n)) => {
                    let base = pos;
                    pos += n;
                    if args.is_empty() {
                        continue;
                    }
                    for a in args.iter_mut() {
                        a.start += base;
                        a.end += base;
                    }
                    let plans = self.run.plans().len();
                    if let Flow::Close = self.dispatch(buf, &args, base..pos).await {
                        break Flow::Close;
                    }
                    // AUTH / HELLO may have changed what the lane needs.
                    lane = self.fast_lane();
                    if self.run.plans().len() > plans {
                        if let Some(flow) = self.queued_one(buf).await {
                            break flow;
                        }
                    } else if self.out.len() >= DRAIN_AT {
                        break Flow::Drain;
                    }
                }
                Ok(None) => break Flow::Continue,
                Err(e) => {
                    self.flush(buf).await;
                    self.shard.count_protocol_error();
                    self.stats.count_error(b"ERR");
                    resp::error(&mut self.out, &format!("ERR {e}"));
                    break Flow::Close;
                }
            }
        };
        self.flush(buf).await;
        self.args = args;
        (pos, flow)
    }
}

/// The parser limits for a connection: arguments up to the largest key or
/// value (values beyond `max_value_len` but within the parser limit get a
/// per-command "value too large" error instead of a dropped connection),
/// at most `max_batch_ops` arguments per command.
pub(crate) fn parse_limits(limits: &Limits) -> resp::Limits {
    resp::Limits {
        max_bulk_len: resp::DEFAULT_MAX_BULK_LEN
            .max(limits.max_value_len)
            .max(limits.max_key_len)
            .min(limits.max_frame_bytes),
        max_args: limits.max_batch_ops,
        max_inline_len: resp::DEFAULT_MAX_INLINE_LEN,
    }
}

/// Serves one RESP connection until it closes, sends QUIT, misbehaves or is
/// killed (CLIENT KILL). The client is in the node's registry while served.
pub async fn serve(
    shard: &Shard,
    mut stream: TcpStream,
    limits: &Limits,
    security: &Security,
    obs: &Observe,
) {
    let addr = |a: Result<std::net::SocketAddr, _>| a.map_or(String::new(), |a| a.to_string());
    let shared = Arc::new(ClientShared::new(
        shard.shard_id,
        stream.as_raw_fd(),
        addr(stream.peer_addr()),
        addr(stream.local_addr()),
    ));
    crate::log!(
        crate::log::Level::Debug,
        "corekv: client id={} addr={} connected to shard {}",
        shared.id,
        shared.addr,
        shard.shard_id
    );
    obs.register(shared.clone());
    let mut conn =
        Connection::new(shard, limits, obs, Client::with_shared(shared)).with_security(security);
    serve_conn(&mut conn, &mut stream).await;
    // Out of the registry before the socket closes (see `Observe::kill`).
    obs.unregister(shard.shard_id, conn.client.id);
    let _ = stream.close().await;
    crate::log!(
        crate::log::Level::Debug,
        "corekv: client id={} addr={} closed{}",
        conn.client.id,
        conn.client.shared.addr,
        if conn.client.shared.killed.load(Relaxed) {
            " (CLIENT KILL)"
        } else {
            ""
        }
    );
}

/// The connection loop. Returns with the socket still open: the caller
/// unregisters the client, then closes it.
async fn serve_conn(conn: &mut Connection<'_>, stream: &mut TcpStream) {
    let (shard, limits, stats) = (conn.shard, conn.limits, conn.stats);
    let mut charge = Charge::new(shard);
    let mut deadlines = Deadlines::new(stream, limits);
    let max_query = limits.max_frame_bytes.max(1024);
    let mut buf = vec![0u8; INITIAL_READ.min(max_query)];
    let (mut start, mut end) = (0usize, 0usize);
    // The last read filled all the space it was given: more is probably
    // waiting in the socket (a deep pipeline), so the buffer doubles, up to
    // [`READ_GROW_MAX`], and the next read takes the rest in one go.
    let mut filled = false;
    // Sends what is pending, then an error line (the caller closes).
    async fn fail(conn: &mut Connection<'_>, stream: &mut TcpStream, e: &str) {
        conn.shard.count_protocol_error();
        conn.stats.count_error(b"ERR");
        conn.out.extend_from_slice(e.as_bytes());
        let _ = stream.write_all(&conn.out).await;
    }
    loop {
        if start > 0 && (buf.len() - end < COMPACT_BELOW || end == buf.len()) {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if filled && end < buf.len() && buf.len() < READ_GROW_MAX.min(max_query) {
            let grown = (buf.len() * 2).min(READ_GROW_MAX).min(max_query);
            if !charge.set(grown + conn.cost()) {
                return fail(conn, stream, &format!("-ERR {BUDGET_EXCEEDED}\r\n")).await;
            }
            buf.resize(grown, 0);
        }
        if end == buf.len() {
            if buf.len() >= max_query {
                // One command does not fit the query buffer limit.
                let e = "-ERR Protocol error: query buffer limit exceeded (corekv --max-frame-bytes)\r\n";
                return fail(conn, stream, e).await;
            }
            // Grow with what arrived: only a full buffer doubles.
            let grown = (buf.len() * 2).min(max_query);
            if !charge.set(grown + conn.cost()) {
                return fail(conn, stream, &format!("-ERR {BUDGET_EXCEEDED}\r\n")).await;
            }
            buf.resize(grown, 0);
        }
        let_reactor_run().await;
        let shrinkable = start == end && (buf.len() > KEEP_BUFFER || conn.cost() > KEEP_BUFFER);
        deadlines.before_read(stream, start != end, shrinkable);
        match stream.read(&mut buf[end..]).await {
            Ok(0) => return,
            Ok(n) => {
                filled = n == buf.len() - end;
                end += n;
                stats.reads.add(1);
                stats.net_in.add(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => match deadlines.expired() {
                Expired::Shrink => {
                    buf = vec![0u8; INITIAL_READ.min(max_query)];
                    filled = false;
                    (start, end) = (0, 0);
                    conn.shrink();
                    charge.set(buf.len() + conn.cost());
                    continue;
                }
                Expired::Partial => {
                    let e = "-ERR Protocol error: command incomplete within the client timeout (corekv --client-timeout)\r\n";
                    return fail(conn, stream, e).await;
                }
                Expired::Idle => return,
            },
            Err(_) => return,
        }
        // The read event's clock reading: the start of its first group.
        conn.last = Instant::now();
        let shared = &conn.client.shared;
        shared
            .last_active_ms
            .store(conn.obs.millis(conn.last), Relaxed);
        shared.read_buf.store(buf.len() as u64, Relaxed);
        shared.qbuf.store((end - start) as u64, Relaxed);
        shared.out_buf.store(conn.out.capacity() as u64, Relaxed);
        let flow = loop {
            let (pos, flow) = conn.process(&buf[..end], start).await;
            start = pos;
            if !conn.out.is_empty() {
                if stream.write_all(&conn.out).await.is_err() {
                    return;
                }
                stats.writes.add(1);
                stats.net_out.add(conn.out.len() as u64);
                conn.out.clear();
            }
            if !matches!(flow, Flow::Drain) {
                break flow;
            }
        };
        if start == end {
            start = 0;
            end = 0;
        }
        if !charge.set(buf.len() + conn.cost()) {
            return fail(conn, stream, &format!("-ERR {BUDGET_EXCEEDED}\r\n")).await;
        }
        if let Flow::Close = flow {
            return;
        }
        if conn.client.shared.killed.load(Relaxed) {
            return;
        }
    }
}

/// Tells a client from another host that protected mode keeps it out, as
/// Redis does: the DENIED error, then close.
pub async fn reject_protected(mut stream: TcpStream) {
    let _ = stream
        .write_all(super::conn::PROTECTED_MODE_DENIED.as_bytes())
        .await;
    let _ = stream.close().await;
}

/// Tells a client the shard has no room for another connection, and closes.
pub async fn reject_full(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.close().await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::op::{OpKind, OpSource};
    use crate::shard::NodeState;
    use crate::store::StoreLimits;

    /// A connection on a one-shard node, no executor: handlers are sync.
    fn with_conn<T>(f: impl FnOnce(&mut Connection<'_>) -> T) -> T {
        let (tx, _rx) = flume::unbounded();
        let node = Arc::new(NodeState::new(0, 1, usize::MAX, usize::MAX));
        let store_limits = StoreLimits {
            max_key_len: 64,
            max_value_len: 64,
            max_memory: usize::MAX,
        };
        let shard = Shard::new(0, node, store_limits, vec![tx]);
        let limits = Limits::default();
        let obs = Observe::new(1);
        let mut conn = Connection::new(&shard, &limits, &obs, Client::new());
        f(&mut conn)
    }

    fn words(line: &str) -> (Vec<u8>, Vec<Range<usize>>) {
        let buf = line.as_bytes().to_vec();
        let mut args = Vec::new();
        let mut pos = 0;
        for w in line.split(' ') {
            args.push(pos..pos + w.len());
            pos += w.len() + 1;
        }
        (buf, args)
    }

    /// What `dispatch` decides for a command line, short of its awaits:
    /// the handler's effect, or the error it answers with.
    fn decide(
        conn: &mut Connection<'_>,
        buf: &[u8],
        args: &[Range<usize>],
    ) -> Result<Effect, String> {
        let spec = match table::lookup(&buf[args[0].clone()]) {
            Some(spec) if spec.arity_ok(args.len()) => spec,
            Some(spec) => return Err(CmdError::wrong_arity(spec.name).0.into()),
            None => return Err(table::unknown_command(buf, args).0.into()),
        };
        let mut parse = Parse::new(spec.name, buf, &args[1..]);
        (spec.handler)(conn, &mut parse).map_err(|e| e.0.into())
    }

    fn reject(line: &str) -> Option<String> {
        let (buf, args) = words(line);
        with_conn(|conn| decide(conn, &buf, &args).err())
    }

    #[test]
    fn redis_error_texts() {
        assert_eq!(
            reject("foo a b").unwrap(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            reject("foo").unwrap(),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            reject("GET").unwrap(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            reject("get a b").unwrap(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            reject("mset a b c").unwrap(),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(reject("set a b nx xx").unwrap(), table::ERR_SYNTAX);
        assert_eq!(reject("set a b foo").unwrap(), table::ERR_SYNTAX);
        assert_eq!(
            reject("set a b EX 0").unwrap(),
            "ERR invalid expire time in 'set' command"
        );
        assert!(reject("set a b EX 10").is_none());
        assert!(reject("set a b nx get").is_none());
        assert_eq!(reject("select 16").unwrap(), "ERR DB index is out of range");
        assert!(reject("select 15").is_none());
        assert!(reject("select 0").is_none());
        assert_eq!(
            reject("hello 4").unwrap(),
            "NOPROTO unsupported protocol version"
        );
        assert!(reject("hello 2").is_none());
        assert!(reject("hello 3").is_none());
        assert_eq!(reject("incrby k x").unwrap(), table::ERR_NOT_INTEGER);
        assert_eq!(
            reject("decrby k -9223372036854775808").unwrap(),
            "ERR decrement would overflow"
        );
        assert!(reject("config get save").is_none());
        assert!(reject("config foo")
            .unwrap()
            .starts_with("ERR unknown subcommand 'foo'"));
        assert!(reject("ping a b").is_some());
        let long = format!("foo {}", "x".repeat(300));
        let m = reject(&long).unwrap();
        assert!(m.len() < 300, "{m}");
    }

    /// The op and reply style a key command line queues.
    fn queued(line: &str) -> (Option<OpKind>, Style, Vec<u8>) {
        let (buf, args) = words(line);
        with_conn(|conn| {
            assert_eq!(decide(conn, &buf, &args), Ok(Effect::Continue));
            let view = conn.run.view(&buf);
            let (kind, _, value) = view.op(0);
            (kind, conn.run.plans()[0].style, value.to_vec())
        })
    }

    #[test]
    fn parse_maps_flags_to_ops() {
        let q = queued("SeT k v Nx");
        assert_eq!((q.0, q.1), (Some(OpKind::PutIfAbsent), Style::SetOk));
        let q = queued("set k v xx");
        assert_eq!(q.0, Some(OpKind::PutIfPresent));
        let q = queued("set k v get");
        assert_eq!((q.0, q.1), (Some(OpKind::GetSet), Style::Bulk));
        let q = queued("decrby k 5");
        assert_eq!((q.0, q.2), (Some(OpKind::IncrBy), b"-5".to_vec()));
    }

    /// A wrong arity in a table row must not be able to panic a connection:
    /// every handler runs with 0..=8 arguments of several shapes, skipping
    /// the arity check, and either answers or returns an error.
    #[test]
    fn every_command_survives_any_arity() {
        let fillers = [
            "x", "1", "-1", "get", "id", "setname", "docs", "nx", "setinfo", "2",
        ];
        for spec in table::all() {
            for n in 0..=8 {
                for filler in fillers {
                    let mut line = spec.name.to_string();
                    for i in 0..n {
                        line.push(' ');
                        line.push_str(if i == 0 {
                            filler
                        } else {
                            fillers[(i * 3) % fillers.len()]
                        });
                    }
                    let (buf, args) = words(&line);
                    with_conn(|conn| {
                        let mut parse = Parse::new(spec.name, &buf, &args[1..]);
                        let _ = (spec.handler)(conn, &mut parse);
                        // Whatever was queued is consistent: every plan's ops exist.
                        let planned: u32 = conn.run.plans().iter().map(|p| p.nops).sum();
                        assert_eq!(planned as usize, conn.run.view(&buf).len(), "{line}");
                    });
                }
            }
        }
    }
}
