//! Directory blocks (`rafs-v6.md` §11): entries sorted by raw name bytes (`.` and `..`
//! included), packed greedily into blocks of dirents followed by their names.

use crate::codec::{PutLe, Reader};
use crate::error::{DecodeError, DirProblem};
use crate::v6::ondisk::EROFS_DIRENT_SIZE;

/// One directory entry to write or as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub nid: u64,
    /// EROFS file type code (§11.1).
    pub file_type: u8,
}

/// Splits sorted entries into blocks: each item is the range of entries in one block.
fn blocks(names: &[&[u8]], block: u64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0u64;
    for (i, n) in names.iter().enumerate() {
        let need = EROFS_DIRENT_SIZE + n.len() as u64;
        if used + need > block && i > start {
            out.push(start..i);
            start = i;
            used = 0;
        }
        used += need;
    }
    if start < names.len() {
        out.push(start..names.len());
    }
    out
}

/// `i_size` of a directory whose sorted entry names are `names` (§11.3).
pub fn dir_size(names: &[&[u8]], block: u64) -> u64 {
    let b = blocks(names, block);
    let mut size = 0;
    for (k, r) in b.iter().enumerate() {
        let used: u64 = names[r.clone()]
            .iter()
            .map(|n| EROFS_DIRENT_SIZE + n.len() as u64)
            .sum();
        size = if k + 1 == b.len() {
            size + used
        } else {
            size + block
        };
    }
    size
}

/// Encodes the directory content of sorted `entries` (exactly [`dir_size`] bytes).
pub fn encode(entries: &[DirEntry], block: u64) -> Vec<u8> {
    let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
    let b = blocks(&names, block);
    let mut out = Vec::new();
    for (k, r) in b.iter().enumerate() {
        let start = out.len();
        let mut nameoff = EROFS_DIRENT_SIZE * r.len() as u64;
        for e in &entries[r.clone()] {
            out.put_u64(e.nid);
            out.put_u16(nameoff as u16);
            out.put_u8(e.file_type);
            out.put_u8(0);
            nameoff += e.name.len() as u64;
        }
        for e in &entries[r.clone()] {
            out.extend_from_slice(&e.name);
        }
        if k + 1 != b.len() {
            out.resize(start + block as usize, 0);
        }
    }
    out
}

/// Decodes directory content of `size` bytes (`data`, starting at absolute `base`) of
/// directory `nid`.
pub fn decode(data: &[u8], block: u64, base: u64, nid: u64) -> Result<Vec<DirEntry>, DecodeError> {
    let mut out = Vec::new();
    for (k, blk) in data.chunks(block as usize).enumerate() {
        let at = base + k as u64 * block;
        let bad = |problem| DecodeError::BadDirectory {
            nid,
            offset: at,
            problem,
        };
        let mut r = Reader::new(blk, at, "directory block");
        let first_raw = {
            let mut p = Reader::new(blk, at, "directory block");
            p.skip(8)?;
            p.u16()?
        };
        let first_off = u64::from(first_raw);
        if first_off == 0 || first_off % EROFS_DIRENT_SIZE != 0 || first_off > blk.len() as u64 {
            return Err(bad(DirProblem::FirstNameOffset(first_raw)));
        }
        let count = (first_off / EROFS_DIRENT_SIZE) as usize;
        let mut raw = Vec::with_capacity(count);
        for _ in 0..count {
            let nid = r.u64()?;
            let nameoff = r.u16()? as usize;
            let file_type = r.u8()?;
            r.skip(1)?;
            raw.push((nid, nameoff, file_type));
        }
        for i in 0..count {
            let (nid, start, ft) = raw[i];
            let end = if i + 1 < count {
                raw[i + 1].1
            } else {
                // A start past the block is caught with the range below.
                let tail = blk.get(start..).unwrap_or_default();
                start + tail.iter().position(|&b| b == 0).unwrap_or(tail.len())
            };
            if start < first_off as usize || end < start || end > blk.len() {
                return Err(bad(DirProblem::NameOutside {
                    entry: i as u32,
                    start: start as u64,
                    end: end as u64,
                }));
            }
            if end == start {
                return Err(bad(DirProblem::EmptyName { entry: i as u32 }));
            }
            out.push(DirEntry {
                name: blk[start..end].to_vec(),
                nid,
                file_type: ft,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_block_round_trip_and_size() {
        let mut entries: Vec<DirEntry> = (0..600u32)
            .map(|i| DirEntry {
                name: format!("file-{i:05}").into_bytes(),
                nid: 200 + i as u64,
                file_type: 1,
            })
            .collect();
        entries.push(DirEntry {
            name: b".".to_vec(),
            nid: 128,
            file_type: 2,
        });
        entries.push(DirEntry {
            name: b"..".to_vec(),
            nid: 128,
            file_type: 2,
        });
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
        let size = dir_size(&names, 4096);
        let bytes = encode(&entries, 4096);
        assert_eq!(bytes.len() as u64, size);
        assert!(size > 4096 * 2);
        assert_eq!(decode(&bytes, 4096, 0, 1).unwrap(), entries);
    }

    #[test]
    fn worked_example_root() {
        let names: [&[u8]; 4] = [b".", b"..", b"hello.txt", b"link"];
        assert_eq!(dir_size(&names, 4096), 64);
    }
}
