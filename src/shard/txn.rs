//! Cross-shard transactions: multi-key commands (MSET, MSETNX, MGET, DEL,
//! EXISTS, RENAME, RENAMENX, COPY) that other clients see as atomic although
//! their keys live on several shards of the node.
//!
//! # The mechanism: ordered intents (Dragonfly's VLL, simplified)
//!
//! A shard executes a batch without yielding, so a command whose keys are all
//! on one shard is atomic already and never comes here (MSET/MGET/DEL/EXISTS
//! of co-located keys stay plain batched ops). For the others, the shard the
//! connection is on *coordinates* ([`Shard::transact`]):
//!
//! 1. **Acquire**, one shard at a time in ascending shard order: each owner
//!    shard is sent the keys it owns ([`TxnMsg::Acquire`]) and takes an
//!    *intent* on each — exclusive for a key the command may write, shared
//!    for a key it only reads — as soon as none conflicts with an intent
//!    another transaction holds there (requests that cannot be granted wait
//!    in arrival order, and a later request never overtakes an earlier one on
//!    the same key). In the same synchronous step it reads what the command
//!    needs to decide: existence (MSETNX, EXISTS, COPY's destination), the
//!    value (MGET), or value and absolute expiry (RENAME and COPY's source),
//!    and answers. Because every transaction acquires in the same order, no
//!    two wait for each other: there is no deadlock.
//! 2. **Decide**: with every intent held, the coordinator computes the
//!    command's writes from what was read (MSETNX: none if a key exists;
//!    RENAME: SET the destination with the source's value and expiry, DEL the
//!    source) — plain store ops.
//! 3. **Apply and release**: each shard is sent its writes
//!    ([`TxnMsg::Apply`]), executes them through the same path as any batch
//!    (so they are logged exactly like ordinary writes, with the key's
//!    resulting state), releases the transaction's intents and answers.
//!
//! While a key has an intent, an ordinary batch touching it (a connection's
//! own, or one forwarded from another shard) that would conflict — any op
//! under an exclusive intent, a write under a shared one — is *parked*: the
//! connection's task (or, for a forwarded batch, a task spawned for it)
//! waits for the next release and checks again; nothing else on the shard
//! waits. A connection has one batch in flight at a time, so its order is
//! kept, and per-key order holds because every op on a key still runs on
//! its owner. Reads under a shared intent go ahead.
//!
//! Why this is linearizable: every intent is taken before any is released
//! (two-phase locking), and a key's new value becomes visible only when its
//! shard applies the write, after which it is read as it is; a key not yet
//! applied cannot be read (its intent parks the reader). The command takes
//! effect, as others can observe it, at the moment its last intent is
//! granted.
//!
//! # Cost
//!
//! Nothing while no intent is held: [`Intents::active`] is one `Cell` read
//! per batch (local or forwarded). A cross-shard command costs at most two
//! messages per other shard involved (acquire, apply) and copies its keys
//! and values into them; the coordinator's own shard is served in place,
//! and when the writes do not depend on the reads (MSET, DEL, MGET, EXISTS:
//! `blind`), the last shard is acquired, read, written and released in one
//! message — a two-shard MSET is one round trip. When every key is owned by
//! the coordinating shard (RENAME and the other commands that always come
//! here), there are no messages and no intents: the shard waits until no
//! other transaction holds its keys, then reads, decides and writes in one
//! synchronous step.
//!
//! Intents are per database (a key is `(db, key)`). [`Shard::with_barrier`]
//! holds every shard of the node the same way (one whole-shard intent per
//! shard, taken in ascending order) around a node-wide operation: FLUSHALL,
//! FLUSHDB and SWAPDB run under it, so none of them sees a transaction
//! half-applied.
//!
//! # Bounds and failure
//!
//! A transaction's keys and values are those of one command, which the
//! connection's query buffer (`--max-frame-bytes`, charged to
//! `--max-conn-memory`) already bounds; values read for the reply (MGET)
//! are bounded by the connection's reply budget ([`Read::TooLarge`] past
//! it). An intent is never held across a wait for a client socket: the
//! coordinator goes from acquire to release without reading or writing its
//! connection, and if its task is dropped half-way, a guard releases every
//! intent it took (a grant whose coordinator is gone is released at once).
//! A shard that is gone (shutdown) makes the command fail with
//! [`OpError::Unavailable`], its intents released.
//!
//! This module owns the intent table of a shard and the transaction
//! protocol; it knows store ops, not RESP or sockets.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::op::{OpError, OpKind, OpResult, OpSource, ReplySink};
use crate::routing::{key_hash, key_slot};
use crate::store::{unix_now_ms, Store};

use super::{exec_one, mutates, NoLog, Shard, ShardMsg};

/// A transaction's id: its coordinating shard and a sequence number.
pub type TxnId = u64;

/// A write as it travels to its shard: `(database, kind, key, value)`.
pub type OwnedOp = (u16, OpKind, Vec<u8>, Vec<u8>);

/// The keys a transaction holds on a shard (database, key), and whether
/// each is exclusive.
type HeldKeys = Vec<(u16, Box<[u8]>, bool)>;

