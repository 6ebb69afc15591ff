//! The batched pipeline path: key commands queued into a [`Run`], executed
//! by one [`Shard::execute`](crate::shard::Shard::execute) call, and their
//! results encoded by [`RespSink`] straight into the output buffer.
//!
//! Each read may bring many pipelined commands. Consecutive key commands
//! (GET, SET, DEL, EXISTS, MGET, MSET, INCR, …) are not executed one by one:
//! each is *queued* as one or more `(op, key range, value range)` triples
//! into the read buffer plus a [`Plan`] saying how many ops make up its reply
//! and in which RESP [`Style`] it is written. When the run ends (end of the
//! read, or a non-key command that must see the run's effects), the whole run
//! is one batch, and the sink aggregates multi-key commands (MGET's array,
//! DEL's count, MSET's `+OK`) into one reply. Nothing here allocates once the
//! connection's buffers have grown to the pipeline depth in use.
//!
//! Atomicity: a multi-key command queued here has all its keys on one shard
//! (the owner executes its ops as one batch, without yielding, so it is
//! atomic); one whose keys live on several shards is not queued but run as a
//! transaction (`multikey`, `shard::txn`). This module knows RESP replies,
//! not sockets or the store.

use std::ops::Range;

use crate::op::{ExpiryArg, Op, OpError, OpKind, OpResult, OpSource, ReplySink};
use crate::protocol::resp::{self, Proto};

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
    /// TYPE (an EXISTS op): `+string` when present, `+none` when not
    /// (every value corekv holds is a string).
    Type,
    /// LCS: two GETs (absent reads as empty), then the longest common
    /// subsequence of the two values in the reply its options ask for.
    Lcs(LcsOpts),
}

/// LCS's options, carried in its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LcsOpts {
    /// LEN: only the length.
    pub(crate) len: bool,
    /// IDX: the matching ranges and the length (a map).
    pub(crate) idx: bool,
    /// WITHMATCHLEN: each range with its length.
    pub(crate) with_match_len: bool,
    /// MINMATCHLEN: ranges shorter than this are left out.
    pub(crate) min_match_len: u32,
}

