//! RESP2 and RESP3 wire format: parsing requests, encoding replies (server side), and
//! encoding requests / parsing replies (client side, for corekv's own bench and
//! tests).
//!
//! This module owns *only* the byte-level framing of the Redis protocol
//! (RESP2, and the reply types RESP3 adds). It performs no I/O and knows nothing about what commands mean:
//! the server's connection loop reads bytes into a buffer, asks
//! [`parse_command`] for the next complete command, dispatches the arguments,
//! and writes replies built with the encoder functions ([`simple`], [`error`],
//! [`integer`], [`bulk`], [`null_bulk`], [`array_header`], [`null_array`]),
//! and, for the reply types RESP3 refines, in the connection's [`Proto`]
//! ([`null`], [`map_header`], [`set_header`], [`verbatim`]: RESP2's shapes
//! when it speaks RESP2). Requests are the same in both protocols.
//!
//! Why it is shaped this way: the parser is incremental, stateless and
//! zero-copy (arguments are ranges into the read buffer), so pipelined
//! commands are parsed in place without allocation; every limit fires from a
//! header before its payload arrives ([`Limits`]), and every framing error is
//! fatal for the connection, because framing can no longer be trusted. No
//! function here panics on any input. The details live beside the code:
//! [`parse_command`] (syntaxes, quoting, where we are stricter than Redis),
//! [`Limits`] (the defaults and why), [`simple`] (reply encoding) and
//! [`parse_reply`] (the client side).

use std::fmt;
use std::ops::Range;

/// Default for [`Limits::max_bulk_len`]: 8 MiB.
pub const DEFAULT_MAX_BULK_LEN: usize = 8 << 20;
/// Default for [`Limits::max_args`]: 1 048 576, Redis's cap for unauthenticated clients.
pub const DEFAULT_MAX_ARGS: usize = 1 << 20;
/// Default for [`Limits::max_inline_len`]: 64 KiB, Redis's `PROTO_INLINE_MAX_SIZE`.
pub const DEFAULT_MAX_INLINE_LEN: usize = 64 << 10;
/// Deepest array nesting [`parse_reply`] accepts (the top-level reply is depth 0).
pub const MAX_REPLY_DEPTH: usize = 128;

/// Per-command limits enforced by [`parse_command`].
///
/// [`Limits`] bounds what a single client can make the server buffer, and all
/// checks fire from the header alone, before any payload arrives:
///
/// * `max_bulk_len` (default 8 MiB, [`DEFAULT_MAX_BULK_LEN`]): largest single
///   argument. Redis allows 512 MiB; corekv is an in-memory cache where a
///   single huge value would stall a whole core (thread-per-core), so the
///   default is much lower. Exceeded → `Protocol error: invalid bulk length`.
/// * `max_args` (default 1 048 576, [`DEFAULT_MAX_ARGS`]): largest multibulk
///   count, the same value Redis enforces for unauthenticated clients.
///   Exceeded → `Protocol error: invalid multibulk length` (also applied to
///   the number of inline tokens).
/// * `max_inline_len` (default 64 KiB, [`DEFAULT_MAX_INLINE_LEN`]): longest
///   inline line excluding its terminator, Redis's `PROTO_INLINE_MAX_SIZE`.
///   Exceeded → `Protocol error: too big inline request`.
///
/// The *total* size of one command (`max_args * max_bulk_len` in the worst
/// case) is not bounded here: the connection layer must cap its query buffer
/// (Redis: `client-query-buffer-limit`).
///
/// Length fields never overflow: declared lengths are accumulated with checked
/// arithmetic and compared with the limit digit by digit, so inputs such as
/// `$99999999999999999999` are rejected, never wrapped. No function in this
/// module panics on any input.
///
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted bulk argument, in bytes.
    pub max_bulk_len: usize,
    /// Largest accepted number of arguments in one command.
    pub max_args: usize,
    /// Longest accepted inline command line, in bytes, excluding `\r\n`.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_args: DEFAULT_MAX_ARGS,
            max_inline_len: DEFAULT_MAX_INLINE_LEN,
        }
    }
}

/// A RESP framing error. The `Display` text is Redis's own protocol error
/// text where Redis has one; send it as `-ERR <text>` and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// Bad `*<n>` header: not a canonical integer, or more than `max_args`
    /// (also too many inline tokens). In replies: bad `*` header.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// Bad `$<len>` header: not a canonical integer, negative, or larger than
    /// `max_bulk_len`. In replies: bad `$` header.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk element did not start with `$`; carries the byte found.
    /// Non-printable bytes are shown as `\xNN`.
    #[error("Protocol error: expected '$', got '{}'", show_byte(.0))]
    ExpectedDollar(u8),
    /// Inline line longer than `max_inline_len`.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// Inline line with an unterminated quote, or a closing quote not
    /// followed by whitespace.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Inline quoting that would need unescaping/concatenation (not a Redis
    /// error: Redis accepts these, corekv asks for multibulk instead).
    #[error("Protocol error: unsupported quoting in inline request")]
    UnsupportedInlineQuoting,
    /// The two bytes after a bulk payload were not `\r\n` (not a Redis error:
    /// Redis skips them unchecked).
    #[error("Protocol error: bulk data not terminated by CRLF")]
    BulkNotTerminated,
    /// Reply parsing: the first byte of a reply is not one of `+ - : $ *`.
    #[error("Protocol error: unknown reply type '{}'", show_byte(.0))]
    UnknownReplyType(u8),
    /// Reply parsing: malformed `:` integer.
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// Reply parsing: a status/error line contains a bare `\r` or `\n`.
    #[error("Protocol error: invalid line terminator")]
    InvalidLine,
    /// Reply parsing: arrays nested deeper than [`MAX_REPLY_DEPTH`].
    #[error("Protocol error: reply nesting too deep")]
    ReplyTooDeep,
}

impl RespError {
    /// Whether the connection must be closed after reporting this error.
    /// Always `true`: after a framing error the stream position of the next
    /// command is unknown.
    pub fn is_fatal(&self) -> bool {
        true
    }
}

/// Displays a byte as itself when printable ASCII, else as `\xNN`.
fn show_byte(b: &u8) -> ShowByte {
    ShowByte(*b)
}

struct ShowByte(u8);

impl fmt::Display for ShowByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (0x20..0x7f).contains(&self.0) {
            write!(f, "{}", self.0 as char)
        } else {
            write!(f, "\\x{:02x}", self.0)
        }
    }
}

// ---------------------------------------------------------------------------
// Shared header-integer reader
// ---------------------------------------------------------------------------

