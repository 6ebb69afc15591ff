//! Native-protocol connections: read frames, execute batches, answer.
//!
//! One task per connection. Every read may bring several frames; all complete
//! frames are executed in order and their replies appended to one output
//! buffer, written with one `write_all` (or sooner, once [`DRAIN_AT`] bytes
//! are pending, so a long pipeline streams). Batches are validated in place
//! in the receive buffer (`BatchView::new` = `rkyv::access` + offset checks)
//! and executed straight into a reused [`BatchReply`]; nothing is allocated
//! per operation. A frame that fails validation is answered with an error
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

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::config::{Limits, Security};
use crate::op::{OpError, OpResult, ReplySink};
use crate::protocol::native::{
    encode_archived, encode_error, BatchReply, BatchView, FrameError, FrameKind, FrameReader,
    NextFrame,
};
use crate::shard::{BoundedReply, Shard};

use super::conn::{token_matches, Charge, Deadlines, Expired, DRAIN_AT, INITIAL_READ, KEEP_BUFFER};

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
    loop {
        let mark = shard.log_mark();
        loop {
            let (h, range) = match reader.next_frame() {
                Ok(NextFrame::Frame(h, range)) => (h, range),
                Ok(NextFrame::NeedMore) => break,
                Err(e) => return fail(shard, &mut stream, out, 0, &e).await,
            };
            if !authed && h.kind != FrameKind::Hello {
                return fail(shard, &mut stream, out, h.request_id, &FrameError::NoAuth).await;
            }
            match h.kind {
                FrameKind::Batch => {
                    let view = match BatchView::new(&reader.buf[range], limits.max_batch_ops) {
                        Ok(v) => v,
                        Err(e) => return fail(shard, &mut stream, out, h.request_id, &e).await,
                    };
                    reply.clear();
                    // Values may take the reply bound, or half of what the
                    // budget has left (the frame is encoded once more into
                    // `out`), whichever is smaller.
                    let max_values = limits
                        .max_reply_bytes
                        .min((charge.headroom() + reply.values.capacity()) / 2);
                    let mut sink = BoundedReply {
                        reply: &mut reply,
                        max_values,
                    };
                    shard.execute(&view, &mut sink).await;
                    let start = out.len();
                    if encode_archived(&mut out, FrameKind::BatchReply, h.request_id, &reply)
                        .is_err()
                    {
                        return;
                    }
                    batches.push((h.request_id, reply.len(), start..out.len()));
                }
                FrameKind::Hello => {
                    if !authed {
                        if !token_matches(&reader.buf[range], password) {
                            let e = if h.len == 0 {
                                FrameError::NoAuth
                            } else {
                                FrameError::WrongPass
                            };
                            return fail(shard, &mut stream, out, h.request_id, &e).await;
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
                    let e = FrameError::Unexpected(other);
                    return fail(shard, &mut stream, out, h.request_id, &e).await;
                }
            }
            if !charge.set(cost(&reader, &out, &reply)) {
                out.clear();
                return fail(
                    shard,
                    &mut stream,
                    out,
                    h.request_id,
                    &FrameError::ConnMemory,
                )
                .await;
            }
            if out.len() >= DRAIN_AT {
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                stats.writes.add(1);
                stats.net_out.add(out.len() as u64);
                out.clear();
            }
        }
        if !batches.is_empty() {
            // With `appendfsync always`: one group commit for every batch
            // of this read before any of their replies leaves.
            if let Err(e) = shard.before_reply(mark).await {
                out = persist_failed(&out, &batches, e, &mut reply);
            }
            batches.clear();
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            stats.writes.add(1);
            stats.net_out.add(out.len() as u64);
            out.clear();
        }
        if let Some(n) = reader.growth() {
            let more = n.saturating_sub(reader.capacity());
            if !charge.set(charge.held() + more) {
                return fail(shard, &mut stream, out, 0, &FrameError::ConnMemory).await;
            }
        }
        let shrinkable = reader.is_empty()
            && (reader.capacity() > KEEP_BUFFER
                || out.capacity() > KEEP_BUFFER
                || reply.values.capacity() > KEEP_BUFFER);
        deadlines.before_read(&stream, !reader.is_empty(), shrinkable);
        let space = reader.read_space();
        match stream.read(space).await {
            Ok(0) => return,
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
                    charge.set(cost(&reader, &out, &reply));
                }
                Expired::Partial => {
                    let t = limits.client_timeout.unwrap_or_default();
                    return fail(shard, &mut stream, out, 0, &FrameError::Timeout(t)).await;
                }
                Expired::Idle => {
                    let _ = stream.close().await;
                    return;
                }
            },
            Err(_) => return,
        }
        charge.set(cost(&reader, &out, &reply));
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
