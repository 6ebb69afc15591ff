//! Linearizability of *multi-key* histories: MSET, MSETNX, MGET, DEL and
//! RENAME over a handful of keys, checked against one model of the whole
//! key space (the per-key checker in `linearizability` cannot see a torn
//! MSET: each key's own history is fine, only their combination is not).
//!
//! # Model
//!
//! The state is every key's value (`None`: absent), all absent at first.
//! [`MInput`] says what each command does to it and what it must answer
//! ([`MOutput`]), Redis's semantics: MSETNX sets every pair only when no key
//! exists (`1`), else nothing (`0`); DEL answers the number of keys it
//! removed; RENAME of an absent key is an error and changes nothing;
//! FLUSHALL empties every key.
//!
//! # Search
//!
//! Wing & Gong's search with Lowe's memoisation over the whole history:
//! operations sorted by call time; from a configuration (the set of
//! operations linearized so far, as a bitset, and the model state) any
//! operation not yet linearized whose call is not after the earliest return
//! among those not linearized may go next, if the model accepts its output.
//! Configurations already explored are cached, so the search is about
//! linear for histories with a few concurrent clients. A step limit turns a
//! pathological search into [`MVerdict::Inconclusive`]. Times follow the
//! per-key checker's convention: `a` precedes `b` only if `a.ret < b.call`.
//! Every output must be known (a failure-free run).

use std::collections::{HashMap, HashSet};

/// A multi-key command, keys as indexes into the checked key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MInput {
    /// MSET: `+OK`.
    Mset(Vec<(usize, Vec<u8>)>),
    /// MSETNX: `:1` when it set them all, `:0` when a key existed.
    Msetnx(Vec<(usize, Vec<u8>)>),
    /// MGET: every key's value.
    Mget(Vec<usize>),
    /// DEL: the number of keys removed.
    Del(Vec<usize>),
    /// RENAME src dst: `+OK`, or an error when src is absent.
    Rename(usize, usize),
    /// FLUSHALL: `+OK`, every key absent.
    FlushAll,
}

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MOutput {
    /// `+OK`.
    Ok,
    /// An integer reply.
    Int(i64),
    /// MGET's values.
    Values(Vec<Option<Vec<u8>>>),
    /// An error reply (RENAME of an absent key).
    Err,
}

/// One recorded operation.
#[derive(Clone, Debug)]
pub struct MOp {
    /// The client that issued it.
    pub client: usize,
    /// The command.
    pub input: MInput,
    /// The answer.
    pub output: MOutput,
    /// Monotonic ns just before sending.
    pub call: u64,
    /// Monotonic ns just after the answer arrived.
    pub ret: u64,
}

/// The checker's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum MVerdict {
    /// Some order of the operations respects real time and the model.
    Linearizable,
    /// None does; `placed` operations is the longest prefix found.
    NotLinearizable {
        /// Operations in the longest linearizable prefix.
        placed: usize,
    },
    /// The step limit ran out.
    Inconclusive,
}

type State = Vec<u32>; // 0: absent, else interned value id + 1

/// Applies `input` to `state` if it may answer `output`; the new state.
fn step(
    state: &State,
    input: &MInput,
    output: &MOutput,
    ids: &HashMap<Vec<u8>, u32>,
) -> Option<State> {
    let id = |v: &Vec<u8>| ids[v];
    match (input, output) {
        (MInput::Mset(pairs), MOutput::Ok) => {
            let mut s = state.clone();
            for (k, v) in pairs {
                s[*k] = id(v);
            }
            Some(s)
        }
        (MInput::Msetnx(pairs), MOutput::Int(n)) => {
            let any = pairs.iter().any(|(k, _)| state[*k] != 0);
            match (any, n) {
                (true, 0) => Some(state.clone()),
                (false, 1) => {
                    let mut s = state.clone();
                    for (k, v) in pairs {
                        s[*k] = id(v);
                    }
                    Some(s)
                }
                _ => None,
            }
        }
        (MInput::Mget(keys), MOutput::Values(vals)) => {
            let ok = keys.len() == vals.len()
                && keys.iter().zip(vals).all(|(k, v)| match v {
                    None => state[*k] == 0,
                    Some(v) => ids.get(v).is_some_and(|&i| state[*k] == i),
                });
            ok.then(|| state.clone())
        }
        (MInput::Del(keys), MOutput::Int(n)) => {
            let mut s = state.clone();
            let mut removed = 0;
            for k in keys {
                if s[*k] != 0 {
                    s[*k] = 0;
                    removed += 1;
                }
            }
            (removed == *n).then_some(s)
        }
        (MInput::Rename(src, dst), MOutput::Ok) if state[*src] != 0 => {
            let mut s = state.clone();
            let v = s[*src];
            s[*src] = 0;
            s[*dst] = v;
            Some(s)
        }
        (MInput::Rename(src, _), MOutput::Err) if state[*src] == 0 => Some(state.clone()),
        (MInput::FlushAll, MOutput::Ok) => Some(vec![0; state.len()]),
        _ => None,
    }
}

