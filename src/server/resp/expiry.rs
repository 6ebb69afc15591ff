//! The expiry command family: SETEX, PSETEX, GETEX, EXPIRE, PEXPIRE,
//! EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME, PEXPIRETIME and PERSIST, and
//! SET's expiry options (EX, PX, EXAT, PXAT, KEEPTTL, and GET combined with
//! NX/XX; SET's row stays in `strings`, its handler calls [`set`]) — parsed
//! with Redis 7's rules and error texts, down to the order in which it
//! checks things.
//!
//! Relative times are turned into absolute Unix milliseconds here, with the
//! connection shard's clock at parse time (Redis's command-time snapshot),
//! so the op that travels to the owner shard carries an absolute expiry
//! ([`ExpiryArg`]). Handlers queue ops like every batched key command;
//! this module touches no socket and no store.

use std::ops::Range;

use crate::op::{arg as flag, parse_i64, ExpiryArg, OpKind, TtlMode};
use crate::store::unix_now_ms;

use super::table::{
    arg, oneof, opt, token, Arg, CmdError, Effect, Parse, Spec, ERR_NOT_INTEGER, ERR_SYNTAX, KEY,
    VALUE,
};
use super::{Connection, Style};

/// A row of this family: a batched key command with one key at position 1.
const fn key_cmd(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    group: &'static str,
    summary: &'static str,
    args: &'static [Arg],
    handler: super::table::Handler,
) -> Spec {
    Spec::new(
        name,
        arity,
        flags,
        (1, 1, 1),
        group,
        summary,
        args,
        true,
        handler,
    )
}

const EXPIRE_CONDITION: Arg = opt(oneof(
    "condition",
    &[
        token("nx", "NX"),
        token("xx", "XX"),
        token("gt", "GT"),
        token("lt", "LT"),
    ],
));

/// SET's and GETEX's expiry option, for COMMAND DOCS.
pub(crate) const SET_EXPIRATION: Arg = opt(oneof(
    "expiration",
    &[
        arg("seconds", "integer"),
        arg("milliseconds", "integer"),
        arg("unix-time-seconds", "unix-time"),
        arg("unix-time-milliseconds", "unix-time"),
        token("keepttl", "KEEPTTL"),
    ],
));

const GETEX_EXPIRATION: Arg = opt(oneof(
    "expiration",
    &[
        arg("seconds", "integer"),
        arg("milliseconds", "integer"),
        arg("unix-time-seconds", "unix-time"),
        arg("unix-time-milliseconds", "unix-time"),
        token("persist", "PERSIST"),
    ],
));

const WRITE_FAST: &[&str] = &["write", "fast"];
const READ_FAST: &[&str] = &["readonly", "fast"];

