//! The on-disk format of a shard's files: a fixed header, then records.
//! Pure byte code (no I/O), shared by the writer, recovery and `check-aof`.
//!
//! ```text
//! header  := magic "COREKVLG" | version u32 | nr_shards u32 | shard_id u32
//!            | node_id u32 | kind u32 | nr_nodes u32 | generation u64 | xxh3 u64   (48 bytes)
//! file    := header group*                                   (version 3)
//! group   := payload_len u32 | xxh3_64(payload) u64 | payload
//! payload := record+
//! record  := body_len u32 | body
//! body    := op u8 | db u16 | expire_at_ms u64 (0: none) | key_len u32 | key | value
//! ```
//!
//! Version 3 checksums a *group* of records (what one commit wrote, cut at
//! [`GROUP_BYTES`]) instead of each record: one xxh3 over ~64 KB of records
//! just written, instead of one per record right after its bytes were
//! stored (where the hash's loads waited for the encoder's stores). A group
//! is the unit of recovery: a torn group is dropped whole — its records
//! were never acknowledged under `always`, whose acknowledgement waits for
//! the whole write — and a corrupt one names the group's offset.
//!
//! Versions 1 and 2 (`file := header record*`, `record := body_len u32 |
//! xxh3_64(body) u64 | body`) are still read. Version 2 added `db`, the
//! logical database the record applies to (SET, DEL, FLUSH of one database;
//! SWAP names the other database in its value as u16 LE); version 1 bodies
//! have no `db`, and every record is read as database 0. New files are
//! version 3.
//!
//! All integers little-endian. A record is a full state change of one key
//! (`SET` key to value, `DEL` key) or of the shard (`FLUSH`), so replay is
//! idempotent and the log never holds operations whose result depends on
//! the order of other shards (INCRBY is logged as the SET of its result).
//! Expiry is an absolute Unix time in milliseconds.
//!
//! Writers pad the last block of a file with zeros (O_DIRECT writes whole
//! blocks), so a run of zeros where a group (a record, before version 3)
//! would start is the clean end of the file. [`scan`] tells a torn tail (the
//! last group is incomplete or bad and nothing but zeros follows it) from a
//! corrupt group in the middle (more data follows), so recovery can take the
//! first and refuse the second.

use xxhash_rust::xxh3::xxh3_64;

/// First bytes of every file.
pub const MAGIC: &[u8; 8] = b"COREKVLG";
/// Format version written.
pub const VERSION: u32 = 3;
/// Oldest format version read (its records are all in database 0).
pub const OLDEST_VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 48;
/// Record header length (body length).
pub const RECORD_HEADER: usize = 4;
/// Record header length before version 3 (body length + checksum).
pub const RECORD_HEADER_V2: usize = 12;
/// Group header length (payload length + checksum).
pub const GROUP_HEADER: usize = 12;
// A version 1–2 record's header and a group's have one layout ([`frame_at`]).
const _: () = assert!(GROUP_HEADER == RECORD_HEADER_V2);
/// Writers close a group once its payload reaches this many bytes (a
/// commit also closes the group it wrote into).
pub const GROUP_BYTES: usize = 64 << 10;
/// Largest group payload accepted; anything longer is corruption.
pub const MAX_GROUP: usize = 1 << 31;
/// Largest body accepted; anything longer is corruption.
pub const MAX_BODY: usize = 1 << 30;
/// Fixed part of a body: op, database, expiry, key length.
const BODY_FIXED: usize = 1 + 2 + 8 + 4;
/// Fixed part of a version 1 body (no database).
const BODY_FIXED_V1: usize = 1 + 8 + 4;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// An append-only log of changes.
    Log,
    /// A snapshot: the shard's keys, ending with an [`RecordOp::End`] record.
    Snapshot,
}

/// A file's header: who wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Shards of the node that wrote it.
    pub nr_shards: u32,
    /// The shard that wrote it.
    pub shard_id: u32,
    /// The node that wrote it.
    pub node_id: u32,
    /// Nodes in that node's cluster (the key → node map depends on it).
    pub nr_nodes: u32,
    /// Log or snapshot.
    pub kind: FileKind,
    /// Rewrite generation this file belongs to.
    pub generation: u64,
}

