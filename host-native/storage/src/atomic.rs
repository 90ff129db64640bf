//! Output files that appear only when complete: written under a temporary name in the target
//! directory and renamed into place on [`AtomicFile::commit`]; dropped uncommitted, they vanish.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A file being written to a temporary name next to its final path.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: Option<tempfile::NamedTempFile>,
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
        Ok(Self {
            tmp: Some(tmp),
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
