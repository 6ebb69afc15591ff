//! RESP (Redis protocol) connections: read, parse, execute in batches, answer.
//!
//! This module owns the RESP connection loop and the *batched pipeline path*;
//! the command table, argument parsing and the non-key commands live in
//! [`commands`]. It knows sockets and the reply format, not the store's
//! internals: every key operation goes through [`Shard::execute`], so
//! forwarding to the owner shard, per-key ordering and counters are the same
//! as for native batches.
//!
//! # One read, one batch, one write
//!
//! Each read may bring many pipelined commands. They are parsed in place in
//! the read buffer (arguments are `Range<usize>` into it, nothing is copied).
//! Consecutive key commands (GET, SET, DEL, EXISTS, MGET, MSET, INCR, …) are
//! not executed one by one: each is *queued* into a [`Run`] as one or more
//! `(op, key range, value range)` triples plus a [`Plan`] saying how many
//! ops make up its reply and in which RESP style it is written. When the run
//! ends (end of the read, or a non-key command such as PING or INFO that must
//! see the run's effects), the whole run is executed by **one**
//! [`Shard::execute`] call, and a [`ReplySink`] encodes each result straight
//! into the output buffer in its command's style, aggregating multi-key
//! commands (MGET's array, DEL's count, MSET's `+OK`) into one reply. All
//! replies of a read are then written with one `write_all`. Nothing on this
//! path allocates once the connection's buffers have grown to the pipeline
//! depth in use.
//!
//! # Bad input
//!
//! A framing error (see [`crate::protocol::resp`]) is answered with
//! `-ERR Protocol error: ...` after the replies to the commands before it,
//! and the connection is closed. A command bigger than the query buffer
//! limit ([`Limits::max_frame_bytes`]) gets a clear error and is closed too.
//! Errors in a well-formed command (unknown command, wrong arity, syntax)
//! are ordinary replies; they and framing errors are counted with
//! [`Shard::count_protocol_error`]. Nothing here panics on network input;
//! other connections and the shard are never affected.
//!
//! # Atomicity
//!
//! A multi-key command whose keys live on several shards (MSET, DEL k1 k2) is
//! split per shard and reassembled in order; each key's op is atomic and
//! per-key order holds, but the command as a whole is not atomic across
//! shards (another client may observe some of an MSET's keys before others).

pub mod commands;

use std::ops::Range;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::config::{Limits, Security};
use crate::protocol::native::OpSource;
use crate::protocol::resp::{self, parse_command};
use crate::shard::Shard;
use crate::store::{OpError, OpKind, OpResult, ReplySink};

use commands::{Client, Command};

use super::conn::{
    Charge, Deadlines, Expired, BUDGET_EXCEEDED, DRAIN_AT, INITIAL_READ, KEEP_BUFFER,
};

/// When the free space after a partial command drops below this, the partial
/// command is moved to the front of the read buffer.
const COMPACT_BELOW: usize = 16 * 1024;

/// How a queued command's results become its one RESP reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// GET, GETSET, SET … GET: bulk string, or null when absent.
    Bulk,
    /// SET (with NX/XX): `+OK`, or null when the condition did not hold.
    SetOk,
    /// INCR/DECR/INCRBY/DECRBY, STRLEN: integer.
    Int,
    /// SETNX: `:1` when written, `:0` when not.
    Flag,
    /// DEL/EXISTS over `n` keys: the number of keys deleted / present.
    Count,
    /// MGET: an array of bulk strings / nulls.
    Array,
    /// MSET: `+OK` once every pair is written.
    AllOk,
}

/// One queued command: its reply style and how many ops it queued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    style: Style,
    nops: u32,
}

/// One queued op. `key` indexes the read buffer; `value` the read buffer or,
/// when `value_in_extra`, the run's `extra` bytes (INCR's implicit delta).
#[derive(Debug, Clone)]
struct PendingOp {
    op: OpKind,
    key: Range<usize>,
    value: Range<usize>,
    value_in_extra: bool,
}

