//! Writing one shard's snapshot file: `shard-<id>.<g>.snap.tmp` through a
//! glommio [`DmaFile`] (O_DIRECT, io_uring; 2 MiB buffers reused as their
//! writes finish, two writes in flight), ended by an `End` record with the
//! key count, synced, then renamed to
//! `shard-<id>.<g>.snap` — so a `.snap` file is always complete, and a crash
//! mid-snapshot leaves only a `.tmp` that recovery ignores and removes; a
//! snapshot that fails (a full disk) removes its `.tmp` itself.
//!
//! Renames, unlinks and directory fsyncs run on glommio's blocking thread
//! ([`off_executor`]), not the shard's.
//!
//! The caller (the shard) calls [`SnapshotWriter::add`] for one table slice
//! at a time and calls [`SnapshotWriter::flush_buffer`] between slices;
//! this module knows files, not the store.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::task::JoinHandle;

use super::record::{self, RecordOp};

/// Bytes buffered before they are handed to the stream.
pub const FLUSH_BYTES: usize = 1 << 20;

/// Size of one write (one DMA buffer). 2 MiB: glommio maps buffers this
/// large on their own, as transparent huge pages where the kernel allows
/// (vendored glommio, patch 8), so a fresh one is two page faults, not 512.
const WRITE_BYTES: usize = 2 << 20;

/// Writes in flight at most; their buffers are reused once written, so a
/// snapshot of any size uses `WRITE_BEHIND + 1` buffers in all. (Before, a
/// `DmaStreamWriter` took a new 512 KiB buffer per write: a snapshot of
/// 1 M seed keys faulted in ~25 000 fresh pages and copied every byte into
/// cold memory, ~230 ns of the shard's time per key.) Two, not more: the
/// log shares the disk, and its writes must keep up with the shard's
/// writes while a snapshot runs (see `log::BACKLOG_MAX`).
const WRITE_BEHIND: usize = 2;

type Write = JoinHandle<(glommio::Result<usize, ()>, Rc<DmaBuffer>)>;

/// An open snapshot being written.
pub struct SnapshotWriter {
    file: Rc<DmaFile>,
    tmp: PathBuf,
    path: PathBuf,
    /// Encoded records not yet copied into a DMA buffer.
    buf: Vec<u8>,
    /// Where the open group of records starts in `buf`.
    group: usize,
    keys: u64,
    /// The DMA buffer being filled, how far, and its offset in the file.
    dma: Option<DmaBuffer>,
    fill: usize,
    pos: u64,
    /// Written buffers, for reuse.
    spare: Vec<DmaBuffer>,
    /// Writes in flight, oldest first.
    writes: VecDeque<Write>,
}

