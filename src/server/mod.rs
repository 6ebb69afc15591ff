//! A server node: start-up, listeners, connections, stats and shutdown.
//!
//! [`run`] starts one pinned glommio executor per CPU in the configuration,
//! one after another, each binding its listeners (its own native port, its
//! own RESP port, and the node-level RESP port shared by every shard through
//! SO_REUSEPORT). Each executor reports "bound" over a channel; only when all
//! have bound does the node learn its full [`Layout`] (needed to answer
//! HELLO) and let the shards start accepting. Any failure (CPU not available,
//! port in use, io_uring or locked memory) stops the shards already started
//! and comes back as a [`ServerError`] naming the shard, so `corekv server`
//! exits non-zero with a clear message.
//!
//! [`run`] returns a [`ServerHandle`] with the bound addresses, live stats
//! and `shutdown`, so tests start real servers in-process on ephemeral ports.
//!
//! Once bound, the node builds its [`ClusterMap`] (its `--cluster` list, or a
//! one-node cluster at its own address), records its own layout, greets its
//! peers ([`greet`]: once before returning, then in the background for the
//! ones still missing) and lets the shards start.
//!
//! Each executor's io_uring rings are created with COOP_TASKRUN where the
//! kernel has it (the patched glommio in `vendor/glommio`, see its
//! PATCHES.md), so a socket completion does not interrupt the shard's
//! thread; the handle says which mode runs ([`ServerHandle::taskrun_mode`]).
//! A connection waits for its next request on a multishot poll armed once
//! (Linux 5.13+; [`ServerHandle::multishot_poll`]), not a poll per read.
//!
//! Submodules: [`conn`] is what every connection shares (its memory charge,
//! read deadlines, protected mode), [`native`] serves native-protocol
//! connections, [`resp`] serves RESP connections, [`stats`] formats the
//! per-second stats line, [`greet`] greets the cluster's peers, [`observe`]
//! keeps per-shard command statistics, the slow log and the client
//! registry, [`metrics`] serves them to Prometheus.

pub mod conn;
pub mod greet;
pub mod metrics;
pub mod native;
pub mod observe;
pub mod resp;
pub mod stats;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement, TaskRunMode};

use crate::cluster::{format_addr, ClusterMap, PeerLayout};
use crate::config::{Limits, Security, ServerConfig};
use crate::error::ServerError;
use crate::persist::{self, log::Aof};
use crate::protocol::native::NodeStats;
use crate::shard::{Layout, NodeState, Shard, ShardMsg};
use crate::store::{Store, StoreLimits};
use observe::Observe;

/// A running node.
pub struct ServerHandle {
    /// The node's id.
    pub node_id: u32,
    /// Native address of each shard.
    pub shard_addrs: Vec<SocketAddr>,
    /// Node-level RESP address, if RESP is on.
    pub resp_addr: Option<SocketAddr>,
    /// RESP address of each shard, if RESP is on.
    pub resp_shard_addrs: Vec<SocketAddr>,
    /// What each shard recovered from its files (empty without persistence).
    pub recovery: Vec<ShardRecovery>,
    /// Held while the node runs: no other process writes its `--dir`.
    _dir_lock: Option<std::fs::File>,
    /// How the shards' io_uring rings run completion task work (cooperative
    /// unless turned off or refused by the kernel; the weakest shard's mode).
    pub taskrun_mode: TaskRunMode,
    /// Whether every shard waits on multishot polls (asked for and granted
    /// by the kernel).
    pub multishot_poll: bool,
    /// How every shard sleeps: `(timeout_in_enter, preempt_by_msg_ring)`,
    /// each true only if true on every shard (glommio's
    /// `ExecutorProxy::sleep_features`: a sleep is one `io_uring_enter`
    /// with the timer in it, Linux 5.11+; the throughput preemption timer
    /// posts with `MSG_RING`, Linux 5.18+).
    pub sleep_features: (bool, bool),
    node: Arc<NodeState>,
    cluster: Arc<ClusterMap>,
    greeting_stop: Arc<AtomicBool>,
    obs: Arc<Observe>,
    stops: Vec<flume::Sender<()>>,
    joins: Vec<glommio::ExecutorJoinHandle<()>>,
}

