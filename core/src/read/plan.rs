//! Read plans: which slices of which chunks (and which holes) produce a range of a file.

use crate::digest::Digester;
use crate::error::{ChunkProblem, DecodeError, InodeProblem};
use crate::model::{BlobInfo, ChunkRef, Compressor, FileType};
use crate::read::fs::{FileChunk, Filesystem, Inode};

/// The part of one chunk a plan wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkExtent {
    /// The chunk: blob index, ci index, compressed and uncompressed offset and size, flags,
    /// digest and CRC.
    pub chunk: ChunkRef,
    /// The compressor of the chunk's blob (used when the chunk is flagged COMPRESSED).
    pub compressor: Compressor,
    /// The digester its digest was made with.
    pub digester: Digester,
    /// Bytes of the uncompressed chunk before the wanted slice.
    pub skip: u32,
    /// Bytes wanted, from `skip` on.
    pub take: u32,
}

/// One piece of a plan, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// A slice of a chunk's uncompressed bytes.
    Chunk(ChunkExtent),
    /// Bytes no chunk stores: zeros.
    Hole { len: u64 },
}

impl Extent {
    /// Bytes this extent produces.
    pub fn len(&self) -> u64 {
        match self {
            Extent::Chunk(c) => u64::from(c.take),
            Extent::Hole { len } => *len,
        }
    }
    /// Whether it produces no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The extents that produce bytes `offset..offset + len` of a file (or, for
/// [`ReadPlan::whole_chunks`], a list of chunks): their lengths add up to `len`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    /// First byte, in the file.
    pub offset: u64,
    /// Bytes produced: the range asked for, cut at the end of the file.
    pub len: u64,
    pub extents: Vec<Extent>,
}

impl ReadPlan {
    /// The chunk extents, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &ChunkExtent> {
        self.extents.iter().filter_map(|e| match e {
            Extent::Chunk(c) => Some(c),
            Extent::Hole { .. } => None,
        })
    }

    /// A plan producing every byte of each of `chunks`, one after another (a checker reading
    /// every chunk of an image, an export writing them out).
    pub fn whole_chunks(chunks: &[ChunkRef], blobs: &[BlobInfo]) -> Result<ReadPlan, DecodeError> {
        let mut plan = ReadPlan::default();
        for c in chunks {
            let e = extent(c, blobs, 0, c.uncompressed_size, 0, 0)?;
            plan.len += u64::from(c.uncompressed_size);
            plan.extents.push(Extent::Chunk(e));
        }
        Ok(plan)
    }
}

fn extent(
    c: &ChunkRef,
    blobs: &[BlobInfo],
    skip: u32,
    take: u32,
    nid: u64,
    position: u64,
) -> Result<ChunkExtent, DecodeError> {
    let b = blobs
        .get(c.blob_index as usize)
        .ok_or(DecodeError::BadChunk {
            nid,
            position,
            offset: 0,
            problem: ChunkProblem::NoSuchBlob {
                blob: c.blob_index,
                blobs: blobs.len() as u32,
            },
        })?;
    Ok(ChunkExtent {
        chunk: *c,
        compressor: b.compressor,
        digester: b.digester,
        skip,
        take,
    })
}