/// Test files: the header of a one-shard, one-node log of `generation`.
#[cfg(test)]
impl Header {
    pub(crate) fn single_log(generation: u64) -> Header {
        Header {
            nr_shards: 1,
            shard_id: 0,
            node_id: 0,
            nr_nodes: 1,
            kind: FileKind::Log,
            generation,
        }
    }
}

impl Header {
    /// Appends the encoded header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            self.nr_shards,
            self.shard_id,
            self.node_id,
            match self.kind {
                FileKind::Log => 0,
                FileKind::Snapshot => 1,
            },
            self.nr_nodes,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.generation.to_le_bytes());
        let sum = xxh3_64(&out[start..]);
        out.extend_from_slice(&sum.to_le_bytes());
    }

    /// Decodes a header, saying what is wrong with it if anything.
    pub fn decode(data: &[u8]) -> Result<Header, String> {
        if data.len() < HEADER_LEN {
            return Err(format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte header",
                data.len()
            ));
        }
        if &data[..8] != MAGIC {
            return Err("not a corekv persistence file (bad magic)".into());
        }
        let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap_or([0; 4]));
        let sum = u64::from_le_bytes(data[40..48].try_into().unwrap_or([0; 8]));
        if xxh3_64(&data[..40]) != sum {
            return Err("header checksum mismatch".into());
        }
        let version = u32_at(8);
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(format!(
                "format version {version}, this corekv reads versions {OLDEST_VERSION} to {VERSION}"
            ));
        }
        let kind = match u32_at(24) {
            0 => FileKind::Log,
            1 => FileKind::Snapshot,
            k => return Err(format!("unknown file kind {k}")),
        };
        Ok(Header {
            nr_shards: u32_at(12),
            shard_id: u32_at(16),
            node_id: u32_at(20),
            nr_nodes: u32_at(28),
            kind,
            generation: u64::from_le_bytes(data[32..40].try_into().unwrap_or([0; 8])),
        })
    }
}

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOp {
    /// Set the key to the value.
    Set,
    /// Remove the key.
    Del,
    /// Remove every key of the shard.
    Flush,
    /// End of a snapshot (value: the number of keys, u64 LE).
    End,
    /// Remove every key of every database (FLUSHALL).
    FlushAll,
    /// Swap the record's database with the one in its value (SWAPDB).
    Swap,
}

impl RecordOp {
    fn code(self) -> u8 {
        match self {
            RecordOp::Set => 1,
            RecordOp::Del => 2,
            RecordOp::Flush => 3,
            RecordOp::End => 4,
            RecordOp::FlushAll => 5,
            RecordOp::Swap => 6,
        }
    }
    fn from_code(c: u8) -> Option<RecordOp> {
        Some(match c {
            1 => RecordOp::Set,
            2 => RecordOp::Del,
            3 => RecordOp::Flush,
            4 => RecordOp::End,
            5 => RecordOp::FlushAll,
            6 => RecordOp::Swap,
            _ => return None,
        })
    }
}

/// One decoded record, borrowing from the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// What it does.
    pub op: RecordOp,
    /// The database it applies to (0 in version 1 files).
    pub db: u16,
    /// Absolute expiry, Unix ms (0: none).
    pub expire_at_ms: u64,
    /// Key (empty for FLUSH and END).
    pub key: &'a [u8],
    /// Value (empty unless SET or END).
    pub value: &'a [u8],
}

/// Appends one record of database 0 to `out` (inside a group: see
/// [`begin_group`]).
#[inline]
pub fn encode(out: &mut Vec<u8>, op: RecordOp, expire_at_ms: u64, key: &[u8], value: &[u8]) {
    encode_in(out, 0, op, expire_at_ms, key, value)
}

