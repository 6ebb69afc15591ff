//! The string commands: GET, SET (its options are parsed in `expiry`), MGET,
//! MSET, INCR/DECR/INCRBY/DECRBY, INCRBYFLOAT, STRLEN, SETNX, GETSET, GETDEL,
//! GETRANGE/SUBSTR, SETRANGE, APPEND, LCS. Each is a table row and a handler
//! that reads its arguments and queues store ops into the connection's run
//! (the batched path in [`super`]); none writes a reply itself: the run's
//! sink does, in the [`Style`] queued here. MSET and MGET whose keys live on
//! several shards are handed to `multikey` (one transaction) instead.
//!
//! The read-modify-write commands (GETDEL, SETRANGE, APPEND, INCRBYFLOAT)
//! are store ops ([`OpKind`]) executed on the key's owner shard, so each is
//! atomic like INCR. LCS reads its two keys with two GETs in one run (its
//! keys may live on two shards: each read is atomic, the pair is not a
//! snapshot across shards, unlike a cross-shard MGET's) and [`lcs_reply`]
//! computes the answer with Redis's dynamic programme, bounded as Redis 7.0.15 bounds it: a table
//! (4 bytes per cell) over `--max-value-len` bytes is refused with Redis's
//! proto-max-bulk-len error. Touches no socket and no store.

use crate::op::{parse_i64, OpError, OpKind};
use crate::protocol::resp::{self, Proto};

use super::run::LcsOpts;
use super::table::{
    arg, is_word, many, oneof, opt, token, CmdError, Effect, Parse, Spec, ERR_NOT_INTEGER,
    ERR_SYNTAX, KEY, VALUE,
};
use super::{multikey, Connection, Style};

/// A row of this family: a batched key command with one key at position 1.
const fn key_cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    summary: &'static str,
    args: &'static [super::table::Arg],
    handler: super::table::Handler,
) -> Spec {
    Spec::new(
        name,
        arity,
        flags,
        (1, 1, 1),
        "string",
        summary,
        args,
        true,
        handler,
    )
}

const WRITE_FAST: &[&str] = &["write", "denyoom", "fast"];

