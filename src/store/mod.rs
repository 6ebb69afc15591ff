//! The partition: one shard's private, single-threaded key-value map with
//! memory accounting. Synchronous and I/O-free; it knows nothing of sockets,
//! executors or other shards, so it is tested without an executor.
//!
//! * Keys are placed by the hash from [`crate::routing::key_hash`], computed
//!   once per operation by the caller and passed in: the store never hashes a
//!   key again. The table (`table`) is open addressing keyed by that hash,
//!   so a batch can prefetch slots and entries ahead of execution.
//! * An entry is one heap block holding key and value back to back, so an
//!   insert costs one allocation and an overwrite with a value of the same
//!   length (the seed workload's case) costs none.
//! * Memory accounting: `used_bytes` counts key + value bytes plus a fixed
//!   [`ENTRY_OVERHEAD`] per entry. A write that would take `used_bytes` past
//!   the limit fails with [`OpError::OutOfMemory`]; reads, deletes and writes
//!   that do not grow the store keep working.
//!
//! Results are pushed into a [`ReplySink`] *while* the operation runs, so a
//! value is copied straight from the table into the reply (no intermediate
//! buffer), and `GETSET` can return the old value before it is overwritten.

mod table;

use table::Table;

use crate::op::{format_i64, parse_i64, OpError, OpKind, OpResult, ReplySink};

/// Bytes charged per entry on top of key and value: the table slot (hash,
/// pointer, lengths) plus the allocator's bookkeeping, rounded up.
pub const ENTRY_OVERHEAD: usize = 64;

/// Size limits a store enforces on each operation.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Longest key accepted, in bytes.
    pub max_key_len: usize,
    /// Longest value accepted, in bytes.
    pub max_value_len: usize,
    /// Memory budget of this partition in bytes (`usize::MAX`: none).
    pub max_memory: usize,
}

/// Counters a store keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounters {
    /// Read operations executed (GET, EXISTS, STRLEN).
    pub gets: u64,
    /// Write operations executed (PUT and the conditional/read-modify-write kinds).
    pub puts: u64,
    /// Deletes executed.
    pub dels: u64,
    /// Operations answered with an error.
    pub errors: u64,
}

/// One shard's partition. `!Send` is not required here (it holds no `Rc`),
/// but by contract a `Store` is owned by exactly one shard.
pub struct Store {
    table: Table,
    used_bytes: usize,
    limits: StoreLimits,
    counters: StoreCounters,
}

impl Store {
    /// An empty store with the given limits.
    pub fn new(limits: StoreLimits) -> Store {
        Store {
            table: Table::new(),
            used_bytes: 0,
            limits,
            counters: StoreCounters::default(),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes charged against the memory limit.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Operation counters since start.
    pub fn counters(&self) -> StoreCounters {
        self.counters
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.table.clear();
        self.used_bytes = 0;
    }

    /// Reads a key (convenience for tests and tools; the hot path uses
    /// [`Store::execute`]).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let hash = crate::routing::key_hash(key);
        self.table
            .find(hash, key)
            .map(|slot| self.table.value(slot))
    }

    /// A hint with no effect on the contents: starts loading the table slot
    /// of the key with placement hash `hash` into the CPU cache. The shard
    /// calls it many operations ahead of executing a batch's ops, then
    /// [`Store::prefetch_entry`] a few operations ahead, so the cache misses
    /// of several operations overlap instead of being paid one after another.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        self.table.prefetch_slot(hash);
    }