/// What a transaction needs to know about a key before it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Nothing (MSET, DEL).
    Nothing,
    /// Whether it exists (MSETNX, EXISTS, a destination).
    Exists,
    /// Its value (MGET).
    Value,
    /// Its value and absolute expiry (RENAME's and COPY's source).
    State,
}

/// What was read of a key, as of the moment its intent was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Nothing was asked.
    Nothing,
    /// [`Want::Exists`].
    Exists(bool),
    /// [`Want::Value`]: the value, `None` when absent.
    Value(Option<Vec<u8>>),
    /// [`Want::State`]: value and expiry (Unix ms, 0: none), `None` when
    /// absent.
    State(Option<(Vec<u8>, u64)>),
    /// The value would have taken the reply past its budget.
    TooLarge,
}

/// One key of a transaction.
#[derive(Debug, Clone)]
pub struct TxnKey {
    /// Its database.
    pub db: u16,
    /// The key.
    pub key: Vec<u8>,
    /// The command may write it: an exclusive intent (else shared).
    pub exclusive: bool,
    /// What to read of it.
    pub want: Want,
}

/// One write a transaction decided on: a store op on one of its keys.
#[derive(Debug, Clone)]
pub struct TxnWrite {
    /// Index of the key in the transaction's key list (an exclusive one).
    pub key: usize,
    /// The op.
    pub kind: OpKind,
    /// Its value (for [`OpKind::Set`], an [`crate::op::ExpiryArg`] first).
    pub value: Vec<u8>,
}

/// What a write returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteResult {
    /// Done (or a value/integer result).
    Ok,
    /// The key was absent (DEL of a missing key).
    NotFound,
    /// It failed.
    Err(OpError),
}

/// A finished transaction: what was read of each key, and each write's
/// result, in the order they were decided.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// One per key.
    pub reads: Vec<Read>,
    /// One per write.
    pub writes: Vec<WriteResult>,
}

/// A granted acquire: the reads, in request order, and whether the shard's
/// log refuses writes (MISCONF).
pub struct Granted {
    reads: Vec<Read>,
    /// The results of the ops applied with the grant ([`Acquire::ops`]).
    results: Vec<WriteResult>,
    refuse_writes: bool,
}

/// A request for intents on one shard (also what waits in its queue).
pub struct Acquire {
    /// The transaction.
    txn: TxnId,
    /// Distinct (database, key) and whether each is exclusive.
    locks: Vec<(u16, Vec<u8>, bool)>,
    /// An intent on the whole shard (a node-wide barrier such as FLUSHALL)
    /// instead of `locks`.
    barrier: bool,
    /// Keys to read, in order.
    wants: Vec<(u16, Vec<u8>, Want)>,
    /// Value bytes the reads may return.
    max_values: usize,
    /// Apply these ops at the grant and keep no intent: the last shard of a
    /// transaction whose writes do not depend on what it reads (MSET, DEL,
    /// MGET, EXISTS) is acquired, read, written and released in one step.
    apply: Option<Vec<OwnedOp>>,
    /// The answer.
    reply: flume::Sender<Granted>,
}

/// The transaction messages between shards (inside [`ShardMsg::Txn`]).
pub enum TxnMsg {
    /// Take intents once none conflicts, read, answer ([`Acquire`]).
    Acquire(Acquire),
    /// Execute `ops` in order, release the transaction's intents (also a
    /// pending acquire of it), answer with the results when asked.
    Apply {
        /// The transaction.
        txn: TxnId,
        /// `(kind, key, value)`.
        ops: Vec<OwnedOp>,
        /// The results, when the coordinator waits for them.
        reply: Option<flume::Sender<Vec<WriteResult>>>,
    },
}

/// One database's intents: key → intent.
type KeyIntents = HashMap<Box<[u8]>, Hold>;

/// An intent on one key of this shard.
#[derive(Debug, Clone, Copy, Default)]
struct Hold {
    exclusive: bool,
    shared: u32,
}

/// A shard's intent table (one per shard, `!Send` like the rest of it).
#[derive(Default)]
pub struct Intents {
    /// Database → key → intent.
    locks: RefCell<HashMap<u16, KeyIntents>>,
    /// Keys with an intent (plus one while a barrier is held): the one
    /// counter ordinary batches check.
    held_keys: Cell<usize>,
    /// The transaction holding the whole shard (a node-wide barrier).
    barrier: Cell<Option<TxnId>>,
    /// Transaction → the keys it holds here (and whether exclusive).
    held: RefCell<HashMap<TxnId, HeldKeys>>,
    /// Acquires waiting, in arrival order.
    queue: RefCell<VecDeque<Acquire>>,
    /// Bumped on every release.
    generation: Cell<u64>,
    /// Tasks parked until the next release.
    wakers: RefCell<Vec<Waker>>,
    /// The next sequence number of a transaction this shard coordinates.
    next: Cell<u64>,
}

impl Intents {
    /// True while some key of this shard has an intent (one `Cell` read:
    /// what every batch pays).
    #[inline]
    pub fn active(&self) -> bool {
        self.held_keys.get() != 0
    }

