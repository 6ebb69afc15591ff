//! The expiry command family: SET's extended options (EX, PX, EXAT, PXAT,
//! KEEPTTL, and GET combined with NX/XX), SETEX, PSETEX, GETEX, EXPIRE,
//! PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME, PEXPIRETIME and
//! PERSIST — parsing with Redis 7's rules and error texts, down to the order
//! in which it checks things.
//!
//! Relative times are turned into absolute Unix milliseconds here, with the
//! connection shard's clock at parse time (Redis's command-time snapshot),
//! so the op that travels to the owner shard carries an absolute expiry
//! ([`ExpiryArg`]). It queues ops like every key command; it does not touch
//! sockets or the store.

use std::ops::Range;

use crate::store::{arg, parse_i64, ExpiryArg, TtlMode};

use super::commands::Command;

const ERR_SYNTAX: &str = "ERR syntax error";
const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// Redis's `invalid expire time in '<cmd>' command`.
fn invalid_expire(cmd: &str) -> String {
    format!("ERR invalid expire time in '{cmd}' command")
}

/// Which expiry option a SET or GETEX carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Redis's getExpireMillisecondsOrReply: a positive count of seconds or
/// milliseconds, relative or absolute, as absolute Unix milliseconds.
fn expire_ms(text: &[u8], unit: Unit, now_ms: i64, cmd: &str) -> Result<i64, String> {
    let Some(mut ms) = parse_i64(text) else {
        return Err(ERR_NOT_INTEGER.into());
    };
    let secs = matches!(unit, Unit::Ex | Unit::ExAt);
    if ms <= 0 || (secs && ms > i64::MAX / 1000) {
        return Err(invalid_expire(cmd));
    }
    if secs {
        ms *= 1000;
    }
    if matches!(unit, Unit::Ex | Unit::Px) {
        // Redis adds and then looks for a wrapped (non-positive) result.
        ms = ms.wrapping_add(now_ms);
    }
    if ms <= 0 {
        return Err(invalid_expire(cmd));
    }
    Ok(ms)
}

/// The extended options of SET (`is_set`) or GETEX, Redis's
/// parseExtendedStringArgumentsOrReply: flags and the expiry option with
/// the index of its argument.
fn parse_extended(
    buf: &[u8],
    args: &[Range<usize>],
    from: usize,
    is_set: bool,
) -> Result<(u8, Option<(Unit, usize)>), String> {
    let mut flags = 0u8;
    let mut exp: Option<(Unit, usize)> = None;
    let n = args.len();
    let mut j = from;
    while j < n {
        let opt = &buf[args[j].clone()];
        let is = |w: &str| opt.eq_ignore_ascii_case(w.as_bytes());
        let has_next = j + 1 < n;
        // An expiry option may repeat itself but not follow another one,
        // KEEPTTL or PERSIST.
        let exp_ok = |u: Unit| {
            flags & (arg::KEEPTTL | arg::PERSIST) == 0 && exp.map_or(true, |(e, _)| e == u)
        };
        if is_set && is("nx") && flags & arg::XX == 0 {
            flags |= arg::NX;
        } else if is_set && is("xx") && flags & arg::NX == 0 {
            flags |= arg::XX;
        } else if is_set && is("get") {
            flags |= arg::GET;
        } else if is_set && is("keepttl") && exp.is_none() {
            flags |= arg::KEEPTTL;
        } else if !is_set && is("persist") && exp.is_none() {
            flags |= arg::PERSIST;
        } else if let Some(u) = [
            ("ex", Unit::Ex),
            ("px", Unit::Px),
            ("exat", Unit::ExAt),
            ("pxat", Unit::PxAt),
        ]
        .iter()
        .find(|(w, _)| is(w))
        .map(|&(_, u)| u)
        .filter(|&u| exp_ok(u) && has_next)
        {
            exp = Some((u, j + 1));
            j += 1;
        } else {
            return Err(ERR_SYNTAX.into());
        }
        j += 1;
    }
    Ok((flags, exp))
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]. Plain
/// forms map to the fast ops (PUT, PUT-if-absent/present, GETSET); the
/// rest to the extended SET op.
pub fn parse_set<'a>(buf: &'a [u8], args: &'a [Range<usize>], now_ms: i64) -> Command<'a> {
    let (flags, exp) = match parse_extended(buf, args, 3, true) {
        Ok(x) => x,
        Err(e) => return Command::Reject(e),
    };
    let when = match exp {
        Some((unit, i)) => match expire_ms(&buf[args[i].clone()], unit, now_ms, "set") {
            Ok(ms) => ms,
            Err(e) => return Command::Reject(e),
        },
        None => 0,
    };
    set_command(args[1].clone(), args[2].clone(), flags, when)
}

