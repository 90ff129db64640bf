//! The chunk reader: carries out the core's read plans for every native reader (unpack, check,
//! export, `nydusify check`, the FUSE mount), from any number of threads at once.
//!
//! - Chunks of one blob that lie next to each other are fetched with one range read (up to the
//!   batch size, tolerating small gaps between them, as upstream does).
//! - Every chunk is decompressed and verified by digest (and CRC-32C where it has one) before a
//!   byte of it is used, cached or returned; a chunk that fails is an error naming the blob and
//!   the chunk, never wrong bytes.
//! - A chunk several threads want at once is fetched once: the others wait for it.
//! - Verified chunks are kept in a bounded in-memory cache and, with a work directory, in the
//!   on-disk blob cache of upstream's layout ([`crate::blobcache`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use lru::LruCache;
use nydus_core::blob::reader::{decode_chunk, verify_chunk};
use nydus_core::digest::Digest;
use nydus_core::error::DecodeError;
use nydus_core::model::BlobInfo;
use nydus_core::read::exec::BlobLayout;
use nydus_core::read::{ChunkExtent, Extent, ReadPlan};

use crate::blobcache::{BlobCache, Lookup};
use crate::local::{Backend, OpenBlob};
use crate::store::StoreError;

/// Which chunk a [`ReadError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkId {
    /// Index of the chunk in its blob (its ci index).
    pub index: u32,
    /// Its digest (hex).
    pub digest: String,
    /// Where it lies in the blob file as read (compressed offset, or uncompressed offset in an
    /// uncompressed blob image).
    pub offset: u64,
}

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The chunk names a blob-table entry that does not exist.
    NoSuchBlob { index: u32, blobs: usize },
    /// The blob store failed (missing blob, I/O error, short blob, ...).
    Store(Box<StoreError>),
    /// The stored bytes do not decompress to the chunk, or fail its digest or CRC.
    Corrupt(Box<DecodeError>),
    /// The thread fetching the chunk gave up without an answer.
    Abandoned,
}

/// A chunk (or a blob) that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// The blob's id.
    pub blob: String,
    /// Where it was read from (a path or URL without credentials), when it was opened.
    pub from: Option<String>,
    pub chunk: Option<Box<ChunkId>>,
    pub kind: ReadErrorKind,
}

impl ReadError {
    /// The error without the blob id, for a report whose subject names the blob already:
    /// where it was read from, the chunk, the problem.
    pub fn detail(&self) -> String {
        let mut s = self.from.clone().unwrap_or_default();
        let tail = Tail(self).to_string();
        s.push_str(if s.is_empty() {
            tail.trim_start_matches(": ")
        } else {
            &tail
        });
        s
    }
}

/// What follows the blob (and where it was read from) in a [`ReadError`]'s message.
struct Tail<'a>(&'a ReadError);

impl fmt::Display for Tail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        if let Some(c) = &e.chunk {
            write!(
                f,
                ": chunk {} (digest {}, at offset {:#x})",
                c.index, c.digest, c.offset
            )?;
        }
        match &e.kind {
            ReadErrorKind::NoSuchBlob { index, blobs } => {
                write!(f, ": blob index {index} outside a blob table of {blobs}")
            }
            ReadErrorKind::Store(e) => write!(f, ": {e}"),
            ReadErrorKind::Corrupt(e) => write!(f, ": {e}"),
            ReadErrorKind::Abandoned => write!(f, ": the fetch was abandoned"),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blob {}", self.blob)?;
        if let Some(from) = &self.from {
            write!(f, " ({from})")?;
        }
        write!(f, "{}", Tail(self))
    }
}

impl std::error::Error for ReadError {}

/// How a [`ChunkReader`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Largest range read of merged adjacent chunks (bytes as stored). Upstream's default and
    /// ours: 1 MiB; a single larger chunk is read on its own.
    pub batch_size: u64,
    /// Bytes of verified chunks kept in memory (0: none).
    pub memory_bytes: u64,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            batch_size: 1 << 20,
            memory_bytes: 16 << 20,
        }
    }
}