/// Reads a canonical decimal integer starting at `buf[i]` and terminated by
/// `\r\n`, accepting only values in `min..=max`. Canonical means what Redis's
/// `string2ll` accepts: optional `-`, at least one digit, no leading zeros,
/// no `-0`, no `+`.
///
/// Returns `Ok(Some((value, index after "\r\n")))`, `Ok(None)` if `buf` ends
/// while the bytes so far could still become valid, or `Err(err)` as soon as
/// they cannot (including when the value already exceeds the bounds).
#[inline]
fn read_int(
    buf: &[u8],
    mut i: usize,
    min: i64,
    max: i64,
    err: RespError,
) -> Result<Option<(i64, usize)>, RespError> {
    let neg = match buf.get(i) {
        None => return Ok(None),
        Some(b'-') if min < 0 => {
            i += 1;
            true
        }
        Some(_) => false,
    };
    let bound: u64 = if neg {
        min.unsigned_abs()
    } else {
        max.max(0) as u64
    };
    let mut mag: u64 = 0;
    let mut ndigits = 0usize;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        match b {
            b'0'..=b'9' => {
                let d = u64::from(b - b'0');
                // Leading zero ("01", "00") or "-0" are not canonical.
                if (ndigits == 1 && mag == 0) || (neg && ndigits == 0 && d == 0) {
                    return Err(err);
                }
                mag = match mag.checked_mul(10).and_then(|m| m.checked_add(d)) {
                    Some(m) if m <= bound => m,
                    _ => return Err(err),
                };
                ndigits += 1;
                i += 1;
            }
            b'\r' => {
                if ndigits == 0 {
                    return Err(err);
                }
                return match buf.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => {
                        // `mag <= 2^63` when negative, so this is exact.
                        let v = if neg {
                            (mag as i64).wrapping_neg()
                        } else {
                            mag as i64
                        };
                        Ok(Some((v, i + 2)))
                    }
                    Some(_) => Err(err),
                };
            }
            _ => return Err(err),
        }
    }
}

/// Checks the `\r\n` after a bulk payload ending at `end`. `Ok(false)` means
/// more bytes are needed; a wrong byte is reported as soon as it is present.
#[inline]
fn check_bulk_terminator(buf: &[u8], end: usize) -> Result<bool, RespError> {
    match (buf.get(end), buf.get(end.saturating_add(1))) {
        (None, _) => Ok(false),
        (Some(b'\r'), None) => Ok(false),
        (Some(b'\r'), Some(b'\n')) => Ok(true),
        _ => Err(RespError::BulkNotTerminated),
    }
}

// ---------------------------------------------------------------------------
// Request parser
// ---------------------------------------------------------------------------

/// Parses the first command in `buf`.
///
/// [`parse_command`] is incremental, stateless and zero-copy. It is given the
/// bytes buffered so far (a partial command, exactly one command, or many
/// pipelined commands) and returns:
///
/// * `Ok(Some(consumed))` — one complete command occupies `buf[..consumed]`;
///   its arguments are reported as byte ranges into `buf`. `consumed` is
///   always at least 1, so a caller looping over a pipeline always advances.
///   A command may have **zero arguments** (`*0\r\n`, `*-1\r\n`, an empty or
///   all-blank inline line): callers must consume the bytes and skip it, as
///   Redis does.
/// * `Ok(None)` — the bytes seen so far are a valid prefix of a command; read
///   more and call again with the *same* start (the parser keeps no state and
///   re-scans the command from its first byte each time; the cost is one
///   O(1) step per argument header already received, bulk payloads are never
///   scanned).
/// * `Err(e)` — malformed input or an exceeded [`Limits`] value. Every
///   [`RespError`] is fatal ([`RespError::is_fatal`]): the server should reply
///   `-ERR <e>` (the `Display` text) and close the connection, since framing
///   can no longer be trusted.
///
/// Two request syntaxes are accepted, chosen by the first byte, like Redis:
///
/// * **Multibulk** (first byte `*`): `*<n>\r\n` followed by `n` bulk strings
///   `$<len>\r\n<len bytes>\r\n`. Bulk payloads are binary safe. `n <= 0`
///   yields an empty command.
/// * **Inline** (any other first byte), as typed into telnet: one line ended
///   by `\n` (an optional preceding `\r` is stripped), split on ASCII
///   whitespace (space, `\t`, `\r`, `\x0b`, `\x0c`). Quoting is supported for
///   the subset that can be represented zero-copy: a token that *starts* with
///   `"` or `'` runs to the matching closing quote and yields the bytes in
///   between verbatim (so `SET k "hello world"` and `SET k ""` work). As in
///   Redis, a missing closing quote or a closing quote not followed by
///   whitespace/end of line is `Protocol error: unbalanced quotes in request`.
///   What Redis would *rewrite* — backslash escapes inside double quotes
///   (`"a\nb"`), `\'` inside single quotes, and quotes in the middle of a
///   token (`ab"cd"`) — is rejected with
///   [`RespError::UnsupportedInlineQuoting`] rather than silently producing
///   different bytes than Redis would. A backslash inside single quotes is an
///   ordinary byte (as in Redis). NUL bytes are ordinary bytes (Redis's C
///   implementation truncates the line at a NUL).
///
/// Differences from Redis that only make the parser stricter/earlier:
/// length headers are validated digit by digit, so garbage or an oversized
/// length is reported as soon as the offending byte arrives (Redis waits for
/// the `\r` or for 64 KiB); a `\r` must be followed by `\n`, and the two bytes
/// after a bulk payload must be `\r\n` (Redis skips them unchecked).
///
///
/// `args` is cleared, then on `Ok(Some(consumed))` holds one byte range into
/// `buf` per argument; the command occupied `buf[..consumed]` (`consumed >=
/// 1`). Zero arguments means an empty command that the caller must skip.
/// `Ok(None)` means more bytes are needed (not an error). On `Ok(None)` and
/// `Err` `args` is left empty. Pass the same `Vec` every time to avoid
/// allocating: apart from `args` growing, this function never allocates.
pub fn parse_command(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, RespError> {
    args.clear();
    let result = match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits, args),
        Some(_) => parse_inline(buf, limits, args),
    };
    if !matches!(result, Ok(Some(_))) {
        args.clear();
    }
    result
}

