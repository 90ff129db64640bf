//! Reading many plans in order, on all cores: the unpacker, the checker and `nydusify check`
//! want every file's bytes one file after another, while fetching, decompressing and verifying
//! chunks is work for several threads. A producer thread plans and cuts the jobs into units of
//! about [`AheadOptions::unit_bytes`], worker threads carry the units out through one
//! [`ChunkReader`], and the caller receives the pieces strictly in job order. At most
//! [`AheadOptions::window`] units exist at once, so memory does not grow with the input.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use nydus_core::error::DecodeError;
use nydus_core::read::{Extent, ReadPlan};

use crate::reader::{slices, ChunkReader, ReadError, Segment};

/// Why a job produced no (or not all) bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The job could not be planned (its chunk records are damaged).
    Plan(DecodeError),
    /// A chunk could not be read.
    Read(ReadError),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Plan(e) => write!(f, "{e}"),
            JobError::Read(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for JobError {}

/// How [`read_ahead`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AheadOptions {
    /// Worker threads.
    pub threads: usize,
    /// Bytes a unit aims at (a unit holds at least one extent).
    pub unit_bytes: u64,
    /// Units in flight at most (planned, being read, or waiting to be consumed).
    pub window: usize,
}

impl Default for AheadOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        AheadOptions {
            threads,
            unit_bytes: 1 << 20,
            window: 4 * threads + 4,
        }
    }
}

/// Some bytes of a job, in order.
#[derive(Debug)]
pub struct Piece {
    /// Index of the job in the input sequence.
    pub job: usize,
    /// The bytes (slices of fetched chunks, and holes), or why they could not be produced.
    pub data: Result<Vec<Segment>, JobError>,
    /// This is the job's last piece.
    pub last: bool,
}

struct Unit {
    seq: u64,
    job: usize,
    last: bool,
    work: Result<ReadPlan, JobError>,
}

/// The pieces of all jobs, in order ([`read_ahead`] hands this to its consumer).
pub struct Pieces {
    rx: Receiver<Piece2>,
    credits: Sender<()>,
    pending: BTreeMap<u64, Piece>,
    next: u64,
}

struct Piece2(u64, Piece);

impl fmt::Debug for Pieces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pieces").field("next", &self.next).finish()
    }
}

impl Piece {
    /// The piece's bytes as slices, in order (none if it failed).
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.data.as_deref().map(slices).into_iter().flatten()
    }
}

impl Pieces {
    /// The next piece in order, or `None` after the last job's last piece.
    pub fn next_piece(&mut self) -> Option<Piece> {
        loop {
            if let Some(p) = self.pending.remove(&self.next) {
                self.next += 1;
                let _ = self.credits.send(());
                return Some(p);
            }
            match self.rx.recv() {
                Ok(Piece2(seq, p)) => {
                    self.pending.insert(seq, p);
                }
                Err(_) => return None,
            }
        }
    }

    /// Hands the bytes of the next job, which must be `job`, to `f` slice by slice (without
    /// copying them); returns how many there were. A failed piece is an I/O error carrying the
    /// [`JobError`] (the job's remaining pieces are consumed first).
    pub fn for_each_slice(
        &mut self,
        job: usize,
        mut f: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<u64> {
        let mut n = 0u64;
        let mut failed = None;
        loop {
            let p = self
                .next_piece()
                .ok_or_else(|| io::Error::other("the read-ahead ended before the job did"))?;
            if p.job != job {
                return Err(io::Error::other(format!(
                    "read-ahead out of step: job {} where {job} was expected",
                    p.job
                )));
            }
            match &p.data {
                Ok(_) if failed.is_none() => {
                    for s in p.slices() {
                        f(s)?;
                        n += s.len() as u64;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    failed.get_or_insert_with(|| e.clone());
                }
            }
            if p.last {
                return match failed {
                    Some(e) => Err(io::Error::other(e)),
                    None => Ok(n),
                };
            }
        }
    }

    /// A reader of the bytes of the next job, which must be `job` (the caller walks the jobs
    /// in the order it gave them). A failed piece is an I/O error carrying the [`JobError`].
    pub fn job_reader(&mut self, job: usize) -> JobReader<'_> {
        JobReader {
            pieces: self,
            job,
            segs: Vec::new(),
            seg: 0,
            pos: 0,
            done: false,
        }
    }
}

/// [`io::Read`] over the pieces of one job.
pub struct JobReader<'a> {
    pieces: &'a mut Pieces,
    job: usize,
    /// The current piece's segments, the segment being read and the position in it.
    segs: Vec<Segment>,
    seg: usize,
    pos: u64,
    done: bool,
}

