//! Walking a source directory into the core's tree builder.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::layer::OVERLAYFS_WHITEOUT_OPAQUE;
use nydus_core::model::{encode_rdev, split_dev_t, Attrs, FileType};
use nydus_core::tree::{Entry, TreeBuilder};

/// overlayfs's own xattrs on an upper directory's entries (origin, impure, nlink, ...).
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

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
fn read_xattrs(path: &Path, overlay_upper: bool) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        // Filesystems without xattr support have none to copy.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing xattrs of {}", path.display())),
    };
    for name in names {
        let n = name.as_bytes();
        if overlay_upper && n.starts_with(OVERLAY_XATTR_PREFIX) && n != OVERLAYFS_WHITEOUT_OPAQUE {
            continue;
        }
        let value = xattr::get(path, &name)
            .with_context(|| format!("reading xattr {:?} of {}", name, path.display()))?
            .unwrap_or_default();
        out.push((name.as_bytes().to_vec(), value));
    }
    Ok(out)
}

fn entry_for(
    path: &Path,
    md: &std::fs::Metadata,
    source: u64,
    overlay_upper: bool,
) -> Result<Entry> {
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
        xattrs: read_xattrs(path, overlay_upper)?,
        size: if ft == FileType::Regular { md.len() } else { 0 },
        symlink,
        link_key: (ft == FileType::Regular && md.nlink() > 1).then(|| (md.dev(), md.ino())),
        source,
    })
}

/// How a directory source is read beyond the whiteout spec (all off by default: a plain
/// `create` of a directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirOptions {
    /// The directory is an overlayfs upper directory: overlayfs's own xattrs are left out
    /// (but the opaque marker, which the layer overlay consumes and drops).
    pub overlay_upper: bool,
    /// Paths (absolute, from the source's root) left out with everything under them.
    pub exclude: Vec<Vec<u8>>,
    /// The source directory becomes this directory of the tree (absolute, not `/`), marked
    /// opaque (it hides what the layers below have there, as a mount does); its parents are
    /// implicit directories, which a layer overlay leaves as the lower layers have them.
    pub graft_at: Option<Vec<u8>>,
}

