//! One shard's append-only log writer: records are encoded while a batch
//! executes (no I/O, no await) straight into the DMA buffers that will be
//! written, laid out where they go in the file ([`Chain`]: no intermediate
//! buffer, no copy), in checksummed groups ([`record`], format version 3:
//! a group's checksum is computed when it closes, at
//! [`record::GROUP_BYTES`] or at the commit), and written by *group
//! commit*: one `write` of everything appended, padded to the device block,
//! through glommio's [`DmaFile`] (O_DIRECT, io_uring) on the shard's own
//! executor; under `always` the file is `O_DSYNC`, so that write is also
//! the sync, otherwise an `fdatasync` follows when the policy asks for it. One
//! committer task ([`Aof::start_commit`]) keeps at most one commit in
//! flight and starts the next with everything appended meanwhile; whoever
//! needs its records durable waits with [`Aof::durable_to`] (cancel-safe),
//! so the shard goes on executing batches while a commit is in flight.
//! glommio submits and reaps ring operations only when every task waits,
//! so a caller kept busy lets the committer's I/O move with
//! [`Aof::let_commit_run`] (one pass of the reactor, once per batch).
//! Under `always` the writer keeps zeros written ahead of its records
//! (`Aof::zero_ahead`, a task beside the commits), so commits overwrite
//! allocated blocks. Under
//! `everysec` and `no` the same committer streams the records without sync
//! a buffer at a time, as each one fills ([`Aof::after_batch`]: whole
//! buffers only, so nothing is zero-filled or written twice), the once-a-second
//! tick syncs, and replies wait only while more than [`BACKLOG_MAX`] bytes
//! are buffered (backpressure instead of an unbounded buffer).
//!
//! The writer keeps the file's last partial block in memory (`tail`) and
//! starts each chain of buffers with it, so that block is rewritten with the
//! new records appended: the file is always a sequence of whole blocks whose
//! padding is zeros (see [`super::record::scan`]). A failed write (disk
//! full) keeps its buffers to write again at the same place, marks the log
//! failed (writes are then refused by the shard with Redis's MISCONF error)
//! and is retried by [`Aof::tick`] (once a second) until it succeeds.
//!
//! Owns the file and its buffers; knows nothing of the store or sockets.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::task::{Poll, Waker};
use std::time::Instant;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::sync::Semaphore;

use super::record::{self, FileKind, Header, RecordOp};
use super::Fsync;

/// The errno of the last failed log write on this node, for the MISCONF
/// error text (written only on the failure path).
pub static LAST_WRITE_ERRNO: AtomicI32 = AtomicI32::new(0);

/// Under `everysec` and `no`, buffered bytes beyond which replies wait for
/// the write in flight (backpressure: a client that writes faster than the
/// disk takes is slowed to the disk's pace instead of growing the buffer
/// without bound — before, a native load buffered 3.8 GB in 2 s). 64 MB:
/// at 32 MB a snapshot's writes, sharing the disk, held the log back
/// enough that replies waited up to 120 ms (`everysec`, YCSB-A at batch
/// 8192: longest batch 110–127 ms, 23–27 ms at 64 MB with the snapshot's
/// writes in flight halved; 20 ms with no snapshot).
pub const BACKLOG_MAX: usize = 64 << 20;

/// Largest DMA buffer, so largest single write: a chain grows by buffers of
/// at most this size, written together. Buffers are kept and reused
/// (`Aof::dma_pool`) instead of being mapped and faulted in afresh for
/// every write (page faults were a fifth of the server's time under
/// `everysec` with one new buffer per commit).
const WRITE_CHUNK: usize = 4 << 20;

/// Bytes of DMA buffers a log keeps for reuse (most of what the chain
/// holds while replies wait for the write in flight, [`BACKLOG_MAX`]; a
/// buffer past it is mapped afresh, two huge-page faults for 4 MiB).
const POOL_BYTES: usize = 40 << 20;

/// Zeros the log writer keeps written ahead of its records.
const ZERO_AHEAD: u64 = 8 << 20;
/// Size of one write of zeros.
const ZERO_CHUNK: usize = 4 << 20;

/// Records appended and not yet handed to a write, already where they go:
/// DMA buffers laid end to end from the block-aligned file offset `base`,
/// the first one starting with the file's last partial block (`prefix`
/// bytes, already written: the write rewrites that block with the records
/// after it). A record is encoded straight into the last buffer when it
/// fits; one that does not is split across it and a new one, so the
/// buffers hold one contiguous run of bytes and can be written together
/// (disjoint, block-aligned).
#[derive(Default)]
struct Chain {
    /// The buffers, each a [`class_len`] long (so block-aligned).
    bufs: Vec<DmaBuffer>,
    /// Chain offset of the last buffer's first byte.
    last_at: usize,
    /// Bytes filled: `prefix` then records.
    len: usize,
    /// Bytes of the file's last partial block at the start.
    prefix: usize,
    /// File offset of the chain's first byte (block-aligned).
    base: u64,
    /// Chain offset of the open group's header (see [`record`]): filled in
    /// when the group closes, at [`record::GROUP_BYTES`] or at the commit.
    group: Option<usize>,
}

impl Chain {
    /// Record bytes in the chain (the prefix was written before).
    fn records(&self) -> usize {
        if self.bufs.is_empty() {
            0
        } else {
            self.len - self.prefix
        }
    }
}

/// A chain handed to a write: its buffers, where they go, and the log's
/// state once it is written.
struct Sealed {
    bufs: Vec<Rc<DmaBuffer>>,
    /// File offset of the first buffer.
    base: u64,
    /// Logical end of the file once written.
    end: u64,
    /// Bytes of all the buffers.
    padded: u64,
    /// [`Aof::appended`] when it was sealed: durable once written.
    seq_end: u64,
}

/// How far ahead of the records the next lines of the buffer are
/// prefetched for writing.
const PREFETCH_AHEAD: usize = 2048;

