//! Output files: what shadowtap writes holds production traffic (cookies in clear in a pcap),
//! so every output is created by this module, readable by its owner only, and never through a
//! file or link someone else prepared (RELIABILITY.md S08); and a write that fails names the
//! path and is counted, never silently dropped (R11).
//!
//! Two kinds of output:
//! - a report ([`write_atomic`], [`Staged`]) is written whole to a new temporary file in the
//!   target's directory and renamed over the target: a rerun replaces it, a failure leaves the
//!   previous one in place, and a symbolic link at the target is replaced, not followed;
//! - a stream ([`Stream`]: `--log`, `--save-pcap`, `capture -w`) is a new file, and an existing
//!   path is refused unless `--force`, which unlinks it first (a link itself, never its target).
//!   Records (a log line, a pcap record) reach the file whole or not at all.
//!
//! Every file is created `O_CREAT|O_EXCL|O_NOFOLLOW` and set to mode 0600 whatever the umask.
//! Does not own: what is written (the report, the pcap format) or when.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;

/// The mode of every output file: its owner's only.
pub const FILE_MODE: u32 = 0o600;

/// Bytes a [`Stream`] buffers before writing them out (at a record boundary, so at most this
/// plus one record is held).
pub const STREAM_BUFFER: usize = 64 * 1024;

/// Temporary names tried for a report before giving up (each is random, so a clash means
/// someone is guessing).
const TEMP_ATTEMPTS: usize = 8;

