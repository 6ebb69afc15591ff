//! Linearizability checker for recorded key-value histories.
//!
//! This module owns one thing: deciding whether a *recorded history* of
//! client operations against a key-value store could have been produced by
//! an atomic (linearizable) store. It knows nothing of sockets, protocols or
//! the store itself; test harnesses record [`Operation`]s (with timestamps
//! from a monotonic clock) into a [`History`] and hand it to [`check`] or
//! [`check_with_limit`].
//!
//! # Model
//!
//! Every key is an independent register whose initial state is *absent*.
//! `Get` returns the current value (`None` when absent), `Put(v)` sets it to
//! `Some(v)`, `Del` makes it absent. Because linearizability is compositional
//! (a history is linearizable iff each per-object sub-history is), the
//! history is partitioned by key and each key is checked on its own.
//!
//! # Timing and ties
//!
//! Each operation occupies the real-time interval `[call, ret]`, where `call`
//! is taken just before the request is sent and `ret` just after the response
//! arrived. Operation `a` *happens before* `b` iff `a.ret < b.call`
//! (strictly). When `a.ret == b.call` the two are treated as *concurrent*:
//! with a single clock of finite resolution, equality does not prove an
//! ordering, so the checker errs on the side of not reporting a violation.
//! Concretely, events are sorted by time with call events placed before
//! return events at equal times. A recorded `ret < call` is treated as
//! `ret == call`.
//!
//! # Unknown outcomes
//!
//! [`Output::Unknown`] means the request may or may not have taken effect
//! (timeout, lost connection).
//!
//! * An unknown `Get` constrains nothing and is dropped before the search.
//! * An unknown `Put`/`Del` is a write whose response time is +infinity: it
//!   may be linearized at any point after its `call`, including after every
//!   other operation, which is indistinguishable from "never took effect".
//!   Its recorded `ret` is ignored.
//!
//! An `Output` that does not fit the `Input` (`Get` answered with
//! [`Output::Ok`], or a write answered with [`Output::Value`]) can never be
//! linearized and will be reported as a violation.
//!
//! # Algorithm
//!
//! Per key, the checker runs the Wing & Gong search with Lowe's improvements
//! (the WGL algorithm used by Knossos and Porcupine):
//!
//! 1. Every operation contributes a call event and a return event. Events are
//!    sorted by time (ties as described above) into a doubly linked list.
//! 2. The search walks the list from the head. At a call event it tries to
//!    linearize that operation *now*: if the register model accepts it from
//!    the current state, the operation is pushed on a stack together with the
//!    previous state, its call and return events are unlinked from the list
//!    ("lifted"), and the walk restarts from the head. At a return event the
//!    operation whose deadline has passed was not linearized in time, so the
//!    search backtracks: it pops the last linearized operation, restores its
//!    events and state, and continues with the event after its call.
//! 3. A cache of `(set of linearized operations, model state)` pairs, with
//!    the set stored as a compact `u64` bitset, prunes configurations that
//!    were already explored: any two paths reaching the same pair have the
//!    same future.
//! 4. The history is linearizable when the list becomes empty; it is not when
//!    the search must backtrack with an empty stack.
//!
//! Register values are interned to small integers per key, so model states
//! and cache entries are cheap to hash and compare. The search is worst-case
//! exponential in the number of mutually concurrent operations; for typical
//! test histories (a handful of clients) it is close to linear.
//! [`check_with_limit`] bounds the number of search steps per key and yields
//! [`Verdict::Inconclusive`] rather than running forever.
//!
//! When a key is not linearizable, the [`Violation`] reports the longest
//! linearizable prefix the search found and the operation that could not be
//! placed after it (the one whose response deadline passed first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// What a client asked the store to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Read the key's current value.
    Get,
    /// Set the key to the given value.
    Put(Vec<u8>),
    /// Remove the key.
    Del,
}

/// What the store answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Result of a `Get`: `None` means "not found".
    Value(Option<Vec<u8>>),
    /// A `Put` or `Del` completed.
    Ok,
    /// No answer: the request may or may not have taken effect (timeout,
    /// connection lost). Unknown reads are ignored; unknown writes are
    /// treated as pending forever (response time +infinity).
    Unknown,
}