/// The string family's rows; GET and SET first (lookup is a linear scan).
pub(crate) static COMMANDS: &[Spec] = &[
    key_cmd(
        "get",
        2,
        &["readonly", "fast"],
        "Returns the string value of a key.",
        &[KEY],
        get,
    ),
    key_cmd(
        "set",
        -3,
        &["write", "denyoom"],
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        &[
            KEY,
            VALUE,
            opt(oneof("condition", &[token("nx", "NX"), token("xx", "XX")])),
            opt(token("get", "GET")),
            super::expiry::SET_EXPIRATION,
        ],
        super::expiry::set,
    ),
    Spec {
        last_key: -1,
        ..key_cmd(
            "mget",
            -2,
            &["readonly", "fast"],
            "Atomically returns the string values of one or more keys.",
            &[many(KEY)],
            mget,
        )
    },
    Spec {
        last_key: -1,
        step: 2,
        ..key_cmd(
            "mset",
            -3,
            &["write", "denyoom"],
            "Atomically creates or modifies the string values of one or more keys.",
            &[many(oneof("data", &[KEY, VALUE]))],
            mset,
        )
    },
    key_cmd(
        "incr",
        2,
        WRITE_FAST,
        "Increments the integer value of a key by one.",
        &[KEY],
        incr,
    ),
    key_cmd(
        "decr",
        2,
        WRITE_FAST,
        "Decrements the integer value of a key by one.",
        &[KEY],
        decr,
    ),
    key_cmd(
        "incrby",
        3,
        WRITE_FAST,
        "Increments the integer value of a key by a number.",
        &[KEY, arg("increment", "integer")],
        incrby,
    ),
    key_cmd(
        "decrby",
        3,
        WRITE_FAST,
        "Decrements the integer value of a key by a number.",
        &[KEY, arg("decrement", "integer")],
        decrby,
    ),
    key_cmd(
        "strlen",
        2,
        &["readonly", "fast"],
        "Returns the length of a string value.",
        &[KEY],
        strlen,
    ),
    key_cmd(
        "setnx",
        3,
        WRITE_FAST,
        "Set the string value of a key only when the key doesn't exist.",
        &[KEY, VALUE],
        setnx,
    ),
    key_cmd(
        "getset",
        3,
        WRITE_FAST,
        "Returns the previous string value of a key after setting it to a new value.",
        &[KEY, VALUE],
        getset,
    ),
    key_cmd(
        "getdel",
        2,
        &["write", "fast"],
        "Returns the string value of a key after deleting the key.",
        &[KEY],
        getdel,
    ),
    key_cmd(
        "getrange",
        4,
        &["readonly"],
        "Returns a substring of the string stored at a key.",
        &[KEY, arg("start", "integer"), arg("end", "integer")],
        getrange,
    ),
    key_cmd(
        "substr",
        4,
        &["readonly"],
        "Returns a substring from a string value.",
        &[KEY, arg("start", "integer"), arg("end", "integer")],
        getrange,
    ),
    key_cmd(
        "setrange",
        4,
        &["write", "denyoom"],
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        &[KEY, arg("offset", "integer"), VALUE],
        setrange,
    ),
    key_cmd(
        "append",
        3,
        &["write", "denyoom", "fast"],
        "Appends a string to the value of a key. Creates the key if it doesn't exist.",
        &[KEY, VALUE],
        append,
    ),
    key_cmd(
        "incrbyfloat",
        3,
        &["write", "denyoom", "fast"],
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        &[KEY, arg("increment", "double")],
        incrbyfloat,
    ),
    Spec {
        last_key: 2,
        ..key_cmd(
            "lcs",
            -3,
            &["readonly"],
            "Finds the longest common substring.",
            &[
                arg("key1", "key"),
                arg("key2", "key"),
                opt(token("len", "LEN")),
                opt(token("idx", "IDX")),
                opt(arg("min-match-len", "integer")),
                opt(token("withmatchlen", "WITHMATCHLEN")),
            ],
            lcs,
        )
    },
];

/// GET key
fn get(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    queue_get(conn, key);
    Ok(Effect::Continue)
}

/// Queues GET of `key` (a range of the read buffer): the handler's and the
/// fast lane's (`fast`) one way to do it.
#[inline]
pub(crate) fn queue_get(conn: &mut Connection<'_>, key: std::ops::Range<usize>) {
    conn.run.op(OpKind::Get, key, 0..0);
    conn.run.plan(Style::Bulk, 1);
}

/// MGET key [key ...]
fn mget(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let keys = p.rest();
    if keys.is_empty() {
        return Err(p.wrong_arity());
    }
    if multikey::spans_shards(conn, p, keys, 1) {
        return multikey::queue(conn, p, multikey::Kind::Mget, keys, 1);
    }
    for k in keys {
        conn.run.op(OpKind::Get, k.clone(), 0..0);
    }
    conn.run.plan(Style::Array, keys.len());
    Ok(Effect::Continue)
}

/// MSET key value [key value ...]
fn mset(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let pairs = p.rest();
    if pairs.is_empty() || pairs.len() % 2 != 0 {
        return Err(p.wrong_arity());
    }
    if multikey::spans_shards(conn, p, pairs, 2) {
        return multikey::queue(conn, p, multikey::Kind::Mset, pairs, 2);
    }
    for kv in pairs.chunks_exact(2) {
        conn.run.op(OpKind::Put, kv[0].clone(), kv[1].clone());
    }
    conn.run.plan(Style::AllOk, pairs.len() / 2);
    Ok(Effect::Continue)
}

/// Queues an INCRBY of `delta` on the next (and last) argument.
fn queue_incr(
    conn: &mut Connection<'_>,
    p: &mut Parse<'_>,
    delta: i64,
) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.incr_by(key, delta);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// INCR key
fn incr(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_incr(conn, p, 1)
}

/// DECR key
fn decr(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_incr(conn, p, -1)
}

