//! The RAFS v6 bootstrap decoder. It reads only the byte ranges it needs through a
//! [`ReadAt`], and checks every offset, length and code before using it (`rafs-v6.md` §15).

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::codec::{round_down, round_up, Codec, Reader};
use crate::digest::Digester;
use crate::error::DecodeError;
use crate::model::{
    blob_features, rafs_flags, Attrs, BlobInfo, ChunkRef, Compressor, FileType, Xattrs,
};
use crate::source::ReadAt;
use crate::v6::dir::{self, DirEntry};
use crate::v6::ondisk::*;
use crate::v6::xattr;

/// The RAFS v5 superblock magic at offset 0.
pub const RAFS_V5_SUPER_MAGIC: u32 = 0x5241_4653;
/// Deepest directory nesting followed by [`Bootstrap::walk`].
pub const MAX_DEPTH: usize = 4096;

const B: u64 = EROFS_BLOCK_SIZE;

/// The visitor of [`Bootstrap::walk`]: called with each path and its inode.
pub type WalkFn<'a> = dyn FnMut(&[u8], &InodeInfo) -> Result<(), DecodeError> + 'a;

/// One decoded inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeInfo {
    pub nid: u64,
    pub file_type: FileType,
    pub attrs: Attrs,
    pub size: u64,
    pub nlink: u32,
    /// The `i_ino` field (build inode number).
    pub ino: u64,
    /// Data layout (`EROFS_INODE_*`).
    pub layout: u16,
    pub extended: bool,
    pub xattr_icount: u16,
    /// The raw `i_u` union.
    pub u: u32,
}

impl InodeInfo {
    fn inode_size(&self) -> u64 {
        if self.extended {
            EROFS_INODE_EXTENDED_SIZE
        } else {
            EROFS_INODE_COMPACT_SIZE
        }
    }
    fn xattr_size(&self) -> u64 {
        if self.xattr_icount == 0 {
            0
        } else {
            12 + 4 * (self.xattr_icount as u64 - 1)
        }
    }
}

/// An opened bootstrap.
pub struct Bootstrap<R: ReadAt> {
    src: R,
    size: u64,
    sb: SuperBlock,
    ext: ExtSuperBlock,
    meta: u64,
    blobs: Vec<BlobInfo>,
    slots: Vec<DeviceSlot>,
    chunk_map: OnceCell<HashMap<(u32, u32), ChunkRef>>,
}

impl<R: ReadAt> fmt::Debug for Bootstrap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bootstrap")
            .field("size", &self.size)
            .field("superblock", &self.sb)
            .field("ext", &self.ext)
            .field("blobs", &self.blobs.len())
            .finish()
    }
}

fn malformed(what: &'static str, offset: u64, reason: impl Into<String>) -> DecodeError {
    DecodeError::Malformed {
        what,
        offset,
        reason: reason.into(),
    }
}

fn in_file(what: &'static str, offset: u64, len: u64, size: u64) -> Result<(), DecodeError> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(DecodeError::OutOfBounds {
            what,
            offset,
            len,
            file_size: size,
        }),
    }
}

fn validate_sb(sb: &SuperBlock, size: u64) -> Result<(), DecodeError> {
    let at = EROFS_SUPER_OFFSET;
    if sb.magic != EROFS_SUPER_MAGIC {
        return Err(DecodeError::BadMagic {
            what: "EROFS superblock",
            offset: at,
            found: sb.magic as u64,
        });
    }
    if sb.blkszbits == 9 {
        return Err(DecodeError::Unsupported {
            what: "bootstrap",
            reason: "TARFS mode (512-byte blocks)".into(),
        });
    }
    let checks: [(bool, String); 9] = [
        (
            sb.checksum == 0,
            format!("checksum {:#x} must be 0", sb.checksum),
        ),
        (
            sb.feature_compat & EROFS_FEATURE_COMPAT_RAFS_V6 != 0,
            format!("feature_compat {:#x} lacks RAFS_V6", sb.feature_compat),
        ),
        (
            sb.blkszbits == EROFS_BLOCK_BITS,
            format!("blkszbits {} (only 12 is read)", sb.blkszbits),
        ),
        (
            sb.extslots == 0,
            format!("sb_extslots {} must be 0", sb.extslots),
        ),
        (sb.inos != 0, "inos is 0".into()),
        (
            sb.u1 == 0 && sb.xattr_blkaddr == 0,
            "compression union and xattr_blkaddr must be 0".into(),
        ),
        (
            sb.feature_incompat == RAFS_V6_FEATURE_INCOMPAT,
            format!("feature_incompat {:#x} must be 0xc", sb.feature_incompat),
        ),
        (
            sb.devt_slotoff as u64 * EROFS_DEVT_SLOT_SIZE == EROFS_DEVTABLE_OFFSET,
            format!("devt_slotoff {} must be 11", sb.devt_slotoff),
        ),
        (
            (sb.meta_blkaddr as u64) * B <= size,
            format!("meta_blkaddr {} lies past the end", sb.meta_blkaddr),
        ),
    ];
    for (ok, why) in checks {
        if !ok {
            return Err(malformed("EROFS superblock", at, why));
        }
    }
    Ok(())
}