/// The key commands queued since the last flush. Reused for the whole
/// connection, so queueing allocates nothing once warmed up.
#[derive(Default)]
pub(crate) struct Run {
    ops: Vec<PendingOp>,
    plans: Vec<Plan>,
    /// Value bytes that are not in the read buffer (decimal deltas).
    extra: Vec<u8>,
}

impl Run {
    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    fn clear(&mut self) {
        self.ops.clear();
        self.plans.clear();
        self.extra.clear();
    }

    /// Queues one op whose key and value are in the read buffer.
    #[inline]
    pub(crate) fn op(&mut self, op: OpKind, key: Range<usize>, value: Range<usize>) {
        self.ops.push(PendingOp {
            op,
            key,
            value,
            value_in_extra: false,
        });
    }

    /// Queues an INCRBY of `delta` (written as decimal text into `extra`).
    pub(crate) fn incr_by(&mut self, key: Range<usize>, delta: i64) {
        use std::io::Write;
        let start = self.extra.len();
        let _ = write!(self.extra, "{delta}");
        self.ops.push(PendingOp {
            op: OpKind::IncrBy,
            key,
            value: start..self.extra.len(),
            value_in_extra: true,
        });
    }

    /// Ends the command whose ops were just queued: `nops` of them, answered
    /// in `style`.
    #[inline]
    pub(crate) fn plan(&mut self, style: Style, nops: usize) {
        self.plans.push(Plan {
            style,
            nops: nops as u32,
        });
    }
}

/// The queued ops as an [`OpSource`] over the read buffer.
struct RunView<'a> {
    ops: &'a [PendingOp],
    buf: &'a [u8],
    extra: &'a [u8],
}

impl OpSource for RunView<'_> {
    fn len(&self) -> usize {
        self.ops.len()
    }

    #[inline]
    fn op(&self, i: usize) -> (u8, &[u8], &[u8]) {
        let o = &self.ops[i];
        let value = if o.value_in_extra {
            &self.extra[o.value.clone()]
        } else {
            &self.buf[o.value.clone()]
        };
        (o.op as u8, &self.buf[o.key.clone()], value)
    }
}

/// The Redis-style error line for a per-op error.
pub(crate) fn op_error_line(e: OpError) -> &'static [u8] {
    match e {
        OpError::NotInteger => b"-ERR value is not an integer or out of range\r\n",
        OpError::OutOfMemory => b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
        OpError::KeyTooLarge => b"-ERR key too large (corekv --max-key-len)\r\n",
        OpError::ValueTooLarge => b"-ERR value too large (corekv --max-value-len)\r\n",
        OpError::BadOp => b"-ERR unknown operation\r\n",
        OpError::Unavailable => b"-ERR owner shard unavailable (node shutting down)\r\n",
        OpError::ReplyTooLarge => REPLY_TOO_LARGE,
    }
}

/// The error for a command whose reply alone would pass the connection's
/// reply bound.
pub(crate) const REPLY_TOO_LARGE: &[u8] =
    b"-ERR reply too large: it would pass this connection's reply limit (corekv --max-reply-bytes, --max-conn-memory)\r\n";

/// Encodes results into RESP replies following the run's plans. A command
/// whose reply alone would pass `limit` bytes, or take `out` past `end`
/// (what the connection-memory budget allows), is answered with
/// [`REPLY_TOO_LARGE`] instead (what it wrote so far is taken back).
pub(crate) struct RespSink<'a> {
    plans: &'a [Plan],
    out: &'a mut Vec<u8>,
    limit: usize,
    end: usize,
    /// Where the current plan's reply starts in `out`.
    plan_start: usize,
    /// The current plan's reply went past `limit`.
    overflow: bool,
    /// Index of the plan the next result belongs to.
    cur: usize,
    /// Results of that plan seen so far.
    done: u32,
    /// DEL/EXISTS count so far.
    count: i64,
    /// First error of an aggregated reply (DEL, EXISTS, MSET).
    err: Option<OpError>,
}

