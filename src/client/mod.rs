//! The shard-aware cluster client.
//!
//! [`Cluster::connect`] takes one or more node addresses and asks them for
//! their layout (HELLO). A HELLO carries the node's cluster (every node's
//! address, by node id, and a digest), so one address is enough: the client
//! greets every node of that list, builds the slot table from their shard
//! counts ([`SlotTable`]) and opens one connection per (node, shard). Nodes
//! that disagree about the cluster are refused (a clear
//! [`ClientError::Topology`]); a node that cannot be reached is kept as
//! *down*: its keys get [`OpError::Unavailable`] and [`BatchResults::down_node`]
//! names it, while keys of the live nodes are served.
//!
//! [`Cluster::execute`] routes each op of a [`Batch`] with
//! [`crate::routing::route`] (key → slot → node, shard), splits the batch
//! into one part per destination shard, sends the parts together and
//! returns the results in the caller's order ([`BatchResults`]). An op the
//! server answers with a redirect ([`OpResult::Moved`]: the node does not
//! own the key, the client's map was stale) is re-sent once to the node the
//! redirect names, and counted ([`Cluster::redirects`]).
//!
//! A `Cluster` lives on one glommio executor (it is `Rc`-based, `!Send`) and
//! is shared by any number of concurrent sessions (tasks) on that executor:
//! sessions pipeline over the shared connections. Each connection has a
//! writer task, which writes everything sessions queued since its last write
//! in one syscall (natural batching of frames), and a reader task, which
//! validates each reply frame and hands it to the waiting session. The
//! server answers a connection's frames in order, so replies are matched to
//! requests by a FIFO and checked against the request id.
//!
//! Failures are typed [`ClientError`]s — connection lost, server error frame,
//! protocol violation, timeout — never panics. A lost connection fails the
//! requests in flight on it (their outcome is unknown) and stays failed; make
//! a new `Cluster` to reconnect.
//!
//! [`blocking::BlockingClient`] wraps a `Cluster` on a private executor
//! thread for synchronous callers (the CLI, tests).

pub mod blocking;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;

use crate::error::ClientError;
/// Owned results, as the client hands them out (defined with the
/// vocabulary in [`crate::op`]).
pub use crate::op::OwnedResult;
use crate::op::{OpError, OpResult};
use crate::protocol::native::{
    decode_owned, encode_archived, encode_empty, encode_frame, Batch, ErrorFrame, FrameError,
    FrameHeader, FrameKind, FrameReader, Hello, NextFrame, NodeStats, RecvBuf, ReplyView,
    HEADER_LEN, PROTOCOL_VERSION,
};
use crate::routing::{node_slots, route, shard_slots, SlotTable};

/// Default time a request may take before it fails with [`ClientError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest reply frame the client accepts.
pub const MAX_REPLY_BYTES: usize = 1 << 30;

/// Client options.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Connect only to this shard of each node instead of every shard (the
    /// server forwards): models a client that is not shard-aware.
    pub pin_shard: Option<usize>,
    /// The nodes' password (`--requirepass`), sent as the HELLO token on
    /// every connection.
    pub password: Option<String>,
    /// Route with this slot table instead of the one the nodes' HELLOs give
    /// (a table cached from an earlier view of the cluster). Ops it sends
    /// to the wrong node come back redirected and are followed. It must fit
    /// the cluster (no more nodes, no node with more shards).
    pub slot_table: Option<SlotTable>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: DEFAULT_TIMEOUT,
            pin_shard: None,
            password: None,
            slot_table: None,
        }
    }
}

/// A reply frame handed to a waiting request.
struct Reply {
    kind: FrameKind,
    payload: RecvBuf,
}

type ReplyResult = Result<Reply, ClientError>;

struct Pending {
    request_id: u64,
    tx: flume::Sender<ReplyResult>,
}

