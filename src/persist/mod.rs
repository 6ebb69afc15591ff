//! Persistence: each shard's own append-only log (and snapshots), written on
//! the shard's executor through glommio's DMA file API, and recovery from
//! them at start-up.
//!
//! | module | owns |
//! |---|---|
//! | [`record`] | the file format: header, records, checksums, the torn/corrupt scan |
//! | [`log`] | a shard's open log: append, group commit, tick, rewrite switch |
//! | [`snapshot`] | writing a snapshot file (temporary, synced, renamed), retiring old files |
//! | this file | policies ([`PersistConfig`]), file names, [`recover`], [`check_file`] |
//!
//! Files live in `--dir`, one set per shard, never shared:
//! `shard-<id>.<generation>.aof` (changes) and `shard-<id>.<generation>.snap`
//! (a snapshot, written as `.snap.tmp` and renamed once complete). A rewrite
//! (BGREWRITEAOF, BGSAVE, SAVE, or automatic) opens log `g+1`, sends new
//! records there, writes snapshot `g+1` from the table in slices, and then
//! deletes generation `g`. Recovery loads the newest complete snapshot and
//! replays every log of that generation and later, in order.
//!
//! This module knows the store (it replays into one) but not sockets or
//! other shards: each shard recovers from its own files, in parallel.

pub mod log;
pub mod record;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::op::{ExpiryArg, OpKind, OpResult, ReplySink};
use crate::routing::key_hash;
use crate::store::Store;
use record::{FileKind, Header, Record, RecordOp, ScanEnd, HEADER_LEN};

/// Redis's `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// A write is acknowledged only once it is on stable storage (one group
    /// commit — one write, one fdatasync — per batch per shard).
    Always,
    /// Written and synced once a second: at most about a second of
    /// acknowledged writes is lost on a crash.
    Everysec,
    /// Written once a second, never synced by corekv.
    No,
}

impl Fsync {
    /// Redis's name of the policy.
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        }
    }
}

impl std::str::FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Fsync, String> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::Everysec),
            "no" => Ok(Fsync::No),
            _ => Err(format!(
                "appendfsync must be always, everysec or no, not {s:?}"
            )),
        }
    }
}

/// Default directory for the files.
pub const DEFAULT_DIR: &str = ".";
/// Default automatic rewrite factor (Redis's auto-aof-rewrite-percentage 100:
/// rewrite when the log has doubled since its last rewrite).
pub const DEFAULT_REWRITE_PERCENTAGE: u64 = 100;
/// Default minimum log size before an automatic rewrite (Redis: 64 MB).
pub const DEFAULT_REWRITE_MIN_SIZE: u64 = 64 << 20;

/// The persistence configuration of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistConfig {
    /// `--appendonly yes`: log every write.
    pub appendonly: bool,
    /// `--appendfsync`.
    pub fsync: Fsync,
    /// `--dir`.
    pub dir: PathBuf,
    /// Rewrite when the log grew this many percent over its size after the
    /// last rewrite (0: never automatically).
    pub rewrite_percentage: u64,
    /// ... and is at least this large.
    pub rewrite_min_size: u64,
}

impl Default for PersistConfig {
    fn default() -> Self {
        PersistConfig {
            appendonly: false,
            fsync: Fsync::Everysec,
            dir: PathBuf::from(DEFAULT_DIR),
            rewrite_percentage: DEFAULT_REWRITE_PERCENTAGE,
            rewrite_min_size: DEFAULT_REWRITE_MIN_SIZE,
        }
    }
}

/// Path of shard `shard`'s log of generation `g`.
pub fn log_path(dir: &Path, shard: usize, g: u64) -> PathBuf {
    dir.join(format!("shard-{shard}.{g}.aof"))
}

/// Path of shard `shard`'s snapshot of generation `g`.
pub fn snap_path(dir: &Path, shard: usize, g: u64) -> PathBuf {
    dir.join(format!("shard-{shard}.{g}.snap"))
}

/// A persistence file in `dir`: shard, generation, kind.
fn parse_name(name: &str) -> Option<(usize, u64, FileKind)> {
    let rest = name.strip_prefix("shard-")?;
    let (shard, rest) = rest.split_once('.')?;
    let (g, ext) = rest.split_once('.')?;
    let kind = match ext {
        "aof" => FileKind::Log,
        "snap" => FileKind::Snapshot,
        _ => return None,
    };
    Some((shard.parse().ok()?, g.parse().ok()?, kind))
}

