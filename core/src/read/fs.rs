//! What a decoder offers to readers, and the tree operations written once over it.

use std::collections::HashSet;

use crate::error::{DecodeError, InodeProblem};
use crate::model::{Attrs, BlobInfo, ChunkRef, FileType, Xattrs};

/// Deepest directory nesting [`walk`] follows.
pub const MAX_DEPTH: usize = 4096;

/// One inode, whichever RAFS version stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// The handle the decoder knows the inode by: a v6 nid, or a v5 inode-table number.
    /// Hard links share it in v6; in v5 each link has its own record and number.
    pub nid: u64,
    pub file_type: FileType,
    pub attrs: Attrs,
    /// Bytes of a regular file or symlink target; a v6 directory's content size; 0 otherwise.
    pub size: u64,
    pub nlink: u32,
    /// The build inode number (`i_ino`): shared by every entry of a hard-link group.
    pub ino: u64,
}

/// One directory entry (`.` and `..` are not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub nid: u64,
    /// The type the directory records for the entry (readers trust the inode's).
    pub file_type: FileType,
}

/// A chunk of a regular file, at its place in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileChunk {
    /// Offset of the chunk's first byte in the file.
    pub file_offset: u64,
    pub chunk: ChunkRef,
}

impl FileChunk {
    /// Offset just past the chunk's last byte in the file.
    pub fn file_end(&self) -> u64 {
        self.file_offset + u64::from(self.chunk.uncompressed_size)
    }
}

/// The visitor of [`walk`]: called with each path and its inode.
pub type WalkFn<'a> = dyn FnMut(&[u8], &Inode) -> Result<(), DecodeError> + 'a;

/// A decoded bootstrap as readers see it. Implemented by the v5 and v6 decoders (and by
/// [`crate::rafs::Rafs`], which holds either); every method reads only the byte ranges it
/// needs and checks what it reads.
pub trait Filesystem {
    /// 5 or 6.
    fn version(&self) -> u32;
    /// The root directory's handle.
    fn root_nid(&self) -> u64;
    /// The filesystem chunk size.
    fn chunk_size(&self) -> u32;
    /// The blob table, indexed by [`ChunkRef::blob_index`].
    fn blobs(&self) -> &[BlobInfo];
    /// Decodes inode `nid`.
    fn inode(&self, nid: u64) -> Result<Inode, DecodeError>;
    /// The entries of directory `nid` in on-disk order (sorted by raw name bytes), without
    /// `.` and `..`.
    fn read_dir(&self, nid: u64) -> Result<Vec<DirEntry>, DecodeError>;
    /// The entry `name` of directory `dir`, if there is one. Decoders override this with a
    /// search that does not read the whole directory.
    fn lookup_child(&self, dir: u64, name: &[u8]) -> Result<Option<DirEntry>, DecodeError> {
        Ok(self.read_dir(dir)?.into_iter().find(|e| e.name == name))
    }
    /// The target of symlink `nid`.
    fn symlink(&self, nid: u64) -> Result<Vec<u8>, DecodeError>;
    /// The extended attributes of `nid`, sorted by name.
    fn xattrs(&self, nid: u64) -> Result<Xattrs, DecodeError>;
    /// The chunks of regular file `inode` that overlap bytes `offset..offset + len`, in file
    /// order, each validated against its place in the file. Bytes no chunk covers are a hole
    /// (zeros). Only the chunk records of that range are read.
    fn file_chunks(
        &self,
        inode: &Inode,
        offset: u64,
        len: u64,
    ) -> Result<Vec<FileChunk>, DecodeError>;
    /// The raw bytes of the prefetch table (little-endian u32 inode handles; 0 ends it).
    fn prefetch_table(&self) -> Result<Vec<u8>, DecodeError>;

    /// Every chunk of regular file `nid` (none for other types).
    fn all_chunks(&self, nid: u64) -> Result<Vec<FileChunk>, DecodeError> {
        let i = self.inode(nid)?;
        if i.file_type != FileType::Regular || i.size == 0 {
            return Ok(Vec::new());
        }
        self.file_chunks(&i, 0, i.size)
    }
}

/// The inode handles of the prefetch table, up to its first zero entry.
pub fn prefetch<F: Filesystem + ?Sized>(fs: &F) -> Result<Vec<u64>, DecodeError> {
    Ok(fs
        .prefetch_table()?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .take_while(|&n| n != 0)
        .map(u64::from)
        .collect())
}

/// Resolves an absolute path (`/a/b`; empty components and `.` are skipped) to an inode handle.
pub fn lookup<F: Filesystem + ?Sized>(fs: &F, path: &[u8]) -> Result<Option<u64>, DecodeError> {
    let mut cur = fs.root_nid();
    for comp in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        if fs.inode(cur)?.file_type != FileType::Directory {
            return Ok(None);
        }
        match fs.lookup_child(cur, comp)? {
            Some(e) => cur = e.nid,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// Visits every entry depth first in directory order, starting with the root (`/`). Hard links
/// are visited once per name. A cycle or nesting deeper than [`MAX_DEPTH`] is an error.
pub fn walk<F: Filesystem + ?Sized>(fs: &F, f: &mut WalkFn<'_>) -> Result<(), DecodeError> {
    let root = fs.inode(fs.root_nid())?;
    if root.file_type != FileType::Directory {
        return Err(DecodeError::BadInode {
            nid: root.nid,
            offset: 0,
            problem: InodeProblem::RootNotDirectory,
        });
    }
    f(b"/", &root)?;
    let mut on_path: HashSet<u64> = HashSet::from([root.nid]);
    // Each frame: directory path, its nid, its entries, next entry index.
    let mut stack: Vec<(Vec<u8>, u64, Vec<DirEntry>, usize)> =
        vec![(Vec::new(), root.nid, fs.read_dir(root.nid)?, 0)];
    while let Some(top) = stack.last_mut() {
        if top.3 >= top.2.len() {
            on_path.remove(&top.1);
            stack.pop();
            continue;
        }
        let e = top.2[top.3].clone();
        top.3 += 1;
        let mut path = top.0.clone();
        path.push(b'/');
        path.extend_from_slice(&e.name);
        let i = fs.inode(e.nid)?;
        f(&path, &i)?;
        if i.file_type == FileType::Directory {
            if !on_path.insert(e.nid) || stack.len() >= MAX_DEPTH {
                return Err(DecodeError::Cycle { nid: e.nid });
            }
            let entries = fs.read_dir(e.nid)?;
            stack.push((path, e.nid, entries, 0));
        }
    }
    Ok(())
}
