//! The blob cache on disk, in upstream's `blobcache` layout (`runtime.md` §3): for each blob,
//! `<work dir>/<blob id>.blob.data` holds the chunks fetched so far, uncompressed, each at its
//! uncompressed offset (a sparse file), and `<blob id>.chunk_map` says which (4096-byte header,
//! one bit per chunk; [`nydus_core::blob::chunkmap`]). A chunk's bit is set only after its
//! bytes are written, so a map never claims data that is not there; several processes may share
//! a cache (bits are merged under a file lock, and a miss re-reads the map byte first).
//!
//! Chunks come out of the cache verified by digest once per process (a remount re-verifies what
//! an earlier run left). A failed write (a full disk) turns caching off with one warning:
//! reads go on from the backend.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nydus_core::blob::chunkmap::{
    bit_position, bitmap_len, new_chunk_map, ChunkMapHeader, CHUNK_MAP_HEADER_SIZE,
};
use nydus_core::codec::Codec;
use nydus_core::model::{BlobInfo, ChunkRef};

/// The cache files of one blob.
#[derive(Debug)]
pub struct CachedBlob {
    data: File,
    map: File,
    data_path: PathBuf,
    chunks: u32,
    /// The map's bits as this process knows them.
    bits: Vec<AtomicU8>,
    /// Chunks verified by digest since this process opened the cache.
    verified: Vec<AtomicU8>,
    present: AtomicU32,
    /// Serialises read-modify-write of map bytes between this process's threads (the file
    /// lock serialises processes).
    map_lock: Mutex<()>,
}

fn bit(bits: &[AtomicU8], index: u32) -> bool {
    let (byte, mask) = bit_position(index);
    bits[(byte - CHUNK_MAP_HEADER_SIZE) as usize].load(Ordering::Acquire) & mask != 0
}

impl CachedBlob {
    /// Opens (or creates) the cache files of `info` in `dir`. A map with a bad header or the
    /// wrong length is started afresh, data file included.
    fn open(dir: &Path, info: &BlobInfo) -> io::Result<CachedBlob> {
        let id = &info.blob_id;
        let data_path = dir.join(format!("{id}.blob.data"));
        let map_path = dir.join(format!("{id}.chunk_map"));
        let chunks = info.chunk_count;
        let want_len = CHUNK_MAP_HEADER_SIZE + bitmap_len(chunks);
        let mut fresh = true;
        let mut bytes = Vec::new();
        if let Ok(b) = std::fs::read(&map_path) {
            if b.len() as u64 == want_len
                && ChunkMapHeader::decode_at(&b[..CHUNK_MAP_HEADER_SIZE as usize], 0).is_ok()
            {
                bytes = b;
                fresh = false;
            } else {
                log::warn!(
                    "{}: not a chunk map of this blob; starting its cache afresh",
                    map_path.display()
                );
            }
        }
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(fresh)
            .open(&data_path)?;
        if fresh {
            bytes = new_chunk_map(chunks);
            // A complete data file is the blob's uncompressed image (what the kernel mounts).
            data.set_len(info.uncompressed_size.next_multiple_of(4096))?;
            let tmp = dir.join(format!(".{id}.chunk_map.tmp"));
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &map_path)?;
        }
        let map = OpenOptions::new().read(true).write(true).open(&map_path)?;
        let bits: Vec<AtomicU8> = bytes[CHUNK_MAP_HEADER_SIZE as usize..]
            .iter()
            .map(|&b| AtomicU8::new(b))
            .collect();
        let present = (0..chunks).filter(|&i| bit(&bits, i)).count() as u32;
        Ok(CachedBlob {
            data,
            map,
            data_path,
            chunks,
            verified: (0..bits.len()).map(|_| AtomicU8::new(0)).collect(),
            bits,
            present: AtomicU32::new(present),
            map_lock: Mutex::new(()),
        })
    }

    /// Whether chunk `c` is in the cache (asking the map file again if this process has not
    /// seen its bit: another process may have fetched it).
    fn has(&self, c: &ChunkRef) -> bool {
        if c.index >= self.chunks {
            return false;
        }
        if bit(&self.bits, c.index) {
            return true;
        }
        let (byte, mask) = bit_position(c.index);
        let mut b = [0u8];
        if self.map.read_exact_at(&mut b, byte).is_ok() && b[0] & mask != 0 {
            self.bits[(byte - CHUNK_MAP_HEADER_SIZE) as usize].fetch_or(b[0], Ordering::AcqRel);
            return true;
        }
        false
    }

    fn read(&self, c: &ChunkRef) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; c.uncompressed_size as usize];
        self.data.read_exact_at(&mut v, c.uncompressed_offset)?;
        Ok(v)
    }

    fn is_verified(&self, index: u32) -> bool {
        bit(&self.verified, index)
    }

    fn set_verified(&self, index: u32) {
        let (byte, mask) = bit_position(index);
        self.verified[(byte - CHUNK_MAP_HEADER_SIZE) as usize].fetch_or(mask, Ordering::AcqRel);
    }

    /// Changes chunk `index`'s bit in the map file: under the lock, the byte as stored (other
    /// processes' bits) merged with ours.
    // `File::lock` is std since 1.89, newer than the declared MSRV.
    #[allow(clippy::incompatible_msrv)]
    fn write_bit(&self, index: u32, set: bool) -> io::Result<()> {
        let (byte, mask) = bit_position(index);
        let slot = &self.bits[(byte - CHUNK_MAP_HEADER_SIZE) as usize];
        let _guard = self.map_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.map.lock()?;
        let result = (|| {
            let mut b = [0u8];
            self.map.read_exact_at(&mut b, byte)?;
            // Ours and the other processes' bits, with this one set or cleared.
            let v = if set {
                slot.fetch_or(mask, Ordering::AcqRel) | mask | b[0]
            } else {
                (slot.fetch_and(!mask, Ordering::AcqRel) | b[0]) & !mask
            };
            self.map.write_all_at(&[v], byte)
        })();
        let _ = self.map.unlock();
        result
    }

    /// Stores the verified bytes of chunk `c`: data first, then its bit.
    fn store(&self, c: &ChunkRef, data: &[u8]) -> io::Result<()> {
        if c.index >= self.chunks || bit(&self.bits, c.index) {
            return Ok(());
        }
        self.data.write_all_at(data, c.uncompressed_offset)?;
        self.write_bit(c.index, true)?;
        self.set_verified(c.index);
        if self.present.fetch_add(1, Ordering::AcqRel) + 1 == self.chunks {
            let h = ChunkMapHeader { all_ready: true }.to_bytes();
            self.map.write_all_at(&h, 0)?;
        }
        Ok(())
    }

    /// Forgets chunk `c` (its cached bytes failed verification).
    fn evict(&self, c: &ChunkRef) -> io::Result<()> {
        if c.index >= self.chunks || !bit(&self.bits, c.index) {
            return Ok(());
        }
        self.present.fetch_sub(1, Ordering::AcqRel);
        let h = ChunkMapHeader { all_ready: false }.to_bytes();
        self.map.write_all_at(&h, 0)?;
        self.write_bit(c.index, false)
    }
}