/// INCRBY key increment
fn incrby(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let delta = p.next_bytes()?;
    p.finish()?;
    let delta = parse_i64(delta).ok_or(CmdError::msg(ERR_NOT_INTEGER))?;
    conn.run.incr_by(key, delta);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// DECRBY key decrement (Redis refuses to negate `i64::MIN`).
fn decrby(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let delta = p.next_bytes()?;
    p.finish()?;
    let delta = parse_i64(delta).ok_or(CmdError::msg(ERR_NOT_INTEGER))?;
    let delta = delta
        .checked_neg()
        .ok_or(CmdError::msg("ERR decrement would overflow"))?;
    conn.run.incr_by(key, delta);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// STRLEN key
fn strlen(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::Strlen, key, 0..0);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// SETNX key value
fn setnx(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let value = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::PutIfAbsent, key, value);
    conn.run.plan(Style::Flag, 1);
    Ok(Effect::Continue)
}

/// GETSET key value
fn getset(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let value = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::GetSet, key, value);
    conn.run.plan(Style::Bulk, 1);
    Ok(Effect::Continue)
}

/// GETDEL key
fn getdel(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::GetDel, key, 0..0);
    conn.run.plan(Style::Bulk, 1);
    Ok(Effect::Continue)
}

/// GETRANGE key start end (and SUBSTR, its old name)
fn getrange(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let start = p.next_int()?;
    let end = p.next_int()?;
    p.finish()?;
    let mut arg = [0u8; 16];
    arg[..8].copy_from_slice(&start.to_le_bytes());
    arg[8..].copy_from_slice(&end.to_le_bytes());
    conn.run.op_bytes(OpKind::GetRange, key, &arg);
    conn.run.plan(Style::Bulk, 1);
    Ok(Effect::Continue)
}