/// Appends one record of database `db` to `out` (inside a group: see
/// [`begin_group`]). No allocation beyond `out`'s growth.
#[inline]
pub fn encode_in(
    out: &mut Vec<u8>,
    db: u16,
    op: RecordOp,
    expire_at_ms: u64,
    key: &[u8],
    value: &[u8],
) {
    let start = out.len();
    let n = record_len(key, value);
    out.resize(start + n, 0);
    encode_into(&mut out[start..], db, op, expire_at_ms, key, value);
}

/// Length of the encoded record of `key` and `value`.
#[inline]
pub fn record_len(key: &[u8], value: &[u8]) -> usize {
    RECORD_HEADER + BODY_FIXED + key.len() + value.len()
}

/// Encodes one record of database `db` into `dst`, exactly
/// [`record_len`]`(key, value)` bytes: the log writer encodes straight into
/// the DMA buffer it writes (no intermediate buffer, no copy). No checksum:
/// the group's covers it.
#[inline]
pub fn encode_into(
    dst: &mut [u8],
    db: u16,
    op: RecordOp,
    expire_at_ms: u64,
    key: &[u8],
    value: &[u8],
) {
    let body_len = BODY_FIXED + key.len() + value.len();
    let dst = &mut dst[..RECORD_HEADER + body_len];
    let (head, body) = dst.split_at_mut(RECORD_HEADER);
    let (fixed, rest) = body.split_at_mut(BODY_FIXED);
    head.copy_from_slice(&(body_len as u32).to_le_bytes());
    fixed[0] = op.code();
    fixed[1..3].copy_from_slice(&db.to_le_bytes());
    fixed[3..11].copy_from_slice(&expire_at_ms.to_le_bytes());
    fixed[11..15].copy_from_slice(&(key.len() as u32).to_le_bytes());
    let (k, v) = rest.split_at_mut(key.len());
    k.copy_from_slice(key);
    v.copy_from_slice(value);
}

/// Starts a group in `out`: reserves its header and returns where it
/// starts, for [`end_group`].
pub fn begin_group(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; GROUP_HEADER]);
    start
}

/// Ends the group begun at `start`: fills in its header (an empty group is
/// removed).
pub fn end_group(out: &mut Vec<u8>, start: usize) {
    let payload = &out[start + GROUP_HEADER..];
    if payload.is_empty() {
        out.truncate(start);
        return;
    }
    let head = group_header(payload.len(), xxh3_64(payload));
    out[start..start + GROUP_HEADER].copy_from_slice(&head);
}