/// One TCP stream read and written by two tasks (or futures) of one
/// executor. The `RefCell` is borrowed only inside a single `poll`, never
/// across one, so no lock is needed. Also used by the bench's RESP driver.
#[derive(Clone)]
pub(crate) struct Half(pub(crate) Rc<RefCell<TcpStream>>);

impl AsyncRead for Half {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Half {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

/// One connection to one shard.
struct Conn {
    addr: String,
    /// Frames queued by sessions, not yet written.
    out: RefCell<Vec<u8>>,
    writer_waker: Cell<Option<Waker>>,
    pending: RefCell<VecDeque<Pending>>,
    failed: RefCell<Option<ClientError>>,
    bytes_sent: Cell<u64>,
    bytes_received: Cell<u64>,
    /// Reply buffers, shared by the cluster's connections.
    pool: Rc<BufferPool>,
}

impl Conn {
    fn fail(&self, e: ClientError) {
        if self.failed.borrow().is_none() {
            *self.failed.borrow_mut() = Some(e.clone());
        }
        for p in self.pending.borrow_mut().drain(..) {
            let _ = p.tx.send(Err(e.clone()));
        }
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
    }

    /// Queues a frame (written by `encode`) and returns where its reply will arrive.
    fn send(
        &self,
        request_id: u64,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), ClientError>,
    ) -> Result<flume::Receiver<ReplyResult>, ClientError> {
        if let Some(e) = self.failed.borrow().as_ref() {
            return Err(e.clone());
        }
        encode(&mut self.out.borrow_mut())?;
        let (tx, rx) = flume::bounded(1);
        self.pending
            .borrow_mut()
            .push_back(Pending { request_id, tx });
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
        Ok(rx)
    }
}

/// Waits until the connection has queued bytes (or has failed).
struct OutputReady<'a>(&'a Conn);

impl Future for OutputReady<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.0.out.borrow().is_empty() || self.0.failed.borrow().is_some() {
            Poll::Ready(())
        } else {
            self.0.writer_waker.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    }
}

async fn writer_task(conn: Rc<Conn>, mut w: Half) {
    let mut spare: Vec<u8> = Vec::new();
    loop {
        OutputReady(&conn).await;
        if conn.failed.borrow().is_some() {
            return;
        }
        std::mem::swap(&mut spare, &mut conn.out.borrow_mut());
        if let Err(e) = w.write_all(&spare).await {
            conn.fail(ClientError::ConnectionLost {
                addr: conn.addr.clone(),
                message: e.to_string(),
            });
            return;
        }
        conn.bytes_sent
            .set(conn.bytes_sent.get() + spare.len() as u64);
        spare.clear();
    }
}

/// Hands a reply frame to the request waiting for it; `Err` fails the
/// connection (error frame, unsolicited or mismatched reply).
fn deliver(conn: &Conn, h: FrameHeader, payload: RecvBuf) -> Result<(), ClientError> {
    let protocol = |message: String| ClientError::Protocol {
        addr: conn.addr.clone(),
        message,
    };
    let Some(p) = conn.pending.borrow_mut().pop_front() else {
        return Err(protocol(format!("unsolicited frame {:?}", h.kind)));
    };
    let failure = if h.kind == FrameKind::Error {
        let message = decode_owned::<ErrorFrame>(&payload)
            .map(|e| e.message)
            .unwrap_or_else(|e| e.to_string());
        Some(ClientError::Server {
            addr: conn.addr.clone(),
            message,
        })
    } else if h.request_id != p.request_id {
        Some(protocol(format!(
            "reply to request {} while {} was expected",
            h.request_id, p.request_id
        )))
    } else {
        None
    };
    match failure {
        Some(e) => {
            let _ = p.tx.send(Err(e.clone()));
            Err(e)
        }
        None => {
            let _ = p.tx.send(Ok(Reply {
                kind: h.kind,
                payload,
            }));
            Ok(())
        }
    }
}