/// Counters of what a reader did (for tests, benchmarks and the mount's statistics).
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Range reads sent to blob stores.
    pub backend_reads: AtomicU64,
    /// Bytes those reads asked for.
    pub backend_bytes: AtomicU64,
    /// Chunks decompressed and verified after a backend read.
    pub chunks_fetched: AtomicU64,
    /// Chunks served by the on-disk cache.
    pub disk_hits: AtomicU64,
    /// Chunks served by the in-memory cache.
    pub memory_hits: AtomicU64,
    /// Chunks another thread was already fetching (waited for, not fetched again).
    pub shared_fetches: AtomicU64,
}

/// A chunk's verified uncompressed bytes, shared without copying.
pub type Chunk = Arc<Vec<u8>>;

/// A piece of a plan's bytes: a slice of a fetched chunk, or zeros.
#[derive(Debug, Clone)]
pub enum Segment {
    Slice {
        chunk: Chunk,
        start: usize,
        len: usize,
    },
    Zeros(u64),
}

impl Segment {
    /// Bytes it stands for.
    pub fn len(&self) -> u64 {
        match self {
            Segment::Slice { len, .. } => *len as u64,
            Segment::Zeros(n) => *n,
        }
    }
    /// Whether it stands for no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Zeros handed out for holes.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// The bytes of some segments, in order, as slices (holes as pieces of a zero buffer).
pub fn slices(segments: &[Segment]) -> impl Iterator<Item = &[u8]> {
    segments.iter().flat_map(|s| {
        let (one, zeros): (Option<&[u8]>, u64) = match s {
            Segment::Slice { chunk, start, len } => (Some(&chunk[*start..*start + *len]), 0),
            Segment::Zeros(n) => (None, *n),
        };
        let full = (zeros / ZEROS.len() as u64) as usize;
        let rest = (zeros % ZEROS.len() as u64) as usize;
        one.into_iter()
            .chain(std::iter::repeat_n(&ZEROS[..], full))
            .chain((rest > 0).then(|| &ZEROS[..rest]))
    })
}

/// Identity of a chunk: blob index, ci index and digest (two records that disagree are two
/// chunks).
type Key = (u32, u32, Digest);

/// A chunk being fetched by one thread while others wait for it.
#[derive(Debug, Default)]
struct Flight {
    done: Mutex<Option<Result<Chunk, ReadError>>>,
    cv: Condvar,
}

impl Flight {
    fn finish(&self, r: Result<Chunk, ReadError>) {
        let mut d = self.done.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_none() {
            *d = Some(r);
        }
        self.cv.notify_all();
    }
    fn wait(&self) -> Result<Chunk, ReadError> {
        let mut d = self.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = d.as_ref() {
                return r.clone();
            }
            d = self.cv.wait(d).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// In-memory cache of verified chunks, bounded by bytes.
#[derive(Debug)]
struct Memory {
    lru: LruCache<Key, Chunk>,
    bytes: u64,
    limit: u64,
}

impl Memory {
    fn put(&mut self, k: Key, v: Chunk) {
        if v.len() as u64 > self.limit {
            return;
        }
        self.bytes += v.len() as u64;
        if let Some(old) = self.lru.put(k, v) {
            self.bytes -= old.len() as u64;
        }
        while self.bytes > self.limit {
            match self.lru.pop_lru() {
                Some((_, v)) => self.bytes -= v.len() as u64,
                None => break,
            }
        }
    }
}

/// Executes read plans against the blobs of one image.
#[derive(Debug)]
pub struct ChunkReader {
    blobs: Vec<BlobInfo>,
    backend: Arc<dyn Backend>,
    opened: Vec<Mutex<Option<OpenBlob>>>,
    cache: Option<BlobCache>,
    memory: Option<Mutex<Memory>>,
    flights: Mutex<HashMap<Key, Arc<Flight>>>,
    opts: ReaderOptions,
    stats: ReaderStats,
}

/// Completes the flights a thread owns: with their result, or (if it unwinds or returns early)
/// with [`ReadErrorKind::Abandoned`], so that waiters never hang.
struct Owned<'a> {
    reader: &'a ChunkReader,
    flights: Vec<(Key, Arc<Flight>)>,
}

impl Owned<'_> {
    fn finish(&mut self, k: &Key, r: Result<Chunk, ReadError>) {
        if let Some(pos) = self.flights.iter().position(|(x, _)| x == k) {
            let (k, f) = self.flights.swap_remove(pos);
            self.reader.lock_flights().remove(&k);
            f.finish(r);
        }
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        for (k, f) in self.flights.drain(..) {
            self.reader.lock_flights().remove(&k);
            f.finish(Err(ReadError {
                blob: self
                    .reader
                    .blobs
                    .get(k.0 as usize)
                    .map_or_else(String::new, |b| b.blob_id.clone()),
                from: None,
                chunk: None,
                kind: ReadErrorKind::Abandoned,
            }));
        }
    }
}

fn chunk_id(e: &ChunkExtent, layout: BlobLayout) -> ChunkId {
    ChunkId {
        index: e.chunk.index,
        digest: e.chunk.digest.to_hex(),
        offset: match layout {
            BlobLayout::Stored => e.chunk.compressed_offset,
            BlobLayout::Uncompressed => e.chunk.uncompressed_offset,
        },
    }
}

/// Where chunk `e` lies in a blob of `layout`: `(offset, length)`.
fn span(e: &ChunkExtent, layout: BlobLayout) -> (u64, u64) {
    match layout {
        BlobLayout::Stored => (e.chunk.compressed_offset, e.chunk.compressed_size.into()),
        BlobLayout::Uncompressed => (
            e.chunk.uncompressed_offset,
            e.chunk.uncompressed_size.into(),
        ),
    }
}

/// `items` cut, in their order, into runs of one blob each holding about `batch` bytes as
/// stored (a run ends once it reaches `batch`, or where the blob changes): what one request
/// of merged adjacent chunks can fetch. `chunk` gives an item's chunk.
pub fn batch_runs<'a, T>(
    items: &'a [T],
    batch: u64,
    chunk: impl Fn(&'a T) -> &'a nydus_core::model::ChunkRef,
) -> Vec<&'a [T]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for k in 0..items.len() {
        let c = chunk(&items[k]);
        if k > start && (chunk(&items[k - 1]).blob_index != c.blob_index || bytes >= batch) {
            runs.push(&items[start..k]);
            start = k;
            bytes = 0;
        }
        bytes += u64::from(c.compressed_size);
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

impl ChunkReader {
    /// A reader of the blobs of `blobs` (a bootstrap's blob table, ids resolved) through
    /// `backend`.
    pub fn new(blobs: &[BlobInfo], backend: Arc<dyn Backend>, opts: ReaderOptions) -> Self {
        ChunkReader {
            blobs: blobs.to_vec(),
            backend,
            opened: blobs.iter().map(|_| Mutex::new(None)).collect(),
            cache: None,
            memory: (opts.memory_bytes > 0).then(|| {
                Mutex::new(Memory {
                    lru: LruCache::unbounded(),
                    bytes: 0,
                    limit: opts.memory_bytes,
                })
            }),
            flights: Mutex::new(HashMap::new()),
            opts,
            stats: ReaderStats::default(),
        }
    }

