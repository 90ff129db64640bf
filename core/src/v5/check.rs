//! Structural check of a RAFS v5 bootstrap: the reader's per-inode rules (§7.3), the Merkle
//! digests (§9), hard-link consistency and chunk references. Collects every finding.

use crate::read::{self, Filesystem};
use std::collections::HashMap;

use crate::model::FileType;
use crate::report::Report;
use crate::source::ReadAt;
use crate::v5::reader::Bootstrap;

/// Checks every inode reachable from the root.
pub fn check<R: ReadAt>(boot: &Bootstrap<R>) -> Report {
    let mut rep = Report::default();
    let blobs = boot.blobs();
    let mut seen = vec![false; boot.entries() as usize];
    // i_ino -> (chunks, nlink) of the first entry of each hard-link group.
    let mut groups: HashMap<u64, (Vec<crate::model::ChunkRef>, u32, u32)> = HashMap::new();
    let res = read::walk(boot, &mut |path, i| {
        let shown = String::from_utf8_lossy(path).into_owned();
        rep.inodes += 1;
        if let Some(s) = seen.get_mut(i.nid as usize - 1) {
            *s = true;
        }
        match boot.digests(i.nid) {
            Ok((stored, computed)) if stored != computed => rep.error(
                &shown,
                format!("inode digest {stored} does not match its content ({computed})"),
            ),
            Ok(_) => {}
            Err(e) => rep.error(&shown, e.to_string()),
        }
        if i.file_type == FileType::Regular {
            match boot.all_chunks(i.nid) {
                Ok(cs) => {
                    let cs: Vec<crate::model::ChunkRef> = cs.into_iter().map(|c| c.chunk).collect();
                    // A hard link's chunks are counted at its first name, as `stat` counts them.
                    if i.nlink <= 1 || !groups.contains_key(&i.ino) {
                        rep.chunks += cs.len() as u64;
                    }
                    for c in &cs {
                        if let Some(b) = blobs.get(c.blob_index as usize) {
                            if b.chunk_count > 0 && c.index >= b.chunk_count {
                                rep.error(
                                    &shown,
                                    format!(
                                        "chunk {} has index {} in blob {} of {} chunks",
                                        c.digest, c.index, b.blob_id, b.chunk_count
                                    ),
                                );
                            }
                        }
                    }
                    if i.nlink > 1 {
                        let g = groups.entry(i.ino).or_insert((cs.clone(), i.nlink, 0));
                        g.2 += 1;
                        if g.0 != cs || g.1 != i.nlink {
                            rep.error(
                                &shown,
                                format!("hard link of inode {} disagrees with its group", i.ino),
                            );
                        }
                    }
                }
                Err(e) => rep.error(&shown, e.to_string()),
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
    for (ino, (_, nlink, found)) in &groups {
        if nlink != found {
            rep.warning(
                format!("inode {ino}"),
                format!("i_nlink is {nlink} but {found} names link to it"),
            );
        }
    }
    let unreachable = seen.iter().filter(|s| !**s).count();
    if unreachable > 0 && res_ok(&rep) {
        rep.error(
            "inode table",
            format!("{unreachable} inode(s) are not reachable from the root"),
        );
    }
    rep
}

fn res_ok(rep: &Report) -> bool {
    !rep.findings.iter().any(|f| f.location == "tree")
}