/// The header of a group of `len` payload bytes whose xxh3 is `sum`.
pub fn group_header(len: usize, sum: u64) -> [u8; GROUP_HEADER] {
    let mut h = [0u8; GROUP_HEADER];
    h[..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[4..].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Decodes the body of a record whose checksum matched, in a file of
/// format `version`.
fn decode_body(body: &[u8], version: u32) -> Option<Record<'_>> {
    let (db, body) = if version >= 2 {
        if body.len() < BODY_FIXED {
            return None;
        }
        let db = u16::from_le_bytes(body[1..3].try_into().ok()?);
        // Drop the database bytes: what follows is version 1's layout.
        (db, (body[0], &body[3..]))
    } else {
        if body.len() < BODY_FIXED_V1 {
            return None;
        }
        (0, (body[0], &body[1..]))
    };
    let (code, body) = body;
    let op = RecordOp::from_code(code)?;
    let expire_at_ms = u64::from_le_bytes(body[..8].try_into().ok()?);
    let key_len = u32::from_le_bytes(body[8..12].try_into().ok()?) as usize;
    let rest = &body[12..];
    if key_len > rest.len() {
        return None;
    }
    Some(Record {
        op,
        db,
        expire_at_ms,
        key: &rest[..key_len],
        value: &rest[key_len..],
    })
}

/// How a scan of a file's records ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every record was good; `end` is the offset after the last one (what
    /// follows, if anything, is zero padding).
    Clean {
        /// Logical end of the file.
        end: usize,
    },
    /// The last record is incomplete or bad and only zeros (or nothing)
    /// follow it: a write torn by a crash. `end` is the offset after the
    /// last good record.
    Torn {
        /// Offset after the last good record.
        end: usize,
    },
    /// A bad record with more data after it.
    Corrupt {
        /// Offset of the bad record.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// The format version in a file's header (call after [`Header::decode`]
/// accepted it; [`VERSION`] when the file is too short to say).
pub fn file_version(data: &[u8]) -> u32 {
    data.get(8..12)
        .and_then(|b| b.try_into().ok())
        .map_or(VERSION, u32::from_le_bytes)
}

/// Walks the records of `data` from `from` (just after the header), calling
/// `f` for each good one with its offset, and says how the walk ended. The
/// records are decoded in the format version of `data`'s header. From
/// version 3 a group's records are passed to `f` only once the whole group
/// checked out, and the offsets in [`ScanEnd`] are group offsets.
pub fn scan<'a>(data: &'a [u8], from: usize, f: impl FnMut(usize, Record<'a>)) -> ScanEnd {
    let version = file_version(data);
    if version >= 3 {
        scan_groups(data, from, f)
    } else {
        scan_records(data, from, version, f)
    }
}

/// A checksummed frame, `len u32 | xxh3_64(payload) u64 | payload`: the
/// layout of a version 3 group and of a version 1–2 record alike.
enum Frame<'a> {
    /// The scan ends here.
    End(ScanEnd),
    /// A whole frame whose checksum matched: its payload and its length
    /// with the header.
    Whole(&'a [u8], usize),
}

/// The frame at `off`, its payload length within `lens` (else corrupt, for
/// `bad_len`). A checksum that does not match is a torn write when only
/// zeros follow the frame, and corruption otherwise.
fn frame_at<'a>(
    data: &'a [u8],
    off: usize,
    lens: std::ops::RangeInclusive<usize>,
    bad_len: &'static str,
) -> Frame<'a> {
    let rest = &data[off.min(data.len())..];
    if all_zero(rest) {
        return Frame::End(ScanEnd::Clean { end: off });
    }
    if rest.len() < GROUP_HEADER {
        return Frame::End(ScanEnd::Torn { end: off });
    }
    let len = u32::from_le_bytes(rest[..4].try_into().unwrap_or([0; 4])) as usize;
    if !lens.contains(&len) {
        return Frame::End(ScanEnd::Corrupt {
            offset: off,
            reason: bad_len,
        });
    }
    let extent = GROUP_HEADER + len;
    if extent > rest.len() {
        return Frame::End(ScanEnd::Torn { end: off });
    }
    let sum = u64::from_le_bytes(rest[4..12].try_into().unwrap_or([0; 8]));
    let payload = &rest[GROUP_HEADER..extent];
    if xxh3_64(payload) != sum {
        return Frame::End(torn_or_corrupt(rest, extent, off, "checksum mismatch"));
    }
    Frame::Whole(payload, extent)
}

/// A bad frame at `off` is a torn write when only zeros follow it (`rest`
/// starts at the frame, `extent` long), and corruption otherwise.
fn torn_or_corrupt(rest: &[u8], extent: usize, off: usize, reason: &'static str) -> ScanEnd {
    if all_zero(&rest[extent..]) {
        ScanEnd::Torn { end: off }
    } else {
        ScanEnd::Corrupt {
            offset: off,
            reason,
        }
    }
}

/// [`scan`] of a version 3 file.
fn scan_groups<'a>(data: &'a [u8], from: usize, mut f: impl FnMut(usize, Record<'a>)) -> ScanEnd {
    let mut off = from;
    loop {
        let lens = RECORD_HEADER + BODY_FIXED..=MAX_GROUP;
        let (payload, extent) = match frame_at(data, off, lens, "impossible group length") {
            Frame::End(end) => return end,
            Frame::Whole(payload, extent) => (payload, extent),
        };
        // The checksum matched: a record that does not parse is not a torn
        // write but a bad writer, wherever it is.
        if group_records(payload, |_, _| {}).is_none() {
            return ScanEnd::Corrupt {
                offset: off,
                reason: "malformed record in a group",
            };
        }
        let base = off + GROUP_HEADER;
        group_records(payload, |p, r| f(base + p, r));
        off += extent;
    }
}

