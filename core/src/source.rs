//! Random-access byte sources. The decoder asks for ranges; the host serves them (`pread` on
//! a file, `FileReaderSync` on a `File.slice` in a browser worker, or a slice in memory).

use crate::error::SourceError;

/// Something that serves byte ranges of one file. Implemented by hosts; the core only calls it.
pub trait ReadAt {
    /// Total size of the file in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`; a short file is an error.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;

    /// Reads `len` bytes at `offset` into a new vector, after checking the range against
    /// [`ReadAt::size`] (so a corrupt length never causes a huge allocation).
    fn read_vec(&self, offset: u64, len: u64) -> Result<Vec<u8>, SourceError> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.size()) {
            return Err(SourceError {
                offset,
                len,
                message: format!(
                    "range lies beyond the end of the file ({} bytes)",
                    self.size()
                ),
            });
        }
        let mut v = vec![0u8; len as usize];
        self.read_exact_at(offset, &mut v)?;
        Ok(v)
    }
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let start = usize::try_from(offset).ok().filter(|&s| s <= self.len());
        let end = start
            .and_then(|s| s.checked_add(buf.len()))
            .filter(|&e| e <= self.len());
        match (start, end) {
            (Some(s), Some(e)) => {
                buf.copy_from_slice(&self[s..e]);
                Ok(())
            }
            _ => Err(SourceError {
                offset,
                len: buf.len() as u64,
                message: format!(
                    "range lies beyond the end of the data ({} bytes)",
                    self.len()
                ),
            }),
        }
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.as_slice().read_exact_at(offset, buf)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        (**self).read_exact_at(offset, buf)
    }
}
