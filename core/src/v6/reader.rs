//! The RAFS v6 bootstrap decoder. It reads only the byte ranges it needs through a
//! [`ReadAt`], and checks every offset, length and code before using it (`rafs-v6.md` §15).

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use crate::codec::{round_down, round_up, Codec, Reader};
use crate::digest::Digester;
use crate::error::{
    BlobProblem, ChunkProblem, DecodeError, Feature, InodeProblem, Rule, SlotProblem,
};
use crate::model::{
    blob_features, rafs_flags, Attrs, BlobInfo, ChunkRef, Compressor, FileType, Xattrs,
};
use crate::read::{self, FileChunk, Filesystem, Inode};
use crate::source::ReadAt;
use crate::v6::dir::{self, DirEntry};
use crate::v6::ondisk::*;
use crate::v6::xattr;

/// The RAFS v5 superblock magic at offset 0.
pub const RAFS_V5_SUPER_MAGIC: u32 = 0x5241_4653;
const B: u64 = EROFS_BLOCK_SIZE;

/// One decoded v6 inode, with the layout details the v6 checker and tools need (readers use
/// the version-neutral [`Inode`]).
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
    /// The version-neutral view.
    pub fn neutral(&self) -> Inode {
        Inode {
            nid: self.nid,
            file_type: self.file_type,
            attrs: self.attrs.clone(),
            size: self.size,
            nlink: self.nlink,
            ino: self.ino,
        }
    }
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
    /// `(blob, ci index)` → position of its record in the chunk-info table, built on the first
    /// data read (metadata-only use never reads the table).
    chunk_index: OnceLock<ChunkIndex>,
}

/// Sorted `((blob << 32) | ci index, record position)` pairs of the chunk-info table.
#[derive(Debug, Default)]
struct ChunkIndex(Vec<(u64, u32)>);

/// Chunk-info records read at a time while indexing the table.
const INDEX_PIECE: u64 = 1024;

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

/// A field check: `Some(rule)` if `value` breaks it.
type Check = (&'static str, u64, Option<Rule>);

/// The first failed check of a fixed structure at `offset`, as a [`DecodeError::BadField`].
fn first_bad(what: &'static str, offset: u64, checks: &[Check]) -> Result<(), DecodeError> {
    match checks.iter().find(|c| c.2.is_some()) {
        Some(&(field, value, Some(rule))) => Err(DecodeError::BadField {
            what,
            field,
            offset,
            value,
            rule,
        }),
        _ => Ok(()),
    }
}

/// `Some(rule)` unless `ok`.
fn unless(ok: bool, rule: Rule) -> Option<Rule> {
    (!ok).then_some(rule)
}

/// The bootstrap size rule of §1 (a non-zero multiple of 4096).
fn validate_size(size: u64) -> Result<(), DecodeError> {
    let rule = if size < B {
        Some(Rule::AtLeast(B))
    } else {
        unless(size % B == 0, Rule::MultipleOf(B))
    };
    first_bad("bootstrap", 0, &[("file size", size, rule)])
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
            feature: Feature::TarfsMode,
        });
    }
    let compat = u64::from(EROFS_FEATURE_COMPAT_RAFS_V6);
    let slotoff = EROFS_DEVTABLE_OFFSET / EROFS_DEVT_SLOT_SIZE;
    first_bad(
        "EROFS superblock",
        at,
        &[
            (
                "checksum",
                sb.checksum.into(),
                unless(sb.checksum == 0, Rule::Zero),
            ),
            (
                "feature_compat",
                sb.feature_compat.into(),
                unless(
                    u64::from(sb.feature_compat) & compat != 0,
                    Rule::HasBits(compat),
                ),
            ),
            (
                "blkszbits",
                sb.blkszbits.into(),
                unless(
                    sb.blkszbits == EROFS_BLOCK_BITS,
                    Rule::Equals(EROFS_BLOCK_BITS.into()),
                ),
            ),
            (
                "sb_extslots",
                sb.extslots.into(),
                unless(sb.extslots == 0, Rule::Zero),
            ),
            ("inos", sb.inos, unless(sb.inos != 0, Rule::NonZero)),
            ("u1", sb.u1.into(), unless(sb.u1 == 0, Rule::Zero)),
            (
                "xattr_blkaddr",
                sb.xattr_blkaddr.into(),
                unless(sb.xattr_blkaddr == 0, Rule::Zero),
            ),
            (
                "feature_incompat",
                sb.feature_incompat.into(),
                unless(
                    sb.feature_incompat == RAFS_V6_FEATURE_INCOMPAT,
                    Rule::Equals(RAFS_V6_FEATURE_INCOMPAT.into()),
                ),
            ),
            (
                "devt_slotoff",
                sb.devt_slotoff.into(),
                unless(u64::from(sb.devt_slotoff) == slotoff, Rule::Equals(slotoff)),
            ),
            (
                "meta_blkaddr",
                sb.meta_blkaddr.into(),
                unless(
                    u64::from(sb.meta_blkaddr) * B <= size,
                    Rule::AtMost(size / B),
                ),
            ),
        ],
    )
}