/// One recorded client operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    /// Identifier of the client (thread/connection) that issued it.
    pub client: usize,
    /// The key operated on.
    pub key: Vec<u8>,
    /// The request.
    pub input: Input,
    /// The response.
    pub output: Output,
    /// Monotonic time in ns taken just before the request was sent.
    pub call: u64,
    /// Monotonic time in ns taken just after the response arrived (ignored
    /// for writes whose output is [`Output::Unknown`]).
    pub ret: u64,
}

fn fmt_value(f: &mut fmt::Formatter<'_>, v: &Option<Vec<u8>>) -> fmt::Result {
    match v {
        Some(v) => write!(f, "\"{}\"", v.escape_ascii()),
        None => write!(f, "absent"),
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} ", self.client)?;
        match &self.input {
            Input::Get => write!(f, "get")?,
            Input::Put(v) => write!(f, "put \"{}\"", v.escape_ascii())?,
            Input::Del => write!(f, "del")?,
        }
        write!(f, " -> ")?;
        match &self.output {
            Output::Value(v) => fmt_value(f, v)?,
            Output::Ok => write!(f, "ok")?,
            Output::Unknown => write!(f, "unknown")?,
        }
        if self.output == Output::Unknown {
            write!(f, " [call {}, ret ?]", self.call)
        } else {
            write!(f, " [call {}, ret {}]", self.call, self.ret)
        }
    }
}

/// A recorded history: an unordered collection of operations.
///
/// The builder does no locking. Recorders running in several threads should
/// each collect their own `Vec<Operation>` and merge them with
/// [`History::from_parts`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    ops: Vec<Operation>,
}

impl History {
    /// Creates an empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges per-thread recordings into one history.
    pub fn from_parts(parts: Vec<Vec<Operation>>) -> Self {
        Self {
            ops: parts.into_iter().flatten().collect(),
        }
    }

    /// Appends one operation.
    pub fn record(&mut self, op: Operation) {
        self.ops.push(op);
    }

    /// The recorded operations, in recording order.
    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    /// Number of recorded operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Why a key's sub-history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key whose sub-history is not linearizable.
    pub key: Vec<u8>,
    /// The longest linearizable prefix found by the search, in
    /// linearization order.
    pub prefix: Vec<Operation>,
    /// The register value after `prefix`.
    pub state: Option<Vec<u8>>,
    /// The operation that could not be placed: its response deadline passed
    /// while no extension of `prefix` could linearize it.
    pub stuck: Operation,
}

/// How many prefix operations [`Violation`]'s `Display` shows.
const SHOWN_PREFIX: usize = 8;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key \"{}\" is not linearizable: could not place {}",
            self.key.escape_ascii(),
            self.stuck
        )?;
        write!(
            f,
            "  longest linearizable prefix: {} ops, leaving the register ",
            self.prefix.len()
        )?;
        fmt_value(f, &self.state)?;
        let skip = self.prefix.len().saturating_sub(SHOWN_PREFIX);
        if skip > 0 {
            write!(f, "\n  ... {skip} earlier ops")?;
        }
        for op in &self.prefix[skip..] {
            write!(f, "\n  {op}")?;
        }
        Ok(())
    }
}

/// Outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// Some key's sub-history is not linearizable (the first such key in
    /// byte order).
    NotLinearizable(Violation),
    /// No violation was found, but the search for `key` ran out of its step
    /// budget before reaching a conclusion.
    Inconclusive {
        /// The key whose search was cut short.
        key: Vec<u8>,
        /// Steps taken on that key before giving up.
        steps: u64,
    },
}

/// Result of [`check`] / [`check_with_limit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// The verdict.
    pub verdict: Verdict,
    /// Number of keys whose search ran (checking stops at the first
    /// violation).
    pub keys_checked: usize,
    /// Number of operations fed to the searches of those keys (unknown reads
    /// are dropped and not counted).
    pub ops_checked: usize,
}

impl CheckResult {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        self.verdict == Verdict::Linearizable
    }

    /// The violation, if the verdict is [`Verdict::NotLinearizable`].
    pub fn violation(&self) -> Option<&Violation> {
        match &self.verdict {
            Verdict::NotLinearizable(v) => Some(v),
            _ => None,
        }
    }
}

/// Checks `history` with no bound on the search (see [`check_with_limit`]).
pub fn check(history: &History) -> CheckResult {
    check_with_limit(history, u64::MAX)
}