impl SnapshotWriter {
    /// Creates the temporary file and writes `header`.
    pub async fn create(path: PathBuf, header: &[u8]) -> std::io::Result<SnapshotWriter> {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&tmp)
            .await?;
        let mut buf = Vec::with_capacity(FLUSH_BYTES + (64 << 10));
        buf.extend_from_slice(header);
        let group = record::begin_group(&mut buf);
        Ok(SnapshotWriter {
            file: Rc::new(file),
            tmp,
            path,
            buf,
            group,
            keys: 0,
            dma: None,
            fill: 0,
            pos: 0,
            spare: Vec::new(),
            writes: VecDeque::new(),
        })
    }

    /// Appends one key's record, a key of database `db` (no I/O).
    #[inline]
    pub fn add(&mut self, db: u16, key: &[u8], value: &[u8], expire_at_ms: u64) {
        record::encode_in(&mut self.buf, db, RecordOp::Set, expire_at_ms, key, value);
        self.keys += 1;
        if self.buf.len() - self.group >= record::GROUP_BYTES {
            record::end_group(&mut self.buf, self.group);
            self.group = record::begin_group(&mut self.buf);
        }
    }

    /// Bytes buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Hands the buffered records to the file (their group closed): copies
    /// them into DMA buffers and starts a write for each one filled.
    pub async fn flush_buffer(&mut self) -> std::io::Result<()> {
        self.write_buffer().await?;
        self.group = record::begin_group(&mut self.buf);
        Ok(())
    }

    /// Closes the open group and copies the buffer into DMA buffers.
    async fn write_buffer(&mut self) -> std::io::Result<()> {
        record::end_group(&mut self.buf, self.group);
        let mut from = 0;
        while from < self.buf.len() {
            if self.dma.is_none() {
                self.dma = Some(self.take_buffer().await?);
                self.fill = 0;
            }
            let dma = self.dma.as_mut().unwrap();
            let n = (self.buf.len() - from).min(WRITE_BYTES - self.fill);
            dma.as_bytes_mut()[self.fill..self.fill + n].copy_from_slice(&self.buf[from..from + n]);
            self.fill += n;
            from += n;
            if self.fill == WRITE_BYTES {
                self.start_write();
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// A buffer to fill: a written one, or a new one while fewer than
    /// `WRITE_BEHIND + 1` exist; else waits for the oldest write.
    async fn take_buffer(&mut self) -> std::io::Result<DmaBuffer> {
        if let Some(b) = self.spare.pop() {
            return Ok(b);
        }
        if self.writes.len() < WRITE_BEHIND {
            return Ok(self.file.alloc_dma_buffer(WRITE_BYTES));
        }
        self.wait_oldest().await?;
        Ok(match self.spare.pop() {
            Some(b) => b,
            None => self.file.alloc_dma_buffer(WRITE_BYTES),
        })
    }

    /// Writes the buffer being filled at its place in the file (the whole
    /// buffer: its tail past `fill` is garbage the next write or the final
    /// truncation replaces).
    fn start_write(&mut self) {
        let Some(dma) = self.dma.take() else { return };
        let (file, pos) = (self.file.clone(), self.pos);
        let buf = Rc::new(dma);
        self.pos += self.fill as u64;
        self.fill = 0;
        self.writes.push_back(
            glommio::spawn_local(async move {
                let r = file.write_rc_at(buf.clone(), pos).await;
                (r, buf)
            })
            .detach(),
        );
    }

    /// Waits for the oldest write; its buffer goes back to `spare`.
    async fn wait_oldest(&mut self) -> std::io::Result<()> {
        let Some(w) = self.writes.pop_front() else {
            return Ok(());
        };
        let Some((r, buf)) = w.await else {
            return Err(std::io::Error::other("snapshot write cancelled"));
        };
        let len = buf.len();
        if let Ok(b) = Rc::try_unwrap(buf) {
            if b.len() == WRITE_BYTES {
                self.spare.push(b);
            }
        }
        match r {
            Ok(n) if n == len => Ok(()),
            Ok(n) => Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short snapshot write: {n} of {len} bytes"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for every write in flight.
    async fn drain(&mut self) -> std::io::Result<()> {
        let mut first = Ok(());
        while !self.writes.is_empty() {
            let r = self.wait_oldest().await;
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Ends the snapshot: `End` record, sync, close, rename into place,
    /// sync the directory. Returns the number of keys and the file size.
    /// On an error (a full disk) the temporary file is removed.
    pub async fn finish(mut self) -> std::io::Result<(u64, u64)> {
        let keys = self.keys;
        let size = match self.complete().await {
            Ok(size) => size,
            Err(e) => {
                self.abandon().await;
                return Err(e);
            }
        };
        let SnapshotWriter {
            file, tmp, path, ..
        } = self;
        close(file).await;
        off_executor(move || {
            let renamed = std::fs::rename(&tmp, &path);
            if renamed.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            renamed?;
            sync_dir(path.parent().unwrap_or(Path::new(".")))
        })
        .await?;
        Ok((keys, size))
    }

    /// Writes the `End` record and everything buffered, cuts the file to
    /// its size and syncs it; the size.
    async fn complete(&mut self) -> std::io::Result<u64> {
        let keys = self.keys;
        record::encode(&mut self.buf, RecordOp::End, 0, b"", &keys.to_le_bytes());
        self.write_buffer().await?;
        // The last, partial buffer is written up to the next block (O_DIRECT
        // writes whole blocks; the bytes past `fill` are zeroed), then the
        // file is cut to its size.
        let size = self.pos + self.fill as u64;
        if let Some(dma) = self.dma.as_mut() {
            let end = (self.fill + 4095) & !4095;
            dma.as_bytes_mut()[self.fill..end].fill(0);
            dma.trim_to_size(end);
            self.start_write();
        }
        self.drain().await?;
        self.file.truncate(size).await?;
        self.file.fdatasync().await?;
        Ok(size)
    }

    /// Gives up: waits for the writes in flight, removes the temporary file.
    pub async fn abandon(mut self) {
        let _ = self.drain().await;
        let SnapshotWriter { file, tmp, .. } = self;
        close(file).await;
        let _ = std::fs::remove_file(tmp);
    }
}

/// Closes `file` once no finished write holds it any more (else dropping
/// it closes it).
async fn close(file: Rc<DmaFile>) {
    if let Ok(f) = Rc::try_unwrap(file) {
        let _ = f.close().await;
    }
}

/// Runs a blocking file-system call (a directory fsync, a rename, an
/// unlink) on glommio's blocking thread instead of the shard's: each can
/// take milliseconds, and the shard serves its connections meanwhile.
pub async fn off_executor<R: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<R> + Send + 'static,
) -> std::io::Result<R> {
    glommio::executor().spawn_blocking(f).await
}

/// fsync(2) of a directory, so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// [`retire`] off the shard's thread.
pub async fn retire_async(dir: PathBuf, shard: usize, g: u64) -> std::io::Result<()> {
    off_executor(move || retire(&dir, shard, g)).await
}

/// Removes shard `shard`'s files of generations before `g` (after a
/// snapshot of generation `g` is in place), and stale temporaries.
pub fn retire(dir: &Path, shard: usize, g: u64) -> std::io::Result<()> {
    for (s, gen, _, path) in super::list_files(dir)? {
        if s == shard && gen < g {
            std::fs::remove_file(path)?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record::{FileKind, Header, ScanEnd, HEADER_LEN};

    /// A snapshot several times larger than the buffers in flight: every
    /// record reads back, in order, the file is exactly its size, and it
    /// ends with its end record.
    #[test]
    fn a_snapshot_larger_than_its_buffers_reads_back_whole() {
        let dir = std::env::temp_dir().join(format!("corekv-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shard-0.1.snap");
        // ~22 MB of records: WRITE_BEHIND + 1 buffers are reused ~2 times.
        const KEYS: u64 = 150_000;
        let value = |i: u64| vec![b'a' + (i % 26) as u8; 100 + (i % 64) as usize];
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(crate::config::DEFAULT_IO_MEMORY)
            .make()
            .unwrap();
        let p = path.clone();
        let (keys, size) = ex.run(async move {
            let mut header = Vec::new();
            Header {
                kind: FileKind::Snapshot,
                ..Header::single_log(1)
            }
            .encode(&mut header);
            let mut w = SnapshotWriter::create(p, &header).await.unwrap();
            for i in 0..KEYS {
                w.add((i % 3) as u16, format!("key{i}").as_bytes(), &value(i), i);
                if w.buffered() >= FLUSH_BYTES {
                    w.flush_buffer().await.unwrap();
                }
            }
            w.finish().await.unwrap()
        });
        assert_eq!(keys, KEYS);
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, size);
        assert!(
            size > ((WRITE_BEHIND + 1) * WRITE_BYTES * 2) as u64,
            "{size}"
        );
        let mut i = 0u64;
        let mut ended = None;
        let end = record::scan(&data, HEADER_LEN, |_, r| {
            if r.op == RecordOp::End {
                ended = Some(u64::from_le_bytes(r.value.try_into().unwrap()));
                return;
            }
            assert_eq!(r.key, format!("key{i}").as_bytes());
            assert_eq!(r.value, &value(i)[..]);
            assert_eq!((r.db, r.expire_at_ms), ((i % 3) as u16, i));
            i += 1;
        });
        assert_eq!(end, ScanEnd::Clean { end: data.len() });
        assert_eq!((i, ended), (KEYS, Some(KEYS)));
        assert!(!dir.join("shard-0.1.snap.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
