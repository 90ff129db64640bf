//! The parallel data pipeline of a build: one reader thread cuts files into chunks, worker
//! threads digest and compress them ([`nydus_core::chunk::process_chunk`] is pure), and the
//! calling thread receives the results strictly in input order, so the blob is the same bytes
//! whatever the thread count.
//!
//! Memory is bounded: the reader needs a credit (a reusable chunk buffer) for every chunk it
//! reads, and a credit returns only when the chunk has been delivered in order. At most
//! `credits` chunks (raw + stored) exist at once, whatever the input size.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use nydus_core::chunk::{compress_chunk, duplicate_chunk, fingerprint, ChunkParams, Processed};
use nydus_core::digest::Digest;

/// One file to read, in blob order.
#[derive(Debug, Clone)]
pub struct FileJob {
    /// Caller's identifier (a tree node id).
    pub id: usize,
    pub path: PathBuf,
    /// Size recorded at walk time; the file must still have exactly this size.
    pub size: u64,
}

/// A processed chunk delivered to the sink.
#[derive(Debug)]
pub struct Delivered<'a> {
    pub id: usize,
    /// Index of the chunk within its file.
    pub index_in_file: u32,
    /// The uncompressed bytes.
    pub raw: &'a [u8],
    pub processed: Processed,
}

struct Job {
    seq: u64,
    id: usize,
    index_in_file: u32,
    data: Vec<u8>,
}

struct Done {
    seq: u64,
    id: usize,
    index_in_file: u32,
    data: Vec<u8>,
    result: Result<Processed>,
}

/// Runs the pipeline over `files`, calling `sink` once per chunk in order.
pub fn run(
    files: Vec<FileJob>,
    chunk_size: u32,
    params: ChunkParams,
    threads: usize,
    sink: impl FnMut(Delivered<'_>) -> Result<()>,
) -> Result<()> {
    run_source(
        |feeder| read_files(files, feeder),
        chunk_size,
        params,
        threads,
        sink,
    )
}

/// Runs the pipeline over whatever `producer` feeds (on the reader thread, in blob order),
/// calling `sink` once per chunk in order. Returns the producer's result.
pub fn run_source<T: Send>(
    producer: impl FnOnce(&mut Feeder) -> Result<T> + Send,
    chunk_size: u32,
    params: ChunkParams,
    threads: usize,
    mut sink: impl FnMut(Delivered<'_>) -> Result<()>,
) -> Result<T> {
    let threads = threads.max(1);
    let credits = (threads * 4).max(4);
    let (credit_tx, credit_rx) = bounded::<Vec<u8>>(credits);
    for _ in 0..credits {
        credit_tx
            .send(Vec::new())
            .expect("credit channel sized for all credits");
    }
    let (job_tx, job_rx) = bounded::<Job>(credits);
    let (done_tx, done_rx) = bounded::<Done>(credits);

    let first: FirstSeen = Mutex::new(HashMap::new());
    std::thread::scope(|scope| -> Result<T> {
        let reader = scope.spawn(move || {
            let mut feeder = Feeder {
                credits: credit_rx,
                jobs: job_tx,
                seq: 0,
                chunk_size: chunk_size as usize,
                spare: None,
            };
            producer(&mut feeder)
        });
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            let first = &first;
            scope.spawn(move || work(job_rx, done_tx, &params, first));
        }
        drop(done_tx);
        drop(job_rx);

        let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next = 0u64;
        let mut outcome: Result<()> = Ok(());
        for done in done_rx.iter() {
            pending.insert(done.seq, done);
            while let Some(d) = pending.remove(&next) {
                next += 1;
                if outcome.is_ok() {
                    outcome = d.result.and_then(|processed| {
                        sink(Delivered {
                            id: d.id,
                            index_in_file: d.index_in_file,
                            raw: &d.data,
                            processed,
                        })
                    });
                }
                let _ = credit_tx.send(d.data);
            }
            if outcome.is_err() {
                break;
            }
        }
        // Dropping the credit sender unblocks a reader waiting for credits after a failure.
        drop(credit_tx);
        drop(done_rx);
        let read = reader
            .join()
            .map_err(|_| anyhow!("the reader thread panicked"))?;
        outcome?;
        let value = read?;
        if !pending.is_empty() {
            bail!(
                "internal error: {} chunks were not delivered",
                pending.len()
            );
        }
        Ok(value)
    })
}

/// The reader side of the pipeline: cuts data into chunks and queues them, waiting for a free
/// buffer (credit) before each chunk, which is what bounds memory.
#[derive(Debug)]
pub struct Feeder {
    credits: Receiver<Vec<u8>>,
    jobs: Sender<Job>,
    seq: u64,
    chunk_size: usize,
    spare: Option<Vec<u8>>,
}

impl Feeder {
    /// Cuts everything `r` yields into chunks for item `id`; returns the byte count. Fails if
    /// the pipeline stopped (the consumer failed) or reading fails (`name` says what).
    pub fn feed(&mut self, id: usize, r: &mut dyn Read, name: &dyn Fn() -> String) -> Result<u64> {
        let mut total = 0u64;
        let mut index_in_file = 0u32;
        loop {
            let mut buf = match self.spare.take() {
                Some(b) => b,
                None => self
                    .credits
                    .recv()
                    .map_err(|_| anyhow!("the build stopped"))?,
            };
            buf.clear();
            buf.resize(self.chunk_size, 0);
            let mut n = 0;
            while n < buf.len() {
                match r.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(anyhow!("reading {}: {e}", name())),
                }
            }
            if n == 0 {
                // Keep the credit for the next item instead of leaking it.
                self.spare = Some(buf);
                return Ok(total);
            }
            buf.truncate(n);
            total += n as u64;
            let job = Job {
                seq: self.seq,
                id,
                index_in_file,
                data: buf,
            };
            self.jobs
                .send(job)
                .map_err(|_| anyhow!("the build stopped"))?;
            self.seq += 1;
            index_in_file += 1;
            if n < self.chunk_size {
                return Ok(total);
            }
        }
    }
}

