//! Background prefetch: the chunks of the bootstrap's prefetch table first, then (when asked)
//! every chunk of the image, fetched into the reader's caches while the image is served.
//!
//! User reads always go first: a prefetch thread waits while any user read is in progress.
//! A bandwidth limit (bytes per second of chunks as stored, 0 for none) spaces the requests.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nydus_core::error::DecodeError;
use nydus_core::model::{ChunkRef, FileType};
use nydus_core::read::{prefetch, walk, ChunkExtent, Filesystem, ReadPlan};
use nydus_host_storage::reader::batch_runs;
use nydus_host_storage::ChunkReader;

/// What to prefetch, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchOptions {
    /// After the prefetch table, every chunk of the image.
    pub all: bool,
    /// Threads fetching at once.
    pub threads: usize,
    /// Bytes per second (as stored) at most; 0: no limit.
    pub bandwidth: u64,
}

impl Default for PrefetchOptions {
    fn default() -> Self {
        PrefetchOptions {
            all: false,
            threads: 2,
            bandwidth: 0,
        }
    }
}

/// What a prefetch did so far.
#[derive(Debug, Default)]
pub struct PrefetchState {
    pub planned_chunks: AtomicU64,
    pub fetched_chunks: AtomicU64,
    pub failed_chunks: AtomicU64,
    pub done: AtomicBool,
}

/// A running prefetch.
#[derive(Debug)]
pub struct Prefetch {
    pub state: Arc<PrefetchState>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Prefetch {
    /// Stops the prefetch threads and waits for them.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The chunks to prefetch, in order: the prefetch table's files (directories: every file
/// below), then with `all` every other chunk in blob order; each chunk once.
pub fn chunks<F: Filesystem + ?Sized>(fs: &F, all: bool) -> Result<Vec<ChunkRef>, DecodeError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |seen: &mut HashSet<ChunkKey>, nid: u64| -> Result<(), DecodeError> {
        for c in fs.all_chunks(nid)? {
            if seen.insert((c.chunk.blob_index, c.chunk.index, c.chunk.digest)) {
                out.push(c.chunk);
            }
        }
        Ok(())
    };
    for nid in prefetch(fs)? {
        // A table entry is a file or a directory (everything below it).
        let mut stack = vec![nid];
        let mut dirs = HashSet::new();
        while let Some(n) = stack.pop() {
            let i = fs.inode(n)?;
            match i.file_type {
                FileType::Regular => add(&mut seen, n)?,
                FileType::Directory if dirs.insert(n) => {
                    stack.extend(fs.read_dir(n)?.into_iter().rev().map(|e| e.nid))
                }
                _ => {}
            }
        }
    }
    if all {
        if let Some(rest) = every_chunk(fs, &mut seen, usize::MAX)? {
            out.extend(rest);
        }
    }
    Ok(out)
}

/// Identifies a chunk of an image (two files sharing a chunk share it).
type ChunkKey = (u32, u32, nydus_core::digest::Digest);

/// Every chunk of the image's regular files not in `seen` (added to it), each once, sorted by
/// blob and stored offset; `None` once there are more than `limit`.
pub fn every_chunk<F: Filesystem + ?Sized>(
    fs: &F,
    seen: &mut HashSet<ChunkKey>,
    limit: usize,
) -> Result<Option<Vec<ChunkRef>>, DecodeError> {
    let mut out = Vec::new();
    let mut over = false;
    walk(fs, &mut |_, i| {
        if over || i.file_type != FileType::Regular || i.size == 0 {
            return Ok(());
        }
        for c in fs.all_chunks(i.nid)? {
            if seen.insert((c.chunk.blob_index, c.chunk.index, c.chunk.digest)) {
                out.push(c.chunk);
            }
        }
        over = out.len() > limit;
        Ok(())
    })?;
    if over {
        return Ok(None);
    }
    out.sort_by_key(|c| (c.blob_index, c.compressed_offset, c.uncompressed_offset));
    Ok(Some(out))
}

/// Spaces requests to at most `rate` bytes a second.
#[derive(Debug)]
struct Throttle {
    rate: u64,
    start: Instant,
    sent: Mutex<u64>,
}

impl Throttle {
    fn wait(&self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let due = {
            let mut s = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            *s += bytes;
            Duration::from_secs_f64(*s as f64 / self.rate as f64)
        };
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Starts prefetching `fs`'s chunks through `reader` on background threads; `busy` counts the
/// user reads in progress.
pub fn start<F: Filesystem + Send + Sync + 'static>(
    fs: Arc<F>,
    reader: Arc<ChunkReader>,
    busy: Arc<AtomicUsize>,
    o: PrefetchOptions,
) -> Prefetch {
    let state = Arc::new(PrefetchState::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (st, sp) = (state.clone(), stop.clone());
    let handle = std::thread::Builder::new()
        .name("prefetch".into())
        .spawn(move || run(&*fs, &reader, &busy, o, &st, &sp))
        .ok();
    Prefetch {
        state,
        stop,
        handle,
    }
}

fn run<F: Filesystem + Sync>(
    fs: &F,
    reader: &ChunkReader,
    busy: &AtomicUsize,
    o: PrefetchOptions,
    state: &PrefetchState,
    stop: &AtomicBool,
) {
    let t0 = Instant::now();
    let list = match chunks(fs, o.all).and_then(|c| ReadPlan::whole_chunks(&c, reader.blobs())) {
        Ok(p) => p.chunks().copied().collect::<Vec<ChunkExtent>>(),
        Err(e) => {
            log::error!("prefetch: the bootstrap cannot be read: {e}");
            state.done.store(true, Ordering::SeqCst);
            return;
        }
    };
    state
        .planned_chunks
        .store(list.len() as u64, Ordering::Relaxed);
    // Runs of about one batch of one blob, taken by the threads in order.
    let runs = batch_runs(&list, reader.options().batch_size, |e| &e.chunk);
    let throttle = Throttle {
        rate: o.bandwidth,
        start: Instant::now(),
        sent: Mutex::new(0),
    };
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..o.threads.max(1) {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                while busy.load(Ordering::SeqCst) > 0 && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                throttle.wait(run.iter().map(|e| u64::from(e.chunk.compressed_size)).sum());
                for r in reader.fetch(run) {
                    match r {
                        Ok(_) => state.fetched_chunks.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            log::warn!("prefetch: {e}");
                            state.failed_chunks.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
    });
    state.done.store(true, Ordering::SeqCst);
    log::info!(
        "prefetch done: {} chunks fetched, {} failed, in {:.2} s",
        state.fetched_chunks.load(Ordering::Relaxed),
        state.failed_chunks.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_spaces_requests() {
        let t = Throttle {
            rate: 1000,
            start: Instant::now(),
            sent: Mutex::new(0),
        };
        let t0 = Instant::now();
        t.wait(100);
        t.wait(100);
        assert!(t0.elapsed() >= Duration::from_millis(190));
        let free = Throttle {
            rate: 0,
            start: Instant::now(),
            sent: Mutex::new(0),
        };
        let t0 = Instant::now();
        free.wait(1 << 40);
        assert!(t0.elapsed() < Duration::from_millis(50));
    }
}