/// The command for a SET with `flags` and absolute expiry `when` (0: none).
fn set_command<'a>(key: Range<usize>, value: Range<usize>, flags: u8, when: i64) -> Command<'a> {
    use crate::store::OpKind;
    let plain = when == 0 && flags & arg::KEEPTTL == 0;
    match (plain, flags & (arg::NX | arg::XX | arg::GET)) {
        (true, 0) => Command::Set {
            key,
            value,
            op: OpKind::Put,
            get: false,
        },
        (true, arg::NX) => Command::Set {
            key,
            value,
            op: OpKind::PutIfAbsent,
            get: false,
        },
        (true, arg::XX) => Command::Set {
            key,
            value,
            op: OpKind::PutIfPresent,
            get: false,
        },
        (true, arg::GET) => Command::Set {
            key,
            value,
            op: OpKind::Put,
            get: true,
        },
        _ => Command::SetX {
            key,
            value,
            arg: ExpiryArg { flags, when },
        },
    }
}

/// SETEX key seconds value / PSETEX key milliseconds value.
pub fn parse_setex<'a>(
    buf: &'a [u8],
    args: &'a [Range<usize>],
    millis: bool,
    now_ms: i64,
) -> Command<'a> {
    let (unit, cmd) = if millis {
        (Unit::Px, "psetex")
    } else {
        (Unit::Ex, "setex")
    };
    match expire_ms(&buf[args[2].clone()], unit, now_ms, cmd) {
        Ok(when) => set_command(args[1].clone(), args[3].clone(), 0, when),
        Err(e) => Command::Reject(e),
    }
}

/// GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST].
pub fn parse_getex<'a>(buf: &'a [u8], args: &'a [Range<usize>], now_ms: i64) -> Command<'a> {
    let (flags, exp) = match parse_extended(buf, args, 2, false) {
        Ok(x) => x,
        Err(e) => return Command::Reject(e),
    };
    let when = match exp {
        Some((unit, i)) => match expire_ms(&buf[args[i].clone()], unit, now_ms, "getex") {
            Ok(ms) => ms,
            Err(e) => return Command::Reject(e),
        },
        None => 0,
    };
    Command::GetEx {
        key: args[1].clone(),
        arg: ExpiryArg { flags, when },
    }
}