/// Asks for the three cache lines at `p` for writing (PREFETCHW): a
/// buffer's lines were last read by the device that wrote them, so each
/// store into them would otherwise wait for the line.
#[inline(always)]
fn prefetch_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHW is a hint; it never faults, whatever the address
    // (and decodes as a NOP on processors without it).
    unsafe {
        std::arch::asm!(
            "prefetchw [{p}]",
            "prefetchw [{p} + 64]",
            "prefetchw [{p} + 128]",
            p = in(reg) p,
            options(nostack, preserves_flags, readonly)
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A shard's open log.
pub struct Aof {
    file: RefCell<Rc<DmaFile>>,
    path: RefCell<PathBuf>,
    fsync: Fsync,
    /// Records appended, not yet handed to a write.
    chain: RefCell<Chain>,
    /// A sealed chain whose write failed, written again (first, alone)
    /// by the next commit.
    retry: RefCell<Option<Sealed>>,
    /// The last partial block of everything handed to a write (or of the
    /// file): the prefix of the next chain.
    tail: RefCell<Vec<u8>>,
    /// Size of the next chain's first buffer: the [`class_len`] of the last
    /// chain sealed (a commit is mostly like the one before).
    next_class: Cell<usize>,
    /// Space to encode a record that straddles two buffers.
    scratch: RefCell<Vec<u8>>,
    /// Logical length of the file (records written, without padding).
    file_end: Cell<u64>,
    /// The file holds written blocks (records or zeros) up to here: the
    /// writer keeps [`ZERO_AHEAD`] bytes of zeros ahead of the records, so
    /// a commit overwrites allocated blocks instead of extending the file
    /// (see [`Aof::write_pending`]).
    zeroed: Rc<Cell<u64>>,
    /// Whether to write zeros ahead at all (only under `always`, not on tmpfs).
    zero_ahead: bool,
    /// The write of zeros in flight, if any, and the file range it covers:
    /// it runs beside the commits (see [`Aof::zero_ahead`]).
    zeroing: RefCell<Option<(glommio::Task<()>, u64, u64)>>,
    /// [`ZERO_CHUNK`] bytes of zeros, allocated once and written again and
    /// again (a new buffer per write was mapped and faulted in each time).
    zeros: RefCell<Option<Rc<DmaBuffer>>>,
    /// Bytes ever appended (a sequence number across files).
    appended: Cell<u64>,
    /// Bytes ever written (and synced, under `always`).
    durable: Cell<u64>,
    lock: Semaphore,
    /// Records were written without a sync since the last one (`everysec`
    /// streams them; the tick must sync even when nothing is pending).
    unsynced: Cell<bool>,
    /// Last write failed with this errno (0: fine).
    failed: Cell<i32>,
    /// The highest sequence a [`Aof::durable_to`] waiter asked for.
    wanted: Cell<u64>,
    /// The committer task is running (see [`Aof::start_commit`]).
    committing: Cell<bool>,
    /// Tasks waiting in [`Aof::durable_to`], woken after every write attempt.
    waiters: RefCell<Vec<Waker>>,
    /// Sequence end of the last failed write attempt (its records and all
    /// before them were not written); meaningful while `failed` is set.
    failed_upto: Cell<u64>,
    /// DMA buffers kept for the next writes, by size class (see
    /// [`class_len`]): a large aligned allocation is a fresh mapping every
    /// time, faulted in page by page as it is filled.
    dma_pool: RefCell<Vec<Vec<DmaBuffer>>>,
    /// Bytes of the buffers in `dma_pool`.
    pool_bytes: Cell<usize>,
    /// Writes and syncs done, for INFO and tests.
    writes: Cell<u64>,
    /// Commit writes issued (queued for the ring), for
    /// [`Aof::let_commit_run`].
    writes_started: Cell<u64>,
    /// `writes_started` when the last [`Aof::let_commit_run`] ended.
    writes_passed: Cell<u64>,
    syncs: Cell<u64>,
    /// Time spent in log writes and in fdatasyncs (µs, from submission to
    /// completion), and bytes written (with the rewritten tail block and
    /// padding): where a commit's time goes, for INFO.
    write_us: Cell<u64>,
    sync_us: Cell<u64>,
    written_bytes: Cell<u64>,
    /// Bytes on disk right after the last rewrite (snapshot and log), or
    /// at open (Redis's `aof_base_size`), for the automatic rewrite rule.
    base_size: Cell<u64>,
    /// Size of the newest snapshot (0: none).
    snapshot_size: Cell<u64>,
    /// Who writes the files (the generation is `generation`).
    ident: Header,
    /// Rewrite generation of the current log.
    generation: Cell<u64>,
    /// Directory of the files.
    dir: PathBuf,
    /// Rewrite (snapshot) state, for SAVE/BGSAVE/INFO.
    pub rewrite: RewriteState,
}

/// A shard's snapshot/rewrite state.
#[derive(Default)]
pub struct RewriteState {
    /// A rewrite is running.
    pub running: Cell<bool>,
    /// Unix seconds of the last successful snapshot (0: none yet).
    pub last_save: Cell<u64>,
    /// The last rewrite failed.
    pub last_failed: Cell<bool>,
    /// Rewrites done.
    pub done: Cell<u64>,
    /// Longest time one slice of the last snapshot held the shard, µs.
    pub max_pause_us: Cell<u64>,
}

fn errno_of(e: &glommio::GlommioError<()>) -> i32 {
    match e {
        glommio::GlommioError::IoError(io) => io.raw_os_error().unwrap_or(libc::EIO),
        _ => libc::EIO,
    }
}

/// True when `dir` is on a tmpfs.
fn on_tmpfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct we pass; `c` is a valid C string.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC
    }
}