/// Checks `history`, giving each key's search at most `max_steps` steps (one
/// step is one visited event). A key that exhausts its budget makes the
/// verdict [`Verdict::Inconclusive`] unless another key has a definite
/// violation, which takes precedence.
pub fn check_with_limit(history: &History, max_steps: u64) -> CheckResult {
    let mut by_key: BTreeMap<&[u8], Vec<&Operation>> = BTreeMap::new();
    for op in &history.ops {
        if op.input == Input::Get && op.output == Output::Unknown {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut result = CheckResult {
        verdict: Verdict::Linearizable,
        keys_checked: 0,
        ops_checked: 0,
    };
    for (key, ops) in by_key {
        result.keys_checked += 1;
        result.ops_checked += ops.len();
        match check_key(key, &ops, max_steps) {
            KeyOutcome::Ok => {}
            KeyOutcome::Violation(v) => {
                result.verdict = Verdict::NotLinearizable(v);
                return result;
            }
            KeyOutcome::Inconclusive(steps) => {
                if result.verdict == Verdict::Linearizable {
                    result.verdict = Verdict::Inconclusive {
                        key: key.to_vec(),
                        steps,
                    };
                }
            }
        }
    }
    result
}

enum KeyOutcome {
    Ok,
    Violation(Violation),
    Inconclusive(u64),
}

/// An operation translated to the interned register model.
#[derive(Clone, Copy)]
enum Step {
    /// A read that must observe this state.
    Read(u32),
    /// A write that sets this state.
    Write(u32),
    /// An input/output pair that no state can explain.
    Invalid,
}

/// Interned register state: 0 is "absent", `k > 0` is `values[k - 1]`.
type State = u32;

#[derive(Default)]
struct Interner<'a> {
    ids: HashMap<&'a [u8], State>,
    values: Vec<&'a [u8]>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, v: Option<&'a [u8]>) -> State {
        let Some(v) = v else { return 0 };
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        self.values.push(v);
        let id = self.values.len() as State;
        self.ids.insert(v, id);
        id
    }

    fn value(&self, s: State) -> Option<Vec<u8>> {
        (s != 0).then(|| self.values[s as usize - 1].to_vec())
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(n: usize) -> Self {
        Bitset(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// One node of the event list. Index 0 is the head sentinel and the last
/// index the tail sentinel.
#[derive(Clone, Copy)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call node: index of the matching return node.
    ret_node: usize,
    prev: usize,
    next: usize,
}

struct EventList {
    nodes: Vec<Node>,
}

const HEAD: usize = 0;

impl EventList {
    fn new(ops: &[&Operation], steps: &[Step]) -> Self {
        // (time, is_return, op): calls sort before returns at equal times.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            let ret = match (op.output == Output::Unknown, steps[i]) {
                (true, Step::Write(_)) => u64::MAX,
                _ => op.ret.max(op.call),
            };
            events.push((op.call, false, i));
            events.push((ret, true, i));
        }
        events.sort_unstable();
        let n = events.len();
        let tail = n + 1;
        let blank = Node {
            op: usize::MAX,
            is_call: false,
            ret_node: 0,
            prev: 0,
            next: 0,
        };
        let mut nodes = vec![blank; n + 2];
        let mut ret_of = vec![0; ops.len()];
        for (pos, &(_, is_ret, op)) in events.iter().enumerate() {
            let idx = pos + 1;
            nodes[idx] = Node {
                op,
                is_call: !is_ret,
                ret_node: 0,
                prev: idx - 1,
                next: idx + 1,
            };
            if is_ret {
                ret_of[op] = idx;
            }
        }
        for node in &mut nodes[1..=n] {
            if node.is_call {
                node.ret_node = ret_of[node.op];
            }
        }
        nodes[HEAD].next = 1;
        nodes[tail].prev = n;
        EventList { nodes }
    }

    fn tail(&self) -> usize {
        self.nodes.len() - 1
    }

    fn unlink(&mut self, i: usize) {
        let Node { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = next;
        self.nodes[next].prev = prev;
    }

    fn relink(&mut self, i: usize) {
        let Node { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = i;
        self.nodes[next].prev = i;
    }

    /// Removes a call node and its return node.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.nodes[call].ret_node);
    }

    /// Undoes the matching `lift` (must be done in reverse lift order).
    fn unlift(&mut self, call: usize) {
        self.relink(self.nodes[call].ret_node);
        self.relink(call);
    }
}

fn check_key(key: &[u8], ops: &[&Operation], max_steps: u64) -> KeyOutcome {
    let mut interner = Interner::default();
    let steps: Vec<Step> = ops
        .iter()
        .map(|op| match (&op.input, &op.output) {
            (Input::Get, Output::Value(v)) => Step::Read(interner.id(v.as_deref())),
            (Input::Put(v), Output::Ok | Output::Unknown) => Step::Write(interner.id(Some(v))),
            (Input::Del, Output::Ok | Output::Unknown) => Step::Write(0),
            _ => Step::Invalid,
        })
        .collect();
    let mut list = EventList::new(ops, &steps);
    let tail = list.tail();

    let mut linearized = Bitset::new(ops.len());
    let mut cache: HashSet<(Bitset, State)> = HashSet::new();
    // (call node, state before it was linearized)
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = 0;
    // Longest prefix seen when forced to backtrack: (ops, state, stuck op).
    let mut best: Option<(Vec<usize>, State, usize)> = None;

    let mut taken: u64 = 0;
    let mut entry = list.nodes[HEAD].next;
    while list.nodes[HEAD].next != tail {
        if taken >= max_steps {
            return KeyOutcome::Inconclusive(taken);
        }
        taken += 1;
        let node = list.nodes[entry];
        if node.is_call {
            let next_state = match steps[node.op] {
                Step::Read(s) if s == state => Some(state),
                Step::Write(s) => Some(s),
                _ => None,
            };
            if let Some(next_state) = next_state {
                linearized.set(node.op);
                if cache.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    list.lift(entry);
                    entry = list.nodes[HEAD].next;
                    continue;
                }
                linearized.clear(node.op);
            }
            entry = node.next;
        } else {
            if best
                .as_ref()
                .map_or(true, |(p, _, _)| stack.len() > p.len())
            {
                let prefix = stack.iter().map(|&(e, _)| list.nodes[e].op).collect();
                best = Some((prefix, state, node.op));
            }
            let Some((call, prev_state)) = stack.pop() else {
                let (prefix, state, stuck) = best.expect("recorded before backtracking");
                return KeyOutcome::Violation(Violation {
                    key: key.to_vec(),
                    prefix: prefix.into_iter().map(|i| ops[i].clone()).collect(),
                    state: interner.value(state),
                    stuck: ops[stuck].clone(),
                });
            };
            state = prev_state;
            linearized.clear(list.nodes[call].op);
            list.unlift(call);
            entry = list.nodes[call].next;
        }
    }
    KeyOutcome::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: usize,
        key: &str,
        input: Input,
        output: Output,
        call: u64,
        ret: u64,
    ) -> Operation {
        Operation {
            client,
            key: key.as_bytes().to_vec(),
            input,
            output,
            call,
            ret,
        }
    }

    fn put(c: usize, k: &str, v: &str, call: u64, ret: u64) -> Operation {
        op(c, k, Input::Put(v.into()), Output::Ok, call, ret)
    }

    fn put_unknown(c: usize, k: &str, v: &str, call: u64, ret: u64) -> Operation {
        op(c, k, Input::Put(v.into()), Output::Unknown, call, ret)
    }

    fn del(c: usize, k: &str, call: u64, ret: u64) -> Operation {
        op(c, k, Input::Del, Output::Ok, call, ret)
    }

    fn get(c: usize, k: &str, v: Option<&str>, call: u64, ret: u64) -> Operation {
        let v = v.map(|v| v.as_bytes().to_vec());
        op(c, k, Input::Get, Output::Value(v), call, ret)
    }

    fn history(ops: Vec<Operation>) -> History {
        let mut h = History::new();
        for o in ops {
            h.record(o);
        }
        h
    }

    fn violation(ops: Vec<Operation>) -> Violation {
        match check(&history(ops)).verdict {
            Verdict::NotLinearizable(v) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn assert_linearizable(ops: Vec<Operation>) {
        let r = check(&history(ops));
        assert_eq!(r.verdict, Verdict::Linearizable, "{r:?}");
    }

    #[test]
    fn empty_history_is_linearizable() {
        let r = check(&History::new());
        assert!(r.is_linearizable());
        assert_eq!((r.keys_checked, r.ops_checked), (0, 0));
    }

    #[test]
    fn sequential_put_get() {
        assert_linearizable(vec![
            get(0, "a", None, 0, 1),
            put(0, "a", "1", 2, 3),
            get(0, "a", Some("1"), 4, 5),
            put(1, "a", "2", 6, 7),
            get(0, "a", Some("2"), 8, 9),
            del(1, "a", 10, 11),
            get(0, "a", None, 12, 13),
        ]);
    }

    #[test]
    fn concurrent_writes_reads_see_either_value() {
        // Two overlapping puts; concurrent readers observe both orders.
        assert_linearizable(vec![
            put(0, "a", "1", 0, 100),
            put(1, "a", "2", 10, 90),
            get(2, "a", Some("1"), 20, 30),
            get(3, "a", Some("2"), 40, 50),
            get(2, "a", Some("2"), 60, 70),
        ]);
        // Overlapping readers may disagree while the writes are in flight.
        assert_linearizable(vec![
            put(0, "a", "1", 0, 100),
            put(1, "a", "2", 10, 90),
            get(2, "a", Some("2"), 20, 80),
            get(3, "a", Some("1"), 20, 80),
            get(4, "a", None, 5, 15),
        ]);
        // Both writes done; whichever was last must be seen consistently.
        assert_linearizable(vec![
            put(0, "a", "1", 0, 100),
            put(1, "a", "2", 10, 90),
            get(2, "a", Some("1"), 110, 120),
            get(3, "a", Some("1"), 130, 140),
        ]);
        assert_linearizable(vec![
            put(0, "a", "1", 0, 100),
            put(1, "a", "2", 10, 90),
            get(2, "a", Some("2"), 110, 120),
        ]);
    }

    #[test]
    fn flip_flop_after_writes_done_is_not_linearizable() {
        violation(vec![
            put(0, "a", "1", 0, 100),
            put(1, "a", "2", 10, 90),
            get(2, "a", Some("2"), 110, 120),
            get(3, "a", Some("1"), 130, 140),
        ]);
    }

    #[test]
    fn planted_stale_read_is_detected() {
        let v = violation(vec![
            put(0, "ok", "x", 0, 10),
            get(1, "ok", Some("x"), 20, 30),
            put(0, "a", "1", 0, 10),
            put(1, "a", "2", 20, 30),
            get(2, "a", Some("1"), 40, 50),
        ]);
        assert_eq!(v.key, b"a");
        assert_eq!(v.stuck, get(2, "a", Some("1"), 40, 50));
        assert_eq!(v.prefix.len(), 2);
        assert_eq!(v.state, Some(b"2".to_vec()));
        let text = v.to_string();
        assert!(text.contains("key \"a\""), "{text}");
        assert!(
            text.contains("client 2 get -> \"1\" [call 40, ret 50]"),
            "{text}"
        );
        assert!(text.contains("client 1 put \"2\" -> ok"), "{text}");
    }

    #[test]
    fn read_of_never_written_value() {
        let v = violation(vec![put(0, "k", "1", 0, 10), get(1, "k", Some("9"), 5, 15)]);
        assert_eq!(v.key, b"k");
        assert_eq!(v.stuck.output, Output::Value(Some(b"9".to_vec())));
    }

    #[test]
    fn absent_after_completed_put() {
        violation(vec![put(0, "k", "1", 0, 10), get(1, "k", None, 20, 30)]);
    }

    #[test]
    fn absent_with_concurrent_del() {
        assert_linearizable(vec![
            put(0, "k", "1", 0, 10),
            del(2, "k", 15, 40),
            get(1, "k", None, 20, 30),
            get(1, "k", None, 50, 60),
        ]);
    }

    #[test]
    fn ret_equal_to_call_counts_as_concurrent() {
        // The get starts at the very ns the put returns: either order allowed.
        assert_linearizable(vec![put(0, "k", "1", 0, 10), get(1, "k", None, 10, 20)]);
        // One ns later it is ordered.
        violation(vec![put(0, "k", "1", 0, 10), get(1, "k", None, 11, 20)]);
    }

    #[test]
    fn unknown_write_seen_later_is_fine() {
        assert_linearizable(vec![
            put(0, "k", "1", 0, 10),
            put_unknown(1, "k", "2", 20, 30),
            get(2, "k", Some("1"), 40, 50),
            get(2, "k", Some("2"), 1_000, 1_010),
            get(0, "k", Some("2"), 2_000, 2_010),
        ]);
        // Never observed at all: also fine.
        assert_linearizable(vec![
            put(0, "k", "1", 0, 10),
            put_unknown(1, "k", "2", 20, 30),
            get(2, "k", Some("1"), 40, 50),
        ]);
    }

    #[test]
    fn unknown_write_seen_then_unseen() {
        let v = violation(vec![
            put(0, "k", "1", 0, 10),
            put_unknown(1, "k", "2", 20, 30),
            get(2, "k", Some("2"), 1_000, 1_010),
            get(2, "k", Some("1"), 2_000, 2_010),
        ]);
        assert_eq!(v.stuck, get(2, "k", Some("1"), 2_000, 2_010));
    }

    #[test]
    fn unknown_del_may_take_effect_late() {
        assert_linearizable(vec![
            put(0, "k", "1", 0, 10),
            op(1, "k", Input::Del, Output::Unknown, 20, 30),
            get(2, "k", Some("1"), 500, 510),
            get(2, "k", None, 1_000, 1_010),
        ]);
    }

    #[test]
    fn unknown_reads_are_dropped() {
        let r = check(&history(vec![
            put(0, "k", "1", 0, 10),
            op(1, "k", Input::Get, Output::Unknown, 20, 30),
            get(1, "k", Some("1"), 40, 50),
        ]));
        assert!(r.is_linearizable());
        assert_eq!(r.ops_checked, 2);
    }

    #[test]
    fn mismatched_output_is_a_violation() {
        let v = violation(vec![op(0, "k", Input::Get, Output::Ok, 0, 10)]);
        assert!(v.prefix.is_empty());
    }

    #[test]
    fn multi_key_independence() {
        let mut ops = Vec::new();
        for k in 0..20u64 {
            let key = format!("key{k:02}");
            ops.push(put(0, &key, "v", k * 100, k * 100 + 10));
            ops.push(get(1, &key, Some("v"), k * 100 + 20, k * 100 + 30));
        }
        // Sequentially fine on every key alone ...
        assert_linearizable(ops.clone());
        // ... but a stale read planted on key07 is found among them.
        ops.push(put(2, "key07", "w", 5_000, 5_010));
        ops.push(get(3, "key07", Some("v"), 5_020, 5_030));
        let r = check(&history(ops));
        let v = r.violation().expect("violation");
        assert_eq!(v.key, b"key07");
        assert_eq!(r.keys_checked, 8);
    }

    #[test]
    fn from_parts_merges_threads() {
        let h = History::from_parts(vec![
            vec![put(0, "k", "1", 0, 10)],
            vec![get(1, "k", Some("1"), 20, 30), get(1, "k", None, 40, 50)],
        ]);
        assert_eq!(h.len(), 3);
        assert!(!h.is_empty());
        assert!(check(&h).violation().is_some());
    }

    #[test]
    fn step_limit_gives_inconclusive_and_violation_wins() {
        let ops = simulate(&SimConfig::default(), 7);
        let r = check_with_limit(&ops, 3);
        assert!(
            matches!(r.verdict, Verdict::Inconclusive { steps: 3, .. }),
            "{r:?}"
        );
        assert!(check_with_limit(&ops, u64::MAX).is_linearizable());
        // A definite violation on another key takes precedence.
        let mut ops = ops.operations().to_vec();
        ops.push(put(0, "zz", "1", 0, 10));
        ops.push(get(0, "zz", None, 20, 30));
        let r = check_with_limit(&history(ops), 50);
        assert_eq!(r.violation().expect("violation").key, b"zz");
    }

    // ---- randomized simulation of a correct atomic register ----

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    struct SimConfig {
        clients: usize,
        ops_per_client: usize,
        keys: usize,
        values: usize,
        /// Percentage of writes whose outcome is unknown.
        unknown_pct: u64,
    }

    impl Default for SimConfig {
        fn default() -> Self {
            SimConfig {
                clients: 5,
                ops_per_client: 40,
                keys: 2,
                values: 3,
                unknown_pct: 5,
            }
        }
    }

    /// Runs random clients against a sequential register, each operation
    /// taking effect at a random point inside its `[call, ret]` interval.
    fn simulate(cfg: &SimConfig, seed: u64) -> History {
        let mut rng = Rng(seed);
        // (linearization point or None if never applied, op)
        let mut planned: Vec<(Option<u64>, Operation)> = Vec::new();
        for client in 0..cfg.clients {
            let mut t = rng.below(100);
            for _ in 0..cfg.ops_per_client {
                let call = t + rng.below(30);
                let ret = call + 1 + rng.below(200);
                t = ret;
                let key = format!("k{}", rng.below(cfg.keys as u64));
                let input = match rng.below(20) {
                    0..=9 => Input::Get,
                    10..=16 => Input::Put(format!("v{}", rng.below(cfg.values as u64)).into()),
                    _ => Input::Del,
                };
                let unknown = input != Input::Get && rng.below(100) < cfg.unknown_pct;
                let lin = if unknown {
                    // In flight past the client's timeout, or lost.
                    (rng.below(2) == 0).then(|| call + rng.below(2_000))
                } else {
                    Some(call + rng.below(ret - call + 1))
                };
                let output = if unknown { Output::Unknown } else { Output::Ok };
                let o = op(client, &key, input, output, call, ret);
                planned.push((lin, o));
            }
        }
        planned.sort_by_key(|(lin, o)| (*lin, o.call, o.client));
        let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut parts = vec![Vec::new(); cfg.clients];
        for (lin, mut o) in planned {
            if lin.is_some() {
                match &o.input {
                    Input::Get => o.output = Output::Value(store.get(&o.key).cloned()),
                    Input::Put(v) => {
                        store.insert(o.key.clone(), v.clone());
                    }
                    Input::Del => {
                        store.remove(&o.key);
                    }
                }
            }
            parts[o.client].push(o);
        }
        History::from_parts(parts)
    }

    #[test]
    fn randomized_correct_register_is_linearizable() {
        for seed in 0..40 {
            let h = simulate(&SimConfig::default(), seed);
            let r = check(&h);
            assert!(r.is_linearizable(), "seed {seed}: {r:?}");
            assert_eq!(r.ops_checked, h.len());
        }
    }

    /// Replaces one read's result with a different plausible value.
    fn corrupt(h: &History, seed: u64) -> History {
        let mut rng = Rng(seed ^ 0xdead_beef);
        let mut ops = h.operations().to_vec();
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| matches!(ops[i].output, Output::Value(_)))
            .collect();
        let i = reads[rng.below(reads.len() as u64) as usize];
        let Output::Value(old) = &ops[i].output else {
            unreachable!()
        };
        let new = loop {
            let candidate = match rng.below(4) {
                0 => None,
                n => Some(format!("v{}", n - 1).into_bytes()),
            };
            if &candidate != old {
                break candidate;
            }
        };
        ops[i].output = Output::Value(new);
        History { ops }
    }

    #[test]
    fn randomized_corrupted_read_is_usually_detected() {
        let cfg = SimConfig {
            unknown_pct: 0,
            ..SimConfig::default()
        };
        let mut detected = 0;
        for seed in 0..40 {
            let h = corrupt(&simulate(&cfg, seed), seed);
            if check(&h).violation().is_some() {
                detected += 1;
            }
        }
        // Some corruptions are explainable by concurrency; 30 of these 40 are caught.
        assert!(detected >= 28, "only {detected}/40 corruptions detected");
        // A value nobody ever wrote is always detected.
        for seed in 0..10 {
            let mut h = simulate(&cfg, seed);
            let i = h
                .ops
                .iter()
                .position(|o| matches!(o.output, Output::Value(_)))
                .unwrap();
            h.ops[i].output = Output::Value(Some(b"never".to_vec()));
            let r = check(&h);
            let v = r.violation().expect("violation");
            assert_eq!(v.key, h.ops[i].key);
        }
    }

    #[test]
    fn performance_2000_ops_5_keys_8_clients() {
        let cfg = SimConfig {
            clients: 8,
            ops_per_client: 250,
            keys: 5,
            values: 4,
            unknown_pct: 2,
        };
        let h = simulate(&cfg, 42);
        assert_eq!(h.len(), 2_000);
        let r = check(&h);
        assert_eq!(r.verdict, Verdict::Linearizable);
        assert_eq!(r.keys_checked, 5);
    }

    #[test]
    fn performance_single_key_4000_ops() {
        let cfg = SimConfig {
            clients: 8,
            ops_per_client: 500,
            keys: 1,
            values: 4,
            unknown_pct: 0,
        };
        let h = simulate(&cfg, 3);
        assert!(check(&h).is_linearizable());
    }
}
