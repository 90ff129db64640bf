//! The daemon: an image mounted with FUSE, served by worker threads until a signal or an
//! unmount, then unmounted.
//!
//! Before mounting, a mount point left behind by a daemon that was killed (a FUSE mount whose
//! connection is gone: `ENOTCONN`) is detached; a live mount there is an error.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use nydus_core::model::BlobInfo;
use nydus_core::read::Filesystem;
use nydus_host_storage::blobcache::BlobCache;
use nydus_host_storage::local::Backend;
use nydus_host_storage::{ChunkReader, ReaderOptions};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::fs::{FsStats, ImageFs};
use crate::prefetch::{self, Prefetch, PrefetchOptions};

/// How an image is served.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub mountpoint: PathBuf,
    /// FUSE worker threads.
    pub threads: usize,
    /// The blob cache directory (upstream's layout); `None`: chunks kept in memory only.
    pub cache_dir: Option<PathBuf>,
    pub reader: ReaderOptions,
    /// `None`: no prefetch; else the prefetch table, and everything with `all`.
    pub prefetch: Option<PrefetchOptions>,
    /// The source shown in the mount table.
    pub fsname: String,
    /// Write the files and ranges read to this file (a JSON v1 prefetch list) on unmount.
    pub record_prefetch: Option<PathBuf>,
}

impl DaemonOptions {
    /// Defaults: 4 worker threads, no cache directory, the prefetch table prefetched.
    pub fn new(mountpoint: &Path) -> Self {
        DaemonOptions {
            mountpoint: mountpoint.to_path_buf(),
            threads: 4,
            cache_dir: None,
            reader: ReaderOptions::default(),
            prefetch: Some(PrefetchOptions::default()),
            fsname: "nydus".into(),
            record_prefetch: None,
        }
    }
}

/// A mounted image.
#[derive(Debug)]
pub struct Daemon {
    session: Option<BackgroundSession>,
    prefetch: Option<Prefetch>,
    mountpoint: PathBuf,
    pub stats: Arc<FsStats>,
    pub reader: Arc<ChunkReader>,
    /// Writes the recorded prefetch list (after the unmount, when no read is left).
    recorder: Option<PendingRecord>,
}

/// Writes a recorded prefetch list.
type RecordFn = Box<dyn FnOnce() -> Result<()> + Send>;

/// The recorded list's writer, run once the last read is served.
struct PendingRecord(RecordFn);

impl std::fmt::Debug for PendingRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingRecord")
    }
}

/// Why [`Daemon::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGINT or SIGTERM.
    Signal(i32),
    /// The filesystem was unmounted from outside (`umount`).
    Unmounted,
}

/// Mounts image `fs` (blob table `blobs`, ids resolved) with its blobs in `backend`.
pub fn mount<F: Filesystem + Send + Sync + 'static>(
    fs: Arc<F>,
    blobs: &[BlobInfo],
    backend: Arc<dyn Backend>,
    o: &DaemonOptions,
) -> Result<Daemon> {
    let mp = &o.mountpoint;
    std::fs::create_dir_all(mp)
        .or_else(|e| clean_stale(mp).map_err(|_| e))
        .with_context(|| format!("creating the mount point {}", mp.display()))?;
    clean_stale(mp)?;
    let mut reader = ChunkReader::new(blobs, backend, o.reader);
    if let Some(dir) = &o.cache_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the cache directory {}", dir.display()))?;
        let cache = BlobCache::new(dir, blobs)
            .with_context(|| format!("opening the blob cache in {}", dir.display()))?;
        reader = reader.with_cache(cache);
    }
    let reader = Arc::new(reader);
    let mut image = ImageFs::new(fs.clone(), reader.clone())
        .with_context(|| "the bootstrap's root directory cannot be read".to_string())?;
    image.widen_across_files();
    image.read_ahead(2);
    let recorder = o.record_prefetch.as_ref().map(|p| {
        let r = Arc::new(crate::record::Recorder::new(p));
        image.record_reads(r.clone());
        let fs = fs.clone();
        let write: RecordFn = Box::new(move || {
            let n = r.write(&*fs)?;
            log::info!("recorded {n} files read to {}", r.path().display());
            Ok(())
        });
        PendingRecord(write)
    });
    let (busy, stats) = (image.busy(), image.stats());
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::RO,
        MountOption::FSName(o.fsname.clone()),
        MountOption::Subtype("nydus".into()),
        MountOption::DefaultPermissions,
        MountOption::Dev,
        MountOption::Suid,
    ];
    cfg.acl = SessionACL::All;
    cfg.n_threads = Some(o.threads.max(1));
    cfg.clone_fd = true;
    let session = fuser::spawn_mount(image, mp, &cfg)
        .with_context(|| format!("mounting FUSE at {}", mp.display()))?;
    log::info!("mounted at {}", mp.display());
    let prefetch = o
        .prefetch
        .map(|p| prefetch::start(fs, reader.clone(), busy, p));
    Ok(Daemon {
        session: Some(session),
        prefetch,
        mountpoint: mp.clone(),
        stats,
        reader,
        recorder,
    })
}