    /// Keys with an intent now.
    pub fn held_keys(&self) -> usize {
        self.held_keys.get()
    }

    /// Would any op of `batch` in `range` conflict with an intent: any op on
    /// a key under an exclusive intent, a write on one under a shared one?
    pub fn batch_conflicts<S: OpSource + ?Sized>(
        &self,
        db: u16,
        batch: &S,
        range: std::ops::Range<usize>,
    ) -> bool {
        if self.barrier.get().is_some() {
            return !range.is_empty();
        }
        let locks = self.locks.borrow();
        let Some(locks) = locks.get(&db) else {
            return false;
        };
        range.into_iter().any(|i| {
            let (kind, key, _) = batch.op(i);
            locks
                .get(key)
                .is_some_and(|h| h.exclusive || kind.is_some_and(mutates))
        })
    }

    /// Would an intent on `key` (exclusive or not) conflict with one held?
    fn lock_conflicts(&self, db: u16, key: &[u8], exclusive: bool) -> bool {
        self.barrier.get().is_some()
            || self
                .locks
                .borrow()
                .get(&db)
                .and_then(|m| m.get(key))
                .is_some_and(|h| h.exclusive || (exclusive && h.shared > 0))
    }

    /// Can `p` be granted now (ignoring the queue)?
    fn grantable(&self, p: &Acquire) -> bool {
        if p.barrier {
            return self.held_keys.get() == 0;
        }
        !p.locks
            .iter()
            .any(|(db, k, x)| self.lock_conflicts(*db, k, *x))
    }

    /// Takes the whole shard for `txn`.
    fn take_barrier(&self, txn: TxnId) {
        self.barrier.set(Some(txn));
        self.held_keys.set(self.held_keys.get() + 1);
    }

    /// Takes the intents of `txn`.
    fn take(&self, txn: TxnId, locks: &[(u16, Vec<u8>, bool)]) {
        let mut table = self.locks.borrow_mut();
        let mut mine = Vec::with_capacity(locks.len());
        for (db, key, exclusive) in locks {
            let h = table
                .entry(*db)
                .or_default()
                .entry(key.clone().into_boxed_slice())
                .or_insert_with(|| {
                    self.held_keys.set(self.held_keys.get() + 1);
                    Hold::default()
                });
            if *exclusive {
                h.exclusive = true;
            } else {
                h.shared += 1;
            }
            mine.push((*db, key.clone().into_boxed_slice(), *exclusive));
        }
        self.held.borrow_mut().insert(txn, mine);
    }

    /// Drops the intents of `txn` (and a pending acquire of it); wakes the
    /// parked tasks. True when it held or waited for anything.
    fn release(&self, txn: TxnId) -> bool {
        let mut any = false;
        if self.barrier.get() == Some(txn) {
            self.barrier.set(None);
            self.held_keys.set(self.held_keys.get() - 1);
            any = true;
        }
        if let Some(mine) = self.held.borrow_mut().remove(&txn) {
            let mut table = self.locks.borrow_mut();
            for (db, key, exclusive) in mine {
                let Some(map) = table.get_mut(&db) else {
                    continue;
                };
                if let Some(h) = map.get_mut(&key) {
                    if exclusive {
                        h.exclusive = false;
                    } else {
                        h.shared = h.shared.saturating_sub(1);
                    }
                    if !h.exclusive && h.shared == 0 {
                        map.remove(&key);
                        self.held_keys.set(self.held_keys.get() - 1);
                    }
                }
                if map.is_empty() {
                    table.remove(&db);
                }
            }
            any = true;
        }
        let mut queue = self.queue.borrow_mut();
        let before = queue.len();
        queue.retain(|p| p.txn != txn);
        any |= queue.len() != before;
        drop(queue);
        if any {
            self.generation.set(self.generation.get() + 1);
            for w in self.wakers.borrow_mut().drain(..) {
                w.wake();
            }
        }
        any
    }

    /// Resolves at the next release.
    pub fn released(&self) -> Released<'_> {
        Released {
            intents: self,
            generation: self.generation.get(),
        }
    }
}

/// A future that resolves once an intent of this shard is released.
pub struct Released<'a> {
    intents: &'a Intents,
    generation: u64,
}

impl Future for Released<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.intents.generation.get() != self.generation {
            return Poll::Ready(());
        }
        self.intents.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

/// Collects write results.
struct Collect<'a>(&'a mut Vec<WriteResult>);

impl ReplySink for Collect<'_> {
    fn push(&mut self, r: OpResult<'_>) {
        self.0.push(match r {
            OpResult::NotFound => WriteResult::NotFound,
            OpResult::Err(e) => WriteResult::Err(e),
            OpResult::Moved { .. } => WriteResult::Err(OpError::Unavailable),
            OpResult::Ok | OpResult::Value(_) | OpResult::Int(_) => WriteResult::Ok,
        });
    }
}

/// Keeps one read's result.
struct One<'a> {
    read: Option<Read>,
    want: Want,
    budget: &'a mut usize,
}