/// One shard's recovery at start-up.
#[derive(Debug, Clone)]
pub struct ShardRecovery {
    /// The shard.
    pub shard_id: usize,
    /// Keys loaded.
    pub keys: usize,
    /// Records replayed.
    pub records: u64,
    /// Seconds taken.
    pub secs: f64,
    /// Torn tail recovered, snapshot used, ….
    pub notes: Vec<String>,
}

impl ServerHandle {
    /// Native address of shard 0: the address to give clients.
    pub fn addr(&self) -> SocketAddr {
        self.shard_addrs[0]
    }

    /// A snapshot of every shard's counters.
    pub fn stats(&self) -> NodeStats {
        self.node.stats()
    }

    /// The node's cluster map.
    pub fn cluster(&self) -> &Arc<ClusterMap> {
        &self.cluster
    }

    /// Waits until every peer of the cluster has been greeted (their layouts
    /// known) or `timeout` passed; true when complete.
    pub fn wait_for_peers(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !self.cluster.complete() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The node's published counters (what STATS, the stats line and the
    /// metrics endpoint read).
    pub fn node_state(&self) -> &Arc<NodeState> {
        &self.node
    }

    /// The node's command statistics, slow log and clients.
    pub fn observe(&self) -> &Arc<Observe> {
        &self.obs
    }

    /// Stops every shard and waits for them.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.greeting_stop.store(true, Ordering::Relaxed);
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// What a shard reports once its listeners are bound.
struct Bound {
    native: u16,
    resp_node: u16,
    resp_shard: u16,
    taskrun_mode: TaskRunMode,
    multishot_poll: bool,
    sleep_features: (bool, bool),
}

/// Starts a node. Returns once every shard is accepting connections.
pub fn run(config: &ServerConfig) -> Result<ServerHandle, ServerError> {
    run_until(config, &AtomicBool::new(false))
}

/// How often start-up looks at the stop flag while it waits for a shard.
const START_POLL: Duration = Duration::from_millis(20);

/// [`run`], giving up with [`ServerError::Interrupted`] (every shard started
/// so far stopped and joined) as soon as `stop` becomes true during
/// start-up: `corekv server` passes its SIGINT/SIGTERM flag here, so a
/// signal is honoured while shards are still binding.
pub fn run_until(config: &ServerConfig, stop: &AtomicBool) -> Result<ServerHandle, ServerError> {
    config.validate()?;
    let nr = config.nr_shards();
    let memlock = crate::memlock::raise_memlock(config.io_memory as u64 * 2);
    let node = Arc::new(
        NodeState::new(
            config.node_id,
            nr,
            config.shard_memory(),
            config.shard_conn_memory(),
        )
        .with_databases(config.effective_databases())
        .with_cluster_mode(!config.cluster.is_empty()),
    );
    node.set_persistence(config.persist.appendonly, config.persist.fsync.name());
    let obs = Arc::new(Observe::new(nr));
    node.record_memory(node.max_memory(), config.maxmemory_policy);
    let (mesh_tx, mesh_rx): (Vec<_>, Vec<_>) =
        (0..nr).map(|_| flume::unbounded::<ShardMsg>()).unzip();
    let mut stops = Vec::new();
    let mut gos = Vec::new();
    let mut joins = Vec::new();
    let mut bound: Vec<Bound> = Vec::new();
    let mut recovered = Vec::new();
    let mut dir_lock = None;
    if config.persist.appendonly {
        let dir = &config.persist.dir;
        std::fs::create_dir_all(dir).map_err(|e| {
            ServerError::Persist(format!("cannot create --dir {}: {e}", dir.display()))
        })?;
        crate::persist::check_layout(dir, nr).map_err(ServerError::Persist)?;
        dir_lock = Some(crate::persist::lock_dir(dir).map_err(ServerError::Persist)?);
    }
    // An explicit node-level RESP port is probed exclusively first; port 0
    // is resolved by shard 0's own bind and then used by the others.
    let mut resp_node_port = match config.resp_port {
        Some(p) if p != 0 => Some(claim_shared_port(SocketAddr::new(config.bind, p))?),
        other => other,
    };

    for (shard_id, mesh_rx) in mesh_rx.into_iter().enumerate() {
        let cpu = config.cpus[shard_id];
        let (ready_tx, ready_rx) = flume::bounded::<Result<Bound, ServerError>>(1);
        let (go_tx, go_rx) = flume::bounded::<()>(1);
        let (stop_tx, stop_rx) = flume::bounded::<()>(1);
        let (rec_tx, rec_rx) = flume::bounded::<Result<ShardRecovery, ServerError>>(1);
        recovered.push(rec_rx);
        let ctx = ShardStart {
            recovered: rec_tx,
            shard_id,
            config: config.clone(),
            node: node.clone(),
            obs: obs.clone(),
            mesh: mesh_tx.clone(),
            mesh_rx,
            resp_node_port,
            ready: ready_tx,
            go: go_rx,
            stop: stop_rx,
        };
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("corekv-shard-{shard_id}"))
            .io_memory(config.io_memory)
            .cooperative_taskrun(config.coop_taskrun);
        if !config.spin_before_park.is_zero() {
            builder = builder.spin_before_park(config.spin_before_park);
        }
        let spawned = builder.spawn(move || ctx.run());
        let fail = |message: String| ServerError::Executor {
            shard_id,
            cpu,
            hint: executor_hint(&message, memlock),
            message,
        };
        let join = match spawned {
            Ok(j) => j,
            Err(e) => {
                abort(stops, gos, joins);
                return Err(fail(e.to_string()));
            }
        };
        let ready = loop {
            match ready_rx.recv_timeout(START_POLL) {
                Err(flume::RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => {
                    // Dropping go_tx and stop_tx ends this shard too.
                    drop((go_tx, stop_tx));
                    abort(gos, stops, joins);
                    let _ = join.join();
                    return Err(ServerError::Interrupted);
                }
                Err(flume::RecvTimeoutError::Timeout) => continue,
                Ok(r) => break Ok(r),
                Err(flume::RecvTimeoutError::Disconnected) => break Err(()),
            }
        };
        match ready {
            Ok(Ok(b)) => {
                if resp_node_port.is_some() {
                    resp_node_port = Some(b.resp_node);
                }
                bound.push(b);
            }
            Ok(Err(e)) => {
                let _ = join.join();
                abort(stops, gos, joins);
                return Err(e);
            }
            Err(()) => {
                // The executor died before reporting: its join says why.
                let msg = match join.join() {
                    Err(e) => e.to_string(),
                    Ok(()) => "exited during start-up".to_string(),
                };
                abort(stops, gos, joins);
                return Err(fail(msg));
            }
        }
        stops.push(stop_tx);
        gos.push(go_tx);
        joins.push(join);
    }

    let layout = layout_of(config, &bound);
    node.set_layout(layout.clone());
    let cluster = Arc::new(if config.cluster.is_empty() {
        // Bound to every address: no one address to announce. Like Redis,
        // report an empty host (CLUSTER SLOTS `""`), which cluster clients
        // read as "the address you reached me at".
        let host = if config.bind.is_unspecified() {
            String::new()
        } else {
            config.bind.to_string()
        };
        ClusterMap::single(format_addr(&host, layout.shard_ports[0]), nr)
    } else {
        ClusterMap::new(config.cluster.clone(), config.node_id as usize, nr)
    });
    cluster.set_layout(
        cluster.node_id,
        PeerLayout {
            shard_ports: layout.shard_ports.clone(),
            resp_port: layout.resp_port,
            resp_shard_ports: layout.resp_shard_ports.clone(),
        },
    );
    node.set_cluster(cluster.clone());
    for g in gos {
        let _ = g.send(());
    }
    // Every shard recovers from its own files at the same time; the node is
    // ready when all are done.
    let mut recovery = Vec::new();
    for rx in recovered {
        match rx.recv() {
            Ok(Ok(r)) => recovery.push(r),
            Ok(Err(e)) => {
                abort(stops, Vec::new(), joins);
                return Err(e);
            }
            Err(_) => {
                abort(stops, Vec::new(), joins);
                return Err(ServerError::Persist(
                    "a shard exited during recovery".into(),
                ));
            }
        }
    }
    if !config.persist.appendonly {
        recovery.clear();
    }
    let greeting_stop = Arc::new(AtomicBool::new(false));
    let mut reported = vec![None; cluster.nr_nodes()];
    let password = config.security.requirepass.clone();
    greet::greet_once(&cluster, password.as_deref(), &mut reported);
    greet::spawn(cluster.clone(), password, greeting_stop.clone(), reported);
    let addr = |p: u16| SocketAddr::new(config.bind, p);
    Ok(ServerHandle {
        node_id: config.node_id,
        shard_addrs: layout.shard_ports.iter().map(|&p| addr(p)).collect(),
        resp_addr: config.resp_port.map(|_| addr(layout.resp_port)),
        resp_shard_addrs: layout.resp_shard_ports.iter().map(|&p| addr(p)).collect(),
        recovery,
        _dir_lock: dir_lock,
        taskrun_mode: if bound
            .iter()
            .all(|b| b.taskrun_mode == TaskRunMode::Cooperative)
        {
            TaskRunMode::Cooperative
        } else {
            TaskRunMode::Interrupt
        },
        multishot_poll: bound.iter().all(|b| b.multishot_poll),
        sleep_features: (
            bound.iter().all(|b| b.sleep_features.0),
            bound.iter().all(|b| b.sleep_features.1),
        ),
        node,
        cluster,
        greeting_stop,
        obs,
        stops,
        joins,
    })
}

/// The node's ports once every shard has bound.
fn layout_of(config: &ServerConfig, bound: &[Bound]) -> Layout {
    Layout {
        shard_ports: bound.iter().map(|b| b.native).collect(),
        resp_port: if config.resp_port.is_some() {
            bound[0].resp_node
        } else {
            0
        },
        resp_shard_ports: if config.resp_port.is_some() {
            bound.iter().map(|b| b.resp_shard).collect()
        } else {
            vec![]
        },
    }
}

fn abort(
    stops: Vec<flume::Sender<()>>,
    gos: Vec<flume::Sender<()>>,
    joins: Vec<glommio::ExecutorJoinHandle<()>>,
) {
    for s in stops {
        let _ = s.send(());
    }
    // Shards waiting for "go" see their channel close and exit (without
    // this drop, a start-up failure of shard i hung joining shards < i).
    drop(gos);
    for j in joins {
        let _ = j.join();
    }
}

fn executor_hint(message: &str, memlock: u64) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("memory") || m.contains("memlock") || m.contains("cannot allocate") {
        format!(
            " (RLIMIT_MEMLOCK is {memlock} bytes and could not be raised: run `ulimit -l unlimited` as root or add `* - memlock unlimited` to /etc/security/limits.conf)"
        )
    } else if m.contains("affinity") || m.contains("invalid argument") {
        " (is the CPU online and in this process's affinity mask?)".to_string()
    } else if m.contains("function not implemented") || m.contains("operation not permitted") {
        " (io_uring unavailable: needs Linux 5.8+ and io_uring not disabled by seccomp or sysctl)"
            .to_string()
    } else {
        String::new()
    }
}

/// Everything a shard's executor needs to start.
struct ShardStart {
    shard_id: usize,
    config: ServerConfig,
    node: Arc<NodeState>,
    obs: Arc<Observe>,
    mesh: Vec<flume::Sender<ShardMsg>>,
    mesh_rx: flume::Receiver<ShardMsg>,
    resp_node_port: Option<u16>,
    ready: flume::Sender<Result<Bound, ServerError>>,
    recovered: flume::Sender<Result<ShardRecovery, ServerError>>,
    go: flume::Receiver<()>,
    stop: flume::Receiver<()>,
}

/// Listen backlog: deep enough for a benchmark opening thousands of
/// connections at once.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds a listener. `shared` sets SO_REUSEPORT (the node-level RESP port,
/// which every shard binds); otherwise the port is exclusive, so a second
/// server on the same port fails instead of silently sharing it (glommio's
/// own `TcpListener::bind` always sets SO_REUSEPORT, which is why corekv
/// binds with socket2 and hands the descriptor over).
fn listen(addr: SocketAddr, shared: bool) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    sock.set_reuse_address(true)?;
    if shared {
        sock.set_reuse_port(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(LISTEN_BACKLOG)?;
    sock.set_nonblocking(true)?;
    // SAFETY: the descriptor is a freshly bound, listening TCP socket that
    // nothing else owns; glommio's listener takes ownership of it.
    Ok(unsafe { TcpListener::from_raw_fd(sock.into_raw_fd()) })
}

fn bind(shard_id: usize, addr: SocketAddr, shared: bool) -> Result<TcpListener, ServerError> {
    listen(addr, shared).map_err(|reason| ServerError::Bind {
        shard_id,
        addr,
        reason,
    })
}

/// Checks that no other process holds the node-level RESP port: an exclusive
/// probe bind fails where a SO_REUSEPORT bind would silently join theirs.
fn claim_shared_port(addr: SocketAddr) -> Result<u16, ServerError> {
    let probe = std::net::TcpListener::bind(addr).map_err(|reason| ServerError::Bind {
        shard_id: 0,
        addr,
        reason,
    })?;
    Ok(probe.local_addr().map(|a| a.port()).unwrap_or(addr.port()))
}

impl ShardStart {
    async fn run(self) {
        let c = &self.config;
        let id = self.shard_id;
        // Before any socket exists: streams arm their read poll at creation.
        let multishot_poll = glommio::executor().set_multishot_poll(c.multishot_poll);
        let port = |base: u16, offset: usize| if base == 0 { 0 } else { base + offset as u16 };
        let listeners = (|| {
            let native = bind(id, SocketAddr::new(c.bind, port(c.port, id)), false)?;
            let resp = match self.resp_node_port {
                Some(r) => Some((
                    bind(id, SocketAddr::new(c.bind, r), true)?,
                    bind(
                        id,
                        SocketAddr::new(c.bind, port(c.resp_port.unwrap_or(0), id + 1)),
                        false,
                    )?,
                )),
                None => None,
            };
            Ok((native, resp))
        })();
        let (native, resp) = match listeners {
            Ok(l) => l,
            Err(e) => {
                let _ = self.ready.send(Err(e));
                return;
            }
        };
        let local_port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
        let b = Bound {
            native: local_port(&native),
            resp_node: resp.as_ref().map_or(0, |(n, _)| local_port(n)),
            resp_shard: resp.as_ref().map_or(0, |(_, s)| local_port(s)),
            taskrun_mode: glommio::executor().taskrun_mode(),
            multishot_poll,
            sleep_features: glommio::executor().sleep_features(),
        };
        let _ = self.ready.send(Ok(b));
        if self.go.recv_async().await.is_err() {
            return; // start-up aborted
        }
        let limits = StoreLimits {
            max_key_len: c.limits.max_key_len,
            max_value_len: c.limits.max_value_len,
            max_memory: self.node.shard_memory,
        };
        let (store, log, report) = match open_store(c, id, &self.node, limits).await {
            Ok(x) => x,
            Err(e) => {
                let _ = self.recovered.send(Err(e));
                return;
            }
        };
        let shard = Rc::new(Shard::with_store(
            id,
            self.node.clone(),
            store,
            self.mesh,
            log.clone(),
        ));
        shard.set_policy(c.maxmemory_policy);
        shard.publish();
        let maintenance_task = glommio::spawn_local(shard.clone().run_maintenance());
        let timer = glommio::spawn_local(
            shard
                .clone()
                .run_persistence(c.persist.rewrite_percentage, c.persist.rewrite_min_size),
        );
        let _ = self.recovered.send(Ok(report));
        let live = Rc::new(LiveConnections::default());
        let security = Rc::new(c.security.clone());
        let mesh_task = glommio::spawn_local(shard.clone().serve_mesh(self.mesh_rx));
        let mut listeners = vec![(native, Protocol::Native)];
        if let Some((node_l, shard_l)) = resp {
            listeners.push((node_l, Protocol::Resp));
            listeners.push((shard_l, Protocol::Resp));
        }
        let accept_tasks: Vec<_> = listeners
            .into_iter()
            .map(|(l, proto)| {
                glommio::spawn_local(accept_loop(
                    shard.clone(),
                    live.clone(),
                    self.obs.clone(),
                    l,
                    c.limits,
                    security.clone(),
                    proto,
                ))
            })
            .collect();
        let _ = self.stop.recv_async().await;
        // Stop accepting, then close every connection and let its task end
        // (glommio does not drop tasks still pending when an executor
        // returns, so their sockets would otherwise stay open).
        drop(accept_tasks);
        live.shutdown_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !live.is_empty() && std::time::Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        drop(maintenance_task);
        drop(mesh_task);
        drop(timer);
        if let Some(log) = &log {
            if let Err(errno) = log.close().await {
                eprintln!(
                    "corekv: shard {id}: final write of {} failed: {}",
                    log.path().display(),
                    std::io::Error::from_raw_os_error(errno)
                );
            }
        }
    }
}

/// The shard's store: empty, or recovered from its files in `--dir`, with
/// its log open for appending.
async fn open_store(
    c: &ServerConfig,
    id: usize,
    node: &NodeState,
    limits: StoreLimits,
) -> Result<(Store, Option<Rc<Aof>>, ShardRecovery), ServerError> {
    // Keys are placed by the cluster map: the files hold this node's id in
    // it and its size, and every key must belong to this (node, shard).
    let cluster = node.cluster();
    let node_id = cluster.node_id as u32;
    let mut empty = Store::with_databases(limits, c.effective_databases());
    // Loading obeys the eviction policy, and expiry against the real clock.
    empty.set_now(crate::store::unix_now_ms());
    empty.set_policy(c.maxmemory_policy);
    let p = &c.persist;
    if !p.appendonly {
        let report = ShardRecovery {
            shard_id: id,
            keys: 0,
            records: 0,
            secs: 0.0,
            notes: vec![],
        };
        return Ok((empty, None, report));
    }
    let fail = |m: String| ServerError::Persist(format!("shard {id}: {m}"));
    let owner = |key: &[u8]| {
        let o = cluster.owner(crate::routing::key_slot(key));
        (o.node_id as u32, o.shard_id as usize)
    };
    let who = persist::Reader {
        shard_id: id,
        nr_shards: c.nr_shards(),
        node_id,
        nr_nodes: cluster.nr_nodes() as u32,
        owner: &owner,
    };
    let r = persist::recover(&p.dir, &who, empty).map_err(fail)?;
    let path = persist::log_path(&p.dir, id, r.generation);
    let file = persist::log::open_file(&path, r.log_end, p.fsync)
        .await
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let align = file.alignment();
    let block = r.log_end - r.log_end % align;
    let tail = match block.checked_sub(r.log_tail_from) {
        Some(skip) if align <= persist::TAIL_KEEP => r.log_tail[skip as usize..].to_vec(),
        _ => {
            return Err(fail(format!(
                "{}: O_DIRECT alignment {align} is larger than {} bytes",
                path.display(),
                persist::TAIL_KEEP
            )))
        }
    };
    let ident = persist::record::Header {
        nr_shards: c.nr_shards() as u32,
        shard_id: id as u32,
        node_id,
        nr_nodes: cluster.nr_nodes() as u32,
        kind: persist::record::FileKind::Log,
        generation: r.generation,
    };
    let log = Rc::new(Aof::new(
        file,
        path.clone(),
        r.log_end,
        tail,
        p.fsync,
        ident,
    ));
    log.set_snapshot_size(r.snapshot_size);
    if r.log_end == 0 {
        let header = log.header(persist::record::FileKind::Log, r.generation);
        log.append_raw(&header);
        log.commit_to(log.appended(), true).await.map_err(|e| {
            fail(format!(
                "{}: {}",
                path.display(),
                std::io::Error::from_raw_os_error(e)
            ))
        })?;
    }
    let report = ShardRecovery {
        shard_id: id,
        keys: r.store.len(),
        records: r.records,
        secs: r.secs,
        notes: r.notes,
    };
    Ok((r.store, Some(log), report))
}

#[derive(Clone, Copy)]
enum Protocol {
    Native,
    Resp,
}

/// The open connections of one shard, so shutdown can close them.
#[derive(Default)]
struct LiveConnections {
    next_id: Cell<u64>,
    fds: RefCell<HashMap<u64, RawFd>>,
}

impl LiveConnections {
    fn add(&self, fd: RawFd) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.fds.borrow_mut().insert(id, fd);
        id
    }
    fn remove(&self, id: u64) {
        self.fds.borrow_mut().remove(&id);
    }
    fn is_empty(&self) -> bool {
        self.fds.borrow().is_empty()
    }
    fn shutdown_all(&self) {
        for &fd in self.fds.borrow().values() {
            // SAFETY: the descriptor belongs to a live connection task of this
            // shard (removed from the map before its stream is dropped);
            // shutdown(2) only wakes its pending reads and writes.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }
}

async fn accept_loop(
    shard: Rc<Shard>,
    live: Rc<LiveConnections>,
    obs: Arc<Observe>,
    listener: TcpListener,
    limits: Limits,
    security: Rc<Security>,
    proto: Protocol,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: the listener stays up.
                crate::log!(
                    crate::log::Level::Warn,
                    "corekv: shard {}: accept failed: {e}",
                    shard.shard_id
                );
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = live.add(stream.as_raw_fd());
        let live = live.clone();
        let shard = shard.clone();
        let security = security.clone();
        let obs = obs.clone();
        glommio::spawn_local(async move {
            serve(&shard, &obs, stream, limits, &security, proto).await;
            live.remove(id);
        })
        .detach();
    }
}

async fn serve(
    shard: &Shard,
    obs: &Observe,
    stream: TcpStream,
    limits: Limits,
    security: &Security,
    proto: Protocol,
) {
    if security.refuses(stream.peer_addr().ok().map(|a| a.ip())) {
        shard.count_protocol_error();
        match proto {
            Protocol::Native => native::reject_protected(stream).await,
            Protocol::Resp => resp::reject_protected(stream).await,
        }
        return;
    }
    let max = limits.max_connections_per_shard;
    let stats = obs.shard(shard.shard_id);
    if !shard.try_add_connection(max) {
        stats.rejected_conns.add(1);
        match proto {
            Protocol::Native => native::reject_full(stream, max).await,
            Protocol::Resp => resp::reject_full(stream).await,
        }
        return;
    }
    stats.accepted.add(1);
    match proto {
        Protocol::Native => native::serve(shard, stream, &limits, security, stats).await,
        Protocol::Resp => resp::serve(shard, stream, &limits, security, obs).await,
    }
    shard.remove_connection();
}