async fn reader_task(conn: Rc<Conn>, mut r: Half) {
    let mut reader = FrameReader::new(256 * 1024, MAX_REPLY_BYTES);
    let lost = |m: String| ClientError::ConnectionLost {
        addr: conn.addr.clone(),
        message: m,
    };
    let protocol = |e: FrameError| ClientError::Protocol {
        addr: conn.addr.clone(),
        message: e.to_string(),
    };
    loop {
        loop {
            match reader.next_frame() {
                Ok(NextFrame::Frame(h, range)) => {
                    let mut payload = conn.pool.take();
                    payload.clear();
                    payload.extend_from_slice(&reader.buf[range]);
                    if let Err(e) = deliver(&conn, h, payload) {
                        return conn.fail(e);
                    }
                }
                Ok(NextFrame::NeedMore) => break,
                Err(e) => return conn.fail(protocol(e)),
            }
        }
        // A large reply whose header is here: read the rest of its body
        // straight into the buffer it is handed over in.
        match reader.partial_header() {
            Ok(Some(h)) if h.frame_len() >= DIRECT_READ_MIN => {
                let body = h.frame_len() - HEADER_LEN;
                let mut payload = conn.pool.take();
                // A recycled buffer is already about this long: no zero-fill.
                payload.resize(body, 0);
                let mut filled = reader.take_partial_body(&mut payload);
                while filled < body {
                    match r.read(&mut payload[filled..]).await {
                        Ok(0) => return conn.fail(lost("closed by server".into())),
                        Ok(n) => {
                            filled += n;
                            conn.bytes_received
                                .set(conn.bytes_received.get() + n as u64);
                        }
                        Err(e) => return conn.fail(lost(e.to_string())),
                    }
                }
                payload.resize(h.len, 0);
                if let Err(e) = deliver(&conn, h, payload) {
                    return conn.fail(e);
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => return conn.fail(protocol(e)),
        }
        let space = reader.read_space();
        match r.read(space).await {
            Ok(0) => return conn.fail(lost("closed by server".into())),
            Ok(n) => {
                reader.filled(n);
                conn.bytes_received
                    .set(conn.bytes_received.get() + n as u64);
            }
            Err(e) => return conn.fail(lost(e.to_string())),
        }
    }
}

/// Appends a batch frame, mapping the (impossible in practice) serializer
/// error to a protocol error.
fn encode_batch(out: &mut Vec<u8>, id: u64, batch: &Batch, addr: &str) -> Result<(), ClientError> {
    encode_archived(out, FrameKind::Batch, id, batch).map_err(|e| ClientError::Protocol {
        addr: addr.to_string(),
        message: e.to_string(),
    })
}

/// Reply buffers recycled between batches on one executor, so a reply of a
/// megabyte costs no allocation (and, above malloc's mmap threshold, no
/// mmap/munmap and page faults) once warmed up.
#[derive(Default)]
struct BufferPool(RefCell<Vec<RecvBuf>>);

/// Buffers a pool keeps at most.
const POOL_MAX: usize = 256;

impl BufferPool {
    /// A buffer; its length is whatever its last use left (callers resize).
    fn take(&self) -> RecvBuf {
        self.0.borrow_mut().pop().unwrap_or_default()
    }
    fn put(&self, buf: RecvBuf) {
        let mut pool = self.0.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(buf);
        }
    }
}

/// Replies at least this large are read from the socket straight into their
/// own buffer instead of being copied out of the connection's read buffer.
const DIRECT_READ_MIN: usize = 64 * 1024;

/// A node as the client sees it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The address the node was reached at (host:port of shard 0 or any shard).
    pub addr: String,
    /// Its HELLO answer (for a down node: its id and the cluster only).
    pub hello: Hello,
    /// Why the node is considered down (`None`: it is live).
    pub down: Option<String>,
}

/// Part index of ops whose node is down.
const DOWN_PART: u32 = u32::MAX;