fn validate_ext(ext: &ExtSuperBlock, sb: &SuperBlock, size: u64) -> Result<(), DecodeError> {
    let at = RAFS_V6_EXT_SUPER_OFFSET;
    let bad = |why: String| Err(malformed("RAFS v6 extended superblock", at, why));
    if ext.flags & !rafs_flags::KNOWN != 0 {
        return bad(format!(
            "unknown flag bits {:#x}",
            ext.flags & !rafs_flags::KNOWN
        ));
    }
    if (ext.flags & rafs_flags::COMPRESSION_MASK).count_ones() != 1 {
        return bad(format!(
            "flags {:#x} must name exactly one compressor",
            ext.flags
        ));
    }
    if (ext.flags & rafs_flags::HASH_MASK).count_ones() != 1 {
        return bad(format!(
            "flags {:#x} must name exactly one digester",
            ext.flags
        ));
    }
    let cs = ext.chunk_size as u64;
    if !cs.is_power_of_two() || !(0x1000..=RAFS_MAX_CHUNK_SIZE).contains(&cs) {
        return bad(format!(
            "chunk_size {cs:#x} is not a power of two in 0x1000..=0x1000000"
        ));
    }
    let devt_end = EROFS_DEVTABLE_OFFSET + EROFS_DEVT_SLOT_SIZE * sb.extra_devices as u64;
    let bt = (ext.blob_table_offset, ext.blob_table_size as u64);
    if bt.0 % B != 0 || bt.0 < B || bt.0 < devt_end || bt.1 % RAFS_V6_BLOB_ENTRY_SIZE != 0 {
        return bad(format!(
            "blob table at {:#x} size {} is misplaced",
            bt.0, bt.1
        ));
    }
    in_file("blob table", bt.0, bt.1, size)?;
    if bt.1 / RAFS_V6_BLOB_ENTRY_SIZE != sb.extra_devices as u64 {
        return bad(format!(
            "{} blob entries but {} device slots",
            bt.1 / RAFS_V6_BLOB_ENTRY_SIZE,
            sb.extra_devices
        ));
    }
    if ext.chunk_table_size > 0 {
        let ct = (ext.chunk_table_offset, ext.chunk_table_size);
        if ct.0 % B != 0 || ct.0 < B || ct.1 % RAFS_V6_CHUNK_INFO_SIZE != 0 {
            return bad(format!(
                "chunk table at {:#x} size {} is misplaced",
                ct.0, ct.1
            ));
        }
        in_file("chunk-info table", ct.0, ct.1, size)?;
        if ct.0 < bt.0 + bt.1 && bt.0 < ct.0 + ct.1 {
            return bad("chunk table overlaps the blob table".into());
        }
    }
    if ext.prefetch_table_size > 0 && ext.prefetch_table_offset != 0 {
        let pt = (ext.prefetch_table_offset, ext.prefetch_table_size as u64);
        if pt.0 < B || pt.1 % 4 != 0 {
            return bad(format!(
                "prefetch table at {:#x} size {} is misplaced",
                pt.0, pt.1
            ));
        }
        in_file("prefetch table", pt.0, pt.1, size)?;
    }
    Ok(())
}