impl fmt::Debug for JobReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobReader").field("job", &self.job).finish()
    }
}

impl JobReader<'_> {
    /// Consumes what is left of the job (so the next job's pieces come next).
    pub fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink()).map(|_| ())
    }
}

impl io::Read for JobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(s) = self.segs.get(self.seg) {
                if self.pos == s.len() {
                    self.seg += 1;
                    self.pos = 0;
                    continue;
                }
                let n = (out.len() as u64).min(s.len() - self.pos) as usize;
                match s {
                    Segment::Slice { chunk, start, .. } => {
                        let from = start + self.pos as usize;
                        out[..n].copy_from_slice(&chunk[from..from + n]);
                    }
                    Segment::Zeros(_) => out[..n].fill(0),
                }
                self.pos += n as u64;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let p = self
                .pieces
                .next_piece()
                .ok_or_else(|| io::Error::other("the read-ahead ended before the job did"))?;
            if p.job != self.job {
                return Err(io::Error::other(format!(
                    "read-ahead out of step: job {} where {} was expected",
                    p.job, self.job
                )));
            }
            self.done = p.last;
            self.segs = p.data.map_err(io::Error::other)?;
            self.seg = 0;
            self.pos = 0;
        }
    }
}

/// Cuts `plan` into units of about `unit` bytes (holes into pieces of at most `unit`).
fn units(plan: ReadPlan, unit: u64) -> Vec<ReadPlan> {
    let mut out = Vec::new();
    let mut cur = ReadPlan {
        offset: plan.offset,
        len: 0,
        extents: Vec::new(),
    };
    for e in plan.extents {
        let mut pieces = Vec::new();
        match e {
            Extent::Hole { mut len } => {
                while len > unit {
                    pieces.push(Extent::Hole { len: unit });
                    len -= unit;
                }
                pieces.push(Extent::Hole { len });
            }
            chunk => pieces.push(chunk),
        }
        for p in pieces {
            if cur.len > 0 && cur.len + p.len() > unit {
                let offset = cur.offset + cur.len;
                out.push(std::mem::replace(
                    &mut cur,
                    ReadPlan {
                        offset,
                        len: 0,
                        extents: Vec::new(),
                    },
                ));
            }
            cur.len += p.len();
            cur.extents.push(p);
        }
    }
    out.push(cur);
    out
}