/// Results of one [`Cluster::execute`], in the caller's order.
#[derive(Default)]
pub struct BatchResults {
    /// Destination part of each op.
    targets: Vec<u32>,
    /// Reply payload of each part (indexed like `parts` in the cluster).
    replies: Vec<Option<RecvBuf>>,
    /// Op count of each part.
    counts: Vec<usize>,
    /// Results of ops re-sent after a redirect, by op index (sorted).
    followed: Vec<(usize, OwnedResult)>,
    /// The first down node an op of this batch was routed to.
    down_node: Option<usize>,
}

impl BatchResults {
    /// Number of results.
    pub fn len(&self) -> usize {
        self.targets.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Visits every result in the caller's order.
    pub fn for_each(&self, mut f: impl FnMut(usize, OpResult<'_>)) {
        let views: Vec<Option<ReplyView<'_>>> = self
            .replies
            .iter()
            .zip(&self.counts)
            .map(|(r, &n)| r.as_ref().and_then(|b| ReplyView::new(b, n).ok()))
            .collect();
        let mut cursors = vec![0usize; views.len()];
        let mut followed = self.followed.iter().peekable();
        for (i, &t) in self.targets.iter().enumerate() {
            if t == DOWN_PART {
                f(i, OpResult::Err(OpError::Unavailable));
                continue;
            }
            let t = t as usize;
            let r = views[t].as_ref().map(|v| v.get(cursors[t]));
            cursors[t] += 1;
            if let Some((_, owned)) = followed.next_if(|(j, _)| *j == i) {
                f(i, owned.as_result());
                continue;
            }
            // Parts were validated on arrival; a missing view cannot happen.
            f(
                i,
                r.unwrap_or(OpResult::Err(crate::op::OpError::Unavailable)),
            );
        }
    }

    /// The first node this batch had ops for that is down (its ops got
    /// [`OpError::Unavailable`]).
    pub fn down_node(&self) -> Option<usize> {
        self.down_node
    }

    /// Owned copies of all results (convenient for tests and tools).
    pub fn to_vec(&self) -> Vec<OwnedResult> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|_, r| v.push(OwnedResult::from(r)));
        v
    }
}

/// Reusable per-session scratch for splitting batches (no allocation per
/// batch once warmed up).
#[derive(Default)]
pub struct Splitter {
    parts: Vec<Batch>,
}

/// A connected cluster, for one executor. Cheap to share via `Rc`.
pub struct Cluster {
    nodes: Vec<NodeInfo>,
    /// `conns[node][shard]`.
    conns: Vec<Vec<Rc<Conn>>>,
    /// First part index of each node in the flattened (node, shard) space.
    part_base: Vec<usize>,
    nr_parts: usize,
    /// Slot → (node, shard), from the nodes' HELLOs.
    table: SlotTable,
    redirects: Cell<u64>,
    next_request: Cell<u64>,
    options: ClientOptions,
    tasks: RefCell<Vec<JoinHandle<()>>>,
    pool: Rc<BufferPool>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.conns.iter().flatten() {
            c.fail(ClientError::Closed);
        }
        for t in self.tasks.borrow_mut().drain(..) {
            t.cancel();
        }
    }
}

/// Opens a TCP connection (no delay) to `addr` within `timeout`: the one
/// connect helper of the client and the bench.
pub async fn connect_stream(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let err = |m: String| ClientError::Connect {
        addr: addr.to_string(),
        message: m,
    };
    let sock: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("address resolves to nothing".into()))?;
    let s = TcpStream::connect_timeout(sock, timeout)
        .await
        .map_err(|e| err(e.to_string()))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Replaces the port of `host:port` (or `[v6]:port`).
fn with_port(addr: &str, port: u16) -> String {
    match addr.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => format!("{addr}:{port}"),
    }
}

