//! The operation vocabulary every layer shares: what an operation is
//! ([`OpKind`]), how it can fail ([`OpError`]), what it returns
//! ([`OpResult`]), where a batch of them comes from ([`OpSource`]) and where
//! their results go ([`ReplySink`]).
//!
//! The protocol (native frames, RESP) and the store both speak this
//! vocabulary, so neither needs to know the other: a front end turns bytes
//! into ops, the store executes ops, a sink turns results back into bytes.
//! The native wire codes of kinds and errors are mapped here explicitly
//! (`wire_code` / `from_wire_code`), never through enum discriminants, so
//! reordering or adding a variant cannot silently change the wire format.
//!
//! This module owns no state and touches no I/O, store or socket.

/// What an operation does. The RESP front end maps commands onto these and
/// the native protocol carries them as [`OpKind::wire_code`], so both front
/// ends share one execution path and one forwarding path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Read a key: `Value` or `NotFound`.
    Get,
    /// Write a key unconditionally, clearing any TTL: `Ok`.
    Put,
    /// Remove a key: `Ok` if it existed, `NotFound` otherwise.
    Del,
    /// Write only if absent: `Ok`, or `NotFound` when it existed (not written).
    PutIfAbsent,
    /// Write only if present (clearing any TTL): `Ok`, or `NotFound` when
    /// absent (not written).
    PutIfPresent,
    /// Write (clearing any TTL) and return the previous value: `Value(old)`
    /// or `NotFound`.
    GetSet,
    /// Does the key exist: `Int(1)` or `Int(0)`.
    Exists,
    /// Add the signed decimal integer in the value to the key's decimal
    /// integer value (absent counts as 0), keeping its TTL: `Int(new)` or
    /// `NotInteger`.
    IncrBy,
    /// Length of the value: `Int(len)`, 0 when absent.
    Strlen,
    /// SET with options: value = [`ExpiryArg`] (flags [`arg::NX`],
    /// [`arg::XX`], [`arg::GET`], [`arg::KEEPTTL`], [`arg::REL`]; `when`
    /// 0: no expiry) then the value. Without GET: `Ok`, or `NotFound` when
    /// NX/XX did not hold; with GET: the old value or `NotFound`.
    Set,
    /// EXPIRE: value = [`ExpiryArg`] (flags NX/XX/GT/LT, REL); a time not
    /// after now deletes the key. `Int(1)` when set (or deleted), `Int(0)`
    /// when the key is absent or a condition did not hold.
    Expire,
    /// Remove the TTL: `Int(1)` if there was one, else `Int(0)`.
    Persist,
    /// The key's TTL or expiry time: value = one [`TtlMode`] byte. `Int(-2)`
    /// when absent, `Int(-1)` without TTL.
    Ttl,
    /// GETEX: value = [`ExpiryArg`] (flags PERSIST, REL; `when` 0: keep the
    /// TTL). `Value` or `NotFound`.
    GetEx,
    /// GETDEL: the value, and the key removed: `Value` or `NotFound`.
    GetDel,
    /// GETRANGE: value = `[start i64 LE][end i64 LE]` (inclusive, negative
    /// from the end, Redis's clamping): `Value` (empty when absent or the
    /// range is empty).
    GetRange,
    /// SETRANGE: value = `[offset u64 LE]` then the bytes to write there,
    /// padding with zero bytes past the end, keeping the TTL: `Int(new
    /// length)`, or [`OpError::StringTooLong`]. Writing nothing creates
    /// nothing (`Int` of the current length).
    SetRange,
    /// APPEND the value, keeping the TTL: `Int(new length)`, or
    /// [`OpError::StringTooLong`].
    Append,
    /// INCRBYFLOAT: add the decimal (floating point) text in the value to
    /// the key's (absent counts as 0), in C `long double` as Redis does,
    /// keeping the TTL: `Value(new text)`, [`OpError::NotFloat`] or
    /// [`OpError::NanOrInfinity`].
    IncrByFloat,
}

