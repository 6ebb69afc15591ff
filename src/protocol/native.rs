//! The native protocol: length-prefixed frames carrying rkyv-archived batches.
//!
//! # Frame
//!
//! Every frame is a 16-byte header followed by a payload, zero-padded so the
//! whole frame is a multiple of 16 bytes. All integers are little-endian.
//!
//! | offset | size | field                                                  |
//! |-------:|-----:|--------------------------------------------------------|
//! | 0      | 2    | magic `b"CK"`                                          |
//! | 2      | 1    | protocol version ([`PROTOCOL_VERSION`])                |
//! | 3      | 1    | kind ([`FrameKind`])                                   |
//! | 4      | 4    | payload length in bytes, padding excluded              |
//! | 8      | 8    | request id, chosen by the client, echoed in the reply  |
//! | 16     | len  | payload: an rkyv archive (root at its end)             |
//! | 16+len | pad  | zeros up to the next multiple of 16                    |
//!
//! The padding keeps every payload 16-byte aligned inside a receive buffer
//! that is itself 16-byte aligned (an `AlignedVec<16>`), so a batch is
//! validated and read in place, with no copy, by `rkyv::access`.
//!
//! # Payloads
//!
//! | kind          | code | payload                          |
//! |---------------|-----:|----------------------------------|
//! | `Batch`       | 0x01 | [`Batch`]                         |
//! | `Hello`       | 0x02 | empty, or the `--requirepass` token (raw bytes) |
//! | `Stats`       | 0x03 | empty                             |
//! | `BatchReply`  | 0x81 | [`BatchReply`]                    |
//! | `HelloReply`  | 0x82 | [`Hello`]                         |
//! | `StatsReply`  | 0x83 | [`NodeStats`]                     |
//! | `Error`       | 0xFF | [`ErrorFrame`]; the server closes |
//!
//! A batch is a struct of arrays: op codes ([`OpKind::wire_code`]:
//! 0 GET, 1 PUT, 2 DEL, …, 9 SET with options, 10 EXPIRE, 11 PERSIST,
//! 12 TTL, 13 GETEX, 14 GETDEL, 15 GETRANGE, 16 SETRANGE, 17 APPEND,
//! 18 INCRBYFLOAT (their arguments in the value, see [`OpKind`]; errors 25–27
//! are theirs) — the expiry ops carry a 9-byte
//! [`ExpiryArg`](crate::op::ExpiryArg) at the start of their value, so
//! the frame layout did not change and the protocol version did not move; a
//! server older than these ops answers them with the `BadOp` status),
//! key end offsets into one key blob, value end
//! offsets into one value blob. Encoding is appending to five vectors;
//! decoding is one bounds-checking pass. A reply carries one status byte per
//! op ([`Status`]) and the values in the same struct-of-arrays form, in
//! request order; an op for a key another node of the cluster owns gets
//! [`Status::Moved`] (slot and owner node id) and is not executed. A
//! connection may have many batches in flight; the server
//! answers them in the order it received them, each with its request id.
//!
//! # Errors
//!
//! Per-operation problems (key too large, out of memory, …) are per-op
//! statuses. A frame that cannot be trusted (bad magic, unknown version or
//! kind, declared length over the limit, payload failing validation) is
//! answered with an `Error` frame and the connection is closed; the shard
//! goes on serving everyone else.

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::op::{arg, ExpiryArg, Op, OpError, OpKind, OpResult, OpSource, ReplySink, TtlMode};

/// Current protocol version, carried in every frame.
/// (2: HELLO carries the cluster, replies may carry `Moved`.)
pub const PROTOCOL_VERSION: u8 = 2;
/// Frame magic.
pub const MAGIC: [u8; 2] = *b"CK";
/// Size of the frame header.
pub const HEADER_LEN: usize = 16;
/// Alignment of payloads inside a frame stream.
pub const FRAME_ALIGN: usize = 16;

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A batch of operations.
    Batch = 0x01,
    /// Ask a node for its layout.
    Hello = 0x02,
    /// Ask a node for its counters.
    Stats = 0x03,
    /// Results of a batch.
    BatchReply = 0x81,
    /// A node's layout.
    HelloReply = 0x82,
    /// A node's counters.
    StatsReply = 0x83,
    /// A fatal error; the sender closes the connection after it.
    Error = 0xFF,
}

impl FrameKind {
    fn from_u8(v: u8) -> Option<FrameKind> {
        Some(match v {
            0x01 => FrameKind::Batch,
            0x02 => FrameKind::Hello,
            0x03 => FrameKind::Stats,
            0x81 => FrameKind::BatchReply,
            0x82 => FrameKind::HelloReply,
            0x83 => FrameKind::StatsReply,
            0xFF => FrameKind::Error,
            _ => return None,
        })
    }
}

/// Per-operation status codes in a [`BatchReply`]. Codes 16 and up are
/// errors, [`OpError::wire_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The op's value follows (GET hit).
    Value = 0,
    /// The key was absent.
    NotFound = 1,
    /// Done.
    Ok = 2,
    /// An integer result: the value is 8 bytes, little-endian `i64`.
    Int = 3,
    /// Not this node's key: the value is the slot (2 bytes LE) and the
    /// owning node id (2 bytes LE); the op was not executed.
    Moved = 4,
}