/// Every persistence file in `dir` as (shard, generation, kind, path).
pub fn list_files(dir: &Path) -> std::io::Result<Vec<(usize, u64, FileKind, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        if let Some(name) = e.file_name().to_str() {
            if let Some((s, g, k)) = parse_name(name) {
                out.push((s, g, k, e.path()));
            }
        }
    }
    out.sort_by_key(|f| (f.0, f.1, f.2 == FileKind::Log));
    Ok(out)
}

/// Checks, before any shard starts, that `dir` holds no files of a
/// different shard count (a shard id this node does not have).
pub fn check_layout(dir: &Path, nr_shards: usize) -> Result<(), String> {
    let files = list_files(dir).map_err(|e| format!("cannot read --dir {}: {e}", dir.display()))?;
    if let Some(f) = files.iter().find(|f| f.0 >= nr_shards) {
        return Err(format!(
            "{} was written by a node with more than {nr_shards} shards; corekv does not re-route \
             files between layouts: start with the same number of shards (--cpus), or move the files away",
            f.3.display()
        ));
    }
    Ok(())
}

/// A file mapped read-only for recovery: its pages come from the page
/// cache and can be dropped again, so loading a log never holds a second
/// copy of it in the process's memory.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
    _file: std::fs::File,
}

impl Mapped {
    fn open(path: &Path) -> std::io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            return Ok(Mapped {
                ptr: std::ptr::null_mut(),
                len: 0,
                _file: file,
            });
        }
        // SAFETY: a fresh read-only private mapping of a file we hold open;
        // the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapped {
            ptr,
            len,
            _file: file,
        })
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes until `drop`. Only this
        // process writes these files, and not while it recovers them (a
        // file truncated by someone else meanwhile would fault: documented).
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: unmapping exactly the mapping made in `open`.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

/// Takes an exclusive lock on `dir/corekv.lock` (flock), so two processes
/// never append to the same files; released when the returned file is
/// dropped (or the process dies).
pub fn lock_dir(dir: &Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join("corekv.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "{} is in use by another corekv process (its {} is locked): one --dir per node",
            dir.display(),
            path.display()
        ));
    }
    Ok(f)
}

/// What a shard's recovery found.
pub struct Recovered {
    /// The store, loaded.
    pub store: Store,
    /// Records replayed.
    pub records: u64,
    /// Time taken, seconds.
    pub secs: f64,
    /// Things worth saying (torn tail recovered, snapshot used).
    pub notes: Vec<String>,
    /// Generation of the log to append to.
    pub generation: u64,
    /// Logical end of that log (0: the file does not exist yet).
    pub log_end: u64,
    /// The last bytes of that log, from offset `log_tail_from` to
    /// `log_end` (its last partial block is in there for any alignment up
    /// to [`TAIL_KEEP`]).
    pub log_tail: Vec<u8>,
    /// File offset of `log_tail`'s first byte.
    pub log_tail_from: u64,
    /// Size of the snapshot loaded (0: none).
    pub snapshot_size: u64,
}

/// How much of the newest log's end recovery keeps for the writer, which
/// rewrites the last partial block (a multiple of any O_DIRECT alignment).
pub const TAIL_KEEP: u64 = 64 << 10;

