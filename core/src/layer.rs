//! Layers: whiteouts and the overlay of per-layer trees into one merged view.
//!
//! A layer is a list of [`LayerEntry`]s (paths in parent-before-child order, each with its
//! chunks, whose `blob_index` points into the layer's own blob table). An [`Overlay`] starts
//! empty, takes the lowest layer verbatim and applies every upper layer the way container
//! runtimes do (`rafs-v6.md` §14.2, `oci-nydus-image.md` §3): whiteouts of the upper layer
//! are applied to the lower view first, then its other entries replace or add to it. The
//! finished overlay is a [`Tree`] whose chunks point into one merged blob table.

use std::collections::HashMap;

use crate::error::{BuildError, DecodeError, Feature};
use crate::model::{BlobInfo, ChunkRef, FileType, Xattrs};
use crate::rafs::Rafs;
use crate::read::{Filesystem, Inode};
use crate::source::ReadAt;
use crate::tree::{Entry, Tree, TreeBuilder, ROOT};

/// Prefix of an OCI whiteout file name: `.wh.<name>` hides `<name>` of lower layers.
pub const OCISPEC_WHITEOUT_PREFIX: &[u8] = b".wh.";
/// An OCI opaque marker: hides every lower entry of its directory.
pub const OCISPEC_WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The overlayfs xattr marking a directory opaque.
pub const OVERLAYFS_WHITEOUT_OPAQUE: &[u8] = b"trusted.overlay.opaque";

/// Which convention marks deletions in a layer (`--whiteout-spec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutSpec {
    /// `.wh.<name>` files and `.wh..wh..opq` markers.
    Oci,
    /// Character devices 0/0 and directories with `trusted.overlay.opaque=y`.
    Overlayfs,
    /// Nothing is a whiteout.
    None,
}

impl WhiteoutSpec {
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "oci" => WhiteoutSpec::Oci,
            "overlayfs" => WhiteoutSpec::Overlayfs,
            "none" => WhiteoutSpec::None,
            _ => return None,
        })
    }
}

/// What a whiteout entry does to the lower view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whiteout {
    /// Remove this path (and its subtree) from the lower view; the entry itself is dropped.
    Remove(Vec<u8>),
    /// Remove every lower child of this directory; the OCI marker itself is dropped.
    OpaqueMarker(Vec<u8>),
    /// An overlayfs opaque directory: clear its lower children, then add the directory
    /// without the opaque xattr.
    OpaqueDir(Vec<u8>),
}

fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    let p = path.strip_suffix(b"/").unwrap_or(path);
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (b"", p),
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Classifies an entry of an upper layer.
pub fn whiteout_of(spec: WhiteoutSpec, path: &[u8], e: &Entry) -> Option<Whiteout> {
    let (dir, name) = split_last(path);
    match spec {
        WhiteoutSpec::None => None,
        WhiteoutSpec::Oci => {
            if name == OCISPEC_WHITEOUT_OPAQUE {
                Some(Whiteout::OpaqueMarker(dir.to_vec()))
            } else {
                name.strip_prefix(OCISPEC_WHITEOUT_PREFIX)
                    .filter(|n| !n.is_empty())
                    .map(|n| Whiteout::Remove(join(dir, n)))
            }
        }
        WhiteoutSpec::Overlayfs => {
            if e.file_type == FileType::CharDevice && e.attrs.rdev == 0 {
                Some(Whiteout::Remove(path.to_vec()))
            } else if e.file_type == FileType::Directory
                && e.xattrs
                    .iter()
                    .any(|(k, v)| k == OVERLAYFS_WHITEOUT_OPAQUE && v == b"y")
            {
                Some(Whiteout::OpaqueDir(path.to_vec()))
            } else {
                None
            }
        }
    }
}

/// One entry of a layer: its path, attributes and chunks (blob indexes are the layer's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub path: Vec<u8>,
    pub entry: Entry,
    pub chunks: Vec<ChunkRef>,
}

/// The entries of a finished tree in build order (parents before children).
pub fn entries_of_tree(tree: &Tree) -> Vec<LayerEntry> {
    (0..tree.len())
        .map(|id| {
            let n = tree.node(id);
            LayerEntry {
                path: tree.path(id),
                entry: Entry {
                    file_type: n.file_type,
                    attrs: n.attrs.clone(),
                    xattrs: n.xattrs.clone(),
                    size: n.size,
                    symlink: n.symlink.clone(),
                    link_key: n.link_key,
                    source: id as u64,
                },
                chunks: tree.chunks(id).to_vec(),
            }
        })
        .collect()
}