    /// Keeps fetched chunks in the blob cache `cache` (and serves them from it).
    pub fn with_cache(mut self, cache: BlobCache) -> Self {
        self.cache = Some(cache);
        self
    }

    pub fn blobs(&self) -> &[BlobInfo] {
        &self.blobs
    }
    pub fn stats(&self) -> &ReaderStats {
        &self.stats
    }
    pub fn cache(&self) -> Option<&BlobCache> {
        self.cache.as_ref()
    }
    pub fn options(&self) -> &ReaderOptions {
        &self.opts
    }

    fn lock_flights(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Flight>>> {
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn blob_err(&self, index: u32, kind: ReadErrorKind) -> ReadError {
        ReadError {
            blob: self
                .blobs
                .get(index as usize)
                .map_or_else(|| format!("#{index}"), |b| b.blob_id.clone()),
            from: None,
            chunk: None,
            kind,
        }
    }

    /// The store of blob `index`, opened on first use (a failure is not remembered: the next
    /// read tries again).
    pub fn open_blob(&self, index: u32) -> Result<OpenBlob, ReadError> {
        let slot = self.opened.get(index as usize).ok_or_else(|| {
            self.blob_err(
                index,
                ReadErrorKind::NoSuchBlob {
                    index,
                    blobs: self.blobs.len(),
                },
            )
        })?;
        let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = g.as_ref() {
            return Ok(b.clone());
        }
        let info = &self.blobs[index as usize];
        let b = self
            .backend
            .open(&info.blob_id, index, self.blobs.len())
            .map_err(|e| self.blob_err(index, ReadErrorKind::Store(Box::new(e))))?;
        *g = Some(b.clone());
        Ok(b)
    }

    /// The verified uncompressed bytes of each chunk of `want`, in order.
    pub fn fetch(&self, want: &[ChunkExtent]) -> Vec<Result<Chunk, ReadError>> {
        let mut out: Vec<Option<Result<Chunk, ReadError>>> = vec![None; want.len()];
        let key = |e: &ChunkExtent| (e.chunk.blob_index, e.chunk.index, e.chunk.digest);
        let mut todo = Vec::new();
        for (i, e) in want.iter().enumerate() {
            if let Some(m) = &self.memory {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(v) = m.lru.get(&key(e)) {
                    out[i] = Some(Ok(v.clone()));
                    self.stats.memory_hits.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            if let Some(v) = self.cached_on_disk(e) {
                out[i] = Some(Ok(v));
                continue;
            }
            todo.push(i);
        }
        // Claim the chunks nobody is fetching; wait for the others after fetching ours.
        let mut owned = Owned {
            reader: self,
            flights: Vec::new(),
        };
        let mut mine = Vec::new();
        let mut waits = Vec::new();
        {
            let mut flights = self.lock_flights();
            for i in todo {
                let k = key(&want[i]);
                match flights.get(&k) {
                    Some(f) => waits.push((i, f.clone())),
                    None => {
                        let f = Arc::new(Flight::default());
                        flights.insert(k, f.clone());
                        owned.flights.push((k, f));
                        mine.push(i);
                    }
                }
            }
        }
        for batch in self.batches(want, &mine) {
            for (i, r) in self.fetch_batch(want, &batch) {
                let r = r.map(|v| {
                    let v: Chunk = Arc::new(v);
                    if let Some(m) = &self.memory {
                        m.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .put(key(&want[i]), v.clone());
                    }
                    v
                });
                owned.finish(&key(&want[i]), r.clone());
                out[i] = Some(r);
            }
        }
        drop(owned);
        for (i, f) in waits {
            self.stats.shared_fetches.fetch_add(1, Ordering::Relaxed);
            out[i] = Some(f.wait());
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ReadError {
                        blob: String::new(),
                        from: None,
                        chunk: None,
                        kind: ReadErrorKind::Abandoned,
                    })
                })
            })
            .collect()
    }