/// Checks a history over `nr_keys` keys with at most `max_steps` search
/// steps.
pub fn check_multikey(ops: &[MOp], nr_keys: usize, max_steps: u64) -> MVerdict {
    let mut ops: Vec<&MOp> = ops.iter().collect();
    ops.sort_by_key(|o| (o.call, o.ret));
    let n = ops.len();
    // Intern every value written (a value read but never written stays
    // unknown and can match nothing).
    let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
    for o in &ops {
        if let MInput::Mset(p) | MInput::Msetnx(p) = &o.input {
            for (_, v) in p {
                let next = ids.len() as u32 + 1;
                ids.entry(v.clone()).or_insert(next);
            }
        }
    }
    let ret = |o: &MOp| o.ret.max(o.call);
    let words = n.div_ceil(64).max(1);
    let mut done = vec![0u64; words];
    let is_done = |d: &[u64], i: usize| d[i / 64] >> (i % 64) & 1 == 1;
    let mut state: State = vec![0; nr_keys];
    // Stack of (op index, previous state).
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut best = 0;
    let mut steps = 0u64;
    // Candidate to try next from the current configuration.
    let mut from = 0usize;
    loop {
        if stack.len() == n {
            return MVerdict::Linearizable;
        }
        steps += 1;
        if steps > max_steps {
            return MVerdict::Inconclusive;
        }
        // The earliest return among the operations not linearized.
        let mut min_ret = u64::MAX;
        for (i, o) in ops.iter().enumerate() {
            if o.call > min_ret {
                break;
            }
            if !is_done(&done, i) {
                min_ret = min_ret.min(ret(o));
            }
        }
        let mut advanced = false;
        let mut i = from;
        while i < n && ops[i].call <= min_ret {
            if !is_done(&done, i) {
                if let Some(next) = step(&state, &ops[i].input, &ops[i].output, &ids) {
                    let mut d = done.clone();
                    d[i / 64] |= 1 << (i % 64);
                    if seen.insert((d.clone(), next.clone())) {
                        stack.push((i, std::mem::replace(&mut state, next)));
                        done = d;
                        best = best.max(stack.len());
                        from = 0;
                        advanced = true;
                        break;
                    }
                }
            }
            i += 1;
        }
        if advanced {
            continue;
        }
        // Backtrack: undo the last operation and try the ones after it.
        let Some((last, prev)) = stack.pop() else {
            return MVerdict::NotLinearizable { placed: best };
        };
        done[last / 64] &= !(1 << (last % 64));
        state = prev;
        from = last + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, input: MInput, output: MOutput, call: u64, ret: u64) -> MOp {
        MOp {
            client,
            input,
            output,
            call,
            ret,
        }
    }

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    const STEPS: u64 = 1_000_000;

    /// What a store without cross-shard atomicity lets a reader see: an
    /// MGET during an MSET of both keys returns the new value of one and the
    /// old of the other. Each key's own history is linearizable; the
    /// multi-key checker rejects it.
    #[test]
    fn torn_mset_is_rejected() {
        let h = vec![
            op(
                0,
                MInput::Mset(vec![(0, v("a1")), (1, v("b1"))]),
                MOutput::Ok,
                0,
                10,
            ),
            op(
                0,
                MInput::Mset(vec![(0, v("a2")), (1, v("b2"))]),
                MOutput::Ok,
                20,
                40,
            ),
            op(
                1,
                MInput::Mget(vec![0, 1]),
                MOutput::Values(vec![Some(v("a2")), Some(v("b1"))]),
                25,
                35,
            ),
        ];
        assert_eq!(
            check_multikey(&h, 2, STEPS),
            MVerdict::NotLinearizable { placed: 2 }
        );
        // The same read, untorn, is fine either way.
        let mut ok = h.clone();
        ok[2].output = MOutput::Values(vec![Some(v("a2")), Some(v("b2"))]);
        assert_eq!(check_multikey(&ok, 2, STEPS), MVerdict::Linearizable);
        ok[2].output = MOutput::Values(vec![Some(v("a1")), Some(v("b1"))]);
        assert_eq!(check_multikey(&ok, 2, STEPS), MVerdict::Linearizable);
    }

    /// RENAME seen as "both keys" or "neither" is rejected; MSETNX that set
    /// only some keys is rejected.
    #[test]
    fn half_rename_and_partial_msetnx_are_rejected() {
        let set = op(0, MInput::Mset(vec![(0, v("x"))]), MOutput::Ok, 0, 1);
        let rename = op(0, MInput::Rename(0, 1), MOutput::Ok, 10, 20);
        let both = op(
            1,
            MInput::Mget(vec![0, 1]),
            MOutput::Values(vec![Some(v("x")), Some(v("x"))]),
            12,
            18,
        );
        let neither = op(
            1,
            MInput::Mget(vec![0, 1]),
            MOutput::Values(vec![None, None]),
            12,
            18,
        );
        assert!(matches!(
            check_multikey(&[set.clone(), rename.clone(), both], 2, STEPS),
            MVerdict::NotLinearizable { .. }
        ));
        assert!(matches!(
            check_multikey(&[set.clone(), rename.clone(), neither], 2, STEPS),
            MVerdict::NotLinearizable { .. }
        ));
        let moved = op(
            1,
            MInput::Mget(vec![0, 1]),
            MOutput::Values(vec![None, Some(v("x"))]),
            12,
            18,
        );
        assert_eq!(
            check_multikey(&[set.clone(), rename, moved], 2, STEPS),
            MVerdict::Linearizable
        );
        // MSETNX answered 1 although key 0 existed before it.
        let nx = op(
            0,
            MInput::Msetnx(vec![(0, v("y")), (1, v("z"))]),
            MOutput::Int(1),
            5,
            6,
        );
        assert!(matches!(
            check_multikey(&[set.clone(), nx], 2, STEPS),
            MVerdict::NotLinearizable { .. }
        ));
        // MSETNX 0 then a read that sees its value for key 1.
        let nx0 = op(
            0,
            MInput::Msetnx(vec![(0, v("y")), (1, v("z"))]),
            MOutput::Int(0),
            5,
            6,
        );
        let read = op(
            1,
            MInput::Mget(vec![1]),
            MOutput::Values(vec![Some(v("z"))]),
            7,
            8,
        );
        assert!(matches!(
            check_multikey(&[set, nx0, read], 2, STEPS),
            MVerdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn concurrent_writes_may_order_either_way() {
        let h = vec![
            op(
                0,
                MInput::Mset(vec![(0, v("a")), (1, v("a"))]),
                MOutput::Ok,
                0,
                10,
            ),
            op(
                1,
                MInput::Mset(vec![(0, v("b")), (1, v("b"))]),
                MOutput::Ok,
                1,
                9,
            ),
            op(2, MInput::Del(vec![0, 1, 2]), MOutput::Int(2), 2, 8),
            op(
                3,
                MInput::Mget(vec![0, 1]),
                MOutput::Values(vec![Some(v("a")), Some(v("a"))]),
                11,
                12,
            ),
        ];
        assert_eq!(check_multikey(&h, 3, STEPS), MVerdict::Linearizable);
    }

    /// A FLUSHALL that emptied one key of an MSET and not the other (a
    /// flush racing the MSET's apply on two shards) is rejected.
    #[test]
    fn flush_through_half_an_mset_is_rejected() {
        let h = vec![
            op(
                0,
                MInput::Mset(vec![(0, v("a")), (1, v("b"))]),
                MOutput::Ok,
                0,
                10,
            ),
            op(1, MInput::FlushAll, MOutput::Ok, 1, 9),
            op(
                2,
                MInput::Mget(vec![0, 1]),
                MOutput::Values(vec![None, Some(v("b"))]),
                11,
                12,
            ),
        ];
        assert!(matches!(
            check_multikey(&h, 2, STEPS),
            MVerdict::NotLinearizable { .. }
        ));
    }
}