/// The entries of a decoded bootstrap (v5 or v6), depth first. Regular files with more than
/// one link become one hard-link group per inode.
pub fn entries_of_image<R: ReadAt>(boot: &Rafs<R>) -> Result<Vec<LayerEntry>, DecodeError> {
    let mut out = Vec::new();
    let mut walk = |path: &[u8], i: &Inode| -> Result<(), DecodeError> {
        let xattrs: Xattrs = boot.xattrs(i.nid)?;
        let symlink = if i.file_type == FileType::Symlink {
            Some(boot.symlink(i.nid)?)
        } else {
            None
        };
        let chunks = if i.file_type == FileType::Regular && i.size > 0 {
            contiguous_chunks(boot, i)?
        } else {
            Vec::new()
        };
        out.push(LayerEntry {
            path: path.to_vec(),
            entry: Entry {
                file_type: i.file_type,
                attrs: i.attrs.clone(),
                xattrs,
                size: i.size,
                symlink,
                link_key: (i.file_type == FileType::Regular && i.nlink > 1).then_some((0, i.ino)),
                source: 0,
            },
            chunks,
        });
        Ok(())
    };
    boot.walk(&mut walk)?;
    Ok(out)
}

/// The chunks of a file that has no holes, in order. A file with holes cannot become tree
/// entries: trees (and the encoders) place chunk `k` at `k × chunk_size`.
fn contiguous_chunks<R: ReadAt>(boot: &Rafs<R>, i: &Inode) -> Result<Vec<ChunkRef>, DecodeError> {
    let chunks = boot.all_chunks(i.nid)?;
    let cs = u64::from(boot.chunk_size());
    let mut expect = 0u64;
    for (k, c) in chunks.iter().enumerate() {
        if c.file_offset != expect || (k + 1 < chunks.len() && c.file_end() != expect + cs) {
            return Err(DecodeError::Unsupported {
                what: "merging or layering an image",
                feature: Feature::Hole {
                    nid: i.nid,
                    file_offset: expect,
                },
            });
        }
        expect += cs;
    }
    if chunks.last().is_some_and(|c| c.file_end() != i.size) || (chunks.is_empty() && i.size > 0) {
        return Err(DecodeError::Unsupported {
            what: "merging or layering an image",
            feature: Feature::TrailingHole { nid: i.nid },
        });
    }
    Ok(chunks.into_iter().map(|c| c.chunk).collect())
}

/// A directory with exactly the attributes builders give parents a layer does not list
/// (`rafs-v6.md` §9.1: 0o755, root, mtime 0, no xattrs). Over a lower directory it stands for
/// that directory, as when a runtime extracts the layer on top of the lower ones, so it does
/// not replace the lower attributes. (An explicit entry with exactly these attributes is
/// treated the same way; upstream instead lets every such parent reset the lower directory.)
pub fn looks_implicit(e: &Entry) -> bool {
    e.file_type == FileType::Directory
        && e.attrs.mode & 0o7777 == 0o755
        && e.attrs.uid == 0
        && e.attrs.gid == 0
        && e.attrs.mtime == 0
        && e.attrs.mtime_nsec == 0
        && e.xattrs.is_empty()
}

/// How [`Overlay::finish`] orders the merged blob table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOrder {
    /// Blobs in the order they were registered; blobs registered with `keep` stay even when
    /// no chunk refers to them (a build on a parent bootstrap keeps the parent's table).
    Registered,
    /// Only referenced blobs, in first-use order of a breadth-first walk of the merged tree
    /// (what `nydus-image merge` writes).
    FirstUse,
}

/// The merged view of a stack of layers.
#[derive(Debug)]
pub struct Overlay {
    builder: TreeBuilder,
    blobs: Vec<(BlobInfo, bool)>,
    /// Chunks by entry token (`Entry::source` inside the builder).
    chunks: Vec<Vec<ChunkRef>>,
    layers: u64,
}

impl Default for Overlay {
    fn default() -> Self {
        Self::new()
    }
}

impl Overlay {
    pub fn new() -> Self {
        Overlay {
            builder: TreeBuilder::new(),
            blobs: Vec::new(),
            chunks: vec![Vec::new()],
            layers: 0,
        }
    }

