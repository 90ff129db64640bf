//! The localfs backend: blobs named by id in a directory (and extra read directories), or one
//! blob file. A directory may hold a blob as stored (`<id>`) or its uncompressed image
//! (`<id>.blob.data`, what `create --blob-cache-dir` and a blob cache write).

use std::path::PathBuf;
use std::sync::Arc;

use nydus_core::read::exec::BlobLayout;

use crate::store::{BlobStore, LocalFile, StoreError, StoreErrorKind};

/// A blob opened for reading, and how it holds its chunks.
#[derive(Debug, Clone)]
pub struct OpenBlob {
    pub store: Arc<dyn BlobStore>,
    pub layout: BlobLayout,
}

/// Where the blobs of an image are: resolves blob-table entries to blob stores.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Opens the blob of blob-table entry `index` (of `count` entries), whose id is `id`.
    fn open(&self, id: &str, index: u32, count: usize) -> Result<OpenBlob, StoreError>;
    /// The backend as messages name it.
    fn describe(&self) -> String;
}

/// Local files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Localfs {
    /// One blob file: the blob of a one-blob image, whatever its name.
    pub blob_file: Option<PathBuf>,
    /// Blobs named by id.
    pub dir: Option<PathBuf>,
    /// More directories searched after `dir`.
    pub alt_dirs: Vec<PathBuf>,
}

impl Localfs {
    /// A backend over one blob file and/or a directory of blobs and further directories
    /// searched after it; the directories must exist.
    pub fn new(
        blob_file: Option<PathBuf>,
        dir: Option<PathBuf>,
        alt_dirs: Vec<PathBuf>,
    ) -> anyhow::Result<Self> {
        for d in dir.iter().chain(&alt_dirs) {
            if !d.is_dir() {
                anyhow::bail!("blob directory {} does not exist", d.display());
            }
        }
        Ok(Localfs {
            blob_file,
            dir,
            alt_dirs,
        })
    }

    /// A backend serving one blob file.
    pub fn file(path: PathBuf) -> Self {
        Localfs {
            blob_file: Some(path),
            ..Default::default()
        }
    }
    /// A backend serving the blobs of a directory.
    pub fn dir(path: PathBuf) -> Self {
        Localfs {
            dir: Some(path),
            ..Default::default()
        }
    }
    /// Whether it can serve any blob at all.
    pub fn is_empty(&self) -> bool {
        self.blob_file.is_none() && self.dir.is_none() && self.alt_dirs.is_empty()
    }
}

impl Backend for Localfs {
    fn open(&self, id: &str, _index: u32, count: usize) -> Result<OpenBlob, StoreError> {
        if let Some(f) = &self.blob_file {
            if count <= 1 {
                return Ok(OpenBlob {
                    store: Arc::new(LocalFile::open(f)?),
                    layout: BlobLayout::Stored,
                });
            }
        }
        let dirs: Vec<&PathBuf> = self.dir.iter().chain(&self.alt_dirs).collect();
        if dirs.is_empty() {
            return Err(StoreError {
                blob: id.to_string(),
                offset: 0,
                len: 0,
                kind: StoreErrorKind::NotFound,
                message: if self.blob_file.is_some() {
                    format!(
                        "the image has {count} blobs: give a blob directory (-D <dir>), not one blob file"
                    )
                } else {
                    "no blob given for it (use -b <file> or -D <dir>)".into()
                },
            });
        }
        // `id` comes from the bootstrap: never let it name a file outside the directories.
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            return Err(StoreError {
                blob: id.to_string(),
                offset: 0,
                len: 0,
                kind: StoreErrorKind::NotFound,
                message: "a blob id that is not a file name".into(),
            });
        }
        for d in &dirs {
            for (name, layout) in [
                (id.to_string(), BlobLayout::Stored),
                (format!("{id}.blob.data"), BlobLayout::Uncompressed),
            ] {
                let p = d.join(&name);
                if p.is_file() {
                    return Ok(OpenBlob {
                        store: Arc::new(LocalFile::open(&p)?),
                        layout,
                    });
                }
            }
        }
        Err(StoreError {
            blob: id.to_string(),
            offset: 0,
            len: 0,
            kind: StoreErrorKind::NotFound,
            message: format!(
                "not found in {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    fn describe(&self) -> String {
        match (&self.blob_file, &self.dir) {
            (Some(f), _) => f.display().to_string(),
            (None, Some(d)) => d.display().to_string(),
            (None, None) => "no local blobs".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_found_by_id_stored_or_uncompressed() {
        let d = tempfile::tempdir().unwrap();
        let alt = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("aa"), b"stored").unwrap();
        std::fs::write(alt.path().join("bb.blob.data"), b"raw").unwrap();
        let l = Localfs {
            dir: Some(d.path().into()),
            alt_dirs: vec![alt.path().into()],
            ..Default::default()
        };
        assert_eq!(l.open("aa", 0, 2).unwrap().layout, BlobLayout::Stored);
        let b = l.open("bb", 1, 2).unwrap();
        assert_eq!(b.layout, BlobLayout::Uncompressed);
        assert_eq!(b.store.size().unwrap(), 3);
        let e = l.open("cc", 0, 2).unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::NotFound);
        assert!(e.message.contains("not found in"), "{e}");
        assert!(l.open("../aa", 0, 2).is_err());
        // One blob file serves a one-blob image only.
        let f = Localfs::file(d.path().join("aa"));
        assert!(f.open("whatever", 0, 1).is_ok());
        assert!(f.open("whatever", 0, 2).is_err());
    }
}