impl ReplySink for One<'_> {
    fn push(&mut self, r: OpResult<'_>) {
        self.read = Some(match (self.want, r) {
            (Want::Exists, OpResult::Int(n)) => Read::Exists(n > 0),
            (Want::Exists, _) => Read::Exists(false),
            (_, OpResult::Value(v)) if v.len() > *self.budget => Read::TooLarge,
            (_, OpResult::Value(v)) => {
                *self.budget -= v.len();
                Read::Value(Some(v.to_vec()))
            }
            _ => Read::Value(None),
        });
    }
}

/// Reads `key` for `want` from the store (counting hits and misses as the
/// plain commands do); `budget` is what values may still take.
fn read_key(store: &mut Store, db: u16, key: &[u8], want: Want, budget: &mut usize) -> Read {
    store.select(db as usize);
    let hash = key_hash(key);
    let kind = match want {
        Want::Nothing => return Read::Nothing,
        Want::State => {
            return Read::State(store.state(hash, key).map(|(v, at)| (v.to_vec(), at)));
        }
        Want::Exists => OpKind::Exists,
        Want::Value => OpKind::Get,
    };
    let mut one = One {
        read: None,
        want,
        budget,
    };
    store.execute(kind, key, b"", hash, &mut one);
    one.read.unwrap_or(Read::Nothing)
}

/// Releases, on drop, the intents a coordinator took and did not release
/// (its task was dropped half-way).
struct Guard<'a> {
    shard: &'a Shard,
    txn: TxnId,
    /// Shards asked for intents and not yet sent their apply.
    pending: Vec<usize>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        for &s in &self.pending {
            let _ = self.shard.mesh[s].send(ShardMsg::Txn(TxnMsg::Apply {
                txn: self.txn,
                ops: Vec::new(),
                reply: None,
            }));
        }
    }
}

impl Shard {
    /// The shard's intent table.
    pub fn intents(&self) -> &Intents {
        &self.intents
    }

    /// Waits until no op of `batch` in `range` conflicts with an intent of
    /// this shard (call only when [`Intents::active`]).
    pub(super) async fn wait_unblocked<S: OpSource + ?Sized>(
        &self,
        db: u16,
        batch: &S,
        range: std::ops::Range<usize>,
    ) {
        while self.intents.batch_conflicts(db, batch, range.clone()) {
            self.intents.released().await;
        }
    }