/// Which of the four EXPIRE commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireCmd {
    /// EXPIRE key seconds
    Expire,
    /// PEXPIRE key milliseconds
    PExpire,
    /// EXPIREAT key unix-seconds
    ExpireAt,
    /// PEXPIREAT key unix-milliseconds
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

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX|XX|GT|LT]
/// (Redis's expireGenericCommand up to the key lookup: options first,
/// then the integer, then overflow).
pub fn parse_expire<'a>(
    buf: &'a [u8],
    args: &'a [Range<usize>],
    which: ExpireCmd,
    now_ms: i64,
) -> Command<'a> {
    let mut flags = 0u8;
    for r in &args[3..] {
        let opt = &buf[r.clone()];
        let bit = [
            ("nx", arg::NX),
            ("xx", arg::XX),
            ("gt", arg::GT),
            ("lt", arg::LT),
        ]
        .iter()
        .find(|(w, _)| opt.eq_ignore_ascii_case(w.as_bytes()))
        .map(|&(_, b)| b);
        match bit {
            Some(b) => flags |= b,
            None => {
                return Command::Reject(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    let nx = flags & arg::NX != 0;
    if nx && flags & (arg::XX | arg::GT | arg::LT) != 0 {
        return Command::Reject(
            "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
        );
    }
    if flags & arg::GT != 0 && flags & arg::LT != 0 {
        return Command::Reject("ERR GT and LT options at the same time are not compatible".into());
    }
    let Some(mut when) = parse_i64(&buf[args[2].clone()]) else {
        return Command::Reject(ERR_NOT_INTEGER.into());
    };
    if matches!(which, ExpireCmd::Expire | ExpireCmd::ExpireAt) {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return Command::Reject(invalid_expire(which.name()));
        }
        when *= 1000;
    }
    let base = match which {
        ExpireCmd::Expire | ExpireCmd::PExpire => now_ms,
        ExpireCmd::ExpireAt | ExpireCmd::PExpireAt => 0,
    };
    if when > i64::MAX - base {
        return Command::Reject(invalid_expire(which.name()));
    }
    Command::Expire {
        key: args[1].clone(),
        arg: ExpiryArg {
            flags,
            when: when + base,
        },
    }
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME key.
pub fn parse_ttl<'a>(args: &'a [Range<usize>], mode: TtlMode) -> Command<'a> {
    Command::Ttl(args[1].clone(), mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str, now: i64) -> Result<(u8, i64), String> {
        let buf = line.as_bytes();
        let mut args = Vec::new();
        let mut pos = 0;
        for w in line.split(' ') {
            args.push(pos..pos + w.len());
            pos += w.len() + 1;
        }
        let name = line.split(' ').next().unwrap().to_ascii_lowercase();
        let cmd = match name.as_str() {
            "set" => parse_set(buf, &args, now),
            "getex" => parse_getex(buf, &args, now),
            "setex" => parse_setex(buf, &args, false, now),
            "psetex" => parse_setex(buf, &args, true, now),
            "expire" => parse_expire(buf, &args, ExpireCmd::Expire, now),
            "pexpireat" => parse_expire(buf, &args, ExpireCmd::PExpireAt, now),
            _ => unreachable!(),
        };
        match cmd {
            Command::Reject(e) => Err(e),
            Command::SetX { arg, .. }
            | Command::GetEx { arg, .. }
            | Command::Expire { arg, .. } => Ok((arg.flags, arg.when)),
            Command::Set { .. } => Ok((0, 0)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn redis_rules_for_set_options() {
        let now = 1_000_000;
        assert_eq!(parse("set k v EX 10", now), Ok((0, now + 10_000)));
        assert_eq!(parse("set k v px 10 PX 20", now), Ok((0, now + 20)));
        assert_eq!(parse("set k v exat 10", now), Ok((0, 10_000)));
        assert_eq!(
            parse("set k v pxat 10 nx get", now),
            Ok((arg::NX | arg::GET, 10))
        );
        assert_eq!(
            parse("set k v keepttl xx", now),
            Ok((arg::KEEPTTL | arg::XX, 0))
        );
        assert_eq!(parse("set k v", now), Ok((0, 0)));
        for bad in [
            "set k v ex 10 px 10",
            "set k v keepttl ex 10",
            "set k v ex 10 keepttl",
            "set k v ex",
            "set k v nx xx",
            "set k v persist",
            "getex k nx",
            "getex k persist ex 1",
            "getex k ex 1 persist",
        ] {
            assert_eq!(parse(bad, now), Err(ERR_SYNTAX.into()), "{bad}");
        }
        let invalid = Err("ERR invalid expire time in 'set' command".into());
        assert_eq!(parse("set k v ex 0", now), invalid);
        assert_eq!(parse("set k v px -1", now), invalid);
        assert_eq!(parse("set k v ex 9223372036854776", now), invalid);
        assert_eq!(parse("set k v px 9223372036854775807", now), invalid);
        assert_eq!(parse("set k v ex 1x", now), Err(ERR_NOT_INTEGER.into()));
        assert_eq!(
            parse("setex k 0 v", now),
            Err("ERR invalid expire time in 'setex' command".into())
        );
        assert_eq!(parse("psetex k 5 v", now), Ok((0, now + 5)));
        assert_eq!(
            parse("getex k px 0", now),
            Err("ERR invalid expire time in 'getex' command".into())
        );
        assert_eq!(parse("getex k PERSIST", now), Ok((arg::PERSIST, 0)));
    }

    #[test]
    fn redis_rules_for_expire() {
        let now = 1_000_000;
        assert_eq!(parse("expire k 10", now), Ok((0, now + 10_000)));
        assert_eq!(parse("expire k -10", now), Ok((0, now - 10_000)));
        assert_eq!(
            parse("expire k 10 xx gt", now),
            Ok((arg::XX | arg::GT, now + 10_000))
        );
        assert_eq!(
            parse("expire k x foo", now),
            Err("ERR Unsupported option foo".into())
        );
        assert_eq!(
            parse("expire k 1 nx xx", now),
            Err("ERR NX and XX, GT or LT options at the same time are not compatible".into())
        );
        assert_eq!(
            parse("expire k 1 gt lt", now),
            Err("ERR GT and LT options at the same time are not compatible".into())
        );
        assert_eq!(parse("expire k x", now), Err(ERR_NOT_INTEGER.into()));
        assert_eq!(
            parse("expire k 9223372036854776", now),
            Err("ERR invalid expire time in 'expire' command".into())
        );
        assert_eq!(
            parse("expire k 9223372036854775", now),
            Err("ERR invalid expire time in 'expire' command".into())
        );
        assert_eq!(
            parse("pexpireat k 9223372036854775807", now),
            Ok((0, i64::MAX))
        );
    }
}
