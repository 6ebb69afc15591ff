//! The native target of `corekv bench` (`--target corekv`): sessions that
//! send batches through the shard-aware client ([`Cluster`]), and the
//! once-a-second STATS monitor that gives the server-side figures. Uses the
//! session machinery ([`super::session`]); knows nothing of the driver or
//! the RESP target. Must not touch the workload's arithmetic or report
//! formatting.

use std::rc::Rc;
use std::time::Instant;

use super::report::{ServerNodeReport, ShardTotals};
use super::session::{sleep_until, Pacer, WorkerCtx};
use super::workload::{Generator, OpKind};
use crate::client::{BatchResults, Cluster, Splitter};
use crate::op::OpResult;
use crate::protocol::native::{Batch, NodeStats};

/// One session: generate a batch, wait for its send slot, execute it,
/// record it; until the run is over or fails.
pub(crate) async fn session(
    ctx: Rc<WorkerCtx>,
    cluster: Rc<Cluster>,
    mut gen: Generator,
    mut pacer: Pacer,
) {
    let mut batch = Batch::default();
    let mut splitter = Splitter::default();
    let mut results = BatchResults::default();
    let n = ctx.batch;
    while !pacer.done(&ctx) {
        batch.clear();
        let mut gets = 0u64;
        let value = &ctx.value[..];
        gen.fill_batch(n, &mut |kind, key| match kind {
            OpKind::Read => {
                gets += 1;
                batch.get(key);
            }
            OpKind::Write => match &ctx.ttl_value {
                None => batch.put(key, value),
                Some(v) => batch.push(crate::op::OpKind::Set, key, v),
            },
        });
        let Some(sent) = pacer.next(&ctx).await else {
            break;
        };
        if let Err(e) = cluster.execute(&batch, &mut splitter, &mut results).await {
            ctx.fail(e.to_string());
            return;
        }
        let done = Instant::now();
        let (mut errors, mut misses) = (0u64, 0u64);
        results.for_each(|_, r| match r {
            OpResult::Err(_) => errors += 1,
            // Only a GET answers NotFound here (PUTs answer Ok).
            OpResult::NotFound => misses += 1,
            _ => {}
        });
        ctx.record(sent, done, n as u64, gets, errors, misses);
    }
}

/// One STATS snapshot: per node `(uptime, stats)`.
type Snapshot = Vec<NodeStats>;

fn shard_deltas(first: &NodeStats, last: &NodeStats) -> Vec<ShardTotals> {
    last.shards
        .iter()
        .map(|s| {
            let f = first
                .shards
                .iter()
                .find(|x| x.shard_id == s.shard_id)
                .cloned()
                .unwrap_or_default();
            ShardTotals {
                shard_id: s.shard_id,
                ops: s.ops.saturating_sub(f.ops),
                gets: s.gets.saturating_sub(f.gets),
                puts: s.puts.saturating_sub(f.puts),
                dels: s.dels.saturating_sub(f.dels),
                keys: s.keys,
                memory_bytes: s.memory_used,
                connections: s.connections,
                errors: s.errors.saturating_sub(f.errors),
            }
        })
        .collect()
}

/// Polls STATS at the start of the window and after each measured second.
pub(crate) async fn monitor(
    ctx: Rc<WorkerCtx>,
    cluster: Rc<Cluster>,
) -> Result<Vec<ServerNodeReport>, String> {
    let t = ctx.timing;
    sleep_until(t.start).await;
    let first: Snapshot = cluster.stats().await.map_err(|e| e.to_string())?;
    let mut prev = first.clone();
    let mut per_second: Vec<Vec<f64>> = vec![Vec::new(); first.len()];
    for k in 0..t.seconds {
        sleep_until(t.second_end(k)).await;
        if ctx.stopped() && Instant::now() < t.end {
            break;
        }
        let now = cluster.stats().await.map_err(|e| e.to_string())?;
        for (i, (a, b)) in prev.iter().zip(&now).enumerate() {
            let dt = b.uptime_secs - a.uptime_secs;
            if dt > 0.0 {
                let ops = b.total().ops.saturating_sub(a.total().ops);
                per_second[i].push(ops as f64 / dt);
            }
        }
        prev = now;
    }
    Ok(cluster
        .nodes()
        .iter()
        .filter(|n| n.down.is_none())
        .zip(first.iter().zip(&prev))
        .zip(per_second)
        .map(|((node, (f, l)), ps)| ServerNodeReport {
            node_id: node.hello.node_id,
            address: node.addr.clone(),
            per_second_ops: ps,
            shards: shard_deltas(f, l),
        })
        .collect())
}