impl OpKind {
    /// A code no kind uses: how an op whose wire code was not recognised
    /// travels on (it is answered with [`OpError::BadOp`] by its owner).
    pub const UNKNOWN_WIRE_CODE: u8 = 0xFF;

    /// The native protocol's op code for this kind.
    #[inline]
    pub fn wire_code(self) -> u8 {
        match self {
            OpKind::Get => 0,
            OpKind::Put => 1,
            OpKind::Del => 2,
            OpKind::PutIfAbsent => 3,
            OpKind::PutIfPresent => 4,
            OpKind::GetSet => 5,
            OpKind::Exists => 6,
            OpKind::IncrBy => 7,
            OpKind::Strlen => 8,
            OpKind::Set => 9,
            OpKind::Expire => 10,
            OpKind::Persist => 11,
            OpKind::Ttl => 12,
            OpKind::GetEx => 13,
            OpKind::GetDel => 14,
            OpKind::GetRange => 15,
            OpKind::SetRange => 16,
            OpKind::Append => 17,
            OpKind::IncrByFloat => 18,
        }
    }

    /// Decodes a native op code; `None` for a code no kind uses.
    #[inline]
    pub fn from_wire_code(code: u8) -> Option<OpKind> {
        Some(match code {
            0 => OpKind::Get,
            1 => OpKind::Put,
            2 => OpKind::Del,
            3 => OpKind::PutIfAbsent,
            4 => OpKind::PutIfPresent,
            5 => OpKind::GetSet,
            6 => OpKind::Exists,
            7 => OpKind::IncrBy,
            8 => OpKind::Strlen,
            9 => OpKind::Set,
            10 => OpKind::Expire,
            11 => OpKind::Persist,
            12 => OpKind::Ttl,
            13 => OpKind::GetEx,
            14 => OpKind::GetDel,
            15 => OpKind::GetRange,
            16 => OpKind::SetRange,
            17 => OpKind::Append,
            18 => OpKind::IncrByFloat,
            _ => return None,
        })
    }

    /// True for operations that may add bytes to the store.
    #[inline]
    pub fn writes_value(self) -> bool {
        matches!(
            self,
            OpKind::Put
                | OpKind::PutIfAbsent
                | OpKind::PutIfPresent
                | OpKind::GetSet
                | OpKind::IncrBy
                | OpKind::Set
                | OpKind::SetRange
                | OpKind::Append
                | OpKind::IncrByFloat
        )
    }

    /// True for the read-modify-write kinds whose new value the store
    /// computes from the old one (its length is checked on the result, not
    /// on the argument).
    #[inline]
    pub fn computes_value(self) -> bool {
        matches!(
            self,
            OpKind::SetRange | OpKind::Append | OpKind::IncrByFloat
        )
    }
}

/// Flag bits of an [`ExpiryArg`].
pub mod arg {
    /// SET: only if absent. EXPIRE: only if the key has no TTL.
    pub const NX: u8 = 1;
    /// SET: only if present. EXPIRE: only if the key has a TTL.
    pub const XX: u8 = 2;
    /// SET: reply with the old value.
    pub const GET: u8 = 4;
    /// SET: keep the key's TTL.
    pub const KEEPTTL: u8 = 8;
    /// EXPIRE: only if the new expiry is later than the current one.
    pub const GT: u8 = 16;
    /// EXPIRE: only if the new expiry is earlier than the current one.
    pub const LT: u8 = 32;
    /// GETEX: remove the TTL.
    pub const PERSIST: u8 = 64;
    /// `when` is milliseconds from the executing shard's clock, not an
    /// absolute Unix time (the native client's `--ttl`).
    pub const REL: u8 = 128;
}