/// The blob cache of one image: the cache files of each blob of its table, opened on first use.
#[derive(Debug)]
pub struct BlobCache {
    dir: PathBuf,
    blobs: Vec<BlobInfo>,
    open: Vec<OnceLock<Option<Arc<CachedBlob>>>>,
    /// Set after a write failed: nothing more is written.
    off: AtomicBool,
}

/// What the cache answered for a chunk.
#[derive(Debug)]
pub enum Lookup {
    /// The chunk's bytes, already verified in this process.
    Verified(Vec<u8>),
    /// The chunk's bytes, to verify before use.
    Unverified(Vec<u8>),
    /// Not cached.
    Miss,
}

impl BlobCache {
    /// A cache in `dir` (created if needed) for an image whose blob table is `blobs`.
    pub fn new(dir: &Path, blobs: &[BlobInfo]) -> io::Result<BlobCache> {
        std::fs::create_dir_all(dir)?;
        Ok(BlobCache {
            dir: dir.to_path_buf(),
            blobs: blobs.to_vec(),
            open: blobs.iter().map(|_| OnceLock::new()).collect(),
            off: AtomicBool::new(false),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob(&self, index: u32) -> Option<&Arc<CachedBlob>> {
        let slot = self.open.get(index as usize)?;
        slot.get_or_init(|| {
            let info = &self.blobs[index as usize];
            if info.chunk_count == 0 {
                return None; // no chunk count (old v5 blob table): nothing to map
            }
            match CachedBlob::open(&self.dir, info) {
                Ok(b) => Some(Arc::new(b)),
                Err(e) => {
                    log::warn!(
                        "blob cache for {} in {}: {e}; reading it without a cache",
                        info.blob_id,
                        self.dir.display()
                    );
                    None
                }
            }
        })
        .as_ref()
    }

    /// Whether chunk `c` is marked present (without reading it).
    pub fn has(&self, c: &ChunkRef) -> bool {
        self.blob(c.blob_index).is_some_and(|b| b.has(c))
    }

    /// The cached bytes of chunk `c`, if any.
    pub fn get(&self, c: &ChunkRef) -> Lookup {
        let Some(b) = self.blob(c.blob_index) else {
            return Lookup::Miss;
        };
        if !b.has(c) {
            return Lookup::Miss;
        }
        match b.read(c) {
            Ok(v) if b.is_verified(c.index) => Lookup::Verified(v),
            Ok(v) => Lookup::Unverified(v),
            Err(e) => {
                log::warn!("{}: {e}; fetching the chunk again", b.data_path.display());
                Lookup::Miss
            }
        }
    }

    /// Records that cached chunk `c` passed verification.
    pub fn verified(&self, c: &ChunkRef) {
        if let Some(b) = self.blob(c.blob_index) {
            b.set_verified(c.index);
        }
    }

    /// Drops cached chunk `c`, whose bytes failed verification.
    pub fn evict(&self, c: &ChunkRef) {
        if let Some(b) = self.blob(c.blob_index) {
            if let Err(e) = b.evict(c) {
                log::warn!("{}: {e}", b.data_path.display());
            }
        }
    }

    /// Stores the verified bytes of chunk `c`. A failure (a full disk) turns writing off.
    pub fn put(&self, c: &ChunkRef, data: &[u8]) {
        if self.off.load(Ordering::Acquire) {
            return;
        }
        let Some(b) = self.blob(c.blob_index) else {
            return;
        };
        if let Err(e) = b.store(c, data) {
            if !self.off.swap(true, Ordering::AcqRel) {
                log::warn!(
                    "blob cache in {}: {e}; no more chunks are cached, reads go on from the backend",
                    self.dir.display()
                );
            }
        }
    }

    /// Whether writing was turned off after a failure.
    pub fn is_off(&self) -> bool {
        self.off.load(Ordering::Acquire)
    }

    /// Whether every chunk of blob `index` is cached.
    pub fn complete(&self, index: u32) -> bool {
        self.blob(index)
            .is_some_and(|b| b.present.load(Ordering::Acquire) == b.chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nydus_core::blob::chunkmap::CHUNK_MAP_MAGIC;

    fn info(chunks: u32) -> BlobInfo {
        BlobInfo {
            blob_id: "ab".repeat(32),
            chunk_count: chunks,
            uncompressed_size: u64::from(chunks) * 4096,
            ..Default::default()
        }
    }

    fn chunk(index: u32) -> ChunkRef {
        ChunkRef {
            index,
            uncompressed_offset: u64::from(index) * 4096,
            uncompressed_size: 4096,
            ..Default::default()
        }
    }

    #[test]
    fn chunks_land_at_their_offsets_and_bits_follow_the_layout() {
        let d = tempfile::tempdir().unwrap();
        let i = info(10);
        let c = BlobCache::new(d.path(), std::slice::from_ref(&i)).unwrap();
        assert!(matches!(c.get(&chunk(3)), Lookup::Miss));
        c.put(&chunk(3), &[7u8; 4096]);
        c.put(&chunk(9), &[9u8; 4096]);
        assert!(matches!(c.get(&chunk(3)), Lookup::Verified(v) if v == [7u8; 4096]));
        let map = std::fs::read(d.path().join(format!("{}.chunk_map", i.blob_id))).unwrap();
        assert_eq!(map.len(), 4096 + 2);
        assert_eq!(
            u32::from_le_bytes(map[..4].try_into().unwrap()),
            CHUNK_MAP_MAGIC
        );
        assert_eq!(map[4096], 0b0001_0000); // chunk 3
        assert_eq!(map[4097], 0b0100_0000); // chunk 9
        let data = std::fs::read(d.path().join(format!("{}.blob.data", i.blob_id))).unwrap();
        assert_eq!(data.len(), 40960);
        assert_eq!(&data[3 * 4096..4 * 4096], &[7u8; 4096]);
        // A new process sees the chunks, unverified until it checks them.
        let c2 = BlobCache::new(d.path(), std::slice::from_ref(&i)).unwrap();
        assert!(matches!(c2.get(&chunk(9)), Lookup::Unverified(_)));
        c2.verified(&chunk(9));
        assert!(matches!(c2.get(&chunk(9)), Lookup::Verified(_)));
        c2.evict(&chunk(9));
        assert!(matches!(c2.get(&chunk(9)), Lookup::Miss));
        assert!(matches!(c.get(&chunk(4)), Lookup::Miss));
        // Another process filled chunk 4: seen through the map file.
        c2.put(&chunk(4), &[4u8; 4096]);
        assert!(matches!(c.get(&chunk(4)), Lookup::Unverified(_)));
    }

    #[test]
    fn the_last_chunk_marks_the_map_all_ready() {
        let d = tempfile::tempdir().unwrap();
        let i = info(2);
        let c = BlobCache::new(d.path(), std::slice::from_ref(&i)).unwrap();
        c.put(&chunk(0), &[1u8; 4096]);
        assert!(!c.complete(0));
        c.put(&chunk(1), &[2u8; 4096]);
        assert!(c.complete(0));
        let map = std::fs::read(d.path().join(format!("{}.chunk_map", i.blob_id))).unwrap();
        assert_eq!(
            u32::from_le_bytes(map[12..16].try_into().unwrap()),
            nydus_core::blob::chunkmap::CHUNK_MAP_ALL_READY
        );
    }

    #[test]
    fn a_damaged_map_starts_the_cache_afresh() {
        let d = tempfile::tempdir().unwrap();
        let i = info(4);
        let c = BlobCache::new(d.path(), std::slice::from_ref(&i)).unwrap();
        c.put(&chunk(1), &[1u8; 4096]);
        drop(c);
        let p = d.path().join(format!("{}.chunk_map", i.blob_id));
        let mut m = std::fs::read(&p).unwrap();
        m[0] = 0;
        std::fs::write(&p, m).unwrap();
        let c = BlobCache::new(d.path(), std::slice::from_ref(&i)).unwrap();
        assert!(matches!(c.get(&chunk(1)), Lookup::Miss));
    }
}