/// One queued command: its reply style and how many ops it queued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) style: Style,
    pub(crate) nops: u32,
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

    pub(crate) fn clear(&mut self) {
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

    /// Queues an op whose value is built here: `bytes` copied into `extra`.
    pub(crate) fn op_bytes(&mut self, op: OpKind, key: Range<usize>, bytes: &[u8]) {
        let start = self.extra.len();
        self.extra.extend_from_slice(bytes);
        self.ops.push(PendingOp {
            op,
            key,
            value: start..self.extra.len(),
            value_in_extra: true,
        });
    }

    /// Queues an op whose value is `prefix` then `value`, copied into
    /// `extra` (SETRANGE's offset).
    pub(crate) fn op_prefixed(
        &mut self,
        op: OpKind,
        key: Range<usize>,
        prefix: &[u8],
        value: &[u8],
    ) {
        let start = self.extra.len();
        self.extra.extend_from_slice(prefix);
        self.extra.extend_from_slice(value);
        self.ops.push(PendingOp {
            op,
            key,
            value: start..self.extra.len(),
            value_in_extra: true,
        });
    }

    /// Queues an expiry op: its [`ExpiryArg`] then `value`, copied into
    /// `extra` (only commands with an expiry option pay this copy).
    pub(crate) fn op_arg(&mut self, op: OpKind, key: Range<usize>, arg: ExpiryArg, value: &[u8]) {
        let start = self.extra.len();
        arg.encode(&mut self.extra);
        self.extra.extend_from_slice(value);
        self.ops.push(PendingOp {
            op,
            key,
            value: start..self.extra.len(),
            value_in_extra: true,
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
pub(crate) struct RunView<'a> {
    ops: &'a [PendingOp],
    buf: &'a [u8],
    extra: &'a [u8],
}

impl Run {
    /// The queued ops over `buf`, the read buffer their ranges index.
    pub(crate) fn view<'a>(&'a self, buf: &'a [u8]) -> RunView<'a> {
        RunView {
            ops: &self.ops,
            buf,
            extra: &self.extra,
        }
    }

    /// The queued commands' plans, for [`RespSink::new`].
    pub(crate) fn plans(&self) -> &[Plan] {
        &self.plans
    }
}

impl OpSource for RunView<'_> {
    fn len(&self) -> usize {
        self.ops.len()
    }

    #[inline]
    fn key(&self, i: usize) -> &[u8] {
        &self.buf[self.ops[i].key.clone()]
    }

    #[inline]
    fn op(&self, i: usize) -> Op<'_> {
        let o = &self.ops[i];
        let value = if o.value_in_extra {
            &self.extra[o.value.clone()]
        } else {
            &self.buf[o.value.clone()]
        };
        (Some(o.op), &self.buf[o.key.clone()], value)
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
        OpError::BadArgument => b"-ERR malformed expiry argument\r\n",
        OpError::ReplyTooLarge => REPLY_TOO_LARGE,
        OpError::PersistFailed => b"-MISCONF Errors writing to the AOF file\r\n",
        OpError::StringTooLong => {
            b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
        }
        OpError::NotFloat => b"-ERR value is not a valid float\r\n",
        OpError::NanOrInfinity => b"-ERR increment would produce NaN or Infinity\r\n",
        OpError::LcsTooLarge => {
            b"-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
        }
    }
}

/// Writes the error reply of a per-op error. MISCONF carries the reason the
/// log write failed, as Redis's does (`strerror` of the failed write).
pub(crate) fn push_op_error(out: &mut Vec<u8>, e: OpError) {
    if e == OpError::PersistFailed {
        let errno =
            crate::persist::log::LAST_WRITE_ERRNO.load(std::sync::atomic::Ordering::Relaxed);
        let text = std::io::Error::from_raw_os_error(if errno == 0 { libc::EIO } else { errno })
            .to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        out.extend_from_slice(b"-MISCONF Errors writing to the AOF file: ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(op_error_line(e));
    }
}

/// The error for a command whose reply alone would pass the connection's
/// reply bound.
pub(crate) const REPLY_TOO_LARGE: &[u8] =
    b"-ERR reply too large: it would pass this connection's reply limit (corekv --max-reply-bytes, --max-conn-memory)\r\n";

impl Run {
    /// The most reply bytes the command queued last can produce: a value
    /// per GET-like op (`max_value` bytes each, plus framing), a few bytes
    /// for the others. The connection executes a run once the sum passes
    /// its reply bound, so no run builds an unbounded reply.
    pub(crate) fn worst_of_last(&self, max_value: usize) -> usize {
        let Some(p) = self.plans.last() else {
            return 0;
        };
        let per_value = max_value.saturating_add(32);
        match p.style {
            Style::Bulk => per_value,
            Style::Array => per_value.saturating_mul(p.nops as usize),
            Style::Lcs(_) => super::strings::lcs_worst_reply(max_value),
            _ => 32,
        }
    }

    /// Bytes the run's vectors hold (what it costs the connection).
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.ops.capacity() * std::mem::size_of::<PendingOp>()
            + self.plans.capacity() * std::mem::size_of::<Plan>()
            + self.extra.capacity()
    }
}

/// Encodes results into RESP replies following the run's plans. A command
/// whose reply alone would pass `limit` bytes, or take `out` past `end`
/// (what the connection-memory budget allows), is answered with
/// [`REPLY_TOO_LARGE`] instead (what it wrote so far is taken back).
pub(crate) struct RespSink<'a> {
    plans: &'a [Plan],
    out: &'a mut Vec<u8>,
    /// Every error reply written: (plan index, error), for the statistics.
    failed: &'a mut Vec<(u32, OpError)>,
    limit: usize,
    end: usize,
    /// Where the current plan's reply starts in `out`.
    plan_start: usize,
    /// The current plan's reply went past a bound.
    overflow: bool,
    /// Index of the plan the next result belongs to.
    cur: usize,
    /// Results of that plan seen so far.
    done: u32,
    /// DEL/EXISTS count so far.
    count: i64,
    /// First error of an aggregated reply (DEL, EXISTS, MSET, LCS).
    err: Option<OpError>,
    /// The connection's protocol (how nulls are written).
    proto: Proto,
    /// LCS's first value, kept until the second arrives.
    lcs_first: Vec<u8>,
    /// Most bytes an LCS table may take (`--max-value-len`, as Redis's
    /// proto-max-bulk-len).
    lcs_limit: usize,
}

