//! The RAFS v5 decoder: reads the fixed tables on open and inode records on demand, checking
//! every offset and length against the file first (`rafs-v5.md` §2–§10).

use std::collections::BTreeMap;

use crate::codec::Reader;
use crate::digest::Digester;
use crate::error::{BlobProblem, ChunkProblem, DecodeError, InodeProblem, Rule};
use crate::model::{
    blob_features, digester_of_rafs_flags, rafs_flags, Attrs, BlobInfo, ChunkRef, Compressor,
    FileType, Xattrs,
};
use crate::read::{self, DirEntry, FileChunk, Filesystem, Inode};
use crate::source::ReadAt;
use crate::v5::ondisk::Inode as Inode5;
use crate::v5::ondisk::*;

/// An opened v5 bootstrap.
#[derive(Debug)]
pub struct Bootstrap<R: ReadAt> {
    src: R,
    size: u64,
    sb: SuperBlock,
    /// Record offset of each inode number (index = ino - 1).
    table: Vec<u64>,
    blobs: Vec<BlobInfo>,
}

/// One decoded inode record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Inode-table number of this record (not `i_ino`, which hard links share).
    pub number: u64,
    pub offset: u64,
    pub inode: Inode5,
    pub name: Vec<u8>,
    /// Offset of the symlink target / xattr table / chunk records that follow.
    tail: u64,
}

/// A failed field rule of the v5 superblock (at offset 0).
fn bad_sb(field: &'static str, value: u64, rule: Rule) -> DecodeError {
    DecodeError::BadField {
        what: "v5 superblock",
        field,
        offset: 0,
        value,
        rule,
    }
}