    /// Runs a multi-key command atomically (see the module docs): takes
    /// intents on `keys` in ascending shard order, reading what each asks
    /// for; `decide` turns the reads into writes; the writes are applied and
    /// the intents released. Keys must all be this node's.
    ///
    /// `blind`: `decide` does not look at the reads (MSET, DEL, MGET,
    /// EXISTS). It is then called first, with no reads, and the last shard
    /// is acquired, read and written in one step, with no intent left to
    /// release. The coordinator's own shard is always served in place,
    /// without a message.
    ///
    /// Errors: [`OpError::Unavailable`] when a shard is gone (nothing was
    /// written), [`OpError::PersistFailed`] when a shard's log refuses writes
    /// and the command decided to write (nothing was written).
    pub async fn transact(
        &self,
        keys: &[TxnKey],
        max_values: usize,
        blind: bool,
        decide: impl FnOnce(&[Read]) -> Vec<TxnWrite>,
    ) -> Result<Outcome, OpError> {
        let mut owners = Vec::with_capacity(keys.len());
        for k in keys {
            let o = self.cluster.owner(key_slot(&k.key));
            if o.node_id != self.me.node_id {
                return Err(OpError::Unavailable);
            }
            owners.push(o.shard_id as usize);
        }
        if owners.iter().all(|&o| o == self.shard_id) {
            return self.transact_local(keys, max_values, decide).await;
        }
        let txn = self.new_txn();
        let mut shards = owners.clone();
        shards.sort_unstable();
        shards.dedup();
        // Writes grouped per shard (index into `shards`), and where each
        // write's result will be.
        let group = |writes: Vec<TxnWrite>| {
            let mut per_shard: Vec<Vec<OwnedOp>> = shards.iter().map(|_| Vec::new()).collect();
            let mut order = Vec::with_capacity(writes.len());
            for w in writes {
                let Some(k) = keys.get(w.key) else { continue };
                let at = shards.iter().position(|&s| s == owners[w.key]).unwrap_or(0);
                order.push((at, per_shard[at].len()));
                per_shard[at].push((k.db, w.kind, k.key.clone(), w.value));
            }
            (per_shard, order)
        };
        let mut decide = Some(decide);
        let mut planned = None;
        if blind {
            let writes = decide.take().map(|d| d(&[])).unwrap_or_default();
            planned = Some(group(writes));
        }
        let mut guard = Guard {
            shard: self,
            txn,
            pending: Vec::with_capacity(shards.len()),
        };
        let mut reads = vec![Read::Nothing; keys.len()];
        let mut results: Vec<Vec<WriteResult>> = shards.iter().map(|_| Vec::new()).collect();
        let mut refuse = false;
        let mut budget = max_values;
        let last = shards.len() - 1;
        for (at, &s) in shards.iter().enumerate() {
            let mut locks: Vec<(u16, Vec<u8>, bool)> = Vec::new();
            let mut seen: HashMap<(u16, &[u8]), usize> = HashMap::new();
            let mut wants = Vec::new();
            let mut wanted = Vec::new();
            for (i, k) in keys.iter().enumerate().filter(|(i, _)| owners[*i] == s) {
                match seen.get(&(k.db, k.key.as_slice())) {
                    Some(&j) => locks[j].2 |= k.exclusive,
                    None => {
                        seen.insert((k.db, &k.key), locks.len());
                        locks.push((k.db, k.key.clone(), k.exclusive));
                    }
                }
                if k.want != Want::Nothing {
                    wants.push((k.db, k.key.clone(), k.want));
                    wanted.push(i);
                }
            }
            // The last shard of a blind transaction: acquire and apply at once.
            let apply = match &mut planned {
                Some((per_shard, _)) if at == last => {
                    let ops = std::mem::take(&mut per_shard[at]);
                    if refuse && !ops.is_empty() {
                        return Err(OpError::PersistFailed);
                    }
                    Some(ops)
                }
                _ => None,
            };
            let applies = apply.is_some();
            let (tx, rx) = flume::bounded(1);
            let req = Acquire {
                txn,
                locks,
                barrier: false,
                wants,
                max_values: budget,
                apply,
                reply: tx,
            };
            if !self.send_acquire(s, req) {
                return Err(OpError::Unavailable);
            }
            if !applies {
                guard.pending.push(s);
            }
            let Ok(granted) = rx.recv_async().await else {
                return Err(OpError::Unavailable);
            };
            refuse |= granted.refuse_writes;
            if applies && granted.refuse_writes && !granted.results.is_empty() {
                // Its log refused them: write nothing anywhere.
                return Err(OpError::PersistFailed);
            }
            results[at] = granted.results;
            for (i, r) in wanted.into_iter().zip(granted.reads) {
                if let Read::Value(Some(v)) = &r {
                    budget = budget.saturating_sub(v.len());
                }
                reads[i] = r;
            }
        }
        // Every intent is held (or its shard already written): decide,
        // then apply and release.
        let (per_shard, order) = match (planned, decide) {
            (Some(p), _) => p,
            (None, Some(decide)) => group(decide(&reads)),
            (None, None) => (shards.iter().map(|_| Vec::new()).collect(), Vec::new()),
        };
        if refuse && per_shard.iter().any(|ops| !ops.is_empty()) {
            return Err(OpError::PersistFailed);
        }
        let mut waits = Vec::new();
        for (at, ops) in per_shard.into_iter().enumerate() {
            let s = shards[at];
            if !guard.pending.contains(&s) {
                continue; // applied with its grant
            }
            guard.pending.retain(|&p| p != s);
            if s == self.shard_id {
                results[at] = self.apply_local(txn, &ops);
                continue;
            }
            let (tx, rx) = if ops.is_empty() {
                (None, None)
            } else {
                let (tx, rx) = flume::bounded(1);
                (Some(tx), Some(rx))
            };
            let sent = self.mesh[s]
                .send(ShardMsg::Txn(TxnMsg::Apply {
                    txn,
                    ops,
                    reply: tx,
                }))
                .is_ok();
            if let (true, Some(rx)) = (sent, rx) {
                waits.push((at, rx));
            }
        }
        for (at, rx) in waits {
            results[at] = rx.recv_async().await.unwrap_or_default();
        }
        let writes = order
            .into_iter()
            .map(|(at, j)| {
                results[at]
                    .get(j)
                    .copied()
                    .unwrap_or(WriteResult::Err(OpError::Unavailable))
            })
            .collect();
        Ok(Outcome { reads, writes })
    }

    /// A new transaction id: this shard and a sequence number.
    fn new_txn(&self) -> TxnId {
        let seq = self.intents.next.get();
        self.intents.next.set(seq + 1);
        (self.shard_id as u64) << 48 | (seq & ((1 << 48) - 1))
    }

    /// Runs `work` (a node-wide operation such as FLUSHALL's fan-out) while
    /// every shard of the node is held by a barrier: taken in ascending shard
    /// order like any transaction's intents, once no other transaction holds
    /// an intent there; ordinary batches wait meanwhile, and `work` sees no
    /// transaction half-applied. On a one-shard node `work` just runs.
    pub async fn with_barrier<T>(&self, work: impl Future<Output = T>) -> T {
        if self.nr_shards < 2 {
            return work.await;
        }
        let txn = self.new_txn();
        let mut guard = Guard {
            shard: self,
            txn,
            pending: Vec::with_capacity(self.nr_shards),
        };
        for s in 0..self.nr_shards {
            let (tx, rx) = flume::bounded(1);
            let req = Acquire {
                txn,
                locks: Vec::new(),
                barrier: true,
                wants: Vec::new(),
                max_values: 0,
                apply: None,
                reply: tx,
            };
            if !self.send_acquire(s, req) {
                continue; // shutting down: that shard serves nothing
            }
            guard.pending.push(s);
            let _ = rx.recv_async().await;
        }
        let out = work.await;
        drop(guard); // releases every shard
        out
    }

