//! Output files that appear only when complete: written under a temporary name in the target
//! directory and renamed into place on [`AtomicFile::commit`]; dropped uncommitted, they vanish.
//! Scratch directories ([`Scratch`]) vanish when dropped too.
//!
//! Both are also listed, while they exist, in a process-wide register: a command line
//! interrupted by a signal calls [`remove_pending`] before it exits, so a killed run leaves
//! nothing behind either (destructors do not run on `exit`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

/// What exists only while a command runs: temporary files, scratch directories, work
/// directories made for them, and work in other places to undo (a multipart upload).
#[derive(Debug)]
enum Pending {
    File(PathBuf),
    Dir(PathBuf),
    /// Removed only if empty.
    Parent(PathBuf),
    Undo(Undo),
}

/// Something to undo on an interruption, and what it is (for messages).
struct Undo {
    what: String,
    run: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undo").field("what", &self.what).finish()
    }
}

/// While the guard lives, `undo` runs if the command is interrupted ([`remove_pending`]),
/// e.g. aborting a multipart upload so that its parts do not stay in the bucket. `what`
/// names it in the log.
pub fn on_interrupt(what: String, undo: impl FnOnce() + Send + 'static) -> Result<UndoGuard> {
    let ((), r) = register_with(|| {
        Ok((
            (),
            Pending::Undo(Undo {
                what,
                run: Box::new(undo),
            }),
        ))
    })?;
    Ok(UndoGuard { _registered: r })
}

/// See [`on_interrupt`]: dropping it takes the undo off the register.
#[derive(Debug)]
pub struct UndoGuard {
    _registered: Registered,
}

#[derive(Debug, Default)]
struct Register {
    next: u64,
    entries: Vec<(u64, Pending)>,
    /// Set by [`remove_pending`]: nothing new is made after it.
    closed: bool,
}

static PENDING: Mutex<Register> = Mutex::new(Register {
    next: 0,
    entries: Vec::new(),
    closed: false,
});

fn lock() -> std::sync::MutexGuard<'static, Register> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// An entry of the register, taken out when dropped.
#[derive(Debug)]
struct Registered(u64);

/// Makes something and lists it, under the register's lock: once [`remove_pending`] has run,
/// nothing is made any more, so nothing made can escape it.
fn register_with<T>(make: impl FnOnce() -> Result<(T, Pending)>) -> Result<(T, Registered)> {
    let mut r = lock();
    if r.closed {
        anyhow::bail!("interrupted: no new temporary files");
    }
    let (t, p) = make()?;
    let id = r.next;
    r.next += 1;
    r.entries.push((id, p));
    Ok((t, Registered(id)))
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock().entries.retain(|(id, _)| *id != self.0);
    }
}

/// Removes every temporary file and scratch directory that exists now (and the work
/// directories made for them, when empty), and makes no new ones after: for a command line
/// stopping on a signal. Returns how many were removed.
pub fn remove_pending() -> usize {
    let mut r = lock();
    r.closed = true;
    let mut removed = 0;
    // Newest first: a scratch directory before the work directory holding it.
    for (_, p) in r.entries.drain(..).rev() {
        let ok = match p {
            Pending::Undo(u) => {
                log::warn!("interrupted: {}", u.what);
                (u.run)();
                true
            }
            Pending::File(f) => std::fs::remove_file(f).is_ok(),
            // A thread still writing into it can make the first attempt fail.
            Pending::Dir(d) => (0..3).any(|_| std::fs::remove_dir_all(&d).is_ok()),
            Pending::Parent(d) => std::fs::remove_dir(d).is_ok(),
        };
        removed += usize::from(ok);
    }
    removed
}

/// A scratch directory inside `parent` (made if missing, and then removed again with the
/// scratch directory when it is left empty), removed with everything in it when dropped.
#[derive(Debug)]
pub struct Scratch {
    /// `None` only while dropping.
    dir: Option<tempfile::TempDir>,
    _registered: Registered,
    made_parent: Option<(PathBuf, Registered)>,
}

impl Scratch {
    /// A fresh directory named `<prefix><random>` in `parent`.
    pub fn new_in(parent: &Path, prefix: &str) -> Result<Scratch> {
        let made_parent = if parent.is_dir() {
            None
        } else {
            let ((), r) = register_with(|| {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating the work directory {}", parent.display()))?;
                Ok(((), Pending::Parent(parent.to_path_buf())))
            })?;
            Some((parent.to_path_buf(), r))
        };
        let (dir, registered) = register_with(|| {
            let dir = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(parent)
                .with_context(|| format!("creating a directory in {}", parent.display()))?;
            let p = Pending::Dir(dir.path().to_path_buf());
            Ok((dir, p))
        })?;
        Ok(Scratch {
            dir: Some(dir),
            _registered: registered,
            made_parent,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("not dropped").path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop(self.dir.take());
        if let Some((p, _)) = &self.made_parent {
            // Only when empty: another run may be using it.
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// A file being written to a temporary name next to its final path.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: Option<tempfile::NamedTempFile>,
    _registered: Registered,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `dest`; its directory must exist.
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            anyhow::bail!(
                "output directory {} does not exist (for {})",
                dir.display(),
                dest.display()
            );
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (tmp, registered) = register_with(|| {
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".tmp")
                .tempfile_in(&dir)
                .with_context(|| {
                    format!(
                        "creating a temporary file in {} for {}",
                        dir.display(),
                        dest.display()
                    )
                })?;
            let p = Pending::File(tmp.path().to_path_buf());
            Ok((tmp, p))
        })?;
        Ok(Self {
            tmp: Some(tmp),
            _registered: registered,
            dest: dest.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_mut().expect("not committed").as_file_mut()
    }

    /// The final destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Changes the destination before committing (e.g. a name known only at the end).
    pub fn set_dest(&mut self, dest: PathBuf) {
        self.dest = dest;
    }

    /// Flushes, syncs and renames into place (readable by others: 0644).
    pub fn commit(mut self) -> Result<()> {
        let tmp = self.tmp.take().expect("committed twice");
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("writing {}", self.dest.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting permissions of {}", self.dest.display()))?;
        tmp.persist(&self.dest)
            .map_err(|e| e.error)
            .with_context(|| format!("renaming into {}", self.dest.display()))?;
        Ok(())
    }
}

/// Writes `data` to `dest` atomically.
pub fn write_file(dest: &Path, data: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    {
        let mut w = BufWriter::new(f.file());
        w.write_all(data)
            .with_context(|| format!("writing {}", dest.display()))?;
        w.flush()
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out");
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.file().write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        write_file(&p, b"whole").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
    }

    #[test]
    fn missing_dir_is_named() {
        let e = AtomicFile::create(Path::new("/nonexistent-dir/x")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir"));
    }
}
