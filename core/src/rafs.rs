//! A bootstrap of either RAFS version behind one interface, for the read-side commands
//! (check, inspect, stat, unpack, merge, the browser inspector). Inode handles (`nid`) are
//! v6 nids or v5 inode-table numbers; neither is meaningful across versions.

use crate::digest::Digester;
use crate::error::DecodeError;
use crate::model::{BlobInfo, ChunkRef, Compressor, Xattrs};
use crate::report::Report;
use crate::source::ReadAt;
use crate::v6::dir::DirEntry;
use crate::v6::reader::{InodeInfo, WalkFn};
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

    /// 5 or 6.
    pub fn version(&self) -> u32 {
        match self {
            Rafs::V5(_) => 5,
            Rafs::V6(_) => 6,
        }
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
    pub fn blobs(&self) -> &[BlobInfo] {
        both!(self, b => b.blobs())
    }
    pub fn flags(&self) -> u64 {
        both!(self, b => b.flags())
    }
    pub fn chunk_size(&self) -> u32 {
        both!(self, b => b.chunk_size())
    }
    pub fn root_nid(&self) -> u64 {
        both!(self, b => b.root_nid())
    }
    pub fn compressor(&self) -> Compressor {
        both!(self, b => b.compressor())
    }
    pub fn digester(&self) -> Digester {
        both!(self, b => b.digester())
    }
    pub fn inode(&self, nid: u64) -> Result<InodeInfo, DecodeError> {
        both!(self, b => b.inode(nid))
    }
    pub fn xattrs(&self, nid: u64) -> Result<Xattrs, DecodeError> {
        both!(self, b => b.xattrs(nid))
    }
    pub fn read_dir(&self, nid: u64) -> Result<Vec<DirEntry>, DecodeError> {
        both!(self, b => b.read_dir(nid))
    }
    pub fn symlink(&self, nid: u64) -> Result<Vec<u8>, DecodeError> {
        both!(self, b => b.symlink(nid))
    }
    pub fn chunks(&self, nid: u64) -> Result<Vec<ChunkRef>, DecodeError> {
        both!(self, b => b.chunks(nid))
    }
    /// The prefetch table: v6 nids or v5 inode numbers.
    pub fn prefetch(&self) -> Result<Vec<u32>, DecodeError> {
        both!(self, b => b.prefetch())
    }
    /// Every distinct chunk the image refers to.
    pub fn chunk_table(&self) -> Result<Vec<ChunkRef>, DecodeError> {
        both!(self, b => b.chunk_table())
    }
    pub fn lookup(&self, path: &[u8]) -> Result<Option<u64>, DecodeError> {
        both!(self, b => b.lookup(path))
    }
    pub fn walk(&self, f: &mut WalkFn<'_>) -> Result<(), DecodeError> {
        both!(self, b => b.walk(f))
    }
    /// Every structural finding of the version's checker.
    pub fn check(&self) -> Report {
        match self {
            Rafs::V5(b) => v5::check::check(b),
            Rafs::V6(b) => v6::check::check(b),
        }
    }
}