    /// A hint: starts loading the entry (key and value) of `hash`, reading
    /// its slot, which [`Store::prefetch_slot`] should have brought in.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        self.table.prefetch_entry(hash);
    }

    /// Executes one operation whose key has placement hash `hash`, pushing its
    /// result into `sink`. `value` is ignored by operations that take none.
    #[inline]
    pub fn execute(
        &mut self,
        kind: OpKind,
        key: &[u8],
        value: &[u8],
        hash: u64,
        sink: &mut impl ReplySink,
    ) {
        if key.len() > self.limits.max_key_len {
            self.counters.errors += 1;
            return sink.push(OpResult::Err(OpError::KeyTooLarge));
        }
        if kind.writes_value() && value.len() > self.limits.max_value_len {
            self.counters.errors += 1;
            return sink.push(OpResult::Err(OpError::ValueTooLarge));
        }
        let t = &mut self.table;
        match kind {
            OpKind::Get => {
                self.counters.gets += 1;
                match t.find(hash, key) {
                    Some(slot) => sink.push(OpResult::Value(t.value(slot))),
                    None => sink.push(OpResult::NotFound),
                }
            }
            OpKind::Exists => {
                self.counters.gets += 1;
                let found = t.find(hash, key).is_some();
                sink.push(OpResult::Int(found as i64));
            }
            OpKind::Strlen => {
                self.counters.gets += 1;
                let len = t.find(hash, key).map_or(0, |slot| t.value(slot).len());
                sink.push(OpResult::Int(len as i64));
            }
            OpKind::Del => {
                self.counters.dels += 1;
                match t.find(hash, key) {
                    Some(slot) => {
                        self.used_bytes -= t.payload_len(slot) + ENTRY_OVERHEAD;
                        t.remove(slot);
                        sink.push(OpResult::Ok);
                    }
                    None => sink.push(OpResult::NotFound),
                }
            }
            OpKind::Put
            | OpKind::PutIfAbsent
            | OpKind::PutIfPresent
            | OpKind::GetSet
            | OpKind::IncrBy => {
                self.counters.puts += 1;
                let r = self.write(kind, key, value, hash, sink);
                if r.is_err() {
                    self.counters.errors += 1;
                }
            }
        }
    }

    /// The write kinds. Pushes exactly one result; returns `Err` when that
    /// result was an error (for counting).
    #[inline]
    fn write(
        &mut self,
        kind: OpKind,
        key: &[u8],
        value: &[u8],
        hash: u64,
        sink: &mut impl ReplySink,
    ) -> Result<(), OpError> {
        let limit = self.limits.max_memory;
        let used = self.used_bytes;
        let fail = |sink: &mut dyn FnMut(OpResult<'_>), e: OpError| {
            sink(OpResult::Err(e));
            Err(e)
        };
        let mut push = |r: OpResult<'_>| sink.push(r);
        let t = &mut self.table;
        let mut incr_buf = [0u8; 20];
        match t.find(hash, key) {
            Some(slot) => {
                if kind == OpKind::PutIfAbsent {
                    push(OpResult::NotFound);
                    return Ok(());
                }
                let new_value: &[u8] = if kind == OpKind::IncrBy {
                    match incr(t.value(slot), value, &mut incr_buf) {
                        Some(v) => v,
                        None => return fail(&mut push, OpError::NotInteger),
                    }
                } else {
                    value
                };
                let old_len = t.value(slot).len();
                if new_value.len() > old_len && used + (new_value.len() - old_len) > limit {
                    return fail(&mut push, OpError::OutOfMemory);
                }
                match kind {
                    OpKind::GetSet => push(OpResult::Value(t.value(slot))),
                    // `incr` produced a valid i64 in decimal.
                    OpKind::IncrBy => push(OpResult::Int(parse_i64(new_value).unwrap_or(0))),
                    _ => push(OpResult::Ok),
                }
                t.set_value(slot, new_value);
                self.used_bytes = used - old_len + new_value.len();
                Ok(())
            }
            None => {
                if kind == OpKind::PutIfPresent {
                    push(OpResult::NotFound);
                    return Ok(());
                }
                let new_value: &[u8] = if kind == OpKind::IncrBy {
                    match incr(b"0", value, &mut incr_buf) {
                        Some(v) => v,
                        None => return fail(&mut push, OpError::NotInteger),
                    }
                } else {
                    value
                };
                let charge = key.len() + new_value.len() + ENTRY_OVERHEAD;
                if used.saturating_add(charge) > limit {
                    return fail(&mut push, OpError::OutOfMemory);
                }
                match kind {
                    OpKind::GetSet => push(OpResult::NotFound),
                    OpKind::IncrBy => push(OpResult::Int(parse_i64(new_value).unwrap_or(0))),
                    _ => push(OpResult::Ok),
                }
                t.insert(hash, key, new_value);
                self.used_bytes = used + charge;
                Ok(())
            }
        }
    }
}

