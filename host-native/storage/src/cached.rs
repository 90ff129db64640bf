//! A bootstrap file read by range through a small block cache: decoders ask for many small
//! ranges (a 64-byte inode, an 8-byte chunk index, a directory block), and a `pread` each would
//! cost a system call per inode. Blocks of [`BLOCK`] bytes are read once and kept (least
//! recently used out first, at most the budget given to `CachedFile::new`), so a walk of a 100k-inode
//! bootstrap reads each block about once without ever holding the whole file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use lru::LruCache;
use nydus_core::error::SourceError;
use nydus_core::source::ReadAt;

/// Bytes of one cached block.
pub const BLOCK: u64 = 64 << 10;

/// Where a [`CachedFile`] keeps its blocks.
#[derive(Debug)]
enum Blocks {
    /// The file fits the budget: a slot per block, filled on first use, never evicted (reads
    /// take no lock once a block is in).
    Direct(Vec<OnceLock<Arc<[u8]>>>),
    /// A larger file: the most recently used blocks, up to the budget.
    Lru(Mutex<LruCache<u64, Arc<[u8]>>>, usize),
}

/// A file read through a block cache, shareable between threads.
#[derive(Debug)]
pub struct CachedFile {
    file: File,
    size: u64,
    path: PathBuf,
    blocks: Blocks,
}

impl CachedFile {
    /// Opens `path`, keeping at most `budget_bytes` of it in memory.
    pub fn open(path: &Path, budget_bytes: u64) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(Self::new(file, size, path, budget_bytes))
    }

    fn new(file: File, size: u64, path: &Path, budget_bytes: u64) -> Self {
        let budget = (budget_bytes / BLOCK).max(1) as usize;
        let count = size.div_ceil(BLOCK) as usize;
        let blocks = if count <= budget {
            Blocks::Direct((0..count).map(|_| OnceLock::new()).collect())
        } else {
            Blocks::Lru(Mutex::new(LruCache::unbounded()), budget)
        };
        CachedFile {
            file,
            size,
            path: path.to_path_buf(),
            blocks,
        }
    }

    fn load(&self, n: u64) -> Result<Arc<[u8]>, SourceError> {
        let at = n * BLOCK;
        let len = BLOCK.min(self.size - at) as usize;
        let mut v = vec![0u8; len];
        self.file
            .read_exact_at(&mut v, at)
            .map_err(|e| SourceError {
                offset: at,
                len: len as u64,
                message: format!("{}: {e}", self.path.display()),
            })?;
        Ok(v.into())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn block(&self, n: u64) -> Result<Arc<[u8]>, SourceError> {
        match &self.blocks {
            Blocks::Direct(slots) => {
                let slot = &slots[n as usize];
                if let Some(b) = slot.get() {
                    return Ok(b.clone());
                }
                let b = self.load(n)?;
                Ok(slot.get_or_init(|| b).clone())
            }
            Blocks::Lru(lru, budget) => {
                if let Some(b) = lru.lock().unwrap_or_else(|p| p.into_inner()).get(&n) {
                    return Ok(b.clone());
                }
                let b = self.load(n)?;
                let mut g = lru.lock().unwrap_or_else(|p| p.into_inner());
                g.put(n, b.clone());
                while g.len() > *budget {
                    g.pop_lru();
                }
                Ok(b)
            }
        }
    }
}

impl ReadAt for CachedFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.size) {
            return Err(SourceError {
                offset,
                len: buf.len() as u64,
                message: format!(
                    "{}: range lies beyond the end of the file ({} bytes)",
                    self.path.display(),
                    self.size
                ),
            });
        }
        // A large read (a whole table) goes straight to the file.
        if buf.len() as u64 > 2 * BLOCK {
            return self
                .file
                .read_exact_at(buf, offset)
                .map_err(|e| SourceError {
                    offset,
                    len: buf.len() as u64,
                    message: format!("{}: {e}", self.path.display()),
                });
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let b = self.block(pos / BLOCK)?;
            let within = (pos % BLOCK) as usize;
            let n = (b.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&b[within..within + n]);
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_across_blocks_and_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..(3 * BLOCK + 100)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = CachedFile::open(&p, BLOCK).unwrap();
        for (o, l) in [
            (0, 10),
            (BLOCK - 3, 7),
            (2 * BLOCK + 5, BLOCK),
            (3 * BLOCK + 90, 10),
            (1, 3 * BLOCK),
        ] {
            assert_eq!(
                f.read_vec(o, l).unwrap(),
                &data[o as usize..(o + l) as usize],
                "{o}+{l}"
            );
        }
        assert!(f.read_vec(3 * BLOCK + 95, 10).is_err());
        match &f.blocks {
            Blocks::Lru(lru, 1) => assert!(lru.lock().unwrap().len() <= 1),
            other => panic!("a 4-block file with a 1-block budget: {other:?}"),
        }
        let whole = CachedFile::open(&p, 16 * BLOCK).unwrap();
        assert!(matches!(whole.blocks, Blocks::Direct(_)));
        assert_eq!(
            whole.read_vec(BLOCK - 1, 2).unwrap(),
            &data[BLOCK as usize - 1..][..2]
        );
    }
}
