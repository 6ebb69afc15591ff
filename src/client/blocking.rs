//! A synchronous wrapper around [`Cluster`] for callers without an executor
//! (the CLI, tests). It runs a private glommio executor on its own unpinned
//! thread; calls travel to it over flume and run there as concurrent tasks,
//! so one `BlockingClient` may be used from many threads at once.

use std::thread::JoinHandle;

use crate::client::{BatchResults, ClientOptions, Cluster, NodeInfo, OwnedResult, Splitter};
use crate::error::ClientError;
use crate::protocol::native::{Batch, NodeStats};

/// Results of a batch and the first down node it had ops for.
type Executed = (Vec<OwnedResult>, Option<usize>);

enum Job {
    Execute(Batch, flume::Sender<Result<Executed, ClientError>>),
    Stats(flume::Sender<Result<Vec<NodeStats>, ClientError>>),
}

/// A blocking, thread-safe client.
pub struct BlockingClient {
    jobs: Option<flume::Sender<Job>>,
    nodes: Vec<NodeInfo>,
    thread: Option<JoinHandle<()>>,
}

impl BlockingClient {
    /// Connects to the cluster reachable through `hosts`.
    pub fn connect(
        hosts: &[String],
        options: ClientOptions,
    ) -> Result<BlockingClient, ClientError> {
        crate::memlock::raise_memlock(4 << 20);
        let (jobs_tx, jobs_rx) = flume::unbounded::<Job>();
        let (ready_tx, ready_rx) = flume::bounded(1);
        let hosts = hosts.to_vec();
        let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name("corekv-client")
            .io_memory(crate::config::DEFAULT_IO_MEMORY)
            .spawn(move || async move {
                let cluster = match Cluster::connect(&hosts, options).await {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(c.nodes().to_vec()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = jobs_rx.recv_async().await {
                    let cluster = cluster.clone();
                    glommio::spawn_local(async move {
                        match job {
                            Job::Execute(batch, reply) => {
                                let mut results = BatchResults::default();
                                let r = cluster
                                    .execute(&batch, &mut Splitter::default(), &mut results)
                                    .await
                                    .map(|_| (results.to_vec(), results.down_node()));
                                let _ = reply.send(r);
                            }
                            Job::Stats(reply) => {
                                let _ = reply.send(cluster.stats().await);
                            }
                        }
                    })
                    .detach();
                }
            })
            .map_err(|e| ClientError::Connect {
                addr: "local executor".into(),
                message: e.to_string(),
            })?;
        let thread = std::thread::spawn(move || {
            let _ = handle.join();
        });
        let nodes = match ready_rx.recv() {
            Ok(Ok(nodes)) => nodes,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: "local executor".into(),
                    message: "client executor failed to start (io_uring / locked memory?)".into(),
                })
            }
        };
        Ok(BlockingClient {
            jobs: Some(jobs_tx),
            nodes,
            thread: Some(thread),
        })
    }

    fn call<T>(
        &self,
        make: impl FnOnce(flume::Sender<Result<T, ClientError>>) -> Job,
    ) -> Result<T, ClientError> {
        let (tx, rx) = flume::bounded(1);
        self.jobs
            .as_ref()
            .ok_or(ClientError::Closed)?
            .send(make(tx))
            .map_err(|_| ClientError::Closed)?;
        rx.recv().map_err(|_| ClientError::Closed)?
    }

    /// The cluster's nodes, by node id.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Executes a batch; results in the batch's order.
    pub fn execute(&self, batch: &Batch) -> Result<Vec<OwnedResult>, ClientError> {
        self.call(|tx| Job::Execute(batch.clone(), tx))
            .map(|(r, _)| r)
    }

    /// Counters of every node.
    pub fn stats(&self) -> Result<Vec<NodeStats>, ClientError> {
        self.call(Job::Stats)
    }

    fn one(&self, f: impl FnOnce(&mut Batch)) -> Result<OwnedResult, ClientError> {
        let mut b = Batch::default();
        f(&mut b);
        let (mut results, down) = self.call(|tx| Job::Execute(b, tx))?;
        if let Some(node_id) = down {
            // The key's owner is down: name it.
            let n = &self.nodes[node_id];
            return Err(ClientError::NodeDown {
                node_id,
                addr: n.addr.clone(),
                message: n.down.clone().unwrap_or_default(),
            });
        }
        Ok(results.pop().unwrap_or(OwnedResult::NotFound))
    }

    /// Reads a key.
    pub fn get(&self, key: &[u8]) -> Result<OwnedResult, ClientError> {
        self.one(|b| b.get(key))
    }

    /// Writes a key.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<OwnedResult, ClientError> {
        self.one(|b| b.put(key, value))
    }

    /// Deletes a key.
    pub fn del(&self, key: &[u8]) -> Result<OwnedResult, ClientError> {
        self.one(|b| b.del(key))
    }

    /// Writes a key that expires after `ttl`.
    pub fn put_ttl(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: std::time::Duration,
    ) -> Result<OwnedResult, ClientError> {
        self.one(|b| b.put_ttl(key, value, ttl.as_millis().min(u64::MAX as u128) as u64))
    }

    /// A key's TTL in milliseconds: `Int(ms)`, `Int(-1)` without TTL,
    /// `Int(-2)` when absent.
    pub fn pttl(&self, key: &[u8]) -> Result<OwnedResult, ClientError> {
        self.one(|b| b.pttl(key))
    }
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