    /// [`Shard::transact`] when this shard owns every key: once no other
    /// transaction holds them, read, decide and write in one step.
    async fn transact_local(
        &self,
        keys: &[TxnKey],
        max_values: usize,
        decide: impl FnOnce(&[Read]) -> Vec<TxnWrite>,
    ) -> Result<Outcome, OpError> {
        while keys
            .iter()
            .any(|k| self.intents.lock_conflicts(k.db, &k.key, k.exclusive))
        {
            self.intents.released().await;
        }
        let mut store = self.store.borrow_mut();
        store.set_now(unix_now_ms());
        let mut budget = max_values;
        let reads: Vec<Read> = keys
            .iter()
            .map(|k| read_key(&mut store, k.db, &k.key, k.want, &mut budget))
            .collect();
        let writes = decide(&reads);
        if !writes.is_empty() && self.log.as_ref().is_some_and(|l| l.failed().is_some()) {
            return Err(OpError::PersistFailed);
        }
        let mut results = Vec::with_capacity(writes.len());
        let mut sink = Collect(&mut results);
        for w in &writes {
            let Some(k) = keys.get(w.key) else { continue };
            store.select(k.db as usize);
            let op = (Some(w.kind), k.key.as_slice(), w.value.as_slice());
            let hash = key_hash(&k.key);
            match &self.log {
                None => exec_one(&mut store, op, hash, &mut sink, &NoLog),
                Some(log) => exec_one(&mut store, op, hash, &mut sink, &**log),
            }
        }
        drop(store);
        self.publish();
        Ok(Outcome {
            reads,
            writes: results,
        })
    }

    /// Serves one transaction message (from [`Shard::serve_mesh`]).
    pub(super) fn serve_txn(&self, msg: TxnMsg) {
        match msg {
            TxnMsg::Acquire(req) => self.acquire(req),
            TxnMsg::Apply { txn, ops, reply } => {
                let mark = self.log_mark();
                let results = self.apply_local(txn, &ops);
                if let Some(reply) = reply {
                    self.answer_after_commit(mark, reply, results);
                }
            }
        }
    }

    /// Sends `value` once what this shard logged since `mark` is durable
    /// (under `appendfsync always`, in a task so the mesh goes on; at once
    /// otherwise). A failed commit turns every result into MISCONF.
    fn answer_after_commit<T: WithResults + 'static>(
        &self,
        mark: u64,
        reply: flume::Sender<T>,
        mut value: T,
    ) {
        match self.log.clone() {
            Some(log) if log.has_pending() => {
                glommio::spawn_local(async move {
                    if log.before_reply(mark).await.is_err() {
                        value.fail(OpError::PersistFailed);
                    }
                    let _ = reply.send(value);
                })
                .detach();
            }
            _ => {
                let _ = reply.send(value);
            }
        }
    }

    /// Hands `req` to shard `s`'s intent queue: directly when `s` is this
    /// shard, over the mesh otherwise. False when `s` is gone (shutting
    /// down).
    fn send_acquire(&self, s: usize, req: Acquire) -> bool {
        if s == self.shard_id {
            self.acquire(req);
            true
        } else {
            self.mesh[s]
                .send(ShardMsg::Txn(TxnMsg::Acquire(req)))
                .is_ok()
        }
    }

    /// Takes an acquire: granted now, or queued behind an earlier waiting
    /// acquire on one of its keys or a conflicting intent.
    fn acquire(&self, req: Acquire) {
        let queued = self
            .intents
            .queue
            .borrow()
            .iter()
            .any(|q| overlaps(q, &req));
        if queued || !self.intents.grantable(&req) {
            self.intents.queue.borrow_mut().push_back(req);
        } else {
            self.grant(req);
        }
    }

    /// Executes a transaction's writes here, releases its intents and
    /// grants what waited for them.
    fn apply_local(&self, txn: TxnId, ops: &[OwnedOp]) -> Vec<WriteResult> {
        let results = self.exec_owned(ops);
        if self.intents.release(txn) {
            self.grant_waiting();
        }
        results
    }

    /// Executes owned ops through the logged path.
    fn exec_owned(&self, ops: &[OwnedOp]) -> Vec<WriteResult> {
        let mut results = Vec::with_capacity(ops.len());
        if ops.is_empty() {
            return results;
        }
        let mut store = self.store.borrow_mut();
        store.set_now(unix_now_ms());
        let mut sink = Collect(&mut results);
        for (db, kind, key, value) in ops {
            store.select(*db as usize);
            let op = (Some(*kind), key.as_slice(), value.as_slice());
            let hash = key_hash(key);
            match &self.log {
                None => exec_one(&mut store, op, hash, &mut sink, &NoLog),
                Some(log) => exec_one(&mut store, op, hash, &mut sink, &**log),
            }
        }
        drop(store);
        self.ops.set(self.ops.get() + ops.len() as u64);
        self.publish();
        results
    }

    /// Grants every waiting acquire that no longer conflicts, in order; one
    /// that still does keeps the later ones on its keys waiting.
    fn grant_waiting(&self) {
        let mut blocked: Vec<Acquire> = Vec::new();
        loop {
            let Some(p) = self.intents.queue.borrow_mut().pop_front() else {
                break;
            };
            let behind = blocked.iter().any(|q| overlaps(q, &p));
            if behind || !self.intents.grantable(&p) {
                blocked.push(p);
            } else {
                self.grant(p);
            }
        }
        let mut queue = self.intents.queue.borrow_mut();
        for p in blocked.into_iter().rev() {
            queue.push_front(p);
        }
    }

    /// Takes the intents of an acquire (none when it applies at once),
    /// reads, writes what it carries, answers. If the coordinator is gone,
    /// releases the intents at once.
    fn grant(&self, p: Acquire) {
        let mark = self.log_mark();
        let keep = p.apply.is_none();
        if p.barrier {
            self.intents.take_barrier(p.txn);
        } else if keep {
            self.intents.take(p.txn, &p.locks);
        }
        let reads = {
            let mut store = self.store.borrow_mut();
            store.set_now(unix_now_ms());
            let mut budget = p.max_values;
            p.wants
                .iter()
                .map(|(db, k, w)| read_key(&mut store, *db, k, *w, &mut budget))
                .collect()
        };
        if !p.wants.is_empty() {
            // The reads counted keyspace hits and misses: publish them.
            self.publish();
        }
        let refuse_writes = self.log.as_ref().is_some_and(|l| l.failed().is_some());
        let results = match &p.apply {
            Some(ops) if !refuse_writes => self.exec_owned(ops),
            Some(ops) => vec![WriteResult::Err(OpError::PersistFailed); ops.len()],
            None => Vec::new(),
        };
        let granted = Granted {
            reads,
            results,
            refuse_writes,
        };
        if keep {
            if p.reply.send(granted).is_err() && self.intents.release(p.txn) {
                self.grant_waiting();
            }
        } else {
            self.answer_after_commit(mark, p.reply, granted);
        }
    }
}

