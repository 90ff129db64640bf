//! Structural check of a RAFS v6 bootstrap: everything upstream `nydusd` and the kernel
//! validate, plus the consistency rules of the writer (`rafs-v6.md` §9–§15). Collects every
//! finding instead of stopping at the first.

use crate::read::{self, Filesystem};
use std::collections::HashMap;

use crate::model::FileType;
use crate::report::Report;
use crate::source::ReadAt;
use crate::v6::reader::Bootstrap;

/// Checks a bootstrap's tree, tables and chunk references.
pub fn check<R: ReadAt>(boot: &Bootstrap<R>) -> Report {
    let mut rep = Report::default();
    let table = match boot.chunk_table_with_offsets() {
        Ok(t) => t,
        Err(e) => {
            rep.error("chunk-info table", e.to_string());
            Vec::new()
        }
    };
    for w in table.windows(2) {
        if (w[0].0.digest, w[0].0.blob_index) >= (w[1].0.digest, w[1].0.blob_index) {
            rep.error(
                "chunk-info table",
                format!(
                    "records for {} are not in ascending unique order",
                    w[1].0.digest
                ),
            );
            break;
        }
    }
    let blobs = boot.blobs();
    for (c, _) in &table {
        match blobs.get(c.blob_index as usize) {
            None => rep.error(
                "chunk-info table",
                format!(
                    "chunk {} names blob {} of {}",
                    c.digest,
                    c.blob_index,
                    blobs.len()
                ),
            ),
            Some(b) => {
                if c.index >= b.chunk_count {
                    rep.error(
                        &b.blob_id,
                        format!(
                            "chunk {} has ci index {} of {}",
                            c.digest, c.index, b.chunk_count
                        ),
                    );
                }
                if c.uncompressed_offset % 4096 != 0
                    || c.uncompressed_offset + c.uncompressed_size as u64 > b.uncompressed_size
                {
                    rep.error(
                        &b.blob_id,
                        format!(
                            "chunk {} lies outside the aligned uncompressed blob",
                            c.digest
                        ),
                    );
                }
                if !c.is_compressed() && c.compressed_size != c.uncompressed_size {
                    rep.error(
                        &b.blob_id,
                        format!("uncompressed chunk {} has differing sizes", c.digest),
                    );
                }
            }
        }
    }

    let mut seen_nids: HashMap<u64, u32> = HashMap::new();
    let mut entries = 0u64;
    let mut parent_of: HashMap<u64, u64> = HashMap::new();
    let res = read::walk(boot, &mut |path, i| {
        entries += 1;
        let shown = String::from_utf8_lossy(path).into_owned();
        *seen_nids.entry(i.nid).or_default() += 1;
        match i.file_type {
            FileType::Directory => match boot.dir_entries(i.nid) {
                Ok(list) => {
                    if list.windows(2).any(|w| w[0].name >= w[1].name) {
                        rep.error(&shown, "directory entries are not sorted by name");
                    }
                    let dot = list.iter().find(|e| e.name == b".").map(|e| e.nid);
                    let dotdot = list.iter().find(|e| e.name == b"..").map(|e| e.nid);
                    if dot != Some(i.nid) {
                        rep.error(&shown, "'.' does not point at the directory itself");
                    }
                    let want_parent = parent_of.get(&i.nid).copied().unwrap_or(i.nid);
                    if dotdot != Some(want_parent) {
                        rep.error(&shown, "'..' does not point at the parent directory");
                    }
                    let mut subdirs = 0u32;
                    for e in list.iter().filter(|e| e.name != b"." && e.name != b"..") {
                        match boot.inode(e.nid) {
                            Ok(c) => {
                                if c.file_type.erofs_code() != e.file_type {
                                    rep.error(
                                        &shown,
                                        format!(
                                            "entry {:?} has the wrong file type",
                                            String::from_utf8_lossy(&e.name)
                                        ),
                                    );
                                }
                                if c.file_type == FileType::Directory {
                                    subdirs += 1;
                                    parent_of.insert(e.nid, i.nid);
                                }
                            }
                            Err(err) => rep.error(
                                &shown,
                                format!("entry {:?}: {err}", String::from_utf8_lossy(&e.name)),
                            ),
                        }
                    }
                    if i.nlink != 2 + subdirs {
                        rep.warning(
                            &shown,
                            format!("nlink {} but {subdirs} subdirectories", i.nlink),
                        );
                    }
                }
                Err(e) => rep.error(&shown, e.to_string()),
            },
            // A hard link's chunks are counted at its first name, as `stat` counts them.
            FileType::Regular => match boot.all_chunks(i.nid) {
                Ok(chunks) if seen_nids[&i.nid] == 1 => rep.chunks += chunks.len() as u64,
                Ok(_) => {}
                Err(e) => rep.error(&shown, e.to_string()),
            },
            FileType::Symlink => {
                if let Err(e) = boot.symlink(i.nid) {
                    rep.error(&shown, e.to_string());
                }
            }
            _ => {
                if i.size != 0 {
                    rep.warning(&shown, format!("special file with size {}", i.size));
                }
            }
        }
        if let Err(e) = boot.xattrs(i.nid) {
            rep.error(&shown, e.to_string());
        }
        Ok(())
    });
    if let Err(e) = res {
        rep.error("tree", e.to_string());
    }
    rep.inodes = entries;
    for (nid, names) in &seen_nids {
        if let Ok(i) = boot.inode(*nid) {
            if i.file_type == FileType::Regular && i.nlink != *names {
                rep.warning(
                    format!("nid {nid}"),
                    format!("nlink {} but {names} names", i.nlink),
                );
            }
            if i.file_type == FileType::Directory && *names != 1 {
                rep.error(format!("nid {nid}"), "a directory is linked more than once");
            }
        }
    }
    if entries != boot.superblock().inos {
        rep.warning(
            "superblock",
            format!(
                "inos is {} but the tree has {entries} entries",
                boot.superblock().inos
            ),
        );
    }
    match boot.prefetch() {
        Ok(list) => {
            for nid in list {
                if let Err(e) = boot.inode(nid) {
                    rep.error("prefetch table", format!("nid {nid}: {e}"));
                }
            }
        }
        Err(e) => rep.error("prefetch table", e.to_string()),
    }
    rep
}
