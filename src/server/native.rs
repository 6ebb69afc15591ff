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
    loop {
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
                    if encode_archived(&mut out, FrameKind::BatchReply, h.request_id, &reply)
                        .is_err()
                    {
                        return;
                    }
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
