//! The database and keyspace commands: SWAPDB, MOVE, KEYS, SCAN,
//! RANDOMKEY, TYPE, TOUCH, UNLINK, OBJECT, DEBUG. Batched ones (TYPE, TOUCH,
//! UNLINK) queue ops like GET/DEL; the others check their arguments here,
//! leave a [`Pending`] request on the connection and answer through
//! [`finish`], which asks the owning shard (or every shard) through
//! [`Shard`](crate::shard::Shard)'s keyspace requests. Touches no socket and
//! no store.

use crate::op::OpError;
use crate::protocol::resp;
use crate::shard::keyspace::SCAN_END;
use crate::shard::{KeyspaceReply, KeyspaceReq};
use crate::store::{ObjectInfo, Policy};

use super::run::{push_op_error, REPLY_TOO_LARGE};
use super::table::{arg, is_word, opt, CmdError, Effect, Parse, Spec, ERR_SYNTAX, KEY};
use super::Connection;

/// The shard bits' place in a SCAN cursor: `shard << 48 | position >> 16`.
const CURSOR_SHARD_SHIFT: u32 = 48;
/// Positions in a cursor are kept to a multiple of 2^16 (a table slot's
/// worth at the largest capacity a shard can reach).
const CURSOR_POS_SHIFT: u32 = 16;
/// Longest DEBUG SLEEP honoured (it holds only the connection that sent it,
/// not the shard; a longer request sleeps this long).
const MAX_DEBUG_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// Redis 7's OBJECT HELP.
const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// DEBUG HELP: the subcommands corekv has.
const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "OBJECT <key>",
    "    Show low level info about the <key> and associated value.",
    "SLEEP <seconds>",
    "    Stop the connection for <seconds> (decimals allowed; at most 60).",
    "HELP",
    "    Prints this help.",
];

/// A checked keyspace command waiting for its shard(s).
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// SWAPDB a b.
    SwapDb(u16, u16),
    /// SCAN from a node cursor.
    Scan {
        /// The cursor.
        cursor: u64,
        /// COUNT.
        count: usize,
        /// MATCH (`None`: every key).
        pattern: Option<Vec<u8>>,
        /// TYPE: whether it names the string type (`None`: no filter).
        strings: Option<bool>,
    },
    /// KEYS pattern.
    Keys(Vec<u8>),
    /// RANDOMKEY.
    RandomKey,
    /// OBJECT ENCODING/FREQ/IDLETIME/REFCOUNT key, DEBUG OBJECT key.
    Object(ObjectSub, Vec<u8>),
    /// DEBUG SLEEP.
    Sleep(std::time::Duration),
}

/// Which figure OBJECT reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectSub {
    Encoding,
    Freq,
    IdleTime,
    RefCount,
    /// DEBUG OBJECT: the whole line.
    Debug,
}

/// Redis's `getIntFromObjectOrReply`: a decimal that fits a C `int`, else
/// `msg` (Redis's default: not an integer or out of range).
fn c_int(bytes: &[u8], msg: &'static str) -> Result<i64, CmdError> {
    crate::op::parse_i64(bytes)
        .filter(|&n| i32::try_from(n).is_ok())
        .ok_or(CmdError::msg(msg))
}

const ERR_NOT_INT: &str = "ERR value is not an integer or out of range";
const ERR_DB_RANGE: &str = "ERR DB index is out of range";