impl Cluster {
    /// Connects to the cluster `hosts` belong to (one address of any node is
    /// enough) and to every shard of each live node.
    pub async fn connect(
        hosts: &[String],
        options: ClientOptions,
    ) -> Result<Rc<Cluster>, ClientError> {
        if hosts.is_empty() {
            return Err(ClientError::Topology("no hosts given".into()));
        }
        // Every given host must answer and agree on the cluster.
        let mut given: Vec<NodeInfo> = Vec::new();
        for h in hosts {
            let hello = hello(h, options.password.as_deref(), options.timeout).await?;
            if hello.protocol_version != PROTOCOL_VERSION {
                return Err(ClientError::Topology(format!(
                    "{h} speaks protocol {}, this client {}",
                    hello.protocol_version, PROTOCOL_VERSION
                )));
            }
            if let Some(first) = given.first() {
                if first.hello.cluster_digest != hello.cluster_digest {
                    return Err(ClientError::Topology(format!(
                        "{} and {h} are not in the same cluster ({} vs {}): start every node with the same --cluster list",
                        first.addr,
                        first.hello.cluster.join(","),
                        hello.cluster.join(",")
                    )));
                }
            }
            given.push(NodeInfo {
                addr: h.clone(),
                hello,
                down: None,
            });
        }
        let list = given[0].hello.cluster.clone();
        if list.is_empty() {
            return Err(ClientError::Topology(format!(
                "{} reports no cluster",
                given[0].addr
            )));
        }
        // Each node of the list: as given, else greeted at its listed address.
        let mut nodes: Vec<NodeInfo> = Vec::new();
        for (node_id, addr) in list.iter().enumerate() {
            if let Some(n) = given.iter().find(|n| n.hello.node_id as usize == node_id) {
                nodes.push(n.clone());
                continue;
            }
            let info = match hello(addr, options.password.as_deref(), options.timeout).await {
                Ok(h) if h.cluster_digest != given[0].hello.cluster_digest => {
                    return Err(ClientError::Topology(format!(
                        "node {node_id} ({addr}) disagrees about the cluster: it has --cluster {}",
                        h.cluster.join(",")
                    )))
                }
                Ok(h) if h.node_id as usize != node_id => {
                    return Err(ClientError::Topology(format!(
                        "{addr} says it is node {}, the cluster list says node {node_id}",
                        h.node_id
                    )))
                }
                Ok(h) => NodeInfo {
                    addr: addr.clone(),
                    hello: h,
                    down: None,
                },
                Err(e) => NodeInfo {
                    addr: addr.clone(),
                    hello: Hello {
                        node_id: node_id as u32,
                        shard_ports: vec![],
                        cluster: list.clone(),
                        ..given[0].hello.clone()
                    },
                    down: Some(e.to_string()),
                },
            };
            nodes.push(info);
        }
        for n in &given {
            if n.hello.node_id as usize >= list.len() {
                return Err(ClientError::Topology(format!(
                    "{} says it is node {} of a cluster of {}",
                    n.addr,
                    n.hello.node_id,
                    list.len()
                )));
            }
            if n.hello.shard_ports.is_empty() {
                return Err(ClientError::Topology(format!(
                    "{} reports no shards",
                    n.addr
                )));
            }
        }
        let counts: Vec<usize> = nodes.iter().map(|n| n.hello.shard_ports.len()).collect();
        let table = match &options.slot_table {
            None => SlotTable::new(&counts),
            Some(t) => {
                let fits = t.nr_nodes() <= counts.len()
                    && (0..t.nr_nodes()).all(|i| t.nr_shards(i) <= counts[i].max(1));
                if !fits {
                    return Err(ClientError::Topology(
                        "the given slot table has more nodes or shards than the cluster".into(),
                    ));
                }
                t.clone()
            }
        };
        let mut cluster = Cluster {
            conns: Vec::new(),
            part_base: Vec::new(),
            nr_parts: 0,
            table,
            redirects: Cell::new(0),
            next_request: Cell::new(1),
            options: options.clone(),
            tasks: RefCell::new(Vec::new()),
            nodes: Vec::new(),
            pool: Rc::default(),
        };
        for n in &mut nodes {
            let mut row = Vec::new();
            cluster.part_base.push(cluster.nr_parts);
            for (shard_id, &port) in n.hello.shard_ports.iter().enumerate() {
                let target = options
                    .pin_shard
                    .map_or(shard_id, |p| p.min(n.hello.shard_ports.len() - 1));
                if target != shard_id {
                    // Not shard-aware: every shard's ops go through one connection.
                    let first: Rc<Conn> = match row.first() {
                        Some(c) => Rc::clone(c),
                        None => {
                            cluster
                                .open(&with_port(&n.addr, n.hello.shard_ports[target]))
                                .await?
                        }
                    };
                    row.push(first);
                    continue;
                }
                row.push(cluster.open(&with_port(&n.addr, port)).await?);
            }
            cluster.nr_parts += row.len();
            cluster.conns.push(row);
        }
        cluster.nodes = nodes;
        Ok(Rc::new(cluster))
    }