/// Why a frame was rejected. Each of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first two bytes are not `CK`.
    #[error("bad magic {0:02x?}: not a corekv native-protocol frame")]
    BadMagic([u8; 2]),
    /// A version this build does not speak.
    #[error("unsupported protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u8),
    /// Unknown frame kind.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// Declared payload length over the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The payload failed rkyv validation or a consistency check.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// More ops in one batch than allowed.
    #[error("batch of {ops} operations exceeds the limit of {max}")]
    TooManyOps {
        /// Ops in the batch.
        ops: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A frame kind that is not valid in this direction.
    #[error("unexpected frame kind {0:?}")]
    Unexpected(FrameKind),
    /// The shard already has its maximum number of connections.
    #[error("connection limit of {0} reached on this shard (--max-connections)")]
    TooManyConnections(usize),
    /// A password is set and this connection has not given it.
    #[error(
        "NOAUTH Authentication required: send HELLO with the node's --requirepass token first"
    )]
    NoAuth,
    /// The HELLO token is wrong.
    #[error("WRONGPASS invalid HELLO token (the node's --requirepass)")]
    WrongPass,
    /// The connection would pass the node's connection-memory budget.
    #[error("connection memory budget exhausted: the node's --max-conn-memory is in use by other connections")]
    ConnMemory,
    /// A request did not arrive completely within `--client-timeout`.
    #[error("request incomplete after {0:?} (--client-timeout)")]
    Timeout(std::time::Duration),
    /// Protected mode: no password is set and the client is not on loopback.
    #[error("DENIED corekv is running in protected mode because protected mode is enabled and no password is set: only loopback clients are accepted. Start the server with --requirepass (and give clients --password), or with --protected-mode no if the network is trusted")]
    ProtectedMode,
}

impl FrameError {
    /// The code carried in an [`ErrorFrame`].
    pub fn code(&self) -> u16 {
        match self {
            FrameError::BadMagic(_) => 1,
            FrameError::UnsupportedVersion(_) => 2,
            FrameError::UnknownKind(_) => 3,
            FrameError::TooLarge { .. } => 4,
            FrameError::Malformed(_) => 5,
            FrameError::TooManyOps { .. } => 6,
            FrameError::Unexpected(_) => 7,
            FrameError::TooManyConnections(_) => 8,
            FrameError::NoAuth => 9,
            FrameError::WrongPass => 10,
            FrameError::ConnMemory => 11,
            FrameError::Timeout(_) => 12,
            FrameError::ProtectedMode => 13,
        }
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the payload is.
    pub kind: FrameKind,
    /// Payload length, padding excluded.
    pub len: usize,
    /// Request id.
    pub request_id: u64,
}

impl FrameHeader {
    /// Parses and checks a header; `max_payload` bounds the declared length.
    pub fn parse(bytes: &[u8; HEADER_LEN], max_payload: usize) -> Result<FrameHeader, FrameError> {
        if bytes[0..2] != MAGIC {
            return Err(FrameError::BadMagic([bytes[0], bytes[1]]));
        }
        if bytes[2] != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion(bytes[2]));
        }
        let kind = FrameKind::from_u8(bytes[3]).ok_or(FrameError::UnknownKind(bytes[3]))?;
        let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        if len > max_payload {
            return Err(FrameError::TooLarge {
                len,
                max: max_payload,
            });
        }
        let request_id = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        Ok(FrameHeader {
            kind,
            len,
            request_id,
        })
    }

    /// Bytes the whole frame occupies on the wire (header, payload, padding).
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + padded(self.len)
    }
}

/// `len` rounded up to the frame alignment.
#[inline]
pub fn padded(len: usize) -> usize {
    (len + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

/// Appends one frame to `out`, whose payload is written by `payload` (which
/// appends to the vector it is given). `out.len()` must be a multiple of 16 so
/// that the payload's alignment matches the receiver's.
pub fn encode_frame<E>(
    out: &mut Vec<u8>,
    kind: FrameKind,
    request_id: u64,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    debug_assert_eq!(out.len() % FRAME_ALIGN, 0);
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&request_id.to_le_bytes());
    let body = out.len();
    if let Err(e) = payload(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - body;
    out[start + 4..start + 8].copy_from_slice(&(len as u32).to_le_bytes());
    out.resize(body + padded(len), 0);
    Ok(())
}

/// Appends a frame whose payload is the rkyv archive of `value`.
pub fn encode_archived<T>(
    out: &mut Vec<u8>,
    kind: FrameKind,
    request_id: u64,
    value: &T,
) -> Result<(), rancor::Error>
where
    T: for<'a, 'b> Serialize<
        rkyv::api::high::HighSerializer<
            &'b mut Vec<u8>,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    encode_frame(out, kind, request_id, |out| {
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, out).map(|_| ())
    })
}

/// Appends a frame with an empty payload (HELLO, STATS requests).
pub fn encode_empty(out: &mut Vec<u8>, kind: FrameKind, request_id: u64) {
    let _ = encode_frame::<()>(out, kind, request_id, |_| Ok(()));
}

/// Appends an error frame.
pub fn encode_error(out: &mut Vec<u8>, request_id: u64, err: &FrameError) {
    let frame = ErrorFrame {
        code: err.code(),
        message: err.to_string(),
    };
    // Serializing a String and a u16 into a Vec cannot fail.
    let _ = encode_archived(out, FrameKind::Error, request_id, &frame);
}

/// A batch of operations, struct-of-arrays. Also the owned form in which
/// forwarded operations travel between shards.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// One op code per operation ([`OpKind::wire_code`]).
    pub ops: Vec<u8>,
    /// Exclusive end offset of each op's key in `keys`.
    pub key_ends: Vec<u32>,
    /// All keys, back to back.
    pub keys: Vec<u8>,
    /// Exclusive end offset of each op's value in `values` (ops without a
    /// value add no bytes).
    pub value_ends: Vec<u32>,
    /// All values, back to back.
    pub values: Vec<u8>,
}