/// Reads the bytes of every job of `jobs` (in order) with `reader`, handing them to `consume`
/// through [`Pieces`]. Returns what `consume` returns; when it returns early, the remaining
/// work stops.
pub fn read_ahead<I, R>(
    reader: &ChunkReader,
    jobs: I,
    opts: AheadOptions,
    consume: impl FnOnce(&mut Pieces) -> R,
) -> R
where
    I: IntoIterator<Item = Result<ReadPlan, JobError>>,
    I::IntoIter: Send,
{
    let threads = opts.threads.max(1);
    let window = opts.window.max(threads + 1);
    let unit = opts.unit_bytes.max(1);
    let (credit_tx, credit_rx) = bounded::<()>(window);
    for _ in 0..window {
        let _ = credit_tx.send(());
    }
    let (work_tx, work_rx) = bounded::<Unit>(window);
    let (done_tx, done_rx) = unbounded::<Piece2>();
    let jobs = jobs.into_iter();
    std::thread::scope(|s| {
        // Producer: plans cut into units, each waiting for a credit.
        s.spawn(move || {
            let mut seq = 0u64;
            for (job, plan) in jobs.enumerate() {
                let list = match plan {
                    Ok(p) => units(p, unit).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                let n = list.len();
                for (k, work) in list.into_iter().enumerate() {
                    if credit_rx.recv().is_err() {
                        return;
                    }
                    let u = Unit {
                        seq,
                        job,
                        last: k + 1 == n,
                        work,
                    };
                    seq += 1;
                    if work_tx.send(u).is_err() {
                        return;
                    }
                }
            }
        });
        for _ in 0..threads {
            let rx = work_rx.clone();
            let tx = done_tx.clone();
            s.spawn(move || {
                for u in rx.iter() {
                    let data = u
                        .work
                        .and_then(|p| reader.segments(&p).map_err(JobError::Read));
                    let piece = Piece {
                        job: u.job,
                        data,
                        last: u.last,
                    };
                    if tx.send(Piece2(u.seq, piece)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(work_rx);
        drop(done_tx);
        let mut pieces = Pieces {
            rx: done_rx,
            credits: credit_tx,
            pending: BTreeMap::new(),
            next: 0,
        };
        let r = consume(&mut pieces);
        drop(pieces);
        r
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;

    use super::*;
    use crate::local::Localfs;
    use crate::reader::ReaderOptions;
    use crate::testimg::{image, CS};

    /// A job per file of `img`: all of its bytes.
    fn whole_files(img: &crate::testimg::Img) -> Vec<Result<ReadPlan, JobError>> {
        img.files
            .iter()
            .map(|(p, _)| {
                let nid = img.boot.lookup(p.as_bytes()).unwrap().unwrap();
                img.boot.plan(nid, 0, u64::MAX).map_err(JobError::Plan)
            })
            .collect()
    }

    #[test]
    fn jobs_come_back_whole_and_in_order() {
        let sizes: Vec<usize> = (0..40).map(|i| (i * 1777) % (9 * CS as usize)).collect();
        let img = image(&sizes);
        let r = ChunkReader::new(
            &img.blobs,
            Arc::new(Localfs::dir(img.dir.path().into())),
            ReaderOptions::default(),
        );
        let plans = whole_files(&img);
        for (threads, unit) in [(1, 1 << 20), (3, 5000), (2, 1)] {
            let opts = AheadOptions {
                threads,
                unit_bytes: unit,
                window: 5,
            };
            let got = read_ahead(&r, plans.clone(), opts, |pieces| {
                (0..img.files.len())
                    .map(|j| {
                        let mut v = Vec::new();
                        pieces.job_reader(j).read_to_end(&mut v).unwrap();
                        v
                    })
                    .collect::<Vec<_>>()
            });
            for (g, (p, want)) in got.iter().zip(&img.files) {
                assert_eq!(g, want, "{p} threads {threads} unit {unit}");
            }
        }
    }

    #[test]
    fn a_failed_job_is_reported_and_the_others_go_on() {
        let img = image(&[3 * CS as usize, 10, 2 * CS as usize]);
        let r = ChunkReader::new(
            &img.blobs,
            Arc::new(Localfs::dir(img.dir.path().into())),
            ReaderOptions::default(),
        );
        let nid = |p: &str| img.boot.lookup(p.as_bytes()).unwrap().unwrap();
        let jobs = vec![
            img.boot
                .plan(nid("/f000"), 0, u64::MAX)
                .map_err(JobError::Plan),
            Err(JobError::Plan(DecodeError::Cycle { nid: 7 })),
            img.boot
                .plan(nid("/f002"), 0, u64::MAX)
                .map_err(JobError::Plan),
        ];
        let results = read_ahead(&r, jobs, AheadOptions::default(), |pieces| {
            let mut out = vec![Vec::new(); 3];
            let mut failed = vec![false; 3];
            while let Some(p) = pieces.next_piece() {
                if p.data.is_err() {
                    failed[p.job] = true;
                }
                for s in p.slices() {
                    out[p.job].extend_from_slice(s);
                }
            }
            (out, failed)
        });
        assert_eq!(results.1, [false, true, false]);
        assert_eq!(results.0[0], img.files[0].1);
        assert_eq!(results.0[2], img.files[2].1);
    }

    #[test]
    fn stopping_early_stops_the_work() {
        let sizes = vec![9 * CS as usize; 200];
        let img = image(&sizes);
        let r = ChunkReader::new(
            &img.blobs,
            Arc::new(Localfs::dir(img.dir.path().into())),
            ReaderOptions {
                memory_bytes: 0,
                ..Default::default()
            },
        );
        let jobs = whole_files(&img);
        let first = read_ahead(&r, jobs, AheadOptions::default(), |pieces| {
            pieces.next_piece().unwrap().job
        });
        assert_eq!(first, 0);
        // Far fewer than the 1800 chunks were read.
        assert!(
            r.stats()
                .chunks_fetched
                .load(std::sync::atomic::Ordering::Relaxed)
                < 400
        );
    }

    #[test]
    fn big_holes_are_cut_into_units() {
        let p = ReadPlan {
            offset: 0,
            len: 10 << 20,
            extents: vec![Extent::Hole { len: 10 << 20 }],
        };
        let u = units(p, 1 << 20);
        assert_eq!(u.len(), 10);
        assert!(u.iter().all(|x| x.len == 1 << 20));
        assert_eq!(u[3].offset, 3 << 20);
        assert_eq!(units(ReadPlan::default(), 5).len(), 1);
    }
}