fn read_files(files: Vec<FileJob>, feeder: &mut Feeder) -> Result<()> {
    for f in files {
        let file = File::open(&f.path).with_context(|| format!("opening {}", f.path.display()))?;
        // Read exactly the size recorded at walk time: a file that grew is cut, one that
        // shrank is an error (its chunks would not match the tree).
        let mut limited = file.take(f.size);
        let name = || f.path.display().to_string();
        let n = feeder.feed(f.id, &mut limited, &name)?;
        if n != f.size {
            bail!(
                "{} shrank while it was being read (expected {} bytes, got {n})",
                f.path.display(),
                f.size
            );
        }
    }
    Ok(())
}

/// First sequence number seen for each chunk content, shared by the workers: a chunk whose
/// content already appeared at an earlier position will be deduplicated by the blob writer, so
/// it is not compressed at all. Output bytes do not depend on which worker gets there first.
type FirstSeen = Mutex<HashMap<(Digest, u32), u64>>;

fn work(jobs: Receiver<Job>, done: Sender<Done>, params: &ChunkParams, first: &FirstSeen) {
    for j in jobs.iter() {
        let result = fingerprint(&j.data, params)
            .and_then(|(digest, crc)| {
                let key = (digest, j.data.len() as u32);
                let earlier = {
                    let mut m = first.lock().unwrap_or_else(|p| p.into_inner());
                    let s = m.entry(key).or_insert(j.seq);
                    let earlier = *s < j.seq;
                    *s = (*s).min(j.seq);
                    earlier
                };
                if earlier {
                    Ok(duplicate_chunk(&j.data, digest, crc))
                } else {
                    compress_chunk(&j.data, digest, crc, params)
                }
            })
            .map_err(anyhow::Error::new);
        if done
            .send(Done {
                seq: j.seq,
                id: j.id,
                index_in_file: j.index_in_file,
                data: j.data,
                result,
            })
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nydus_core::digest::Digester;
    use nydus_core::model::Compressor;

    #[test]
    fn delivers_in_order_with_many_threads() {
        let d = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..20usize {
            let p = d.path().join(format!("f{i}"));
            let data: Vec<u8> = (0..(i * 5000 + 1)).map(|x| (x * 7 + i) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            files.push(FileJob {
                id: i,
                path: p,
                size: data.len() as u64,
            });
        }
        let params = ChunkParams {
            compressor: Compressor::Zstd,
            digester: Digester::Blake3,
        };
        let mut seen = Vec::new();
        run(files, 4096, params, 4, |c| {
            seen.push((c.id, c.index_in_file, c.raw.len()));
            Ok(())
        })
        .unwrap();
        let mut expect = Vec::new();
        for i in 0..20usize {
            let size = i * 5000 + 1;
            for k in 0..size.div_ceil(4096) {
                expect.push((i, k as u32, (size - k * 4096).min(4096)));
            }
        }
        assert_eq!(seen, expect);
    }

    #[test]
    fn many_files_of_exactly_one_chunk_do_not_exhaust_credits() {
        let d = tempfile::tempdir().unwrap();
        let files: Vec<FileJob> = (0..50usize)
            .map(|i| {
                let p = d.path().join(format!("f{i}"));
                std::fs::write(&p, vec![i as u8; 4096]).unwrap();
                FileJob {
                    id: i,
                    path: p,
                    size: 4096,
                }
            })
            .collect();
        let params = ChunkParams {
            compressor: Compressor::None,
            digester: Digester::Blake3,
        };
        let mut n = 0;
        run(files, 4096, params, 1, |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 50);
    }

    #[test]
    fn shrunken_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("short");
        std::fs::write(&p, b"abc").unwrap();
        let files = vec![FileJob {
            id: 0,
            path: p,
            size: 10,
        }];
        let params = ChunkParams {
            compressor: Compressor::None,
            digester: Digester::Blake3,
        };
        let e = run(files, 4096, params, 2, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("short"), "{e}");
    }
}
