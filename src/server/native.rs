//! Native-protocol connections: read frames, execute batches, answer.
//!
//! One task per connection. Every read may bring several frames; all complete
//! frames are executed in order and their replies appended to one output
//! buffer, written with one `write_all` (or sooner, once [`DRAIN_AT`] bytes
//! are pending, so a long pipeline streams). Batches are validated in place
//! in the receive buffer (`BatchView::new` = `rkyv::access` + offset checks)
//! and executed straight into their reply frame in the output buffer
//! ([`FrameReply`]: values copied once, status bytes and value ends in the
//! reused side buffers of a [`BatchReply`]); nothing is allocated per
//! operation. A frame that fails validation is answered with an error
//! frame and the connection closes; other connections are unaffected.
//!
//! # Bounds
//!
//! The receive buffer grows with bytes that arrived, never with a declared
//! length ([`FrameReader::growth`]), and every growth is charged to the
//! shard's connection-memory budget first ([`Charge`]). A batch's reply
//! holds at most `--max-reply-bytes` of values (or what the budget has
//! left): a value that would pass it is answered with the per-op error
//! [`crate::op::OpError::ReplyTooLarge`] instead. A frame that does not arrive within
//! `--client-timeout` closes the connection; idle buffers shrink back.
//!
//! # Access
//!
//! With `--requirepass`, the first frame must be a HELLO carrying the
//! password as its payload; anything else is answered with a `NoAuth`
//! error frame and the connection closes.

use std::collections::VecDeque;
use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::config::{Limits, Security};
use crate::op::{OpError, OpResult, OpSource, ReplySink};
use crate::persist::log::Aof;
use crate::protocol::native::{
    encode_archived, encode_error, BatchReply, BatchView, FrameError, FrameKind, FrameReader,
    FrameReply, NextFrame,
};
use crate::shard::Shard;

use super::conn::{
    let_reactor_run, token_matches, Charge, Deadlines, Expired, DRAIN_AT, INITIAL_READ, KEEP_BUFFER,
};