/// A reply whose results a failed commit turns into errors.
trait WithResults {
    fn fail(&mut self, e: OpError);
}

impl WithResults for Vec<WriteResult> {
    fn fail(&mut self, e: OpError) {
        self.fill(WriteResult::Err(e));
    }
}

impl WithResults for Granted {
    fn fail(&mut self, e: OpError) {
        self.results.fill(WriteResult::Err(e));
    }
}

/// Must one of two acquires wait for the other: do they share a key, or is
/// one a barrier?
fn overlaps(a: &Acquire, b: &Acquire) -> bool {
    a.barrier
        || b.barrier
        || a.locks
            .iter()
            .any(|(adb, k, _)| b.locks.iter().any(|(bdb, l, _)| adb == bdb && k == l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::native::Batch;
    use std::rc::Rc;

    #[test]
    fn intents_conflict_by_mode() {
        let i = Intents::default();
        assert!(!i.active());
        i.take(1, &[(0, b"a".to_vec(), true), (0, b"b".to_vec(), false)]);
        assert!(i.active());
        assert_eq!(i.held_keys(), 2);
        let mut get_b = Batch::default();
        get_b.get(b"b");
        assert!(
            !i.batch_conflicts(0, &get_b, 0..1),
            "reads pass a shared intent"
        );
        let mut put_b = Batch::default();
        put_b.put(b"b", b"v");
        assert!(
            i.batch_conflicts(0, &put_b, 0..1),
            "writes wait for a shared one"
        );
        let mut get_a = Batch::default();
        get_a.get(b"a");
        assert!(
            i.batch_conflicts(0, &get_a, 0..1),
            "nothing passes an exclusive one"
        );
        assert!(i.lock_conflicts(0, b"b", true));
        assert!(!i.lock_conflicts(0, b"b", false));
        assert!(!i.lock_conflicts(0, b"c", true));
        assert!(!i.lock_conflicts(1, b"a", true), "intents are per database");
        assert!(!i.batch_conflicts(1, &get_a, 0..1));
        assert!(i.release(1));
        assert!(!i.active());
        assert!(!i.batch_conflicts(0, &get_a, 0..1));
        assert!(!i.release(1));
        // A barrier holds the whole shard.
        i.take_barrier(2);
        assert!(i.active());
        assert!(i.batch_conflicts(0, &get_a, 0..1));
        assert!(i.lock_conflicts(0, b"anything", false));
        assert!(i.release(2));
        assert!(!i.active());
    }

    /// Two shards on one executor: a cross-shard MSETNX-like transaction
    /// writes both keys or neither, and a batch writing one of its keys
    /// while the intent is held is parked until the release.
    #[test]
    fn cross_shard_transaction_and_parking() {
        use crate::shard::NodeState;
        use crate::store::StoreLimits;
        use std::sync::Arc;
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(crate::config::DEFAULT_IO_MEMORY)
            .make()
            .unwrap();
        ex.run(async {
            let limits = StoreLimits {
                max_key_len: 64,
                max_value_len: 64,
                max_memory: usize::MAX,
            };
            let node = Arc::new(NodeState::new(0, 2, usize::MAX, usize::MAX));
            let (t0, r0) = flume::unbounded();
            let (t1, r1) = flume::unbounded();
            let mesh = vec![t0, t1];
            let s0 = Rc::new(Shard::new(0, node.clone(), limits, mesh.clone()));
            let s1 = Rc::new(Shard::new(1, node.clone(), limits, mesh));
            glommio::spawn_local(s0.clone().serve_mesh(r0)).detach();
            glommio::spawn_local(s1.clone().serve_mesh(r1)).detach();
            // Keys on different shards.
            let cluster = node.cluster();
            let on = |s: u16| {
                (0..1000)
                    .map(|i| format!("k{i}").into_bytes())
                    .find(|k| cluster.owner(key_slot(k)).shard_id == s)
                    .unwrap()
            };
            let (a, b) = (on(0), on(1));
            let keys = vec![
                TxnKey {
                    db: 0,
                    key: a.clone(),
                    exclusive: true,
                    want: Want::Exists,
                },
                TxnKey {
                    db: 0,
                    key: b.clone(),
                    exclusive: true,
                    want: Want::Exists,
                },
            ];
            let msetnx = |reads: &[Read]| -> Vec<TxnWrite> {
                if reads.contains(&Read::Exists(true)) {
                    return Vec::new();
                }
                (0..2)
                    .map(|key| TxnWrite {
                        key,
                        kind: OpKind::Put,
                        value: b"v".to_vec(),
                    })
                    .collect()
            };
            let out = s0.transact(&keys, usize::MAX, false, msetnx).await.unwrap();
            assert_eq!(out.writes, [WriteResult::Ok, WriteResult::Ok]);
            let out = s0.transact(&keys, usize::MAX, false, msetnx).await.unwrap();
            assert!(out.writes.is_empty());
            assert_eq!(out.reads, [Read::Exists(true), Read::Exists(true)]);
            // Blind (MSET-like), coordinated by either shard: the last shard
            // is written with its grant, both keys change.
            for (coord, v) in [(&s0, b"x"), (&s1, b"y")] {
                let writes = |_: &[Read]| -> Vec<TxnWrite> {
                    (0..2)
                        .map(|key| TxnWrite {
                            key,
                            kind: OpKind::Put,
                            value: v.to_vec(),
                        })
                        .collect()
                };
                let out = coord
                    .transact(&keys, usize::MAX, true, writes)
                    .await
                    .unwrap();
                assert_eq!(out.writes, [WriteResult::Ok, WriteResult::Ok]);
                assert_eq!(
                    s0.with_store_ref(|st| st.get(&a).map(|v| v.to_vec())),
                    Some(v.to_vec())
                );
                assert_eq!(
                    s1.with_store_ref(|st| st.get(&b).map(|v| v.to_vec())),
                    Some(v.to_vec())
                );
            }
            // A release without writes is not waited for: let it arrive.
            for _ in 0..200 {
                if !s0.intents().active() && !s1.intents().active() {
                    break;
                }
                glommio::executor().yield_now().await;
            }
            assert!(!s0.intents().active() && !s1.intents().active());
            // Hold an intent on `b` by hand; a write of `b` from shard 0 parks.
            s1.intents.take(99, &[(0, b.clone(), true)]);
            let mut put = Batch::default();
            put.put(&b, b"w");
            let done = Rc::new(Cell::new(false));
            let (s0c, d) = (s0.clone(), done.clone());
            glommio::spawn_local(async move {
                let mut out = crate::protocol::native::BatchReply::default();
                s0c.execute(&put, &mut out).await;
                d.set(true);
            })
            .detach();
            for _ in 0..20 {
                glommio::executor().yield_now().await;
            }
            assert!(!done.get(), "the write waits for the intent");
            mesh_apply(&s1, 99);
            for _ in 0..200 {
                if done.get() {
                    break;
                }
                glommio::executor().yield_now().await;
            }
            assert!(done.get(), "released, the write went through");
            assert_eq!(
                s1.with_store_ref(|st| st.get(&b).map(|v| v.to_vec())),
                Some(b"w".to_vec())
            );
            // A coordinator dropped half-way (its first acquire sent, the
            // answer not read) leaves no intent behind: the grant finds it
            // gone and releases, and its guard's release follows.
            let never = |_: &[Read]| -> Vec<TxnWrite> { Vec::new() };
            let mut fut = Box::pin(s1.transact(&keys, usize::MAX, false, never));
            assert!(futures_lite::future::poll_once(&mut fut).await.is_none());
            drop(fut);
            for _ in 0..200 {
                glommio::executor().yield_now().await;
            }
            assert!(!s0.intents().active() && !s1.intents().active());
            assert!(s0.intents.queue.borrow().is_empty());
        });
    }

    fn mesh_apply(s: &Rc<Shard>, txn: TxnId) {
        s.serve_txn(TxnMsg::Apply {
            txn,
            ops: Vec::new(),
            reply: None,
        });
    }
}
