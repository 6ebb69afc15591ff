//! Keyspace requests: what RESP's database and key-walking commands need
//! from one shard (FLUSHDB, SWAPDB, MOVE, SCAN, KEYS, RANDOMKEY, OBJECT), as
//! owned messages ([`KeyspaceReq`]) any shard can send to any other, and
//! the fan-outs that ask every shard of the node and wait for all of them.
//! None of these is on the data path: they are messages, not batches.
//!
//! Writes here are logged like batches' writes (FLUSH of one database,
//! SWAP, MOVE as a DEL and a SET), so recovery replays them.
//!
//! SCAN walks a shard's table in *hash order*: a key's position is the
//! 64-bit product whose top bits are its home slot, so it does not depend
//! on the table's size and never changes; each step returns every key whose
//! position lies in `[from, next)` (`Table::for_each_in`, which starts at
//! the range's home slot and follows its probe cluster). Walking slot
//! indices instead could miss keys: linear probing's backward-shift
//! deletion moves entries to lower slots, across a cursor. With positions,
//! a key present for the whole scan is returned at least once whatever
//! resizes, inserts and deletes happen between steps (Redis's guarantee).

use crate::op::OpError;
use crate::persist::record::RecordOp;
use crate::routing::{key_hash, key_slot};
use crate::store::{unix_now_ms, ObjectInfo};

use super::{Shard, ShardMsg};

/// The end of the position space a SCAN walks (positions are 64-bit).
pub const SCAN_END: u128 = 1 << 64;

/// Most slots' worth of positions one SCAN call walks per COUNT asked (it
/// stops earlier once it has COUNT keys): an empty stretch of the table
/// costs bounded work, and the call returns a cursor to go on from.
const SCAN_SPANS: usize = 8;
/// Fewest slots one span covers, so a small table (1024 slots) is walked
/// in one call, as Redis answers a small keyspace in one page.
const SCAN_MIN_SLOTS: usize = 128;

/// A request to one shard.
#[derive(Debug, Clone)]
pub enum KeyspaceReq {
    /// Remove every key of one database (FLUSHDB).
    FlushDb {
        /// The database.
        db: u16,
    },
    /// Swap two databases (SWAPDB).
    SwapDb {
        /// One.
        a: u16,
        /// The other.
        b: u16,
    },
    /// Move a key to another database (MOVE).
    Move {
        /// Where it is.
        db: u16,
        /// The key.
        key: Vec<u8>,
        /// Where it goes.
        to: u16,
    },
    /// One SCAN step: keys whose position lies from `from` on.
    Scan {
        /// The database.
        db: u16,
        /// First position (a multiple of 2^16).
        from: u128,
        /// Keys wanted (a hint, as Redis's COUNT).
        count: usize,
        /// MATCH pattern.
        pattern: Option<Vec<u8>>,
        /// TYPE filter: `Some(false)` matches nothing (every key is a string).
        strings: Option<bool>,
    },
    /// Every key matching a pattern (KEYS), up to `max_bytes` of keys.
    Keys {
        /// The database.
        db: u16,
        /// The glob.
        pattern: Vec<u8>,
        /// Bound on the key bytes returned.
        max_bytes: usize,
    },
    /// A random key (RANDOMKEY).
    RandomKey {
        /// The database.
        db: u16,
    },
    /// What OBJECT / DEBUG OBJECT report about a key.
    Object {
        /// The database.
        db: u16,
        /// The key.
        key: Vec<u8>,
    },
}

/// A shard's answer.
#[derive(Debug, Clone)]
pub enum KeyspaceReply {
    /// Done (FLUSHDB, SWAPDB).
    Done,
    /// MOVE's outcome.
    Moved(bool),
    /// A SCAN step: the keys, and the position to go on from
    /// ([`SCAN_END`]: this shard is done).
    Scan {
        /// Keys found.
        keys: Vec<Vec<u8>>,
        /// Where the next step starts.
        next: u128,
    },
    /// KEYS: the keys, or `None` when they passed `max_bytes`.
    Keys(Option<Vec<Vec<u8>>>),
    /// RANDOMKEY's key.
    Key(Option<Vec<u8>>),
    /// OBJECT's figures.
    Object(Option<ObjectInfo>),
    /// The request failed (a write while the log cannot be written).
    Err(OpError),
}

