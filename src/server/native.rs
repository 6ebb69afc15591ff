//! Native-protocol connections: read frames, execute batches, answer.
//!
//! One task per connection. Every read may bring several frames; all complete
//! frames are executed in order and their replies appended to one output
//! buffer, written with one `write_all`. Batches are validated in place in the
//! receive buffer (`BatchView::new` = `rkyv::access` + offset checks) and
//! executed straight into a reused [`BatchReply`]; nothing is allocated per
//! operation. A frame that fails validation is answered with an error frame
//! and the connection closes; other connections are unaffected.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::config::Limits;
use crate::op::{OpError, OpResult, ReplySink};
use crate::protocol::native::{
    encode_archived, encode_error, BatchReply, BatchView, FrameError, FrameKind, FrameReader,
    NextFrame,
};
use crate::shard::Shard;

const INITIAL_BUFFER: usize = 256 * 1024;

/// Serves one connection until it closes or misbehaves.
pub async fn serve(
    shard: &Shard,
    mut stream: TcpStream,
    limits: &Limits,
    stats: &super::observe::ShardObserve,
) {
    let mut reader = FrameReader::new(INITIAL_BUFFER, limits.max_frame_bytes);
    let mut out: Vec<u8> = Vec::with_capacity(INITIAL_BUFFER);
    let mut reply = BatchReply::default();
    // The batch replies in `out`: (request id, ops, byte range), so they can
    // be replaced when the log commit they wait for fails.
    let mut batches: Vec<(u64, usize, std::ops::Range<usize>)> = Vec::new();
    loop {
        let mark = shard.log_mark();
        loop {
            let (h, range) = match reader.next_frame() {
                Ok(NextFrame::Frame(h, range)) => (h, range),
                Ok(NextFrame::NeedMore) => break,
                Err(e) => return fail(shard, &mut stream, out, 0, &e).await,
            };
            match h.kind {
                FrameKind::Batch => {
                    let view = match BatchView::new(&reader.buf[range], limits.max_batch_ops) {
                        Ok(v) => v,
                        Err(e) => return fail(shard, &mut stream, out, h.request_id, &e).await,
                    };
                    reply.clear();
                    shard.execute(&view, &mut reply).await;
                    let start = out.len();
                    if encode_archived(&mut out, FrameKind::BatchReply, h.request_id, &reply)
                        .is_err()
                    {
                        return;
                    }
                    batches.push((h.request_id, reply.len(), start..out.len()));
                }
                FrameKind::Hello => {
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
        let space = reader.read_space();
        match stream.read(space).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                reader.filled(n);
                stats.reads.add(1);
                stats.net_in.add(n as u64);
            }
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
