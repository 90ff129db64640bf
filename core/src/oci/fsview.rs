//! The filesystem comparison of `nydusify check --source` (`oci-nydus-image.md` §8 rule 3),
//! without mounting: the OCI side is the source layers applied in order with OCI whiteout
//! rules (written here independently of the merge, so that it checks it), the Nydus side is
//! the merged bootstrap's tree; every path's type, permissions, owner, rdev, link target,
//! xattrs, size and content digest must agree.

use std::collections::{BTreeMap, BTreeSet};

use super::error::OciError;
use crate::model::{FileType, Xattrs};

/// What is compared of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub file_type: FileType,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device number (new encoding) of character and block devices; 0 otherwise.
    pub rdev: u32,
    /// Content length of a regular file; 0 otherwise.
    pub size: u64,
    pub symlink: Option<Vec<u8>>,
    /// Sorted by name.
    pub xattrs: Xattrs,
    /// SHA-256 of a regular file's content.
    pub digest: Option<[u8; 32]>,
}

/// One entry of a layer tar, in stream order. Paths are relative (`a/b`; the root is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerItem {
    Entry(Vec<u8>, FileMeta),
    /// A hard link `path` → `target` (earlier in this layer or in a lower one).
    HardLink(Vec<u8>, Vec<u8>),
}

const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT_PREFIX: &[u8] = b".wh.";

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// The merged view of layers applied so far.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub files: BTreeMap<Vec<u8>, FileMeta>,
    /// Directories no layer listed (parents of listed paths): only their type is compared.
    pub implicit: BTreeSet<Vec<u8>>,
}

impl View {
    pub fn new() -> Self {
        let mut v = View::default();
        v.files.insert(Vec::new(), implicit_dir());
        v.implicit.insert(Vec::new());
        v
    }

    fn remove_below(&mut self, dir: &[u8]) {
        let doomed: Vec<Vec<u8>> = if dir.is_empty() {
            self.files
                .keys()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect()
        } else {
            let lo = [dir, b"/"].concat();
            let hi = [dir, b"0"].concat();
            self.files.range(lo..hi).map(|(k, _)| k.clone()).collect()
        };
        for k in doomed {
            self.files.remove(&k);
            self.implicit.remove(&k);
        }
    }

    fn remove(&mut self, path: &[u8]) {
        self.remove_below(path);
        self.files.remove(path);
        self.implicit.remove(path);
    }

    fn ensure_parents(&mut self, path: &[u8]) {
        let (dir, _) = split(path);
        if path.is_empty() {
            return;
        }
        match self.files.get(dir) {
            Some(m) if m.file_type == FileType::Directory => {}
            Some(_) => {
                self.remove(dir);
                self.ensure_parents(dir);
                self.files.insert(dir.to_vec(), implicit_dir());
                self.implicit.insert(dir.to_vec());
            }
            None => {
                self.ensure_parents(dir);
                self.files.insert(dir.to_vec(), implicit_dir());
                self.implicit.insert(dir.to_vec());
            }
        }
    }

    /// Applies one layer: its whiteouts hide lower paths, then its entries are added in order.
    pub fn apply_layer(&mut self, items: &[LayerItem]) -> Result<(), OciError> {
        for it in items {
            let LayerItem::Entry(path, _) = it else {
                continue;
            };
            let (dir, name) = split(path);
            if name == OPAQUE {
                self.remove_below(dir);
            } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                self.remove(&join(dir, hidden));
            }
        }
        for it in items {
            let (path, meta) = match it {
                LayerItem::Entry(path, meta) => {
                    let (_, name) = split(path);
                    if name.starts_with(WHITEOUT_PREFIX) {
                        continue;
                    }
                    (path, meta.clone())
                }
                LayerItem::HardLink(path, target) => {
                    let m = self.files.get(target.as_slice()).cloned().ok_or_else(|| {
                        OciError::DanglingHardLink {
                            path: String::from_utf8_lossy(path).into_owned(),
                            target: String::from_utf8_lossy(target).into_owned(),
                        }
                    })?;
                    (path, m)
                }
            };
            let keep_children = meta.file_type == FileType::Directory
                && self
                    .files
                    .get(path.as_slice())
                    .is_some_and(|m| m.file_type == FileType::Directory);
            if !keep_children {
                self.remove(path);
            }
            self.ensure_parents(path);
            self.files.insert(path.clone(), meta);
            self.implicit.remove(path.as_slice());
        }
        Ok(())
    }
}

fn implicit_dir() -> FileMeta {
    FileMeta {
        file_type: FileType::Directory,
        mode: 0o755,
        uid: 0,
        gid: 0,
        rdev: 0,
        size: 0,
        symlink: None,
        xattrs: Vec::new(),
        digest: None,
    }
}