/// The argument of the expiry ops: `[flags u8][when i64 LE]`, followed by
/// the value for [`OpKind::Set`]. It travels inside the op's value, so a TTL
/// crosses shards and the wire like any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryArg {
    /// [`arg`] bits.
    pub flags: u8,
    /// Unix time in ms (or ms from now with [`arg::REL`]); 0: none (SET, GETEX).
    pub when: i64,
}

impl ExpiryArg {
    /// Encoded length.
    pub const LEN: usize = 9;

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.flags);
        out.extend_from_slice(&self.when.to_le_bytes());
    }

    /// Splits a value into its argument and the rest.
    #[inline]
    pub fn decode(value: &[u8]) -> Option<(ExpiryArg, &[u8])> {
        if value.len() < Self::LEN {
            return None;
        }
        let when = i64::from_le_bytes(value[1..9].try_into().ok()?);
        Some((
            ExpiryArg {
                flags: value[0],
                when,
            },
            &value[Self::LEN..],
        ))
    }
}

/// What [`OpKind::Ttl`] returns (the one byte of its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TtlMode {
    /// TTL: seconds left, rounded.
    Secs = 0,
    /// PTTL: milliseconds left.
    Millis = 1,
    /// EXPIRETIME: Unix time in seconds, rounded.
    AtSecs = 2,
    /// PEXPIRETIME: Unix time in milliseconds.
    AtMillis = 3,
}

/// A per-operation error. It becomes that operation's result; the rest of the
/// batch, the connection and the shard go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpError {
    /// The key is longer than the configured maximum.
    KeyTooLarge,
    /// The value is longer than the configured maximum.
    ValueTooLarge,
    /// The write would take the shard past its memory limit.
    OutOfMemory,
    /// Unknown operation code.
    BadOp,
    /// INCRBY on a value (or with an argument) that is not a 64-bit decimal
    /// integer, or the result overflows.
    NotInteger,
    /// The owner shard is gone (the node is shutting down).
    Unavailable,
    /// An expiry op whose argument is malformed (too short, negative time).
    BadArgument,
    /// The value was not sent: it would have taken the connection's reply
    /// past its bound (`--max-reply-bytes`, or what is left of the node's
    /// `--max-conn-memory`). The operation itself ran (a GETSET's write
    /// happened); read it again in a smaller batch.
    ReplyTooLarge,
    /// A write refused, or not made durable, because the shard's
    /// append-only log could not be written (disk full): Redis's MISCONF.
    PersistFailed,
    /// SETRANGE / APPEND would make the value longer than the maximum value
    /// size (Redis's proto-max-bulk-len error).
    StringTooLong,
    /// INCRBYFLOAT on a value (or with an argument) that is not a float.
    NotFloat,
    /// INCRBYFLOAT whose result would be NaN or infinite.
    NanOrInfinity,
    /// LCS's table would take more than the maximum value size (Redis's
    /// proto-max-bulk-len rule). Never a store result: the RESP front end
    /// computes LCS.
    LcsTooLarge,
}

impl OpError {
    /// The native protocol's per-op status code for this error (16 and up;
    /// codes below 16 are the success statuses).
    #[inline]
    pub fn wire_code(self) -> u8 {
        match self {
            OpError::KeyTooLarge => 16,
            OpError::ValueTooLarge => 17,
            OpError::OutOfMemory => 18,
            OpError::BadOp => 19,
            OpError::NotInteger => 20,
            OpError::Unavailable => 21,
            OpError::BadArgument => 22,
            OpError::ReplyTooLarge => 23,
            OpError::PersistFailed => 24,
            OpError::StringTooLong => 25,
            OpError::NotFloat => 26,
            OpError::NanOrInfinity => 27,
            OpError::LcsTooLarge => 28,
        }
    }

