//! The server group's diagnostic commands: SLOWLOG (GET, LEN, RESET, HELP)
//! and LATENCY (HISTOGRAM, HELP), answered from the node's
//! [`Observe`](crate::server::observe::Observe) with Redis 7's reply shapes
//! and error texts. Replies are written straight into the connection's
//! output (the run was flushed before). Touches no socket and no store.

use crate::protocol::resp;
use crate::server::observe::{self, count_below_pow2};

use super::table::{arg, is_word, many, opt, CmdError, Effect, Handler, Parse, Spec};
use super::Connection;

/// A row of this family (no keys, group "server").
const fn diag_cmd(
    name: &'static str,
    summary: &'static str,
    args: &'static [super::table::Arg],
    handler: Handler,
) -> Spec {
    Spec::new(
        name,
        -2,
        &[],
        (0, 0, 0),
        "server",
        summary,
        args,
        false,
        handler,
    )
}

/// The diagnostics family's rows.
pub(crate) static COMMANDS: &[Spec] = &[
    diag_cmd(
        "slowlog",
        "SLOWLOG GET [count] | LEN | RESET | HELP: the commands slower than slowlog-log-slower-than.",
        &[arg("subcommand", "string"), opt(arg("count", "integer"))],
        slowlog,
    ),
    diag_cmd(
        "latency",
        "LATENCY HISTOGRAM [command ...] | HELP: per-command latency distributions.",
        &[
            arg("subcommand", "string"),
            opt(many(arg("command", "string"))),
        ],
        latency,
    ),
];

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

/// A HELP reply: an array of simple strings.
pub(crate) fn help(out: &mut Vec<u8>, lines: &[&str]) {
    resp::array_header(out, lines.len());
    for l in lines {
        resp::simple(out, l);
    }
}

/// SLOWLOG GET [count] | LEN | RESET | HELP
fn slowlog(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sub = p.next_bytes()?;
    let rest = p.remaining();
    let fixed = |name: &str| CmdError::wrong_arity(&format!("slowlog|{name}"));
    if is_word(sub, "get") {
        if rest > 1 {
            return Err(CmdError::from(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                String::from_utf8_lossy(sub)
            )));
        }
        let count = match p.try_next_bytes() {
            None => Some(10),
            Some(c) => match crate::op::parse_i64(c) {
                Some(-1) => None,
                Some(n) if n >= 0 => Some(n as usize),
                _ => {
                    return Err(CmdError::msg(
                        "ERR count should be greater than or equal to -1",
                    ))
                }
            },
        };
        let entries = conn.obs.slowlog(count);
        let out = &mut conn.out;
        resp::array_header(out, entries.len());
        for e in entries {
            resp::array_header(out, 6);
            resp::integer(out, e.id as i64);
            resp::integer(out, e.unix_secs as i64);
            resp::integer(out, e.micros as i64);
            resp::array_header(out, e.args.len());
            e.args.iter().for_each(|a| resp::bulk(out, a));
            resp::bulk(out, e.addr.as_bytes());
            resp::bulk(out, &e.name);
        }
    } else if is_word(sub, "len") {
        if rest != 0 {
            return Err(fixed("len"));
        }
        resp::integer(&mut conn.out, conn.obs.slowlog_len() as i64);
    } else if is_word(sub, "reset") {
        if rest != 0 {
            return Err(fixed("reset"));
        }
        conn.obs.slowlog_reset();
        conn.out.extend_from_slice(b"+OK\r\n");
    } else if is_word(sub, "help") {
        if rest != 0 {
            return Err(fixed("help"));
        }
        help(&mut conn.out, SLOWLOG_HELP);
    } else {
        return Err(CmdError::unknown_subcommand(sub, "SLOWLOG"));
    }
    Ok(Effect::Continue)
}

/// LATENCY HISTOGRAM [command ...] | HELP
fn latency(conn: &mut Connection<'_>, p: &mut Parse<'_>) -> Result<Effect, CmdError> {
    let sub = p.next_bytes()?;
    if is_word(sub, "histogram") {
        let names = p.rest_bytes();
        let slots: Vec<usize> = (0..observe::nr_slots())
            .filter(|&slot| {
                let name = observe::slot_name(slot);
                let container = name.split('|').next().unwrap_or(name);
                names.is_empty()
                    || names
                        .iter()
                        .any(|n| is_word(n, name) || (name.contains('|') && is_word(n, container)))
            })
            .filter(|&slot| conn.obs.cmd_totals(slot).0 > 0)
            .collect();
        histogram_reply(conn, &slots);
    } else if is_word(sub, "help") {
        if p.remaining() != 0 {
            return Err(CmdError::wrong_arity("latency|help"));
        }
        help(&mut conn.out, LATENCY_HELP);
    } else {
        return Err(CmdError::unknown_subcommand(sub, "LATENCY"));
    }
    Ok(Effect::Continue)
}

/// LATENCY HISTOGRAM's map of maps (flat arrays in RESP2): per command, its
/// calls and a cumulative histogram at Redis's power-of-two boundaries: at
/// 1024 ns · 2^k, the calls faster than that, labelled in µs as Redis's
/// HdrHistogram iterator labels it (the boundary's highest equivalent value
/// at 2 significant digits: 1, 2, 4, 8, 16, 33, 66, …); only points where
/// the count grows, as Redis does.
fn histogram_reply(conn: &mut Connection<'_>, slots: &[usize]) {
    let proto = conn.proto;
    let out = &mut conn.out;
    resp::map_header(out, slots.len(), proto);
    for &slot in slots {
        let counts = conn.obs.cmd_hist(slot);
        let calls: u64 = counts.iter().sum();
        resp::bulk(out, observe::slot_name(slot).as_bytes());
        resp::map_header(out, 2, proto);
        resp::bulk(out, b"calls");
        resp::integer(out, calls as i64);
        resp::bulk(out, b"histogram_usec");
        let mut points = Vec::new();
        let mut prev = 0;
        for pow in 10..=40u32 {
            let below = count_below_pow2(&counts, pow);
            if below > prev {
                let ns = 1u64 << pow;
                points.push(((ns + ns / 128 - 1) / 1000, below));
            }
            prev = below;
            if below == calls {
                break;
            }
        }
        resp::map_header(out, points.len(), proto);
        for (usec, cumulative) in points {
            resp::integer(out, usec as i64);
            resp::integer(out, cumulative as i64);
        }
    }
}