fn show(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

/// Every difference between the OCI view and the Nydus tree, one line per path and field.
pub fn compare(oci: &View, nydus: &BTreeMap<Vec<u8>, FileMeta>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, o) in &oci.files {
        let Some(n) = nydus.get(p) else {
            out.push(format!("{}: missing from the Nydus image", show(p)));
            continue;
        };
        if o.file_type != n.file_type {
            out.push(format!(
                "{}: type {:?} in OCI, {:?} in Nydus",
                show(p),
                o.file_type,
                n.file_type
            ));
            continue;
        }
        if oci.implicit.contains(p) {
            continue;
        }
        let mut diff = |what: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{}: {what} {a} in OCI, {b} in Nydus", show(p)));
            }
        };
        diff("mode", format!("{:o}", o.mode), format!("{:o}", n.mode));
        diff("uid", o.uid.to_string(), n.uid.to_string());
        diff("gid", o.gid.to_string(), n.gid.to_string());
        diff("rdev", format!("{:#x}", o.rdev), format!("{:#x}", n.rdev));
        if o.file_type != FileType::Directory {
            diff("size", o.size.to_string(), n.size.to_string());
        }
        let lossy = |s: &Option<Vec<u8>>| {
            s.as_ref().map_or("none".to_string(), |t| {
                format!("{:?}", String::from_utf8_lossy(t))
            })
        };
        diff("link target", lossy(&o.symlink), lossy(&n.symlink));
        let xs = |x: &Xattrs| {
            x.iter()
                .map(|(k, v)| {
                    format!(
                        "{}={:?}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v)
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        diff(
            "xattrs",
            format!("[{}]", xs(&o.xattrs)),
            format!("[{}]", xs(&n.xattrs)),
        );
        let hex = |d: &Option<[u8; 32]>| {
            d.map_or("none".to_string(), |d| crate::digest::Digest(d).to_hex())
        };
        if o.digest != n.digest {
            diff("content sha256", hex(&o.digest), hex(&n.digest));
        }
    }
    for p in nydus.keys() {
        if !oci.files.contains_key(p) {
            out.push(format!(
                "{}: in the Nydus image but not in the OCI image",
                show(p)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, d: u8) -> FileMeta {
        FileMeta {
            file_type: FileType::Regular,
            mode: 0o644,
            size,
            digest: Some([d; 32]),
            ..implicit_dir()
        }
    }

    fn dir() -> FileMeta {
        FileMeta {
            mode: 0o700,
            ..implicit_dir()
        }
    }

    fn e(p: &str, m: FileMeta) -> LayerItem {
        LayerItem::Entry(p.as_bytes().to_vec(), m)
    }

    #[test]
    fn whiteouts_opaque_dirs_and_links() {
        let mut v = View::new();
        v.apply_layer(&[
            e("a", dir()),
            e("a/x", file(1, 1)),
            e("a/y", file(2, 2)),
            e("b/z", file(3, 3)),
            e("c", dir()),
            e("c/k", file(4, 4)),
        ])
        .unwrap();
        assert!(v.implicit.contains(b"b".as_slice()));
        v.apply_layer(&[
            e("a/.wh.x", file(0, 0)),
            e("c/.wh..wh..opq", file(0, 0)),
            e("c/new", file(5, 5)),
            LayerItem::HardLink(b"c/link".to_vec(), b"a/y".to_vec()),
            e("b", file(6, 6)),
        ])
        .unwrap();
        let keys: Vec<&[u8]> = v.files.keys().map(Vec::as_slice).collect();
        assert_eq!(
            keys,
            vec![
                b"".as_slice(),
                b"a",
                b"a/y",
                b"b",
                b"c",
                b"c/link",
                b"c/new"
            ]
        );
        assert_eq!(v.files[b"c/link".as_slice()], file(2, 2));
        let e = v
            .apply_layer(&[LayerItem::HardLink(b"q".to_vec(), b"nope".to_vec())])
            .unwrap_err();
        assert_eq!(e.to_string(), "hard link q to nope, which does not exist");
    }

    #[test]
    fn compare_names_every_difference() {
        let mut v = View::new();
        v.apply_layer(&[e("a", dir()), e("a/f", file(1, 1)), e("g", file(2, 2))])
            .unwrap();
        let mut n: BTreeMap<Vec<u8>, FileMeta> = v.files.clone();
        assert!(compare(&v, &n).is_empty());
        n.get_mut(b"a/f".as_slice()).unwrap().digest = Some([9; 32]);
        n.get_mut(b"a".as_slice()).unwrap().uid = 7;
        n.remove(b"g".as_slice());
        n.insert(b"h".to_vec(), file(0, 0));
        let d = compare(&v, &n);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d[0].starts_with("/a: uid 0 in OCI, 7 in Nydus"));
        assert!(d[1].starts_with("/a/f: content sha256"));
        assert_eq!(d[2], "/g: missing from the Nydus image");
        assert_eq!(d[3], "/h: in the Nydus image but not in the OCI image");
    }
}