    /// A verified chunk from the on-disk cache.
    fn cached_on_disk(&self, e: &ChunkExtent) -> Option<Chunk> {
        let cache = self.cache.as_ref()?;
        let v = match cache.get(&e.chunk) {
            Lookup::Miss => return None,
            Lookup::Verified(v) => v,
            Lookup::Unverified(v) => {
                if let Err(err) = verify_chunk(&e.chunk, &v, e.digester) {
                    log::warn!(
                        "blob cache in {}: blob {} chunk {} fails verification ({err}); fetching it again",
                        cache.dir().display(),
                        self.blobs.get(e.chunk.blob_index as usize).map_or("?", |b| b.blob_id.as_str()),
                        e.chunk.index
                    );
                    cache.evict(&e.chunk);
                    return None;
                }
                cache.verified(&e.chunk);
                v
            }
        };
        self.stats.disk_hits.fetch_add(1, Ordering::Relaxed);
        let v: Chunk = Arc::new(v);
        if let Some(m) = &self.memory {
            m.lock().unwrap_or_else(|p| p.into_inner()).put(
                (e.chunk.blob_index, e.chunk.index, e.chunk.digest),
                v.clone(),
            );
        }
        Some(v)
    }

    /// Groups `mine` (indexes into `want`) into runs of one blob that one range read covers:
    /// sorted by offset, each next chunk starting at most `batch_size / 128` after the previous
    /// one ends, the whole run within `batch_size` (a single larger chunk forms its own run).
    fn batches(&self, want: &[ChunkExtent], mine: &[usize]) -> Vec<Vec<usize>> {
        let layout = |i: usize| {
            self.opened
                .get(want[i].chunk.blob_index as usize)
                .and_then(|s| s.lock().ok().and_then(|g| g.as_ref().map(|b| b.layout)))
                .unwrap_or(BlobLayout::Stored)
        };
        let mut sorted: Vec<usize> = mine.to_vec();
        // Open the blobs first so their layout decides the offsets we sort by.
        for &i in &sorted {
            let _ = self.open_blob(want[i].chunk.blob_index);
        }
        sorted.sort_by_key(|&i| (want[i].chunk.blob_index, span(&want[i], layout(i)).0));
        let max = self.opts.batch_size.max(1);
        let gap = max / 128;
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut run_start = 0u64;
        let mut run_end = 0u64;
        for i in sorted {
            let (o, l) = span(&want[i], layout(i));
            if let Some(last) = out.last_mut() {
                let prev = &want[last[0]];
                if prev.chunk.blob_index == want[i].chunk.blob_index
                    && o >= run_start
                    && o <= run_end.saturating_add(gap)
                    && o.saturating_add(l).max(run_end) - run_start <= max
                {
                    last.push(i);
                    run_end = run_end.max(o + l);
                    continue;
                }
            }
            out.push(vec![i]);
            run_start = o;
            run_end = o + l;
        }
        out
    }