/// Serves one connection until it closes or misbehaves.
pub async fn serve(
    shard: &Shard,
    mut stream: TcpStream,
    limits: &Limits,
    security: &Security,
    stats: &super::observe::ShardObserve,
) {
    let mut charge = Charge::new(shard);
    let mut reader = FrameReader::new(INITIAL_READ, limits.max_frame_bytes);
    let mut out: Vec<u8> = Vec::new();
    let mut reply = BatchReply::default();
    // The batch replies in `out`: (request id, ops, byte range), so they can
    // be replaced when the log commit they wait for fails.
    let mut batches: Vec<(u64, usize, std::ops::Range<usize>)> = Vec::new();
    let mut deadlines = Deadlines::new(&stream, limits);
    let mut authed = security.requirepass.is_none();
    let password = security.requirepass.as_deref().unwrap_or("").as_bytes();
    let cost = |reader: &FrameReader, out: &Vec<u8>, reply: &BatchReply| {
        reader.capacity()
            + out.capacity()
            + reply.values.capacity()
            + reply.status.capacity()
            + reply.value_ends.capacity() * 4
    };
    if !charge.set(cost(&reader, &out, &reply)) {
        return fail(shard, &mut stream, out, 0, &FrameError::ConnMemory).await;
    }
    // `appendfsync always`: replies waiting for their group commit, oldest
    // first. While one commit is in flight the connection goes on reading
    // and executing, so the next commit carries the next batches' records.
    let log = shard.log().cloned();
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut held_bytes = 0usize;
    let mut spare: Vec<Vec<u8>> = Vec::new();
    loop {
        let mark = shard.log_mark();
        // Stopped early with frames left: out reached DRAIN_AT while its
        // replies must wait for a commit.
        let mut more = false;
        let mut failure: Option<(u64, FrameError)> = None;
        loop {
            let (h, range) = match reader.next_frame() {
                Ok(NextFrame::Frame(h, range)) => (h, range),
                Ok(NextFrame::NeedMore) => break,
                Err(e) => {
                    failure = Some((0, e));
                    break;
                }
            };
            if !authed && h.kind != FrameKind::Hello {
                failure = Some((h.request_id, FrameError::NoAuth));
                break;
            }
            match h.kind {
                FrameKind::Batch => {
                    let view = match BatchView::new(&reader.buf[range], limits.max_batch_ops) {
                        Ok(v) => v,
                        Err(e) => {
                            failure = Some((h.request_id, e));
                            break;
                        }
                    };
                    reply.clear();
                    // Values may take the reply bound, or half of what the
                    // budget has left, whichever is smaller.
                    let max_values = limits
                        .max_reply_bytes
                        .min((charge.headroom() + reply.values.capacity()) / 2);
                    // The reply frame is written straight into `out` (its
                    // values copied once), byte for byte what
                    // `encode_archived` makes of the `BatchReply`.
                    let start = out.len();
                    let mut sink = FrameReply::begin(
                        &mut out,
                        &mut reply.status,
                        &mut reply.value_ends,
                        h.request_id,
                        view.len(),
                        max_values,
                    );
                    shard.execute(&view, &mut sink).await;
                    let n = sink.finish();
                    batches.push((h.request_id, n, start..out.len()));
                }
                FrameKind::Hello => {
                    if !authed {
                        if !token_matches(&reader.buf[range], password) {
                            let e = if h.len == 0 {
                                FrameError::NoAuth
                            } else {
                                FrameError::WrongPass
                            };
                            failure = Some((h.request_id, e));
                            break;
                        }
                        authed = true;
                    }
                    let hello = shard.node.hello(shard.shard_id);
                    let _ = encode_archived(&mut out, FrameKind::HelloReply, h.request_id, &hello);
                }
                FrameKind::Stats => {
                    shard.publish();
                    let node_stats = shard.node.stats();
                    let _ =
                        encode_archived(&mut out, FrameKind::StatsReply, h.request_id, &node_stats);
                }
                other => {
                    failure = Some((h.request_id, FrameError::Unexpected(other)));
                    break;
                }
            }
            if !charge.set(cost(&reader, &out, &reply) + held_bytes) {
                out.clear();
                batches.clear();
                failure = Some((h.request_id, FrameError::ConnMemory));
                break;
            }
            if out.len() >= DRAIN_AT {
                if log.as_ref().is_some_and(|l| l.must_wait(mark)) || !held.is_empty() {
                    // These replies wait for a commit: hold them, and go on
                    // with the rest of the frames (next round).
                    more = true;
                    break;
                }
                batches.clear();
                if !send(&mut stream, &out, stats).await {
                    return;
                }
                out.clear();
            }
        }
        if !out.is_empty() {
            let target = match &log {
                Some(l) if l.must_wait(mark) => {
                    l.start_commit();
                    Some(l.appended())
                }
                _ => None,
            };
            if target.is_some() || !held.is_empty() {
                // Behind a commit (its own, or an earlier reply's: replies
                // leave in order).
                held_bytes += out.capacity();
                let next = spare.pop().unwrap_or_default();
                held.push_back(Held {
                    target: target.unwrap_or(0),
                    out: std::mem::replace(&mut out, next),
                    batches: std::mem::take(&mut batches),
                });
            } else {
                batches.clear();
                if !send(&mut stream, &out, stats).await {
                    return;
                }
                out.clear();
            }
        }
        if let Some(l) = &log {
            let waits = held
                .front()
                .is_some_and(|f| f.target > 0 && l.poll_durable(f.target).is_none());
            if waits || l.stream_needs_pass() {
                // Let the commit in flight complete and the next one start
                // while this connection executes (see `Aof::let_commit_run`).
                l.let_commit_run().await;
            }
        }
        // Release every held reply whose commit is done (all of them, when
        // the connection ends with an error).
        while let Some(front) = held.front() {
            let ready = match &log {
                Some(l) if front.target > 0 => match l.poll_durable(front.target) {
                    Some(r) => r,
                    None if failure.is_some() => l.durable_to(front.target).await,
                    None => break,
                },
                _ => Ok(()),
            };
            let Some(mut h) = held.pop_front() else { break };
            held_bytes = held_bytes.saturating_sub(h.out.capacity());
            if h.target > 0 {
                // The commit's counters are visible before its replies are.
                shard.publish();
            }
            if ready.is_err() {
                h.out = persist_failed(&h.out, &h.batches, OpError::PersistFailed, &mut reply);
            }
            if !send(&mut stream, &h.out, stats).await {
                return;
            }
            h.out.clear();
            if spare.len() < 4 && h.out.capacity() <= KEEP_BUFFER.max(DRAIN_AT * 4) {
                spare.push(h.out);
            }
        }
        if let Some((request_id, e)) = failure {
            return fail(shard, &mut stream, out, request_id, &e).await;
        }
        charge.set(cost(&reader, &out, &reply) + held_bytes);
        if more && held_bytes < HOLD_MAX {
            // Frames are waiting in the buffer: execute them while the
            // commit is in flight.
            continue;
        }
        if let Some(n) = reader.growth() {
            let more = n.saturating_sub(reader.capacity());
            if !charge.set(charge.held() + more) {
                return fail(shard, &mut stream, out, 0, &FrameError::ConnMemory).await;
            }
        }
        let_reactor_run().await;
        let shrinkable = held.is_empty()
            && reader.is_empty()
            && (reader.capacity() > KEEP_BUFFER
                || out.capacity() > KEEP_BUFFER
                || reply.values.capacity() > KEEP_BUFFER);
        let read = match (&log, held.front()) {
            (Some(l), Some(front)) => {
                let target = front.target;
                if more || held_bytes >= HOLD_MAX {
                    // Enough held: wait for the commit, read nothing.
                    let _ = l.durable_to(target).await;
                    continue;
                }
                // Read more while the commit is in flight; whichever comes
                // first. A read dropped unfinished loses nothing (glommio
                // reads once the socket is readable).
                deadlines.before_read(&stream, !reader.is_empty(), false);
                let space = reader.read_space();
                let read = async { Some(stream.read(space).await) };
                let durable = async {
                    let _ = l.durable_to(target).await;
                    None
                };
                match futures_lite::future::or(durable, read).await {
                    Some(r) => r,
                    None => continue,
                }
            }
            _ => {
                deadlines.before_read(&stream, !reader.is_empty(), shrinkable);
                let space = reader.read_space();
                stream.read(space).await
            }
        };
        match read {
            Ok(0) => {
                // The peer closed: what is held still goes out if it can.
                release_all(&mut held, log.as_ref(), &mut stream, &mut reply).await;
                return;
            }
            Ok(n) => {
                reader.filled(n);
                stats.reads.add(1);
                stats.net_in.add(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => match deadlines.expired() {
                Expired::Shrink => {
                    reader.shrink(INITIAL_READ);
                    out = Vec::new();
                    reply = BatchReply::default();
                    spare.clear();
                    charge.set(cost(&reader, &out, &reply) + held_bytes);
                }
                Expired::Partial => {
                    release_all(&mut held, log.as_ref(), &mut stream, &mut reply).await;
                    let t = limits.client_timeout.unwrap_or_default();
                    return fail(shard, &mut stream, out, 0, &FrameError::Timeout(t)).await;
                }
                Expired::Idle => {
                    release_all(&mut held, log.as_ref(), &mut stream, &mut reply).await;
                    let _ = stream.close().await;
                    return;
                }
            },
            Err(_) => return,
        }
        charge.set(cost(&reader, &out, &reply) + held_bytes);
    }
}

/// Replies of one round of frames waiting for the log to be durable up to
/// `target` (0: they wait only for the replies before them).
struct Held {
    target: u64,
    out: Vec<u8>,
    batches: Vec<(u64, usize, std::ops::Range<usize>)>,
}

/// Reply bytes a connection holds for commits before it stops reading.
const HOLD_MAX: usize = 16 * DRAIN_AT;

/// Waits for and writes every held reply, in order (the connection ends).
/// Writes one reply buffer to the client and counts it in the shard's
/// statistics; false when the client is gone.
async fn send(stream: &mut TcpStream, out: &[u8], stats: &super::observe::ShardObserve) -> bool {
    if stream.write_all(out).await.is_err() {
        return false;
    }
    stats.writes.add(1);
    stats.net_out.add(out.len() as u64);
    true
}

async fn release_all(
    held: &mut VecDeque<Held>,
    log: Option<&Rc<Aof>>,
    stream: &mut TcpStream,
    reply: &mut BatchReply,
) {
    while let Some(mut h) = held.pop_front() {
        if let Some(l) = log {
            if h.target > 0 && l.durable_to(h.target).await.is_err() {
                h.out = persist_failed(&h.out, &h.batches, OpError::PersistFailed, reply);
            }
        }
        if stream.write_all(&h.out).await.is_err() {
            return;
        }
    }
}

/// `out` with every batch reply replaced by one answering each op with `e`.
fn persist_failed(
    out: &[u8],
    batches: &[(u64, usize, std::ops::Range<usize>)],
    e: OpError,
    reply: &mut BatchReply,
) -> Vec<u8> {
    let mut new = Vec::with_capacity(out.len());
    let mut at = 0;
    for (request_id, n, range) in batches {
        new.extend_from_slice(&out[at..range.start]);
        reply.clear();
        for _ in 0..*n {
            reply.push(OpResult::Err(e));
        }
        let _ = encode_archived(&mut new, FrameKind::BatchReply, *request_id, &*reply);
        at = range.end;
    }
    new.extend_from_slice(&out[at..]);
    new
}

/// Sends what was already answered, then an error frame, then closes.
async fn fail(
    shard: &Shard,
    stream: &mut TcpStream,
    mut out: Vec<u8>,
    request_id: u64,
    e: &FrameError,
) {
    shard.count_protocol_error();
    encode_error(&mut out, request_id, e);
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

/// Tells a client the shard has no room for another connection, and closes.
pub async fn reject_full(mut stream: TcpStream, max: usize) {
    let mut out = Vec::new();
    let e = FrameError::TooManyConnections(max);
    encode_error(&mut out, 0, &e);
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

/// Tells a client from another host that protected mode keeps it out.
pub async fn reject_protected(mut stream: TcpStream) {
    let mut out = Vec::new();
    encode_error(&mut out, 0, &FrameError::ProtectedMode);
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}
