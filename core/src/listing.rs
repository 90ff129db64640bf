//! A deterministic text listing of an image: one line per entry with its attributes and a
//! SHA-256 of its content read back (and verified) from the blobs. Tests compare it with the
//! same listing of a source tree (`tests/golden/*.listing`), natively and in WASM.

use std::fmt::Write as _;

use crate::digest::{hex, Sha256Stream};
use crate::error::DecodeError;
use crate::model::{decode_rdev, FileType};
use crate::rafs::Rafs;
use crate::read::exec::{execute, BlobLayout};
use crate::read::{plan, Filesystem};
use crate::source::ReadAt;

/// Listing type names.
pub fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Regular => "file",
        FileType::Directory => "dir",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "chardev",
        FileType::BlockDevice => "blockdev",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

/// Lists `boot`, reading file data from `blobs` (indexed like the blob table).
/// Line format (tab-separated): path, type, permission bits (octal), `uid:gid`, mtime, size
/// (0 for directories), content (`sha256` of a file, hex of a symlink target, `major:minor` of
/// a device, else `-`), xattrs (`name=hexvalue` joined by `,`, or `-`).
pub fn listing<R: ReadAt, S: ReadAt>(boot: &Rafs<R>, blobs: &[S]) -> Result<String, DecodeError> {
    let mut out = String::new();
    let info = boot.blobs().to_vec();
    boot.walk(&mut |path, i| {
        let content = match i.file_type {
            FileType::Regular => {
                let mut h = Sha256Stream::new();
                let p = plan(boot, i, 0, i.size)?;
                let blob = |index: u32| {
                    let b = info.get(index as usize).ok_or(DecodeError::NotFound {
                        path: format!("blob {index}"),
                    })?;
                    let src = blobs.get(index as usize).ok_or(DecodeError::NotFound {
                        path: b.blob_id.clone(),
                    })?;
                    Ok((src, BlobLayout::Stored))
                };
                execute(&p, blob, |bytes| {
                    h.update(bytes);
                    Ok(())
                })?;
                h.finish().to_hex()
            }
            FileType::Symlink => hex(&boot.symlink(i.nid)?),
            FileType::CharDevice | FileType::BlockDevice => {
                let (ma, mi) = decode_rdev(i.attrs.rdev);
                format!("{ma}:{mi}")
            }
            _ => "-".into(),
        };
        let mut xs: Vec<String> = boot
            .xattrs(i.nid)?
            .iter()
            .map(|(k, v)| format!("{}={}", String::from_utf8_lossy(k), hex(v)))
            .collect();
        xs.sort();
        let size = if i.file_type == FileType::Directory {
            0
        } else {
            i.size
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{:o}\t{}:{}\t{}\t{}\t{}\t{}",
            String::from_utf8_lossy(path),
            type_name(i.file_type),
            i.attrs.mode & 0o7777,
            i.attrs.uid,
            i.attrs.gid,
            i.attrs.mtime,
            size,
            content,
            if xs.is_empty() {
                "-".into()
            } else {
                xs.join(",")
            }
        );
        Ok(())
    })?;
    Ok(out)
}