    /// One range read for the chunks `batch` (indexes into `want`, one blob, sorted), then each
    /// chunk decompressed and verified.
    fn fetch_batch(
        &self,
        want: &[ChunkExtent],
        batch: &[usize],
    ) -> Vec<(usize, Result<Vec<u8>, ReadError>)> {
        let index = want[batch[0]].chunk.blob_index;
        let blob = match self.open_blob(index) {
            Ok(b) => b,
            Err(e) => return batch.iter().map(|&i| (i, Err(e.clone()))).collect(),
        };
        let spans: Vec<(u64, u64)> = batch.iter().map(|&i| span(&want[i], blob.layout)).collect();
        let start = spans[0].0;
        let end = spans.iter().map(|&(o, l)| o + l).max().unwrap_or(start);
        let mut buf = vec![0u8; (end - start) as usize];
        self.stats.backend_reads.fetch_add(1, Ordering::Relaxed);
        self.stats
            .backend_bytes
            .fetch_add(end - start, Ordering::Relaxed);
        let read = blob.store.read_at(start, &mut buf);
        let blob_id = &self.blobs[index as usize].blob_id;
        batch
            .iter()
            .zip(&spans)
            .map(|(&i, &(o, l))| {
                let e = &want[i];
                let err = |kind| ReadError {
                    blob: blob_id.clone(),
                    from: Some(blob.store.describe()),
                    chunk: Some(Box::new(chunk_id(e, blob.layout))),
                    kind,
                };
                if let Err(s) = &read {
                    return (i, Err(err(ReadErrorKind::Store(Box::new(s.clone())))));
                }
                let bytes = &buf[(o - start) as usize..(o - start + l) as usize];
                let r = match blob.layout {
                    BlobLayout::Stored => decode_chunk(bytes, e.compressor, &e.chunk, e.digester),
                    BlobLayout::Uncompressed => {
                        verify_chunk(&e.chunk, bytes, e.digester).map(|()| bytes.to_vec())
                    }
                };
                let r = r.map_err(|d| err(ReadErrorKind::Corrupt(Box::new(d))));
                if let Ok(v) = &r {
                    self.stats.chunks_fetched.fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = &self.cache {
                        c.put(&e.chunk, v);
                    }
                }
                (i, r)
            })
            .collect()
    }