/// The keyspace family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    Spec {
        name: "swapdb",
        arity: 3,
        flags: &["write", "fast"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "Swaps two databases (every shard of the node, O(1) each).",
        args: &[arg("index1", "integer"), arg("index2", "integer")],
        batched: false,
        handler: swapdb,
    },
    Spec {
        name: "move",
        arity: 3,
        flags: &["write", "fast"],
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Moves a key to another database.",
        args: &[KEY, arg("db", "integer")],
        batched: false,
        handler: move_cmd,
    },
    Spec {
        name: "keys",
        arity: 2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "generic",
        summary: "Returns all key names that match a pattern.",
        args: &[arg("pattern", "pattern")],
        batched: false,
        handler: keys,
    },
    Spec {
        name: "scan",
        arity: -2,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "generic",
        summary: "Iterates over the key names in the database.",
        args: &[
            arg("cursor", "integer"),
            opt(arg("pattern", "pattern")),
            opt(arg("count", "integer")),
            opt(arg("type", "string")),
        ],
        batched: false,
        handler: scan,
    },
    Spec {
        name: "randomkey",
        arity: 1,
        flags: &["readonly"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "generic",
        summary: "Returns a random key name from the database.",
        args: &[],
        batched: false,
        handler: randomkey,
    },
    Spec {
        name: "object",
        arity: -2,
        flags: &[],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "generic",
        summary: "OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key, OBJECT HELP.",
        args: &[],
        batched: false,
        handler: object,
    },
    Spec {
        name: "debug",
        arity: -2,
        flags: &["admin", "noscript", "loading", "stale"],
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "server",
        summary: "DEBUG OBJECT key | SLEEP seconds | HELP.",
        args: &[],
        batched: false,
        handler: debug,
    },
];

/// Redis's `parseScanCursorOrReply`: `strtoul` with no leading space and
/// nothing after the digits (a sign is accepted, as strtoul does; "" is 0).
fn parse_cursor(b: &[u8]) -> Option<u64> {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if b.is_empty() {
        return Some(0);
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { n.wrapping_neg() } else { n })
}

/// KEYS pattern
fn keys(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let pattern = p.next_bytes()?;
    p.finish()?;
    conn.pending = Some(Pending::Keys(pattern.to_vec()));
    Ok(Effect::Keyspace)
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
fn scan(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let cursor = parse_cursor(p.next_bytes()?).ok_or(CmdError::msg("ERR invalid cursor"))?;
    let (mut count, mut pattern, mut strings) = (10usize, None, None);
    while p.remaining() > 0 {
        let opt = p.next_bytes()?;
        if p.remaining() == 0 {
            return Err(CmdError::msg(ERR_SYNTAX));
        }
        let value = p.next_bytes()?;
        if is_word(opt, "count") {
            let n = crate::op::parse_i64(value).ok_or(CmdError::msg(ERR_NOT_INT))?;
            if n < 1 {
                return Err(CmdError::msg(ERR_SYNTAX));
            }
            count = n.min(1 << 20) as usize;
        } else if is_word(opt, "match") {
            pattern = (value != b"*").then(|| value.to_vec());
        } else if is_word(opt, "type") {
            strings = Some(is_word(value, "string"));
        } else {
            return Err(CmdError::msg(ERR_SYNTAX));
        }
    }
    conn.pending = Some(Pending::Scan {
        cursor,
        count,
        pattern,
        strings,
    });
    Ok(Effect::Keyspace)
}

/// RANDOMKEY
fn randomkey(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    p.finish()?;
    conn.pending = Some(Pending::RandomKey);
    Ok(Effect::Keyspace)
}

/// OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key | HELP
fn object(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sub = p.next_bytes()?;
    let rest = p.remaining();
    if is_word(sub, "help") {
        if rest != 0 {
            return Err(CmdError::wrong_arity("object|help"));
        }
        resp::array_header(&mut conn.out, OBJECT_HELP.len());
        for line in OBJECT_HELP {
            resp::simple(&mut conn.out, line);
        }
        return Ok(Effect::Continue);
    }
    let which = [
        ("encoding", ObjectSub::Encoding),
        ("freq", ObjectSub::Freq),
        ("idletime", ObjectSub::IdleTime),
        ("refcount", ObjectSub::RefCount),
    ]
    .into_iter()
    .find(|(name, _)| is_word(sub, name));
    let Some((name, which)) = which else {
        return Err(CmdError::unknown_subcommand(sub, "OBJECT"));
    };
    if rest != 1 {
        return Err(CmdError::wrong_arity(&format!("object|{name}")));
    }
    let key = p.next_bytes()?;
    conn.pending = Some(Pending::Object(which, key.to_vec()));
    Ok(Effect::Keyspace)
}

/// DEBUG OBJECT key | SLEEP seconds | HELP
fn debug(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sub = p.next_bytes()?;
    let rest = p.remaining();
    if is_word(sub, "help") && rest == 0 {
        resp::array_header(&mut conn.out, DEBUG_HELP.len());
        for line in DEBUG_HELP {
            resp::simple(&mut conn.out, line);
        }
        return Ok(Effect::Continue);
    }
    if is_word(sub, "object") && rest == 1 {
        let key = p.next_bytes()?;
        conn.pending = Some(Pending::Object(ObjectSub::Debug, key.to_vec()));
        return Ok(Effect::Keyspace);
    }
    if is_word(sub, "sleep") && rest == 1 {
        // Redis reads the time with strtod and no error check: garbage is 0.
        let secs = std::str::from_utf8(p.next_bytes()?)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(0.0);
        let d = std::time::Duration::from_secs_f64(secs.min(MAX_DEBUG_SLEEP.as_secs_f64()));
        conn.pending = Some(Pending::Sleep(d));
        return Ok(Effect::Keyspace);
    }
    Err(CmdError(
        format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(sub)
        )
        .into(),
    ))
}