/// Calls `f` with each record of a group's payload and its offset in it;
/// `None` when the payload is not a whole number of good records.
fn group_records<'a>(payload: &'a [u8], mut f: impl FnMut(usize, Record<'a>)) -> Option<()> {
    let mut p = 0;
    while p < payload.len() {
        let rest = &payload[p..];
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let body = rest.get(RECORD_HEADER..RECORD_HEADER + len)?;
        f(p, decode_body(body, VERSION)?);
        p += RECORD_HEADER + len;
    }
    Some(())
}

/// [`scan`] of a version 1 or 2 file: one checksum per record.
fn scan_records<'a>(
    data: &'a [u8],
    from: usize,
    version: u32,
    mut f: impl FnMut(usize, Record<'a>),
) -> ScanEnd {
    let min_body = if version >= 2 {
        BODY_FIXED
    } else {
        BODY_FIXED_V1
    };
    let mut off = from;
    loop {
        let (body, extent) =
            match frame_at(data, off, min_body..=MAX_BODY, "impossible record length") {
                Frame::End(end) => return end,
                Frame::Whole(body, extent) => (body, extent),
            };
        match decode_body(body, version) {
            Some(r) => f(off, r),
            None => {
                let rest = &data[off..];
                return torn_or_corrupt(rest, extent, off, "malformed record body");
            }
        }
        off += extent;
    }
}

/// Offsets of the groups of a version 3 file, found by their lengths alone
/// (no checksum is checked): for tests, where a group starts.
pub fn group_offsets(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    while let Some(len) = data
        .get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .filter(|&l| l != 0)
    {
        out.push(off);
        off += GROUP_HEADER + len as usize;
    }
    out
}

/// Test helper: rewrites an encoded file header's format version (and the
/// header's checksum), to make files of other versions.
#[cfg(test)]
pub(crate) fn set_version(file: &mut [u8], version: u32) {
    file[8..12].copy_from_slice(&version.to_le_bytes());
    let sum = xxh3_64(&file[..40]);
    file[40..48].copy_from_slice(&sum.to_le_bytes());
}

/// Test helper: appends a version 2 record (its own checksum, no group).
#[cfg(test)]
pub(crate) fn push_v2_record(file: &mut Vec<u8>, db: u16, op: RecordOp, key: &[u8], value: &[u8]) {
    let mut body = vec![op.code()];
    body.extend_from_slice(&db.to_le_bytes());
    push_pre_v3_record(file, body, key, value);
}

/// Test helper: appends a version-1 record (`op`, no expiry, no database).
#[cfg(test)]
pub(crate) fn push_v1_record(file: &mut Vec<u8>, op: u8, key: &[u8], value: &[u8]) {
    push_pre_v3_record(file, vec![op], key, value);
}