    /// Number of layers applied so far.
    pub fn layers(&self) -> u64 {
        self.layers
    }

    /// Registers a blob (deduplicated by id) and returns its merged index.
    pub fn add_blob(&mut self, b: &BlobInfo, keep: bool) -> u32 {
        if let Some(i) = self.blobs.iter().position(|(x, _)| x.blob_id == b.blob_id) {
            self.blobs[i].1 |= keep;
            return i as u32;
        }
        self.blobs.push((b.clone(), keep));
        (self.blobs.len() - 1) as u32
    }

    /// The blobs registered so far (merged index order).
    pub fn blobs(&self) -> impl Iterator<Item = &BlobInfo> {
        self.blobs.iter().map(|(b, _)| b)
    }

    /// Applies one layer. `blob_map[i]` is the merged index of the layer's blob `i`. Whiteouts
    /// (by `spec`) act on the layers below and are dropped; in the lowest layer they hide
    /// nothing and are dropped too, as a container runtime does (upstream keeps them there).
    /// Hard-link groups never span layers.
    pub fn apply(
        &mut self,
        entries: Vec<LayerEntry>,
        blob_map: &[u32],
        spec: WhiteoutSpec,
    ) -> Result<(), BuildError> {
        let layer = self.layers;
        self.layers += 1;
        // Pass 1: whiteouts act on the lower view only.
        let mut keep = Vec::with_capacity(entries.len());
        for mut le in entries {
            match whiteout_of(spec, &le.path, &le.entry) {
                Some(Whiteout::Remove(p)) => {
                    self.builder.remove(&p);
                }
                Some(Whiteout::OpaqueMarker(d)) => self.builder.clear_dir(&d),
                Some(Whiteout::OpaqueDir(d)) => {
                    self.builder.clear_dir(&d);
                    le.entry
                        .xattrs
                        .retain(|(k, _)| k != OVERLAYFS_WHITEOUT_OPAQUE);
                    keep.push(le);
                }
                None => keep.push(le),
            }
        }
        // Pass 2: the layer's own entries replace or extend the lower view.
        let mut keys: HashMap<(u64, u64), u64> = HashMap::new();
        for le in keep {
            let mut chunks = le.chunks;
            for c in &mut chunks {
                c.blob_index = *blob_map.get(c.blob_index as usize).ok_or_else(|| {
                    BuildError::InvalidEntry {
                        path: String::from_utf8_lossy(&le.path).into_owned(),
                        reason: format!(
                            "a chunk refers to blob {} of a layer with {} blobs",
                            c.blob_index,
                            blob_map.len()
                        ),
                    }
                })?;
            }
            let mut e = le.entry;
            if layer > 0 && looks_implicit(&e) {
                if let Some(id) = self.builder.lookup(&le.path) {
                    if self.builder.node(id).is_dir() {
                        continue;
                    }
                }
            }
            if let Some(k) = e.link_key {
                let n = keys.len() as u64;
                let seq = *keys.entry(k).or_insert(n);
                e.link_key = Some((layer, seq));
            }
            e.source = self.chunks.len() as u64;
            self.chunks.push(chunks);
            self.builder.insert(&le.path, e)?;
        }
        Ok(())
    }

