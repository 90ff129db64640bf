//! Finding blobs by id for commands that read data: one given blob file, or directories of
//! blobs named by their id (or `<id>.blob.data` cache files).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::source::FileSource;

/// Resolves blob ids to local files for commands that read data.
#[derive(Debug, Default)]
pub struct BlobLocator {
    single: Option<PathBuf>,
    dir: Option<PathBuf>,
    /// Further directories searched after `dir` (a localfs backend's `alt_dirs`).
    alt_dirs: Vec<PathBuf>,
}

impl BlobLocator {
    /// A locator over a single blob file and/or a directory of blobs (which must exist) and
    /// further directories searched after it.
    pub fn new(
        single: Option<PathBuf>,
        dir: Option<PathBuf>,
        alt_dirs: Vec<PathBuf>,
    ) -> Result<Self> {
        for d in dir.iter().chain(&alt_dirs) {
            if !d.is_dir() {
                bail!("blob directory {} does not exist", d.display());
            }
        }
        Ok(BlobLocator {
            single,
            dir,
            alt_dirs,
        })
    }

    /// A locator serving the blobs of a directory, named by id.
    pub fn dir(path: PathBuf) -> Self {
        Self {
            dir: Some(path),
            ..Self::default()
        }
    }

    /// A locator serving one blob file.
    pub fn single(path: PathBuf) -> Self {
        Self {
            single: Some(path),
            ..Self::default()
        }
    }

    /// Whether any blob source was given.
    pub fn is_empty(&self) -> bool {
        self.single.is_none() && self.dir.is_none()
    }

    /// The directories searched, in order.
    fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dir.iter().chain(&self.alt_dirs).map(PathBuf::as_path)
    }

    /// The file of blob `blob_id` in the directories, and whether it is an uncompressed cache
    /// file (`<id>.blob.data`); a blob named by its id comes before a cache file.
    fn find(&self, blob_id: &str) -> Option<(PathBuf, bool)> {
        self.dirs().find_map(|d| {
            let p = d.join(blob_id);
            if p.exists() {
                return Some((p, false));
            }
            let c = d.join(format!("{blob_id}.blob.data"));
            c.exists().then_some((c, true))
        })
    }

    /// Opens the blob with this id (the single blob file is used for blob index 0 of a
    /// one-blob image, whatever its name).
    pub fn open(&self, blob_id: &str, blob_count: usize) -> Result<Option<FileSource>> {
        if let Some(f) = &self.single {
            if blob_count <= 1 {
                return FileSource::open(f).map(Some);
            }
        }
        if let Some(d) = &self.dir {
            return match self.find(blob_id) {
                Some((p, _)) => FileSource::open(&p).map(Some),
                None => bail!("blob {blob_id} not found in {}", d.display()),
            };
        }
        Ok(None)
    }

    /// Whether the blob for `blob_id` is an uncompressed cache file (`<id>.blob.data`).
    pub fn is_cache_file(&self, blob_id: &str) -> bool {
        self.find(blob_id).is_some_and(|(_, cache)| cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_found_by_id_then_in_alt_dirs() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("one"), b"1").unwrap();
        std::fs::write(b.join("two.blob.data"), b"2").unwrap();
        let l = BlobLocator::new(None, Some(a.clone()), vec![b.clone()]).unwrap();
        assert_eq!(l.open("one", 2).unwrap().unwrap().path(), a.join("one"));
        let two = l.open("two", 2).unwrap().unwrap();
        assert_eq!(two.path(), b.join("two.blob.data"));
        assert!(l.is_cache_file("two") && !l.is_cache_file("one"));
        let e = l.open("three", 2).unwrap_err().to_string();
        assert!(
            e.contains("three") && e.contains(&a.display().to_string()),
            "{e}"
        );
        let e = BlobLocator::new(None, Some(t.path().join("nope")), vec![]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