/// `current + delta` as decimal text in `buf`; `None` when either is not an
/// integer or the sum overflows.
fn incr<'b>(current: &[u8], delta: &[u8], buf: &'b mut [u8; 20]) -> Option<&'b [u8]> {
    let sum = parse_i64(current)?.checked_add(parse_i64(delta)?)?;
    Some(format_i64(sum, buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::key_hash;

    /// Collects results as owned values.
    #[derive(Default)]
    struct Collect(Vec<Owned>);
    #[derive(Debug, PartialEq)]
    enum Owned {
        Value(Vec<u8>),
        NotFound,
        Ok,
        Int(i64),
        Err(OpError),
    }
    impl ReplySink for Collect {
        fn push(&mut self, r: OpResult<'_>) {
            self.0.push(match r {
                OpResult::Value(v) => Owned::Value(v.to_vec()),
                OpResult::NotFound => Owned::NotFound,
                OpResult::Ok => Owned::Ok,
                OpResult::Int(i) => Owned::Int(i),
                OpResult::Err(e) => Owned::Err(e),
            })
        }
    }

    fn store(max_memory: usize) -> Store {
        Store::new(StoreLimits {
            max_key_len: 16,
            max_value_len: 64,
            max_memory,
        })
    }

    fn run(s: &mut Store, kind: OpKind, key: &[u8], value: &[u8]) -> Owned {
        let mut c = Collect::default();
        s.execute(kind, key, value, key_hash(key), &mut c);
        assert_eq!(c.0.len(), 1, "exactly one result per op");
        c.0.pop().unwrap()
    }

    #[test]
    fn put_get_del() {
        let mut s = store(usize::MAX);
        assert_eq!(run(&mut s, OpKind::Get, b"k", b""), Owned::NotFound);
        assert_eq!(run(&mut s, OpKind::Put, b"k", b"v1"), Owned::Ok);
        assert_eq!(
            run(&mut s, OpKind::Get, b"k", b""),
            Owned::Value(b"v1".to_vec())
        );
        assert_eq!(run(&mut s, OpKind::Put, b"k", b"v2"), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Put, b"k", b"longer"), Owned::Ok);
        assert_eq!(s.get(b"k"), Some(&b"longer"[..]));
        assert_eq!(s.len(), 1);
        assert_eq!(s.used_bytes(), 1 + 6 + ENTRY_OVERHEAD);
        assert_eq!(run(&mut s, OpKind::Del, b"k", b""), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Del, b"k", b""), Owned::NotFound);
        assert_eq!(s.used_bytes(), 0);
        assert!(s.is_empty());
        let c = s.counters();
        assert_eq!((c.gets, c.puts, c.dels, c.errors), (2, 3, 2, 0));
    }

    #[test]
    fn conditional_writes_and_counters() {
        let mut s = store(usize::MAX);
        assert_eq!(
            run(&mut s, OpKind::PutIfPresent, b"k", b"x"),
            Owned::NotFound
        );
        assert_eq!(run(&mut s, OpKind::PutIfAbsent, b"k", b"a"), Owned::Ok);
        assert_eq!(
            run(&mut s, OpKind::PutIfAbsent, b"k", b"b"),
            Owned::NotFound
        );
        assert_eq!(
            run(&mut s, OpKind::GetSet, b"k", b"c"),
            Owned::Value(b"a".to_vec())
        );
        assert_eq!(run(&mut s, OpKind::PutIfPresent, b"k", b"d"), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Exists, b"k", b""), Owned::Int(1));
        assert_eq!(run(&mut s, OpKind::Strlen, b"k", b""), Owned::Int(1));
        assert_eq!(run(&mut s, OpKind::Exists, b"nope", b""), Owned::Int(0));
        assert_eq!(run(&mut s, OpKind::GetSet, b"new", b"v"), Owned::NotFound);
        assert_eq!(s.get(b"new"), Some(&b"v"[..]));
    }

    #[test]
    fn incr() {
        let mut s = store(usize::MAX);
        assert_eq!(run(&mut s, OpKind::IncrBy, b"n", b"5"), Owned::Int(5));
        assert_eq!(run(&mut s, OpKind::IncrBy, b"n", b"-7"), Owned::Int(-2));
        assert_eq!(s.get(b"n"), Some(&b"-2"[..]));
        run(&mut s, OpKind::Put, b"t", b"abc");
        assert_eq!(
            run(&mut s, OpKind::IncrBy, b"t", b"1"),
            Owned::Err(OpError::NotInteger)
        );
        run(&mut s, OpKind::Put, b"m", i64::MAX.to_string().as_bytes());
        assert_eq!(
            run(&mut s, OpKind::IncrBy, b"m", b"1"),
            Owned::Err(OpError::NotInteger)
        );
        assert_eq!(
            run(&mut s, OpKind::IncrBy, b"n", b"01"),
            Owned::Err(OpError::NotInteger)
        );
        assert_eq!(s.counters().errors, 3);
    }

    #[test]
    fn limits() {
        let mut s = store(usize::MAX);
        assert_eq!(
            run(&mut s, OpKind::Put, &[b'k'; 17], b"v"),
            Owned::Err(OpError::KeyTooLarge)
        );
        assert_eq!(
            run(&mut s, OpKind::Get, &[b'k'; 17], b""),
            Owned::Err(OpError::KeyTooLarge)
        );
        assert_eq!(
            run(&mut s, OpKind::Put, b"k", &[b'v'; 65]),
            Owned::Err(OpError::ValueTooLarge)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn memory_limit_blocks_growth_not_reads() {
        // Room for exactly two 1-byte keys with 8-byte values.
        let per = 1 + 8 + ENTRY_OVERHEAD;
        let mut s = store(2 * per);
        assert_eq!(run(&mut s, OpKind::Put, b"a", b"12345678"), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Put, b"b", b"12345678"), Owned::Ok);
        assert_eq!(
            run(&mut s, OpKind::Put, b"c", b"12345678"),
            Owned::Err(OpError::OutOfMemory)
        );
        // Growing an existing value fails; same size or smaller works.
        assert_eq!(
            run(&mut s, OpKind::Put, b"a", b"123456789"),
            Owned::Err(OpError::OutOfMemory)
        );
        assert_eq!(run(&mut s, OpKind::Put, b"a", b"abcdefgh"), Owned::Ok);
        assert_eq!(
            run(&mut s, OpKind::Get, b"a", b""),
            Owned::Value(b"abcdefgh".to_vec())
        );
        assert_eq!(run(&mut s, OpKind::Get, b"c", b""), Owned::NotFound);
        // Deleting frees room.
        assert_eq!(run(&mut s, OpKind::Del, b"b", b""), Owned::Ok);
        assert_eq!(run(&mut s, OpKind::Put, b"c", b"12345678"), Owned::Ok);
        assert_eq!(s.used_bytes(), 2 * per);
    }

    #[test]
    fn many_keys_and_clear() {
        let mut s = store(usize::MAX);
        for i in 0..10_000u32 {
            let k = i.to_string();
            assert_eq!(
                run(&mut s, OpKind::Put, k.as_bytes(), &i.to_le_bytes()),
                Owned::Ok
            );
        }
        assert_eq!(s.len(), 10_000);
        for i in (0..10_000u32).step_by(7) {
            let k = i.to_string();
            assert_eq!(s.get(k.as_bytes()), Some(&i.to_le_bytes()[..]));
        }
        s.clear();
        assert_eq!((s.len(), s.used_bytes()), (0, 0));
    }

    #[test]
    fn format_and_parse_i64() {
        let mut b = [0u8; 20];
        for v in [0, 1, -1, 42, i64::MAX, i64::MIN, -1000] {
            assert_eq!(format_i64(v, &mut b), v.to_string().as_bytes());
            assert_eq!(parse_i64(v.to_string().as_bytes()), Some(v));
        }
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b"-0",
            b"1 ",
            b"x",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }
}