fn parse_multibulk(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, RespError> {
    let max_args = i64::try_from(limits.max_args).unwrap_or(i64::MAX);
    let Some((count, mut pos)) = read_int(
        buf,
        1,
        i64::MIN,
        max_args,
        RespError::InvalidMultibulkLength,
    )?
    else {
        return Ok(None);
    };
    if count <= 0 {
        return Ok(Some(pos));
    }
    let max_bulk = i64::try_from(limits.max_bulk_len).unwrap_or(i64::MAX);
    for _ in 0..count {
        let Some(&b) = buf.get(pos) else {
            return Ok(None);
        };
        if b != b'$' {
            return Err(RespError::ExpectedDollar(b));
        }
        let Some((len, start)) = read_int(buf, pos + 1, 0, max_bulk, RespError::InvalidBulkLength)?
        else {
            return Ok(None);
        };
        // 0 <= len <= max_bulk_len, so the conversion is lossless.
        let end = start.saturating_add(len as usize);
        if !check_bulk_terminator(buf, end)? {
            return Ok(None);
        }
        args.push(start..end);
        pos = end + 2;
    }
    Ok(Some(pos))
}

#[inline]
fn is_inline_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

fn parse_inline(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, RespError> {
    // A valid line has at most `max_inline_len` bytes plus "\r\n".
    let window = limits.max_inline_len.saturating_add(2);
    let Some(nl) = buf[..buf.len().min(window)]
        .iter()
        .position(|&b| b == b'\n')
    else {
        return if buf.len() >= window {
            Err(RespError::TooBigInline)
        } else {
            Ok(None)
        };
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    if line_end > limits.max_inline_len {
        return Err(RespError::TooBigInline);
    }
    split_inline(&buf[..line_end], limits.max_args, args)?;
    Ok(Some(nl + 1))
}

/// Splits one inline line (terminator already removed) into argument ranges.
fn split_inline(
    line: &[u8],
    max_args: usize,
    args: &mut Vec<Range<usize>>,
) -> Result<(), RespError> {
    let n = line.len();
    let mut i = 0;
    loop {
        while i < n && is_inline_space(line[i]) {
            i += 1;
        }
        if i == n {
            return Ok(());
        }
        if args.len() >= max_args {
            return Err(RespError::InvalidMultibulkLength);
        }
        let q = line[i];
        if q == b'"' || q == b'\'' {
            let start = i + 1;
            let mut j = start;
            loop {
                let Some(&b) = line.get(j) else {
                    return Err(RespError::UnbalancedQuotes);
                };
                if b == q {
                    if j + 1 < n && !is_inline_space(line[j + 1]) {
                        return Err(RespError::UnbalancedQuotes);
                    }
                    break;
                }
                if b == b'\\' && j + 1 < n {
                    // Redis would unescape these; we cannot do so zero-copy.
                    if q == b'"' || line[j + 1] == b'\'' {
                        return Err(RespError::UnsupportedInlineQuoting);
                    }
                }
                j += 1;
            }
            args.push(start..j);
            i = j + 1;
        } else {
            let start = i;
            while i < n && !is_inline_space(line[i]) {
                if line[i] == b'"' || line[i] == b'\'' {
                    return Err(RespError::UnsupportedInlineQuoting);
                }
                i += 1;
            }
            args.push(start..i);
        }
    }
}

// ---------------------------------------------------------------------------
// Encoders
// ---------------------------------------------------------------------------

/// "00" "01" ... "99": two digits per table lookup.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Appends the decimal representation of `v` (no allocation, no `fmt`).
#[inline]
fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    while v >= 100 {
        let r = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i] = DIGIT_PAIRS[r];
        tmp[i + 1] = DIGIT_PAIRS[r + 1];
    }
    if v >= 10 {
        let r = v as usize * 2;
        i -= 2;
        tmp[i] = DIGIT_PAIRS[r];
        tmp[i + 1] = DIGIT_PAIRS[r + 1];
    } else {
        i -= 1;
        tmp[i] = b'0' + v as u8;
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends `<prefix><n>\r\n`.
#[inline]
fn write_header(out: &mut Vec<u8>, prefix: u8, n: u64) {
    out.reserve(23);
    out.push(prefix);
    write_u64(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends `<prefix><text>\r\n`, replacing `\r`/`\n` in `text` with spaces.
#[inline]
fn write_line(out: &mut Vec<u8>, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.push(prefix);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(text.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            _ => b,
        }));
    } else {
        out.extend_from_slice(text);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a status reply `+<text>\r\n` (e.g. `simple(out, "OK")`).
/// `\r`/`\n` inside `text` become spaces.
///
/// The encoders append to a caller-owned `Vec<u8>` with no intermediate
/// allocation; integers are formatted with a hand-written two-digits-at-a-time
/// formatter. Status and error texts must be single lines: [`simple`] and
/// [`error`] replace any `\r` or `\n` in the text with a space (what Redis's
/// `addReplyErrorFormat` does) so the framing can never be broken.
///
pub fn simple(out: &mut Vec<u8>, text: &str) {
    write_line(out, b'+', text.as_bytes());
}

/// Appends an error reply `-<msg>\r\n`. `msg` should start with the error
/// code, e.g. `"ERR unknown command 'foo'"`; `\r`/`\n` inside it become
/// spaces.
pub fn error(out: &mut Vec<u8>, msg: &str) {
    write_line(out, b'-', msg.as_bytes());
}

/// Appends an integer reply `:<v>\r\n`.
pub fn integer(out: &mut Vec<u8>, v: i64) {
    out.reserve(23);
    out.push(b':');
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
    out.extend_from_slice(b"\r\n");
}

/// Appends a bulk string reply `$<len>\r\n<data>\r\n` (binary safe).
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.reserve(data.len() + 25);
    write_header(out, b'$', data.len() as u64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the null bulk string `$-1\r\n` (e.g. GET of a missing key).
pub fn null_bulk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends an array header `*<len>\r\n`; the caller then appends `len`
/// elements with the other encoders.
pub fn array_header(out: &mut Vec<u8>, len: usize) {
    write_header(out, b'*', len as u64);
}

/// Appends the null array `*-1\r\n`.
pub fn null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

/// The protocol a connection speaks (HELLO 2 / HELLO 3): the replies whose
/// type RESP3 refines (null, map, set, verbatim string) are written by the
/// encoders below in the connection's protocol; every other reply is the
/// same in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Proto {
    /// RESP2, every connection's protocol until HELLO 3.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

impl Proto {
    /// The protocol version HELLO and CLIENT LIST report (2 or 3).
    pub fn version(self) -> i64 {
        match self {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        }
    }
}

/// Appends a null: RESP3's `_`, RESP2's null bulk string `$-1`.
#[inline]
pub fn null(out: &mut Vec<u8>, proto: Proto) {
    match proto {
        Proto::Resp2 => out.extend_from_slice(b"$-1\r\n"),
        Proto::Resp3 => out.extend_from_slice(b"_\r\n"),
    }
}

/// Appends a map header of `len` pairs: RESP3's `%len`, RESP2's flat
/// array `*2len`; the caller then appends key, value, key, value, ...
pub fn map_header(out: &mut Vec<u8>, len: usize, proto: Proto) {
    match proto {
        Proto::Resp2 => write_header(out, b'*', 2 * len as u64),
        Proto::Resp3 => write_header(out, b'%', len as u64),
    }
}

/// Appends a set header: RESP3's `~len`, RESP2's array `*len`.
pub fn set_header(out: &mut Vec<u8>, len: usize, proto: Proto) {
    match proto {
        Proto::Resp2 => write_header(out, b'*', len as u64),
        Proto::Resp3 => write_header(out, b'~', len as u64),
    }
}

/// Appends text a human reads (INFO, CLIENT LIST): RESP3's verbatim string
/// `=len\r\ntxt:...`, RESP2's bulk string.
pub fn verbatim(out: &mut Vec<u8>, text: &[u8], proto: Proto) {
    match proto {
        Proto::Resp2 => bulk(out, text),
        Proto::Resp3 => {
            out.reserve(text.len() + 29);
            write_header(out, b'=', text.len() as u64 + 4);
            out.extend_from_slice(b"txt:");
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Appends a request as a multibulk: `*<n>\r\n` then one bulk per argument.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let payload: usize = args.iter().map(|a| a.len() + 25).sum();
    out.reserve(payload + 23);
    array_header(out, args.len());
    for a in args {
        bulk(out, a);
    }
}

// ---------------------------------------------------------------------------
// Reply parser (client side)
// ---------------------------------------------------------------------------

/// One parsed RESP2 reply, borrowing its bytes from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Status reply `+...`, without prefix and `\r\n`.
    Simple(&'a [u8]),
    /// Error reply `-...`, without prefix and `\r\n` (e.g. `ERR ...`).
    Error(&'a [u8]),
    /// Integer reply `:...`.
    Integer(i64),
    /// Bulk string `$...`; `None` is the null bulk `$-1`.
    Bulk(Option<&'a [u8]>),
    /// Array `*...`; `None` is the null array `*-1`.
    Array(Option<Vec<Reply<'a>>>),
}

/// Classification of a reply, as returned by [`skip_reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// Status reply `+...`.
    Simple,
    /// Error reply `-...`.
    Error,
    /// Integer reply, with its value.
    Integer(i64),
    /// Non-null bulk string.
    Bulk,
    /// Null bulk string `$-1`.
    NullBulk,
    /// Non-null array, with its (top-level) element count.
    Array(usize),
    /// Null array `*-1`.
    NullArray,
}

/// Where one reply ends and what it is, as returned by [`skip_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySummary {
    /// Type of the (outermost) reply.
    pub kind: ReplyKind,
    /// Bytes the whole reply (including nested elements) occupies.
    pub consumed: usize,
    /// For [`ReplyKind::Bulk`] the payload range, for [`ReplyKind::Simple`]
    /// and [`ReplyKind::Error`] the text range (without prefix/`\r\n`);
    /// `None` for the other kinds.
    pub value: Option<Range<usize>>,
}

/// One reply header or scalar: kind, payload range, index after it.
type Item = (ReplyKind, Option<Range<usize>>, usize);

/// Reads a single reply element starting at `buf[pos]`; for arrays only the
/// header is read.
fn read_item(buf: &[u8], pos: usize) -> Result<Option<Item>, RespError> {
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    let p = pos + 1;
    match t {
        b'+' | b'-' => {
            let kind = if t == b'+' {
                ReplyKind::Simple
            } else {
                ReplyKind::Error
            };
            let Some(off) = buf[p..].iter().position(|&b| b == b'\r' || b == b'\n') else {
                return Ok(None);
            };
            let end = p + off;
            match (buf[end], buf.get(end + 1)) {
                (b'\r', None) => Ok(None),
                (b'\r', Some(b'\n')) => Ok(Some((kind, Some(p..end), end + 2))),
                _ => Err(RespError::InvalidLine),
            }
        }
        b':' => Ok(
            read_int(buf, p, i64::MIN, i64::MAX, RespError::InvalidInteger)?
                .map(|(v, next)| (ReplyKind::Integer(v), None, next)),
        ),
        b'$' => {
            let Some((len, start)) = read_int(buf, p, -1, i64::MAX, RespError::InvalidBulkLength)?
            else {
                return Ok(None);
            };
            if len < 0 {
                return Ok(Some((ReplyKind::NullBulk, None, start)));
            }
            let len = usize::try_from(len).map_err(|_| RespError::InvalidBulkLength)?;
            let end = start.saturating_add(len);
            if !check_bulk_terminator(buf, end)? {
                return Ok(None);
            }
            Ok(Some((ReplyKind::Bulk, Some(start..end), end + 2)))
        }
        b'*' => {
            let Some((n, next)) =
                read_int(buf, p, -1, i64::MAX, RespError::InvalidMultibulkLength)?
            else {
                return Ok(None);
            };
            if n < 0 {
                return Ok(Some((ReplyKind::NullArray, None, next)));
            }
            let n = usize::try_from(n).map_err(|_| RespError::InvalidMultibulkLength)?;
            Ok(Some((ReplyKind::Array(n), None, next)))
        }
        other => Err(RespError::UnknownReplyType(other)),
    }
}

/// Finds the end of the first reply in `buf` and classifies it, without
/// allocating and without any nesting limit.
///
/// Returns `Ok(None)` if the reply is incomplete, `Err` if it is malformed.
pub fn skip_reply(buf: &[u8]) -> Result<Option<ReplySummary>, RespError> {
    let Some((kind, value, mut pos)) = read_item(buf, 0)? else {
        return Ok(None);
    };
    let mut pending: u64 = match kind {
        ReplyKind::Array(n) => n as u64,
        _ => 0,
    };
    while pending > 0 {
        let Some((k, _, next)) = read_item(buf, pos)? else {
            return Ok(None);
        };
        pos = next;
        pending -= 1;
        if let ReplyKind::Array(n) = k {
            pending = pending.saturating_add(n as u64);
        }
    }
    Ok(Some(ReplySummary {
        kind,
        consumed: pos,
        value,
    }))
}

/// Parses the first reply in `buf` into a borrowed [`Reply`] tree.
///
/// [`encode_command`] writes a request as a multibulk. [`parse_reply`] parses
/// one reply into a borrowed [`Reply`] tree (arrays allocate; nesting is
/// limited to [`MAX_REPLY_DEPTH`] so that building, comparing and dropping the
/// tree cannot overflow the stack). [`skip_reply`] only finds where one reply
/// ends and classifies it, without allocating and without a depth limit; it is
/// meant for benchmarks counting replies. Reply lengths are not limited (the
/// client trusts its server), but are still overflow-checked.
///
/// Returns `Ok(Some((reply, consumed)))`, `Ok(None)` if the reply is
/// incomplete, or `Err` if it is malformed or nested deeper than
/// [`MAX_REPLY_DEPTH`].
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, RespError> {
    // Validate and find the end first: afterwards every declared array length
    // is known to be backed by real bytes (>= 3 per element), so the
    // `with_capacity` below cannot be abused to allocate absurd amounts.
    let Some(summary) = skip_reply(buf)? else {
        return Ok(None);
    };
    let buf = &buf[..summary.consumed];
    // Open arrays: (elements so far, elements still expected).
    let mut stack: Vec<(Vec<Reply<'_>>, usize)> = Vec::new();
    let mut pos = 0;
    loop {
        let Some((kind, value, next)) = read_item(buf, pos)? else {
            // Unreachable after a successful `skip_reply`.
            return Ok(None);
        };
        pos = next;
        let range = value.unwrap_or(0..0);
        let mut reply = match kind {
            ReplyKind::Simple => Reply::Simple(&buf[range]),
            ReplyKind::Error => Reply::Error(&buf[range]),
            ReplyKind::Integer(v) => Reply::Integer(v),
            ReplyKind::Bulk => Reply::Bulk(Some(&buf[range])),
            ReplyKind::NullBulk => Reply::Bulk(None),
            ReplyKind::NullArray => Reply::Array(None),
            ReplyKind::Array(0) => Reply::Array(Some(Vec::new())),
            ReplyKind::Array(n) => {
                if stack.len() >= MAX_REPLY_DEPTH {
                    return Err(RespError::ReplyTooDeep);
                }
                stack.push((Vec::with_capacity(n.min(buf.len() / 3)), n));
                continue;
            }
        };
        // Attach the finished value to its parent, closing completed arrays.
        loop {
            match stack.pop() {
                None => return Ok(Some((reply, pos))),
                Some((mut items, expected)) => {
                    items.push(reply);
                    if items.len() < expected {
                        stack.push((items, expected));
                        break;
                    }
                    reply = Reply::Array(Some(items));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp3_types_and_their_resp2_shapes() {
        let enc = |f: &dyn Fn(&mut Vec<u8>, Proto)| {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            f(&mut a, Proto::Resp2);
            f(&mut b, Proto::Resp3);
            (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap())
        };
        assert_eq!(enc(&|o, p| null(o, p)), ("$-1\r\n".into(), "_\r\n".into()));
        assert_eq!(
            enc(&|o, p| map_header(o, 2, p)),
            ("*4\r\n".into(), "%2\r\n".into())
        );
        assert_eq!(
            enc(&|o, p| set_header(o, 3, p)),
            ("*3\r\n".into(), "~3\r\n".into())
        );
        assert_eq!(
            enc(&|o, p| verbatim(o, b"a:1\r\n", p)),
            ("$5\r\na:1\r\n\r\n".into(), "=9\r\ntxt:a:1\r\n\r\n".into())
        );
    }

    fn lim() -> Limits {
        Limits::default()
    }

    type Parsed = Option<(Vec<Vec<u8>>, usize)>;

    /// Parses one command and returns its arguments as owned byte vectors.
    fn parse_one(buf: &[u8]) -> Result<Parsed, RespError> {
        let mut args = Vec::new();
        Ok(parse_command(buf, &lim(), &mut args)?
            .map(|n| (args.iter().map(|r| buf[r.clone()].to_vec()).collect(), n)))
    }

    fn owned(args: &[&[u8]]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.to_vec()).collect()
    }

    fn encoded(args: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_command(&mut v, args);
        v
    }

    /// Parses all complete commands in `buf`; returns them and the bytes used.
    fn parse_all(buf: &[u8], limits: &Limits) -> (Vec<Vec<Vec<u8>>>, usize) {
        let mut args = Vec::new();
        let mut cmds = Vec::new();
        let mut pos = 0;
        while let Some(n) = parse_command(&buf[pos..], limits, &mut args).unwrap() {
            assert!(n >= 1);
            let base = &buf[pos..];
            cmds.push(args.iter().map(|r| base[r.clone()].to_vec()).collect());
            pos += n;
        }
        (cmds, pos)
    }

    fn sample_commands() -> Vec<Vec<Vec<u8>>> {
        vec![
            owned(&[b"SET", b"key", b"value"]),
            owned(&[b"GET", b"key"]),
            owned(&[b"SET", b"bin", b"a\r\nb\0c$3\r\n*1\r\n"]),
            owned(&[b"PING"]),
            owned(&[b"SET", b"", b""]),
            owned(&[b"MSET", b"k1", b"v1", b"k2", b"0123456789abcdef"]),
        ]
    }

    #[test]
    fn multibulk_single() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let (args, n) = parse_one(buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(args, owned(&[b"SET", b"k", b"hello"]));
    }

    #[test]
    fn pipelined_round_trip() {
        let cmds = sample_commands();
        let mut buf = Vec::new();
        for c in &cmds {
            let refs: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            encode_command(&mut buf, &refs);
        }
        buf.extend_from_slice(b"*2\r\n$3\r\nGE"); // trailing partial command
        let (got, used) = parse_all(&buf, &lim());
        assert_eq!(got, cmds);
        assert_eq!(&buf[used..], b"*2\r\n$3\r\nGE");
    }

    #[test]
    fn split_at_every_byte_position() {
        let mut streams: Vec<Vec<u8>> = sample_commands()
            .iter()
            .map(|c| {
                let refs: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
                encoded(&refs)
            })
            .collect();
        streams.push(b"SET k \"hello world\" 'x'\r\n".to_vec());
        streams.push(b"PING\n".to_vec());
        streams.push(b"*0\r\n".to_vec());
        streams.push(b"*-1\r\n".to_vec());
        let mut args = Vec::new();
        for s in &streams {
            for k in 0..s.len() {
                assert_eq!(
                    parse_command(&s[..k], &lim(), &mut args),
                    Ok(None),
                    "prefix {k} of {:?}",
                    String::from_utf8_lossy(s)
                );
                assert!(args.is_empty());
            }
            assert_eq!(parse_command(s, &lim(), &mut args), Ok(Some(s.len())));
        }
    }

    #[test]
    fn byte_by_byte_stream() {
        let cmds = sample_commands();
        let mut wire = Vec::new();
        for c in &cmds {
            let refs: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            encode_command(&mut wire, &refs);
        }
        let mut rbuf: Vec<u8> = Vec::new();
        let mut args = Vec::new();
        let mut got = Vec::new();
        for &b in &wire {
            rbuf.push(b);
            while let Some(n) = parse_command(&rbuf, &lim(), &mut args).unwrap() {
                got.push(
                    args.iter()
                        .map(|r| rbuf[r.clone()].to_vec())
                        .collect::<Vec<_>>(),
                );
                rbuf.drain(..n);
            }
        }
        assert!(rbuf.is_empty());
        assert_eq!(got, cmds);
    }

    #[test]
    fn inline_commands() {
        let (a, n) = parse_one(b"SET k v\r\nGET k\r\n").unwrap().unwrap();
        assert_eq!((a, n), (owned(&[b"SET", b"k", b"v"]), 9));
        let (a, n) = parse_one(b"  GET \t key  \n").unwrap().unwrap();
        assert_eq!((a, n), (owned(&[b"GET", b"key"]), 14));
        // Bare CR inside a line is whitespace (Redis uses isspace).
        let (a, _) = parse_one(b"A\rB\r\n").unwrap().unwrap();
        assert_eq!(a, owned(&[b"A", b"B"]));
        // NUL is an ordinary byte.
        let (a, _) = parse_one(b"SET k\0 v\n").unwrap().unwrap();
        assert_eq!(a, owned(&[b"SET", b"k\0", b"v"]));
        // Inline and multibulk can be mixed in a pipeline.
        let (cmds, used) = parse_all(b"PING\r\n*1\r\n$4\r\nPING\r\nECHO hi\n", &lim());
        assert_eq!(used, 28);
        assert_eq!(
            cmds,
            vec![
                owned(&[b"PING"]),
                owned(&[b"PING"]),
                owned(&[b"ECHO", b"hi"])
            ]
        );
        assert_eq!(parse_one(b"GET k"), Ok(None));
        assert_eq!(parse_one(b"GET k\r"), Ok(None));
    }

    #[test]
    fn inline_quotes() {
        let (a, _) = parse_one(b"SET k \"hello world\"\r\n").unwrap().unwrap();
        assert_eq!(a, owned(&[b"SET", b"k", b"hello world"]));
        let (a, _) = parse_one(b"SET '' \"\" 'a\\b' \"it's\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(a, owned(&[b"SET", b"", b"", b"a\\b", b"it's"]));
        let (a, _) = parse_one(b"X \"a\"\t'b'\n").unwrap().unwrap();
        assert_eq!(a, owned(&[b"X", b"a", b"b"]));
    }

    #[test]
    fn inline_quote_errors() {
        for bad in [
            &b"SET k \"abc\r\n"[..],
            b"SET k 'abc\n",
            b"SET k \"abc\"def\n",
            b"SET k 'a'b\n",
            b"SET k \"abc\\\n",
        ] {
            assert_eq!(parse_one(bad), Err(RespError::UnbalancedQuotes), "{bad:?}");
        }
        for bad in [
            &b"SET k \"a\\nb\"\n"[..],
            b"SET k 'it\\'s'\n",
            b"SET k ab\"cd\"\n",
            b"SET k ab'\n",
        ] {
            assert_eq!(
                parse_one(bad),
                Err(RespError::UnsupportedInlineQuoting),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn empty_commands_are_consumed_with_zero_args() {
        for (buf, n) in [
            (&b"\r\n"[..], 2),
            (b"\n", 1),
            (b"   \t \r\n", 7),
            (b"*0\r\n", 4),
            (b"*-1\r\n", 5),
            (b"*-5\r\n", 5),
            (b"*-9223372036854775808\r\n", 23),
        ] {
            let (a, used) = parse_one(buf).unwrap().unwrap();
            assert!(a.is_empty(), "{buf:?}");
            assert_eq!(used, n, "{buf:?}");
        }
        let (cmds, used) = parse_all(b"\r\n\r\nPING\r\n", &lim());
        assert_eq!(used, 10);
        assert_eq!(cmds, vec![vec![], vec![], owned(&[b"PING"])]);
    }

    #[test]
    fn binary_safe_bulk() {
        let all: Vec<u8> = (0..=255u8).collect();
        let tricky: &[u8] = b"\r\n$5\r\n*2\r\n\r\n";
        let buf = encoded(&[b"SET", tricky, &all]);
        let (a, n) = parse_one(&buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(a, vec![b"SET".to_vec(), tricky.to_vec(), all]);
    }

    #[test]
    fn limits_detected_from_header_alone() {
        let small = Limits {
            max_bulk_len: 10,
            max_args: 3,
            max_inline_len: 8,
        };
        let mut args = Vec::new();
        let mut p = |b: &[u8]| parse_command(b, &small, &mut args);
        // Bulk exactly at the limit is fine; one more is an error before any
        // payload byte (and even before the header's CRLF).
        assert_eq!(p(b"*1\r\n$10\r\n"), Ok(None));
        assert_eq!(p(b"*1\r\n$11\r\n"), Err(RespError::InvalidBulkLength));
        assert_eq!(p(b"*1\r\n$11"), Err(RespError::InvalidBulkLength));
        assert_eq!(p(b"*1\r\n$1"), Ok(None));
        assert_eq!(p(b"*3\r\n"), Ok(None));
        assert_eq!(p(b"*4\r\n"), Err(RespError::InvalidMultibulkLength));
        assert_eq!(p(b"*4"), Err(RespError::InvalidMultibulkLength));
        // Inline: 8 bytes + CRLF ok, 9 bytes rejected with or without newline.
        assert_eq!(p(b"12345678\r\n"), Ok(Some(10)));
        assert_eq!(p(b"12345678\n"), Ok(Some(9)));
        assert_eq!(p(b"12345678"), Ok(None));
        assert_eq!(p(b"123456789\n"), Err(RespError::TooBigInline));
        assert_eq!(p(b"123456789\r\n"), Err(RespError::TooBigInline));
        assert_eq!(p(b"1234567890"), Err(RespError::TooBigInline));
        assert_eq!(p(b"a b c d\n"), Err(RespError::InvalidMultibulkLength));

        // Defaults: 8 MiB bulk, 1 Mi args, 64 KiB inline.
        let d = lim();
        let mut args = Vec::new();
        let hdr = format!("*1\r\n${}\r\n", DEFAULT_MAX_BULK_LEN + 1);
        assert_eq!(
            parse_command(hdr.as_bytes(), &d, &mut args),
            Err(RespError::InvalidBulkLength)
        );
        let hdr = format!("*1\r\n${}\r\n", DEFAULT_MAX_BULK_LEN);
        assert_eq!(parse_command(hdr.as_bytes(), &d, &mut args), Ok(None));
        let hdr = format!("*{}\r\n", DEFAULT_MAX_ARGS + 1);
        assert_eq!(
            parse_command(hdr.as_bytes(), &d, &mut args),
            Err(RespError::InvalidMultibulkLength)
        );
        let long = vec![b'a'; DEFAULT_MAX_INLINE_LEN + 2];
        assert_eq!(
            parse_command(&long, &d, &mut args),
            Err(RespError::TooBigInline)
        );
        assert_eq!(
            parse_command(&long[..DEFAULT_MAX_INLINE_LEN], &d, &mut args),
            Ok(None)
        );
    }

    #[test]
    fn huge_lengths_do_not_overflow() {
        let unlimited = Limits {
            max_bulk_len: usize::MAX,
            max_args: usize::MAX,
            max_inline_len: usize::MAX,
        };
        let mut args = Vec::new();
        for l in [lim(), unlimited] {
            let mut p = |b: &[u8]| parse_command(b, &l, &mut args);
            assert_eq!(
                p(b"*1\r\n$99999999999999999999\r\n"),
                Err(RespError::InvalidBulkLength)
            );
            assert_eq!(
                p(b"*1\r\n$18446744073709551616\r\n"),
                Err(RespError::InvalidBulkLength)
            );
            assert_eq!(
                p(b"*99999999999999999999\r\n"),
                Err(RespError::InvalidMultibulkLength)
            );
            assert_eq!(
                p(b"*-99999999999999999999\r\n"),
                Err(RespError::InvalidMultibulkLength)
            );
            assert_eq!(
                p(b"*-9223372036854775809\r\n"),
                Err(RespError::InvalidMultibulkLength)
            );
        }
        // With no limit the largest i64 is a valid (just incomplete) length.
        assert_eq!(
            parse_command(b"*1\r\n$9223372036854775807\r\nabc", &unlimited, &mut args),
            Ok(None)
        );
        assert_eq!(
            parse_command(b"*9223372036854775807\r\n", &unlimited, &mut args),
            Ok(None)
        );
        assert_eq!(
            parse_command(b"*1\r\n$9223372036854775808\r\n", &unlimited, &mut args),
            Err(RespError::InvalidBulkLength)
        );
        assert_eq!(parse_command(&[b'x'; 64], &unlimited, &mut args), Ok(None));
    }

    #[test]
    fn malformed_requests() {
        use RespError::*;
        let cases: &[(&[u8], RespError)] = &[
            (b"*1\r\nx", ExpectedDollar(b'x')),
            (b"*2\r\n$1\r\na\r\n:1\r\n", ExpectedDollar(b':')),
            (b"*\r\n", InvalidMultibulkLength),
            (b"*abc\r\n", InvalidMultibulkLength),
            (b"*01\r\n", InvalidMultibulkLength),
            (b"*-0\r\n", InvalidMultibulkLength),
            (b"*+1\r\n", InvalidMultibulkLength),
            (b"* 1\r\n", InvalidMultibulkLength),
            (b"*1\rx", InvalidMultibulkLength),
            (b"*1\n", InvalidMultibulkLength),
            (b"*1\r\n$\r\n", InvalidBulkLength),
            (b"*1\r\n$-1\r\n", InvalidBulkLength),
            (b"*1\r\n$01\r\n", InvalidBulkLength),
            (b"*1\r\n$3x", InvalidBulkLength),
            (b"*1\r\n$3\rx", InvalidBulkLength),
            (b"*1\r\n$3\r\nfooXY", BulkNotTerminated),
            (b"*1\r\n$3\r\nfoo\rX", BulkNotTerminated),
            (b"*1\r\n$3\r\nfoo\n", BulkNotTerminated),
        ];
        for (buf, e) in cases {
            assert_eq!(
                parse_one(buf),
                Err(*e),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
        assert_eq!(parse_one(b"*1\r\n$0\r\n\r\n"), Ok(Some((vec![vec![]], 10))));
        assert_eq!(parse_one(b"*1\r\n$3\r\nfoo\r"), Ok(None));
    }

    #[test]
    fn error_texts_match_redis() {
        use RespError::*;
        let t = |e: RespError| e.to_string();
        assert_eq!(
            t(InvalidMultibulkLength),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(t(InvalidBulkLength), "Protocol error: invalid bulk length");
        assert_eq!(
            t(ExpectedDollar(b'x')),
            "Protocol error: expected '$', got 'x'"
        );
        assert_eq!(
            t(ExpectedDollar(b'\n')),
            "Protocol error: expected '$', got '\\x0a'"
        );
        assert_eq!(t(TooBigInline), "Protocol error: too big inline request");
        assert_eq!(
            t(UnbalancedQuotes),
            "Protocol error: unbalanced quotes in request"
        );
        assert!(t(UnknownReplyType(0xff)).ends_with("'\\xff'"));
        assert!(InvalidBulkLength.is_fatal());
        assert!(UnsupportedInlineQuoting.is_fatal());
    }

    #[test]
    fn args_are_cleared_and_reused() {
        let mut args = vec![0..1, 5..9];
        assert_eq!(parse_command(b"*1\r\n", &lim(), &mut args), Ok(None));
        assert!(args.is_empty());
        assert_eq!(
            parse_command(b"*1\r\n$1\r\na\r\n", &lim(), &mut args),
            Ok(Some(11))
        );
        assert_eq!(args, vec![8..9]);
        assert!(parse_command(b"*1\r\n?", &lim(), &mut args).is_err());
        assert!(args.is_empty());
        assert_eq!(parse_command(b"", &lim(), &mut args), Ok(None));
    }

    #[test]
    fn encoders_exact_bytes() {
        let mut o = Vec::new();
        simple(&mut o, "OK");
        error(&mut o, "ERR unknown command 'foo'");
        error(&mut o, "ERR bad\r\nthing\n");
        simple(&mut o, "a\rb");
        integer(&mut o, 0);
        integer(&mut o, -1);
        integer(&mut o, 1000);
        integer(&mut o, i64::MAX);
        integer(&mut o, i64::MIN);
        bulk(&mut o, b"hello");
        bulk(&mut o, b"");
        bulk(&mut o, b"a\r\nb");
        null_bulk(&mut o);
        array_header(&mut o, 2);
        array_header(&mut o, 0);
        null_array(&mut o);
        let expected: &[u8] = b"+OK\r\n\
            -ERR unknown command 'foo'\r\n\
            -ERR bad  thing \r\n\
            +a b\r\n\
            :0\r\n:-1\r\n:1000\r\n\
            :9223372036854775807\r\n:-9223372036854775808\r\n\
            $5\r\nhello\r\n$0\r\n\r\n$4\r\na\r\nb\r\n$-1\r\n\
            *2\r\n*0\r\n*-1\r\n";
        assert_eq!(
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(expected)
        );
    }

    #[test]
    fn integer_formatter_matches_std() {
        let mut values = vec![0i64, 1, -1, 9, 10, 11, 99, 100, 101, i64::MAX, i64::MIN];
        let mut p = 1i64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1, -p + 1, -p, -p - 1]);
            p = next;
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x as i64 >> (x % 64));
        }
        let mut o = Vec::new();
        for v in values {
            o.clear();
            integer(&mut o, v);
            assert_eq!(o, format!(":{v}\r\n").into_bytes());
        }
    }

    #[test]
    fn encode_command_bytes() {
        let mut o = Vec::new();
        encode_command(&mut o, &[b"SET", b"k", b"v\r\n"]);
        assert_eq!(o, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n");
        o.clear();
        encode_command(&mut o, &[]);
        assert_eq!(o, b"*0\r\n");
    }

    #[test]
    fn reply_scalars() {
        let p = |b: &'static [u8]| parse_reply(b).unwrap().unwrap();
        assert_eq!(p(b"+OK\r\n"), (Reply::Simple(b"OK"), 5));
        assert_eq!(p(b"+\r\n"), (Reply::Simple(b""), 3));
        assert_eq!(p(b"-ERR x\r\n"), (Reply::Error(b"ERR x"), 8));
        assert_eq!(p(b":-42\r\n"), (Reply::Integer(-42), 6));
        assert_eq!(
            p(b":-9223372036854775808\r\n"),
            (Reply::Integer(i64::MIN), 23)
        );
        assert_eq!(p(b"$3\r\na\r\n\r\n"), (Reply::Bulk(Some(b"a\r\n")), 9));
        assert_eq!(p(b"$0\r\n\r\n"), (Reply::Bulk(Some(b"")), 6));
        assert_eq!(p(b"$-1\r\n+OK\r\n"), (Reply::Bulk(None), 5));
        assert_eq!(p(b"*-1\r\n"), (Reply::Array(None), 5));
        assert_eq!(p(b"*0\r\n"), (Reply::Array(Some(vec![])), 4));
    }

    #[test]
    fn reply_nested_arrays() {
        let buf = b"*4\r\n*2\r\n:1\r\n$-1\r\n*-1\r\n*0\r\n*1\r\n*1\r\n-ERR e\r\n:9\r\n";
        let (r, n) = parse_reply(buf).unwrap().unwrap();
        assert_eq!(n, buf.len() - 4);
        assert_eq!(
            r,
            Reply::Array(Some(vec![
                Reply::Array(Some(vec![Reply::Integer(1), Reply::Bulk(None)])),
                Reply::Array(None),
                Reply::Array(Some(vec![])),
                Reply::Array(Some(vec![Reply::Array(Some(vec![Reply::Error(b"ERR e")]))])),
            ]))
        );
        let s = skip_reply(buf).unwrap().unwrap();
        assert_eq!(s.kind, ReplyKind::Array(4));
        assert_eq!(s.consumed, n);
    }

    #[test]
    fn reply_partial_input() {
        let mut wire = Vec::new();
        array_header(&mut wire, 3);
        bulk(&mut wire, b"v\r\n1");
        null_bulk(&mut wire);
        array_header(&mut wire, 2);
        integer(&mut wire, -7);
        simple(&mut wire, "OK");
        for k in 0..wire.len() {
            assert_eq!(parse_reply(&wire[..k]), Ok(None), "prefix {k}");
            assert_eq!(skip_reply(&wire[..k]), Ok(None), "prefix {k}");
        }
        let (r, n) = parse_reply(&wire).unwrap().unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(
            r,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"v\r\n1")),
                Reply::Bulk(None),
                Reply::Array(Some(vec![Reply::Integer(-7), Reply::Simple(b"OK")])),
            ]))
        );
    }

    #[test]
    fn skip_reply_summaries() {
        let s = |b: &[u8]| skip_reply(b).unwrap().unwrap();
        assert_eq!(
            s(b"$5\r\nhello\r\n+OK\r\n"),
            ReplySummary {
                kind: ReplyKind::Bulk,
                consumed: 11,
                value: Some(4..9)
            }
        );
        assert_eq!(
            s(b"+OK\r\n"),
            ReplySummary {
                kind: ReplyKind::Simple,
                consumed: 5,
                value: Some(1..3)
            }
        );
        assert_eq!(s(b"-ERR\r\n").kind, ReplyKind::Error);
        assert_eq!(s(b":12\r\n").kind, ReplyKind::Integer(12));
        assert_eq!(s(b"$-1\r\n").kind, ReplyKind::NullBulk);
        assert_eq!(s(b"*-1\r\n").kind, ReplyKind::NullArray);
        // Count GET/SET replies in a pipelined response stream.
        let mut wire = Vec::new();
        for i in 0..100 {
            if i % 3 == 0 {
                null_bulk(&mut wire);
            } else if i % 3 == 1 {
                bulk(&mut wire, b"value");
            } else {
                simple(&mut wire, "OK");
            }
        }
        let (mut pos, mut hits, mut count) = (0, 0, 0);
        while let Some(r) = skip_reply(&wire[pos..]).unwrap() {
            hits += usize::from(r.kind == ReplyKind::Bulk);
            count += 1;
            pos += r.consumed;
        }
        assert_eq!((count, hits, pos), (100, 33, wire.len()));
    }

    #[test]
    fn reply_errors() {
        use RespError::*;
        let cases: &[(&[u8], RespError)] = &[
            (b"?", UnknownReplyType(b'?')),
            (b"*1\r\n!", UnknownReplyType(b'!')),
            (b":\r\n", InvalidInteger),
            (b":1x\r\n", InvalidInteger),
            (b":99999999999999999999\r\n", InvalidInteger),
            (b"$-2\r\n", InvalidBulkLength),
            (b"$99999999999999999999\r\n", InvalidBulkLength),
            (b"$1\r\nabc", BulkNotTerminated),
            (b"*-2\r\n", InvalidMultibulkLength),
            (b"*99999999999999999999\r\n", InvalidMultibulkLength),
            (b"+OK\n", InvalidLine),
            (b"-ERR\rx", InvalidLine),
        ];
        for (buf, e) in cases {
            assert_eq!(
                parse_reply(buf),
                Err(*e),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
            assert_eq!(
                skip_reply(buf),
                Err(*e),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
        // Huge but well-formed declarations are merely incomplete.
        assert_eq!(parse_reply(b"$9223372036854775807\r\nab"), Ok(None));
        assert_eq!(parse_reply(b"*9223372036854775807\r\n:1\r\n"), Ok(None));
        assert_eq!(
            skip_reply(b"*9223372036854775807\r\n*9223372036854775807\r\n"),
            Ok(None)
        );
    }

    #[test]
    fn deep_nesting() {
        let depth = 100_000;
        let mut wire = b"*1\r\n".repeat(depth);
        wire.extend_from_slice(b":1\r\n");
        let s = skip_reply(&wire).unwrap().unwrap();
        assert_eq!(s.consumed, wire.len());
        assert_eq!(parse_reply(&wire), Err(RespError::ReplyTooDeep));
        // Exactly MAX_REPLY_DEPTH levels below the top is accepted.
        let mut ok = b"*1\r\n".repeat(MAX_REPLY_DEPTH);
        ok.extend_from_slice(b":1\r\n");
        assert!(parse_reply(&ok).unwrap().is_some());
        ok.splice(0..0, b"*1\r\n".iter().copied());
        assert_eq!(parse_reply(&ok), Err(RespError::ReplyTooDeep));
    }

    /// Checks the parser's invariants on one input.
    fn check_command(buf: &[u8], limits: &Limits, args: &mut Vec<Range<usize>>) {
        match parse_command(buf, limits, args) {
            Ok(Some(n)) => {
                assert!(n >= 1 && n <= buf.len());
                for r in args.iter() {
                    assert!(r.start <= r.end && r.end <= n);
                }
                // Every proper prefix of a complete command is incomplete.
                if n < 64 {
                    let mut tmp = Vec::new();
                    for k in 0..n {
                        assert_eq!(parse_command(&buf[..k], limits, &mut tmp), Ok(None));
                    }
                }
            }
            Ok(None) | Err(_) => assert!(args.is_empty()),
        }
    }

    fn check_reply(buf: &[u8]) {
        let skipped = skip_reply(buf);
        let parsed = parse_reply(buf);
        match (&skipped, &parsed) {
            (Ok(Some(s)), Ok(Some((_, n)))) => {
                assert_eq!(s.consumed, *n);
                assert!(*n >= 3 && *n <= buf.len());
                if let Some(r) = &s.value {
                    assert!(r.end <= *n);
                }
            }
            (Ok(Some(_)), Err(RespError::ReplyTooDeep)) => {}
            (a, b) => assert_eq!(
                a.clone().map(|o| o.map(|s| s.consumed)),
                b.clone().map(|o| o.map(|r| r.1))
            ),
        }
    }

    #[test]
    fn fuzz_never_panics() {
        const ALPHABET: &[u8] = b"*$+-:\r\n\r\n0123456789-  \t\"'\\abcSETGET\0\xff";
        let small = Limits {
            max_bulk_len: 16,
            max_args: 4,
            max_inline_len: 16,
        };
        let seeds: Vec<Vec<u8>> = vec![
            encoded(&[b"SET", b"key", b"va\r\nlue"]),
            encoded(&[b"GET", b"k"]),
            b"SET k \"a b\" 'c'\r\n".to_vec(),
            b"*2\r\n:1\r\n$-1\r\n".to_vec(),
            b"*3\r\n+OK\r\n-ERR x\r\n*1\r\n$2\r\nab\r\n".to_vec(),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut args = Vec::new();
        let mut buf = Vec::with_capacity(128);
        for _ in 0..200_000 {
            buf.clear();
            let r = rnd();
            if r % 2 == 0 {
                let len = (rnd() % 48) as usize;
                for _ in 0..len {
                    let v = rnd();
                    buf.push(if v % 8 == 0 {
                        v as u8 >> 3
                    } else {
                        ALPHABET[(v >> 3) as usize % ALPHABET.len()]
                    });
                }
            } else {
                buf.extend_from_slice(&seeds[(r >> 1) as usize % seeds.len()]);
                for _ in 0..1 + rnd() % 3 {
                    let v = rnd();
                    let at = (v >> 8) as usize % (buf.len() + 1);
                    match v % 4 {
                        0 if at < buf.len() => {
                            buf[at] = ALPHABET[(v >> 40) as usize % ALPHABET.len()]
                        }
                        1 => buf.insert(at, ALPHABET[(v >> 40) as usize % ALPHABET.len()]),
                        2 if at < buf.len() => {
                            buf.remove(at);
                        }
                        _ => buf.truncate(at),
                    }
                }
            }
            check_command(&buf, &lim(), &mut args);
            check_command(&buf, &small, &mut args);
            check_reply(&buf);
        }
    }

    #[test]
    fn random_round_trip() {
        let mut x = 0xdead_beef_cafe_f00du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..500 {
            let n = (rnd() % 5) as usize;
            let cmd: Vec<Vec<u8>> = (0..n)
                .map(|_| (0..rnd() % 20).map(|_| rnd() as u8).collect())
                .collect();
            let refs: Vec<&[u8]> = cmd.iter().map(|a| a.as_slice()).collect();
            encode_command(&mut wire, &refs);
            expected.push(cmd);
        }
        let (got, used) = parse_all(&wire, &lim());
        assert_eq!(used, wire.len());
        assert_eq!(got, expected);
    }
}
