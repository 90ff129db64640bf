//! Walking a source directory into the core's tree builder.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::model::{encode_rdev, split_dev_t, Attrs, FileType};
use nydus_core::tree::{Entry, TreeBuilder};

pub use nydus_core::layer::WhiteoutSpec;

/// A walked source: the tree entries and, per entry token, the path to read data from.
#[derive(Debug)]
pub struct WalkedDir {
    pub builder: TreeBuilder,
    /// `sources[token]` is the file an entry's `source` token refers to.
    pub sources: Vec<PathBuf>,
}

fn file_type(ft: std::fs::FileType) -> Option<FileType> {
    Some(if ft.is_file() {
        FileType::Regular
    } else if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else if ft.is_fifo() {
        FileType::Fifo
    } else if ft.is_socket() {
        FileType::Socket
    } else {
        return None;
    })
}

/// Reads every extended attribute of `path` without following a symlink.
fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        // Filesystems without xattr support have none to copy.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing xattrs of {}", path.display())),
    };
    for name in names {
        let value = xattr::get(path, &name)
            .with_context(|| format!("reading xattr {:?} of {}", name, path.display()))?
            .unwrap_or_default();
        out.push((name.as_bytes().to_vec(), value));
    }
    Ok(out)
}

fn entry_for(path: &Path, md: &std::fs::Metadata, source: u64) -> Result<Entry> {
    let ft = file_type(md.file_type())
        .with_context(|| format!("{}: unsupported file type", path.display()))?;
    let (major, minor) = split_dev_t(md.rdev());
    let symlink = if ft == FileType::Symlink {
        let t = std::fs::read_link(path)
            .with_context(|| format!("reading symlink {}", path.display()))?;
        Some(t.as_os_str().as_bytes().to_vec())
    } else {
        None
    };
    Ok(Entry {
        file_type: ft,
        attrs: Attrs {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime().max(0) as u64,
            mtime_nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
            rdev: if ft.is_device() {
                encode_rdev(major, minor)
            } else {
                0
            },
        },
        xattrs: read_xattrs(path)?,
        size: if ft == FileType::Regular { md.len() } else { 0 },
        symlink,
        link_key: (ft == FileType::Regular && md.nlink() > 1).then(|| (md.dev(), md.ino())),
        source,
    })
}

/// Walks `root` (which must be a directory) into a tree builder. The root directory's mtime
/// is forced to 0, as upstream does for directory sources.
pub fn walk_dir(root: &Path, whiteout: WhiteoutSpec) -> Result<WalkedDir> {
    let md =
        std::fs::symlink_metadata(root).with_context(|| format!("source {}", root.display()))?;
    if !md.is_dir() {
        bail!(
            "source {} is not a directory (dir-rafs needs a directory)",
            root.display()
        );
    }
    let mut builder = TreeBuilder::new();
    let mut sources = vec![root.to_path_buf()];
    let mut root_entry = entry_for(root, &md, 0)?;
    root_entry.attrs.mtime = 0;
    root_entry.attrs.mtime_nsec = 0;
    builder
        .insert(b"/", root_entry)
        .map_err(anyhow::Error::new)?;

    // Explicit stack of (directory path, relative path bytes) to avoid recursion limits.
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = std::fs::read_dir(&dir)
            .with_context(|| format!("reading directory {}", dir.display()))?;
        for ent in rd {
            let ent = ent.with_context(|| format!("reading directory {}", dir.display()))?;
            let name = ent.file_name();
            let path = ent.path();
            let md = std::fs::symlink_metadata(&path)
                .with_context(|| format!("stat {}", path.display()))?;
            if is_whiteout(whiteout, &name, &md) {
                continue;
            }
            let token = sources.len() as u64;
            let entry = entry_for(&path, &md, token)?;
            let mut child_rel = rel.clone();
            child_rel.push(b'/');
            child_rel.extend_from_slice(name.as_bytes());
            builder
                .insert(&child_rel, entry)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            sources.push(path.clone());
            if md.is_dir() {
                stack.push((path, child_rel));
            }
        }
    }
    Ok(WalkedDir { builder, sources })
}

fn is_whiteout(spec: WhiteoutSpec, name: &OsStr, md: &std::fs::Metadata) -> bool {
    match spec {
        WhiteoutSpec::Oci => name.as_bytes().starts_with(b".wh."),
        WhiteoutSpec::Overlayfs => md.file_type().is_char_device() && md.rdev() == 0,
        WhiteoutSpec::None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_and_skips_oci_whiteouts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), b"abc").unwrap();
        std::fs::write(d.path().join(".wh.gone"), b"").unwrap();
        std::os::unix::fs::symlink("sub/f", d.path().join("l")).unwrap();
        let w = walk_dir(d.path(), WhiteoutSpec::Oci).unwrap();
        let t = w.builder.finish();
        assert!(t.lookup(b"/sub/f").is_some());
        assert!(t.lookup(b"/.wh.gone").is_none());
        let l = t.lookup(b"/l").unwrap();
        assert_eq!(t.node(l).symlink.as_deref(), Some(&b"sub/f"[..]));
        assert_eq!(t.node(0).attrs.mtime, 0);
        let f = t.lookup(b"/sub/f").unwrap();
        assert_eq!(w.sources[t.node(f).source as usize], d.path().join("sub/f"));
    }

    #[test]
    fn missing_source_names_the_path() {
        let e = walk_dir(Path::new("/nonexistent/src"), WhiteoutSpec::Oci).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/src"), "{e:#}");
    }
}