fn validate_blob(
    b: &BlobInfo,
    index: u32,
    recorded: u32,
    chunk_size: u32,
    at: u64,
) -> Result<(), DecodeError> {
    let bad = |why: String| {
        Err(malformed(
            "blob table entry",
            at,
            format!("blob {index}: {why}"),
        ))
    };
    if recorded != index {
        return bad(format!("blob_index field is {recorded}"));
    }
    if b.blob_id.is_empty() {
        return bad("empty blob id".into());
    }
    if b.chunk_size != chunk_size {
        return bad(format!(
            "chunk_size {:#x} differs from the superblock's {chunk_size:#x}",
            b.chunk_size
        ));
    }
    if b.chunk_count > 1 << 24 || b.uncompressed_size > 1 << 44 || b.compressed_size > 1 << 40 {
        return bad("chunk count or sizes beyond format limits".into());
    }
    if b.features & 0xFFFF & !0x0FFF != 0 || b.features & blob_features::V5_NO_EXT_BLOB_TABLE != 0 {
        return bad(format!("invalid feature bits {:#x}", b.features));
    }
    if b.features & blob_features::TARFS == 0 && b.features & blob_features::ALIGNED == 0 {
        return bad("ALIGNED is not set".into());
    }
    if b.ci_offset.checked_add(b.ci_compressed_size).is_none()
        || b.ci_compressed_size > b.ci_uncompressed_size
    {
        return bad("inconsistent compression-info sizes".into());
    }
    let special = blob_features::BATCH | blob_features::ZRAN | blob_features::ENCRYPTED;
    let count = b.chunk_count as u64;
    if b.features & blob_features::CHUNK_INFO_V2 != 0 {
        let ok = if b.features & special != 0 {
            b.ci_uncompressed_size >= 24 * count
        } else {
            b.ci_uncompressed_size == 24 * count
        };
        if !ok {
            return bad(format!(
                "ci_uncompressed_size {} does not match {count} v2 entries",
                b.ci_uncompressed_size
            ));
        }
    } else {
        if b.features & special != 0 {
            return bad("BATCH/ZRAN/ENCRYPTED need v2 compression info".into());
        }
        if b.features & (blob_features::IS_CHUNKDICT_GENERATED | blob_features::TARFS) == 0
            && b.ci_uncompressed_size != 16 * count
        {
            return bad(format!(
                "ci_uncompressed_size {} does not match {count} v1 entries",
                b.ci_uncompressed_size
            ));
        }
    }
    if b.cipher_algo > 1 {
        return bad(format!("cipher_algo {}", b.cipher_algo));
    }
    Ok(())
}

impl<R: ReadAt> Bootstrap<R> {
    /// Opens and validates the fixed regions (superblocks, blob table, device slots).
    pub fn open(src: R) -> Result<Self, DecodeError> {
        let size = src.size();
        if size >= 4
            && u32::from_le_bytes(src.read_vec(0, 4)?.try_into().expect("4 bytes"))
                == RAFS_V5_SUPER_MAGIC
        {
            return Err(DecodeError::Unsupported {
                what: "bootstrap",
                reason: "RAFS v5 is not read yet".into(),
            });
        }
        if size < B || size % B != 0 {
            return Err(malformed(
                "bootstrap",
                0,
                format!("size {size} is not a non-zero multiple of 4096"),
            ));
        }
        let sb = SuperBlock::decode_at(
            &src.read_vec(EROFS_SUPER_OFFSET, SuperBlock::SIZE as u64)?,
            EROFS_SUPER_OFFSET,
        )?;
        validate_sb(&sb, size)?;
        let ext = ExtSuperBlock::decode_at(
            &src.read_vec(RAFS_V6_EXT_SUPER_OFFSET, ExtSuperBlock::SIZE as u64)?,
            RAFS_V6_EXT_SUPER_OFFSET,
        )?;
        validate_ext(&ext, &sb, size)?;
        let n = sb.extra_devices as u64;
        let bt = src.read_vec(ext.blob_table_offset, ext.blob_table_size as u64)?;
        let mut r = Reader::new(&bt, ext.blob_table_offset, "blob table");
        let mut blobs = Vec::new();
        for i in 0..n as u32 {
            let at = r.offset();
            let mut e = r.sub(RAFS_V6_BLOB_ENTRY_SIZE as usize, "blob table entry")?;
            let (recorded, info) = decode_blob_entry(&mut e)?;
            validate_blob(&info, i, recorded, ext.chunk_size, at)?;
            blobs.push(info);
        }
        let dt = src.read_vec(EROFS_DEVTABLE_OFFSET, EROFS_DEVT_SLOT_SIZE * n)?;
        let mut r = Reader::new(&dt, EROFS_DEVTABLE_OFFSET, "device table");
        let mut slots = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..n as usize {
            let at = r.offset();
            let mut e = r.sub(EROFS_DEVT_SLOT_SIZE as usize, "device slot")?;
            let s = DeviceSlot::decode(&mut e)?;
            if std::str::from_utf8(&s.tag).is_err() || s.blocks == 0 || !seen.insert(s.tag.clone())
            {
                return Err(malformed(
                    "device slot",
                    at,
                    format!("slot {i}: tag not UTF-8, zero blocks or duplicate"),
                ));
            }
            if s.tag != blobs[i].blob_id.as_bytes() {
                return Err(malformed(
                    "device slot",
                    at,
                    format!("slot {i} names a different blob than the blob table"),
                ));
            }
            slots.push(s);
        }
        let meta = sb.meta_blkaddr as u64 * B;
        Ok(Bootstrap {
            src,
            size,
            sb,
            ext,
            meta,
            blobs,
            slots,
            chunk_map: OnceCell::new(),
        })
    }