    /// Decodes a native status code into an error, if it is one.
    #[inline]
    pub fn from_wire_code(code: u8) -> Option<OpError> {
        Some(match code {
            16 => OpError::KeyTooLarge,
            17 => OpError::ValueTooLarge,
            18 => OpError::OutOfMemory,
            19 => OpError::BadOp,
            20 => OpError::NotInteger,
            21 => OpError::Unavailable,
            22 => OpError::BadArgument,
            23 => OpError::ReplyTooLarge,
            24 => OpError::PersistFailed,
            25 => OpError::StringTooLong,
            26 => OpError::NotFloat,
            27 => OpError::NanOrInfinity,
            28 => OpError::LcsTooLarge,
            _ => return None,
        })
    }

    /// A short human-readable description.
    pub fn message(self) -> &'static str {
        match self {
            OpError::KeyTooLarge => "key too large",
            OpError::ValueTooLarge => "value too large",
            OpError::OutOfMemory => "out of memory: the shard's --max-memory share is used up",
            OpError::BadOp => "unknown operation code",
            OpError::NotInteger => "value is not an integer or out of range",
            OpError::Unavailable => "owner shard unavailable (node shutting down)",
            OpError::BadArgument => "malformed expiry argument",
            OpError::ReplyTooLarge => {
                "reply too large: the value would take this connection's reply past --max-reply-bytes or the node's --max-conn-memory"
            }
            OpError::PersistFailed => {
                "the append-only log cannot be written (disk full?): writes are refused"
            }
            OpError::StringTooLong => "string exceeds maximum allowed size (proto-max-bulk-len)",
            OpError::NotFloat => "value is not a valid float",
            OpError::NanOrInfinity => "increment would produce NaN or Infinity",
            OpError::LcsTooLarge => {
                "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
            }
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// The result of one operation, borrowing a value from the store or a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpResult<'a> {
    /// A value (GET hit, GETSET's old value).
    Value(&'a [u8]),
    /// The key was absent (or a conditional write did not apply).
    NotFound,
    /// The write or delete was done.
    Ok,
    /// An integer result (EXISTS, INCRBY, STRLEN, TTL, EXPIRE).
    Int(i64),
    /// The operation failed; see [`OpError`].
    Err(OpError),
    /// The key's slot belongs to another node of the cluster: the op was not
    /// executed here. A client follows it to `node_id` (a RESP front end
    /// answers `-MOVED` before an op gets this far).
    Moved {
        /// The key's hash slot.
        slot: u16,
        /// The node that owns it.
        node_id: u16,
    },
}

/// An owned [`OpResult`]: what a client hands its caller, and what tests
/// collect replies into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedResult {
    /// A value.
    Value(Vec<u8>),
    /// Absent.
    NotFound,
    /// Done.
    Ok,
    /// An integer.
    Int(i64),
    /// A per-op error.
    Err(OpError),
    /// Still redirected after the client followed one redirect.
    Moved {
        /// The key's slot.
        slot: u16,
        /// The node the server named.
        node_id: u16,
    },
}

impl OwnedResult {
    /// Borrowed form.
    pub fn as_result(&self) -> OpResult<'_> {
        match self {
            OwnedResult::Value(v) => OpResult::Value(v),
            OwnedResult::NotFound => OpResult::NotFound,
            OwnedResult::Ok => OpResult::Ok,
            OwnedResult::Int(i) => OpResult::Int(*i),
            OwnedResult::Err(e) => OpResult::Err(*e),
            OwnedResult::Moved { slot, node_id } => OpResult::Moved {
                slot: *slot,
                node_id: *node_id,
            },
        }
    }
}

impl From<OpResult<'_>> for OwnedResult {
    fn from(r: OpResult<'_>) -> Self {
        match r {
            OpResult::Value(v) => OwnedResult::Value(v.to_vec()),
            OpResult::NotFound => OwnedResult::NotFound,
            OpResult::Ok => OwnedResult::Ok,
            OpResult::Int(i) => OwnedResult::Int(i),
            OpResult::Err(e) => OwnedResult::Err(e),
            OpResult::Moved { slot, node_id } => OwnedResult::Moved { slot, node_id },
        }
    }
}

