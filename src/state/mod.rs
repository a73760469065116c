//! The `--state` file: the engine's state ([`StateSnapshot`]) as bytes on disk.
//!
//! The engine exports and imports its state as a value and does no I/O (`crate::eval::state`);
//! this module owns the bytes: the format, its bounds, and atomic replacement.
//!
//! # Format
//!
//! ```text
//! offset  size  field
//! 0       8     magic "VIGILSTA"
//! 8       4     format version, u32 little-endian (FORMAT_VERSION)
//! 12      8     payload length in bytes, u64 little-endian
//! 20      4     CRC-32 (IEEE) of the payload, u32 little-endian
//! 24      n     payload: the StateSnapshot in postcard (serde, varint-encoded)
//! ```
//!
//! A file is taken whole or not at all: a wrong magic, another version, a length that does not
//! match the file (truncated or with trailing bytes), a bad checksum or a payload that does not
//! decode is a [`StateError`], and the caller starts empty. A version change means a new
//! `FORMAT_VERSION`; old files are then refused, never misread.
//!
//! # Bounds
//!
//! A file larger than [`max_file_bytes`] is refused before it is read. The bound is derived
//! from the memory limits: 1 KiB per group (`--max-groups`; its key holds at most 128 bytes
//! per group-by value, longer ones are hashed) plus 32 bytes per entry (`--max-entries`),
//! 200 bytes per threshold counter (`--max-threshold-keys`; dedup strings over 128 bytes are
//! hashed), `--max-kv-bytes` plus 32 bytes per key (`--max-kv-keys`), and 16 MiB for the
//! rule identities. With the defaults that is about 240 MB. Whatever a file that passes holds,
//! the import applies the live limits and evictions, so memory stays within them.
//!
//! # Writing
//!
//! [`save`] writes a temporary file in the target's directory, fsyncs it, renames it over the
//! target and fsyncs the directory, so a crash at any point leaves either the old file or the
//! new one, never a mix. The file is created with mode 0600 (it holds event values), and the
//! temporary name is created exclusively after removing whatever is there, so a symbolic link
//! planted at that predictable name is never written through.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::correlate::Limits;
use crate::eval::script::ScriptConfig;
pub use crate::eval::state::{ImportReport, StateSnapshot};

/// The first bytes of every state file.
pub const MAGIC: &[u8; 8] = b"VIGILSTA";
/// The version of the format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the payload.
pub const HEADER_BYTES: usize = 24;

/// Why a state file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file: {0}")]
    Io(#[from] io::Error),
    #[error(
        "state file of {size} bytes exceeds the bound of {max} bytes derived from the memory limits"
    )]
    TooLarge { size: u64, max: u64 },
    #[error("not a vigil state file (bad magic)")]
    BadMagic,
    #[error("state file format version {found}, this build reads version {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("state file truncated: {found} payload bytes of {expected}")]
    Truncated { found: u64, expected: u64 },
    #[error("state file has {extra} bytes after its payload")]
    TrailingBytes { extra: u64 },
    #[error("state file checksum mismatch (corrupt)")]
    Checksum,
    #[error("state file payload does not decode: {0}")]
    Payload(String),
}

impl StateError {
    /// A short stable name for the warning line and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            StateError::Io(_) => "io",
            StateError::TooLarge { .. } => "too_large",
            StateError::BadMagic => "bad_magic",
            StateError::Version { .. } => "version",
            StateError::Truncated { .. } => "truncated",
            StateError::TrailingBytes { .. } => "trailing_bytes",
            StateError::Checksum => "checksum",
            StateError::Payload(_) => "payload",
        }
    }
}

/// The largest state file accepted for these limits (see the module doc).
pub fn max_file_bytes(limits: &Limits, script: &ScriptConfig) -> u64 {
    let per = |count: usize, bytes: u64| (count as u64).saturating_mul(bytes);
    [
        per(limits.max_groups, 1024),
        per(limits.max_entries, 32),
        per(script.max_threshold_keys, 200),
        script.kv.max_bytes as u64,
        per(script.kv.max_keys, 32),
        16 * 1024 * 1024,
        HEADER_BYTES as u64,
    ]
    .iter()
    .fold(0_u64, |sum, part| sum.saturating_add(*part))
}

/// The file's bytes for `snapshot`.
pub fn encode(snapshot: &StateSnapshot) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_into(snapshot, &mut bytes);
    bytes
}