/// The expiry family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    key_cmd(
        "setex",
        4,
        &["write", "denyoom"],
        "string",
        "Sets the string value and expiration time of a key (seconds).",
        &[KEY, arg("seconds", "integer"), VALUE],
        setex,
    ),
    key_cmd(
        "psetex",
        4,
        &["write", "denyoom"],
        "string",
        "Sets the string value and expiration time of a key (milliseconds).",
        &[KEY, arg("milliseconds", "integer"), VALUE],
        psetex,
    ),
    key_cmd(
        "getex",
        -2,
        WRITE_FAST,
        "string",
        "Returns the string value of a key after setting its expiration time.",
        &[KEY, GETEX_EXPIRATION],
        getex,
    ),
    key_cmd(
        "expire",
        -3,
        WRITE_FAST,
        "generic",
        "Sets the expiration time of a key in seconds.",
        &[KEY, arg("seconds", "integer"), EXPIRE_CONDITION],
        expire,
    ),
    key_cmd(
        "pexpire",
        -3,
        WRITE_FAST,
        "generic",
        "Sets the expiration time of a key in milliseconds.",
        &[KEY, arg("milliseconds", "integer"), EXPIRE_CONDITION],
        pexpire,
    ),
    key_cmd(
        "expireat",
        -3,
        WRITE_FAST,
        "generic",
        "Sets the expiration time of a key to a Unix timestamp.",
        &[KEY, arg("unix-time-seconds", "unix-time"), EXPIRE_CONDITION],
        expireat,
    ),
    key_cmd(
        "pexpireat",
        -3,
        WRITE_FAST,
        "generic",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        &[
            KEY,
            arg("unix-time-milliseconds", "unix-time"),
            EXPIRE_CONDITION,
        ],
        pexpireat,
    ),
    key_cmd(
        "ttl",
        2,
        READ_FAST,
        "generic",
        "Returns the expiration time in seconds of a key.",
        &[KEY],
        ttl,
    ),
    key_cmd(
        "pttl",
        2,
        READ_FAST,
        "generic",
        "Returns the expiration time in milliseconds of a key.",
        &[KEY],
        pttl,
    ),
    key_cmd(
        "expiretime",
        2,
        READ_FAST,
        "generic",
        "Returns the expiration time of a key as a Unix timestamp.",
        &[KEY],
        expiretime,
    ),
    key_cmd(
        "pexpiretime",
        2,
        READ_FAST,
        "generic",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        &[KEY],
        pexpiretime,
    ),
    key_cmd(
        "persist",
        2,
        WRITE_FAST,
        "generic",
        "Removes the expiration time of a key.",
        &[KEY],
        persist,
    ),
];