/// One operation as a batch hands it out: its kind (`None` when the wire
/// carried a code no kind uses, answered with [`OpError::BadOp`]), key and
/// value (empty for kinds that take none).
pub type Op<'a> = (Option<OpKind>, &'a [u8], &'a [u8]);

/// Read access to a batch of operations, owned, archived or queued RESP
/// commands. The shard's execution loop is generic over it, so an archived
/// batch is executed in place.
pub trait OpSource {
    /// Number of operations.
    fn len(&self) -> usize;
    /// True when there is no operation.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Operation `i` (`i < len()`).
    fn op(&self, i: usize) -> Op<'_>;
    /// The key of operation `i`; the shard hashes keys ahead of execution.
    #[inline]
    fn key(&self, i: usize) -> &[u8] {
        self.op(i).1
    }
}

/// Where results go, in operation order. Implemented by the native reply
/// builder and by the RESP encoder, so results are written once, directly in
/// their wire form.
pub trait ReplySink {
    /// Appends the next operation's result.
    fn push(&mut self, result: OpResult<'_>);

    /// Value bytes this sink may still take before it refuses values with
    /// [`OpError::ReplyTooLarge`] (a bounded reply). Ops forwarded to another
    /// shard carry this bound, so their results are bounded there too.
    fn value_budget(&self) -> usize {
        usize::MAX
    }
}

/// Parses a decimal `i64` the way Redis does (no spaces, no `+`, no leading
/// zeros except "0"). INCRBY's grammar: the store applies it to values, the
/// RESP front end to arguments.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty()
        || text.starts_with('+')
        || (text.len() > 1 && text.starts_with('0'))
        || text.starts_with("-0")
    {
        return None;
    }
    text.parse().ok()
}

/// Formats an `i64` in decimal into `buf` without allocating.
pub fn format_i64(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_round_trip_and_stay_pinned() {
        let kinds = [
            OpKind::Get,
            OpKind::Put,
            OpKind::Del,
            OpKind::PutIfAbsent,
            OpKind::PutIfPresent,
            OpKind::GetSet,
            OpKind::Exists,
            OpKind::IncrBy,
            OpKind::Strlen,
            OpKind::Set,
            OpKind::Expire,
            OpKind::Persist,
            OpKind::Ttl,
            OpKind::GetEx,
            OpKind::GetDel,
            OpKind::GetRange,
            OpKind::SetRange,
            OpKind::Append,
            OpKind::IncrByFloat,
        ];
        for (code, k) in kinds.iter().enumerate() {
            assert_eq!(k.wire_code(), code as u8);
            assert_eq!(OpKind::from_wire_code(code as u8), Some(*k));
        }
        assert_eq!(OpKind::from_wire_code(OpKind::UNKNOWN_WIRE_CODE), None);
        let errors = [
            OpError::KeyTooLarge,
            OpError::ValueTooLarge,
            OpError::OutOfMemory,
            OpError::BadOp,
            OpError::NotInteger,
            OpError::Unavailable,
            OpError::BadArgument,
            OpError::ReplyTooLarge,
            OpError::PersistFailed,
            OpError::StringTooLong,
            OpError::NotFloat,
            OpError::NanOrInfinity,
            OpError::LcsTooLarge,
        ];
        for (i, e) in errors.iter().enumerate() {
            assert_eq!(e.wire_code(), 16 + i as u8);
            assert_eq!(OpError::from_wire_code(16 + i as u8), Some(*e));
        }
        assert_eq!(OpError::from_wire_code(3), None);
    }

    #[test]
    fn integers_follow_redis_grammar() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        for bad in [&b""[..], b"+1", b"01", b"-0", b" 1", b"1x"] {
            assert_eq!(parse_i64(bad), None);
        }
        let mut buf = [0u8; 20];
        assert_eq!(format_i64(i64::MIN, &mut buf), b"-9223372036854775808");
    }
}