/// The file's bytes for `snapshot`, written over `bytes` (cleared first). The periodic saves
/// reuse one buffer, so a save allocates no megabytes of its own.
pub fn encode_into(snapshot: &StateSnapshot, bytes: &mut Vec<u8>) {
    bytes.clear();
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0; 12]);
    // postcard only fails on a serializer that cannot represent a value (none of ours); an
    // empty payload would then be refused on load.
    if postcard::to_io(snapshot, &mut *bytes).is_err() {
        bytes.truncate(HEADER_BYTES);
    }
    let payload_len = (bytes.len() - HEADER_BYTES) as u64;
    let crc = crc32fast::hash(&bytes[HEADER_BYTES..]);
    bytes[12..20].copy_from_slice(&payload_len.to_le_bytes());
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// The snapshot in `bytes`, checked whole (see the module doc).
pub fn decode(bytes: &[u8]) -> Result<StateSnapshot, StateError> {
    let header = |range: std::ops::Range<usize>| bytes.get(range).unwrap_or_default();
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(StateError::BadMagic);
    }
    if bytes.len() < HEADER_BYTES {
        return Err(StateError::Truncated {
            found: 0,
            expected: HEADER_BYTES as u64,
        });
    }
    let u32_at = |at: usize| u32::from_le_bytes(header(at..at + 4).try_into().unwrap_or_default());
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(StateError::Version { found: version });
    }
    let expected = u64::from_le_bytes(header(12..20).try_into().unwrap_or_default());
    let checksum = u32_at(20);
    let payload = &bytes[HEADER_BYTES..];
    let found = payload.len() as u64;
    if found < expected {
        return Err(StateError::Truncated { found, expected });
    }
    if found > expected {
        return Err(StateError::TrailingBytes {
            extra: found - expected,
        });
    }
    if crc32fast::hash(payload) != checksum {
        return Err(StateError::Checksum);
    }
    postcard::from_bytes(payload).map_err(|err| StateError::Payload(err.to_string()))
}

/// Reads the state file at `path`: `Ok(None)` when there is none.
pub fn load(path: &Path, max_bytes: u64) -> Result<Option<StateSnapshot>, StateError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let size = file.metadata()?.len();
    if size > max_bytes {
        return Err(StateError::TooLarge {
            size,
            max: max_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // The file may grow between the size check and the read: read at most one byte past the
    // bound, so the check still holds.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(StateError::TooLarge {
            size: bytes.len() as u64,
            max: max_bytes,
        });
    }
    decode(&bytes).map(Some)
}

/// Replaces the file at `path` with `bytes` atomically (see the module doc).
pub fn save(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path(path);
    let result = write_synced(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    // The rename is durable once the directory is: fsync it. A directory that cannot be
    // opened for that (some filesystems) leaves the rename to the next sync.
    if let Ok(dir) = File::open(directory_of(path)) {
        dir.sync_all()?;
    }
    Ok(())
}

/// Writes a fresh file readable by its owner only: the state holds event values (group-by
/// values such as user names and addresses). Whatever is at `path` (a stray temporary file, or
/// a symbolic link planted at this predictable name) is removed first, and the file is created
/// exclusively, so the write never follows a link to somewhere else.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Takes the exclusive lock that makes one process the owner of the state file at `path`,
/// held for as long as the returned file is open (the whole run). Two runs saving to one path
/// would each replace the other's state, losing one silently, so the second is refused. The
/// lock is on a sidecar `.NAME.lock` (the state file itself is replaced at every save, and a
/// lock on a replaced file protects nothing); it is released by the kernel however the process
/// ends, kill -9 included, so a stale lock file never blocks a restart.
pub fn lock(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_string());
    let lock_path = directory_of(path).join(format!(".{name}.lock"));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "another process uses the state file {} (it holds {})",
                path.display(),
                lock_path.display()
            ),
        )),
        Err(fs::TryLockError::Error(err)) => Err(err),
    }
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary name beside `path`. Fixed rather than unique per process, so that a save cut
/// short by a crash leaves one stray file that the next save overwrites, not one per crash.
/// (A second process on the same state path is refused at start by [`lock`].)
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_string());
    directory_of(path).join(format!(".{name}.tmp"))
}

/// Counters of state saves, loads and rule reloads, shared with whoever reports them (`--stats`,
/// a metrics exporter): atomics, so another thread can read them while the run goes on.
#[derive(Debug, Default)]
pub struct StateCounters {
    pub saves_ok: AtomicU64,
    pub saves_failed: AtomicU64,
    /// Size of the last file written.
    pub last_save_bytes: AtomicU64,
    /// Time the last save took (export, encode, write, fsync, rename), in microseconds.
    pub last_save_micros: AtomicU64,
    /// Correlation groups restored at start.
    pub loaded_groups: AtomicU64,
    /// State items dropped at start (rules gone or changed).
    pub loaded_dropped: AtomicU64,
    /// 1 when the state file at start was unusable and the run started empty.
    pub load_failed: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
}

/// A plain copy of [`StateCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCountersSnapshot {
    pub saves_ok: u64,
    pub saves_failed: u64,
    pub last_save_bytes: u64,
    pub last_save_micros: u64,
    pub loaded_groups: u64,
    pub loaded_dropped: u64,
    pub load_failed: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

impl StateCounters {
    pub fn snapshot(&self) -> StateCountersSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StateCountersSnapshot {
            saves_ok: get(&self.saves_ok),
            saves_failed: get(&self.saves_failed),
            last_save_bytes: get(&self.last_save_bytes),
            last_save_micros: get(&self.last_save_micros),
            loaded_groups: get(&self.loaded_groups),
            loaded_dropped: get(&self.loaded_dropped),
            load_failed: get(&self.load_failed),
            reloads_ok: get(&self.reloads_ok),
            reloads_failed: get(&self.reloads_failed),
        }
    }
}

#[cfg(test)]
mod tests;