    pub fn source(&self) -> &R {
        &self.src
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn superblock(&self) -> &SuperBlock {
        &self.sb
    }
    pub fn ext_superblock(&self) -> &ExtSuperBlock {
        &self.ext
    }
    pub fn blobs(&self) -> &[BlobInfo] {
        &self.blobs
    }
    pub fn device_slots(&self) -> &[DeviceSlot] {
        &self.slots
    }
    pub fn flags(&self) -> u64 {
        self.ext.flags
    }
    pub fn chunk_size(&self) -> u32 {
        self.ext.chunk_size
    }
    pub fn root_nid(&self) -> u64 {
        self.sb.root_nid as u64
    }
    /// The filesystem-level compressor recorded in the flags.
    pub fn compressor(&self) -> Compressor {
        Compressor::from_rafs_flags(self.ext.flags)
    }
    pub fn digester(&self) -> Digester {
        crate::model::digester_of_rafs_flags(self.ext.flags)
    }

    fn inode_offset(&self, nid: u64) -> Result<u64, DecodeError> {
        nid.checked_mul(EROFS_INODE_SLOT_SIZE)
            .and_then(|o| o.checked_add(self.meta))
            .filter(|&o| o < self.size)
            .ok_or(DecodeError::OutOfBounds {
                what: "inode",
                offset: self.meta,
                len: nid,
                file_size: self.size,
            })
    }

    /// Decodes the inode at `nid`.
    pub fn inode(&self, nid: u64) -> Result<InodeInfo, DecodeError> {
        let off = self.inode_offset(nid)?;
        let len = EROFS_INODE_EXTENDED_SIZE.min(self.size - off);
        let bytes = self.src.read_vec(off, len)?;
        let raw = RawInode::decode(&mut Reader::new(&bytes, off, "inode"))?;
        if raw.format & 0xFFF0 != 0
            || ![
                EROFS_INODE_FLAT_PLAIN,
                EROFS_INODE_FLAT_INLINE,
                EROFS_INODE_CHUNK_BASED,
            ]
            .contains(&raw.layout())
        {
            return Err(malformed(
                "inode",
                off,
                format!("nid {nid}: unsupported i_format {:#x}", raw.format),
            ));
        }
        let file_type = FileType::from_mode(raw.mode as u32).ok_or_else(|| {
            malformed(
                "inode",
                off,
                format!("nid {nid}: mode {:#o} has no file type", raw.mode),
            )
        })?;
        if raw.nlink == 0 {
            return Err(malformed("inode", off, format!("nid {nid}: nlink is 0")));
        }
        let want_layout_ok = match file_type {
            FileType::Regular => raw.layout() == EROFS_INODE_CHUNK_BASED,
            FileType::Directory | FileType::Symlink => raw.layout() != EROFS_INODE_CHUNK_BASED,
            _ => raw.layout() == EROFS_INODE_FLAT_PLAIN,
        };
        if !want_layout_ok {
            return Err(malformed(
                "inode",
                off,
                format!(
                    "nid {nid}: layout {} does not suit a {file_type:?}",
                    raw.layout()
                ),
            ));
        }
        in_file("inode", off, raw.inode_size() + raw.xattr_size(), self.size)?;
        let rdev = if file_type.is_device() { raw.u } else { 0 };
        Ok(InodeInfo {
            nid,
            file_type,
            attrs: Attrs {
                mode: raw.mode as u32,
                uid: raw.uid,
                gid: raw.gid,
                mtime: raw.mtime,
                mtime_nsec: raw.mtime_nsec,
                rdev,
            },
            size: raw.size,
            nlink: raw.nlink,
            ino: raw.ino as u64,
            layout: raw.layout(),
            extended: raw.is_extended(),
            xattr_icount: raw.xattr_icount,
            u: raw.u,
        })
    }

    /// The inline xattrs of an inode.
    pub fn xattrs(&self, nid: u64) -> Result<Xattrs, DecodeError> {
        let i = self.inode(nid)?;
        if i.xattr_icount == 0 {
            return Ok(Vec::new());
        }
        let at = self.inode_offset(nid)? + i.inode_size();
        let body = self.src.read_vec(at, i.xattr_size())?;
        xattr::decode(&body, at)
    }

    /// The data of a directory or symlink (FLAT_PLAIN or FLAT_INLINE).
    fn flat_data(&self, i: &InodeInfo) -> Result<Vec<u8>, DecodeError> {
        let at = self.inode_offset(i.nid)?;
        let start = i.u as u64 * B;
        if i.layout == EROFS_INODE_FLAT_PLAIN {
            in_file("directory or symlink data", start, i.size, self.size)?;
            return Ok(self.src.read_vec(start, i.size)?);
        }
        let full = round_down(i.size, B);
        let tail_at = at + i.inode_size() + i.xattr_size();
        let tail = i.size - full;
        if tail_at % B + tail > B {
            return Err(malformed(
                "inode",
                at,
                format!("nid {}: inline data crosses a block boundary", i.nid),
            ));
        }
        in_file("directory or symlink data", start, full, self.size)?;
        in_file("inline data", tail_at, tail, self.size)?;
        let mut v = self.src.read_vec(start, full)?;
        v.extend_from_slice(&self.src.read_vec(tail_at, tail)?);
        Ok(v)
    }

    /// The entries of a directory (`.` and `..` included), in on-disk order.
    pub fn read_dir(&self, nid: u64) -> Result<Vec<DirEntry>, DecodeError> {
        let i = self.inode(nid)?;
        if i.file_type != FileType::Directory {
            return Err(malformed(
                "inode",
                self.inode_offset(nid)?,
                format!("nid {nid} is not a directory"),
            ));
        }
        let data = self.flat_data(&i)?;
        dir::decode(&data, B, i.u as u64 * B)
    }

    /// The target of a symlink.
    pub fn symlink(&self, nid: u64) -> Result<Vec<u8>, DecodeError> {
        let i = self.inode(nid)?;
        if i.file_type != FileType::Symlink || i.size == 0 || i.size > B {
            return Err(malformed(
                "inode",
                self.inode_offset(nid)?,
                format!("nid {nid}: not a symlink of 1..=4096 bytes"),
            ));
        }
        self.flat_data(&i)
    }

    /// The chunk-info table.
    pub fn chunk_table(&self) -> Result<Vec<ChunkRef>, DecodeError> {
        Ok(self
            .chunk_table_with_offsets()?
            .into_iter()
            .map(|(c, _)| c)
            .collect())
    }

    /// The chunk-info table with each record's `file_offset`.
    pub fn chunk_table_with_offsets(&self) -> Result<Vec<(ChunkRef, u64)>, DecodeError> {
        let (at, len) = (self.ext.chunk_table_offset, self.ext.chunk_table_size);
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = self.src.read_vec(at, len)?;
        let mut r = Reader::new(&bytes, at, "chunk-info table");
        let mut out = Vec::with_capacity((len / RAFS_V6_CHUNK_INFO_SIZE) as usize);
        while r.remaining() > 0 {
            let mut e = r.sub(RAFS_V6_CHUNK_INFO_SIZE as usize, "chunk-info record")?;
            out.push(decode_chunk_info(&mut e)?);
        }
        Ok(out)
    }

    fn chunk_map(&self) -> Result<&HashMap<(u32, u32), ChunkRef>, DecodeError> {
        if let Some(m) = self.chunk_map.get() {
            return Ok(m);
        }
        let m = self
            .chunk_table()?
            .into_iter()
            .map(|c| ((c.blob_index, c.index), c))
            .collect();
        Ok(self.chunk_map.get_or_init(|| m))
    }

    /// The chunks of a regular file, in file order, resolved through the chunk-info table.
    pub fn chunks(&self, nid: u64) -> Result<Vec<ChunkRef>, DecodeError> {
        let i = self.inode(nid)?;
        if i.file_type != FileType::Regular {
            return Ok(Vec::new());
        }
        let off = self.inode_offset(nid)?;
        let count = i.size.div_ceil(self.ext.chunk_size as u64);
        let at = round_up(off + i.inode_size() + i.xattr_size(), 8);
        let len = count.saturating_mul(EROFS_CHUNK_INDEX_SIZE);
        in_file("chunk indexes", at, len, self.size)?;
        let bytes = self.src.read_vec(at, len)?;
        let mut r = Reader::new(&bytes, at, "chunk index");
        let map = self.chunk_map()?;
        let mut out = Vec::with_capacity(count as usize);
        for k in 0..count {
            let here = r.offset();
            let (blob, ci, blkaddr) = decode_chunk_index(&mut r)?;
            let c = map.get(&(blob, ci)).ok_or_else(|| {
                malformed("chunk index", here, format!("nid {nid} chunk {k}: blob {blob} chunk {ci} is not in the chunk-info table"))
            })?;
            if c.uncompressed_offset / B != blkaddr as u64 {
                return Err(malformed(
                    "chunk index",
                    here,
                    format!("nid {nid} chunk {k}: blkaddr {blkaddr} disagrees with the chunk-info record"),
                ));
            }
            let expect = if k + 1 == count {
                i.size - k * self.ext.chunk_size as u64
            } else {
                self.ext.chunk_size as u64
            };
            if c.uncompressed_size as u64 != expect {
                return Err(malformed(
                    "chunk index",
                    here,
                    format!(
                        "nid {nid} chunk {k}: chunk holds {} bytes, the file needs {expect}",
                        c.uncompressed_size
                    ),
                ));
            }
            out.push(*c);
        }
        Ok(out)
    }

    /// The prefetch table (nids), up to the first zero entry.
    pub fn prefetch(&self) -> Result<Vec<u32>, DecodeError> {
        let (at, len) = (
            self.ext.prefetch_table_offset,
            self.ext.prefetch_table_size as u64,
        );
        if at == 0 || len == 0 {
            return Ok(Vec::new());
        }
        let bytes = self.src.read_vec(at, len)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .take_while(|&n| n != 0)
            .collect())
    }