    async fn open(&self, addr: &str) -> Result<Rc<Conn>, ClientError> {
        let mut stream = connect_stream(addr, self.options.timeout).await?;
        if let Some(p) = &self.options.password {
            // Authenticate first: the server closes a connection whose
            // first frame is not a HELLO with the right token.
            hello_on(&mut stream, addr, Some(p), self.options.timeout).await?;
        }
        let conn = Rc::new(Conn {
            addr: addr.to_string(),
            out: RefCell::new(Vec::with_capacity(64 * 1024)),
            writer_waker: Cell::new(None),
            pending: RefCell::new(VecDeque::new()),
            failed: RefCell::new(None),
            bytes_sent: Cell::new(0),
            bytes_received: Cell::new(0),
            pool: self.pool.clone(),
        });
        let half = Half(Rc::new(RefCell::new(stream)));
        let mut tasks = self.tasks.borrow_mut();
        tasks.push(glommio::spawn_local(writer_task(conn.clone(), half.clone())).detach());
        tasks.push(glommio::spawn_local(reader_task(conn.clone(), half)).detach());
        Ok(conn)
    }

    /// The nodes, by node id.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// Bytes written to and read from all connections so far.
    pub fn bytes(&self) -> (u64, u64) {
        let mut seen = std::collections::HashSet::new();
        let (mut s, mut r) = (0, 0);
        for c in self.conns.iter().flatten() {
            if seen.insert(Rc::as_ptr(c)) {
                s += c.bytes_sent.get();
                r += c.bytes_received.get();
            }
        }
        (s, r)
    }

    fn request_id(&self) -> u64 {
        let id = self.next_request.get();
        self.next_request.set(id.wrapping_add(1));
        id
    }