impl<'a> RespSink<'a> {
    pub(crate) fn new(
        plans: &'a [Plan],
        out: &'a mut Vec<u8>,
        limit: usize,
        end: usize,
    ) -> RespSink<'a> {
        RespSink {
            plans,
            out,
            limit,
            end,
            plan_start: 0,
            overflow: false,
            cur: 0,
            done: 0,
            count: 0,
            err: None,
        }
    }
}

impl ReplySink for RespSink<'_> {
    /// What ops forwarded to other shards may return. A run's commands
    /// before its last have a worst case under `limit` (else the run would
    /// have been cut), and its last must fit `limit` to be answered, so a
    /// run that is answered never needs more than twice `limit`.
    fn value_budget(&self) -> usize {
        self.limit
            .saturating_mul(2)
            .min(self.end.saturating_sub(self.out.len()))
    }

    #[inline]
    fn push(&mut self, result: OpResult<'_>) {
        let Some(&plan) = self.plans.get(self.cur) else {
            return; // more results than planned: cannot happen, never panic
        };
        let out = &mut *self.out;
        if self.done == 0 {
            self.count = 0;
            self.err = None;
            self.plan_start = out.len();
            self.overflow = false;
            if plan.style == Style::Array {
                resp::array_header(out, plan.nops as usize);
            }
        }
        match result {
            OpResult::Value(v) => {
                let after = out.len().saturating_add(v.len() + 32);
                if self.overflow || after - self.plan_start > self.limit || after > self.end {
                    self.overflow = true;
                    out.truncate(self.plan_start);
                }
            }
            // A forwarded part of this command ran into the same bound.
            OpResult::Err(OpError::ReplyTooLarge) => {
                self.overflow = true;
                out.truncate(self.plan_start);
            }
            _ => {}
        }
        match (plan.style, result) {
            _ if self.overflow => {}
            (_, OpResult::Err(e)) if matches!(plan.style, Style::Count | Style::AllOk) => {
                self.err.get_or_insert(e);
            }
            (_, OpResult::Err(e)) => out.extend_from_slice(op_error_line(e)),
            (Style::Bulk | Style::Array, OpResult::Value(v)) => resp::bulk(out, v),
            (Style::Bulk | Style::Array | Style::SetOk, OpResult::NotFound) => resp::null_bulk(out),
            (Style::SetOk, OpResult::Ok) => out.extend_from_slice(b"+OK\r\n"),
            (Style::Flag, OpResult::Ok) => out.extend_from_slice(b":1\r\n"),
            (Style::Flag, OpResult::NotFound) => out.extend_from_slice(b":0\r\n"),
            (Style::Count, OpResult::Ok) => self.count += 1,
            (Style::Count, OpResult::Int(n)) => self.count += n,
            (Style::Count, _) | (Style::AllOk, _) => {}
            (_, OpResult::Int(n)) => resp::integer(out, n),
            (_, OpResult::Ok) => out.extend_from_slice(b"+OK\r\n"),
            (_, OpResult::Value(v)) => resp::bulk(out, v),
            (_, OpResult::NotFound) => resp::null_bulk(out),
        }
        self.done += 1;
        if self.done >= plan.nops {
            if self.overflow {
                out.truncate(self.plan_start);
                out.extend_from_slice(REPLY_TOO_LARGE);
                self.err = None;
                self.cur += 1;
                self.done = 0;
                return;
            }
            match (plan.style, self.err) {
                (Style::Count | Style::AllOk, Some(e)) => out.extend_from_slice(op_error_line(e)),
                (Style::Count, None) => resp::integer(out, self.count),
                (Style::AllOk, None) => out.extend_from_slice(b"+OK\r\n"),
                _ => {}
            }
            self.cur += 1;
            self.done = 0;
        }
    }
}

/// What the connection loop does after a read has been processed.
pub(crate) enum Flow {
    /// Keep reading.
    Continue,
    /// Write what is pending, then close (QUIT, protocol error).
    Close,
}