    /// The merged tree (chunks attached) and its blob table.
    pub fn finish(self, order: BlobOrder) -> (Tree, Vec<BlobInfo>) {
        let mut tree = self.builder.finish();
        for id in 0..tree.len() {
            let n = tree.node(id);
            if n.file_type == FileType::Regular && n.hardlink_of.is_none() {
                let c = self.chunks[n.source as usize].clone();
                tree.set_chunks(id, c);
            }
        }
        // New index of every registered blob.
        let mut map: Vec<Option<u32>> = vec![None; self.blobs.len()];
        let mut table = Vec::new();
        match order {
            BlobOrder::Registered => {
                let mut used = vec![false; self.blobs.len()];
                for n in tree.nodes() {
                    for c in &n.chunks {
                        used[c.blob_index as usize] = true;
                    }
                }
                for (i, (b, keep)) in self.blobs.iter().enumerate() {
                    if *keep || used[i] {
                        map[i] = Some(table.len() as u32);
                        table.push(b.clone());
                    }
                }
            }
            BlobOrder::FirstUse => {
                let mut queue = std::collections::VecDeque::from([ROOT]);
                while let Some(id) = queue.pop_front() {
                    let n = tree.node(id);
                    for c in &n.chunks {
                        let slot = &mut map[c.blob_index as usize];
                        if slot.is_none() {
                            *slot = Some(table.len() as u32);
                            table.push(self.blobs[c.blob_index as usize].0.clone());
                        }
                    }
                    queue.extend(n.children.iter().copied());
                }
            }
        }
        for id in 0..tree.len() {
            let n = tree.node(id);
            if n.chunks.is_empty() {
                continue;
            }
            let mut c = n.chunks.clone();
            for x in &mut c {
                x.blob_index = map[x.blob_index as usize].expect("used blobs are mapped");
            }
            tree.set_chunks(id, c);
        }
        (tree, table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attrs;

    fn ent(path: &str, ft: FileType) -> LayerEntry {
        LayerEntry {
            path: path.as_bytes().to_vec(),
            entry: Entry {
                file_type: ft,
                attrs: Attrs {
                    mode: 0o644,
                    ..Attrs::default()
                },
                xattrs: vec![],
                size: 0,
                symlink: (ft == FileType::Symlink).then(|| b"t".to_vec()),
                link_key: None,
                source: 0,
            },
            chunks: vec![],
        }
    }

    fn paths(t: &Tree) -> Vec<String> {
        let mut v: Vec<String> = (0..t.len())
            .map(|i| String::from_utf8(t.path(i)).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn oci_whiteouts_and_opaque() {
        let mut o = Overlay::new();
        let lower = vec![
            ent("/", FileType::Directory),
            ent("/a", FileType::Directory),
            ent("/a/x", FileType::Regular),
            ent("/a/y", FileType::Regular),
            ent("/b", FileType::Directory),
            ent("/b/z", FileType::Regular),
            ent("/c", FileType::Regular),
            ent("/.wh.kept", FileType::Regular),
        ];
        o.apply(lower, &[], WhiteoutSpec::Oci).unwrap();
        let upper = vec![
            ent("/a", FileType::Directory),
            ent("/a/.wh..wh..opq", FileType::Regular),
            ent("/a/n", FileType::Regular),
            ent("/.wh.b", FileType::Regular),
            ent("/.wh.c", FileType::Regular),
            ent("/c", FileType::Directory),
            ent("/.wh.nothing", FileType::Regular),
        ];
        o.apply(upper, &[], WhiteoutSpec::Oci).unwrap();
        let (t, blobs) = o.finish(BlobOrder::FirstUse);
        assert!(blobs.is_empty());
        assert_eq!(paths(&t), ["/", "/a", "/a/n", "/c"]);
        assert!(t.node(t.lookup(b"/c").unwrap()).is_dir());
    }

    #[test]
    fn implicit_parents_keep_lower_attributes() {
        let mut o = Overlay::new();
        let mut d = ent("/usr", FileType::Directory);
        d.entry.attrs.mode = 0o750;
        d.entry.attrs.mtime = 77;
        o.apply(vec![d], &[], WhiteoutSpec::Oci).unwrap();
        let mut implicit = ent("/usr", FileType::Directory);
        implicit.entry.attrs.mode = 0o755;
        let mut explicit = ent("/new", FileType::Directory);
        explicit.entry.attrs.mode = 0o755;
        o.apply(
            vec![implicit, ent("/usr/f", FileType::Regular), explicit],
            &[],
            WhiteoutSpec::Oci,
        )
        .unwrap();
        let (t, _) = o.finish(BlobOrder::FirstUse);
        let u = t.node(t.lookup(b"/usr").unwrap());
        assert_eq!((u.attrs.mode & 0o7777, u.attrs.mtime), (0o750, 77));
        assert!(t.lookup(b"/usr/f").is_some() && t.lookup(b"/new").is_some());
    }

    #[test]
    fn overlayfs_whiteouts() {
        let mut o = Overlay::new();
        o.apply(
            vec![
                ent("/d", FileType::Directory),
                ent("/d/old", FileType::Regular),
                ent("/f", FileType::Regular),
            ],
            &[],
            WhiteoutSpec::Overlayfs,
        )
        .unwrap();
        let mut d = ent("/d", FileType::Directory);
        d.entry.xattrs = vec![
            (OVERLAYFS_WHITEOUT_OPAQUE.to_vec(), b"y".to_vec()),
            (b"user.k".to_vec(), b"v".to_vec()),
        ];
        o.apply(
            vec![
                d,
                ent("/d/new", FileType::Regular),
                ent("/f", FileType::CharDevice),
            ],
            &[],
            WhiteoutSpec::Overlayfs,
        )
        .unwrap();
        let (t, _) = o.finish(BlobOrder::FirstUse);
        assert_eq!(paths(&t), ["/", "/d", "/d/new"]);
        let d = t.lookup(b"/d").unwrap();
        assert_eq!(t.node(d).xattrs, vec![(b"user.k".to_vec(), b"v".to_vec())]);
    }

    #[test]
    fn blob_table_first_use_and_registered() {
        let blob = |id: &str| BlobInfo {
            blob_id: id.into(),
            ..BlobInfo::default()
        };
        let chunk = |bi: u32| ChunkRef {
            blob_index: bi,
            uncompressed_size: 1,
            ..ChunkRef::default()
        };
        let file = |p: &str, bi: u32| {
            let mut e = ent(p, FileType::Regular);
            e.entry.size = 1;
            e.chunks = vec![chunk(bi)];
            e
        };
        let build = || {
            let mut o = Overlay::new();
            let a = o.add_blob(&blob("A"), true);
            let b = o.add_blob(&blob("B"), true);
            o.apply(
                vec![file("/z/deep", 0), file("/gone", 0)],
                &[a],
                WhiteoutSpec::Oci,
            )
            .unwrap();
            o.apply(
                vec![ent("/.wh.gone", FileType::Regular), file("/top", 0)],
                &[b],
                WhiteoutSpec::Oci,
            )
            .unwrap();
            o
        };
        let (t, blobs) = build().finish(BlobOrder::FirstUse);
        let ids: Vec<&str> = blobs.iter().map(|b| b.blob_id.as_str()).collect();
        assert_eq!(ids, ["B", "A"]);
        assert_eq!(t.chunks(t.lookup(b"/top").unwrap())[0].blob_index, 0);
        assert_eq!(t.chunks(t.lookup(b"/z/deep").unwrap())[0].blob_index, 1);
        let (_, blobs) = build().finish(BlobOrder::Registered);
        let ids: Vec<&str> = blobs.iter().map(|b| b.blob_id.as_str()).collect();
        assert_eq!(ids, ["A", "B"]);
    }

    #[test]
    fn hard_links_stay_within_a_layer() {
        let mut o = Overlay::new();
        let mut a = ent("/a", FileType::Regular);
        a.entry.link_key = Some((7, 7));
        let mut b = ent("/b", FileType::Regular);
        b.entry.link_key = Some((7, 7));
        o.apply(vec![a.clone(), b], &[], WhiteoutSpec::Oci).unwrap();
        // The upper layer has a group with the same source key: a different inode.
        let mut c = ent("/c", FileType::Regular);
        c.entry.link_key = Some((7, 7));
        o.apply(
            vec![ent("/.wh.b", FileType::Regular), c],
            &[],
            WhiteoutSpec::Oci,
        )
        .unwrap();
        let (t, _) = o.finish(BlobOrder::FirstUse);
        let a = t.lookup(b"/a").unwrap();
        let c = t.lookup(b"/c").unwrap();
        assert_eq!((t.node(a).nlink, t.node(c).nlink), (1, 1));
        assert_eq!(t.node(c).hardlink_of, None);
    }

    #[test]
    fn whiteout_classification() {
        let f = ent("/x/.wh.y", FileType::Regular);
        assert_eq!(
            whiteout_of(WhiteoutSpec::Oci, &f.path, &f.entry),
            Some(Whiteout::Remove(b"/x/y".to_vec()))
        );
        assert_eq!(whiteout_of(WhiteoutSpec::None, &f.path, &f.entry), None);
        let o = ent("/.wh..wh..opq", FileType::Regular);
        assert_eq!(
            whiteout_of(WhiteoutSpec::Oci, &o.path, &o.entry),
            Some(Whiteout::OpaqueMarker(b"".to_vec()))
        );
        let mut dev = ent("/x/q", FileType::CharDevice);
        assert_eq!(
            whiteout_of(WhiteoutSpec::Overlayfs, &dev.path, &dev.entry),
            Some(Whiteout::Remove(b"/x/q".to_vec()))
        );
        dev.entry.attrs.rdev = 5;
        assert_eq!(
            whiteout_of(WhiteoutSpec::Overlayfs, &dev.path, &dev.entry),
            None
        );
    }
}