impl Batch {
    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.key_ends.clear();
        self.keys.clear();
        self.value_ends.clear();
        self.values.clear();
    }
    /// Appends an operation by raw code.
    #[inline]
    pub fn push_raw(&mut self, op: u8, key: &[u8], value: &[u8]) {
        self.ops.push(op);
        self.keys.extend_from_slice(key);
        self.key_ends.push(self.keys.len() as u32);
        self.values.extend_from_slice(value);
        self.value_ends.push(self.values.len() as u32);
    }
    /// Appends an operation.
    #[inline]
    pub fn push(&mut self, op: OpKind, key: &[u8], value: &[u8]) {
        self.push_raw(op.wire_code(), key, value)
    }
    /// Appends an operation as [`OpSource::op`] handed it out (an
    /// unrecognised kind travels as [`OpKind::UNKNOWN_WIRE_CODE`]).
    #[inline]
    pub fn push_op(&mut self, (kind, key, value): Op<'_>) {
        let code = kind.map_or(OpKind::UNKNOWN_WIRE_CODE, OpKind::wire_code);
        self.push_raw(code, key, value)
    }
    /// Appends a GET.
    pub fn get(&mut self, key: &[u8]) {
        self.push(OpKind::Get, key, b"")
    }
    /// Appends a PUT.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.push(OpKind::Put, key, value)
    }
    /// Appends a DEL.
    pub fn del(&mut self, key: &[u8]) {
        self.push(OpKind::Del, key, b"")
    }
    /// Appends a PUT that expires `ttl_ms` milliseconds after the owner
    /// shard executes it (its own clock: no skew between hosts matters).
    pub fn put_ttl(&mut self, key: &[u8], value: &[u8], ttl_ms: u64) {
        self.ops.push(OpKind::Set.wire_code());
        self.keys.extend_from_slice(key);
        self.key_ends.push(self.keys.len() as u32);
        ExpiryArg {
            flags: arg::REL,
            when: ttl_ms.min(i64::MAX as u64) as i64,
        }
        .encode(&mut self.values);
        self.values.extend_from_slice(value);
        self.value_ends.push(self.values.len() as u32);
    }
    /// Appends a PTTL read: `Int(ms left)`, -1 without TTL, -2 when absent.
    pub fn pttl(&mut self, key: &[u8]) {
        self.push(OpKind::Ttl, key, &[TtlMode::Millis as u8])
    }
    /// Appends an EXPIRE in `ttl_ms` milliseconds: `Int(1)`, or `Int(0)`
    /// when the key is absent.
    pub fn expire(&mut self, key: &[u8], ttl_ms: u64) {
        let mut v = [0u8; ExpiryArg::LEN];
        v[0] = arg::REL;
        v[1..].copy_from_slice(&(ttl_ms.min(i64::MAX as u64) as i64).to_le_bytes());
        self.push(OpKind::Expire, key, &v)
    }
    /// Appends a PERSIST: `Int(1)` if a TTL was removed.
    pub fn persist(&mut self, key: &[u8]) {
        self.push(OpKind::Persist, key, b"")
    }
    /// Operation `i` as `(op code, key, value)`.
    #[inline]
    pub fn op(&self, i: usize) -> (u8, &[u8], &[u8]) {
        let ks = if i == 0 {
            0
        } else {
            self.key_ends[i - 1] as usize
        };
        let vs = if i == 0 {
            0
        } else {
            self.value_ends[i - 1] as usize
        };
        (
            self.ops[i],
            &self.keys[ks..self.key_ends[i] as usize],
            &self.values[vs..self.value_ends[i] as usize],
        )
    }
}

impl OpSource for Batch {
    fn len(&self) -> usize {
        self.ops.len()
    }
    #[inline]
    fn op(&self, i: usize) -> Op<'_> {
        let (code, key, value) = Batch::op(self, i);
        (OpKind::from_wire_code(code), key, value)
    }
}

/// A validated, archived batch: rkyv validated the layout and
/// [`BatchView::new`] checked that the arrays agree and every offset is in
/// bounds, so [`OpSource::op`] cannot fail.
pub struct BatchView<'a> {
    ops: &'a [u8],
    key_ends: &'a [rkyv::rend::u32_le],
    keys: &'a [u8],
    value_ends: &'a [rkyv::rend::u32_le],
    values: &'a [u8],
}

/// Checks that `ends` are non-decreasing and within `blob_len`.
fn check_ends(ends: &[rkyv::rend::u32_le], blob_len: usize, what: &str) -> Result<(), FrameError> {
    let mut prev = 0u32;
    for e in ends {
        let e = e.to_native();
        if e < prev {
            return Err(FrameError::Malformed(format!(
                "{what} end offsets decrease ({prev} then {e})"
            )));
        }
        prev = e;
    }
    if prev as usize > blob_len {
        return Err(FrameError::Malformed(format!(
            "{what} end offset {prev} is past the {blob_len}-byte {what} blob"
        )));
    }
    Ok(())
}

/// The error for a payload that is not a valid archive of `what`. Says what
/// was expected, never the validator's internals.
fn not_an_archive(what: &str, payload: &[u8]) -> FrameError {
    let min = match what {
        "Batch" => std::mem::size_of::<ArchivedBatch>(),
        "BatchReply" => std::mem::size_of::<ArchivedBatchReply>(),
        _ => 0,
    };
    if payload.len() < min {
        return FrameError::Malformed(format!(
            "{what} payload of {} bytes is too short: an archived {what} is at least {min} bytes",
            payload.len()
        ));
    }
    FrameError::Malformed(format!(
        "{what} payload of {} bytes is not an archived {what}: its root must end the payload and every array must lie inside it",
        payload.len()
    ))
}