/// Counts the records replay could not apply (the store's limits refused
/// them: a smaller --max-value-len or --max-memory than when written).
#[derive(Default)]
struct Refused(u64);
impl ReplySink for Refused {
    #[inline]
    fn push(&mut self, r: OpResult<'_>) {
        if let OpResult::Err(_) = r {
            self.0 += 1;
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Applies one record to the store. `buf` is scratch space for the SET
/// argument of a key with an expiry.
///
/// The record's database is selected first (the store has checked, through
/// [`recover`], that it exists).
fn apply(store: &mut Store, r: &Record<'_>, now: u64, buf: &mut Vec<u8>, refused: &mut Refused) {
    let h = key_hash(r.key);
    store.select(r.db as usize);
    match r.op {
        RecordOp::Set if r.expire_at_ms == 0 => {
            store.execute(OpKind::Put, r.key, r.value, h, refused)
        }
        RecordOp::Set if r.expire_at_ms <= now => {
            // Expired while the server was down: not resurrected.
            store.execute(OpKind::Del, r.key, b"", h, refused);
        }
        RecordOp::Set => {
            // SET with its absolute expiry.
            buf.clear();
            ExpiryArg {
                flags: 0,
                when: r.expire_at_ms.min(i64::MAX as u64) as i64,
            }
            .encode(buf);
            buf.extend_from_slice(r.value);
            store.execute(OpKind::Set, r.key, buf, h, refused);
        }
        RecordOp::Del => store.execute(OpKind::Del, r.key, b"", h, refused),
        RecordOp::Flush => store.flush_db(r.db as usize),
        RecordOp::FlushAll => store.clear(),
        RecordOp::Swap => {
            let other = r.value.try_into().map_or(0, u16::from_le_bytes);
            store.swap_db(r.db as usize, other as usize);
        }
        RecordOp::End => {}
    }
}

/// The error for a record of a database this store does not have.
fn check_db(path: &Path, off: usize, r: &Record<'_>, databases: usize) -> Result<(), String> {
    let other = match r.op {
        RecordOp::Swap => r.value.try_into().map_or(0, u16::from_le_bytes),
        _ => 0,
    };
    if (r.db as usize) < databases && (other as usize) < databases {
        return Ok(());
    }
    Err(format!(
        "{}: record at offset {off} is in database {}, but this node has {databases} \
         databases: start it with --databases {} or more",
        path.display(),
        r.db.max(other),
        r.db.max(other) as usize + 1
    ))
}

/// Checks a file's header against the shard reading it.
fn check_header(
    path: &Path,
    data: &[u8],
    shard_id: usize,
    nr_shards: usize,
    node_id: u32,
    nr_nodes: u32,
    kind: FileKind,
) -> Result<(), String> {
    let h = Header::decode(data).map_err(|e| format!("{}: {e}", path.display()))?;
    if h.nr_shards as usize != nr_shards || h.shard_id as usize != shard_id || h.kind != kind {
        return Err(format!(
            "{}: written by shard {} of a {}-shard node, read by shard {shard_id} of a \
             {nr_shards}-shard node; corekv does not mix layouts: start with {} shards or move the files away",
            path.display(),
            h.shard_id,
            h.nr_shards,
            h.nr_shards
        ));
    }
    if h.node_id != node_id || h.nr_nodes != nr_nodes {
        return Err(format!(
            "{}: written by node {} of a {}-node cluster, this is node {node_id} of a \
             {nr_nodes}-node cluster; corekv does not re-route keys between cluster layouts",
            path.display(),
            h.node_id,
            h.nr_nodes
        ));
    }
    Ok(())
}

/// Who reads the files: a shard of a node of a cluster, and where keys
/// belong in that cluster.
pub struct Reader<'a> {
    /// The shard.
    pub shard_id: usize,
    /// Shards of its node.
    pub nr_shards: usize,
    /// The node.
    pub node_id: u32,
    /// Nodes of the cluster.
    pub nr_nodes: u32,
    /// The owner `(node, shard)` of a key in this cluster.
    pub owner: &'a dyn Fn(&[u8]) -> (u32, usize),
}

/// Loads shard `who.shard_id`'s files from `dir` into `store`. A torn tail
/// of the newest log is cut (and said); anything else wrong is an error
/// naming the file and offset. A key this shard does not own in the
/// current cluster layout is refused, never loaded where it cannot be found.
pub fn recover(dir: &Path, who: &Reader<'_>, mut store: Store) -> Result<Recovered, String> {
    let (shard_id, nr_shards, node_id, nr_nodes) =
        (who.shard_id, who.nr_shards, who.node_id, who.nr_nodes);
    let started = Instant::now();
    let now = now_ms();
    let files: Vec<_> = list_files(dir)
        .map_err(|e| format!("cannot read --dir {}: {e}", dir.display()))?
        .into_iter()
        .filter(|f| f.0 == shard_id)
        .collect();
    let base = files
        .iter()
        .filter(|f| f.2 == FileKind::Snapshot)
        .map(|f| f.1)
        .max();
    let mut notes = Vec::new();
    let mut records = 0u64;
    let mut scratch = Vec::new();
    let mut refused = Refused::default();
    store.set_now(now);
    let check_owner = |path: &Path, off: usize, key: &[u8]| -> Result<(), String> {
        let (n, s) = (who.owner)(key);
        if (n, s) != (node_id, shard_id) {
            return Err(format!(
                "{}: record at offset {off} holds a key of node {n} shard {s}, not node \
                 {node_id} shard {shard_id}: files of a different layout are refused",
                path.display()
            ));
        }
        Ok(())
    };
    let mut snapshot_size = 0u64;
    if let Some(g) = base {
        let path = snap_path(dir, shard_id, g);
        let data = Mapped::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let data = data.bytes();
        snapshot_size = data.len() as u64;
        check_header(
            &path,
            data,
            shard_id,
            nr_shards,
            node_id,
            nr_nodes,
            FileKind::Snapshot,
        )?;
        // Its keys come in hash order: each database's table is sized for
        // them first (a table growing under sorted inserts is quadratic).
        let mut per_db = vec![0usize; store.databases()];
        record::scan(data, HEADER_LEN, |_, r| {
            if let Some(n) = per_db.get_mut(r.db as usize) {
                *n += (r.op == RecordOp::Set) as usize;
            }
        });
        for (db, &n) in per_db.iter().enumerate() {
            if n > 0 {
                store.select(db);
                store.reserve_keys(n);
            }
        }
        let mut ended = false;
        let mut bad = None;
        let end = record::scan(data, HEADER_LEN, |off, r| {
            if bad.is_some() {
                return;
            }
            if r.op == RecordOp::End {
                ended = true;
                return;
            }
            if let Err(e) = check_owner(&path, off, r.key)
                .and_then(|_| check_db(&path, off, &r, store.databases()))
            {
                bad = Some(e);
                return;
            }
            records += 1;
            apply(&mut store, &r, now, &mut scratch, &mut refused);
        });
        if let Some(e) = bad {
            return Err(e);
        }
        match end {
            ScanEnd::Clean { .. } if ended => {}
            ScanEnd::Corrupt { offset, reason } => {
                return Err(format!(
                    "{}: corrupt record at offset {offset} ({reason}); the snapshot cannot be used",
                    path.display()
                ))
            }
            _ => {
                return Err(format!(
                    "{}: truncated snapshot (no end record); the snapshot cannot be used",
                    path.display()
                ))
            }
        }
        notes.push(format!(
            "snapshot {} ({} keys)",
            path.display(),
            store.len()
        ));
    }
    let base = base.unwrap_or(0);
    let logs: Vec<_> = files
        .iter()
        .filter(|f| f.2 == FileKind::Log && f.1 >= base)
        .collect();
    // Temporaries of an interrupted snapshot.
    if let Ok(rd) = std::fs::read_dir(dir) {
        let prefix = format!("shard-{shard_id}.");
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".snap.tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // Logs older than the snapshot are left over from an interrupted cleanup.
    for f in files.iter().filter(|f| f.1 < base) {
        let _ = std::fs::remove_file(&f.3);
    }
    let mut generation = base;
    let mut log_end = 0u64;
    let mut log_tail = Vec::new();
    let mut log_tail_from = 0u64;
    for (i, f) in logs.iter().enumerate() {
        let path = &f.3;
        let data = Mapped::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let data = data.bytes();
        generation = f.1;
        if data.len() < HEADER_LEN && data.iter().all(|&b| b == 0) && i + 1 == logs.len() {
            // Created but never written (a crash right after creation).
            log_end = 0;
            log_tail.clear();
            log_tail_from = 0;
            continue;
        }
        check_header(
            path,
            data,
            shard_id,
            nr_shards,
            node_id,
            nr_nodes,
            FileKind::Log,
        )?;
        let mut bad = None;
        let end = record::scan(data, HEADER_LEN, |off, r| {
            if bad.is_some() {
                return;
            }
            if !r.key.is_empty() {
                if let Err(e) = check_owner(path, off, r.key) {
                    bad = Some(e);
                    return;
                }
            }
            if let Err(e) = check_db(path, off, &r, store.databases()) {
                bad = Some(e);
                return;
            }
            records += 1;
            apply(&mut store, &r, now, &mut scratch, &mut refused);
        });
        if let Some(e) = bad {
            return Err(e);
        }
        let end = match end {
            ScanEnd::Clean { end } => end,
            ScanEnd::Torn { end } => {
                let (unit, why) = if record::file_version(data) >= 3 {
                    (
                        "record group",
                        ": a write never acknowledged, dropped whole",
                    )
                } else {
                    ("record", "")
                };
                notes.push(format!(
                    "{}: torn tail ({} bytes after offset {end} were an incomplete {unit}{why}), \
                     recovered to the last complete {unit}",
                    path.display(),
                    data.len() - end
                ));
                end
            }
            ScanEnd::Corrupt { offset, reason } => {
                return Err(format!(
                    "{}: corrupt record at offset {offset} ({reason}); refusing to start. \
                     `corekv check-aof --fix {}` truncates the file to the last good record \
                     (group, from format version 3), losing everything after it",
                    path.display(),
                    path.display()
                ))
            }
        };
        log_end = end as u64;
        log_tail_from = log_end - log_end % TAIL_KEEP;
        log_tail = data[log_tail_from as usize..end].to_vec();
        let version = record::file_version(data);
        if i + 1 == logs.len() && version < record::VERSION {
            // Records of the current format do not go into an older file:
            // the next generation's log takes them (this one is replayed
            // before it, and retired by the next rewrite).
            notes.push(format!(
                "{}: format version {version}{}; new records go to generation {} \
                 (version {})",
                path.display(),
                if version < 2 {
                    ", read as database 0"
                } else {
                    ""
                },
                generation + 1,
                record::VERSION
            ));
            generation += 1;
            log_end = 0;
            log_tail.clear();
            log_tail_from = 0;
        }
    }
    if refused.0 > 0 {
        notes.push(format!(
            "{} records could not be applied: the store's limits (--max-value-len, \
             --max-key-len, --max-memory with noeviction) are smaller than when they were written",
            refused.0
        ));
    }
    store.select(0);
    Ok(Recovered {
        store,
        records,
        secs: started.elapsed().as_secs_f64(),
        notes,
        generation,
        log_end,
        log_tail,
        log_tail_from,
        snapshot_size,
    })
}

/// What `corekv check-aof` found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Good records.
    pub records: u64,
    /// Logical end of the good part.
    pub good_end: u64,
    /// File length.
    pub file_len: u64,
    /// How the scan ended.
    pub end: ScanEnd,
    /// For a snapshot: whether it ends with its end record (`None` for a log).
    pub snapshot_complete: Option<bool>,
}

/// Scans one file (`corekv check-aof`); with `fix`, truncates it to the end
/// of its last good record.
pub fn check_file(path: &Path, fix: bool) -> Result<CheckReport, String> {
    let data = Mapped::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let data = data.bytes();
    let header = Header::decode(data).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut records = 0u64;
    let mut ended = false;
    let end = record::scan(data, HEADER_LEN, |_, r| {
        records += 1;
        ended = r.op == RecordOp::End;
    });
    let good_end = match end {
        ScanEnd::Clean { end } | ScanEnd::Torn { end } => end,
        ScanEnd::Corrupt { offset, .. } => offset,
    } as u64;
    if fix && good_end < data.len() as u64 {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.set_len(good_end)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(CheckReport {
        records,
        good_end,
        file_len: data.len() as u64,
        end,
        snapshot_complete: (header.kind == FileKind::Snapshot).then_some(ended),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreLimits;

    /// Shard `shard` of a one-node cluster of `nr` shards.
    fn reader(shard: usize, nr: usize, owner: &dyn Fn(&[u8]) -> (u32, usize)) -> Reader<'_> {
        Reader {
            shard_id: shard,
            nr_shards: nr,
            node_id: 0,
            nr_nodes: 1,
            owner,
        }
    }

    fn owner_in(nr: usize) -> impl Fn(&[u8]) -> (u32, usize) {
        let map = crate::cluster::ClusterMap::single("x:1".into(), nr);
        move |k: &[u8]| {
            let o = map.owner(crate::routing::key_slot(k));
            (o.node_id as u32, o.shard_id as usize)
        }
    }

    fn store() -> Store {
        Store::new(StoreLimits {
            max_key_len: 64,
            max_value_len: 64,
            max_memory: usize::MAX,
        })
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corekv-persist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_log(dir: &Path, g: u64, keys: &[(&[u8], &[u8], u64)]) -> PathBuf {
        let mut v = Vec::new();
        Header::single_log(g).encode(&mut v);
        for (k, val, exp) in keys {
            let g = record::begin_group(&mut v);
            record::encode(&mut v, RecordOp::Set, *exp, k, val);
            record::end_group(&mut v, g);
        }
        let p = log_path(dir, 0, g);
        std::fs::write(&p, &v).unwrap();
        p
    }

    #[test]
    fn version_1_logs_load_into_database_0_and_are_continued_in_a_new_generation() {
        let dir = tmpdir("v1");
        // A version 1 log: its header says 1, its bodies have no database.
        let p = log_path(&dir, 0, 0);
        let mut v = Vec::new();
        Header::single_log(0).encode(&mut v);
        record::set_version(&mut v, 1);
        for (op, k, val) in [(1u8, &b"a"[..], &b"1"[..]), (1, b"b", b"2"), (2, b"a", b"")] {
            record::push_v1_record(&mut v, op, k, val);
        }
        std::fs::write(&p, &v).unwrap();
        let r = recover(&dir, &reader(0, 1, &owner_in(1)), store()).unwrap();
        assert_eq!(r.store.db(), 0);
        assert_eq!(r.store.get(b"b"), Some(&b"2"[..]));
        assert_eq!(r.store.get(b"a"), None);
        assert_eq!((r.generation, r.log_end), (1, 0), "new records: a new file");
        assert!(r.notes.iter().any(|n| n.contains("format version 1")));
        // A database this node does not have is refused, naming the flag.
        let mut w = Vec::new();
        Header::single_log(1).encode(&mut w);
        let g = record::begin_group(&mut w);
        record::encode_in(&mut w, 20, RecordOp::Set, 0, b"c", b"3");
        record::end_group(&mut w, g);
        std::fs::write(log_path(&dir, 0, 1), &w).unwrap();
        let e = recover(&dir, &reader(0, 1, &owner_in(1)), store())
            .err()
            .unwrap();
        assert!(
            e.contains("database 20") && e.contains("--databases 21"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn recovers_skips_expired_and_refuses_layouts() {
        let dir = tmpdir("recover");
        let far = now_ms() + 3_600_000;
        write_log(
            &dir,
            0,
            &[(b"a", b"1", 0), (b"b", b"2", far), (b"c", b"3", 1)],
        );
        let r = recover(&dir, &reader(0, 1, &owner_in(1)), store()).unwrap();
        assert_eq!(r.store.get(b"a"), Some(&b"1"[..]));
        assert_eq!(r.store.get(b"b"), Some(&b"2"[..]));
        assert_eq!(
            r.store.state(key_hash(b"b"), b"b"),
            Some((&b"2"[..], far)),
            "the absolute expiry survives"
        );
        assert_eq!(r.store.get(b"c"), None, "expired while down");
        assert_eq!(r.records, 3);
        // The same file read as shard 0 of 2: refused, naming the file.
        let e = recover(&dir, &reader(0, 2, &owner_in(2)), store())
            .err()
            .unwrap();
        assert!(e.contains("shard-0.0.aof") && e.contains("1-shard"), "{e}");
        // A shard-3 file in a 2-shard node's directory.
        std::fs::write(dir.join("shard-3.0.aof"), b"x").unwrap();
        assert!(check_layout(&dir, 2).unwrap_err().contains("shard-3.0.aof"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_the_limits_refuse_are_counted_and_said() {
        let dir = tmpdir("refused");
        write_log(&dir, 0, &[(b"a", b"1", 0), (b"b", &[b'x'; 100], 0)]);
        let r = recover(&dir, &reader(0, 1, &owner_in(1)), store()).unwrap();
        assert_eq!(
            r.store.len(),
            1,
            "the 100-byte value exceeds the 64-byte limit"
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("1 records could not be applied")),
            "{:?}",
            r.notes
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn check_file_fixes_a_corrupt_middle() {
        let dir = tmpdir("check");
        let p = write_log(
            &dir,
            0,
            &[(b"a", b"1", 0), (b"b", b"2", 0), (b"c", b"3", 0)],
        );
        let mut data = std::fs::read(&p).unwrap();
        // One group per record: the second group's record body.
        let second = record::group_offsets(&data)[1];
        data[second + record::GROUP_HEADER + record::RECORD_HEADER + 1] ^= 0x40;
        std::fs::write(&p, &data).unwrap();
        let e = recover(&dir, &reader(0, 1, &owner_in(1)), store())
            .err()
            .unwrap();
        assert!(e.contains(&format!("offset {second}")), "{e}");
        let rep = check_file(&p, false).unwrap();
        assert_eq!((rep.records, rep.good_end), (1, second as u64));
        check_file(&p, true).unwrap();
        let r = recover(&dir, &reader(0, 1, &owner_in(1)), store()).unwrap();
        assert_eq!(r.store.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