/// Walks `root` (which must be a directory) into a tree builder. The root directory's mtime
/// is forced to 0, as upstream does for directory sources (not when grafted: a grafted
/// directory keeps its attributes).
pub fn walk_dir(root: &Path, whiteout: WhiteoutSpec, o: &DirOptions) -> Result<WalkedDir> {
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
    let mut root_entry = entry_for(root, &md, 0, o.overlay_upper)?;
    let base: Vec<u8> = match &o.graft_at {
        None => {
            root_entry.attrs.mtime = 0;
            root_entry.attrs.mtime_nsec = 0;
            builder
                .insert(b"/", root_entry)
                .map_err(anyhow::Error::new)?;
            Vec::new()
        }
        Some(at) => {
            let at = at.strip_suffix(b"/").unwrap_or(at);
            if !at.starts_with(b"/") || at.len() < 2 {
                bail!(
                    "{}: cannot be grafted at {:?} (an absolute path, not /)",
                    root.display(),
                    String::from_utf8_lossy(at)
                );
            }
            root_entry
                .xattrs
                .push((OVERLAYFS_WHITEOUT_OPAQUE.to_vec(), b"y".to_vec()));
            builder
                .insert(at, root_entry)
                .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
            at.to_vec()
        }
    };
    let excluded = |rel: &[u8]| {
        o.exclude.iter().any(|x| {
            let x = x.strip_suffix(b"/").unwrap_or(x);
            rel == x || (rel.starts_with(x) && rel.get(x.len()) == Some(&b'/'))
        })
    };

    // Explicit stack of (directory path, path in the source, path in the tree) to avoid
    // recursion limits.
    let mut stack: Vec<(PathBuf, Vec<u8>, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new(), base)];
    while let Some((dir, rel, at)) = stack.pop() {
        let rd = std::fs::read_dir(&dir)
            .with_context(|| format!("reading directory {}", dir.display()))?;
        for ent in rd {
            let ent = ent.with_context(|| format!("reading directory {}", dir.display()))?;
            let name = ent.file_name();
            let path = ent.path();
            let mut child_rel = rel.clone();
            child_rel.push(b'/');
            child_rel.extend_from_slice(name.as_bytes());
            if excluded(&child_rel) {
                continue;
            }
            let md = std::fs::symlink_metadata(&path)
                .with_context(|| format!("stat {}", path.display()))?;
            if is_whiteout(whiteout, &name, &md) {
                continue;
            }
            let token = sources.len() as u64;
            let entry = entry_for(&path, &md, token, o.overlay_upper)?;
            let mut child_at = at.clone();
            child_at.push(b'/');
            child_at.extend_from_slice(name.as_bytes());
            builder
                .insert(&child_at, entry)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            sources.push(path.clone());
            if md.is_dir() {
                stack.push((path, child_rel, child_at));
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
        let w = walk_dir(d.path(), WhiteoutSpec::Oci, &DirOptions::default()).unwrap();
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
    fn an_overlay_upper_dir_keeps_only_the_opaque_marker() {
        // trusted.* xattrs need CAP_SYS_ADMIN: the suite runs as root.
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for (k, v) in [
            ("trusted.overlay.opaque", &b"y"[..]),
            ("trusted.overlay.impure", b"y"),
            ("user.note", b"kept"),
        ] {
            xattr::set(&sub, k, v).unwrap_or_else(|e| panic!("setting {k} (needs root): {e}"));
        }
        let names = |overlay| {
            let o = DirOptions {
                overlay_upper: overlay,
                ..Default::default()
            };
            let t = walk_dir(d.path(), WhiteoutSpec::None, &o)
                .unwrap()
                .builder
                .finish();
            let mut n: Vec<Vec<u8>> = t
                .node(t.lookup(b"/sub").unwrap())
                .xattrs
                .iter()
                .map(|(k, _)| k.clone())
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names(true),
            vec![b"trusted.overlay.opaque".to_vec(), b"user.note".to_vec()]
        );
        assert_eq!(names(false).len(), 3);
    }

    #[test]
    fn excluded_paths_are_left_out_and_a_graft_is_opaque() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), b"1").unwrap();
        std::fs::write(d.path().join("a/bc"), b"2").unwrap();
        std::fs::write(d.path().join("top"), b"3").unwrap();
        let o = DirOptions {
            exclude: vec![b"/a/b".to_vec()],
            ..Default::default()
        };
        let t = walk_dir(d.path(), WhiteoutSpec::None, &o)
            .unwrap()
            .builder
            .finish();
        assert!(t.lookup(b"/a/b").is_none());
        assert!(t.lookup(b"/a/b/f").is_none());
        assert!(t.lookup(b"/a/bc").is_some());
        let o = DirOptions {
            graft_at: Some(b"/srv/data".to_vec()),
            ..Default::default()
        };
        let w = walk_dir(d.path(), WhiteoutSpec::None, &o).unwrap();
        let t = w.builder.finish();
        let f = t.lookup(b"/srv/data/a/b/f").unwrap();
        assert_eq!(w.sources[t.node(f).source as usize], d.path().join("a/b/f"));
        let g = t.node(t.lookup(b"/srv/data").unwrap());
        assert!(g
            .xattrs
            .iter()
            .any(|(k, v)| k == OVERLAYFS_WHITEOUT_OPAQUE && v == b"y"));
        // The parents are implicit: a layer overlay keeps the lower ones.
        assert!(nydus_core::layer::looks_implicit(&entry_of(
            &t,
            t.lookup(b"/srv").unwrap()
        )));
        let o = DirOptions {
            graft_at: Some(b"/".to_vec()),
            ..Default::default()
        };
        assert!(walk_dir(d.path(), WhiteoutSpec::None, &o).is_err());
    }

    fn entry_of(t: &nydus_core::tree::Tree, id: usize) -> Entry {
        let n = t.node(id);
        Entry {
            file_type: n.file_type,
            attrs: n.attrs.clone(),
            xattrs: n.xattrs.clone(),
            size: n.size,
            symlink: None,
            link_key: None,
            source: 0,
        }
    }

    #[test]
    fn missing_source_names_the_path() {
        let e = walk_dir(
            Path::new("/nonexistent/src"),
            WhiteoutSpec::Oci,
            &DirOptions::default(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/src"), "{e:#}");
    }
}