impl<'a> BatchView<'a> {
    /// Validates a batch payload (which must be 16-byte aligned).
    pub fn new(payload: &'a [u8], max_ops: usize) -> Result<BatchView<'a>, FrameError> {
        let b = rkyv::access::<ArchivedBatch, rancor::Error>(payload)
            .map_err(|_| not_an_archive("Batch", payload))?;
        let n = b.ops.len();
        if n > max_ops {
            return Err(FrameError::TooManyOps {
                ops: n,
                max: max_ops,
            });
        }
        if b.key_ends.len() != n || b.value_ends.len() != n {
            return Err(FrameError::Malformed(format!(
                "batch arrays disagree: {n} op codes, {} key ends, {} value ends",
                b.key_ends.len(),
                b.value_ends.len()
            )));
        }
        check_ends(&b.key_ends, b.keys.len(), "key")?;
        check_ends(&b.value_ends, b.values.len(), "value")?;
        Ok(BatchView {
            ops: &b.ops,
            key_ends: &b.key_ends,
            keys: &b.keys,
            value_ends: &b.value_ends,
            values: &b.values,
        })
    }
}

impl OpSource for BatchView<'_> {
    #[inline]
    fn len(&self) -> usize {
        self.ops.len()
    }
    #[inline]
    fn key(&self, i: usize) -> &[u8] {
        let ks = if i == 0 {
            0
        } else {
            self.key_ends[i - 1].to_native() as usize
        };
        &self.keys[ks..self.key_ends[i].to_native() as usize]
    }
    #[inline]
    fn op(&self, i: usize) -> Op<'_> {
        let ks = if i == 0 {
            0
        } else {
            self.key_ends[i - 1].to_native() as usize
        };
        let vs = if i == 0 {
            0
        } else {
            self.value_ends[i - 1].to_native() as usize
        };
        (
            OpKind::from_wire_code(self.ops[i]),
            &self.keys[ks..self.key_ends[i].to_native() as usize],
            &self.values[vs..self.value_ends[i].to_native() as usize],
        )
    }
}

/// Results of a batch, in request order, struct-of-arrays. Also the owned
/// form in which a shard returns forwarded results.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReply {
    /// One [`Status`] (or [`OpError`] code) per operation.
    pub status: Vec<u8>,
    /// Exclusive end offset of each op's value bytes in `values`.
    pub value_ends: Vec<u32>,
    /// Values back to back (GET hits; 8-byte LE integers for `Int`).
    pub values: Vec<u8>,
}

impl BatchReply {
    /// Empties the reply, keeping its capacity.
    pub fn clear(&mut self) {
        self.status.clear();
        self.value_ends.clear();
        self.values.clear();
    }
    /// Number of results.
    pub fn len(&self) -> usize {
        self.status.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.status.is_empty()
    }
    /// Result `i`.
    pub fn get(&self, i: usize) -> OpResult<'_> {
        let vs = if i == 0 {
            0
        } else {
            self.value_ends[i - 1] as usize
        };
        decode_result(
            self.status[i],
            &self.values[vs..self.value_ends[i] as usize],
        )
    }
}

/// A batch's reply written straight into the output buffer as the frame
/// [`encode_archived`] makes of the equivalent [`BatchReply`], byte for
/// byte, without building the reply first: values are appended to `out`
/// as the ops produce them, the status bytes and value ends gather in two
/// small side buffers and are put in front of the values by
/// [`FrameReply::finish`]. This saves copying every value a second time
/// (the seed workload's replies are ~1 MiB a batch).
///
/// The layout (rkyv 0.8's archive of `BatchReply`, checked against it by
/// the tests): `status` at 0, `value_ends` at `align4(n)`, `values` right
/// after them, then the root (three relative pointer and length pairs) at
/// the next multiple of 4; the frame header before it and zeros up to the
/// frame alignment after it, as [`encode_frame`] writes them.
///
/// Values past `max_values` bytes are refused with
/// [`OpError::ReplyTooLarge`] (the op itself runs), as `BoundedReply` does.
pub struct FrameReply<'a> {
    out: &'a mut Vec<u8>,
    status: &'a mut Vec<u8>,
    ends: &'a mut Vec<u32>,
    /// Where the frame starts in `out`.
    frame: usize,
    /// Where the values start in `out`.
    values: usize,
    max_values: usize,
}

/// `n` rounded up to a multiple of 4 (rkyv's alignment of `u32` arrays and
/// of the archived root).
#[inline]
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl<'a> FrameReply<'a> {
    /// Starts the reply frame of request `request_id`, expected to hold
    /// `n` results, at the end of `out` (whose length must be a multiple of
    /// the frame alignment). `status` and `ends` are the caller's reused
    /// side buffers (emptied here).
    pub fn begin(
        out: &'a mut Vec<u8>,
        status: &'a mut Vec<u8>,
        ends: &'a mut Vec<u32>,
        request_id: u64,
        n: usize,
        max_values: usize,
    ) -> FrameReply<'a> {
        debug_assert_eq!(out.len() % FRAME_ALIGN, 0);
        status.clear();
        ends.clear();
        let frame = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(FrameKind::BatchReply as u8);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&request_id.to_le_bytes());
        // Room for the status bytes and the value ends of n results.
        let values = out.len() + align4(n) + 4 * n;
        out.resize(values, 0);
        FrameReply {
            out,
            status,
            ends,
            frame,
            values,
            max_values,
        }
    }

    /// Value bytes so far.
    #[inline]
    pub fn values_len(&self) -> usize {
        self.out.len() - self.values
    }

    /// Results so far.
    pub fn len(&self) -> usize {
        self.status.len()
    }

    /// True before the first result.
    pub fn is_empty(&self) -> bool {
        self.status.is_empty()
    }

    /// Completes the frame: status bytes and value ends in front of the
    /// values, the root, the length and the padding. Returns the number of
    /// results. A count other than `begin`'s `n` moves the values once.
    pub fn finish(self) -> usize {
        let n = self.status.len();
        let body = self.frame + HEADER_LEN;
        let at_ends = align4(n);
        let want = body + at_ends + 4 * n;
        if want != self.values {
            // Not the count announced: move the values to their place.
            let len = self.out.len() - self.values;
            if want > self.values {
                self.out.resize(want + len, 0);
            }
            self.out.copy_within(self.values..self.values + len, want);
            self.out.truncate(want + len);
        }
        let out = self.out;
        out[body..body + n].copy_from_slice(self.status);
        out[body + n..body + at_ends].fill(0);
        for (i, e) in self.ends.iter().enumerate() {
            let at = body + at_ends + 4 * i;
            out[at..at + 4].copy_from_slice(&e.to_le_bytes());
        }
        let values_len = out.len() - want;
        out.resize(body + align4(out.len() - body), 0);
        let root = out.len() - body;
        let rel = |target: usize, field: usize| (target as i64 - (root + field) as i64) as i32;
        for (target, field, len) in [
            (0, 0, n),
            (at_ends, 8, n),
            (at_ends + 4 * n, 16, values_len),
        ] {
            out.extend_from_slice(&rel(target, field).to_le_bytes());
            out.extend_from_slice(&(len as u32).to_le_bytes());
        }
        let len = out.len() - body;
        out[self.frame + 4..self.frame + 8].copy_from_slice(&(len as u32).to_le_bytes());
        out.resize(body + padded(len), 0);
        n
    }
}