/// Why an output could not be created or written; one line that names the path.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The path exists and `--force` was not given (or the output has no `--force`).
    #[error("{}: already exists; --force replaces it", .path.display())]
    Exists { path: PathBuf },
    /// `--force` replaces files and symbolic links only: a directory, device or socket at
    /// the path is left alone.
    #[error("{}: not a regular file; --force replaces only files and symbolic links", .path.display())]
    NotReplaceable { path: PathBuf },
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl OutputError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> OutputError {
        OutputError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Creates `path` as a new file: `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600 set explicitly (a
/// umask can only narrow it, and a narrower mode would not be what the docs promise).
fn open_new(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Whether `meta` is the null device (character device 1:3, whatever its name): writing to it
/// keeps nothing, so `-w /dev/null` is accepted as tcpdump accepts it.
fn is_null_device(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device()
        && libc::major(meta.rdev()) == 1
        && libc::minor(meta.rdev()) == 3
}

/// Creates a stream output at `path` as a new 0600 file. An existing path is refused
/// ([`OutputError::Exists`]) unless `force`, which unlinks it (a symbolic link is removed
/// itself, its target untouched) and creates the file anew; only files and links are replaced.
/// The null device is opened as it is.
pub fn create_new(path: &Path, force: bool) -> Result<File, OutputError> {
    match open_new(path) {
        Ok(file) => return Ok(file),
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(OutputError::io("creating", path, e))
        }
        Err(_) => {}
    }
    let meta = fs::symlink_metadata(path).map_err(|e| OutputError::io("checking", path, e))?;
    if is_null_device(&meta) {
        return OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| OutputError::io("opening", path, e));
    }
    if !force {
        return Err(OutputError::Exists {
            path: path.to_path_buf(),
        });
    }
    let kind = meta.file_type();
    if !(kind.is_file() || kind.is_symlink()) {
        return Err(OutputError::NotReplaceable {
            path: path.to_path_buf(),
        });
    }
    fs::remove_file(path).map_err(|e| OutputError::io("removing", path, e))?;
    open_new(path).map_err(|e| OutputError::io("creating", path, e))
}

/// Writes `bytes` to `target` through [`Staged`]: a new temporary file, renamed over the
/// target once complete.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    Staged::create(target)?.commit(bytes)
}

/// A report being prepared: a new 0600 file with a random name in the target's directory
/// (`.NAME.RANDOM.tmp`), created now, renamed over the target by [`Staged::commit`]. Dropped
/// without a commit, the temporary file is removed.
///
/// Created early (`replay` and `mirror` do), it also finds a directory that cannot be
/// written before the run rather than after it.
pub struct Staged {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    /// Already renamed over the target ([`Staged::place_now`]).
    placed: bool,
    committed: bool,
}

impl Staged {
    pub fn create(target: &Path) -> Result<Staged, OutputError> {
        let name = target.file_name().ok_or_else(|| {
            OutputError::io(
                "writing",
                target,
                io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
            )
        })?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut last = None;
        for _ in 0..TEMP_ATTEMPTS {
            let mut temp_name = std::ffi::OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".{:016x}.tmp", random()));
            let temp = dir.join(temp_name);
            match open_new(&temp) {
                Ok(file) => {
                    return Ok(Staged {
                        file,
                        temp,
                        target: target.to_path_buf(),
                        placed: false,
                        committed: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(OutputError::io("creating a file beside", target, e)),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists));
        Err(OutputError::io("creating a file beside", target, e))
    }

    /// Renames the file, still empty, over the target now: for a process about to lose the
    /// right to write the directory (`mirror --user`), which could not rename it at the end.
    /// The report is then written in place at [`Staged::commit`] (not atomically: a failure
    /// leaves the file empty rather than the previous report).
    pub fn place_now(&mut self) -> Result<(), OutputError> {
        fs::rename(&self.temp, &self.target)
            .map_err(|e| OutputError::io("renaming onto", &self.target, e))?;
        self.placed = true;
        Ok(())
    }

    /// Writes `bytes`, syncs them and renames the file over the target (a link at the target
    /// is replaced). On failure the target is as it was and the temporary file is removed.
    pub fn commit(mut self, bytes: &[u8]) -> Result<(), OutputError> {
        let target = self.target.clone();
        if self.placed {
            self.committed = true;
            let written = self
                .file
                .write_all(bytes)
                .and_then(|()| self.file.sync_all());
            if let Err(e) = written {
                let _ = self.file.set_len(0);
                return Err(OutputError::io("writing", &target, e));
            }
            return Ok(());
        }
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| OutputError::io("writing", &target, e))?;
        fs::rename(&self.temp, &target)
            .map_err(|e| OutputError::io("renaming onto", &target, e))?;
        self.committed = true;
        // The rename itself reaches the disk with the directory (best effort: some file
        // systems cannot sync a directory).
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed && !self.placed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// [`Write::write_all`] that also says how many bytes went in before an error.
fn write_all(file: &mut File, mut bytes: &[u8]) -> (usize, io::Result<()>) {
    let mut done = 0;
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return (done, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                done += n;
                bytes = &bytes[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}

/// 64 random bits for a temporary name, from the kernel; the clock and process id if it has
/// none to give (the name only has to be hard to guess: `O_EXCL` makes it safe anyway).
fn random() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n == bytes.len() as isize {
        return u64::from_ne_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos.rotate_left(17) ^ u64::from(std::process::id())
}

/// A stream output written record by record: bytes are buffered ([`STREAM_BUFFER`]) and go
/// out at record boundaries ([`Stream::end_record`]), so the file always ends on a whole
/// record. The first failed write stops the stream: the file keeps the records that fit
/// whole and is cut back to the last of them, the error is kept, and every record from then
/// on is counted as failed instead of written (the buffer holds at most [`STREAM_BUFFER`]
/// plus one record). Writing into it never fails ([`Write::write`] only buffers), so a full disk stops
/// the output, not the run; the caller reports [`Stream::summary`].
pub struct Stream {
    /// None once a write failed.
    file: Option<File>,
    path: PathBuf,
    buf: Vec<u8>,
    /// Where each record in `buf` ends (so a failed write keeps the records that fit).
    ends: Vec<usize>,
    /// The file's length up to the last record written whole.
    durable: u64,
    written: u64,
    failed: u64,
    error: Option<String>,
}

/// What became of a stream: records written whole, records not written, the first error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub path: PathBuf,
    pub written: u64,
    pub failed: u64,
    /// The first write error, with the path (`writing PATH: No space left on device (os
    /// error 28)`).
    pub error: Option<String>,
}

impl Stream {
    /// A stream into a new file at `path` ([`create_new`]).
    pub fn create(path: &Path, force: bool) -> Result<Stream, OutputError> {
        Ok(Stream::new(create_new(path, force)?, path))
    }

    /// A stream into `file`, already open, named `path` in messages.
    pub fn new(file: File, path: &Path) -> Stream {
        Stream {
            file: Some(file),
            path: path.to_path_buf(),
            buf: Vec::new(),
            ends: Vec::new(),
            durable: 0,
            written: 0,
            failed: 0,
            error: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file again, for a run that stops before it starts (so that the next run
    /// does not find it in the way); only if the path still names this very file.
    pub fn abandon(self) {
        let Some(file) = &self.file else {
            return;
        };
        let (Ok(ours), Ok(now)) = (file.metadata(), fs::symlink_metadata(&self.path)) else {
            return;
        };
        if ours.is_file() && (ours.dev(), ours.ino()) == (now.dev(), now.ino()) {
            let _ = fs::remove_file(&self.path);
        }
    }

    /// A second handle on the file, for reading it back (same open file, not the path).
    pub fn try_clone_file(&self) -> Option<File> {
        self.file.as_ref()?.try_clone().ok()
    }

    /// Writes `line` and a newline as one record.
    pub fn line(&mut self, line: &[u8]) {
        if self.file.is_some() {
            self.buf.extend_from_slice(line);
            self.buf.push(b'\n');
        }
        self.end_record();
    }

    /// Ends the record written since the last one; writes the buffer out when it is full.
    pub fn end_record(&mut self) {
        if self.file.is_none() {
            self.failed += 1;
            return;
        }
        self.ends.push(self.buf.len());
        if self.buf.len() >= STREAM_BUFFER {
            self.write_out();
        }
    }

    /// Whether a write has failed.
    pub fn has_failed(&self) -> bool {
        self.error.is_some()
    }

    /// Writes out what is buffered; false if the stream has failed (now or before).
    pub fn flush_records(&mut self) -> bool {
        if !self.buf.is_empty() {
            self.write_out();
        }
        !self.has_failed()
    }

    fn write_out(&mut self) {
        let Some(file) = self.file.as_mut() else {
            self.buf.clear();
            self.ends.clear();
            return;
        };
        let (done, result) = write_all(file, &self.buf);
        match result {
            Ok(()) => {
                self.durable += self.buf.len() as u64;
                self.written += self.ends.len() as u64;
            }
            Err(e) => {
                // The records that fit stay; a record cut short is cut off.
                let whole = self.ends.partition_point(|&end| end <= done);
                let kept = whole.checked_sub(1).map_or(0, |i| self.ends[i]);
                let _ = file.set_len(self.durable + kept as u64);
                self.durable += kept as u64;
                self.written += whole as u64;
                self.failed += (self.ends.len() - whole) as u64;
                self.error = Some(format!("writing {}: {e}", self.path.display()));
                self.file = None;
            }
        }
        self.buf.clear();
        self.ends.clear();
    }

    /// Flushes and says what became of the stream.
    pub fn finish(&mut self) -> Summary {
        self.flush_records();
        self.summary()
    }

    /// What became of the stream so far (records still buffered are in neither count).
    pub fn summary(&self) -> Summary {
        Summary {
            path: self.path.clone(),
            written: self.written,
            failed: self.failed,
            error: self.error.clone(),
        }
    }
}

/// Only buffers: what is written reaches the file at the next [`Stream::end_record`] that
/// finds the buffer full, or at [`Stream::flush_records`]. Bytes written after a failure are
/// dropped (their record is counted as failed).
impl Write for Stream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.file.is_some() {
            self.buf.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Summary {
    /// The JSON report's entry for this output, `unit` naming its records (`lines`,
    /// `packets`): `{"path": ..., "lines_written": N, "lines_failed": N, "error": ...}`.
    pub fn json(&self, unit: &str) -> serde_json::Value {
        json!({
            "path": self.path.display().to_string(),
            format!("{unit}_written"): self.written,
            format!("{unit}_failed"): self.failed,
            "error": self.error,
        })
    }

    /// The error line for a failed output, `None` if it did not fail: `writing PATH: No
    /// space left on device (os error 28); 460 WHAT`, `what` saying what the count is of.
    pub fn failure(&self, what: &str) -> Option<String> {
        let e = self.error.as_ref()?;
        Some(format!("{e}; {} {what}", self.failed))
    }

    /// The text report's line for this output: `log run.jsonl: 800 lines written`, and on a
    /// failure how many were not and why.
    pub fn text(&self, what: &str, unit: &str) -> String {
        let head = format!(
            "{what} {}: {} {unit} written",
            self.path.display(),
            self.written
        );
        match &self.error {
            None => head,
            Some(e) => format!("{head}, {} not written ({e})", self.failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "shadowtap-output-{name}-{}-{:x}",
            std::process::id(),
            random()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failed_record_is_counted_and_later_ones_too() {
        let dir = temp_dir("fail");
        let path = dir.join("a.log");
        // Opened read-only: every write fails.
        fs::write(&path, b"").unwrap();
        let mut s = Stream::new(File::open(&path).unwrap(), &path);
        s.line(b"one");
        s.line(b"two");
        assert!(!s.flush_records());
        s.line(b"three");
        let summary = s.finish();
        assert_eq!((summary.written, summary.failed), (0, 3));
        let e = summary.error.unwrap();
        assert!(e.contains("a.log"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_are_written_whole_when_the_buffer_fills() {
        let dir = temp_dir("whole");
        let path = dir.join("a.log");
        let mut s = Stream::create(&path, false).unwrap();
        let line = vec![b'x'; 1000];
        for _ in 0..100 {
            s.line(&line);
        }
        // Written out in 64 KiB batches as they fill: whole lines only.
        let on_disk = fs::metadata(&path).unwrap().len();
        assert!(on_disk > 0 && on_disk % 1001 == 0, "{on_disk}");
        assert_eq!(s.finish().written, 100);
        assert_eq!(fs::metadata(&path).unwrap().len(), 100 * 1001);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_staged_report_left_uncommitted_leaves_nothing() {
        let dir = temp_dir("staged");
        let target = dir.join("r.json");
        let staged = Staged::create(&target).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        drop(staged);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        write_atomic(&target, b"{}\n").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