/// SETRANGE key offset value
fn setrange(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let offset = p.next_int()?;
    let value = p.next_bytes()?;
    p.finish()?;
    if offset < 0 {
        return Err(CmdError::msg("ERR offset is out of range"));
    }
    conn.run
        .op_prefixed(OpKind::SetRange, key, &(offset as u64).to_le_bytes(), value);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// APPEND key value
fn append(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let value = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::Append, key, value);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// INCRBYFLOAT key increment (the store parses both numbers, as Redis).
fn incrbyfloat(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let incr = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::IncrByFloat, key, incr);
    conn.run.plan(Style::Bulk, 1);
    Ok(Effect::Continue)
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
fn lcs(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let a = p.next_range()?;
    let b = p.next_range()?;
    let mut opts = LcsOpts {
        len: false,
        idx: false,
        with_match_len: false,
        min_match_len: 0,
    };
    while let Some(word) = p.try_next_bytes() {
        if is_word(word, "idx") {
            opts.idx = true;
        } else if is_word(word, "len") {
            opts.len = true;
        } else if is_word(word, "withmatchlen") {
            opts.with_match_len = true;
        } else if is_word(word, "minmatchlen") && p.remaining() > 0 {
            // Negative means 0; past u32 no range can be that long.
            opts.min_match_len = p.next_int()?.clamp(0, u32::MAX as i64) as u32;
        } else {
            return Err(CmdError::msg(ERR_SYNTAX));
        }
    }
    if opts.idx && opts.len {
        return Err(CmdError::msg(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    conn.run.op(OpKind::Get, a, 0..0);
    conn.run.op(OpKind::Get, b, 0..0);
    conn.run.plan(Style::Lcs(opts), 2);
    Ok(Effect::Continue)
}

/// The most bytes an LCS reply can take when values are at most
/// `max_value` bytes: its table is bounded to `max_value` bytes, so the
/// shorter string (and with it the LCS and its ranges) is at most
/// sqrt(max_value / 4) long.
pub(crate) fn lcs_worst_reply(max_value: usize) -> usize {
    let side = ((max_value / 4) as f64).sqrt() as usize + 1;
    // A range with WITHMATCHLEN: `*3 *2 :a :b *2 :c :d :n`, about 100 bytes.
    side.saturating_mul(100)
        .saturating_add(max_value.min(side) + 128)
}

/// LCS of `a` and `b`, written into `out` as `opts` asks, in Redis 7's
/// order and shapes (the IDX ranges from the end backwards). A table over
/// `limit` bytes is refused ([`OpError::LcsTooLarge`]) before anything is
/// allocated.
pub(crate) fn lcs_reply(
    out: &mut Vec<u8>,
    a: &[u8],
    b: &[u8],
    opts: LcsOpts,
    limit: usize,
    proto: Proto,
) -> Result<(), OpError> {
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen + 1).saturating_mul(blen + 1);
    if cells.saturating_mul(4) > limit {
        return Err(OpError::LcsTooLarge);
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    if opts.len && !opts.idx {
        resp::integer(out, total as i64);
        return Ok(());
    }
    // Walk back from the end, as Redis does, collecting the string and the
    // ranges (a: start..=end, b: start..=end).
    let mut result = vec![0u8; total as usize];
    let mut ranges: Vec<[usize; 4]> = Vec::new();
    let (mut i, mut j, mut idx) = (alen, blen, total as usize);
    let unset = alen;
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (unset, 0, 0, 0);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == unset {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != unset {
                emit = true;
            }
        }
        // Redis computes the length even with no range open (it is then
        // never used).
        let match_len = a_end.wrapping_sub(a_start).wrapping_add(1);
        if emit {
            if opts.min_match_len == 0 || match_len >= opts.min_match_len as usize {
                ranges.push([a_start, a_end, b_start, b_end]);
            }
            a_start = unset;
        }
    }
    if !opts.idx {
        resp::bulk(out, &result);
        return Ok(());
    }
    resp::map_header(out, 2, proto);
    resp::bulk(out, b"matches");
    resp::array_header(out, ranges.len());
    for [a0, a1, b0, b1] in ranges {
        resp::array_header(out, 2 + opts.with_match_len as usize);
        resp::array_header(out, 2);
        resp::integer(out, a0 as i64);
        resp::integer(out, a1 as i64);
        resp::array_header(out, 2);
        resp::integer(out, b0 as i64);
        resp::integer(out, b1 as i64);
        if opts.with_match_len {
            resp::integer(out, (a1 - a0 + 1) as i64);
        }
    }
    resp::bulk(out, b"len");
    resp::integer(out, total as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcs(a: &str, b: &str, opts: LcsOpts) -> String {
        let mut out = Vec::new();
        lcs_reply(
            &mut out,
            a.as_bytes(),
            b.as_bytes(),
            opts,
            1 << 20,
            Proto::Resp2,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    const PLAIN: LcsOpts = LcsOpts {
        len: false,
        idx: false,
        with_match_len: false,
        min_match_len: 0,
    };

    /// Redis's documented example (LCS ohmytext mynewtext).
    #[test]
    fn lcs_matches_redis_docs() {
        assert_eq!(lcs("ohmytext", "mynewtext", PLAIN), "$6\r\nmytext\r\n");
        let len = LcsOpts { len: true, ..PLAIN };
        assert_eq!(lcs("ohmytext", "mynewtext", len), ":6\r\n");
        let idx = LcsOpts {
            idx: true,
            min_match_len: 4,
            with_match_len: true,
            ..PLAIN
        };
        assert_eq!(
            lcs("ohmytext", "mynewtext", idx),
            "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n"
        );
        let mut out = Vec::new();
        let too_big = lcs_reply(
            &mut out,
            &[b'a'; 600],
            &[b'b'; 600],
            PLAIN,
            1 << 20,
            Proto::Resp2,
        );
        assert_eq!(too_big, Err(OpError::LcsTooLarge));
        assert!(out.is_empty());
        // The worst reply bound covers the largest table's reply.
        let side = 511;
        let (a, b) = ("ab".repeat(side / 2), "ba".repeat(side / 2));
        let idx = LcsOpts {
            idx: true,
            with_match_len: true,
            ..PLAIN
        };
        let n = lcs(&a, &b, idx).len();
        assert!(n < lcs_worst_reply(1 << 20), "{n}");
    }
}