impl<'a> RespSink<'a> {
    /// A sink appending to `out`, recording error replies in `failed`; see
    /// the type's docs for `limit` and `end` (`usize::MAX` for both:
    /// unbounded).
    pub(crate) fn new(
        plans: &'a [Plan],
        out: &'a mut Vec<u8>,
        failed: &'a mut Vec<(u32, OpError)>,
        limit: usize,
        end: usize,
    ) -> RespSink<'a> {
        RespSink {
            plans,
            out,
            failed,
            limit,
            end,
            plan_start: 0,
            overflow: false,
            cur: 0,
            done: 0,
            count: 0,
            err: None,
            proto: Proto::Resp2,
            lcs_first: Vec::new(),
            lcs_limit: crate::config::DEFAULT_MAX_VALUE_LEN,
        }
    }

    /// Writes replies in `proto` (RESP2 by default).
    pub(crate) fn proto(mut self, proto: Proto) -> RespSink<'a> {
        self.proto = proto;
        self
    }

    /// Bounds LCS's table to `bytes` (default: the default value size).
    pub(crate) fn lcs_limit(mut self, bytes: usize) -> RespSink<'a> {
        self.lcs_limit = bytes;
        self
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
        // The connection answers another node's keys with MOVED before
        // queueing them, so an op never comes back moved; were it to, it is
        // answered as unavailable, never as a silent success.
        let result = match result {
            OpResult::Moved { .. } => OpResult::Err(OpError::Unavailable),
            r => r,
        };
        match result {
            // LCS keeps its values; its reply is bounded by its table.
            OpResult::Value(_) if matches!(plan.style, Style::Lcs(_)) => {}
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
            (_, OpResult::Err(e))
                if matches!(plan.style, Style::Count | Style::AllOk | Style::Lcs(_)) =>
            {
                self.err.get_or_insert(e);
            }
            (Style::Lcs(_), r) if self.done == 0 => {
                self.lcs_first.clear();
                if let OpResult::Value(v) = r {
                    self.lcs_first.extend_from_slice(v);
                }
            }
            (Style::Lcs(opts), r) => {
                if self.err.is_none() {
                    let second: &[u8] = match r {
                        OpResult::Value(v) => v,
                        _ => b"",
                    };
                    let (first, limit, proto) = (&self.lcs_first, self.lcs_limit, self.proto);
                    if let Err(e) =
                        super::strings::lcs_reply(out, first, second, opts, limit, proto)
                    {
                        self.err = Some(e);
                    }
                }
                if self.lcs_first.capacity() > 64 << 10 {
                    self.lcs_first = Vec::new();
                }
            }
            (_, OpResult::Err(e)) => {
                push_op_error(out, e);
                self.failed.push((self.cur as u32, e));
            }
            (Style::Bulk | Style::Array, OpResult::Value(v)) => resp::bulk(out, v),
            (Style::Bulk | Style::Array | Style::SetOk, OpResult::NotFound) => {
                resp::null(out, self.proto)
            }
            (Style::SetOk, OpResult::Ok) => out.extend_from_slice(b"+OK\r\n"),
            (Style::Type, OpResult::Int(1)) => out.extend_from_slice(b"+string\r\n"),
            (Style::Type, OpResult::Int(_)) => out.extend_from_slice(b"+none\r\n"),
            (Style::Flag, OpResult::Ok) => out.extend_from_slice(b":1\r\n"),
            (Style::Flag, OpResult::NotFound) => out.extend_from_slice(b":0\r\n"),
            (Style::Count, OpResult::Ok) => self.count += 1,
            (Style::Count, OpResult::Int(n)) => self.count += n,
            (Style::Count, _) | (Style::AllOk, _) => {}
            (_, OpResult::Int(n)) => resp::integer(out, n),
            (_, OpResult::Ok) => out.extend_from_slice(b"+OK\r\n"),
            (_, OpResult::Value(v)) => resp::bulk(out, v),
            (_, OpResult::NotFound) => resp::null(out, self.proto),
            (_, OpResult::Moved { .. }) => {}
        }
        self.done += 1;
        if self.done >= plan.nops {
            if self.overflow {
                out.truncate(self.plan_start);
                out.extend_from_slice(REPLY_TOO_LARGE);
                self.failed.push((self.cur as u32, OpError::ReplyTooLarge));
                self.cur += 1;
                self.done = 0;
                return;
            }
            match (plan.style, self.err) {
                (Style::Count | Style::AllOk | Style::Lcs(_), Some(e)) => {
                    push_op_error(out, e);
                    self.failed.push((self.cur as u32, e));
                }
                (Style::Count, None) => resp::integer(out, self.count),
                (Style::AllOk, None) => out.extend_from_slice(b"+OK\r\n"),
                _ => {}
            }
            self.cur += 1;
            self.done = 0;
        }
    }
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

    /// Runs `run`'s ops over `buf` through a fresh store into a
    /// [`RespSink`]: the reply bytes and the failed ops.
    fn execute(run: &Run, buf: &[u8]) -> (Vec<u8>, Vec<(u32, OpError)>) {
        execute_in(run, buf, Proto::Resp2)
    }

    /// [`execute`] with replies in `proto`.
    fn execute_in(run: &Run, buf: &[u8], proto: Proto) -> (Vec<u8>, Vec<(u32, OpError)>) {
        let view = run.view(buf);
        let mut out = Vec::new();
        let mut failed = Vec::new();
        let mut sink = RespSink::new(&run.plans, &mut out, &mut failed, usize::MAX, usize::MAX)
            .proto(proto)
            .lcs_limit(1024);
        let mut s = store();
        for i in 0..view.len() {
            let (kind, key, value) = view.op(i);
            s.execute(
                kind.unwrap(),
                key,
                value,
                crate::routing::key_hash(key),
                &mut sink,
            );
        }
        (out, failed)
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
        let (out, failed) = execute(&run, buf);
        assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), [10, 11]);
        let want = "+OK\r\n$2\r\nv1\r\n$-1\r\n+OK\r\n*3\r\n$2\r\nv1\r\n$-1\r\n$2\r\nv2\r\n\
                    :1\r\n:2\r\n:1\r\n:0\r\n$-1\r\n-ERR key too large (corekv --max-key-len)\r\n\
                    -ERR key too large (corekv --max-key-len)\r\n";
        assert_eq!(String::from_utf8_lossy(&out), want);
    }

    /// RESP3 nulls (GET, MGET, SET NX), and LCS: its two reads, the reply
    /// its options ask for, its table bound, an error of either read.
    #[test]
    fn resp3_nulls_and_lcs() {
        let buf = b"abohmytextmynewtext01234567890123456789";
        let mut run = Run::default();
        run.op(OpKind::Get, 0..1, 0..0);
        run.plan(Style::Bulk, 1);
        run.op(OpKind::Get, 0..1, 0..0);
        run.op(OpKind::Get, 1..2, 0..0);
        run.plan(Style::Array, 2);
        run.op(OpKind::Put, 0..1, 2..10);
        run.plan(Style::SetOk, 1);
        run.op(OpKind::PutIfAbsent, 0..1, 2..10);
        run.plan(Style::SetOk, 1);
        run.op(OpKind::Put, 1..2, 10..19);
        run.plan(Style::SetOk, 1);
        let opts = LcsOpts {
            len: false,
            idx: true,
            with_match_len: false,
            min_match_len: 4,
        };
        run.op(OpKind::Get, 0..1, 0..0);
        run.op(OpKind::Get, 1..2, 0..0);
        run.plan(Style::Lcs(opts), 2);
        // A key too large (16 in `store`) in either read is the error.
        run.op(OpKind::Get, 19..39, 0..0);
        run.op(OpKind::Get, 1..2, 0..0);
        run.plan(Style::Lcs(opts), 2);
        // The table bound (1024 bytes here): 10 × 10 cells of 4 bytes fit,
        // 17 × 17 do not.
        let plain = Style::Lcs(LcsOpts { idx: false, ..opts });
        run.op(OpKind::Put, 0..1, 10..19);
        run.plan(Style::SetOk, 1);
        run.op(OpKind::Get, 0..1, 0..0);
        run.op(OpKind::Get, 1..2, 0..0);
        run.plan(plain, 2);
        run.op(OpKind::Put, 0..1, 19..35);
        run.op(OpKind::Put, 1..2, 19..35);
        run.plan(Style::AllOk, 2);
        run.op(OpKind::Get, 0..1, 0..0);
        run.op(OpKind::Get, 1..2, 0..0);
        run.plan(plain, 2);
        let (out, failed) = execute_in(&run, buf, Proto::Resp3);
        let want = "_\r\n*2\r\n_\r\n_\r\n+OK\r\n_\r\n+OK\r\n\
                    %2\r\n$7\r\nmatches\r\n*1\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n\
                    $3\r\nlen\r\n:6\r\n\
                    -ERR key too large (corekv --max-key-len)\r\n+OK\r\n$9\r\nmynewtext\r\n\
                    +OK\r\n\
                    -ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n";
        assert_eq!(String::from_utf8_lossy(&out), want);
        assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), [6, 10]);
    }

    #[test]
    fn sink_reports_incr_errors_redis_style() {
        let buf = b"kabc";
        let mut run = Run::default();
        run.op(OpKind::Put, 0..1, 1..4);
        run.plan(Style::SetOk, 1);
        run.incr_by(0..1, -1);
        run.plan(Style::Int, 1);
        let (out, _) = execute(&run, buf);
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