impl Shard {
    /// Runs a keyspace request on this shard's store (sync; the caller
    /// waits for the log's group commit when it must).
    pub fn keyspace_local(&self, req: KeyspaceReq) -> KeyspaceReply {
        let writes = matches!(
            req,
            KeyspaceReq::FlushDb { .. } | KeyspaceReq::SwapDb { .. } | KeyspaceReq::Move { .. }
        );
        if writes && self.log.as_ref().is_some_and(|l| l.failed().is_some()) {
            return KeyspaceReply::Err(OpError::PersistFailed);
        }
        let mut store = self.store.borrow_mut();
        store.set_now(unix_now_ms());
        let reply = match req {
            KeyspaceReq::FlushDb { db } => {
                store.flush_db(db as usize);
                if let Some(log) = &self.log {
                    log.append_in(db, RecordOp::Flush, 0, b"", b"");
                }
                KeyspaceReply::Done
            }
            KeyspaceReq::SwapDb { a, b } => {
                store.swap_db(a as usize, b as usize);
                if let Some(log) = &self.log {
                    log.append_in(a, RecordOp::Swap, 0, b"", &b.to_le_bytes());
                }
                KeyspaceReply::Done
            }
            KeyspaceReq::Move { db, key, to } => {
                let hash = key_hash(&key);
                store.select(db as usize);
                let moved = store.move_key(hash, &key, to as usize);
                if moved {
                    if let Some(log) = &self.log {
                        log.append_in(db, RecordOp::Del, 0, &key, b"");
                        store.select(to as usize);
                        if let Some((v, at)) = store.state(hash, &key) {
                            log.append_in(to, RecordOp::Set, at, &key, v);
                        }
                    }
                }
                KeyspaceReply::Moved(moved)
            }
            KeyspaceReq::Scan {
                db,
                from,
                count,
                pattern,
                strings,
            } => {
                store.select(db as usize);
                // Redis: the pattern `*` is no pattern (it matches "" too).
                let pattern = pattern.filter(|p| p.as_slice() != b"*");
                let count = count.max(1);
                let span = store.position_span(count.max(SCAN_MIN_SLOTS)).max(1);
                let mut keys = Vec::new();
                let mut lo = from;
                for _ in 0..SCAN_SPANS {
                    if lo >= SCAN_END || keys.len() >= count {
                        break;
                    }
                    let hi = (lo + span).min(SCAN_END);
                    store.for_each_in(lo, hi, |k, _, _| {
                        let wanted = strings != Some(false)
                            && pattern
                                .as_deref()
                                .map_or(true, |p| crate::glob::matches(p, k));
                        if wanted {
                            keys.push(k.to_vec());
                        }
                    });
                    lo = hi;
                }
                KeyspaceReply::Scan { keys, next: lo }
            }
            KeyspaceReq::Keys {
                db,
                pattern,
                max_bytes,
            } => {
                store.select(db as usize);
                let mut keys = Vec::new();
                let mut bytes = 0usize;
                let mut over = false;
                let all = pattern == b"*";
                store.for_each_in(0, SCAN_END, |k, _, _| {
                    if over || !(all || crate::glob::matches(&pattern, k)) {
                        return;
                    }
                    bytes += k.len() + 16;
                    if bytes > max_bytes {
                        over = true;
                        keys = Vec::new();
                        return;
                    }
                    keys.push(k.to_vec());
                });
                KeyspaceReply::Keys((!over).then_some(keys))
            }
            KeyspaceReq::RandomKey { db } => {
                store.select(db as usize);
                KeyspaceReply::Key(store.random_key())
            }
            KeyspaceReq::Object { db, key } => {
                store.select(db as usize);
                KeyspaceReply::Object(store.object(key_hash(&key), &key))
            }
        };
        drop(store);
        self.publish();
        reply
    }

    /// Runs a keyspace request on shard `owner` of this node (here when it
    /// is this shard) and waits for the answer, and for its log's commit
    /// under `appendfsync always`.
    pub async fn keyspace_on(&self, owner: usize, req: KeyspaceReq) -> KeyspaceReply {
        if owner == self.shard_id {
            let mark = self.log_mark();
            let r = self.keyspace_local(req);
            if self.before_reply(mark).await.is_err() {
                return KeyspaceReply::Err(OpError::PersistFailed);
            }
            return r;
        }
        let (tx, rx) = flume::bounded(1);
        match self.mesh.get(owner) {
            Some(m) if m.send(ShardMsg::Keyspace { req, reply: tx }).is_ok() => rx
                .recv_async()
                .await
                .unwrap_or(KeyspaceReply::Err(OpError::Unavailable)),
            _ => KeyspaceReply::Err(OpError::Unavailable),
        }
    }

    /// Runs `req` on every shard of this node, in parallel, and returns
    /// once all have answered (answers in shard order).
    pub async fn keyspace_all(&self, req: KeyspaceReq) -> Vec<KeyspaceReply> {
        let mut waiting = Vec::new();
        for (i, tx) in self.mesh.iter().enumerate() {
            if i == self.shard_id {
                continue;
            }
            let (rtx, rrx) = flume::bounded(1);
            let sent = tx
                .send(ShardMsg::Keyspace {
                    req: req.clone(),
                    reply: rtx,
                })
                .is_ok();
            waiting.push((i, sent.then_some(rrx)));
        }
        let mut out: Vec<KeyspaceReply> = (0..self.nr_shards)
            .map(|_| KeyspaceReply::Err(OpError::Unavailable))
            .collect();
        out[self.shard_id] = self.keyspace_on(self.shard_id, req).await;
        for (i, rx) in waiting {
            if let Some(rx) = rx {
                if let Ok(r) = rx.recv_async().await {
                    out[i] = r;
                }
            }
        }
        out
    }

    /// The first error among fan-out answers, if any.
    fn first_error(replies: &[KeyspaceReply]) -> Result<(), OpError> {
        for r in replies {
            if let KeyspaceReply::Err(e) = r {
                return Err(*e);
            }
        }
        Ok(())
    }

    /// FLUSHDB: removes every key of database `db` on every shard of this
    /// node; returns once all have.
    pub async fn flush_db(&self, db: u16) -> Result<(), OpError> {
        let r = self.keyspace_all(KeyspaceReq::FlushDb { db }).await;
        Self::first_error(&r)
    }

    /// SWAPDB: swaps databases `a` and `b` on every shard of this node (O(1)
    /// per shard) and returns once all have. Each shard swaps between two
    /// of its batches; a client of another shard may see one shard swapped
    /// before another for the moment the fan-out takes, unless the caller
    /// wraps it in [`Shard::with_barrier`] (RESP's SWAPDB does).
    pub async fn swap_db(&self, a: u16, b: u16) -> Result<(), OpError> {
        let r = self.keyspace_all(KeyspaceReq::SwapDb { a, b }).await;
        Self::first_error(&r)
    }

    /// The shard of this node owning `key`, or `None` when another node
    /// owns it.
    pub fn owner_shard(&self, key: &[u8]) -> Option<usize> {
        let o = self.cluster.owner(key_slot(key));
        (o.node_id == self.me.node_id).then_some(o.shard_id as usize)
    }
}