impl ReplySink for FrameReply<'_> {
    #[inline]
    fn push(&mut self, r: OpResult<'_>) {
        let r = match r {
            OpResult::Value(v) if self.values_len() + v.len() > self.max_values => {
                OpResult::Err(OpError::ReplyTooLarge)
            }
            r => r,
        };
        push_result(r, self.status, self.out);
        self.ends.push(self.values_len() as u32);
    }

    fn value_budget(&self) -> usize {
        self.max_values.saturating_sub(self.values_len())
    }
}

impl ReplySink for BatchReply {
    #[inline]
    fn push(&mut self, r: OpResult<'_>) {
        push_result(r, &mut self.status, &mut self.values);
        self.value_ends.push(self.values.len() as u32);
    }
}

/// Appends one result's status byte to `status` and its value bytes (if it
/// has any) to `values`: the wire encoding [`decode_result`] reads, shared
/// by [`BatchReply`] and [`FrameReply`].
#[inline(always)]
fn push_result(r: OpResult<'_>, status: &mut Vec<u8>, values: &mut Vec<u8>) {
    match r {
        OpResult::Value(v) => {
            status.push(Status::Value as u8);
            values.extend_from_slice(v);
        }
        OpResult::NotFound => status.push(Status::NotFound as u8),
        OpResult::Ok => status.push(Status::Ok as u8),
        OpResult::Int(i) => {
            status.push(Status::Int as u8);
            values.extend_from_slice(&i.to_le_bytes());
        }
        OpResult::Err(e) => status.push(e.wire_code()),
        OpResult::Moved { slot, node_id } => {
            status.push(Status::Moved as u8);
            values.extend_from_slice(&slot.to_le_bytes());
            values.extend_from_slice(&node_id.to_le_bytes());
        }
    }
}

/// Decodes one result from its status byte and value bytes.
#[inline]
pub fn decode_result(status: u8, value: &[u8]) -> OpResult<'_> {
    match status {
        0 => OpResult::Value(value),
        1 => OpResult::NotFound,
        2 => OpResult::Ok,
        3 => match <[u8; 8]>::try_from(value) {
            Ok(b) => OpResult::Int(i64::from_le_bytes(b)),
            Err(_) => OpResult::Err(OpError::BadOp),
        },
        4 => match <[u8; 4]>::try_from(value) {
            Ok(b) => OpResult::Moved {
                slot: u16::from_le_bytes([b[0], b[1]]),
                node_id: u16::from_le_bytes([b[2], b[3]]),
            },
            Err(_) => OpResult::Err(OpError::BadOp),
        },
        s => OpResult::Err(OpError::from_wire_code(s).unwrap_or(OpError::BadOp)),
    }
}

/// A validated, archived batch reply.
pub struct ReplyView<'a> {
    status: &'a [u8],
    value_ends: &'a [rkyv::rend::u32_le],
    values: &'a [u8],
}

impl<'a> ReplyView<'a> {
    /// Validates a reply payload that must hold exactly `expected_ops` results.
    pub fn new(payload: &'a [u8], expected_ops: usize) -> Result<ReplyView<'a>, FrameError> {
        let r = rkyv::access::<ArchivedBatchReply, rancor::Error>(payload)
            .map_err(|_| not_an_archive("BatchReply", payload))?;
        if r.status.len() != expected_ops || r.value_ends.len() != expected_ops {
            return Err(FrameError::Malformed(format!(
                "reply has {} results for {} operations",
                r.status.len(),
                expected_ops
            )));
        }
        check_ends(&r.value_ends, r.values.len(), "value")?;
        Ok(ReplyView {
            status: &r.status,
            value_ends: &r.value_ends,
            values: &r.values,
        })
    }
    /// Number of results.
    pub fn len(&self) -> usize {
        self.status.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.status.is_empty()
    }
    /// True when some op was redirected ([`Status::Moved`]): one scan of
    /// the status bytes.
    pub fn any_moved(&self) -> bool {
        self.status.contains(&(Status::Moved as u8))
    }
    /// Result `i`.
    #[inline]
    pub fn get(&self, i: usize) -> OpResult<'a> {
        let vs = if i == 0 {
            0
        } else {
            self.value_ends[i - 1].to_native() as usize
        };
        decode_result(
            self.status[i],
            &self.values[vs..self.value_ends[i].to_native() as usize],
        )
    }
}

/// A node's layout, the answer to HELLO.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the server speaks.
    pub protocol_version: u8,
    /// The node's place in its cluster (`--node-id`).
    pub node_id: u32,
    /// The shard that answered.
    pub shard_id: u32,
    /// Native port of each shard, by shard id.
    pub shard_ports: Vec<u16>,
    /// The node-level RESP port (0: none).
    pub resp_port: u16,
    /// RESP port of each shard (empty: none).
    pub resp_shard_ports: Vec<u16>,
    /// The cluster this node belongs to: every node's `host:native port`,
    /// by node id (`--cluster`; one entry for a one-node cluster). With the
    /// shard counts (each node's HELLO) it determines the slot table
    /// ([`crate::routing::SlotTable`]), so a client learns the whole cluster
    /// from any one node.
    pub cluster: Vec<String>,
    /// Digest of `cluster` ([`crate::cluster::digest`]): equal on nodes that agree.
    pub cluster_digest: u64,
}