/// SELECT index: databases 0..`--databases`; in cluster mode (`--cluster`)
/// only 0, with Redis Cluster's error.
pub(crate) fn select_index(conn: &Connection<'_>, bytes: &[u8]) -> Result<u16, CmdError> {
    let index = c_int(bytes, ERR_NOT_INT)?;
    if conn.shard.cluster_mode() && index != 0 {
        return Err(CmdError::msg("ERR SELECT is not allowed in cluster mode"));
    }
    db_index(conn, index, ERR_DB_RANGE)
}

/// `index` as a database of this node, else `msg`.
fn db_index(conn: &Connection<'_>, index: i64, msg: &'static str) -> Result<u16, CmdError> {
    if index < 0 || index >= conn.shard.node.databases() as i64 {
        return Err(CmdError::msg(msg));
    }
    Ok(index as u16)
}

/// SWAPDB index1 index2
fn swapdb(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    if conn.shard.cluster_mode() {
        return Err(CmdError::msg("ERR SWAPDB is not allowed in cluster mode"));
    }
    let a = c_int(p.next_bytes()?, "ERR invalid first DB index")?;
    let b = c_int(p.next_bytes()?, "ERR invalid second DB index")?;
    p.finish()?;
    let a = db_index(conn, a, ERR_DB_RANGE)?;
    let b = db_index(conn, b, ERR_DB_RANGE)?;
    conn.pending = Some(Pending::SwapDb(a, b));
    Ok(Effect::Keyspace)
}

/// MOVE key db
fn move_cmd(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    if conn.shard.cluster_mode() {
        return Err(CmdError::msg("ERR MOVE is not allowed in cluster mode"));
    }
    let key = p.next_bytes()?;
    let to = c_int(p.next_bytes()?, ERR_NOT_INT)?;
    p.finish()?;
    let to = db_index(conn, to, ERR_DB_RANGE)?;
    if to == conn.db {
        return Err(CmdError::msg(
            "ERR source and destination objects are the same",
        ));
    }
    // A transaction over (db, key) and (to, key) (`multikey`): atomic with
    // the cross-shard commands' intents on either.
    Ok(super::multikey::move_key(conn, key, to))
}

