//! A bootstrap of either RAFS version behind one type, for everything that reads images. It
//! implements [`Filesystem`], the version-neutral read model; inode handles (`nid`) are v6 nids
//! or v5 inode-table numbers, meaningless across versions.

use crate::digest::Digester;
use crate::error::DecodeError;
use crate::model::{BlobInfo, ChunkRef, Compressor, Xattrs};
use crate::read::{self, DirEntry, FileChunk, Filesystem, Inode, ReadPlan, WalkFn};
use crate::report::Report;
use crate::source::ReadAt;
use crate::{v5, v6};

/// An opened bootstrap.
#[derive(Debug)]
pub enum Rafs<R: ReadAt> {
    V5(v5::reader::Bootstrap<R>),
    V6(v6::reader::Bootstrap<R>),
}

macro_rules! both {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Rafs::V5($b) => $e,
            Rafs::V6($b) => $e,
        }
    };
}

impl<R: ReadAt> Rafs<R> {
    /// Opens a v5 bootstrap (magic at offset 0) or a v6 one.
    pub fn open(src: R) -> Result<Self, DecodeError> {
        let v5 = src.size() >= 4
            && src.read_vec(0, 4)?.as_slice() == v5::ondisk::RAFS_V5_SUPER_MAGIC.to_le_bytes();
        Ok(if v5 {
            Rafs::V5(v5::reader::Bootstrap::open(src)?)
        } else {
            Rafs::V6(v6::reader::Bootstrap::open(src)?)
        })
    }

    pub fn as_v6(&self) -> Option<&v6::reader::Bootstrap<R>> {
        match self {
            Rafs::V6(b) => Some(b),
            Rafs::V5(_) => None,
        }
    }
    pub fn source(&self) -> &R {
        both!(self, b => b.source())
    }
    pub fn size(&self) -> u64 {
        both!(self, b => b.size())
    }
    pub fn flags(&self) -> u64 {
        both!(self, b => b.flags())
    }
    pub fn compressor(&self) -> Compressor {
        both!(self, b => b.compressor())
    }
    pub fn digester(&self) -> Digester {
        both!(self, b => b.digester())
    }
    /// The prefetch table: v6 nids or v5 inode numbers.
    pub fn prefetch(&self) -> Result<Vec<u64>, DecodeError> {
        read::prefetch(self)
    }
    /// Every distinct chunk the image refers to.
    pub fn chunk_table(&self) -> Result<Vec<ChunkRef>, DecodeError> {
        both!(self, b => b.chunk_table())
    }
    /// Resolves an absolute path to an inode handle.
    pub fn lookup(&self, path: &[u8]) -> Result<Option<u64>, DecodeError> {
        read::lookup(self, path)
    }
    /// Visits every entry, depth first in directory order, starting with the root.
    pub fn walk(&self, f: &mut WalkFn<'_>) -> Result<(), DecodeError> {
        read::walk(self, f)
    }
    /// Plans bytes `offset..offset + len` of regular file `nid`.
    pub fn plan(&self, nid: u64, offset: u64, len: u64) -> Result<ReadPlan, DecodeError> {
        read::plan(self, &self.inode(nid)?, offset, len)
    }
    /// Every structural finding of the version's checker.
    pub fn check(&self) -> Report {
        match self {
            Rafs::V5(b) => v5::check::check(b),
            Rafs::V6(b) => v6::check::check(b),
        }
    }
}

impl<R: ReadAt> Filesystem for Rafs<R> {
    fn version(&self) -> u32 {
        both!(self, b => b.version())
    }
    fn root_nid(&self) -> u64 {
        both!(self, b => b.root_nid())
    }
    fn chunk_size(&self) -> u32 {
        both!(self, b => b.chunk_size())
    }
    fn blobs(&self) -> &[BlobInfo] {
        both!(self, b => b.blobs())
    }
    fn inode(&self, nid: u64) -> Result<Inode, DecodeError> {
        both!(self, b => b.inode(nid))
    }
    fn read_dir(&self, nid: u64) -> Result<Vec<DirEntry>, DecodeError> {
        both!(self, b => b.read_dir(nid))
    }
    fn lookup_child(&self, dir: u64, name: &[u8]) -> Result<Option<DirEntry>, DecodeError> {
        both!(self, b => b.lookup_child(dir, name))
    }
    fn symlink(&self, nid: u64) -> Result<Vec<u8>, DecodeError> {
        both!(self, b => b.symlink(nid))
    }
    fn xattrs(&self, nid: u64) -> Result<Xattrs, DecodeError> {
        both!(self, b => b.xattrs(nid))
    }
    fn file_chunks(
        &self,
        inode: &Inode,
        offset: u64,
        len: u64,
    ) -> Result<Vec<FileChunk>, DecodeError> {
        both!(self, b => b.file_chunks(inode, offset, len))
    }
    fn prefetch_table(&self) -> Result<Vec<u8>, DecodeError> {
        both!(self, b => b.prefetch_table())
    }
}