    /// Resolves an absolute path to a nid.
    pub fn lookup(&self, path: &[u8]) -> Result<Option<u64>, DecodeError> {
        let mut cur = self.root_nid();
        for comp in path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
        {
            let i = self.inode(cur)?;
            if i.file_type != FileType::Directory {
                return Ok(None);
            }
            match self.read_dir(cur)?.into_iter().find(|e| e.name == comp) {
                Some(e) => cur = e.nid,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// Visits every entry, depth first in directory order, starting with the root (`/`).
    /// Hard links are visited once per name. Cycles and excessive depth are errors.
    pub fn walk(&self, f: &mut WalkFn<'_>) -> Result<(), DecodeError> {
        let root = self.inode(self.root_nid())?;
        if root.file_type != FileType::Directory {
            return Err(malformed("inode", self.meta, "the root is not a directory"));
        }
        f(b"/", &root)?;
        let mut on_path: HashSet<u64> = HashSet::from([root.nid]);
        // Each frame: directory path, its nid, its entries, next entry index.
        let mut stack: Vec<(Vec<u8>, u64, Vec<DirEntry>, usize)> =
            vec![(Vec::new(), root.nid, self.read_dir(root.nid)?, 0)];
        while let Some(top) = stack.last_mut() {
            if top.3 >= top.2.len() {
                on_path.remove(&top.1);
                stack.pop();
                continue;
            }
            let e = top.2[top.3].clone();
            top.3 += 1;
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let mut path = top.0.clone();
            path.push(b'/');
            path.extend_from_slice(&e.name);
            let i = self.inode(e.nid)?;
            f(&path, &i)?;
            if i.file_type == FileType::Directory {
                if !on_path.insert(e.nid) || stack.len() >= MAX_DEPTH {
                    return Err(DecodeError::Cycle { nid: e.nid });
                }
                let entries = self.read_dir(e.nid)?;
                stack.push((path, e.nid, entries, 0));
            }
        }
        Ok(())
    }
}