/// Answers the pending keyspace command (after asking its shard or shards).
pub(crate) async fn finish(conn: &mut Connection<'_>) {
    let Some(pending) = conn.pending.take() else {
        return;
    };
    let db = conn.db;
    let shard = conn.shard;
    match pending {
        // Under the node-wide barrier (`shard::txn`): no cross-shard
        // transaction sees one shard swapped and another not.
        Pending::SwapDb(a, b) => match shard.with_barrier(shard.swap_db(a, b)).await {
            Ok(()) => conn.out.extend_from_slice(b"+OK\r\n"),
            Err(e) => fail(conn, e),
        },
        Pending::Scan {
            cursor,
            count,
            pattern,
            strings,
        } => {
            let nr = shard.nr_shards as u64;
            let mut at = cursor >> CURSOR_SHARD_SHIFT;
            let mut from = ((cursor & ((1 << CURSOR_SHARD_SHIFT) - 1)) as u128) << CURSOR_POS_SHIFT;
            let mut keys = Vec::new();
            // One bounded step per shard, on to the next shard while the
            // page is short of COUNT; past the last shard (also a cursor
            // corekv never returned): done.
            while at < nr && keys.len() < count {
                let req = KeyspaceReq::Scan {
                    db,
                    from,
                    count: count - keys.len(),
                    pattern: pattern.clone(),
                    strings,
                };
                match shard.keyspace_on(at as usize, req).await {
                    KeyspaceReply::Scan { keys: k, next } => {
                        keys.extend(k);
                        from = next;
                    }
                    KeyspaceReply::Err(e) => return fail(conn, e),
                    _ => return fail(conn, OpError::Unavailable),
                }
                if from < SCAN_END {
                    break;
                }
                at += 1;
                from = 0;
            }
            let next = if at >= nr {
                0
            } else {
                at << CURSOR_SHARD_SHIFT | (from >> CURSOR_POS_SHIFT) as u64
            };
            let out = &mut conn.out;
            resp::array_header(out, 2);
            resp::bulk(out, next.to_string().as_bytes());
            resp::array_header(out, keys.len());
            for k in &keys {
                resp::bulk(out, k);
            }
        }
        Pending::Keys(pattern) => {
            let max_bytes = conn.limits.max_reply_bytes;
            let replies = shard
                .keyspace_all(KeyspaceReq::Keys {
                    db,
                    pattern,
                    max_bytes,
                })
                .await;
            let mut all: Vec<Vec<u8>> = Vec::new();
            let mut bytes = 0usize;
            for r in replies {
                match r {
                    KeyspaceReply::Keys(Some(k)) => {
                        bytes += k.iter().map(|k| k.len() + 16).sum::<usize>();
                        all.extend(k);
                    }
                    KeyspaceReply::Keys(None) => bytes = usize::MAX,
                    KeyspaceReply::Err(e) => return fail(conn, e),
                    _ => return fail(conn, OpError::Unavailable),
                }
            }
            if bytes > max_bytes {
                conn.shard.count_protocol_error();
                conn.out.extend_from_slice(REPLY_TOO_LARGE);
                return;
            }
            resp::array_header(&mut conn.out, all.len());
            for k in &all {
                resp::bulk(&mut conn.out, k);
            }
        }
        Pending::RandomKey => {
            let key = random_key(conn, db).await;
            match key {
                Ok(Some(k)) => resp::bulk(&mut conn.out, &k),
                Ok(None) => resp::null(&mut conn.out, conn.proto),
                Err(e) => fail(conn, e),
            }
        }
        Pending::Object(which, key) => {
            let Some(owner) = shard.owner_shard(&key) else {
                return fail(conn, OpError::Unavailable);
            };
            let info = match shard
                .keyspace_on(owner, KeyspaceReq::Object { db, key })
                .await
            {
                KeyspaceReply::Object(info) => info,
                KeyspaceReply::Err(e) => return fail(conn, e),
                _ => return fail(conn, OpError::Unavailable),
            };
            object_reply(conn, which, info);
        }
        Pending::Sleep(d) => {
            if !d.is_zero() {
                glommio::timer::sleep(d).await;
            }
            conn.out.extend_from_slice(b"+OK\r\n");
        }
    }
}

/// A random key of database `db` on this node: a shard chosen with
/// probability proportional to its keys there (as published), then a
/// random key of that shard; the other shards in turn if it had none left.
async fn random_key(conn: &Connection<'_>, db: u16) -> Result<Option<Vec<u8>>, OpError> {
    let shard = conn.shard;
    shard.publish();
    let counts = shard.node.db_keys_per_shard(db as usize);
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Ok(None);
    }
    let mut r = next_random() % total;
    let mut first = 0;
    for (i, &n) in counts.iter().enumerate() {
        if r < n {
            first = i;
            break;
        }
        r -= n;
    }
    for k in 0..counts.len() {
        let s = (first + k) % counts.len();
        match shard.keyspace_on(s, KeyspaceReq::RandomKey { db }).await {
            KeyspaceReply::Key(Some(key)) => return Ok(Some(key)),
            KeyspaceReply::Key(None) => continue,
            KeyspaceReply::Err(e) => return Err(e),
            _ => return Err(OpError::Unavailable),
        }
    }
    Ok(None)
}

