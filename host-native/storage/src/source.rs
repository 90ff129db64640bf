//! Local files as byte sources: the core's decoders read them by range (`pread`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::error::SourceError;
use nydus_core::source::ReadAt;

/// A local file served by `pread`.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    size: u64,
    path: PathBuf,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let md = file
            .metadata()
            .with_context(|| format!("stat {}", path.display()))?;
        if !md.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        Ok(Self {
            file,
            size: md.len(),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ReadAt for FileSource {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| SourceError {
                offset,
                len: buf.len() as u64,
                message: format!("{}: {e}", self.path.display()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_source_reads_ranges_and_reports_paths() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let s = FileSource::open(&p).unwrap();
        assert_eq!(s.read_vec(2, 3).unwrap(), b"234");
        let e = s.read_vec(8, 5).unwrap_err();
        assert!(e.message.contains("beyond"), "{e}");
    }
}
