//! The FUSE filesystem: the kernel's requests answered from a decoded bootstrap (metadata) and
//! a [`ChunkReader`] (file bytes, every chunk verified by digest before it is returned).
//!
//! The image is immutable, so attributes and entries get long timeouts, file pages are kept
//! in the page cache across opens, and symlinks and directory listings are cached by the
//! kernel. Every failure becomes an errno here and only here ([`errno`]): a chunk that cannot
//! be fetched or fails its digest is `EIO` with a log line naming the blob and the chunk; the
//! daemon keeps serving.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType as FuseType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request,
};
use nydus_core::error::DecodeError;
use nydus_core::model::FileType;
use nydus_core::read::{plan, DirEntry, Filesystem as Rafs, Inode};
use nydus_host_storage::reader::{slices, ReadError};
use nydus_host_storage::ChunkReader;

use crate::inodes::{Inodes, Node};

/// How long the kernel may keep attributes and entries: the image never changes.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// Block size reported by `stat` and `statfs`.
const BLOCK: u32 = 4096;

/// Why a request failed, before it becomes an errno.
#[derive(Debug)]
pub enum FsError {
    /// No such inode number or name.
    NotFound,
    /// The request needs another file type (`readlink` of a file, `readdir` of a file).
    WrongType(Errno),
    /// The bootstrap could not be decoded there.
    Decode(DecodeError),
    /// File bytes could not be read or verified.
    Read(ReadError),
    /// A write access to the read-only image.
    ReadOnly,
}

/// The errno of a failure: the one place failures are mapped for the kernel.
pub fn errno(e: &FsError) -> Errno {
    match e {
        FsError::NotFound => Errno::ENOENT,
        FsError::WrongType(e) => *e,
        FsError::Decode(_) | FsError::Read(_) => Errno::EIO,
        FsError::ReadOnly => Errno::EROFS,
    }
}

/// The FUSE file type of an image file type.
fn fuse_type(t: FileType) -> FuseType {
    match t {
        FileType::Regular => FuseType::RegularFile,
        FileType::Directory => FuseType::Directory,
        FileType::Symlink => FuseType::Symlink,
        FileType::CharDevice => FuseType::CharDevice,
        FileType::BlockDevice => FuseType::BlockDevice,
        FileType::Fifo => FuseType::NamedPipe,
        FileType::Socket => FuseType::Socket,
    }
}

/// What the kernel is told of inode `ino`.
pub fn attr(ino: u64, i: &Inode) -> FileAttr {
    let t = UNIX_EPOCH + Duration::new(i.attrs.mtime, i.attrs.mtime_nsec.min(999_999_999));
    FileAttr {
        ino: INodeNo(ino),
        size: i.size,
        blocks: i.size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind: fuse_type(i.file_type),
        perm: (i.attrs.mode & 0o7777) as u16,
        nlink: i.nlink.max(1),
        uid: i.attrs.uid,
        gid: i.attrs.gid,
        rdev: i.attrs.rdev,
        blksize: BLOCK,
        flags: 0,
    }
}

/// A directory's entries with their FUSE numbers and inodes, `.` and `..` first.
type Listing = Arc<Vec<(u64, DirEntry, Inode)>>;

/// Counters of what the filesystem served (the API socket and the tests read them).
#[derive(Debug, Default)]
pub struct FsStats {
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub read_errors: AtomicU64,
    pub lookups: AtomicU64,
}

/// The mounted image.
#[derive(Debug)]
pub struct ImageFs<F> {
    fs: Arc<F>,
    reader: Arc<ChunkReader>,
    inodes: Inodes,
    /// Listings of open directories, by handle.
    dirs: Mutex<HashMap<u64, Listing>>,
    next_handle: AtomicU64,
    /// User reads in progress (prefetch waits while there are any).
    busy: Arc<AtomicUsize>,
    /// Bytes past a read that are fetched with it (small reads are widened so the following
    /// chunks come in the same backend request).
    widen: u64,
    stats: Arc<FsStats>,
    total_bytes: u64,
    neighbors: crate::neighbors::Lazy,
    ahead: Option<crate::ahead::ReadAhead>,
    /// The kernel opens files without asking (FUSE_NO_OPEN_SUPPORT was agreed).
    no_open: bool,
    /// `--record-prefetch`: every successful read noted.
    recorder: Option<Arc<crate::record::Recorder>>,
}