    /// Fetches every chunk of `chunks` (in no particular order, on `threads` threads) and
    /// calls `f` with each one's index in `chunks` and its verified bytes or error. For readers
    /// that want whole chunks rather than file bytes: the checker, the block exporter.
    pub fn for_each_chunk<F>(&self, chunks: &[ChunkExtent], threads: usize, f: F)
    where
        F: Fn(usize, Result<Chunk, ReadError>) + Sync,
    {
        let mut order: Vec<usize> = (0..chunks.len()).collect();
        order.sort_by_key(|&i| {
            let c = &chunks[i].chunk;
            (c.blob_index, c.compressed_offset, c.uncompressed_offset)
        });
        // Runs of about one batch, in blob order, taken by the threads one at a time.
        let runs = batch_runs(&order, self.opts.batch_size, |&i| &chunks[i].chunk);
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| loop {
                    let r = next.fetch_add(1, Ordering::Relaxed);
                    let Some(run) = runs.get(r) else { break };
                    let want: Vec<ChunkExtent> = run.iter().map(|&i| chunks[i]).collect();
                    for (&i, res) in run.iter().zip(self.fetch(&want)) {
                        f(i, res);
                    }
                });
            }
        });
    }

    /// The bytes of `plan` as segments: slices of the fetched chunks (not copied) and holes.
    pub fn segments(&self, plan: &ReadPlan) -> Result<Vec<Segment>, ReadError> {
        let chunks: Vec<ChunkExtent> = plan.chunks().copied().collect();
        let mut fetched = self.fetch(&chunks).into_iter();
        let mut out = Vec::with_capacity(plan.extents.len());
        for e in &plan.extents {
            match e {
                Extent::Hole { len } => out.push(Segment::Zeros(*len)),
                Extent::Chunk(c) => {
                    let data = fetched.next().expect("one result per chunk")?;
                    let (s, t) = (c.skip as usize, c.take as usize);
                    if data.len() < s + t {
                        return Err(ReadError {
                            blob: self
                                .blobs
                                .get(c.chunk.blob_index as usize)
                                .map_or_else(String::new, |b| b.blob_id.clone()),
                            from: None,
                            chunk: Some(Box::new(chunk_id(c, BlobLayout::Stored))),
                            kind: ReadErrorKind::Corrupt(Box::new(DecodeError::Truncated {
                                what: "chunk",
                                offset: c.chunk.compressed_offset,
                                needed: (s + t) as u64,
                                available: data.len() as u64,
                            })),
                        });
                    }
                    out.push(Segment::Slice {
                        chunk: data,
                        start: s,
                        len: t,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Appends the bytes of `plan` to `out` (holes as zeros).
    pub fn read(&self, plan: &ReadPlan, out: &mut Vec<u8>) -> Result<(), ReadError> {
        let segments = self.segments(plan)?;
        out.reserve(plan.len as usize);
        for s in slices(&segments) {
            out.extend_from_slice(s);
        }
        Ok(())
    }

    /// The bytes of `plan` in a new vector.
    pub fn read_to_vec(&self, plan: &ReadPlan) -> Result<Vec<u8>, ReadError> {
        let mut v = Vec::new();
        self.read(plan, &mut v)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::local::Localfs;
    use crate::store::{BlobStore, LocalFile};
    use crate::testimg::{image, Img, CS};
    use nydus_core::rafs::Rafs;

    #[test]
    fn a_read_error_in_detail_leaves_the_blob_out() {
        let mut e = ReadError {
            blob: "b1".into(),
            from: Some("/d/b1".into()),
            chunk: Some(Box::new(ChunkId {
                index: 2,
                digest: "ab".into(),
                offset: 16,
            })),
            kind: ReadErrorKind::Abandoned,
        };
        let detail = "/d/b1: chunk 2 (digest ab, at offset 0x10): the fetch was abandoned";
        assert_eq!(
            e.to_string(),
            "blob b1 (/d/b1): chunk 2 (digest ab, at offset 0x10): the fetch was abandoned"
        );
        assert_eq!(e.detail(), detail);
        e.from = None;
        e.chunk = None;
        assert_eq!(e.to_string(), "blob b1: the fetch was abandoned");
        assert_eq!(e.detail(), "the fetch was abandoned");
    }

    fn reader(img: &Img, opts: ReaderOptions) -> ChunkReader {
        ChunkReader::new(
            &img.blobs,
            Arc::new(Localfs::dir(img.dir.path().into())),
            opts,
        )
    }

    fn plan(boot: &Rafs<Vec<u8>>, path: &str, o: u64, l: u64) -> ReadPlan {
        let nid = boot.lookup(path.as_bytes()).unwrap().unwrap();
        boot.plan(nid, o, l).unwrap()
    }

    #[test]
    fn plans_read_back_the_source_bytes() {
        let img = image(&[6, 3 * CS as usize + 17, 20 * CS as usize]);
        let r = reader(&img, ReaderOptions::default());
        for (p, data) in &img.files {
            let n = data.len() as u64;
            for (o, l) in [(0, n), (1, 5), (n / 2, n), (n.saturating_sub(3), 10)] {
                let got = r.read_to_vec(&plan(&img.boot, p, o, l)).unwrap();
                let s = (o as usize).min(data.len());
                let e = ((o + l) as usize).min(data.len());
                assert_eq!(got, &data[s..e], "{p} {o}+{l}");
            }
        }
    }

    #[test]
    fn adjacent_chunks_are_one_range_read() {
        let img = image(&[20 * CS as usize]);
        let r = reader(
            &img,
            ReaderOptions {
                memory_bytes: 0,
                ..Default::default()
            },
        );
        let p = plan(&img.boot, "/f000", 0, u64::MAX);
        assert_eq!(p.chunks().count(), 20);
        r.read_to_vec(&p).unwrap();
        assert_eq!(r.stats().backend_reads.load(Ordering::Relaxed), 1);
        assert_eq!(r.stats().chunks_fetched.load(Ordering::Relaxed), 20);
        // A small batch size splits the run.
        let r = reader(
            &img,
            ReaderOptions {
                batch_size: 3 * 1024,
                memory_bytes: 0,
            },
        );
        r.read_to_vec(&p).unwrap();
        assert!(r.stats().backend_reads.load(Ordering::Relaxed) > 1);
    }

    #[test]
    fn a_corrupted_chunk_is_an_error_naming_it_and_nothing_else_fails() {
        let img = image(&[4 * CS as usize, 2 * CS as usize]);
        let p0 = plan(&img.boot, "/f000", 0, u64::MAX);
        let victim = p0.chunks().nth(2).unwrap().chunk;
        let mut blob = std::fs::read(&img.blob_path).unwrap();
        blob[victim.compressed_offset as usize + 3] ^= 0x20;
        std::fs::write(&img.blob_path, blob).unwrap();
        let r = reader(&img, ReaderOptions::default());
        let e = r.read_to_vec(&p0).unwrap_err();
        assert_eq!(e.blob, img.blobs[0].blob_id);
        assert_eq!(e.chunk.as_ref().unwrap().index, victim.index);
        assert!(matches!(e.kind, ReadErrorKind::Corrupt(_)), "{e}");
        assert!(e.to_string().contains(&victim.digest.to_hex()), "{e}");
        // The first two chunks and the other file read fine.
        assert!(r
            .read_to_vec(&plan(&img.boot, "/f000", 0, 2 * CS as u64))
            .is_ok());
        assert!(r
            .read_to_vec(&plan(&img.boot, "/f001", 0, u64::MAX))
            .is_ok());
    }

    /// A store that takes its time, so concurrent readers overlap.
    #[derive(Debug)]
    struct Slow(LocalFile);
    impl BlobStore for Slow {
        fn describe(&self) -> String {
            self.0.describe()
        }
        fn size(&self) -> Result<u64, StoreError> {
            self.0.size()
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
            std::thread::sleep(Duration::from_millis(200));
            self.0.read_at(offset, buf)
        }
        fn exists(&self) -> Result<bool, StoreError> {
            Ok(true)
        }
    }
    #[derive(Debug)]
    struct SlowBackend(std::path::PathBuf);
    impl Backend for SlowBackend {
        fn open(&self, _: &str, _: u32, _: usize) -> Result<OpenBlob, StoreError> {
            Ok(OpenBlob {
                store: Arc::new(Slow(LocalFile::open(&self.0)?)),
                layout: BlobLayout::Stored,
            })
        }
        fn describe(&self) -> String {
            "slow".into()
        }
    }

    #[test]
    fn a_chunk_wanted_by_many_threads_is_fetched_once() {
        let img = image(&[CS as usize]);
        let r = ChunkReader::new(
            &img.blobs,
            Arc::new(SlowBackend(img.blob_path.clone())),
            ReaderOptions::default(),
        );
        let p = plan(&img.boot, "/f000", 0, u64::MAX);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| assert_eq!(r.read_to_vec(&p).unwrap(), img.files[0].1));
            }
        });
        assert_eq!(r.stats().backend_reads.load(Ordering::Relaxed), 1);
        assert_eq!(r.stats().chunks_fetched.load(Ordering::Relaxed), 1);
        assert!(r.stats().shared_fetches.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn the_disk_cache_serves_a_second_reader_and_catches_damage() {
        let img = image(&[5 * CS as usize]);
        let work = tempfile::tempdir().unwrap();
        let p = plan(&img.boot, "/f000", 0, u64::MAX);
        let opts = ReaderOptions {
            memory_bytes: 0,
            ..Default::default()
        };
        let r = reader(&img, opts).with_cache(BlobCache::new(work.path(), &img.blobs).unwrap());
        assert_eq!(r.read_to_vec(&p).unwrap(), img.files[0].1);
        assert!(r.cache().unwrap().complete(0));
        // A new reader whose backend has no blobs at all reads everything from the cache.
        let empty = tempfile::tempdir().unwrap();
        let r2 = ChunkReader::new(
            &img.blobs,
            Arc::new(Localfs::dir(empty.path().into())),
            opts,
        )
        .with_cache(BlobCache::new(work.path(), &img.blobs).unwrap());
        assert_eq!(r2.read_to_vec(&p).unwrap(), img.files[0].1);
        assert_eq!(r2.stats().backend_reads.load(Ordering::Relaxed), 0);
        assert_eq!(r2.stats().disk_hits.load(Ordering::Relaxed), 5);
        // Damage a cached chunk: the next process refetches it from the backend.
        let data = work
            .path()
            .join(format!("{}.blob.data", img.blobs[0].blob_id));
        let mut bytes = std::fs::read(&data).unwrap();
        bytes[CS as usize + 1] ^= 1;
        std::fs::write(&data, bytes).unwrap();
        let r3 = reader(&img, opts).with_cache(BlobCache::new(work.path(), &img.blobs).unwrap());
        assert_eq!(r3.read_to_vec(&p).unwrap(), img.files[0].1);
        assert_eq!(r3.stats().chunks_fetched.load(Ordering::Relaxed), 1);
        assert_eq!(r3.stats().disk_hits.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn an_uncompressed_blob_image_is_read_at_uncompressed_offsets() {
        let img = image(&[3 * CS as usize + 5]);
        let work = tempfile::tempdir().unwrap();
        let p = plan(&img.boot, "/f000", 0, u64::MAX);
        // Fill a cache, then serve its .blob.data as the blob itself.
        reader(&img, ReaderOptions::default())
            .with_cache(BlobCache::new(work.path(), &img.blobs).unwrap())
            .read_to_vec(&p)
            .unwrap();
        std::fs::remove_file(
            work.path()
                .join(format!("{}.chunk_map", img.blobs[0].blob_id)),
        )
        .unwrap();
        let r = ChunkReader::new(
            &img.blobs,
            Arc::new(Localfs::dir(work.path().into())),
            ReaderOptions::default(),
        );
        assert_eq!(r.open_blob(0).unwrap().layout, BlobLayout::Uncompressed);
        assert_eq!(r.read_to_vec(&p).unwrap(), img.files[0].1);
    }

    #[test]
    fn every_chunk_of_a_list_is_fetched_once_with_its_own_result() {
        let img = image(&[6 * CS as usize, 3 * CS as usize]);
        let all: Vec<ChunkExtent> = ["/f000", "/f001"]
            .iter()
            .flat_map(|p| {
                plan(&img.boot, p, 0, u64::MAX)
                    .chunks()
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect();
        let victim = all[4].chunk;
        let mut blob = std::fs::read(&img.blob_path).unwrap();
        blob[victim.compressed_offset as usize] ^= 0x55;
        std::fs::write(&img.blob_path, blob).unwrap();
        let r = reader(&img, ReaderOptions::default());
        let seen = Mutex::new(vec![None; all.len()]);
        r.for_each_chunk(&all, 3, |i, res| {
            seen.lock().unwrap()[i] = Some(res.map(|d| d.len()));
        });
        let seen = seen.into_inner().unwrap();
        for (i, s) in seen.iter().enumerate() {
            match s {
                Some(Ok(n)) => assert_eq!(*n, CS as usize, "chunk {i}"),
                Some(Err(e)) => {
                    assert_eq!(i, 4, "{e}");
                    assert_eq!(e.chunk.as_ref().unwrap().index, victim.index);
                }
                None => panic!("chunk {i} not reported"),
            }
        }
        assert!(seen[4].as_ref().unwrap().is_err());
    }

    #[test]
    fn a_missing_blob_names_it() {
        let img = image(&[10]);
        std::fs::remove_file(&img.blob_path).unwrap();
        let r = reader(&img, ReaderOptions::default());
        let e = r.read_to_vec(&plan(&img.boot, "/f000", 0, 10)).unwrap_err();
        assert!(
            matches!(&e.kind, ReadErrorKind::Store(s) if s.kind == crate::store::StoreErrorKind::NotFound)
        );
        assert!(e.to_string().contains(&img.blobs[0].blob_id), "{e}");
    }
}