/// Counters of one shard.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Shard id.
    pub shard_id: u32,
    /// Operations executed by this shard's store (local and forwarded-in).
    pub ops: u64,
    /// Reads executed.
    pub gets: u64,
    /// Writes executed.
    pub puts: u64,
    /// Deletes executed.
    pub dels: u64,
    /// Keys held.
    pub keys: u64,
    /// Bytes charged against the memory limit.
    pub memory_used: u64,
    /// This shard's memory limit in bytes (`u64::MAX`: none).
    pub memory_limit: u64,
    /// Open client connections.
    pub connections: u64,
    /// Bytes of connection buffers (reads and replies) held right now.
    pub conn_memory_used: u64,
    /// This shard's share of `--max-conn-memory` in bytes.
    pub conn_memory_limit: u64,
    /// Per-op errors plus rejected frames and commands.
    pub errors: u64,
    /// Operations this shard sent to their owner shard.
    pub forwarded_out: u64,
    /// Operations other shards sent here.
    pub forwarded_in: u64,
}

/// Counters of a node, the answer to STATS.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct NodeStats {
    /// The node's id.
    pub node_id: u32,
    /// Seconds since the node started.
    pub uptime_secs: f64,
    /// One entry per shard, by shard id.
    pub shards: Vec<ShardStats>,
}

impl NodeStats {
    /// Sum of all shards' counters (`shard_id` is meaningless in the sum).
    pub fn total(&self) -> ShardStats {
        let mut t = ShardStats::default();
        for s in &self.shards {
            t.ops += s.ops;
            t.gets += s.gets;
            t.puts += s.puts;
            t.dels += s.dels;
            t.keys += s.keys;
            t.memory_used += s.memory_used;
            t.memory_limit = t.memory_limit.saturating_add(s.memory_limit);
            t.connections += s.connections;
            t.conn_memory_used += s.conn_memory_used;
            t.conn_memory_limit = t.conn_memory_limit.saturating_add(s.conn_memory_limit);
            t.errors += s.errors;
            t.forwarded_out += s.forwarded_out;
            t.forwarded_in += s.forwarded_in;
        }
        t
    }
}

/// The payload of an `Error` frame.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    /// [`FrameError::code`].
    pub code: u16,
    /// Human-readable reason.
    pub message: String,
}

/// Deserializes an owned value from a validated payload (HELLO, STATS and
/// error replies: small, rare, so owning them is simpler than viewing).
pub fn decode_owned<T>(payload: &[u8]) -> Result<T, FrameError>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    rkyv::from_bytes::<T, rancor::Error>(payload).map_err(|_| {
        FrameError::Malformed(format!(
            "payload of {} bytes is not an archived {}",
            payload.len(),
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("value")
        ))
    })
}

/// An `AlignedVec` receive buffer with the alignment frames need.
pub type RecvBuf = AlignedVec<FRAME_ALIGN>;

/// Splits complete frames off the front of a receive buffer.
///
/// `buf[start..end]` holds received bytes; `start` is always a multiple of
/// 16 (frames are padded), so every payload handed out is 16-byte aligned.
pub struct FrameReader {
    /// The receive buffer.
    pub buf: RecvBuf,
    /// First unconsumed byte.
    pub start: usize,
    /// One past the last received byte.
    pub end: usize,
    max_payload: usize,
}

/// What [`FrameReader::next_frame`] found.
pub enum NextFrame {
    /// A complete frame: header and the payload's range in `buf`.
    Frame(FrameHeader, std::ops::Range<usize>),
    /// More bytes are needed.
    NeedMore,
}

impl FrameReader {
    /// A reader with an initial buffer of `capacity` bytes.
    pub fn new(capacity: usize, max_payload: usize) -> FrameReader {
        let mut buf = RecvBuf::with_capacity(capacity);
        buf.resize(capacity.max(HEADER_LEN * 4), 0);
        FrameReader {
            buf,
            start: 0,
            end: 0,
            max_payload,
        }
    }

    /// The next complete frame, if any; errors on an invalid header.
    pub fn next_frame(&mut self) -> Result<NextFrame, FrameError> {
        if self.end - self.start < HEADER_LEN {
            return Ok(NextFrame::NeedMore);
        }
        let hdr: &[u8; HEADER_LEN] = self.buf[self.start..self.start + HEADER_LEN]
            .try_into()
            .unwrap();
        let h = FrameHeader::parse(hdr, self.max_payload)?;
        let total = h.frame_len();
        if self.end - self.start < total {
            return Ok(NextFrame::NeedMore);
        }
        let p = self.start + HEADER_LEN;
        self.start += total;
        Ok(NextFrame::Frame(h, p..p + h.len))
    }

    /// Bytes the frame at `start` needs in all: its declared length (capped
    /// by the limit) once its header has arrived, else a header's worth.
    fn pending_need(&self) -> usize {
        if self.end - self.start >= HEADER_LEN {
            let len =
                u32::from_le_bytes(self.buf[self.start + 4..self.start + 8].try_into().unwrap())
                    as usize;
            HEADER_LEN + padded(len.min(self.max_payload))
        } else {
            HEADER_LEN
        }
    }