/// Redis's `invalid expire time in '<cmd>' command`.
fn invalid_expire(cmd: &str) -> CmdError {
    CmdError::from(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Which expiry option a SET or GETEX carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// The shard's clock, Unix ms, as Redis's `when` arithmetic wants it.
fn now_ms() -> i64 {
    unix_now_ms().min(i64::MAX as u64) as i64
}

/// Redis's getExpireMillisecondsOrReply: a positive count of seconds or
/// milliseconds, relative or absolute, as absolute Unix milliseconds.
fn expire_ms(text: &[u8], unit: Unit, now: i64, cmd: &str) -> Result<i64, CmdError> {
    let mut ms = parse_i64(text).ok_or(CmdError::msg(ERR_NOT_INTEGER))?;
    let secs = matches!(unit, Unit::Ex | Unit::ExAt);
    if ms <= 0 || (secs && ms > i64::MAX / 1000) {
        return Err(invalid_expire(cmd));
    }
    if secs {
        ms *= 1000;
    }
    if matches!(unit, Unit::Ex | Unit::Px) {
        // Redis adds and then looks for a wrapped (non-positive) result.
        ms = ms.wrapping_add(now);
    }
    if ms <= 0 {
        return Err(invalid_expire(cmd));
    }
    Ok(ms)
}

/// Redis's parseExtendedStringArgumentsOrReply for SET (`is_set`) or GETEX,
/// then the expiry's value: the flags and the absolute expiry (0: none).
fn extended(opts: &[&[u8]], is_set: bool, now: i64, cmd: &str) -> Result<(u8, i64), CmdError> {
    let mut flags = 0u8;
    let mut exp: Option<(Unit, usize)> = None;
    let mut j = 0;
    while j < opts.len() {
        let opt = opts[j];
        let is = |w: &str| opt.eq_ignore_ascii_case(w.as_bytes());
        let has_next = j + 1 < opts.len();
        // An expiry option may repeat itself but not follow another one,
        // KEEPTTL or PERSIST.
        let exp_ok = |u: Unit| {
            flags & (flag::KEEPTTL | flag::PERSIST) == 0 && exp.map_or(true, |(e, _)| e == u)
        };
        let unit = [
            ("ex", Unit::Ex),
            ("px", Unit::Px),
            ("exat", Unit::ExAt),
            ("pxat", Unit::PxAt),
        ]
        .iter()
        .find(|(w, _)| is(w))
        .map(|&(_, u)| u);
        if is_set && is("nx") && flags & flag::XX == 0 {
            flags |= flag::NX;
        } else if is_set && is("xx") && flags & flag::NX == 0 {
            flags |= flag::XX;
        } else if is_set && is("get") {
            flags |= flag::GET;
        } else if is_set && is("keepttl") && exp.is_none() {
            flags |= flag::KEEPTTL;
        } else if !is_set && is("persist") && exp.is_none() {
            flags |= flag::PERSIST;
        } else if let Some(u) = unit.filter(|&u| exp_ok(u) && has_next) {
            exp = Some((u, j + 1));
            j += 1;
        } else {
            return Err(CmdError::msg(ERR_SYNTAX));
        }
        j += 1;
    }
    let when = match exp {
        Some((unit, i)) => expire_ms(opts[i], unit, now, cmd)?,
        None => 0,
    };
    Ok((flags, when))
}

/// Queues a SET with `flags` and absolute expiry `when` (0: none). Plain
/// forms take the fast ops (PUT, PUT-if-absent/present, GETSET: the value
/// stays in the read buffer); the rest the extended SET op, whose value is
/// its argument and a copy of `value`. The fast lane (`fast`) queues a
/// plain SET through here too.
#[inline]
pub(crate) fn queue_set(
    conn: &mut Connection<'_>,
    key: Range<usize>,
    value: Range<usize>,
    value_bytes: &[u8],
    flags: u8,
    when: i64,
) {
    let plain = when == 0 && flags & flag::KEEPTTL == 0;
    let (op, style) = match (plain, flags & (flag::NX | flag::XX | flag::GET)) {
        (true, 0) => (OpKind::Put, Style::SetOk),
        (true, flag::NX) => (OpKind::PutIfAbsent, Style::SetOk),
        (true, flag::XX) => (OpKind::PutIfPresent, Style::SetOk),
        (true, flag::GET) => (OpKind::GetSet, Style::Bulk),
        _ => {
            let style = if flags & flag::GET != 0 {
                Style::Bulk
            } else {
                Style::SetOk
            };
            conn.run
                .op_arg(OpKind::Set, key, ExpiryArg { flags, when }, value_bytes);
            conn.run.plan(style, 1);
            return;
        }
    };
    conn.run.op(op, key, value);
    conn.run.plan(style, 1);
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]
pub(crate) fn set(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let value = p.next_range()?;
    let value_bytes = p.bytes_of(&value);
    let opts = p.rest_bytes();
    let (flags, when) = if opts.is_empty() {
        (0, 0)
    } else {
        extended(&opts, true, now_ms(), "set")?
    };
    queue_set(conn, key, value, value_bytes, flags, when);
    Ok(Effect::Continue)
}

/// SETEX / PSETEX key time value.
fn set_with(
    conn: &mut Connection<'_>,
    p: &mut Parse<'_>,
    millis: bool,
) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let time = p.next_bytes()?;
    let value = p.next_range()?;
    p.finish()?;
    let (unit, cmd) = if millis {
        (Unit::Px, "psetex")
    } else {
        (Unit::Ex, "setex")
    };
    let when = expire_ms(time, unit, now_ms(), cmd)?;
    let value_bytes = p.bytes_of(&value);
    queue_set(conn, key, value, value_bytes, 0, when);
    Ok(Effect::Continue)
}

/// SETEX key seconds value
fn setex(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    set_with(conn, p, false)
}

/// PSETEX key milliseconds value
fn psetex(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    set_with(conn, p, true)
}

/// GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]
fn getex(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let opts = p.rest_bytes();
    let (flags, when) = extended(&opts, false, now_ms(), "getex")?;
    conn.run
        .op_arg(OpKind::GetEx, key, ExpiryArg { flags, when }, b"");
    conn.run.plan(Style::Bulk, 1);
    Ok(Effect::Continue)
}

/// Which of the four EXPIRE commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpireCmd {
    Expire,
    PExpire,
    ExpireAt,
    PExpireAt,
}