impl<F: Rafs + Send + Sync + 'static> ImageFs<F> {
    /// The filesystem of image `fs`, its file bytes read by `reader`.
    pub fn new(fs: Arc<F>, reader: Arc<ChunkReader>) -> Result<Self, DecodeError> {
        let root = fs.inode(fs.root_nid())?;
        let total_bytes = fs.blobs().iter().map(|b| b.uncompressed_size).sum();
        let widen = reader.options().batch_size;
        Ok(ImageFs {
            inodes: Inodes::new(fs.version(), root),
            fs,
            reader,
            dirs: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            busy: Arc::new(AtomicUsize::new(0)),
            widen,
            stats: Arc::new(FsStats::default()),
            total_bytes,
            neighbors: crate::neighbors::Lazy::default(),
            ahead: None,
            no_open: false,
            recorder: None,
        })
    }

    /// Widens small reads to the chunks stored after them in their blob once the index of
    /// every chunk is built (on a background thread, from now on). Only with a cache that
    /// keeps the extra chunks.
    pub fn widen_across_files(&mut self) {
        if self.reader.cache().is_some() {
            self.neighbors = crate::neighbors::Lazy::start(self.fs.clone());
        }
    }

    /// Reads ahead in big files on `threads` background threads (with a cache only).
    pub fn read_ahead(&mut self, threads: usize) {
        if self.reader.cache().is_some() {
            self.ahead = Some(crate::ahead::ReadAhead::start(self.reader.clone(), threads));
        }
    }

    /// Notes every successful read in `r` (`--record-prefetch`).
    pub fn record_reads(&mut self, r: Arc<crate::record::Recorder>) {
        self.recorder = Some(r);
    }

    /// The count of user reads in progress, shared with the prefetcher.
    pub fn busy(&self) -> Arc<AtomicUsize> {
        self.busy.clone()
    }

    pub fn stats(&self) -> Arc<FsStats> {
        self.stats.clone()
    }

    fn node(&self, ino: INodeNo) -> Result<Node, FsError> {
        self.inodes.get(ino.0).ok_or(FsError::NotFound)
    }

    /// Entry `name` of directory `parent`: its number and inode.
    pub fn lookup_name(&self, parent: u64, name: &[u8]) -> Result<(u64, Inode), FsError> {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        let dir = self.inodes.get(parent).ok_or(FsError::NotFound)?;
        if dir.inode.file_type != FileType::Directory {
            return Err(FsError::WrongType(Errno::ENOTDIR));
        }
        let e = self
            .fs
            .lookup_child(dir.nid, name)
            .map_err(FsError::Decode)?
            .ok_or(FsError::NotFound)?;
        let i = self.fs.inode(e.nid).map_err(FsError::Decode)?;
        Ok((self.inodes.number(parent, i.clone()), i))
    }

    /// The entries of directory `ino` with their numbers and inodes, `.` and `..` first.
    fn listing(&self, ino: u64) -> Result<Vec<(u64, DirEntry, Inode)>, FsError> {
        let dir = self.inodes.get(ino).ok_or(FsError::NotFound)?;
        if dir.inode.file_type != FileType::Directory {
            return Err(FsError::WrongType(Errno::ENOTDIR));
        }
        let parent = self.inodes.get(dir.parent).ok_or(FsError::NotFound)?;
        let dot = |name: &[u8], n: &Node| DirEntry {
            name: name.to_vec(),
            nid: n.nid,
            file_type: FileType::Directory,
        };
        let mut out = vec![
            (ino, dot(b".", &dir), dir.inode.clone()),
            (dir.parent, dot(b"..", &parent), parent.inode.clone()),
        ];
        for e in self.fs.read_dir(dir.nid).map_err(FsError::Decode)? {
            let i = self.fs.inode(e.nid).map_err(FsError::Decode)?;
            out.push((self.inodes.number(ino, i.clone()), e, i));
        }
        Ok(out)
    }

    fn dir_handle(&self, ino: u64) -> Result<u64, FsError> {
        let list = Arc::new(self.listing(ino)?);
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, list);
        Ok(fh)
    }

    fn dir_list(&self, ino: u64, fh: u64) -> Result<Listing, FsError> {
        if let Some(l) = self.dirs.lock().unwrap_or_else(|p| p.into_inner()).get(&fh) {
            return Ok(l.clone());
        }
        Ok(Arc::new(self.listing(ino)?))
    }

    /// Bytes `offset..offset + size` of regular file `ino` (fewer at its end), verified.
    pub fn read_file(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        let node = self.inodes.get(ino).ok_or(FsError::NotFound)?;
        if node.inode.file_type != FileType::Regular {
            return Err(FsError::WrongType(Errno::EISDIR));
        }
        self.busy.fetch_add(1, Ordering::SeqCst);
        let r = self.read_inode(&node.inode, offset, size);
        self.busy.fetch_sub(1, Ordering::SeqCst);
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        match &r {
            Ok(v) => {
                self.stats
                    .read_bytes
                    .fetch_add(v.len() as u64, Ordering::Relaxed);
                if let Some(rec) = &self.recorder {
                    rec.record(node.inode.ino, offset, v.len() as u64);
                }
            }
            Err(e) => {
                self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                match e {
                    FsError::Read(e) => log::error!("read of inode {ino}: {e}"),
                    FsError::Decode(e) => log::error!("read of inode {ino}: bootstrap: {e}"),
                    _ => {}
                }
            }
        }
        r
    }

    fn read_inode(&self, inode: &Inode, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        let want = u64::from(size);
        // The wanted range and, widened, the chunks after it: fetched in one request, kept
        // in the caches for the next reads. Once the wanted chunks are cached, only they are
        // read (a warm read touches no other chunk).
        let span = want.max(self.widen);
        let wide = || plan(&*self.fs, inode, offset, span).map_err(FsError::Decode);
        let p = match self.reader.cache() {
            Some(cache) if span > want => {
                let p = plan(&*self.fs, inode, offset, want).map_err(FsError::Decode)?;
                if !p.chunks().all(|e| cache.has(&e.chunk)) {
                    self.fetch_following(&wide()?);
                }
                p
            }
            _ => {
                let p = wide()?;
                self.fetch_following(&p);
                p
            }
        };
        let segments = self.reader.segments(&p).map_err(FsError::Read)?;
        self.queue_ahead(inode, offset + span, want);
        let n = want.min(p.len) as usize;
        let mut out = Vec::with_capacity(n);
        for s in slices(&segments) {
            let room = n - out.len();
            if room == 0 {
                break;
            }
            out.extend_from_slice(&s[..s.len().min(room)]);
        }
        Ok(out)
    }

    /// Queues the uncached chunks of the next stretch of a big file (from `from` on, two
    /// batches) after a read of `want` bytes that looks sequential (a large read, or the
    /// first bytes of the file).
    fn queue_ahead(&self, inode: &Inode, from: u64, want: u64) {
        let (Some(ahead), Some(cache)) = (&self.ahead, self.reader.cache()) else {
            return;
        };
        if from >= inode.size || (want < 64 << 10 && from > self.widen.max(want)) {
            return;
        }
        let Ok(next) = plan(&*self.fs, inode, from, 2 * self.widen) else {
            return;
        };
        let job: Vec<_> = next
            .chunks()
            .filter(|e| !cache.has(&e.chunk))
            .copied()
            .collect();
        if !job.is_empty() {
            ahead.submit(job);
        }
    }

    /// Fetches, with the chunks of `p`, the uncached chunks stored after its last one, up to
    /// the batch size: they land in the caches for the reads that follow.
    fn fetch_following(&self, p: &nydus_core::read::ReadPlan) {
        let (Some(n), Some(cache)) = (self.neighbors.get(), self.reader.cache()) else {
            return;
        };
        let mut want: Vec<_> = p.chunks().copied().collect();
        let Some(last) = want.last().copied() else {
            return;
        };
        let used: u64 = want
            .iter()
            .map(|e| u64::from(e.chunk.compressed_size))
            .sum();
        let batch = self.reader.options().batch_size;
        if used >= batch || want.iter().all(|e| cache.has(&e.chunk)) {
            return;
        }
        let more = n.after(&last, batch - used, batch / 128, |e| !cache.has(&e.chunk));
        if more.is_empty() {
            return;
        }
        want.extend(more);
        // Errors surface on the wanted chunks themselves, read again below.
        let _ = self.reader.fetch(&want);
    }

    fn xattr_value(&self, ino: INodeNo, name: &[u8]) -> Result<Option<Vec<u8>>, FsError> {
        let node = self.node(ino)?;
        let x = self.fs.xattrs(node.nid).map_err(FsError::Decode)?;
        Ok(x.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
    }

    fn xattr_names(&self, ino: INodeNo) -> Result<Vec<u8>, FsError> {
        let node = self.node(ino)?;
        let mut out = Vec::new();
        for (k, _) in self.fs.xattrs(node.nid).map_err(FsError::Decode)? {
            out.extend_from_slice(&k);
            out.push(0);
        }
        Ok(out)
    }
}