    /// The buffer length the next [`FrameReader::read_space`] will grow to,
    /// when it grows at all. Growth follows the bytes that arrived: only a
    /// full buffer grows, by doubling, and never past the pending frame's
    /// end — a header declaring a huge payload costs nothing until the
    /// payload's bytes actually come.
    pub fn growth(&self) -> Option<usize> {
        let (start, end) = if self.start == self.end {
            (0, 0)
        } else {
            (self.start, self.end)
        };
        let used = end - start;
        let len = self.buf.len();
        if end < len || (start > 0 && used < len) {
            return None; // room left, or compaction makes room
        }
        let need = self.pending_need();
        Some((len * 2).min(need.max(len + HEADER_LEN)))
    }

    /// Makes room for at least one more read and returns the free space:
    /// moves unconsumed bytes to the front when that helps, and grows a full
    /// buffer as [`FrameReader::growth`] says.
    pub fn read_space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.start > 0 {
            let need = self.pending_need();
            if self.buf.len() - self.start < need
                || self.start > self.buf.len() / 2
                || self.end == self.buf.len()
            {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
        }
        if let Some(n) = self.growth() {
            self.buf.resize(n, 0);
        }
        &mut self.buf[self.end..]
    }

    /// True when no byte of an unprocessed frame is in the buffer.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes the receive buffer holds (what the reader costs).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Gives memory back: when nothing is pending and the buffer is larger
    /// than `keep` bytes, replaces it with a fresh one of `keep` bytes.
    pub fn shrink(&mut self, keep: usize) {
        if self.is_empty() && self.buf.capacity() > keep {
            let keep = keep.max(HEADER_LEN * 4);
            let mut buf = RecvBuf::with_capacity(keep);
            buf.resize(keep, 0);
            self.buf = buf;
            self.start = 0;
            self.end = 0;
        }
    }

    /// The header of the next frame when it has arrived but the frame is
    /// not complete (call after [`FrameReader::next_frame`] said `NeedMore`).
    pub fn partial_header(&self) -> Result<Option<FrameHeader>, FrameError> {
        if self.end - self.start < HEADER_LEN {
            return Ok(None);
        }
        let hdr: &[u8; HEADER_LEN] = self.buf[self.start..self.start + HEADER_LEN]
            .try_into()
            .unwrap();
        FrameHeader::parse(hdr, self.max_payload).map(Some)
    }

    /// Copies the part of an incomplete frame's body that has arrived into
    /// the front of `dst`, consumes the frame from the reader and returns how
    /// many bytes were copied. The caller reads the rest of the body (the
    /// padded length, [`FrameHeader::frame_len`] minus the header) from the
    /// socket straight into `dst`, which is how large replies avoid a copy.
    pub fn take_partial_body(&mut self, dst: &mut [u8]) -> usize {
        let body = &self.buf[(self.start + HEADER_LEN).min(self.end)..self.end];
        let n = body.len().min(dst.len());
        dst[..n].copy_from_slice(&body[..n]);
        self.start = 0;
        self.end = 0;
        n
    }

    /// Records `n` bytes read into the space [`FrameReader::read_space`] gave.
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::OwnedResult as Owned;