/// Plans bytes `offset..offset + len` of regular file `inode` (cut at its end; an offset at
/// or past the end gives an empty plan). Only the chunk records of that range are read.
pub fn plan<F: Filesystem + ?Sized>(
    fs: &F,
    inode: &Inode,
    offset: u64,
    len: u64,
) -> Result<ReadPlan, DecodeError> {
    if inode.file_type != FileType::Regular {
        return Err(DecodeError::BadInode {
            nid: inode.nid,
            offset: 0,
            problem: InodeProblem::WrongType {
                expected: FileType::Regular,
                found: inode.file_type,
            },
        });
    }
    let start = offset.min(inode.size);
    let end = offset.saturating_add(len).min(inode.size);
    let mut plan = ReadPlan {
        offset: start,
        len: end - start,
        extents: Vec::new(),
    };
    if start == end {
        return Ok(plan);
    }
    let chunks = fs.file_chunks(inode, start, end - start)?;
    let cs = u64::from(fs.chunk_size());
    let mut pos = start;
    for FileChunk { file_offset, chunk } in chunks.iter().copied() {
        let c_end = file_offset + u64::from(chunk.uncompressed_size);
        let position = file_offset / cs.max(1);
        if c_end <= pos || file_offset >= end {
            // Decoders return only overlapping chunks, in order; anything else is a bug of
            // the image (overlapping chunks) that must not produce bytes twice.
            return Err(DecodeError::BadChunk {
                nid: inode.nid,
                position,
                offset: 0,
                problem: ChunkProblem::Order { file_offset },
            });
        }
        if file_offset > pos {
            plan.extents.push(Extent::Hole {
                len: file_offset - pos,
            });
            pos = file_offset;
        }
        let skip = pos - file_offset;
        let take = c_end.min(end) - pos;
        plan.extents.push(Extent::Chunk(extent(
            &chunk,
            fs.blobs(),
            skip as u32,
            take as u32,
            inode.nid,
            position,
        )?));
        pos += take;
    }
    if pos < end {
        plan.extents.push(Extent::Hole { len: end - pos });
    }
    debug_assert_eq!(plan.extents.iter().map(Extent::len).sum::<u64>(), plan.len);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::error::SourceError;
    use crate::memimage::{build, MemEntry, MemImage, MemOptions};
    use crate::rafs::Rafs;
    use crate::read::exec::{read_to_vec, BlobLayout};
    use crate::read::lookup;
    use crate::source::ReadAt;

    const CS: u32 = 0x1000;

    fn file(path: &str, data: Vec<u8>) -> MemEntry {
        MemEntry::file(path.as_bytes(), data)
    }

    /// Distinct, compressible-but-not-trivial bytes.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2654435761) >> 13) as u8 ^ seed)
            .collect()
    }

    fn tree() -> Vec<MemEntry> {
        vec![
            MemEntry::dir(b"/"),
            file("/small", b"hello\n".to_vec()),
            file("/empty", Vec::new()),
            file("/exact", pattern(2 * CS as usize, 1)),
            file("/long", pattern(7 * CS as usize + 123, 2)),
        ]
    }

    fn image(v5: bool, compressor: Compressor) -> MemImage {
        build(
            &tree(),
            &MemOptions {
                chunk_size: CS,
                compressor,
                v5,
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// Reads `offset..offset + len` of `path` through a plan.
    fn read(boot: &Rafs<Vec<u8>>, blob: &[u8], path: &str, offset: u64, len: u64) -> Vec<u8> {
        let nid = lookup(boot, path.as_bytes()).unwrap().unwrap();
        let p = boot.plan(nid, offset, len).unwrap();
        read_to_vec(&p, |_| Ok((blob, BlobLayout::Stored))).unwrap()
    }

    fn expect(data: &[u8], offset: u64, len: u64) -> Vec<u8> {
        let s = (offset as usize).min(data.len());
        let e = (offset.saturating_add(len) as usize).min(data.len());
        data[s..e].to_vec()
    }

    #[test]
    fn ranges_inside_across_and_past_the_end_v5_and_v6() {
        for v5 in [false, true] {
            for c in [Compressor::Zstd, Compressor::None, Compressor::Lz4Block] {
                let img = image(v5, c);
                let boot = Rafs::open(img.bootstrap.clone()).unwrap();
                for e in tree()
                    .iter()
                    .filter(|e| e.entry.file_type == FileType::Regular)
                {
                    let path = std::str::from_utf8(&e.path).unwrap();
                    let n = e.data.len() as u64;
                    let cs = CS as u64;
                    let mut cases = vec![
                        (0, n),
                        (0, u64::MAX),
                        (0, 0),
                        (1, 3),
                        (n, 10),
                        (n + 5, 10),
                        (u64::MAX, 1),
                    ];
                    if n > cs {
                        cases.extend([
                            (cs - 1, 2),
                            (cs, cs),
                            (cs + 7, 3 * cs),
                            (n - 1, 1),
                            (n - 3, 100),
                            (10, n - 20),
                        ]);
                    }
                    for (o, l) in cases {
                        assert_eq!(
                            read(&boot, &img.blob, path, o, l),
                            expect(&e.data, o, l),
                            "v5 {v5} {c:?} {path} {o}+{l}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_plan_names_chunk_slices() {
        let img = image(false, Compressor::Zstd);
        let boot = Rafs::open(img.bootstrap.clone()).unwrap();
        let nid = boot.lookup(b"/long").unwrap().unwrap();
        // From the middle of chunk 1 to 5 bytes into chunk 3.
        let p = boot.plan(nid, 0x1800, 0x1805).unwrap();
        assert_eq!((p.offset, p.len), (0x1800, 0x1805));
        let slices: Vec<(u32, u32)> = p.chunks().map(|c| (c.skip, c.take)).collect();
        assert_eq!(slices, [(0x800, 0x800), (0, 0x1000), (0, 5)]);
        assert!(p.chunks().all(|c| c.compressor == Compressor::Zstd));
        // The last chunk is short; a read past the end is cut there.
        let p = boot.plan(nid, 7 * 0x1000, 1 << 20).unwrap();
        assert_eq!(p.len, 123);
        assert_eq!(p.extents.len(), 1);
        // Not a regular file.
        let root = boot.root_nid();
        assert!(matches!(
            boot.plan(root, 0, 1),
            Err(DecodeError::BadInode {
                problem: InodeProblem::WrongType { .. },
                ..
            })
        ));
    }

    /// Counts the bytes a decoder reads.
    struct Counting<'a>(&'a [u8], Cell<u64>);
    impl ReadAt for Counting<'_> {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
            self.1.set(self.1.get() + buf.len() as u64);
            self.0.read_exact_at(offset, buf)
        }
    }

    #[test]
    fn a_plan_reads_only_the_records_it_needs() {
        // 200 chunks; a 10-byte read in chunk 150.
        let mut t = tree();
        t.push(file("/big", pattern(200 * CS as usize, 3)));
        for v5 in [false, true] {
            let img = build(
                &t,
                &MemOptions {
                    chunk_size: CS,
                    v5,
                    ..Default::default()
                },
            )
            .unwrap();
            let src = Counting(&img.bootstrap, Cell::new(0));
            let boot = Rafs::open(&src).unwrap();
            let nid = boot.lookup(b"/big").unwrap().unwrap();
            boot.plan(nid, 0, 1).unwrap(); // v6 indexes its chunk-info table once
            src.1.set(0);
            let p = boot.plan(nid, 150 * CS as u64 + 5, 10).unwrap();
            assert_eq!(p.chunks().count(), 1);
            // The inode (and name), one chunk index and one record; not 200 records.
            assert!(src.1.get() <= 512, "v5 {v5}: read {} bytes", src.1.get());
        }
    }

    #[test]
    fn v5_chunk_records_that_skip_a_hole() {
        use crate::v5::ondisk::inode_flags;
        let img = image(true, Compressor::Zstd);
        let mut boot_bytes = img.bootstrap.clone();
        let (rec, span) = {
            let Rafs::V5(b) = Rafs::open(img.bootstrap.clone()).unwrap() else {
                panic!("v5 expected")
            };
            let nid = crate::read::lookup(&b, b"/exact").unwrap().unwrap();
            let r = b.record(nid).unwrap();
            (r.offset, r.offset + 128 + 8) // name "exact" pads to 8 bytes
        };
        // i_size 4 chunks, HAS_HOLE, the second record moved to file offset 2 × CS: the file
        // reads chunk 0, a hole, the old chunk 1, a hole at the end.
        let cs = CS as u64;
        boot_bytes[rec as usize + 64..][..8].copy_from_slice(&(4 * cs).to_le_bytes());
        let flags = u64::from_le_bytes(boot_bytes[rec as usize + 80..][..8].try_into().unwrap());
        boot_bytes[rec as usize + 80..][..8]
            .copy_from_slice(&(flags | inode_flags::HAS_HOLE).to_le_bytes());
        let second = span as usize + 80;
        boot_bytes[second + 64..][..8].copy_from_slice(&(2 * cs).to_le_bytes());
        let boot = Rafs::open(boot_bytes).unwrap();
        let data = pattern(2 * CS as usize, 1);
        let mut want = data[..CS as usize].to_vec();
        want.extend(vec![0u8; CS as usize]);
        want.extend_from_slice(&data[CS as usize..]);
        want.extend(vec![0u8; CS as usize]);
        assert_eq!(read(&boot, &img.blob, "/exact", 0, u64::MAX), want);
        for (o, l) in [
            (cs - 2, 4),
            (cs + 10, 20),
            (2 * cs - 1, 2),
            (3 * cs + 1, 9),
            (5, 3 * cs),
        ] {
            assert_eq!(
                read(&boot, &img.blob, "/exact", o, l),
                expect(&want, o, l),
                "{o}+{l}"
            );
        }
        let nid = boot.lookup(b"/exact").unwrap().unwrap();
        let p = boot.plan(nid, 0, u64::MAX).unwrap();
        let kinds: Vec<bool> = p
            .extents
            .iter()
            .map(|e| matches!(e, Extent::Hole { .. }))
            .collect();
        assert_eq!(kinds, [false, true, false, true]);
        // Merging such a file would lose the hole: refused.
        assert!(crate::layer::entries_of_image(&boot).is_err());
    }

    #[test]
    fn v6_chunk_indexes_with_the_null_address_are_holes() {
        let img = image(false, Compressor::Zstd);
        let mut bytes = img.bootstrap.clone();
        let Rafs::V6(b) = Rafs::open(img.bootstrap.clone()).unwrap() else {
            panic!("v6 expected")
        };
        let nid = crate::read::lookup(&b, b"/long").unwrap().unwrap();
        let i = b.inode_info(nid).unwrap();
        let isz = if i.extended { 64 } else { 32 };
        let xsz = if i.xattr_icount == 0 {
            0
        } else {
            12 + 4 * (u64::from(i.xattr_icount) - 1)
        };
        let meta = u64::from(b.superblock().meta_blkaddr) * 4096;
        let base = (meta + nid * 32 + isz + xsz).next_multiple_of(8);
        let second = (base + 8 + 4) as usize; // blkaddr of chunk index 1
        bytes[second..second + 4]
            .copy_from_slice(&crate::v6::ondisk::EROFS_NULL_ADDR.to_le_bytes());
        let boot = Rafs::open(bytes).unwrap();
        let mut want = pattern(7 * CS as usize + 123, 2);
        want[CS as usize..2 * CS as usize].fill(0);
        assert_eq!(read(&boot, &img.blob, "/long", 0, u64::MAX), want);
        assert_eq!(
            read(&boot, &img.blob, "/long", CS as u64 - 1, 3),
            expect(&want, CS as u64 - 1, 3)
        );
    }

    #[test]
    fn upstream_images_read_by_range_equal_their_whole_files() {
        // three-chunks.bin of scripts/golden_tree.py: byte i is (7 i) mod 251, 9000 bytes.
        let want: Vec<u8> = (0..9000u32).map(|i| ((i * 7) % 251) as u8).collect();
        for (boot, blob) in [
            ("up-dir-zstd.boot", "up-dir-zstd.blob"),
            ("up-dir-lz4-sha256.boot", "up-dir-lz4-sha256.blob"),
            ("up-dir-v5.boot", "up-dir-v5.blob"),
        ] {
            let boot = Rafs::open(golden(boot).to_vec()).unwrap();
            let blob = golden(blob);
            for (o, l) in [
                (0, 9000),
                (4095, 2),
                (4096, 4096),
                (8191, 1000),
                (100, 8000),
                (9000, 1),
            ] {
                assert_eq!(
                    read(&boot, blob, "/three-chunks.bin", o, l),
                    expect(&want, o, l),
                    "{o}+{l}"
                );
            }
        }
    }

    fn golden(name: &str) -> &'static [u8] {
        match name {
            "up-dir-zstd.boot" => include_bytes!("../../tests/golden/upstream/up-dir-zstd.boot"),
            "up-dir-zstd.blob" => include_bytes!("../../tests/golden/upstream/up-dir-zstd.blob"),
            "up-dir-lz4-sha256.boot" => {
                include_bytes!("../../tests/golden/upstream/up-dir-lz4-sha256.boot")
            }
            "up-dir-lz4-sha256.blob" => {
                include_bytes!("../../tests/golden/upstream/up-dir-lz4-sha256.blob")
            }
            "up-dir-v5.boot" => include_bytes!("../../tests/golden/upstream/up-dir-v5.boot"),
            "up-dir-v5.blob" => include_bytes!("../../tests/golden/upstream/up-dir-v5.blob"),
            _ => unreachable!("{name}"),
        }
    }
}