/// Replies with a value of an xattr request: its size when `size` is 0, `ERANGE` when it
/// does not fit.
fn reply_xattr(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

fn decode_failure(what: &str, ino: INodeNo, e: &FsError) {
    if let FsError::Decode(d) = e {
        log::error!("{what} of inode {}: bootstrap: {d}", ino.0);
    }
}

impl<F: Rafs + Send + Sync + 'static> Filesystem for ImageFs<F> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Symlinks and listings cached by the kernel; readdirplus saves a lookup per entry.
        let want = InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS;
        let _ = config.add_capabilities(want & config.capabilities());
        // No OPEN/RELEASE round trip per file: the first open answers ENOSYS and the kernel
        // opens files itself from then on, keeping their page cache (its default then). The
        // mount is read-only, so the kernel refuses write opens before they reach us.
        if config
            .capabilities()
            .contains(InitFlags::FUSE_NO_OPEN_SUPPORT)
            && config
                .add_capabilities(InitFlags::FUSE_NO_OPEN_SUPPORT)
                .is_ok()
        {
            self.no_open = true;
        }
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_name(parent.0, name.as_bytes()) {
            Ok((n, i)) => reply.entry(&TTL, &attr(n, &i), Generation(0)),
            Err(e) => {
                decode_failure("lookup", parent, &e);
                reply.error(errno(&e))
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(n) => reply.attr(&TTL, &attr(ino.0, &n.inode)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self.node(ino).and_then(|n| {
            if n.inode.file_type != FileType::Symlink {
                return Err(FsError::WrongType(Errno::EINVAL));
            }
            self.fs.symlink(n.nid).map_err(FsError::Decode)
        });
        match r {
            Ok(t) => reply.data(&t),
            Err(e) => {
                decode_failure("readlink", ino, &e);
                reply.error(errno(&e))
            }
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let acc = flags.0 & libc::O_ACCMODE;
        let r = self.node(ino).and_then(|n| {
            if acc != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
                return Err(FsError::ReadOnly);
            }
            if n.inode.file_type == FileType::Directory {
                return Err(FsError::WrongType(Errno::EISDIR));
            }
            Ok(())
        });
        match r {
            Ok(()) if self.no_open => reply.error(Errno::ENOSYS),
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_file(ino.0, offset, size) {
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.dir_handle(ino.0) {
            Ok(fh) => reply.opened(
                FileHandle(fh),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Err(e) => {
                decode_failure("opendir", ino, &e);
                reply.error(errno(&e))
            }
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let list = match self.dir_list(ino.0, fh.0) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(&e)),
        };
        for (k, (n, e, i)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(*n),
                k as u64 + 1,
                fuse_type(i.file_type),
                OsStr::from_bytes(&e.name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let list = match self.dir_list(ino.0, fh.0) {
            Ok(l) => l,
            Err(e) => return reply.error(errno(&e)),
        };
        for (k, (n, e, i)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(*n),
                k as u64 + 1,
                OsStr::from_bytes(&e.name),
                &TTL,
                &attr(*n, i),
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.total_bytes.div_ceil(u64::from(BLOCK));
        reply.statfs(blocks, 0, 0, self.inodes.len() as u64, 0, BLOCK, 255, BLOCK);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.xattr_value(ino, name.as_bytes()) {
            Ok(Some(v)) => reply_xattr(reply, size, &v),
            Ok(None) => reply.error(Errno::NO_XATTR),
            Err(e) => {
                decode_failure("getxattr", ino, &e);
                reply.error(errno(&e))
            }
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.xattr_names(ino) {
            Ok(names) => reply_xattr(reply, size, &names),
            Err(e) => {
                decode_failure("listxattr", ino, &e);
                reply.error(errno(&e))
            }
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.node(ino) {
            Ok(_) if mask.contains(AccessFlags::W_OK) => reply.error(Errno::EROFS),
            Ok(_) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// When the image was mounted (for the API's report).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inodes::ROOT;
    use nydus_core::memimage::{build, MemEntry, MemOptions};
    use nydus_core::model::Compressor;
    use nydus_core::rafs::Rafs as Image;
    use nydus_host_storage::{Localfs, ReaderOptions};

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn image(version: u32) -> (tempfile::TempDir, ImageFs<Image<Vec<u8>>>) {
        let mut f = MemEntry::file(b"/d/f", pattern(10_000));
        f.entry.link_key = Some((1, 99));
        let mut ln = MemEntry::file(b"/d/link", pattern(10_000));
        ln.entry.link_key = Some((1, 99));
        let entries = vec![
            MemEntry::dir(b"/"),
            MemEntry::dir(b"/d"),
            f,
            ln,
            MemEntry::symlink(b"/s", b"d/f"),
        ];
        let img = build(
            &entries,
            &MemOptions {
                v5: version == 5,
                chunk_size: 0x1000,
                compressor: Compressor::Zstd,
                ..Default::default()
            },
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(&img.blob_info.blob_id), &img.blob).unwrap();
        let boot = Arc::new(Image::open(img.bootstrap).unwrap());
        let local = Localfs::new(None, Some(dir.path().to_path_buf()), vec![]).unwrap();
        let reader = Arc::new(ChunkReader::new(
            nydus_core::read::Filesystem::blobs(&*boot),
            Arc::new(local),
            ReaderOptions::default(),
        ));
        (dir, ImageFs::new(boot, reader).unwrap())
    }

    #[test]
    fn lookups_reads_and_links_in_v5_and_v6() {
        for v in [5, 6] {
            let (_d, fs) = image(v);
            let (d, di) = fs.lookup_name(ROOT, b"d").unwrap();
            assert_eq!(di.file_type, FileType::Directory);
            let (f, _) = fs.lookup_name(d, b"f").unwrap();
            let (l, _) = fs.lookup_name(d, b"link").unwrap();
            assert_eq!(f, l, "v{v}: hard links share an inode number");
            assert_eq!(fs.read_file(f, 0, 100_000).unwrap(), pattern(10_000));
            assert_eq!(
                fs.read_file(f, 4090, 20).unwrap(),
                pattern(10_000)[4090..4110]
            );
            assert!(fs.read_file(f, 20_000, 10).unwrap().is_empty());
            assert!(matches!(fs.lookup_name(d, b"nope"), Err(FsError::NotFound)));
            assert!(matches!(
                fs.lookup_name(f, b"x"),
                Err(FsError::WrongType(e)) if e == Errno::ENOTDIR
            ));
            let names: Vec<Vec<u8>> = fs
                .listing(d)
                .unwrap()
                .into_iter()
                .map(|x| x.1.name)
                .collect();
            assert_eq!(names, [&b"."[..], b"..", b"f", b"link"]);
            assert!(matches!(fs.read_file(d, 0, 1), Err(FsError::WrongType(_))));
        }
    }

    #[test]
    fn a_missing_blob_is_eio_and_counted() {
        let (dir, fs) = image(6);
        for e in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        let (d, _) = fs.lookup_name(ROOT, b"d").unwrap();
        let (f, _) = fs.lookup_name(d, b"f").unwrap();
        let e = fs.read_file(f, 0, 10).unwrap_err();
        assert_eq!(errno(&e), Errno::EIO);
        assert_eq!(fs.stats().read_errors.load(Ordering::Relaxed), 1);
    }
}