/// Opens (or creates) a log file for appending at logical offset `end`.
/// Anything past `end` (a torn record) is truncated away. Under `always`
/// the file is opened `O_DSYNC`: each write returns once its data is on
/// stable storage, so a group commit is one io_uring operation instead of
/// a write and then an fdatasync (which io_uring always hands to a kernel
/// worker thread).
pub async fn open_file(path: &Path, end: u64, fsync: Fsync) -> std::io::Result<DmaFile> {
    let flags = if fsync == Fsync::Always {
        libc::O_DSYNC
    } else {
        0
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(flags)
        .dma_open(path)
        .await
        .map_err(std::io::Error::from)?;
    file.truncate(end).await.map_err(std::io::Error::from)?;
    if end == 0 {
        // A new file: its directory entry must be durable before anything
        // written to it is acknowledged.
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        super::snapshot::off_executor(move || super::snapshot::sync_dir(&dir)).await?;
    }
    Ok(file)
}

impl Aof {
    /// A writer over `file`, whose logical length is `end` and whose last
    /// partial block is `tail` (`end % block` bytes). When `end` is 0 the
    /// caller appends the header first.
    /// `ident` names the writer and the current generation.
    pub fn new(
        file: DmaFile,
        path: PathBuf,
        end: u64,
        tail: Vec<u8>,
        fsync: Fsync,
        ident: Header,
    ) -> Aof {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Zeros ahead only pay under `always`, where each commit's latency
        // counts; under `everysec` / `no` the records stream in large
        // writes and the zeros would double the bytes written (measured:
        // 220 against 156 ns of server CPU per YCSB-A op).
        let zero_ahead = fsync == Fsync::Always && !on_tmpfs(&dir);
        Aof {
            ident,
            generation: Cell::new(ident.generation),
            dir,
            rewrite: RewriteState {
                // Redis's convention: LASTSAVE is the start time until the
                // first save.
                last_save: Cell::new(super::now_ms() / 1000),
                ..RewriteState::default()
            },
            file: RefCell::new(Rc::new(file)),
            path: RefCell::new(path),
            fsync,
            chain: RefCell::new(Chain {
                base: end - tail.len() as u64,
                ..Chain::default()
            }),
            retry: RefCell::new(None),
            tail: RefCell::new(tail),
            next_class: Cell::new(MIN_CLASS),
            scratch: RefCell::new(Vec::new()),
            file_end: Cell::new(end),
            zeroed: Rc::new(Cell::new(end)),
            zero_ahead,
            zeroing: RefCell::new(None),
            zeros: RefCell::new(None),
            appended: Cell::new(0),
            durable: Cell::new(0),
            lock: Semaphore::new(1),
            unsynced: Cell::new(false),
            failed: Cell::new(0),
            wanted: Cell::new(0),
            committing: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
            failed_upto: Cell::new(0),
            dma_pool: RefCell::new(Vec::new()),
            pool_bytes: Cell::new(0),
            writes: Cell::new(0),
            writes_started: Cell::new(0),
            writes_passed: Cell::new(0),
            syncs: Cell::new(0),
            write_us: Cell::new(0),
            sync_us: Cell::new(0),
            written_bytes: Cell::new(0),
            base_size: Cell::new(end),
            snapshot_size: Cell::new(0),
        }
    }

    /// The fsync policy.
    pub fn fsync(&self) -> Fsync {
        self.fsync
    }

    /// The header of a new file of this shard (`kind`, generation `g`).
    pub fn header(&self, kind: FileKind, g: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(record::HEADER_LEN);
        Header {
            kind,
            generation: g,
            ..self.ident
        }
        .encode(&mut out);
        out
    }

    /// Rewrite generation of the current log.
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This shard's id.
    pub fn shard_id(&self) -> usize {
        self.ident.shard_id as usize
    }

    /// The current log file.
    pub fn path(&self) -> PathBuf {
        self.path.borrow().clone()
    }

    /// Appends one record of database 0 (no I/O).
    #[inline]
    pub fn append(&self, op: RecordOp, expire_at_ms: u64, key: &[u8], value: &[u8]) {
        self.append_in(0, op, expire_at_ms, key, value)
    }

    /// Appends one record of database `db`: encoded straight into the DMA
    /// buffer the commit writes (no I/O, no copy afterwards, no checksum:
    /// the group's is computed when it closes).
    #[inline]
    pub fn append_in(&self, db: u16, op: RecordOp, expire_at_ms: u64, key: &[u8], value: &[u8]) {
        let n = record::record_len(key, value);
        let fast = {
            let mut c = self.chain.borrow_mut();
            let c = &mut *c;
            let at = c.len - c.last_at;
            match (c.group, c.bufs.last_mut()) {
                (Some(g), Some(b)) if at + n <= b.len() => {
                    record::encode_into(
                        &mut b.as_bytes_mut()[at..at + n],
                        db,
                        op,
                        expire_at_ms,
                        key,
                        value,
                    );
                    c.len += n;
                    prefetch_write(b.as_ptr().wrapping_add(at + n + PREFETCH_AHEAD));
                    self.appended.set(self.appended.get() + n as u64);
                    Some(c.len - g >= record::GROUP_HEADER + record::GROUP_BYTES)
                }
                _ => None,
            }
        };
        let group_full = match fast {
            Some(full) => full,
            None => self.append_slow(db, op, expire_at_ms, key, value, n),
        };
        if group_full {
            self.close_group();
        }
    }

    /// [`Aof::append_in`] when no group is open or the record straddles two
    /// buffers: opens a group, encodes the record aside and copies it in.
    /// Returns whether the group is full.
    #[cold]
    fn append_slow(
        &self,
        db: u16,
        op: RecordOp,
        expire_at_ms: u64,
        key: &[u8],
        value: &[u8],
        n: usize,
    ) -> bool {
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        record::encode_in(&mut scratch, db, op, expire_at_ms, key, value);
        let open = self.chain.borrow().group.is_some();
        if !open {
            let at = self.chain.borrow().len;
            self.push_bytes(&[0u8; record::GROUP_HEADER]);
            let mut c = self.chain.borrow_mut();
            // The chain's first buffer (if just added) starts with the tail.
            c.group = Some(at.max(c.prefix));
            self.appended
                .set(self.appended.get() + record::GROUP_HEADER as u64);
        }
        self.push_bytes(&scratch);
        self.appended.set(self.appended.get() + n as u64);
        let c = self.chain.borrow();
        c.len - c.group.unwrap_or(c.len) >= record::GROUP_HEADER + record::GROUP_BYTES
    }

    /// Closes the open group, if any: its checksum over the records (one
    /// xxh3 over bytes just written, across buffers when it straddles
    /// them) and its length, written into the header it reserved.
    fn close_group(&self) {
        let mut c = self.chain.borrow_mut();
        let Some(g) = c.group.take() else {
            return;
        };
        let (from, to) = (g + record::GROUP_HEADER, c.len);
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut at = 0;
        for b in &c.bufs {
            let (lo, hi) = (from.max(at), to.min(at + b.len()));
            if lo < hi {
                pieces.push(&b.as_bytes()[lo - at..hi - at]);
            }
            at += b.len();
        }
        let sum = match pieces.as_slice() {
            [one] => xxhash_rust::xxh3::xxh3_64(one),
            many => {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                for p in many {
                    h.update(p);
                }
                h.digest()
            }
        };
        let head = record::group_header(to - from, sum);
        let mut at = 0;
        for b in &mut c.bufs {
            let len = b.len();
            let (lo, hi) = (g.max(at), (g + head.len()).min(at + len));
            if lo < hi {
                b.as_bytes_mut()[lo - at..hi - at].copy_from_slice(&head[lo - g..hi - g]);
            }
            at += len;
        }
    }

    /// Appends raw bytes (a header).
    pub fn append_raw(&self, bytes: &[u8]) {
        self.close_group();
        self.push_bytes(bytes);
        self.appended.set(self.appended.get() + bytes.len() as u64);
    }

    /// Copies `bytes` to the end of the chain, adding buffers as needed
    /// (the first one starts with the file's last partial block).
    fn push_bytes(&self, mut bytes: &[u8]) {
        let mut c = self.chain.borrow_mut();
        while !bytes.is_empty() {
            let room = c.bufs.last().map_or(0, |b| c.last_at + b.len() - c.len);
            if room == 0 {
                self.add_buffer(&mut c);
                continue;
            }
            let n = room.min(bytes.len());
            let at = c.len - c.last_at;
            let b = c.bufs.last_mut().expect("a buffer with room");
            b.as_bytes_mut()[at..at + n].copy_from_slice(&bytes[..n]);
            c.len += n;
            bytes = &bytes[n..];
        }
    }

    /// Adds a buffer to the chain: the first of a chain is
    /// [`Aof::next_class`] long and starts with the tail block; each next
    /// one twice the last, up to [`WRITE_CHUNK`].
    fn add_buffer(&self, c: &mut Chain) {
        let file = self.file.borrow().clone();
        match c.bufs.last() {
            None => {
                let tail = self.tail.borrow();
                let len = class_len(self.next_class.get().max(tail.len() + 1));
                let mut b = self.take_dma(&file, len);
                b.as_bytes_mut()[..tail.len()].copy_from_slice(&tail);
                c.bufs.push(b);
                c.last_at = 0;
                c.len = tail.len();
                c.prefix = tail.len();
            }
            Some(last) => {
                let len = class_len(last.len() * 2);
                c.last_at += last.len();
                debug_assert_eq!(c.last_at, c.len, "only a full buffer is followed");
                let b = self.take_dma(&file, len);
                c.bufs.push(b);
            }
        }
    }

    /// Hands the chain to a write: the last buffer of the [`class_len`] of
    /// its bytes and zeroed after them, the next chain
    /// started where this one ends (its prefix, the last partial block,
    /// copied: less than a block). `None` when nothing was appended.
    ///
    /// With `full_only` (a streaming write, no sync) and more than one
    /// buffer, only the full buffers go: the last one stays as the next
    /// chain's first, nothing of it written yet (no prefix, no zeros).
    fn seal(&self, full_only: bool) -> Option<Sealed> {
        self.close_group();
        let align = self.file.borrow().alignment();
        let mut c = self.chain.borrow_mut();
        if c.bufs.is_empty() {
            return None;
        }
        if full_only && c.bufs.len() >= 2 {
            let last = c.bufs.pop().expect("two buffers");
            let end = c.base + c.last_at as u64;
            let used = c.len - c.last_at;
            let full = std::mem::replace(
                &mut *c,
                Chain {
                    bufs: vec![last],
                    last_at: 0,
                    len: used,
                    prefix: 0,
                    base: end,
                    group: None,
                },
            );
            return Some(Sealed {
                padded: end - full.base,
                bufs: full.bufs.into_iter().map(Rc::new).collect(),
                base: full.base,
                end,
                seq_end: self.appended.get() - used as u64,
            });
        }
        let mut chain = std::mem::take(&mut *c);
        let end = chain.base + chain.len as u64;
        let next_base = end - end % align;
        c.base = next_base;
        let used = chain.len - chain.last_at;
        let last = chain.bufs.last_mut().expect("a chain has a buffer");
        {
            let mut tail = self.tail.borrow_mut();
            tail.clear();
            let from = used - (end - next_base) as usize;
            tail.extend_from_slice(&last.as_bytes()[from..used]);
        }
        // A last buffer more than twice too large is not written whole:
        // its bytes move to one of their size class (a copy of less than
        // half the buffer, only when the commit was smaller than the last
        // one), and the large buffer goes back to the pool intact (trimming
        // it would turn it into a small one for good, and the next large
        // chain would fault in a fresh buffer page by page).
        let fit = class_len(used);
        if fit < last.len() {
            let file = self.file.borrow().clone();
            let mut small = self.take_dma(&file, fit);
            small.as_bytes_mut()[..used].copy_from_slice(&last.as_bytes()[..used]);
            let large = std::mem::replace(last, small);
            self.give_dma(Rc::new(large));
        }
        last.as_bytes_mut()[used..].fill(0);
        self.next_class.set(class_len(chain.len));
        let padded = (chain.last_at + last.len()) as u64;
        Some(Sealed {
            bufs: chain.bufs.into_iter().map(Rc::new).collect(),
            base: chain.base,
            end,
            padded,
            seq_end: self.appended.get(),
        })
    }

    /// Sequence number after the last appended record.
    #[inline]
    pub fn appended(&self) -> u64 {
        self.appended.get()
    }

    /// Sequence number up to which records are written.
    pub fn durable(&self) -> u64 {
        self.durable.get()
    }

    /// True when records are buffered but not yet written.
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.durable.get() < self.appended.get()
    }

    /// The errno of the failed last write, if it failed.
    #[inline]
    pub fn failed(&self) -> Option<i32> {
        match self.failed.get() {
            0 => None,
            e => Some(e),
        }
    }

    /// Logical size of the current log file, including buffered records.
    pub fn size(&self) -> u64 {
        let retry = self
            .retry
            .borrow()
            .as_ref()
            .map_or(0, |r| r.end - self.file_end.get());
        self.file_end.get() + retry + self.pending_len() as u64
    }

    /// Size of the log right after its last rewrite (or at start).
    pub fn base_size(&self) -> u64 {
        self.base_size.get()
    }

    /// Writes and syncs performed so far.
    pub fn io_counts(&self) -> (u64, u64) {
        (self.writes.get(), self.syncs.get())
    }

    /// Total µs spent writing and syncing, and bytes written, so far.
    pub fn io_times(&self) -> (u64, u64, u64) {
        (
            self.write_us.get(),
            self.sync_us.get(),
            self.written_bytes.get(),
        )
    }

    /// Waits until every record appended so far is written (and synced,
    /// under `always`). The group commit: one write and at most one sync
    /// for everything buffered, whoever appended it.
    pub async fn commit(&self) -> Result<(), i32> {
        self.commit_to(self.appended.get(), self.fsync == Fsync::Always)
            .await
    }

    /// What a connection does before releasing replies of batches that
    /// started when the log's sequence was `mark` ([`Aof::appended`]): under
    /// `always`, a commit; otherwise nothing (the committer streams the
    /// records, the timer syncs), except waiting for the write in flight
    /// while more than [`BACKLOG_MAX`] bytes are buffered.
    #[inline]
    pub async fn before_reply(self: &Rc<Self>, mark: u64) -> Result<(), i32> {
        if !self.has_pending() {
            return Ok(());
        }
        if self.failed.get() != 0 && self.appended.get() == mark {
            // The log is failing, these batches logged nothing (their
            // writes were refused): their reads go on. The timer retries.
            return Ok(());
        }
        if self.must_wait(mark) {
            return self.durable_to(self.appended.get()).await;
        }
        self.after_batch();
        Ok(())
    }

    /// True when replies of batches that started at log sequence `mark`
    /// ([`Aof::appended`] before them) must wait for a group commit before
    /// they leave: under `always`, while anything appended is not yet
    /// durable — except when the log is failing and these batches logged
    /// nothing (their writes were refused: their reads go on).
    /// Under `everysec` and `no`, replies wait only while more than
    /// [`BACKLOG_MAX`] bytes are buffered and the log is healthy
    /// (backpressure).
    #[inline]
    pub fn must_wait(&self, mark: u64) -> bool {
        match self.fsync {
            Fsync::Always => {
                self.has_pending() && !(self.failed.get() != 0 && self.appended.get() == mark)
            }
            _ => self.failed.get() == 0 && self.pending_len() > BACKLOG_MAX,
        }
    }

    /// Bytes appended and not yet handed to a write.
    #[inline]
    pub fn pending_len(&self) -> usize {
        self.chain.borrow().records()
    }

    /// Called after a batch has executed: under `everysec` and `no`, starts
    /// the committer (writes without sync) once a buffer is full
    /// ([`Aof::stream_ready`]). Under `always` the connection asks for its
    /// commit itself.
    #[inline]
    pub fn after_batch(self: &Rc<Self>) {
        if self.fsync != Fsync::Always && self.stream_ready() {
            self.start_commit();
        }
    }

    /// Under `everysec` and `no`: a buffer of the chain is full, so the
    /// committer has a whole buffer to stream (buffers grow from the last
    /// commit's size class to [`WRITE_CHUNK`]).
    #[inline]
    pub fn stream_ready(&self) -> bool {
        self.chain.borrow().bufs.len() >= 2
    }

    /// Whether the committer has more to do: under `always` everything
    /// appended; otherwise what a waiter asked for, or a stream's worth.
    fn committer_busy(&self) -> bool {
        self.has_pending()
            && (self.fsync == Fsync::Always
                || self.durable.get() < self.wanted.get()
                || self.stream_ready())
    }

    /// Starts the committer unless it runs: a task that writes and syncs
    /// everything appended, then again whatever was appended meanwhile,
    /// until nothing is pending — at most one write+sync in flight, the next
    /// one gathering every record that arrived during the previous one
    /// (pipelined group commit). The shard's executor goes on running
    /// batches while a commit is in flight. It stops at a failed write; the
    /// once-a-second [`Aof::tick`] retries.
    pub fn start_commit(self: &Rc<Self>) {
        if self.committing.get() || !self.committer_busy() || self.failed.get() != 0 {
            return;
        }
        self.committing.set(true);
        let me = self.clone();
        glommio::spawn_local(async move {
            while me.committer_busy() {
                // Under `everysec` / `no` the committer streams: whole
                // buffers only, the one being filled stays.
                let (sync, stream) = (me.fsync == Fsync::Always, me.fsync != Fsync::Always);
                if me.commit_upto(me.appended(), sync, stream).await.is_err() {
                    break;
                }
            }
            me.committing.set(false);
            me.wake_waiters();
        })
        .detach();
    }

    /// Waits (without holding anything: dropping the future is harmless)
    /// until every record up to sequence `target` is written (and synced
    /// under `always`), starting the committer if needed; `Err(errno)` when
    /// the write attempt that covered `target` failed.
    pub fn durable_to(self: &Rc<Self>, target: u64) -> impl Future<Output = Result<(), i32>> + '_ {
        std::future::poll_fn(move |cx| {
            if let Some(r) = self.poll_durable(target) {
                return Poll::Ready(r);
            }
            let mut w = self.waiters.borrow_mut();
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
            drop(w);
            self.wanted.set(self.wanted.get().max(target));
            self.start_commit();
            Poll::Pending
        })
    }

    /// Lets the committer's I/O move while the caller goes on executing
    /// batches: one pass of the executor's reactor ([`reactor_pass`]).
    ///
    /// Why it is needed: glommio submits queued ring operations and reaps
    /// the main ring's completions (where disk writes complete) only when
    /// every task is waiting, or when the latency ring has a completion. A
    /// connection whose client keeps it fed never waits (its `recv`s find
    /// data), so the committer's write sat unsubmitted, and its completion
    /// unnoticed, until the connection ran out of room for held replies:
    /// a commit the disk does in 0.15–0.3 ms took ~1.3 ms as the shard saw
    /// it, with the shard idle for part of it. Called once per round of
    /// frames while a reply waits for a commit (a timer and a pass of the
    /// rings per round, never per operation): the pass submits the write
    /// the committer queued after the previous one and reaps a finished
    /// one; the committer, woken by it, marks it durable and queues the next
    /// commit, submitted at the next pass. (A second pass at once, to
    /// submit that write sooner, was tried: same throughput, and batch p99
    /// 1.5x worse under YCSB-B, since every pass also lets a snapshot
    /// slice run.)
    pub async fn let_commit_run(&self) {
        self.writes_passed.set(self.writes_started.get());
        reactor_pass().await;
        // The committer, woken by a completion in the same pass, may be
        // queued behind this task: let it run first.
        glommio::executor().yield_now().await;
    }

    /// Under `everysec` and `no`: whether the streaming committer needs a
    /// pass of the reactor ([`Aof::let_commit_run`]) — it started a write
    /// that is not submitted yet, or a stream's worth of records waits
    /// behind the write in flight (done, perhaps, but not reaped). Without
    /// it a connection that is kept fed never lets the reactor run, the
    /// buffer fills up to [`BACKLOG_MAX`] and replies wait for a write
    /// that the disk finished long ago. One comparison or two per round.
    #[inline]
    pub fn stream_needs_pass(&self) -> bool {
        self.committing.get()
            && (self.writes_started.get() != self.writes_passed.get() || self.stream_ready())
    }

    /// Where sequence `target` stands now: `Some(Ok)` durable, `Some(Err)`
    /// the write attempt that covered it failed, `None` not yet.
    #[inline]
    pub fn poll_durable(&self, target: u64) -> Option<Result<(), i32>> {
        if self.durable.get() >= target {
            return Some(Ok(()));
        }
        let errno = self.failed.get();
        if errno != 0 && self.failed_upto.get() >= target {
            return Some(Err(errno));
        }
        None
    }

    /// A DMA buffer of exactly `len` bytes (a [`class_len`]), from the pool
    /// when one is there.
    fn take_dma(&self, file: &DmaFile, len: usize) -> DmaBuffer {
        let class = class_index(len);
        let pooled = self.dma_pool.borrow_mut().get_mut(class).and_then(Vec::pop);
        match pooled {
            Some(b) => {
                self.pool_bytes.set(self.pool_bytes.get() - b.len());
                b
            }
            None => file.alloc_dma_buffer(len),
        }
    }

    /// Returns a written buffer to the pool, up to [`POOL_BYTES`] in all
    /// (a buffer dropped is unmapped, and a new one faulted in page by page
    /// as records are encoded into it).
    fn give_dma(&self, buf: Rc<DmaBuffer>) {
        let Ok(buf) = Rc::try_unwrap(buf) else {
            return;
        };
        let held = self.pool_bytes.get();
        if held + buf.len() > POOL_BYTES {
            return;
        }
        self.pool_bytes.set(held + buf.len());
        let class = class_index(buf.len());
        let mut pool = self.dma_pool.borrow_mut();
        if pool.len() <= class {
            pool.resize_with(class + 1, Vec::new);
        }
        pool[class].push(buf);
    }

    fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Writes everything up to sequence `target`, syncing when `sync`.
    pub async fn commit_to(&self, target: u64, sync: bool) -> Result<(), i32> {
        self.commit_upto(target, sync, false).await
    }

    /// [`Aof::commit_to`]; with `stream`, only the chain's full buffers
    /// are written when it has more than one (see [`Aof::seal`]).
    async fn commit_upto(&self, target: u64, sync: bool, stream: bool) -> Result<(), i32> {
        if self.durable.get() >= target && self.failed.get() == 0 {
            return Ok(());
        }
        let Ok(_permit) = self.lock.acquire_permit(1).await else {
            return Err(libc::EIO);
        };
        if self.durable.get() >= target && self.failed.get() == 0 {
            return Ok(());
        }
        self.write_pending(sync, stream).await
    }

    /// Writes the appended records (holding the flush lock): first a chain
    /// whose write failed (alone: the next chain rewrites its last block),
    /// then the current one.
    async fn write_pending(&self, sync: bool, stream: bool) -> Result<(), i32> {
        let retry = self.retry.borrow_mut().take();
        if let Some(sealed) = retry {
            self.write_sealed(sealed, sync).await?;
        }
        match self.seal(stream) {
            Some(sealed) => self.write_sealed(sealed, sync).await,
            None if sync && self.fsync != Fsync::Always && self.unsynced.get() => {
                // Nothing new: under `everysec` the tick still syncs what
                // the streaming writes left unsynced.
                self.sync_file().await
            }
            None => Ok(()),
        }
    }

    /// fdatasync of the current file, timed.
    async fn sync_file(&self) -> Result<(), i32> {
        let file = self.file.borrow().clone();
        let started = Instant::now();
        let r = file.fdatasync().await.map_err(|e| errno_of(&e)).map(|_| {
            self.syncs.set(self.syncs.get() + 1);
            self.unsynced.set(false);
        });
        self.sync_us
            .set(self.sync_us.get() + started.elapsed().as_micros() as u64);
        r
    }

    /// Writes one sealed chain (its buffers together: disjoint,
    /// block-aligned), syncing when `sync` (an `O_DSYNC` write under
    /// `always` is its own sync). On failure the chain is kept for the
    /// next attempt.
    async fn write_sealed(&self, sealed: Sealed, sync: bool) -> Result<(), i32> {
        let file = self.file.borrow().clone();
        let started = Instant::now();
        self.zero_ahead(&file, sealed.base, sealed.base + sealed.padded)
            .await;
        self.writes_started.set(self.writes_started.get() + 1);
        // Several buffers are written concurrently (waiting for each in
        // turn would wait for the executor to notice each completion); the
        // commit is done when all are.
        async fn write(file: Rc<DmaFile>, buf: Rc<DmaBuffer>, at: u64) -> Result<(), i32> {
            let need = buf.len();
            match file.write_rc_at(buf, at).await {
                Ok(n) if n >= need => Ok(()),
                Ok(_) => Err(libc::ENOSPC),
                Err(e) => Err(errno_of(&e)),
            }
        }
        let mut r = Ok(());
        if sealed.bufs.len() == 1 {
            r = write(file.clone(), sealed.bufs[0].clone(), sealed.base).await;
        } else {
            let mut at = sealed.base;
            let writes: Vec<_> = sealed
                .bufs
                .iter()
                .map(|b| {
                    let w = glommio::spawn_local(write(file.clone(), b.clone(), at));
                    at += b.len() as u64;
                    w
                })
                .collect();
            for w in writes {
                let one = w.await;
                if r.is_ok() {
                    r = one;
                }
            }
        }
        self.write_us
            .set(self.write_us.get() + started.elapsed().as_micros() as u64);
        self.written_bytes
            .set(self.written_bytes.get() + sealed.padded);
        let r = match r {
            // An O_DSYNC write is its own sync (`always`, see `open_file`).
            Ok(()) if sync && self.fsync == Fsync::Always => {
                self.syncs.set(self.syncs.get() + 1);
                Ok(())
            }
            Ok(()) if sync => self.sync_file().await,
            r => r,
        };
        match r {
            Ok(()) => {
                self.writes.set(self.writes.get() + 1);
                if !sync {
                    self.unsynced.set(true);
                }
                self.file_end.set(sealed.end);
                self.durable.set(sealed.seq_end);
                self.failed.set(0);
                for b in sealed.bufs {
                    self.give_dma(b);
                }
                self.wake_waiters();
                Ok(())
            }
            Err(errno) => self.write_failed(sealed, errno),
        }
    }

    /// A failed write of `sealed`: kept to be written again, first, by the
    /// next attempt; the log is marked failed.
    fn write_failed(&self, sealed: Sealed, errno: i32) -> Result<(), i32> {
        if self.failed.get() == 0 {
            eprintln!(
                "corekv: writing {} failed: {}; writes are refused until it succeeds",
                self.path.borrow().display(),
                std::io::Error::from_raw_os_error(errno)
            );
        }
        self.failed.set(errno);
        self.failed_upto.set(sealed.seq_end);
        *self.retry.borrow_mut() = Some(sealed);
        LAST_WRITE_ERRNO.store(errno, Relaxed);
        self.wake_waiters();
        Err(errno)
    }

    /// Keeps [`ZERO_AHEAD`] bytes of zeros written past the records, so a
    /// commit to `[base, need)` overwrites allocated blocks: io_uring issues
    /// an overwrite inline (an extending write is handed to a kernel worker
    /// thread, on the shard's own CPU) and the O_DSYNC write has no file
    /// size to flush. Zeros after the last record are what
    /// [`super::record::scan`] reads as the clean end of a log, and a clean
    /// shutdown truncates them away.
    ///
    /// The zeros are written in [`ZERO_CHUNK`] pieces from one buffer kept
    /// for the purpose, by a task beside the commits: a commit waits for a
    /// write of zeros only when its own range overlaps it (the two writes'
    /// order on the disk would be undefined), which does not happen while
    /// the zeros stay far enough ahead. Before, each commit that crossed
    /// the zeros waited for a fresh 4 MB buffer to be faulted in, filled
    /// and written (8 % of the shard's time under YCSB-B).
    ///
    /// Only a matter of speed: when the zeros cannot be written (a full
    /// disk) the records are written all the same, extending the file, and
    /// no zeros are tried again for the next [`ZERO_AHEAD`] bytes. Off on
    /// tmpfs, where zeros would only take memory.
    async fn zero_ahead(&self, file: &Rc<DmaFile>, base: u64, need: u64) {
        if !self.zero_ahead {
            return;
        }
        let in_flight = self.zeroing.borrow().as_ref().map(|z| (z.1, z.2));
        if let Some((from, to)) = in_flight {
            if self.zeroed.get() >= to {
                // Done (the task moves `zeroed` past its range either way).
                self.zeroing.borrow_mut().take();
            } else if base < to && from < need {
                self.wait_zeros().await;
            } else {
                // One write of zeros at a time.
                return;
            }
        }
        if need + ZERO_AHEAD / 2 <= self.zeroed.get() {
            return;
        }
        let align = file.alignment();
        // Right after the records when the zeros reach them; otherwise (a
        // new file, or the zeros fell behind) a chunk further on, so the
        // next commits do not wait for this write: the blocks between are
        // a hole until the records fill them (reads as zeros meanwhile).
        let zeroed = self.zeroed.get();
        let mut at = if zeroed >= need {
            zeroed
        } else {
            need + ZERO_CHUNK as u64
        };
        // Whole blocks only.
        at -= at % align;
        let zeros = self
            .zeros
            .borrow_mut()
            .get_or_insert_with(|| {
                let mut b = glommio::allocate_dma_buffer_global(ZERO_CHUNK);
                b.as_bytes_mut().fill(0);
                Rc::new(b)
            })
            .clone();
        let len = zeros.len() as u64;
        let (file, zeroed) = (file.clone(), self.zeroed.clone());
        let task = glommio::spawn_local(async move {
            match file.write_rc_at(zeros, at).await {
                Ok(w) if w as u64 >= len => zeroed.set(zeroed.get().max(at + len)),
                // Give up for the next ZERO_AHEAD bytes (a full disk).
                _ => zeroed.set(zeroed.get().max(at + ZERO_AHEAD)),
            }
        });
        *self.zeroing.borrow_mut() = Some((task, at, at + len));
    }

    /// Waits for the write of zeros in flight, if any (before a commit
    /// into its range, a truncation or a switch to another file).
    async fn wait_zeros(&self) {
        let task = self.zeroing.borrow_mut().take();
        if let Some((task, _, _)) = task {
            task.await;
        }
    }

    /// The shard's once-a-second persistence tick: write what is buffered
    /// (`everysec`: and sync; `no`: write only; `always`: retry a failed
    /// write — commits sync themselves).
    pub async fn tick(&self) {
        if self.has_pending() || self.failed.get() != 0 {
            let sync = self.fsync != Fsync::No;
            let _ = self.commit_to(self.appended.get(), sync).await;
        } else if self.fsync == Fsync::Everysec && self.unsynced.get() {
            // Everything was streamed (written without sync): sync it.
            if let Ok(_permit) = self.lock.acquire_permit(1).await {
                if self.unsynced.get() {
                    let _ = self.sync_file().await;
                }
            }
        }
    }

    /// True when the files (snapshot and log) outgrew their size after the
    /// last rewrite (or at open) by `percentage` percent and are at least
    /// `min_size` bytes: Redis's rule, where the rewritten AOF holds the
    /// data. (It compared the log alone with the log a rewrite left, a few
    /// MB, so under a write load a full snapshot was taken every 64 MB of
    /// log: 8 % of the shard's time under YCSB-B.)
    pub fn wants_rewrite(&self, percentage: u64, min_size: u64) -> bool {
        let size = self.files_size();
        let base = self.base_size.get().max(1);
        percentage > 0
            && size >= min_size
            && size.saturating_sub(base) * 100 / base >= percentage
            && !self.rewrite.running.get()
    }

    /// Switches to a new, empty log file (a rewrite): everything buffered
    /// goes to the old file first; `header` starts the new one.
    pub async fn switch_to(&self, file: DmaFile, path: PathBuf, g: u64) -> Result<(), i32> {
        let header = self.header(FileKind::Log, g);
        let Ok(_permit) = self.lock.acquire_permit(1).await else {
            return Err(libc::EIO);
        };
        self.write_pending(true, false).await?;
        // No write of zeros may land in the old file after this.
        self.wait_zeros().await;
        let old = std::mem::replace(&mut *self.file.borrow_mut(), Rc::new(file));
        *self.path.borrow_mut() = path;
        self.file_end.set(0);
        self.zeroed.set(0);
        self.tail.borrow_mut().clear();
        self.generation.set(g);
        // Records appended while the old file was being written belong to
        // the new one, after its header: their chain was laid out for the
        // old file, so they move (a copy, once per rewrite).
        self.close_group();
        let old_chain = std::mem::take(&mut *self.chain.borrow_mut());
        let mut rest = Vec::with_capacity(old_chain.records());
        let mut at = 0;
        for b in old_chain.bufs {
            let bytes = b.as_bytes();
            let from = old_chain.prefix.saturating_sub(at).min(bytes.len());
            let to = (old_chain.len - at).min(bytes.len());
            if from < to {
                rest.extend_from_slice(&bytes[from..to]);
            }
            at += bytes.len();
            self.give_dma(Rc::new(b));
        }
        self.push_bytes(&header);
        self.push_bytes(&rest);
        self.appended.set(self.appended.get() + header.len() as u64);
        self.write_pending(true, false).await?;
        self.base_size.set(self.file_end.get());
        if let Ok(old) = Rc::try_unwrap(old) {
            let _ = old.close().await;
        }
        Ok(())
    }

    /// Notes the size of the snapshot a rewrite (or recovery) left: the
    /// base of the automatic rewrite rule is then the snapshot and the log.
    pub fn set_snapshot_size(&self, size: u64) {
        self.snapshot_size.set(size);
        self.base_size.set(size + self.size());
    }

    /// Bytes of the newest snapshot and the log after it, including
    /// buffered records (Redis's `aof_current_size`).
    pub fn files_size(&self) -> u64 {
        self.snapshot_size.get() + self.size()
    }

    /// Writes and syncs everything, then closes the file (clean shutdown).
    pub async fn close(&self) -> Result<(), i32> {
        self.commit_to(self.appended.get(), true).await?;
        self.wait_zeros().await;
        let file = self.file.borrow().clone();
        let end = self.file_end.get();
        // Drop the zero padding of the last block.
        let _ = file.truncate(end).await;
        let _ = file.fdatasync().await;
        Ok(())
    }
}