fn validate_ext(ext: &ExtSuperBlock, sb: &SuperBlock, size: u64) -> Result<(), DecodeError> {
    const WHAT: &str = "RAFS v6 extended superblock";
    let at = RAFS_V6_EXT_SUPER_OFFSET;
    let f = ext.flags;
    let cs = ext.chunk_size as u64;
    let devt_end = EROFS_DEVTABLE_OFFSET + EROFS_DEVT_SLOT_SIZE * sb.extra_devices as u64;
    let bt = (ext.blob_table_offset, ext.blob_table_size as u64);
    let aligned = |o: u64| unless(o % B == 0, Rule::MultipleOf(B));
    first_bad(
        WHAT,
        at,
        &[
            (
                "flags",
                f,
                unless(
                    f & !rafs_flags::KNOWN == 0,
                    Rule::KnownBits(rafs_flags::KNOWN),
                ),
            ),
            (
                "flags",
                f,
                unless(
                    (f & rafs_flags::COMPRESSION_MASK).count_ones() == 1,
                    Rule::OneBitOf(rafs_flags::COMPRESSION_MASK),
                ),
            ),
            (
                "flags",
                f,
                unless(
                    (f & rafs_flags::HASH_MASK).count_ones() == 1,
                    Rule::OneBitOf(rafs_flags::HASH_MASK),
                ),
            ),
            (
                "chunk_size",
                cs,
                unless(
                    cs.is_power_of_two() && (0x1000..=RAFS_MAX_CHUNK_SIZE).contains(&cs),
                    Rule::PowerOfTwoIn(0x1000, RAFS_MAX_CHUNK_SIZE),
                ),
            ),
            ("blob_table_offset", bt.0, aligned(bt.0)),
            (
                "blob_table_offset",
                bt.0,
                unless(bt.0 >= B.max(devt_end), Rule::AtLeast(B.max(devt_end))),
            ),
            (
                "blob_table_size",
                bt.1,
                unless(
                    bt.1 % RAFS_V6_BLOB_ENTRY_SIZE == 0,
                    Rule::MultipleOf(RAFS_V6_BLOB_ENTRY_SIZE),
                ),
            ),
        ],
    )?;
    in_file("blob table", bt.0, bt.1, size)?;
    let n = u64::from(sb.extra_devices);
    first_bad(
        WHAT,
        at,
        &[(
            "blob_table_size",
            bt.1,
            unless(
                bt.1 / RAFS_V6_BLOB_ENTRY_SIZE == n,
                Rule::Matches {
                    other: "extra_devices",
                    value: n,
                },
            ),
        )],
    )?;
    // Empty regions overlap nothing.
    let overlaps =
        |a: (u64, u64), b: (u64, u64)| a.1 > 0 && b.1 > 0 && a.0 < b.0 + b.1 && b.0 < a.0 + a.1;
    let ct = (ext.chunk_table_offset, ext.chunk_table_size);
    if ct.1 > 0 {
        first_bad(
            WHAT,
            at,
            &[
                ("chunk_table_offset", ct.0, aligned(ct.0)),
                (
                    "chunk_table_offset",
                    ct.0,
                    unless(ct.0 >= B, Rule::AtLeast(B)),
                ),
                (
                    "chunk_table_size",
                    ct.1,
                    unless(
                        ct.1 % RAFS_V6_CHUNK_INFO_SIZE == 0,
                        Rule::MultipleOf(RAFS_V6_CHUNK_INFO_SIZE),
                    ),
                ),
            ],
        )?;
        in_file("chunk-info table", ct.0, ct.1, size)?;
        if overlaps(ct, bt) {
            return Err(DecodeError::Overlap {
                what: "chunk-info table",
                other: "blob table",
                offset: ct.0,
            });
        }
    }
    if ext.prefetch_table_size > 0 && ext.prefetch_table_offset != 0 {
        let pt = (ext.prefetch_table_offset, ext.prefetch_table_size as u64);
        first_bad(
            WHAT,
            at,
            &[
                (
                    "prefetch_table_offset",
                    pt.0,
                    unless(pt.0 >= B, Rule::AtLeast(B)),
                ),
                (
                    "prefetch_table_size",
                    pt.1,
                    unless(pt.1 % 4 == 0, Rule::MultipleOf(4)),
                ),
            ],
        )?;
        in_file("prefetch table", pt.0, pt.1, size)?;
        for (other, t) in [("blob table", bt), ("chunk-info table", ct)] {
            if overlaps(pt, t) {
                return Err(DecodeError::Overlap {
                    what: "prefetch table",
                    other,
                    offset: pt.0,
                });
            }
        }
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
    let bad = |problem| {
        Err(DecodeError::BadBlobEntry {
            blob: index,
            offset: at,
            problem,
        })
    };
    let field = |field, value: u64, rule| bad(BlobProblem::Field { field, value, rule });
    if recorded != index {
        return field("blob_index", recorded.into(), Rule::Equals(index.into()));
    }
    if b.blob_id.is_empty() {
        return bad(BlobProblem::EmptyId);
    }
    if b.chunk_size != chunk_size {
        return field(
            "chunk_size",
            b.chunk_size.into(),
            Rule::Matches {
                other: "the extended superblock's chunk_size",
                value: chunk_size.into(),
            },
        );
    }
    for (name, value, max) in [
        ("chunk_count", u64::from(b.chunk_count), 1 << 24),
        ("uncompressed_size", b.uncompressed_size, 1 << 44),
        ("compressed_size", b.compressed_size, 1 << 40),
    ] {
        if value > max {
            return field(name, value, Rule::AtMost(max));
        }
    }
    // Low 16 bits limited to 0x0FFF; V5_NO_EXT_BLOB_TABLE is not a v6 feature.
    let known = !(0xF000 | blob_features::V5_NO_EXT_BLOB_TABLE);
    if b.features & !known != 0 {
        return field("features", b.features.into(), Rule::KnownBits(known.into()));
    }
    if b.features & blob_features::TARFS == 0 && b.features & blob_features::ALIGNED == 0 {
        return field(
            "features",
            b.features.into(),
            Rule::HasBits(blob_features::ALIGNED.into()),
        );
    }
    if b.ci_offset.checked_add(b.ci_compressed_size).is_none() {
        return field(
            "ci_offset",
            b.ci_offset,
            Rule::AtMost(u64::MAX - b.ci_compressed_size),
        );
    }
    if b.ci_compressed_size > b.ci_uncompressed_size {
        return field(
            "ci_compressed_size",
            b.ci_compressed_size,
            Rule::AtMost(b.ci_uncompressed_size),
        );
    }
    let special = blob_features::BATCH | blob_features::ZRAN | blob_features::ENCRYPTED;
    let count = b.chunk_count as u64;
    let ci = b.ci_uncompressed_size;
    if b.features & blob_features::CHUNK_INFO_V2 != 0 {
        if b.features & special != 0 {
            if ci < 24 * count {
                return field("ci_uncompressed_size", ci, Rule::AtLeast(24 * count));
            }
        } else if ci != 24 * count {
            return field("ci_uncompressed_size", ci, Rule::Equals(24 * count));
        }
    } else {
        if b.features & special != 0 {
            return bad(BlobProblem::NeedsChunkInfoV2 {
                features: b.features,
            });
        }
        if b.features & (blob_features::IS_CHUNKDICT_GENERATED | blob_features::TARFS) == 0
            && ci != 16 * count
        {
            return field("ci_uncompressed_size", ci, Rule::Equals(16 * count));
        }
    }
    if b.cipher_algo > 1 {
        return field("cipher_algo", b.cipher_algo.into(), Rule::AtMost(1));
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
                feature: Feature::RafsV5,
            });
        }
        validate_size(size)?;
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
            let (recorded, info) = decode_blob_entry(&mut e, i)?;
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
            let problem = if std::str::from_utf8(&s.tag).is_err() {
                Some(SlotProblem::TagNotUtf8)
            } else if s.blocks == 0 {
                Some(SlotProblem::ZeroBlocks)
            } else if !seen.insert(s.tag.clone()) {
                Some(SlotProblem::DuplicateTag)
            } else if s.tag != blobs[i].blob_id.as_bytes() {
                Some(SlotProblem::NotTheBlobId)
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(DecodeError::BadDeviceSlot {
                    slot: i as u32,
                    offset: at,
                    problem,
                });
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
            chunk_index: OnceLock::new(),
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
    pub fn device_slots(&self) -> &[DeviceSlot] {
        &self.slots
    }
    pub fn flags(&self) -> u64 {
        self.ext.flags
    }
    /// The filesystem-level compressor recorded in the flags.
    pub fn compressor(&self) -> Compressor {
        Compressor::from_rafs_flags(self.ext.flags)
    }
    pub fn digester(&self) -> Digester {
        crate::model::digester_of_rafs_flags(self.ext.flags)
    }

    fn inode_offset(&self, nid: u64) -> Result<u64, DecodeError> {
        let at = nid
            .checked_mul(EROFS_INODE_SLOT_SIZE)
            .and_then(|o| o.checked_add(self.meta));
        at.filter(|&o| o < self.size).ok_or(DecodeError::BadInode {
            nid,
            offset: at.unwrap_or(u64::MAX),
            problem: InodeProblem::NoSuchInode,
        })
    }

    /// Decodes the inode at `nid`, with its v6 layout details.
    pub fn inode_info(&self, nid: u64) -> Result<InodeInfo, DecodeError> {
        let off = self.inode_offset(nid)?;
        let len = EROFS_INODE_EXTENDED_SIZE.min(self.size - off);
        let bytes = self.src.read_vec(off, len)?;
        let raw = RawInode::decode(&mut Reader::new(&bytes, off, "inode"))?;
        let bad = |problem| DecodeError::BadInode {
            nid,
            offset: off,
            problem,
        };
        if raw.format & 0xFFF0 != 0
            || ![
                EROFS_INODE_FLAT_PLAIN,
                EROFS_INODE_FLAT_INLINE,
                EROFS_INODE_CHUNK_BASED,
            ]
            .contains(&raw.layout())
        {
            return Err(bad(InodeProblem::UnknownFormat(raw.format)));
        }
        let file_type =
            FileType::from_mode(raw.mode as u32).ok_or(bad(InodeProblem::NoFileType {
                mode: raw.mode as u32,
            }))?;
        if raw.nlink == 0 {
            return Err(bad(InodeProblem::ZeroNlink));
        }
        let want_layout_ok = match file_type {
            FileType::Regular => raw.layout() == EROFS_INODE_CHUNK_BASED,
            FileType::Directory | FileType::Symlink => raw.layout() != EROFS_INODE_CHUNK_BASED,
            _ => raw.layout() == EROFS_INODE_FLAT_PLAIN,
        };
        if !want_layout_ok {
            return Err(bad(InodeProblem::LayoutMismatch {
                layout: raw.layout(),
                file_type,
            }));
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

    fn wrong_type(&self, i: &InodeInfo, expected: FileType) -> DecodeError {
        DecodeError::BadInode {
            nid: i.nid,
            offset: self.inode_offset(i.nid).unwrap_or(0),
            problem: InodeProblem::WrongType {
                expected,
                found: i.file_type,
            },
        }
    }

    /// Where block `k` of a directory's or symlink's data lives, and its length: full blocks
    /// at `i_u × B` (all of them for FLAT_PLAIN), the tail of FLAT_INLINE after the inode.
    fn data_block(&self, i: &InodeInfo, k: u64) -> Result<(u64, u64), DecodeError> {
        let start = i.u as u64 * B;
        let blocks = i.size.div_ceil(B);
        if k >= blocks {
            return Err(DecodeError::OutOfBounds {
                what: "directory or symlink data",
                offset: start,
                len: (k + 1) * B,
                file_size: i.size,
            });
        }
        let len = (i.size - k * B).min(B);
        let full = round_down(i.size, B);
        let (at, len) = if i.layout == EROFS_INODE_FLAT_INLINE && k * B >= full {
            let iat = self.inode_offset(i.nid)?;
            let tail_at = iat + i.inode_size() + i.xattr_size();
            if tail_at % B + len > B {
                return Err(DecodeError::BadInode {
                    nid: i.nid,
                    offset: iat,
                    problem: InodeProblem::InlineCrossesBlock,
                });
            }
            (tail_at, len)
        } else {
            let at = start.checked_add(k * B).ok_or(DecodeError::OutOfBounds {
                what: "directory or symlink data",
                offset: start,
                len: i.size,
                file_size: self.size,
            })?;
            (at, len)
        };
        in_file("directory or symlink data", at, len, self.size)?;
        Ok((at, len))
    }

    /// The data of a directory or symlink (FLAT_PLAIN or FLAT_INLINE).
    fn flat_data(&self, i: &InodeInfo) -> Result<Vec<u8>, DecodeError> {
        if i.size > self.size {
            return Err(DecodeError::OutOfBounds {
                what: "directory or symlink data",
                offset: i.u as u64 * B,
                len: i.size,
                file_size: self.size,
            });
        }
        let blocks = i.size.div_ceil(B);
        let mut v = Vec::with_capacity(i.size as usize);
        // Full blocks are contiguous: one read for them, one for an inline tail.
        let full = if i.layout == EROFS_INODE_FLAT_INLINE {
            round_down(i.size, B) / B
        } else {
            blocks
        };
        if full > 0 {
            let (at, _) = self.data_block(i, 0)?;
            let len = (i.size).min(full * B);
            in_file("directory or symlink data", at, len, self.size)?;
            v.extend_from_slice(&self.src.read_vec(at, len)?);
        }
        if full < blocks {
            let (at, len) = self.data_block(i, full)?;
            v.extend_from_slice(&self.src.read_vec(at, len)?);
        }
        Ok(v)
    }

    /// The entries of a directory as stored (`.` and `..` included), in on-disk order.
    pub fn dir_entries(&self, nid: u64) -> Result<Vec<DirEntry>, DecodeError> {
        let i = self.inode_info(nid)?;
        if i.file_type != FileType::Directory {
            return Err(self.wrong_type(&i, FileType::Directory));
        }
        let data = self.flat_data(&i)?;
        dir::decode(&data, B, i.u as u64 * B, nid)
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

    /// The index of the chunk-info table, built once (reading the table a piece at a time and
    /// keeping 12 bytes per record).
    fn chunk_index(&self) -> Result<&ChunkIndex, DecodeError> {
        if let Some(ix) = self.chunk_index.get() {
            return Ok(ix);
        }
        let (at, len) = (self.ext.chunk_table_offset, self.ext.chunk_table_size);
        let records = len / RAFS_V6_CHUNK_INFO_SIZE;
        let mut keys = Vec::with_capacity(records as usize);
        let mut pos = 0u64;
        while pos < records {
            let n = INDEX_PIECE.min(records - pos);
            let bytes = self.src.read_vec(
                at + pos * RAFS_V6_CHUNK_INFO_SIZE,
                n * RAFS_V6_CHUNK_INFO_SIZE,
            )?;
            for (k, rec) in bytes
                .chunks_exact(RAFS_V6_CHUNK_INFO_SIZE as usize)
                .enumerate()
            {
                // blob_index at 32, index at 72 (rafs-v5.md §10).
                let blob = u32::from_le_bytes(rec[32..36].try_into().expect("4 bytes"));
                let ci = u32::from_le_bytes(rec[72..76].try_into().expect("4 bytes"));
                keys.push((
                    (u64::from(blob) << 32) | u64::from(ci),
                    (pos + k as u64) as u32,
                ));
            }
            pos += n;
        }
        keys.sort_unstable();
        let _ = self.chunk_index.set(ChunkIndex(keys));
        Ok(self.chunk_index.get().expect("set above"))
    }

    /// The chunk-info record of `(blob, ci index)`, if the table has one.
    fn chunk_record(&self, blob: u32, ci: u32) -> Result<Option<ChunkRef>, DecodeError> {
        let key = (u64::from(blob) << 32) | u64::from(ci);
        let ix = self.chunk_index()?;
        let Ok(i) = ix.0.binary_search_by_key(&key, |&(k, _)| k) else {
            return Ok(None);
        };
        let at = self.ext.chunk_table_offset + u64::from(ix.0[i].1) * RAFS_V6_CHUNK_INFO_SIZE;
        let bytes = self.src.read_vec(at, RAFS_V6_CHUNK_INFO_SIZE)?;
        let (c, _) = decode_chunk_info(&mut Reader::new(&bytes, at, "chunk-info record"))?;
        Ok(Some(c))
    }

    /// The prefetch table (nids), up to the first zero entry.
    pub fn prefetch(&self) -> Result<Vec<u64>, DecodeError> {
        read::prefetch(self)
    }
}

impl<R: ReadAt> Filesystem for Bootstrap<R> {
    fn version(&self) -> u32 {
        6
    }
    fn root_nid(&self) -> u64 {
        self.sb.root_nid as u64
    }
    fn chunk_size(&self) -> u32 {
        self.ext.chunk_size
    }
    fn blobs(&self) -> &[BlobInfo] {
        &self.blobs
    }

    fn inode(&self, nid: u64) -> Result<Inode, DecodeError> {
        Ok(self.inode_info(nid)?.neutral())
    }

    fn read_dir(&self, nid: u64) -> Result<Vec<read::DirEntry>, DecodeError> {
        let at = self.inode_offset(nid)?;
        self.dir_entries(nid)?
            .into_iter()
            .filter(|e| e.name != b"." && e.name != b"..")
            .map(|e| neutral_entry(e, at))
            .collect()
    }

    /// Binary search over the directory's blocks (names are sorted within and across blocks),
    /// then within the block: `log2(blocks) + 1` block reads.
    fn lookup_child(&self, dir: u64, name: &[u8]) -> Result<Option<read::DirEntry>, DecodeError> {
        let i = self.inode_info(dir)?;
        if i.file_type != FileType::Directory {
            return Err(self.wrong_type(&i, FileType::Directory));
        }
        let at = self.inode_offset(dir)?;
        let block = |k: u64| -> Result<Vec<DirEntry>, DecodeError> {
            let (off, len) = self.data_block(&i, k)?;
            dir::decode(&self.src.read_vec(off, len)?, B, off, dir)
        };
        let (mut lo, mut hi) = (0u64, i.size.div_ceil(B));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let entries = block(mid)?;
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                return Ok(None);
            };
            if name < first.name.as_slice() {
                hi = mid;
            } else if name > last.name.as_slice() {
                lo = mid + 1;
            } else {
                return match entries.binary_search_by(|e| e.name.as_slice().cmp(name)) {
                    Ok(k) if name != b"." && name != b".." => {
                        Ok(Some(neutral_entry(entries[k].clone(), at)?))
                    }
                    _ => Ok(None),
                };
            }
        }
        Ok(None)
    }

    fn symlink(&self, nid: u64) -> Result<Vec<u8>, DecodeError> {
        let i = self.inode_info(nid)?;
        if i.file_type != FileType::Symlink {
            return Err(self.wrong_type(&i, FileType::Symlink));
        }
        if i.size == 0 || i.size > B {
            return Err(DecodeError::BadInode {
                nid,
                offset: self.inode_offset(nid)?,
                problem: InodeProblem::SymlinkSize(i.size),
            });
        }
        self.flat_data(&i)
    }

    fn xattrs(&self, nid: u64) -> Result<Xattrs, DecodeError> {
        let i = self.inode_info(nid)?;
        if i.xattr_icount == 0 {
            return Ok(Vec::new());
        }
        let at = self.inode_offset(nid)? + i.inode_size();
        let body = self.src.read_vec(at, i.xattr_size())?;
        xattr::decode(&body, at, nid)
    }

    fn file_chunks(
        &self,
        inode: &Inode,
        offset: u64,
        len: u64,
    ) -> Result<Vec<FileChunk>, DecodeError> {
        let nid = inode.nid;
        let i = self.inode_info(nid)?;
        if i.file_type != FileType::Regular {
            return Err(self.wrong_type(&i, FileType::Regular));
        }
        let cs = self.ext.chunk_size as u64;
        let count = i.size.div_ceil(cs);
        let end = offset.saturating_add(len).min(i.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let (first, last) = (offset / cs, end.div_ceil(cs));
        let base = round_up(self.inode_offset(nid)? + i.inode_size() + i.xattr_size(), 8);
        in_file(
            "chunk indexes",
            base,
            count.saturating_mul(EROFS_CHUNK_INDEX_SIZE),
            self.size,
        )?;
        let at = base + first * EROFS_CHUNK_INDEX_SIZE;
        let bytes = self
            .src
            .read_vec(at, (last - first) * EROFS_CHUNK_INDEX_SIZE)?;
        let mut r = Reader::new(&bytes, at, "chunk index");
        let mut out = Vec::with_capacity((last - first) as usize);
        for k in first..last {
            let here = r.offset();
            let bad = |problem| DecodeError::BadChunk {
                nid,
                position: k,
                offset: here,
                problem,
            };
            let index = decode_chunk_index(&mut r).map_err(|e| match e {
                // Device 0 is a rule of this chunk of this file: say which.
                DecodeError::BadField {
                    field: "device_id", ..
                } => bad(ChunkProblem::DeviceZero),
                e => e,
            })?;
            let Some((blob, ci, blkaddr)) = index else {
                continue; // EROFS_NULL_ADDR: a hole.
            };
            let c = self
                .chunk_record(blob, ci)?
                .ok_or(bad(ChunkProblem::NotInTable { blob, index: ci }))?;
            if c.uncompressed_offset / B != blkaddr as u64 {
                return Err(bad(ChunkProblem::BlkaddrMismatch {
                    blkaddr,
                    uncompressed_offset: c.uncompressed_offset,
                }));
            }
            let needs = if k + 1 == count { i.size - k * cs } else { cs };
            if c.uncompressed_size as u64 != needs {
                return Err(bad(ChunkProblem::SizeMismatch {
                    holds: c.uncompressed_size,
                    needs,
                }));
            }
            out.push(FileChunk {
                file_offset: k * cs,
                chunk: c,
            });
        }
        Ok(out)
    }

    fn prefetch_table(&self) -> Result<Vec<u8>, DecodeError> {
        let (at, len) = (
            self.ext.prefetch_table_offset,
            self.ext.prefetch_table_size as u64,
        );
        if at == 0 || len == 0 {
            return Ok(Vec::new());
        }
        Ok(self.src.read_vec(at, len)?)
    }
}

/// A stored directory entry as readers see it; an unknown type code is an error.
fn neutral_entry(e: DirEntry, at: u64) -> Result<read::DirEntry, DecodeError> {
    let file_type = FileType::from_erofs_code(e.file_type).ok_or(DecodeError::BadField {
        what: "directory entry",
        field: "file_type",
        offset: at,
        value: e.file_type.into(),
        rule: Rule::Known,
    })?;
    Ok(read::DirEntry {
        name: e.name,
        nid: e.nid,
        file_type,
    })
}