    /// The results of a test reply, from a seed: a mix of every kind, with
    /// values of 0..300 bytes.
    fn results(seed: u64, n: usize) -> Vec<Owned> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| match next() % 7 {
                0 | 1 => Owned::Value(vec![next() as u8; (next() % 300) as usize]),
                2 => Owned::NotFound,
                3 => Owned::Ok,
                4 => Owned::Int(next() as i64),
                5 => Owned::Err(OpError::OutOfMemory),
                _ => Owned::Moved {
                    slot: next() as u16,
                    node_id: next() as u16,
                },
            })
            .collect()
    }

    #[test]
    fn frame_reply_is_the_archived_batch_reply_byte_for_byte() {
        let mut status = Vec::new();
        let mut ends = Vec::new();
        for seed in 0..200u64 {
            let n = (seed as usize * 7) % 70;
            let rs = results(seed, n);
            // The bound: none, generous, or cutting some values off.
            let max_values = match seed % 3 {
                0 => usize::MAX,
                1 => 5000,
                _ => 300,
            };
            // What `BoundedReply` builds.
            let mut want_reply = BatchReply::default();
            for r in &rs {
                match r.as_result() {
                    OpResult::Value(v) if want_reply.values.len() + v.len() > max_values => {
                        want_reply.push(OpResult::Err(OpError::ReplyTooLarge))
                    }
                    r => want_reply.push(r),
                }
            }
            // Something already in the buffer (an earlier frame), and a
            // count announced right, too low and too high.
            for announced in [n, n.saturating_sub(3), n + 5] {
                let mut want = Vec::new();
                encode_empty(&mut want, FrameKind::Hello, 1);
                let mut got = want.clone();
                encode_archived(&mut want, FrameKind::BatchReply, seed, &want_reply).unwrap();
                let mut sink = FrameReply::begin(
                    &mut got,
                    &mut status,
                    &mut ends,
                    seed,
                    announced,
                    max_values,
                );
                for r in &rs {
                    sink.push(r.as_result());
                }
                assert_eq!(sink.len(), n);
                assert_eq!(sink.finish(), n);
                assert_eq!(got, want, "seed {seed}, {n} results, announced {announced}");
            }
        }
    }

    fn batch() -> Batch {
        let mut b = Batch::default();
        b.get(b"k1");
        b.put(b"k2", b"value-2");
        b.del(b"k3");
        b.put(b"", b"");
        b
    }

    /// Feeds `bytes` to a frame reader in chunks of `chunk` bytes.
    fn frames(bytes: &[u8], chunk: usize) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut r = FrameReader::new(64, 1 << 20);
        let mut out = vec![];
        let mut pos = 0;
        loop {
            while let NextFrame::Frame(h, range) = r.next_frame().unwrap() {
                assert_eq!(range.start % FRAME_ALIGN, 0);
                assert_eq!(r.buf[range.clone()].as_ptr() as usize % FRAME_ALIGN, 0);
                out.push((h, r.buf[range].to_vec()))
            }
            if pos == bytes.len() {
                return out;
            }
            let space = r.read_space();
            let n = space.len().min(chunk).min(bytes.len() - pos);
            space[..n].copy_from_slice(&bytes[pos..pos + n]);
            r.filled(n);
            pos += n;
        }
    }

    #[test]
    fn batch_round_trip_in_place() {
        let b = batch();
        let mut out = Vec::new();
        encode_archived(&mut out, FrameKind::Batch, 7, &b).unwrap();
        encode_empty(&mut out, FrameKind::Hello, 8);
        encode_archived(&mut out, FrameKind::Batch, 9, &b).unwrap();
        assert_eq!(out.len() % 16, 0);
        for chunk in [1, 3, 16, 17, 1000] {
            let fs = frames(&out, chunk);
            assert_eq!(fs.len(), 3);
            assert_eq!(fs[0].0.request_id, 7);
            assert_eq!(
                fs[1].0,
                FrameHeader {
                    kind: FrameKind::Hello,
                    len: 0,
                    request_id: 8
                }
            );
            let mut aligned = RecvBuf::new();
            aligned.extend_from_slice(&fs[2].1);
            let v = BatchView::new(&aligned, 100).unwrap();
            assert_eq!(v.len(), 4);
            for i in 0..4 {
                assert_eq!(v.op(i), OpSource::op(&b, i));
                assert_eq!(v.key(i), b.op(i).1);
            }
        }
    }

    #[test]
    fn reply_round_trip() {
        let mut r = BatchReply::default();
        r.push(OpResult::Value(b"abc"));
        r.push(OpResult::NotFound);
        r.push(OpResult::Ok);
        r.push(OpResult::Int(-5));
        r.push(OpResult::Err(OpError::OutOfMemory));
        r.push(OpResult::Value(b""));
        r.push(OpResult::Moved {
            slot: 12182,
            node_id: 3,
        });
        let mut out = Vec::new();
        encode_archived(&mut out, FrameKind::BatchReply, 1, &r).unwrap();
        let fs = frames(&out, 5);
        let mut aligned = RecvBuf::new();
        aligned.extend_from_slice(&fs[0].1);
        let v = ReplyView::new(&aligned, 7).unwrap();
        for i in 0..7 {
            assert_eq!(v.get(i), r.get(i));
        }
        assert_eq!(v.get(3), OpResult::Int(-5));
        assert_eq!(v.get(4), OpResult::Err(OpError::OutOfMemory));
        assert!(
            ReplyView::new(&aligned, 6).is_err(),
            "count mismatch is caught"
        );
    }

    #[test]
    fn bad_headers() {
        let mut h = [0u8; 16];
        assert!(matches!(
            FrameHeader::parse(&h, 100),
            Err(FrameError::BadMagic(_))
        ));
        h[0..2].copy_from_slice(b"CK");
        h[2] = 9;
        assert_eq!(
            FrameHeader::parse(&h, 100),
            Err(FrameError::UnsupportedVersion(9))
        );
        h[2] = PROTOCOL_VERSION;
        h[3] = 0x55;
        assert_eq!(
            FrameHeader::parse(&h, 100),
            Err(FrameError::UnknownKind(0x55))
        );
        h[3] = 1;
        h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            FrameHeader::parse(&h, 100),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn malformed_payloads_are_rejected_not_panicking() {
        let b = batch();
        let mut good = Vec::new();
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(&b, &mut good).unwrap();
        let mut x = 0x2545F4914F6CDD1Du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bytes = RecvBuf::new();
            bytes.extend_from_slice(&good);
            let n = bytes.len();
            bytes[(x as usize) % n] = (x >> 32) as u8;
            if x % 3 == 0 {
                let cut = (x >> 40) as usize % n;
                bytes.resize(cut, 0);
            }
            if let Ok(v) = BatchView::new(&bytes, 1000) {
                for i in 0..v.len() {
                    let _ = v.op(i);
                }
            }
        }
        // Offsets pointing past the blob are caught.
        let mut evil = b.clone();
        evil.key_ends[1] = 1000;
        let mut bytes = RecvBuf::new();
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(&evil, &mut bytes).unwrap();
        assert!(BatchView::new(&bytes, 1000).is_err());
        let mut evil = b.clone();
        evil.value_ends.pop();
        let mut bytes = RecvBuf::new();
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(&evil, &mut bytes).unwrap();
        assert!(BatchView::new(&bytes, 1000).is_err());
        let mut bytes = RecvBuf::new();
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(&b, &mut bytes).unwrap();
        assert!(matches!(
            BatchView::new(&bytes, 2),
            Err(FrameError::TooManyOps { .. })
        ));
    }

    #[test]
    fn hello_and_stats_round_trip() {
        let h = Hello {
            protocol_version: 1,
            node_id: 3,
            shard_id: 1,
            shard_ports: vec![7000, 7001],
            resp_port: 6379,
            resp_shard_ports: vec![],
            cluster: vec!["a:7000".into(), "b:7000".into()],
            cluster_digest: 42,
        };
        let mut out = Vec::new();
        encode_archived(&mut out, FrameKind::HelloReply, 0, &h).unwrap();
        let fs = frames(&out, 7);
        let mut aligned = RecvBuf::new();
        aligned.extend_from_slice(&fs[0].1);
        assert_eq!(decode_owned::<Hello>(&aligned).unwrap(), h);
        let mut out = Vec::new();
        encode_error(&mut out, 4, &FrameError::UnknownKind(9));
        let fs = frames(&out, 100);
        let mut aligned = RecvBuf::new();
        aligned.extend_from_slice(&fs[0].1);
        let e = decode_owned::<ErrorFrame>(&aligned).unwrap();
        assert_eq!(e.code, 3);
        assert!(e.message.contains("unknown frame kind"));
    }
}
