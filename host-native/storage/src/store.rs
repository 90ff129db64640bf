//! Blob stores: where one blob's bytes are, read by range. Local files today; the S3, OSS and
//! registry backends implement the same trait.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nydus_core::error::SourceError;
use nydus_core::source::ReadAt;

/// Why a blob store could not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The blob does not exist.
    NotFound,
    /// The range lies beyond the end of the blob.
    Short,
    /// A failure worth retrying (a dropped connection, a 5xx answer, an interrupted read).
    Transient,
    /// Credentials were refused.
    Auth,
    /// Any other failure of the store (a local I/O error, an unexpected answer).
    Failed,
}

/// A blob store request that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// The blob, as the store names it (a path or URL, never with credentials).
    pub blob: String,
    pub offset: u64,
    pub len: u64,
    pub kind: StoreErrorKind,
    /// What the store said.
    pub message: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: reading {} bytes at offset {}: {}",
            self.blob, self.len, self.offset, self.message
        )
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    fn io(blob: &Path, offset: u64, len: u64, e: &io::Error) -> Self {
        let kind = match e.kind() {
            io::ErrorKind::NotFound => StoreErrorKind::NotFound,
            io::ErrorKind::UnexpectedEof => StoreErrorKind::Short,
            io::ErrorKind::Interrupted | io::ErrorKind::TimedOut => StoreErrorKind::Transient,
            _ => StoreErrorKind::Failed,
        };
        StoreError {
            blob: blob.display().to_string(),
            offset,
            len,
            kind,
            message: e.to_string(),
        }
    }
}

/// One blob's bytes, served by range from any thread.
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// The blob as messages name it (a path or URL without credentials).
    fn describe(&self) -> String;
    /// Its size in bytes.
    fn size(&self) -> Result<u64, StoreError>;
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`; a short blob is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError>;
    /// Whether the blob exists.
    fn exists(&self) -> Result<bool, StoreError>;
}

/// A local file read with `pread`.
#[derive(Debug)]
pub struct LocalFile {
    file: File,
    size: u64,
    path: PathBuf,
}

impl LocalFile {
    /// Opens a regular file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |e: &io::Error| StoreError::io(path, 0, 0, e);
        let file = File::open(path).map_err(|e| err(&e))?;
        let md = file.metadata().map_err(|e| err(&e))?;
        if !md.is_file() {
            return Err(StoreError {
                blob: path.display().to_string(),
                offset: 0,
                len: 0,
                kind: StoreErrorKind::Failed,
                message: "not a regular file".into(),
            });
        }
        Ok(LocalFile {
            file,
            size: md.len(),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl BlobStore for LocalFile {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.size)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(StoreError {
                blob: self.describe(),
                offset,
                len,
                kind: StoreErrorKind::Short,
                message: format!("the file has only {} bytes", self.size),
            });
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| StoreError::io(&self.path, offset, len, &e))
    }
    fn exists(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// A blob store seen as the core's byte source (for decoding blob sections: the ci table, the
/// ToC, an inlined bootstrap).
#[derive(Debug, Clone, Copy)]
pub struct StoreSource<'a> {
    store: &'a dyn BlobStore,
    size: u64,
}

impl<'a> StoreSource<'a> {
    pub fn new(store: &'a dyn BlobStore) -> Result<Self, StoreError> {
        Ok(StoreSource {
            store,
            size: store.size()?,
        })
    }
}

impl ReadAt for StoreSource<'_> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.store.read_at(offset, buf).map_err(|e| SourceError {
            offset,
            len: buf.len() as u64,
            message: format!("{}: {}", e.blob, e.message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_files_read_ranges_and_name_themselves() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("blob");
        std::fs::write(&p, b"0123456789").unwrap();
        let f = LocalFile::open(&p).unwrap();
        let mut b = [0u8; 3];
        f.read_at(2, &mut b).unwrap();
        assert_eq!(&b, b"234");
        let e = f.read_at(8, &mut b).unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Short);
        assert!(e.to_string().contains("blob"), "{e}");
        let e = LocalFile::open(&d.path().join("nope")).unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::NotFound);
        assert_eq!(StoreSource::new(&f).unwrap().read_vec(0, 2).unwrap(), b"01");
    }
}