/// A version 1 or 2 record whose body starts with `body` (the op, and in
/// version 2 the database): no expiry, the key, the value; framed by its
/// length and its own checksum.
#[cfg(test)]
fn push_pre_v3_record(file: &mut Vec<u8>, mut body: Vec<u8>, key: &[u8], value: &[u8]) {
    body.extend_from_slice(&0u64.to_le_bytes());
    body.extend_from_slice(&(key.len() as u32).to_le_bytes());
    body.extend_from_slice(key);
    body.extend_from_slice(value);
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    file.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record layout, byte for byte (pins the encoder to the format's
    /// field order), and a group around it.
    #[test]
    fn a_record_is_laid_out_field_by_field() {
        let mut out = vec![9u8; 3];
        let g = begin_group(&mut out);
        encode_in(
            &mut out,
            7,
            RecordOp::Set,
            0x0102_0304_0506_0708,
            b"key",
            b"value!",
        );
        end_group(&mut out, g);
        let mut body = vec![RecordOp::Set.code()];
        body.extend_from_slice(&7u16.to_le_bytes());
        body.extend_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(b"key");
        body.extend_from_slice(b"value!");
        let mut payload = (body.len() as u32).to_le_bytes().to_vec();
        payload.extend_from_slice(&body);
        let mut want = vec![9u8; 3];
        want.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        want.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
        want.extend_from_slice(&payload);
        assert_eq!(out, want);
        // An empty group leaves nothing.
        let g = begin_group(&mut out);
        end_group(&mut out, g);
        assert_eq!(out, want);
    }

    /// A version 3 file: the first two records in one group, then one
    /// group per record.
    fn file() -> Vec<u8> {
        let mut v = Vec::new();
        Header {
            nr_shards: 2,
            shard_id: 1,
            node_id: 0,
            nr_nodes: 1,
            kind: FileKind::Log,
            generation: 3,
        }
        .encode(&mut v);
        assert_eq!(v.len(), HEADER_LEN);
        let g = begin_group(&mut v);
        encode(&mut v, RecordOp::Set, 0, b"k1", b"v1");
        encode(&mut v, RecordOp::Set, 1234, b"k2", b"value two");
        end_group(&mut v, g);
        let g = begin_group(&mut v);
        encode(&mut v, RecordOp::Del, 0, b"k1", b"");
        end_group(&mut v, g);
        let g = begin_group(&mut v);
        encode(&mut v, RecordOp::Flush, 0, b"", b"");
        end_group(&mut v, g);
        v
    }

    /// A record read back, owned, with where it starts.
    #[derive(Debug)]
    struct Rec {
        at: usize,
        op: RecordOp,
        db: u16,
        key: Vec<u8>,
        value: Vec<u8>,
        expire_at_ms: u64,
    }

    /// Every record of `data` after its header, and how the scan ended.
    fn collect(data: &[u8]) -> (Vec<Rec>, ScanEnd) {
        let mut out = Vec::new();
        let end = scan(data, HEADER_LEN, |at, r| {
            out.push(Rec {
                at,
                op: r.op,
                db: r.db,
                key: r.key.to_vec(),
                value: r.value.to_vec(),
                expire_at_ms: r.expire_at_ms,
            })
        });
        (out, end)
    }

    #[test]
    fn round_trip_and_padding() {
        let mut v = file();
        let h = Header::decode(&v).unwrap();
        assert_eq!((h.nr_shards, h.shard_id, h.generation), (2, 1, 3));
        assert_eq!(file_version(&v), 3);
        let len = v.len();
        v.resize(4096, 0);
        let (recs, end) = collect(&v);
        assert_eq!(end, ScanEnd::Clean { end: len });
        assert_eq!(recs.len(), 4);
        let r = &recs[1];
        assert_eq!(
            (r.op, &r.key[..], &r.value[..], r.expire_at_ms),
            (RecordOp::Set, &b"k2"[..], &b"value two"[..], 1234)
        );
        assert_eq!(recs[3].op, RecordOp::Flush);
        assert_eq!(group_offsets(&v).len(), 3);
    }

    #[test]
    fn databases_round_trip_and_versions_1_and_2_still_read() {
        let mut v = Vec::new();
        Header::single_log(0).encode(&mut v);
        let g = begin_group(&mut v);
        encode_in(&mut v, 7, RecordOp::Set, 5, b"k", b"v");
        encode_in(&mut v, 3, RecordOp::Swap, 0, b"", &9u16.to_le_bytes());
        end_group(&mut v, g);
        let (got, end) = collect(&v);
        assert_eq!(end, ScanEnd::Clean { end: v.len() });
        let got: Vec<_> = got.into_iter().map(|r| (r.op, r.db, r.key)).collect();
        assert_eq!(
            got,
            vec![
                (RecordOp::Set, 7, b"k".to_vec()),
                (RecordOp::Swap, 3, vec![])
            ]
        );
        // A version 2 file (today's before version 3): one checksum per
        // record, no groups; torn and corrupt as before.
        let mut two = Vec::new();
        Header::single_log(0).encode(&mut two);
        set_version(&mut two, 2);
        push_v2_record(&mut two, 4, RecordOp::Set, b"k1", b"v1");
        let second = two.len();
        push_v2_record(&mut two, 0, RecordOp::Del, b"k2", b"");
        let (got, end) = collect(&two);
        assert_eq!(end, ScanEnd::Clean { end: two.len() });
        let got: Vec<_> = got.into_iter().map(|r| (r.at, r.op, r.db, r.key)).collect();
        assert_eq!(
            got,
            vec![
                (HEADER_LEN, RecordOp::Set, 4, b"k1".to_vec()),
                (second, RecordOp::Del, 0, b"k2".to_vec())
            ]
        );
        assert_eq!(
            scan(&two[..two.len() - 1], HEADER_LEN, |_, _| {}),
            ScanEnd::Torn { end: second }
        );
        let mut bad = two.clone();
        bad[HEADER_LEN + RECORD_HEADER_V2 + 1] ^= 1;
        assert_eq!(
            scan(&bad, HEADER_LEN, |_, _| {}),
            ScanEnd::Corrupt {
                offset: HEADER_LEN,
                reason: "checksum mismatch"
            }
        );
        // A version 1 file: the header says 1, bodies have no database.
        let mut old = Vec::new();
        Header::single_log(0).encode(&mut old);
        set_version(&mut old, 1);
        push_v1_record(&mut old, 1, b"k1", b"v1");
        assert!(Header::decode(&old).is_ok());
        let (got, end) = collect(&old);
        assert_eq!(end, ScanEnd::Clean { end: old.len() });
        let got: Vec<_> = got.into_iter().map(|r| (r.db, r.key, r.value)).collect();
        assert_eq!(got, vec![(0, b"k1".to_vec(), b"v1".to_vec())]);
        // Versions past this one are refused.
        set_version(&mut old, 4);
        assert!(Header::decode(&old).unwrap_err().contains("version 4"));
    }

    #[test]
    fn torn_tail_drops_the_last_group_whole_and_a_corrupt_middle_names_its_group() {
        let v = file();
        let full = v.len();
        let groups = group_offsets(&v);
        assert_eq!(groups.len(), 3);
        // Every truncation inside the first group leaves nothing; inside
        // the last, the records of the groups before it.
        for cut in groups[0] + 1..groups[1] {
            let (recs, end) = collect(&v[..cut]);
            assert!(recs.is_empty(), "cut {cut}");
            assert_eq!(end, ScanEnd::Torn { end: groups[0] });
        }
        for cut in groups[2] + 1..full {
            let (recs, end) = collect(&v[..cut]);
            assert_eq!(recs.len(), 3, "cut {cut}");
            assert_eq!(end, ScanEnd::Torn { end: groups[2] });
        }
        // A flipped byte in the last group followed by zero padding: torn.
        let mut t = v.clone();
        t[full - 1] ^= 0xFF;
        t.resize(full + 100, 0);
        assert_eq!(collect(&t).1, ScanEnd::Torn { end: groups[2] });
        // A flipped byte in the first group's second record: corrupt at
        // the group, and none of its records is passed on.
        let mut c = v.clone();
        c[groups[1] - 3] ^= 0x01;
        let (recs, end) = collect(&c);
        assert!(recs.is_empty());
        assert_eq!(
            end,
            ScanEnd::Corrupt {
                offset: groups[0],
                reason: "checksum mismatch"
            }
        );
        // A group whose checksum matches but whose records do not parse
        // (a bad writer): corrupt, even at the end.
        let mut m = Vec::new();
        Header::single_log(0).encode(&mut m);
        let g = begin_group(&mut m);
        m.extend_from_slice(&[200, 0, 0, 0]);
        m.extend_from_slice(&[1u8; 20]);
        end_group(&mut m, g);
        assert_eq!(
            collect(&m).1,
            ScanEnd::Corrupt {
                offset: HEADER_LEN,
                reason: "malformed record in a group"
            }
        );
        // A bad header.
        let mut h = v.clone();
        h[13] ^= 1;
        assert!(Header::decode(&h).unwrap_err().contains("checksum"));
        assert!(Header::decode(b"hello").is_err());
    }
}