impl ExpireCmd {
    fn name(self) -> &'static str {
        match self {
            ExpireCmd::Expire => "expire",
            ExpireCmd::PExpire => "pexpire",
            ExpireCmd::ExpireAt => "expireat",
            ExpireCmd::PExpireAt => "pexpireat",
        }
    }
}

/// Redis's expireGenericCommand up to the key lookup: options first, then
/// the integer, then overflow. The flags and the absolute expiry.
fn expire_arg(
    time: &[u8],
    opts: &[&[u8]],
    which: ExpireCmd,
    now: i64,
) -> Result<ExpiryArg, CmdError> {
    let mut flags = 0u8;
    for opt in opts {
        let bit = [
            ("nx", flag::NX),
            ("xx", flag::XX),
            ("gt", flag::GT),
            ("lt", flag::LT),
        ]
        .iter()
        .find(|(w, _)| opt.eq_ignore_ascii_case(w.as_bytes()))
        .map(|&(_, b)| b);
        match bit {
            Some(b) => flags |= b,
            None => {
                return Err(CmdError::from(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )))
            }
        }
    }
    if flags & flag::NX != 0 && flags & (flag::XX | flag::GT | flag::LT) != 0 {
        return Err(CmdError::msg(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if flags & flag::GT != 0 && flags & flag::LT != 0 {
        return Err(CmdError::msg(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let mut when = parse_i64(time).ok_or(CmdError::msg(ERR_NOT_INTEGER))?;
    if matches!(which, ExpireCmd::Expire | ExpireCmd::ExpireAt) {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return Err(invalid_expire(which.name()));
        }
        when *= 1000;
    }
    let base = match which {
        ExpireCmd::Expire | ExpireCmd::PExpire => now,
        ExpireCmd::ExpireAt | ExpireCmd::PExpireAt => 0,
    };
    if when > i64::MAX - base {
        return Err(invalid_expire(which.name()));
    }
    Ok(ExpiryArg {
        flags,
        when: when + base,
    })
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX|XX|GT|LT]
fn queue_expire(
    conn: &mut Connection<'_>,
    p: &mut Parse<'_>,
    which: ExpireCmd,
) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    let time = p.next_bytes()?;
    let opts = p.rest_bytes();
    let a = expire_arg(time, &opts, which, now_ms())?;
    conn.run.op_arg(OpKind::Expire, key, a, b"");
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// EXPIRE key seconds [NX|XX|GT|LT]
fn expire(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_expire(conn, p, ExpireCmd::Expire)
}

/// PEXPIRE key milliseconds [NX|XX|GT|LT]
fn pexpire(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_expire(conn, p, ExpireCmd::PExpire)
}

/// EXPIREAT key unix-seconds [NX|XX|GT|LT]
fn expireat(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_expire(conn, p, ExpireCmd::ExpireAt)
}

/// PEXPIREAT key unix-milliseconds [NX|XX|GT|LT]
fn pexpireat(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_expire(conn, p, ExpireCmd::PExpireAt)
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME key
fn queue_ttl(
    conn: &mut Connection<'_>,
    p: &mut Parse<'_>,
    mode: TtlMode,
) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.op_bytes(OpKind::Ttl, key, &[mode as u8]);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

/// TTL key
fn ttl(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_ttl(conn, p, TtlMode::Secs)
}

/// PTTL key
fn pttl(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_ttl(conn, p, TtlMode::Millis)
}

/// EXPIRETIME key
fn expiretime(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_ttl(conn, p, TtlMode::AtSecs)
}

/// PEXPIRETIME key
fn pexpiretime(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    queue_ttl(conn, p, TtlMode::AtMillis)
}

/// PERSIST key
fn persist(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let key = p.next_range()?;
    p.finish()?;
    conn.run.op(OpKind::Persist, key, 0..0);
    conn.run.plan(Style::Int, 1);
    Ok(Effect::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(str::as_bytes).collect()
    }

    fn set_opts(line: &str, now: i64) -> Result<(u8, i64), String> {
        extended(&words(line), true, now, "set").map_err(|e| e.0.into())
    }

    fn getex_opts(line: &str, now: i64) -> Result<(u8, i64), String> {
        let w = if line.is_empty() { vec![] } else { words(line) };
        extended(&w, false, now, "getex").map_err(|e| e.0.into())
    }

    #[test]
    fn redis_rules_for_set_options() {
        let now = 1_000_000;
        assert_eq!(set_opts("EX 10", now), Ok((0, now + 10_000)));
        assert_eq!(set_opts("px 10 PX 20", now), Ok((0, now + 20)));
        assert_eq!(set_opts("exat 10", now), Ok((0, 10_000)));
        assert_eq!(
            set_opts("pxat 10 nx get", now),
            Ok((flag::NX | flag::GET, 10))
        );
        assert_eq!(
            set_opts("keepttl xx", now),
            Ok((flag::KEEPTTL | flag::XX, 0))
        );
        for bad in [
            "ex 10 px 10",
            "keepttl ex 10",
            "ex 10 keepttl",
            "ex",
            "nx xx",
            "persist",
        ] {
            assert_eq!(set_opts(bad, now), Err(ERR_SYNTAX.into()), "{bad}");
        }
        for bad in ["nx", "persist ex 1", "ex 1 persist", "get", "keepttl"] {
            assert_eq!(getex_opts(bad, now), Err(ERR_SYNTAX.into()), "{bad}");
        }
        let invalid = Err("ERR invalid expire time in 'set' command".to_string());
        assert_eq!(set_opts("ex 0", now), invalid);
        assert_eq!(set_opts("px -1", now), invalid);
        assert_eq!(set_opts("ex 9223372036854776", now), invalid);
        assert_eq!(set_opts("px 9223372036854775807", now), invalid);
        assert_eq!(set_opts("ex 1x", now), Err(ERR_NOT_INTEGER.into()));
        assert_eq!(
            getex_opts("px 0", now),
            Err("ERR invalid expire time in 'getex' command".into())
        );
        assert_eq!(getex_opts("PERSIST", now), Ok((flag::PERSIST, 0)));
        assert_eq!(getex_opts("", now), Ok((0, 0)));
        assert_eq!(
            expire_ms(b"0", Unit::Ex, now, "setex").map_err(|e| e.0),
            Err("ERR invalid expire time in 'setex' command".into())
        );
    }

    #[test]
    fn redis_rules_for_expire() {
        let now = 1_000_000;
        let e = |time: &str, opts: &str, which| {
            let o = if opts.is_empty() { vec![] } else { words(opts) };
            expire_arg(time.as_bytes(), &o, which, now)
                .map(|a| (a.flags, a.when))
                .map_err(|e| e.0.to_string())
        };
        use ExpireCmd::*;
        assert_eq!(e("10", "", Expire), Ok((0, now + 10_000)));
        assert_eq!(e("-10", "", Expire), Ok((0, now - 10_000)));
        assert_eq!(
            e("10", "xx gt", Expire),
            Ok((flag::XX | flag::GT, now + 10_000))
        );
        assert_eq!(
            e("x", "foo", Expire),
            Err("ERR Unsupported option foo".into())
        );
        assert_eq!(
            e("1", "nx xx", Expire),
            Err("ERR NX and XX, GT or LT options at the same time are not compatible".into())
        );
        assert_eq!(
            e("1", "gt lt", Expire),
            Err("ERR GT and LT options at the same time are not compatible".into())
        );
        assert_eq!(e("x", "", Expire), Err(ERR_NOT_INTEGER.into()));
        let invalid = Err("ERR invalid expire time in 'expire' command".to_string());
        assert_eq!(e("9223372036854776", "", Expire), invalid);
        assert_eq!(e("9223372036854775", "", Expire), invalid);
        assert_eq!(e("9223372036854775807", "", PExpireAt), Ok((0, i64::MAX)));
        assert_eq!(
            e("9223372036854775807", "", PExpire),
            Err("ERR invalid expire time in 'pexpire' command".into())
        );
    }
}