/// Waits for one pass of the executor's reactor (queued ring operations
/// submitted, completions reaped, timers run), and lets every task that
/// woke meanwhile run. `yield_now` does not do that: glommio runs a queue's
/// tasks until every one waits, or the latency ring has a completion, and
/// only then looks at the rings — a task that yields in a loop keeps disk
/// completions (and timers) waiting. A timer due 1 µs from now is pending
/// when polled (one already due would be ready at once, without a pass)
/// and is woken by the next pass.
pub async fn reactor_pass() {
    glommio::timer::sleep(std::time::Duration::from_micros(1)).await;
}

/// Smallest DMA buffer size class: writes are whole buffers of a size
/// class, so buffers can be reused (the bytes past the records are zeros,
/// which a scan reads as the end of the log).
const MIN_CLASS: usize = 64 << 10;

/// The buffer length for a write of `len` bytes: the next power of two
/// from [`MIN_CLASS`] up to [`WRITE_CHUNK`].
fn class_len(len: usize) -> usize {
    len.next_power_of_two().clamp(MIN_CLASS, WRITE_CHUNK)
}

/// The pool index of a buffer of `len` bytes (a [`class_len`]).
fn class_index(len: usize) -> usize {
    (class_len(len) / MIN_CLASS).trailing_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_a_size_class() {
        assert_eq!(class_len(1), MIN_CLASS);
        assert_eq!(class_len(MIN_CLASS + 1), 2 * MIN_CLASS);
        assert_eq!(class_len(3 << 20), WRITE_CHUNK);
        assert_eq!(class_len(9 << 20), WRITE_CHUNK);
        assert_eq!(class_index(MIN_CLASS), 0);
        assert_eq!(class_index(WRITE_CHUNK), 6);
    }

    /// Records are encoded into the buffers that are written, laid out for
    /// the file: after every commit — small ones, one that chains buffers
    /// of growing size with records straddling them, one after a partial
    /// block — the file holds every record in order and then zeros.
    #[test]
    fn records_are_encoded_where_they_go_in_the_file() {
        with_everysec_log("chain", |log| async move {
            log.append_raw(&log.header(FileKind::Log, 0));
            let mut want = Vec::new();
            let mut n = 0u64;
            for count in [3usize, 2000, 1, 700, 1] {
                for _ in 0..count {
                    let key = format!("key{n}");
                    let value = vec![(n % 251) as u8; (n as usize * 37) % 1500];
                    log.append(RecordOp::Set, n, key.as_bytes(), &value);
                    want.push((key.into_bytes(), value, n));
                    n += 1;
                }
                let chained = log.chain.borrow().bufs.len();
                if count == 2000 {
                    assert!(chained >= 4, "{chained} buffers for 1.5 MB");
                }
                log.commit_to(log.appended(), true).await.unwrap();
                assert_eq!(log.pending_len(), 0);
                let data = std::fs::read(log.path()).unwrap();
                let align = log.file.borrow().alignment() as usize;
                assert_eq!(data.len() % align, 0, "whole blocks");
                let mut got = Vec::new();
                let end = record::scan(&data, record::HEADER_LEN, |_, r| {
                    got.push((r.key.to_vec(), r.value.to_vec(), r.expire_at_ms))
                });
                assert_eq!(
                    end,
                    record::ScanEnd::Clean {
                        end: log.size() as usize
                    }
                );
                assert_eq!(got, want);
            }
        });
    }

    /// The automatic rewrite compares the files (snapshot and log) with
    /// what they were after the last rewrite, as Redis does with its
    /// rewritten AOF: a log smaller than the data it follows is not
    /// rewritten, however many times it could be (the rule used to compare
    /// the log with the few bytes of log a rewrite left).
    /// Runs `f` on a fresh glommio executor with a new `everysec` log of
    /// shard 0 in an empty temporary directory named after `tag`, removed
    /// afterwards.
    fn with_everysec_log<F, Fut>(tag: &str, f: F)
    where
        F: FnOnce(Rc<Aof>) -> Fut + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        with_log(tag, Fsync::Everysec, f)
    }

    /// [`with_everysec_log`] with another policy.
    fn with_log<F, Fut>(tag: &str, fsync: Fsync, f: F)
    where
        F: FnOnce(Rc<Aof>) -> Fut + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let dir = std::env::temp_dir().join(format!("corekv-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(crate::config::DEFAULT_IO_MEMORY)
            .make()
            .unwrap();
        let d = dir.clone();
        ex.run(async move {
            let path = d.join("shard-0.0.aof");
            let file = open_file(&path, 0, fsync).await.unwrap();
            let ident = Header::single_log(0);
            f(Rc::new(Aof::new(file, path, 0, Vec::new(), fsync, ident))).await;
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Under `no` the once-a-second tick writes every record appended (the
    /// committer streams whole buffers and keeps the one being filled; the
    /// tick does not), and in groups that read back whole.
    #[test]
    fn the_tick_writes_everything_under_no() {
        with_log("no", Fsync::No, |log| async move {
            log.append_raw(&log.header(FileKind::Log, 0));
            let value = [5u8; 700];
            let mut n = 0u64;
            while !log.stream_ready() {
                log.append(RecordOp::Set, 0, b"k", &value);
                n += 1;
            }
            for _ in 0..10 {
                log.append(RecordOp::Set, 0, b"k", &value);
                n += 1;
            }
            log.tick().await;
            assert_eq!(log.pending_len(), 0);
            assert!(!log.has_pending());
            assert_eq!(log.io_counts().1, 0, "`no` never syncs");
            let data = std::fs::read(log.path()).unwrap();
            let mut seen = 0u64;
            let end = record::scan(&data, record::HEADER_LEN, |_, r| {
                assert_eq!(r.value, &value[..]);
                seen += 1;
            });
            assert_eq!(
                end,
                record::ScanEnd::Clean {
                    end: log.size() as usize
                }
            );
            assert_eq!(seen, n);
        });
    }

    #[test]
    fn rewrite_waits_until_the_log_outgrows_the_snapshot() {
        with_everysec_log("rule", |log| async move {
            // A 100 KB snapshot, an empty log: base 100 KB.
            log.set_snapshot_size(100_000);
            assert_eq!(log.base_size(), 100_000);
            let value = [1u8; 1000];
            while log.size() < 90_000 {
                log.append(RecordOp::Set, 0, b"k", &value);
            }
            assert_eq!(log.files_size(), 100_000 + log.size());
            // 90 KB of log after 100 KB of data: not yet 100 % growth.
            assert!(!log.wants_rewrite(100, 1));
            while log.size() < 100_000 {
                log.append(RecordOp::Set, 0, b"k", &value);
            }
            assert!(log.wants_rewrite(100, 1));
            // ... unless below the minimum size, or the rule is off.
            assert!(!log.wants_rewrite(100, 1 << 30));
            assert!(!log.wants_rewrite(0, 1));
        });
    }

    /// Under `everysec` nothing but the committer writes here (no tick
    /// runs): records stream to the file a buffer at a time as each fills, and
    /// replies are held (`must_wait`) only past [`BACKLOG_MAX`].
    #[test]
    fn everysec_streams_records_and_bounds_the_buffer() {
        with_everysec_log("stream", |log| async move {
            let value = [7u8; 1000];
            let mut n = 0u64;
            // No buffer full yet: nothing is written.
            log.append(RecordOp::Set, 0, b"k", &value);
            n += 1;
            log.after_batch();
            glommio::executor().yield_now().await;
            assert_eq!(log.io_counts().0, 0);
            assert!(!log.must_wait(0));
            // One full: the committer writes it without being asked (and
            // without a sync), and keeps the one being filled.
            while !log.stream_ready() {
                log.append(RecordOp::Set, 0, b"k", &value);
                n += 1;
            }
            log.after_batch();
            // The committer is started but has not run: a connection asks
            // for a pass of the reactor, and passes alone stream the
            // records (no sleep: a fed connection never waits otherwise).
            assert!(log.stream_needs_pass());
            let mut passes = 0;
            while log.durable() == 0 {
                log.let_commit_run().await;
                passes += 1;
                assert!(passes < 100_000, "the records were never streamed");
            }
            while log.stream_needs_pass() {
                log.let_commit_run().await;
                passes += 1;
                assert!(passes < 100_000, "the committer never settled");
            }
            assert!(log.io_counts().0 >= 1);
            assert_eq!(log.io_counts().1, 0, "streaming does not sync");
            // The buffer being filled stays (nothing of it written).
            assert!(log.pending_len() > 0 && !log.stream_ready());
            // Past the backlog bound, replies wait for the write.
            while log.pending_len() <= BACKLOG_MAX {
                log.append(RecordOp::Set, 0, b"k", &value);
                n += 1;
            }
            assert!(log.must_wait(0));
            let target = log.appended();
            log.durable_to(target).await.unwrap();
            assert!(!log.must_wait(0));
            assert_eq!(log.pending_len(), 0);
            assert_eq!(log.io_counts().1, 0, "writes for waiters do not sync");
            // ... the once-a-second tick does, though nothing is pending
            // (it used to skip the sync: streamed records were never synced).
            assert!(!log.has_pending());
            log.tick().await;
            assert_eq!(log.io_counts().1, 1, "the tick syncs streamed records");
            log.tick().await;
            assert_eq!(log.io_counts().1, 1, "nothing new: no sync");
            // A commit of many WRITE_CHUNKs wrote every record, in order.
            let path = log.path();
            let data = std::fs::read(&path).unwrap();
            let mut seen = 0u64;
            let end = record::scan(&data, 0, |_, r| {
                assert_eq!((r.key, r.value), (&b"k"[..], &value[..]));
                seen += 1;
            });
            assert!(matches!(end, record::ScanEnd::Clean { .. }), "{end:?}");
            assert_eq!(seen, n);
        });
    }
}