impl Daemon {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The prefetch's progress, when one runs.
    pub fn prefetch_state(&self) -> Option<&prefetch::PrefetchState> {
        self.prefetch.as_ref().map(|p| &*p.state)
    }

    /// Waits for SIGINT or SIGTERM, or for the filesystem to be unmounted from outside.
    pub fn wait(&self) -> Result<Stopped> {
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .context("installing the signal handlers")?;
        loop {
            if let Some(s) = signals.pending().next() {
                return Ok(Stopped::Signal(s));
            }
            if self.session.as_ref().is_none_or(|s| s.guard.is_finished()) {
                return Ok(Stopped::Unmounted);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the prefetch, unmounts (if still mounted) and waits for the worker threads.
    pub fn unmount(mut self) -> Result<()> {
        if let Some(p) = self.prefetch.take() {
            p.stop();
        }
        let s = self.reader.stats();
        log::info!(
            "unmounting {}: {} reads served, {} failed; backend: {} requests, {} bytes",
            self.mountpoint.display(),
            self.stats.reads.load(Ordering::Relaxed),
            self.stats.read_errors.load(Ordering::Relaxed),
            s.backend_reads.load(Ordering::Relaxed),
            s.backend_bytes.load(Ordering::Relaxed),
        );
        if let Some(session) = self.session.take() {
            if session.guard.is_finished() {
                let _ = session.join();
            } else {
                session
                    .umount_and_join()
                    .with_context(|| format!("unmounting {}", self.mountpoint.display()))?;
            }
        }
        if let Some(PendingRecord(write)) = self.recorder.take() {
            write()?;
        }
        Ok(())
    }
}

/// The file systems mounted at `path`, from `/proc/self/mountinfo` (type of each, innermost
/// last).
fn mounts_at(path: &Path) -> Vec<String> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let want = path.as_os_str().as_encoded_bytes();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            let mp = unescape(f.get(4)?);
            (mp == want).then(|| f.get(sep + 1).unwrap_or(&"").to_string())
        })
        .collect()
}

/// A mountinfo field with its octal escapes (`\040` for a space) decoded.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Detaches a FUSE mount at `mp` whose daemon is gone; errors when a live file system is
/// mounted there.
pub fn clean_stale(mp: &Path) -> Result<()> {
    let abs = std::path::absolute(mp).unwrap_or_else(|_| mp.to_path_buf());
    let types = mounts_at(&abs);
    let probe = rustix::fs::statvfs(&abs);
    let dead = matches!(probe, Err(e) if e == rustix::io::Errno::NOTCONN || e == rustix::io::Errno::CONNABORTED);
    if dead {
        rustix::mount::unmount(&abs, rustix::mount::UnmountFlags::DETACH).with_context(|| {
            format!(
                "{}: cleaning the stale mount of a dead daemon",
                abs.display()
            )
        })?;
        log::warn!(
            "{}: a stale mount left by a daemon that is gone was cleaned",
            abs.display()
        );
        return Ok(());
    }
    if let Some(t) = types.last() {
        if t.starts_with("fuse") {
            bail!(
                "{}: a live {t} file system is already mounted there (unmount it first)",
                abs.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b"), b"/a b");
        assert_eq!(unescape(r"/a\134"), b"/a\\");
        assert_eq!(unescape("/plain"), b"/plain");
        assert_eq!(unescape(r"/x\01"), b"/x\\01");
    }

    #[test]
    fn a_plain_directory_is_not_stale() {
        let d = tempfile::tempdir().unwrap();
        clean_stale(d.path()).unwrap();
        assert!(mounts_at(d.path()).is_empty());
        assert!(!mounts_at(Path::new("/")).is_empty());
    }
}