    async fn wait(&self, rx: flume::Receiver<ReplyResult>) -> ReplyResult {
        match glommio::timer::timeout(self.options.timeout, async { Ok(rx.recv_async().await) })
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(self.options.timeout)),
        }
    }

    /// Executes a batch across the cluster; results in the caller's order.
    pub async fn execute(
        &self,
        batch: &Batch,
        splitter: &mut Splitter,
        results: &mut BatchResults,
    ) -> Result<(), ClientError> {
        for buf in results.replies.drain(..).flatten() {
            self.pool.put(buf);
        }
        results.replies.resize_with(self.nr_parts, || None);
        results.targets.clear();
        results.counts.clear();
        results.followed.clear();
        results.down_node = None;
        if self.nr_parts == 1 && self.nodes.len() == 1 {
            // One destination: send the caller's batch as it is (no split, no copy).
            results.targets.resize(batch.len(), 0);
            results.counts.push(batch.len());
            if batch.is_empty() {
                return Ok(());
            }
            let conn = &self.conns[0][0];
            let id = self.request_id();
            let rx = conn.send(id, |out| encode_batch(out, id, batch, &conn.addr))?;
            // A one-node cluster owns every slot: nothing is ever redirected.
            return self.collect(vec![(0, conn, rx)], results).await.map(|_| ());
        }
        splitter.parts.resize_with(self.nr_parts, Batch::default);
        for p in &mut splitter.parts {
            p.clear();
        }
        for i in 0..batch.len() {
            let (op, key, value) = batch.op(i);
            let r = route(key, &self.table);
            if self.nodes[r.node_id].down.is_some() {
                results.down_node.get_or_insert(r.node_id);
                results.targets.push(DOWN_PART);
                continue;
            }
            let part = self.part_base[r.node_id] + r.shard_id;
            splitter.parts[part].push_raw(op, key, value);
            results.targets.push(part as u32);
        }
        results
            .counts
            .extend(splitter.parts.iter().map(|p| p.len()));
        let mut waits = Vec::new();
        for (node, row) in self.conns.iter().enumerate() {
            for (shard, conn) in row.iter().enumerate() {
                let part = self.part_base[node] + shard;
                if splitter.parts[part].is_empty() {
                    continue;
                }
                let id = self.request_id();
                let p = &splitter.parts[part];
                let rx = conn.send(id, |out| encode_batch(out, id, p, &conn.addr))?;
                waits.push((part, conn, rx));
            }
        }
        if self.collect(waits, results).await? {
            self.follow_redirects(batch, results).await?;
        }
        Ok(())
    }

    /// Re-sends once every op a server redirected ([`OpResult::Moved`]) to
    /// the node it named (the shard owning the slot there), keeping the
    /// new results in `results.followed`.
    async fn follow_redirects(
        &self,
        batch: &Batch,
        results: &mut BatchResults,
    ) -> Result<(), ClientError> {
        let mut moved: Vec<(usize, u16, usize)> = Vec::new();
        results.for_each(|i, r| {
            if let OpResult::Moved { slot, node_id } = r {
                moved.push((i, slot, node_id as usize));
            }
        });
        let mut followed = Vec::with_capacity(moved.len());
        for (i, slot, node_id) in moved {
            self.redirects.set(self.redirects.get() + 1);
            let result = match self.conns.get(node_id).filter(|row| !row.is_empty()) {
                None => {
                    results.down_node.get_or_insert(node_id);
                    OwnedResult::Err(OpError::Unavailable)
                }
                Some(row) => {
                    let n = row.len();
                    let range = node_slots(node_id, self.nodes.len());
                    let shard = (0..n)
                        .find(|&s| shard_slots(range.clone(), s, n).contains(&(slot as usize)))
                        .unwrap_or(0);
                    let conn = &row[shard];
                    let (op, key, value) = batch.op(i);
                    let mut one = Batch::default();
                    one.push_raw(op, key, value);
                    let id = self.request_id();
                    let rx = conn.send(id, |out| encode_batch(out, id, &one, &conn.addr))?;
                    let reply = self.wait(rx).await?;
                    let view =
                        ReplyView::new(&reply.payload, 1).map_err(|e| ClientError::Protocol {
                            addr: conn.addr.clone(),
                            message: e.to_string(),
                        })?;
                    OwnedResult::from(view.get(0))
                }
            };
            followed.push((i, result));
        }
        results.followed = followed;
        Ok(())
    }

    /// Ops re-sent because a server redirected them, since connect.
    pub fn redirects(&self) -> u64 {
        self.redirects.get()
    }

    /// The slot table this client routes with.
    pub fn slot_table(&self) -> &SlotTable {
        &self.table
    }

    /// Waits for every part's reply, validates it against its op count and
    /// keeps its buffer in `results`. True when some op was redirected.
    async fn collect(
        &self,
        waits: Vec<(usize, &Rc<Conn>, flume::Receiver<ReplyResult>)>,
        results: &mut BatchResults,
    ) -> Result<bool, ClientError> {
        let mut moved = false;
        for (part, conn, rx) in waits {
            let reply = self.wait(rx).await?;
            let protocol = |message: String| ClientError::Protocol {
                addr: conn.addr.clone(),
                message,
            };
            if reply.kind != FrameKind::BatchReply {
                return Err(protocol(format!(
                    "expected a batch reply, got {:?}",
                    reply.kind
                )));
            }
            let view = ReplyView::new(&reply.payload, results.counts[part])
                .map_err(|e| protocol(e.to_string()))?;
            moved |= view.any_moved();
            results.replies[part] = Some(reply.payload);
        }
        Ok(moved)
    }

    /// Counters of every live node, by node id.
    pub async fn stats(&self) -> Result<Vec<NodeStats>, ClientError> {
        let mut waits = Vec::new();
        for row in self.conns.iter().filter(|r| !r.is_empty()) {
            let conn = &row[0];
            let id = self.request_id();
            let rx = conn.send(id, |out| {
                encode_empty(out, FrameKind::Stats, id);
                Ok(())
            })?;
            waits.push((conn, rx));
        }
        let mut out = Vec::new();
        for (conn, rx) in waits {
            let r = self.wait(rx).await?;
            out.push(
                decode_owned::<NodeStats>(&r.payload).map_err(|e| ClientError::Protocol {
                    addr: conn.addr.clone(),
                    message: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }
}

/// Asks one address for its node's layout, on a short-lived connection
/// (sending `password` as the HELLO token when given).
pub async fn hello(
    addr: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Hello, ClientError> {
    let mut s = connect_stream(addr, timeout).await?;
    hello_on(&mut s, addr, password, timeout).await
}

/// Sends HELLO (with the token) on an open connection and reads the answer.
async fn hello_on(
    s: &mut TcpStream,
    addr: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Hello, ClientError> {
    let lost = |m: String| ClientError::ConnectionLost {
        addr: addr.to_string(),
        message: m,
    };
    let mut out = Vec::new();
    match password {
        Some(p) => {
            let _ = encode_frame::<()>(&mut out, FrameKind::Hello, 0, |o| {
                o.extend_from_slice(p.as_bytes());
                Ok(())
            });
        }
        None => encode_empty(&mut out, FrameKind::Hello, 0),
    }
    let io = async {
        s.write_all(&out).await.map_err(|e| lost(e.to_string()))?;
        let mut reader = FrameReader::new(4096, 1 << 20);
        loop {
            match reader.next_frame() {
                Ok(NextFrame::Frame(h, range)) => {
                    let mut payload = RecvBuf::new();
                    payload.extend_from_slice(&reader.buf[range]);
                    let proto = |m: String| ClientError::Protocol {
                        addr: addr.to_string(),
                        message: m,
                    };
                    return match h.kind {
                        FrameKind::HelloReply => {
                            decode_owned::<Hello>(&payload).map_err(|e| proto(e.to_string()))
                        }
                        FrameKind::Error => Err(ClientError::Server {
                            addr: addr.to_string(),
                            message: decode_owned::<ErrorFrame>(&payload)
                                .map(|e| e.message)
                                .unwrap_or_default(),
                        }),
                        k => Err(proto(format!("expected HELLO reply, got {k:?}"))),
                    };
                }
                Ok(NextFrame::NeedMore) => {}
                Err(e) => {
                    return Err(ClientError::Protocol {
                        addr: addr.to_string(),
                        message: format!("{e} (is this a corekv native port?)"),
                    })
                }
            }
            let space = reader.read_space();
            match s.read(space).await {
                Ok(0) => return Err(lost("closed by server".into())),
                Ok(n) => reader.filled(n),
                Err(e) => return Err(lost(e.to_string())),
            }
        }
    };
    match glommio::timer::timeout(timeout, async { Ok(io.await) }).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout(timeout)),
    }
}