/// A thread-local xorshift64*, seeded from the clock: RANDOMKEY's choice
/// of shard (not a security matter).
fn next_random() -> u64 {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(
            crate::store::unix_now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// Redis's refcount of a string value: shared integers (0..10000, when no
/// maxmemory or a policy other than LRU/LFU) report `INT_MAX`.
fn refcount(conn: &Connection<'_>, info: &ObjectInfo, value_is_small_int: bool) -> i64 {
    let policy = conn.shard.node.policy();
    let lru_lfu = matches!(
        policy,
        Policy::AllKeysLru | Policy::VolatileLru | Policy::AllKeysLfu | Policy::VolatileLfu
    );
    let shared = value_is_small_int
        && info.encoding == "int"
        && (conn.shard.node.max_memory() == 0 || !lru_lfu);
    if shared {
        i32::MAX as i64
    } else {
        1
    }
}

/// The reply of OBJECT `which` (or DEBUG OBJECT) for a key's figures.
fn object_reply(conn: &mut Connection<'_>, which: ObjectSub, info: Option<ObjectInfo>) {
    let Some(info) = info else {
        if which == ObjectSub::Debug {
            conn.shard.count_protocol_error();
            resp::error(&mut conn.out, "ERR no such key");
        } else {
            resp::null(&mut conn.out, conn.proto);
        }
        return;
    };
    let small_int = info.small_int;
    let policy = conn.shard.node.policy();
    let lfu = matches!(policy, Policy::AllKeysLfu | Policy::VolatileLfu);
    match which {
        ObjectSub::Encoding => resp::bulk(&mut conn.out, info.encoding.as_bytes()),
        ObjectSub::RefCount => {
            let n = refcount(conn, &info, small_int);
            resp::integer(&mut conn.out, n)
        }
        ObjectSub::Freq if !lfu => {
            conn.shard.count_protocol_error();
            resp::error(
                &mut conn.out,
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                 Please note that when switching between policies at runtime LRU and LFU data \
                 will take some time to adjust.",
            );
        }
        ObjectSub::Freq => resp::integer(&mut conn.out, info.freq as i64),
        ObjectSub::IdleTime if lfu => {
            conn.shard.count_protocol_error();
            resp::error(
                &mut conn.out,
                "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note \
                 that when switching between policies at runtime LRU and LFU data will take \
                 some time to adjust.",
            );
        }
        ObjectSub::IdleTime => resp::integer(&mut conn.out, info.idle_secs as i64),
        ObjectSub::Debug => {
            let refcount = refcount(conn, &info, small_int);
            // The length Redis's RDB would give the value (without LZF
            // compression): an int in 1+1/2/4 bytes when it fits 32 bits,
            // else a length prefix and the bytes.
            let serialized = match info.int_value {
                Some(n) if i8::try_from(n).is_ok() => 2,
                Some(n) if i16::try_from(n).is_ok() => 3,
                Some(n) if i32::try_from(n).is_ok() => 5,
                _ => {
                    let len = info.value_len;
                    len + match len {
                        0..=63 => 1,
                        64..=16383 => 2,
                        _ => 5,
                    }
                }
            };
            let line = format!(
                "Value at:0x{:x} refcount:{refcount} encoding:{} serializedlength:{serialized} \
                 lru:{} lru_seconds_idle:{}",
                info.address,
                info.encoding,
                (crate::store::unix_now_ms() / 1000).wrapping_sub(info.idle_secs) & 0xFF_FFFF,
                info.idle_secs
            );
            resp::simple(&mut conn.out, &line);
        }
    }
}

/// An error reply for a failed request.
fn fail(conn: &mut Connection<'_>, e: crate::op::OpError) {
    conn.shard.count_protocol_error();
    push_op_error(&mut conn.out, e);
}
