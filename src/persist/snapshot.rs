//! Writing one shard's snapshot file: `shard-<id>.<g>.snap.tmp` through
//! glommio's [`DmaStreamWriter`] (O_DIRECT, io_uring, write-behind), ended
//! by an `End` record with the key count, synced, then renamed to
//! `shard-<id>.<g>.snap` — so a `.snap` file is always complete, and a crash
//! mid-snapshot leaves only a `.tmp` that recovery ignores and removes.
//!
//! Renames, unlinks and directory fsyncs run on glommio's blocking thread
//! ([`off_executor`]), not the shard's.
//!
//! The caller (the shard) calls [`SnapshotWriter::add`] for one table slice
//! at a time and calls [`SnapshotWriter::flush_buffer`] between slices;
//! this module knows files, not the store.

use std::path::{Path, PathBuf};

use futures_lite::AsyncWriteExt;
use glommio::io::{DmaStreamWriter, DmaStreamWriterBuilder, OpenOptions};

use super::record::{self, RecordOp};

/// Bytes buffered before they are handed to the stream.
pub const FLUSH_BYTES: usize = 1 << 20;

/// An open snapshot being written.
pub struct SnapshotWriter {
    stream: DmaStreamWriter,
    tmp: PathBuf,
    path: PathBuf,
    buf: Vec<u8>,
    /// Where the open group of records starts in `buf`.
    group: usize,
    keys: u64,
}

fn io(e: glommio::GlommioError<()>) -> std::io::Error {
    std::io::Error::from(e)
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
            .await
            .map_err(io)?;
        let stream = DmaStreamWriterBuilder::new(file)
            .with_buffer_size(512 << 10)
            .with_write_behind(4)
            .build();
        let mut buf = Vec::with_capacity(FLUSH_BYTES + (64 << 10));
        buf.extend_from_slice(header);
        let group = record::begin_group(&mut buf);
        Ok(SnapshotWriter {
            stream,
            tmp,
            path,
            buf,
            group,
            keys: 0,
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

    /// Hands the buffered records to the stream (their group closed).
    pub async fn flush_buffer(&mut self) -> std::io::Result<()> {
        self.write_buffer().await?;
        self.group = record::begin_group(&mut self.buf);
        Ok(())
    }

    /// Closes the open group and writes the buffer.
    async fn write_buffer(&mut self) -> std::io::Result<()> {
        record::end_group(&mut self.buf, self.group);
        if !self.buf.is_empty() {
            self.stream.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Ends the snapshot: `End` record, sync, close, rename into place,
    /// sync the directory. Returns the number of keys and the file size.
    pub async fn finish(mut self) -> std::io::Result<(u64, u64)> {
        let keys = self.keys;
        record::encode(&mut self.buf, RecordOp::End, 0, b"", &keys.to_le_bytes());
        self.write_buffer().await?;
        let size = self.stream.current_pos();
        self.stream.close().await?;
        let (tmp, path) = (self.tmp.clone(), self.path.clone());
        off_executor(move || {
            std::fs::rename(&tmp, &path)?;
            sync_dir(path.parent().unwrap_or(Path::new(".")))
        })
        .await?;
        Ok((keys, size))
    }

    /// Gives up: removes the temporary file.
    pub async fn abandon(self) {
        let SnapshotWriter { stream, tmp, .. } = self;
        let mut stream = stream;
        let _ = stream.close().await;
        let _ = std::fs::remove_file(tmp);
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