/// One RESP connection's state. Buffers are reused for its whole life.
pub(crate) struct Connection<'s> {
    pub(crate) shard: &'s Shard,
    pub(crate) limits: &'s Limits,
    parse_limits: resp::Limits,
    args: Vec<Range<usize>>,
    pub(crate) run: Run,
    pub(crate) out: Vec<u8>,
    pub(crate) client: Client,
    /// Worst-case reply bytes of the queued run.
    run_worst: usize,
    stream: TcpStream,
    /// A write failed: stop.
    broken: bool,
    /// Who may do what (`--requirepass`).
    pub(crate) security: &'s Security,
    /// The client has authenticated (or no password is set).
    pub(crate) authed: bool,
}

impl<'s> Connection<'s> {
    fn new(shard: &'s Shard, limits: &'s Limits, stream: TcpStream) -> Connection<'s> {
        Connection {
            shard,
            limits,
            parse_limits: parse_limits(limits),
            args: Vec::new(),
            run: Run::default(),
            out: Vec::new(),
            client: Client::new(),
            run_worst: 0,
            stream,
            broken: false,
            security: &NO_SECURITY,
            authed: true,
        }
    }

    /// Bytes this connection's buffers other than the read buffer hold.
    fn cost(&self) -> usize {
        self.out.capacity()
            + self.args.capacity() * std::mem::size_of::<Range<usize>>()
            + self.run.ops.capacity() * std::mem::size_of::<PendingOp>()
            + self.run.plans.capacity() * std::mem::size_of::<Plan>()
            + self.run.extra.capacity()
    }

    /// Writes the pending replies out now (a long pipeline's replies stream
    /// instead of piling up).
    async fn drain(&mut self) {
        if self.out.is_empty() || self.broken {
            return;
        }
        if self.stream.write_all(&self.out).await.is_err() {
            self.broken = true;
        }
        self.out.clear();
    }

    /// Executes the queued run (one [`Shard::execute`]) and encodes its
    /// replies into `out`.
    pub(crate) async fn flush(&mut self, buf: &[u8]) {
        if self.run.is_empty() {
            return;
        }
        let view = RunView {
            ops: &self.run.ops,
            buf,
            extra: &self.run.extra,
        };
        let end = self
            .out
            .len()
            .saturating_add(self.shard.conn_memory_left() / 2);
        let limit = self.limits.max_reply_bytes;
        let mut sink = RespSink::new(&self.run.plans, &mut self.out, limit, end);
        self.shard.execute(&view, &mut sink).await;
        self.run.clear();
        self.run_worst = 0;
    }

    /// Worst-case reply bytes of the command just queued (`plans` was one
    /// shorter before it).
    fn worst_of_last(&self) -> usize {
        let Some(p) = self.run.plans.last() else {
            return 0;
        };
        let per_value = self.limits.max_value_len + 32;
        match p.style {
            Style::Bulk => per_value,
            Style::Array => per_value.saturating_mul(p.nops as usize),
            _ => 32,
        }
    }

    /// Handles every complete command in `buf[pos..]`. Returns where the
    /// first incomplete command starts and what to do next. The run is
    /// flushed before returning.
    async fn process(&mut self, buf: &[u8], mut pos: usize) -> (usize, Flow) {
        let mut args = std::mem::take(&mut self.args);
        let flow = loop {
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
                    let cmd = Command::parse(buf, &args);
                    let plans = self.run.plans.len();
                    if let Flow::Close = cmd.apply(self, buf).await {
                        break Flow::Close;
                    }
                    // Bound what one run can reply: execute it once its
                    // worst case passes the reply limit, and write replies
                    // out as they pile up.
                    if self.run.plans.len() > plans {
                        self.run_worst = self.run_worst.saturating_add(self.worst_of_last());
                        if self.run_worst > self.limits.max_reply_bytes {
                            self.flush(buf).await;
                        }
                    }
                    if self.out.len() >= DRAIN_AT {
                        self.flush(buf).await;
                        self.drain().await;
                        if self.broken {
                            break Flow::Close;
                        }
                    }
                }
                Ok(None) => break Flow::Continue,
                Err(e) => {
                    self.flush(buf).await;
                    self.shard.count_protocol_error();
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
fn parse_limits(limits: &Limits) -> resp::Limits {
    resp::Limits {
        max_bulk_len: resp::DEFAULT_MAX_BULK_LEN
            .max(limits.max_value_len)
            .max(limits.max_key_len)
            .min(limits.max_frame_bytes),
        max_args: limits.max_batch_ops,
        max_inline_len: resp::DEFAULT_MAX_INLINE_LEN,
    }
}

/// Placeholder until `serve` sets the node's rules.
static NO_SECURITY: Security = Security {
    requirepass: None,
    protected_mode: false,
};

/// Serves one RESP connection until it closes, sends QUIT or misbehaves.
pub async fn serve(shard: &Shard, stream: TcpStream, limits: &Limits, security: &Security) {
    let mut charge = Charge::new(shard);
    let mut deadlines = Deadlines::new(&stream, limits);
    let mut conn = Connection::new(shard, limits, stream);
    conn.authed = security.requirepass.is_none();
    conn.security = security;
    let max_query = limits.max_frame_bytes.max(1024);
    let mut buf = vec![0u8; INITIAL_READ.min(max_query)];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        if start > 0 && (buf.len() - end < COMPACT_BELOW || end == buf.len()) {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == buf.len() {
            if buf.len() >= max_query {
                // One command does not fit the query buffer limit.
                shard.count_protocol_error();
                conn.out.extend_from_slice(
                    b"-ERR Protocol error: query buffer limit exceeded (corekv --max-frame-bytes)\r\n",
                );
                conn.drain().await;
                let _ = conn.stream.close().await;
                return;
            }
            // Grow with what arrived: a full buffer doubles.
            let grown = (buf.len() * 2).min(max_query);
            if !charge.set(grown + conn.cost()) {
                shard.count_protocol_error();
                resp::error(&mut conn.out, &format!("ERR {BUDGET_EXCEEDED}"));
                conn.drain().await;
                let _ = conn.stream.close().await;
                return;
            }
            buf.resize(grown, 0);
        }
        let shrinkable = start == end && (buf.len() > KEEP_BUFFER || conn.cost() > KEEP_BUFFER);
        deadlines.before_read(&conn.stream, start != end, shrinkable);
        match conn.stream.read(&mut buf[end..]).await {
            Ok(0) => return,
            Ok(n) => end += n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                match deadlines.expired() {
                    Expired::Shrink => {
                        buf = vec![0u8; INITIAL_READ.min(max_query)];
                        (start, end) = (0, 0);
                        conn.out = Vec::new();
                        conn.args = Vec::new();
                        conn.run = Run::default();
                        charge.set(buf.len() + conn.cost());
                        continue;
                    }
                    Expired::Partial => {
                        shard.count_protocol_error();
                        conn.out.extend_from_slice(
                            b"-ERR Protocol error: command incomplete within the client timeout (corekv --client-timeout)\r\n",
                        );
                        conn.drain().await;
                    }
                    Expired::Idle => {}
                }
                let _ = conn.stream.close().await;
                return;
            }
            Err(_) => return,
        }
        let (pos, flow) = conn.process(&buf[..end], start).await;
        start = pos;
        if start == end {
            start = 0;
            end = 0;
        }
        conn.drain().await;
        if conn.broken {
            return;
        }
        if !charge.set(buf.len() + conn.cost()) {
            shard.count_protocol_error();
            resp::error(&mut conn.out, &format!("ERR {BUDGET_EXCEEDED}"));
            conn.drain().await;
            let _ = conn.stream.close().await;
            return;
        }
        if let Flow::Close = flow {
            let _ = conn.stream.close().await;
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
    use super::*;
    use crate::store::{Store, StoreLimits};

    fn store() -> Store {
        Store::new(StoreLimits {
            max_key_len: 16,
            max_value_len: 16,
            max_memory: usize::MAX,
        })
    }

    /// Queues ops the way the commands do and runs them through a store and
    /// the sink, checking the exact bytes of every reply style.
    #[test]
    fn sink_encodes_each_style() {
        let buf = b"k1v1k2v2xx0123456789012345678";
        let mut run = Run::default();
        // SET k1 v1; GET k1; GET k2; MSET k1 v1 k2 v2; MGET k1 xx k2;
        // DEL k1 xx; EXISTS k2 k2; INCR xx; SETNX k2 v2; SET k2 v1 NX;
        // GET <key too large>; DEL k2 <key too large>
        run.op(OpKind::Put, 0..2, 2..4);
        run.plan(Style::SetOk, 1);
        run.op(OpKind::Get, 0..2, 0..0);
        run.plan(Style::Bulk, 1);
        run.op(OpKind::Get, 4..6, 0..0);
        run.plan(Style::Bulk, 1);
        run.op(OpKind::Put, 0..2, 2..4);
        run.op(OpKind::Put, 4..6, 6..8);
        run.plan(Style::AllOk, 2);
        run.op(OpKind::Get, 0..2, 0..0);
        run.op(OpKind::Get, 8..10, 0..0);
        run.op(OpKind::Get, 4..6, 0..0);
        run.plan(Style::Array, 3);
        run.op(OpKind::Del, 0..2, 0..0);
        run.op(OpKind::Del, 8..10, 0..0);
        run.plan(Style::Count, 2);
        run.op(OpKind::Exists, 4..6, 0..0);
        run.op(OpKind::Exists, 4..6, 0..0);
        run.plan(Style::Count, 2);
        run.incr_by(8..10, 1);
        run.plan(Style::Int, 1);
        run.op(OpKind::PutIfAbsent, 4..6, 6..8);
        run.plan(Style::Flag, 1);
        run.op(OpKind::PutIfAbsent, 4..6, 2..4);
        run.plan(Style::SetOk, 1);
        run.op(OpKind::Get, 10..29, 0..0);
        run.plan(Style::Bulk, 1);
        run.op(OpKind::Del, 4..6, 0..0);
        run.op(OpKind::Del, 10..29, 0..0);
        run.plan(Style::Count, 2);
        let view = RunView {
            ops: &run.ops,
            buf,
            extra: &run.extra,
        };
        let mut out = Vec::new();
        let mut sink = RespSink::new(&run.plans, &mut out, usize::MAX, usize::MAX);
        let mut s = store();
        for i in 0..view.len() {
            let (op, key, value) = view.op(i);
            let kind = OpKind::from_u8(op).unwrap();
            s.execute(kind, key, value, crate::routing::key_hash(key), &mut sink);
        }
        let want = "+OK\r\n$2\r\nv1\r\n$-1\r\n+OK\r\n*3\r\n$2\r\nv1\r\n$-1\r\n$2\r\nv2\r\n\
                    :1\r\n:2\r\n:1\r\n:0\r\n$-1\r\n-ERR key too large (corekv --max-key-len)\r\n\
                    -ERR key too large (corekv --max-key-len)\r\n";
        assert_eq!(String::from_utf8_lossy(&out), want);
    }

    #[test]
    fn sink_reports_incr_errors_redis_style() {
        let buf = b"kabc";
        let mut run = Run::default();
        run.op(OpKind::Put, 0..1, 1..4);
        run.plan(Style::SetOk, 1);
        run.incr_by(0..1, -1);
        run.plan(Style::Int, 1);
        let view = RunView {
            ops: &run.ops,
            buf,
            extra: &run.extra,
        };
        let mut out = Vec::new();
        let mut sink = RespSink::new(&run.plans, &mut out, usize::MAX, usize::MAX);
        let mut s = store();
        for i in 0..view.len() {
            let (op, key, value) = view.op(i);
            let kind = OpKind::from_u8(op).unwrap();
            s.execute(kind, key, value, crate::routing::key_hash(key), &mut sink);
        }
        assert_eq!(
            out,
            b"+OK\r\n-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            op_error_line(OpError::OutOfMemory),
            b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
        );
    }
}