impl<R: ReadAt> Bootstrap<R> {
    pub fn open(src: R) -> Result<Self, DecodeError> {
        let size = src.size();
        let size_rule = if size < RAFS_V5_SUPERBLOCK_SIZE + 8 {
            Some(Rule::AtLeast(RAFS_V5_SUPERBLOCK_SIZE + 8))
        } else if size > RAFS_V5_MAX_METADATA_SIZE {
            Some(Rule::AtMost(RAFS_V5_MAX_METADATA_SIZE))
        } else if size % 8 != 0 {
            Some(Rule::MultipleOf(8))
        } else {
            None
        };
        if let Some(rule) = size_rule {
            return Err(DecodeError::BadField {
                what: "bootstrap",
                field: "file size",
                offset: 0,
                value: size,
                rule,
            });
        }
        let head = src.read_vec(0, RAFS_V5_SUPERBLOCK_SIZE)?;
        let sb = SuperBlock::decode(&mut Reader::new(&head, 0, "v5 superblock"))?;
        if sb.magic != RAFS_V5_SUPER_MAGIC {
            return Err(DecodeError::BadMagic {
                what: "v5 superblock",
                offset: 0,
                found: sb.magic as u64,
            });
        }
        if sb.fs_version != RAFS_V5_SUPER_VERSION {
            return Err(bad_sb(
                "s_fs_version",
                sb.fs_version.into(),
                Rule::Equals(RAFS_V5_SUPER_VERSION.into()),
            ));
        }
        if sb.sb_size as u64 != RAFS_V5_SUPERBLOCK_SIZE {
            return Err(bad_sb(
                "s_sb_size",
                sb.sb_size.into(),
                Rule::Equals(RAFS_V5_SUPERBLOCK_SIZE),
            ));
        }
        if !sb.block_size.is_power_of_two() || !(0x1000..=0x100_0000).contains(&sb.block_size) {
            return Err(bad_sb(
                "s_block_size",
                sb.block_size.into(),
                Rule::PowerOfTwoIn(0x1000, 0x100_0000),
            ));
        }
        // v5 images never carry the XTS cipher bit; ENCRYPTION_NONE is tolerated.
        let known = rafs_flags::KNOWN & !rafs_flags::ENCRYPTION_AES_128_XTS;
        if sb.flags & !known != 0 {
            return Err(bad_sb("s_flags", sb.flags, Rule::KnownBits(known)));
        }
        for mask in [rafs_flags::COMPRESSION_MASK, rafs_flags::HASH_MASK] {
            if (sb.flags & mask).count_ones() > 1 {
                return Err(bad_sb("s_flags", sb.flags, Rule::AtMostOneBitOf(mask)));
            }
        }
        let e = sb.inode_table_entries as u64;
        if e == 0 {
            return Err(bad_sb("s_inode_table_entries", 0, Rule::NonZero));
        }
        if sb.inodes_count > e {
            return Err(bad_sb("s_inodes_count", sb.inodes_count, Rule::AtMost(e)));
        }
        let tables = [
            ("inode table", sb.inode_table_offset, align8(4 * e)),
            (
                "prefetch table",
                sb.prefetch_table_offset,
                align8(4 * sb.prefetch_table_entries as u64),
            ),
            (
                "blob table",
                sb.blob_table_offset,
                sb.blob_table_size as u64,
            ),
            (
                "extended blob table",
                sb.extended_blob_table_offset,
                RAFS_V5_EXT_BLOB_ENTRY_SIZE * sb.extended_blob_table_entries as u64,
            ),
        ];
        let mut spans: Vec<(u64, u64, &'static str)> = Vec::new();
        for (what, at, len) in tables {
            let end = at.checked_add(len);
            if at % 8 != 0 || at < RAFS_V5_SUPERBLOCK_SIZE || end.is_none_or(|e| e > size) {
                return Err(DecodeError::OutOfBounds {
                    what,
                    offset: at,
                    len,
                    file_size: size,
                });
            }
            if len > 0 {
                spans.push((at, at + len, what));
            }
        }
        spans.sort();
        for w in spans.windows(2) {
            if w[0].1 > w[1].0 {
                return Err(DecodeError::Overlap {
                    what: w[1].2,
                    other: w[0].2,
                    offset: w[1].0,
                });
            }
        }
        let it = src.read_vec(sb.inode_table_offset, 4 * e)?;
        let table: Vec<u64> = it
            .chunks_exact(4)
            .map(|b| (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64) << 3)
            .collect();
        for (i, &off) in table.iter().enumerate() {
            if off <= RAFS_V5_SUPERBLOCK_SIZE || off + RAFS_V5_INODE_SIZE > size {
                return Err(DecodeError::BadInode {
                    nid: i as u64 + 1,
                    offset: sb.inode_table_offset + 4 * i as u64,
                    problem: InodeProblem::RecordOutside(off),
                });
            }
        }
        let compressor = Compressor::from_rafs_flags(sb.flags);
        let digester = digester_of_rafs_flags(sb.flags);
        let bt = src.read_vec(sb.blob_table_offset, sb.blob_table_size as u64)?;
        let mut blobs = Vec::new();
        let mut p = 0usize;
        while bt.len() - p >= 9 {
            let id_start = p + 8;
            let id_end = bt[id_start..]
                .iter()
                .position(|&b| b == 0)
                .map_or(bt.len(), |z| id_start + z);
            let raw = &bt[id_start..id_end];
            let problem = match std::str::from_utf8(raw) {
                Err(_) => Some(BlobProblem::NotUtf8 { field: "blob_id" }),
                Ok("") => Some(BlobProblem::EmptyId),
                Ok(s) if s.len() > 64 => Some(BlobProblem::IdTooLong(s.len() as u64)),
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                return Err(DecodeError::BadBlobEntry {
                    blob: blobs.len() as u32,
                    offset: sb.blob_table_offset + p as u64,
                    problem,
                });
            }
            let id = std::str::from_utf8(raw).expect("checked above");
            blobs.push(BlobInfo {
                blob_id: id.to_string(),
                chunk_size: sb.block_size,
                compressor,
                digester,
                features: blob_features::V5_NO_EXT_BLOB_TABLE,
                ..BlobInfo::default()
            });
            p = id_end + 1;
            if bt
                .get(id_end + 1..)
                .is_none_or(|rest| rest.iter().all(|&b| b == 0))
            {
                break;
            }
        }
        let n = sb.extended_blob_table_entries as usize;
        if n > 0 {
            if n != blobs.len() {
                return Err(bad_sb(
                    "s_extended_blob_table_entries",
                    n as u64,
                    Rule::Matches {
                        other: "the blob table's entries",
                        value: blobs.len() as u64,
                    },
                ));
            }
            let ext = src.read_vec(
                sb.extended_blob_table_offset,
                RAFS_V5_EXT_BLOB_ENTRY_SIZE * n as u64,
            )?;
            let mut r = Reader::new(&ext, sb.extended_blob_table_offset, "extended blob table");
            for b in &mut blobs {
                b.chunk_count = r.u32()?;
                b.features = r.u32()?;
                b.uncompressed_size = r.u64()?;
                b.compressed_size = r.u64()?;
                r.skip(40)?;
            }
        }
        Ok(Bootstrap {
            src,
            size,
            sb,
            table,
            blobs,
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
    pub fn flags(&self) -> u64 {
        self.sb.flags
    }
    /// Number of inode-table entries (every path).
    pub fn entries(&self) -> u64 {
        self.table.len() as u64
    }
    pub fn compressor(&self) -> Compressor {
        Compressor::from_rafs_flags(self.sb.flags)
    }
    pub fn digester(&self) -> Digester {
        digester_of_rafs_flags(self.sb.flags)
    }

    /// Reads `len` bytes of `what` at `at`, refusing a range outside the file.
    fn read(&self, what: &'static str, at: u64, len: u64) -> Result<Vec<u8>, DecodeError> {
        if at.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(DecodeError::OutOfBounds {
                what,
                offset: at,
                len,
                file_size: self.size,
            });
        }
        Ok(self.src.read_vec(at, len)?)
    }

    /// Reads the record of inode-table number `number` (1-based).
    pub fn record(&self, number: u64) -> Result<Record, DecodeError> {
        let off = *number
            .checked_sub(1)
            .and_then(|i| self.table.get(i as usize))
            .ok_or(DecodeError::BadInode {
                nid: number,
                offset: self.sb.inode_table_offset,
                problem: InodeProblem::NoSuchInode,
            })?;
        let bytes = self.src.read_vec(off, RAFS_V5_INODE_SIZE)?;
        let inode = Inode5::decode(&mut Reader::new(&bytes, off, "v5 inode"))?;
        let bad = |problem| DecodeError::BadInode {
            nid: number,
            offset: off,
            problem,
        };
        let e = self.table.len() as u64;
        if inode.ino == 0 || inode.ino > e {
            return Err(bad(InodeProblem::InoOutOfRange {
                ino: inode.ino,
                max: e,
            }));
        }
        if inode.nlink == 0 {
            return Err(bad(InodeProblem::ZeroNlink));
        }
        if inode.name_size == 0 || inode.name_size > 256 {
            return Err(bad(InodeProblem::NameSize(inode.name_size)));
        }
        if number != 1 && inode.parent == 0 {
            return Err(bad(InodeProblem::NoParent));
        }
        let name_at = off + RAFS_V5_INODE_SIZE;
        let name = self.read("v5 inode name", name_at, inode.name_size as u64)?;
        if number != 1 && (name.contains(&b'/') || name == b"." || name == b"..") {
            return Err(bad(InodeProblem::BadName));
        }
        Ok(Record {
            number,
            offset: off,
            tail: name_at + align8(inode.name_size as u64),
            inode,
            name,
        })
    }

    fn file_type(r: &Record) -> Result<FileType, DecodeError> {
        FileType::from_mode(r.inode.mode).ok_or(DecodeError::BadInode {
            nid: r.number,
            offset: r.offset,
            problem: InodeProblem::NoFileType { mode: r.inode.mode },
        })
    }

    fn expect_type(r: &Record, expected: FileType) -> Result<(), DecodeError> {
        let found = Self::file_type(r)?;
        if found != expected {
            return Err(DecodeError::BadInode {
                nid: r.number,
                offset: r.offset,
                problem: InodeProblem::WrongType { expected, found },
            });
        }
        Ok(())
    }

    fn info(&self, r: &Record) -> Result<Inode, DecodeError> {
        let ft = Self::file_type(r)?;
        let i = &r.inode;
        Ok(Inode {
            nid: r.number,
            file_type: ft,
            attrs: Attrs {
                mode: i.mode,
                uid: i.uid,
                gid: i.gid,
                mtime: i.mtime,
                mtime_nsec: i.mtime_nsec,
                // Kept as stored (tar sources write 0xFFFFFFFF for non-devices), so that a
                // merge of v5 layers writes the same value back.
                rdev: i.rdev,
            },
            size: if ft == FileType::Directory { 0 } else { i.size },
            nlink: i.nlink,
            ino: i.ino,
        })
    }

    fn symlink_span(r: &Record) -> u64 {
        if r.inode.flags & inode_flags::SYMLINK != 0 {
            align8(r.inode.symlink_size as u64)
        } else {
            0
        }
    }

    /// Offset and pair bytes of the xattr table of a record, if any.
    fn xattr_span(&self, r: &Record) -> Result<(u64, u64), DecodeError> {
        let at = r.tail + Self::symlink_span(r);
        if r.inode.flags & inode_flags::XATTR == 0 {
            return Ok((at, 0));
        }
        let h = self.read("v5 xattr table", at, 8)?;
        let size = u64::from_le_bytes(h.try_into().expect("8 bytes"));
        if size > self.size {
            return Err(DecodeError::BadInode {
                nid: r.number,
                offset: at,
                problem: InodeProblem::XattrTableSize(size),
            });
        }
        Ok((at, size))
    }

    /// The children of directory record `r`: `(first inode number, count)`, checked against
    /// the inode table.
    fn children(&self, r: &Record) -> Result<(u64, u64), DecodeError> {
        Self::expect_type(r, FileType::Directory)?;
        let (first, count) = (r.inode.child_index as u64, r.inode.child_count as u64);
        if count == 0 {
            return Ok((first, 0));
        }
        let e = self.table.len() as u64;
        if first <= r.number.max(r.inode.ino) || first + count - 1 > e {
            return Err(DecodeError::BadInode {
                nid: r.number,
                offset: r.offset,
                problem: InodeProblem::ChildrenOutside {
                    first,
                    count,
                    max: e,
                },
            });
        }
        Ok((first, count))
    }

    /// Child record `c` of directory `r`, checked to name `r` as its parent.
    fn child(&self, r: &Record, c: u64) -> Result<(Record, DirEntry), DecodeError> {
        let cr = self.record(c)?;
        if cr.inode.parent != r.inode.ino {
            return Err(DecodeError::BadInode {
                nid: c,
                offset: cr.offset,
                problem: InodeProblem::ForeignChild {
                    child: c,
                    parent: cr.inode.parent,
                    expected: r.inode.ino,
                },
            });
        }
        let e = DirEntry {
            name: cr.name.clone(),
            nid: c,
            file_type: Self::file_type(&cr)?,
        };
        Ok((cr, e))
    }

    /// Offset and count of a regular file record's chunk records.
    fn chunk_span(&self, r: &Record) -> Result<(u64, u64), DecodeError> {
        let (xat, xsize) = self.xattr_span(r)?;
        let at = if xsize > 0 || r.inode.flags & inode_flags::XATTR != 0 {
            xat + 8 + align8(xsize)
        } else {
            xat
        };
        let count = r.inode.child_count as u64;
        let want = r.inode.size.div_ceil(self.sb.block_size as u64);
        if r.inode.flags & inode_flags::HAS_HOLE == 0 && count != want {
            return Err(DecodeError::BadInode {
                nid: r.number,
                offset: r.offset,
                problem: InodeProblem::ChunkCount {
                    count,
                    size: r.inode.size,
                },
            });
        }
        let len = count.saturating_mul(RAFS_V5_CHUNK_INFO_SIZE);
        if at.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(DecodeError::OutOfBounds {
                what: "v5 chunk records",
                offset: at,
                len,
                file_size: self.size,
            });
        }
        Ok((at, count))
    }

    /// Every distinct chunk, ordered by (blob, ci index).
    pub fn chunk_table(&self) -> Result<Vec<ChunkRef>, DecodeError> {
        let mut m = BTreeMap::new();
        let mut err = None;
        read::walk(self, &mut |_, i| {
            if i.file_type == FileType::Regular {
                match self.all_chunks(i.nid) {
                    Ok(cs) => {
                        for c in cs {
                            m.insert((c.chunk.blob_index, c.chunk.index), c.chunk);
                        }
                    }
                    Err(e) => err = Some(e),
                }
            }
            Ok(())
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        Ok(m.into_values().collect())
    }

    /// The prefetch table (inode numbers), up to the first zero entry.
    pub fn prefetch(&self) -> Result<Vec<u64>, DecodeError> {
        read::prefetch(self)
    }

    /// Whether some inode carries the HARDLINK flag (the image was built from tar layers).
    pub fn has_hardlink_flag(&self) -> Result<bool, DecodeError> {
        for n in 1..=self.table.len() as u64 {
            if self.record(n)?.inode.flags & inode_flags::HARDLINK != 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The Merkle digest recorded for inode `nid` and the one its content gives (§9).
    pub fn digests(
        &self,
        nid: u64,
    ) -> Result<(crate::digest::Digest, crate::digest::Digest), DecodeError> {
        let r = self.record(nid)?;
        let d = self.digester();
        let ft = Self::file_type(&r)?;
        let computed = match ft {
            FileType::Regular => {
                let cat: Vec<u8> = self
                    .all_chunks(nid)?
                    .iter()
                    .flat_map(|c| c.chunk.digest.0)
                    .collect();
                d.digest(&cat)
            }
            FileType::Symlink => d.digest(&self.symlink(nid)?),
            FileType::Directory => {
                let mut cat = Vec::new();
                for e in self.read_dir(nid)? {
                    cat.extend_from_slice(&self.record(e.nid)?.inode.digest.0);
                }
                d.digest(&cat)
            }
            _ => d.digest(b""),
        };
        Ok((r.inode.digest, computed))
    }
}

impl<R: ReadAt> Filesystem for Bootstrap<R> {
    fn version(&self) -> u32 {
        5
    }
    fn root_nid(&self) -> u64 {
        1
    }
    fn chunk_size(&self) -> u32 {
        self.sb.block_size
    }
    fn blobs(&self) -> &[BlobInfo] {
        &self.blobs
    }

    fn inode(&self, nid: u64) -> Result<Inode, DecodeError> {
        self.info(&self.record(nid)?)
    }

    /// The children: consecutive inode numbers.
    fn read_dir(&self, nid: u64) -> Result<Vec<DirEntry>, DecodeError> {
        let r = self.record(nid)?;
        let (first, count) = self.children(&r)?;
        (first..first + count)
            .map(|c| self.child(&r, c).map(|(_, e)| e))
            .collect()
    }

    /// Binary search over the children's records (writers order them by name).
    fn lookup_child(&self, dir: u64, name: &[u8]) -> Result<Option<DirEntry>, DecodeError> {
        let r = self.record(dir)?;
        let (first, count) = self.children(&r)?;
        let (mut lo, mut hi) = (first, first + count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (_, e) = self.child(&r, mid)?;
            match e.name.as_slice().cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(e)),
            }
        }
        Ok(None)
    }

    fn symlink(&self, nid: u64) -> Result<Vec<u8>, DecodeError> {
        let r = self.record(nid)?;
        Self::expect_type(&r, FileType::Symlink)?;
        if r.inode.symlink_size == 0 || r.inode.symlink_size as u64 != r.inode.size {
            return Err(DecodeError::BadInode {
                nid,
                offset: r.offset,
                problem: InodeProblem::SymlinkSize(r.inode.symlink_size.into()),
            });
        }
        self.read("v5 symlink target", r.tail, r.inode.symlink_size as u64)
    }

    fn xattrs(&self, nid: u64) -> Result<Xattrs, DecodeError> {
        let r = self.record(nid)?;
        let (at, size) = self.xattr_span(&r)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let body = self.read("v5 xattr table", at + 8, size)?;
        decode_xattr_pairs(&body, at + 8, nid)
    }

    /// Without HAS_HOLE, chunk `k` covers `k × chunk_size..` and only the records of the
    /// range are read; with HAS_HOLE the records say where they are (`file_offset`), so all
    /// of the file's records are read and checked to be in order, apart and inside the file.
    fn file_chunks(
        &self,
        inode: &Inode,
        offset: u64,
        len: u64,
    ) -> Result<Vec<FileChunk>, DecodeError> {
        let nid = inode.nid;
        let r = self.record(nid)?;
        Self::expect_type(&r, FileType::Regular)?;
        let size = r.inode.size;
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let (at, count) = self.chunk_span(&r)?;
        let cs = self.sb.block_size as u64;
        let holes = r.inode.flags & inode_flags::HAS_HOLE != 0;
        let (first, last) = if holes {
            (0, count)
        } else {
            (offset / cs, end.div_ceil(cs))
        };
        let start = at + first * RAFS_V5_CHUNK_INFO_SIZE;
        let bytes = self
            .src
            .read_vec(start, (last - first) * RAFS_V5_CHUNK_INFO_SIZE)?;
        let mut rd = Reader::new(&bytes, start, "v5 chunk record");
        let mut out = Vec::new();
        let mut prev_end = 0u64;
        for k in first..last {
            let here = rd.offset();
            let bad = |problem| DecodeError::BadChunk {
                nid,
                position: k,
                offset: here,
                problem,
            };
            let (c, file_offset) = decode_chunk(&mut rd)?;
            if c.blob_index as usize >= self.blobs.len() {
                return Err(bad(ChunkProblem::NoSuchBlob {
                    blob: c.blob_index,
                    blobs: self.blobs.len() as u32,
                }));
            }
            let c_end = file_offset.checked_add(c.uncompressed_size.into());
            if holes {
                if file_offset < prev_end || c_end.is_none_or(|e| e > size) {
                    return Err(bad(ChunkProblem::Order { file_offset }));
                }
                prev_end = c_end.expect("checked");
                if prev_end <= offset || file_offset >= end {
                    continue;
                }
            } else {
                let needs = if k + 1 == count { size - k * cs } else { cs };
                if file_offset != k * cs {
                    return Err(bad(ChunkProblem::FileOffset {
                        found: file_offset,
                        expected: k * cs,
                    }));
                }
                if c.uncompressed_size as u64 != needs {
                    return Err(bad(ChunkProblem::SizeMismatch {
                        holds: c.uncompressed_size,
                        needs,
                    }));
                }
            }
            out.push(FileChunk {
                file_offset,
                chunk: c,
            });
        }
        Ok(out)
    }

    fn prefetch_table(&self) -> Result<Vec<u8>, DecodeError> {
        let n = self.sb.prefetch_table_entries as u64;
        if n == 0 {
            return Ok(Vec::new());
        }
        Ok(self.src.read_vec(self.sb.prefetch_table_offset, 4 * n)?)
    }
}
