//! A lock held through the kernel (`flock`) on a file, and the file removed as it is let go: the
//! submit lock of a sweep folder ([`crate::SubmitLock`]). The kernel drops the lock
//! with the process whatever ends it (SIGKILL, the OOM killer, a lost login session), so a
//! crash never leaves one held; a file left behind by a killed holder is free to take.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A held lock; dropping it removes the file and lets go.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    file: std::fs::File,
}

impl FileLock {
    /// Takes the lock on `path` (created when missing) and writes `holder` into the file, for
    /// whoever finds it held. `Ok(Err(text))`: held by another, whose file says `text`.
    pub fn try_take(path: &Path, holder: &str) -> std::io::Result<Result<Self, String>> {
        loop {
            let mut file =
                std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    let text =
                        if text.trim().is_empty() { "a process".to_owned() } else { text.trim().to_owned() };
                    return Ok(Err(text));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            // The holder before removes the file as it lets go: a lock taken on the file it
            // removed (opened just before) guards nothing, so take the one at the path again.
            let held = file.metadata()?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
                _ => continue,
            }
            file.set_len(0)?;
            writeln!(file, "{holder}")?;
            return Ok(Ok(FileLock { path: path.to_owned(), file }));
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Removed while still held, so no one takes a lock on a file about to go.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_once_and_free_again_when_dropped() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("x.lock");
        let lock = FileLock::try_take(&path, "pid 1").expect("io").expect("free");
        assert_eq!(FileLock::try_take(&path, "pid 2").expect("io").expect_err("held"), "pid 1");
        drop(lock);
        assert!(!path.exists());
        FileLock::try_take(&path, "pid 2").expect("io").expect("free again");
    }
}
