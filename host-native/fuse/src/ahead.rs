//! Read-ahead of big files: when a read is served, the chunks of the next stretch of the
//! file that are not cached yet are fetched on background threads, so a sequential reader
//! finds them ready instead of waiting for the backend at every chunk.
//!
//! Jobs are dropped when the queue is full (read-ahead never delays a read), a chunk already
//! queued is not queued again, and the threads end when the filesystem is dropped.

use std::collections::HashSet;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use nydus_core::read::ChunkExtent;
use nydus_host_storage::ChunkReader;

/// Jobs waiting at most.
const QUEUE: usize = 8;

type Key = (u32, u32);

/// The read-ahead threads and their queue.
#[derive(Debug)]
pub struct ReadAhead {
    tx: SyncSender<Vec<ChunkExtent>>,
    queued: Arc<Mutex<HashSet<Key>>>,
}

fn key(e: &ChunkExtent) -> Key {
    (e.chunk.blob_index, e.chunk.index)
}

impl ReadAhead {
    /// `threads` threads fetching through `reader`.
    pub fn start(reader: Arc<ChunkReader>, threads: usize) -> ReadAhead {
        let (tx, rx) = sync_channel::<Vec<ChunkExtent>>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(Mutex::new(HashSet::new()));
        for i in 0..threads.max(1) {
            let (rx, reader, queued) = (rx.clone(), reader.clone(), queued.clone());
            let _ = std::thread::Builder::new()
                .name(format!("readahead-{i}"))
                .spawn(move || worker(&rx, &reader, &queued));
        }
        ReadAhead { tx, queued }
    }

    /// Queues the chunks of `job` not queued already; dropped if the queue is full.
    pub fn submit(&self, job: Vec<ChunkExtent>) {
        let job: Vec<ChunkExtent> = {
            let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            job.into_iter().filter(|e| q.insert(key(e))).collect()
        };
        if job.is_empty() {
            return;
        }
        if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
            self.tx.try_send(job)
        {
            let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            for e in &job {
                q.remove(&key(e));
            }
        }
    }
}

fn worker(
    rx: &Mutex<Receiver<Vec<ChunkExtent>>>,
    reader: &ChunkReader,
    queued: &Mutex<HashSet<Key>>,
) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        for r in reader.fetch(&job) {
            if let Err(e) = r {
                log::debug!("read-ahead: {e}");
            }
        }
        let mut q = queued.lock().unwrap_or_else(|p| p.into_inner());
        for e in &job {
            q.remove(&key(e));
        }
    }
}
