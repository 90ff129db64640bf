//! The filesystem tree of one image, as the builder sees it.
//!
//! A host adds entries (from a directory walk, a tar stream, or a decoded parent bootstrap) to
//! a [`TreeBuilder`]; [`TreeBuilder::finish`] sorts children by raw name bytes, assigns build
//! inode numbers (`rafs-v6.md` §9.3), groups hard links (§14.1) and counts links. The result,
//! a [`Tree`], says in which order file data must be read ([`Tree::data_order`]) and receives
//! each file's chunk references ([`Tree::set_chunks`]) before the bootstrap is encoded.

use std::collections::HashMap;

use crate::error::BuildError;
use crate::model::{mode, Attrs, ChunkRef, FileType, Xattrs};

/// Index of a node in [`Tree::nodes`]; the root is [`ROOT`].
pub type NodeId = usize;

/// The root node's id.
pub const ROOT: NodeId = 0;

/// One entry handed to the builder by a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub file_type: FileType,
    /// Attributes; the type bits of `attrs.mode` are overwritten from `file_type`.
    pub attrs: Attrs,
    /// `(full name, value)` pairs in any order; sorted by the builder.
    pub xattrs: Xattrs,
    /// Regular file: content length. Ignored for other types.
    pub size: u64,
    /// Symlink target bytes (no NUL). Required for symlinks.
    pub symlink: Option<Vec<u8>>,
    /// Hard-link identity: regular files with the same key are one inode (a directory host
    /// passes `(st_dev, st_ino)` of files with `st_nlink > 1`).
    pub link_key: Option<(u64, u64)>,
    /// Opaque token the host uses to find the entry's data again (e.g. an index into its list
    /// of source paths, or a tar offset).
    pub source: u64,
}

impl Entry {
    /// An entry with no data, no hard-link identity and no source token (sources set `size`,
    /// `link_key` and `source` where they have them).
    pub fn new(
        file_type: FileType,
        attrs: Attrs,
        xattrs: Xattrs,
        symlink: Option<Vec<u8>>,
    ) -> Self {
        Entry {
            file_type,
            attrs,
            xattrs,
            size: 0,
            symlink,
            link_key: None,
            source: 0,
        }
    }
}

/// A node of the finished tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// File name; the root's name is `/`.
    pub name: Vec<u8>,
    /// Parent node; the root's parent is itself.
    pub parent: NodeId,
    /// Children, sorted by raw name bytes.
    pub children: Vec<NodeId>,
    pub file_type: FileType,
    pub attrs: Attrs,
    /// Sorted by full name.
    pub xattrs: Xattrs,
    /// Regular file length, symlink target length, 0 otherwise (directory sizes are
    /// format-specific and computed by the encoders).
    pub size: u64,
    pub symlink: Option<Vec<u8>>,
    /// For a hard-link entry that is not the first of its group: the group's first node.
    pub hardlink_of: Option<NodeId>,
    /// Link count: group size for hard-linked files, 2 + child directories for directories.
    pub nlink: u32,
    /// Build inode number (§9.3), from 1. Hard-link entries keep their own number here; the
    /// encoders write the group leader's.
    pub ino: u32,
    /// Chunks of a regular file in file order (empty until [`Tree::set_chunks`]).
    pub chunks: Vec<ChunkRef>,
    pub link_key: Option<(u64, u64)>,
    pub source: u64,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }
}

/// Collects entries in any order; parents missing from the input are created as
/// `0o40755`, uid/gid 0, mtime 0 (`rafs-v6.md` §9.1).
#[derive(Debug)]
pub struct TreeBuilder {
    nodes: Vec<Node>,
    index: HashMap<(NodeId, Vec<u8>), NodeId>,
    /// Nodes detached by a replacement; skipped when numbering.
    dead: Vec<bool>,
}

impl Default for TreeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn implicit_dir() -> Node {
    Node {
        name: Vec::new(),
        parent: ROOT,
        children: Vec::new(),
        file_type: FileType::Directory,
        attrs: Attrs {
            mode: mode::S_IFDIR | 0o755,
            ..Attrs::default()
        },
        xattrs: Vec::new(),
        size: 0,
        symlink: None,
        hardlink_of: None,
        nlink: 2,
        ino: 0,
        chunks: Vec::new(),
        link_key: None,
        source: 0,
    }
}

/// Splits a path into its non-empty components, refusing `.`/`..` and NUL.
pub fn split_path(path: &[u8]) -> Result<Vec<&[u8]>, BuildError> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => continue,
            b".." => {
                return Err(BuildError::InvalidEntry {
                    path: String::from_utf8_lossy(path).into_owned(),
                    reason: "path contains a `..` component".into(),
                })
            }
            _ if c.contains(&0) => {
                return Err(BuildError::InvalidEntry {
                    path: String::from_utf8_lossy(path).into_owned(),
                    reason: "path contains a NUL byte".into(),
                })
            }
            _ if c.len() > 255 => {
                return Err(BuildError::InvalidEntry {
                    path: String::from_utf8_lossy(path).into_owned(),
                    reason: format!("a file name is {} bytes long (at most 255)", c.len()),
                })
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

impl TreeBuilder {
    /// A builder holding only an implicit root directory.
    pub fn new() -> Self {
        let mut root = implicit_dir();
        root.name = b"/".to_vec();
        Self {
            nodes: vec![root],
            index: HashMap::new(),
            dead: vec![false],
        }
    }

    /// Number of live entries, the root included.
    pub fn len(&self) -> usize {
        self.dead.iter().filter(|d| !**d).count()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Looks up a path (`/`-separated, relative to the root).
    pub fn lookup(&self, path: &[u8]) -> Option<NodeId> {
        let mut cur = ROOT;
        for c in split_path(path).ok()? {
            cur = *self.index.get(&(cur, c.to_vec()))?;
        }
        Some(cur)
    }

    fn child_or_create_dir(&mut self, parent: NodeId, name: &[u8]) -> Result<NodeId, BuildError> {
        if let Some(&id) = self.index.get(&(parent, name.to_vec())) {
            if self.nodes[id].file_type != FileType::Directory {
                return Err(BuildError::Conflict {
                    path: String::from_utf8_lossy(name).into_owned(),
                    reason: "used as a directory but is not one".into(),
                });
            }
            return Ok(id);
        }
        let mut d = implicit_dir();
        d.name = name.to_vec();
        d.parent = parent;
        Ok(self.push(parent, d))
    }

    fn push(&mut self, parent: NodeId, node: Node) -> NodeId {
        let id = self.nodes.len();
        self.index.insert((parent, node.name.clone()), id);
        self.nodes[parent].children.push(id);
        self.nodes.push(node);
        self.dead.push(false);
        id
    }

    fn kill_subtree(&mut self, id: NodeId) {
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            self.dead[n] = true;
            let children = std::mem::take(&mut self.nodes[n].children);
            for c in children {
                self.index.remove(&(n, self.nodes[c].name.clone()));
                stack.push(c);
            }
        }
    }

    /// Removes the entry at `path` and everything under it; returns whether it existed.
    pub fn remove(&mut self, path: &[u8]) -> bool {
        let Some(id) = self.lookup(path) else {
            return false;
        };
        if id == ROOT {
            return false;
        }
        let parent = self.nodes[id].parent;
        self.index.remove(&(parent, self.nodes[id].name.clone()));
        self.nodes[parent].children.retain(|&c| c != id);
        self.kill_subtree(id);
        true
    }

    /// Removes every child of the directory at `path` (an opaque whiteout).
    pub fn clear_dir(&mut self, path: &[u8]) {
        if let Some(id) = self.lookup(path) {
            let children = self.nodes[id].children.clone();
            for c in children {
                self.index.remove(&(id, self.nodes[c].name.clone()));
                self.kill_subtree(c);
            }
            self.nodes[id].children.clear();
        }
    }

    /// A node added so far.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Marks a regular file as a member of the hard-link group `key` (a stream source learns
    /// that a file is hard-linked only when a later entry links to it).
    pub fn set_link_key(&mut self, id: NodeId, key: (u64, u64)) {
        if self.nodes[id].file_type == FileType::Regular {
            self.nodes[id].link_key = Some(key);
        }
    }

    /// Adds (or replaces) the entry at `path`. An empty path (or `/`) sets the root's
    /// attributes. A directory replacing a directory keeps its children; any other
    /// replacement drops the old entry and its subtree.
    pub fn insert(&mut self, path: &[u8], entry: Entry) -> Result<NodeId, BuildError> {
        let comps = split_path(path)?;
        let shown = || String::from_utf8_lossy(path).into_owned();
        if entry.file_type == FileType::Symlink
            && entry.symlink.as_ref().is_none_or(|t| t.is_empty())
        {
            return Err(BuildError::InvalidEntry {
                path: shown(),
                reason: "symlink without a target".into(),
            });
        }
        let mut attrs = entry.attrs.clone();
        attrs.mode = (attrs.mode & !mode::S_IFMT) | entry.file_type.mode_bits();
        let mut xattrs = entry.xattrs.clone();
        xattrs.sort();
        xattrs.dedup_by(|a, b| a.0 == b.0);
        let size = match entry.file_type {
            FileType::Regular => entry.size,
            FileType::Symlink => entry.symlink.as_ref().map_or(0, |t| t.len() as u64),
            _ => 0,
        };
        let Some((last, dirs)) = comps.split_last() else {
            if entry.file_type != FileType::Directory {
                return Err(BuildError::InvalidEntry {
                    path: shown(),
                    reason: "the root must be a directory".into(),
                });
            }
            let root = &mut self.nodes[ROOT];
            root.attrs = attrs;
            root.xattrs = xattrs;
            root.source = entry.source;
            return Ok(ROOT);
        };
        let mut parent = ROOT;
        for d in dirs {
            parent = self.child_or_create_dir(parent, d).map_err(|e| match e {
                BuildError::Conflict { reason, .. } => BuildError::Conflict {
                    path: shown(),
                    reason: format!("a parent component {reason}"),
                },
                e => e,
            })?;
        }
        let node = Node {
            name: last.to_vec(),
            parent,
            children: Vec::new(),
            file_type: entry.file_type,
            attrs,
            xattrs,
            size,
            symlink: if entry.file_type == FileType::Symlink {
                entry.symlink
            } else {
                None
            },
            hardlink_of: None,
            nlink: 1,
            ino: 0,
            chunks: Vec::new(),
            link_key: if entry.file_type == FileType::Regular {
                entry.link_key
            } else {
                None
            },
            source: entry.source,
        };
        if let Some(&old) = self.index.get(&(parent, last.to_vec())) {
            if self.nodes[old].is_dir() && node.is_dir() {
                let o = &mut self.nodes[old];
                o.attrs = node.attrs;
                o.xattrs = node.xattrs;
                o.source = node.source;
                return Ok(old);
            }
            self.nodes[parent].children.retain(|&c| c != old);
            self.index.remove(&(parent, last.to_vec()));
            self.kill_subtree(old);
        }
        Ok(self.push(parent, node))
    }

    /// Sorts, numbers, groups hard links and counts links.
    pub fn finish(mut self) -> Tree {
        // Compact: drop dead nodes, renumber ids in build order (§9.3) so that
        // `nodes[i].ino == i + 1` and the root is 0.
        for n in &mut self.nodes {
            n.children.retain(|_| true);
        }
        let mut order: Vec<NodeId> = vec![ROOT];
        let mut queue_pos = 0;
        // "number all children of a directory, then descend into child directories in order":
        // a DFS over directories where each directory's children are appended as a block.
        let mut stack: Vec<NodeId> = vec![ROOT];
        let nodes = &mut self.nodes;
        while let Some(dir) = stack.pop() {
            let mut kids = std::mem::take(&mut nodes[dir].children);
            kids.sort_by(|&a, &b| nodes[a].name.cmp(&nodes[b].name));
            order.extend_from_slice(&kids);
            for &k in kids.iter().rev() {
                if nodes[k].is_dir() {
                    stack.push(k);
                }
            }
            nodes[dir].children = kids;
            queue_pos += 1;
        }
        let _ = queue_pos;
        let mut new_id = vec![usize::MAX; nodes.len()];
        for (i, &old) in order.iter().enumerate() {
            new_id[old] = i;
        }
        let mut out: Vec<Node> = Vec::with_capacity(order.len());
        for (i, &old) in order.iter().enumerate() {
            let mut n = nodes[old].clone();
            n.parent = new_id[n.parent];
            for c in &mut n.children {
                *c = new_id[*c];
            }
            n.ino = (i + 1) as u32;
            out.push(n);
        }
        // Hard links: first entry (in build order) of each key is the leader.
        let mut leaders: HashMap<(u64, u64), NodeId> = HashMap::new();
        let mut group_size: HashMap<NodeId, u32> = HashMap::new();
        for id in 0..out.len() {
            if let Some(key) = out[id].link_key {
                let leader = *leaders.entry(key).or_insert(id);
                *group_size.entry(leader).or_insert(0) += 1;
                if leader != id {
                    out[id].hardlink_of = Some(leader);
                }
            }
        }
        for id in 0..out.len() {
            if out[id].is_dir() {
                let subdirs = out[id]
                    .children
                    .iter()
                    .filter(|&&c| out[c].is_dir())
                    .count();
                out[id].nlink = 2 + subdirs as u32;
            } else if out[id].file_type == FileType::Regular && out[id].link_key.is_some() {
                let leader = out[id].hardlink_of.unwrap_or(id);
                out[id].nlink = group_size[&leader];
            } else {
                out[id].nlink = 1;
            }
        }
        Tree { nodes: out }
    }
}

/// A finished tree: `nodes[i]` has build inode number `i + 1`; `nodes[0]` is the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Number of tree entries (the superblock's `inos`).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The full path of a node (`/` for the root), as bytes.
    pub fn path(&self, id: NodeId) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            parts.push(self.nodes[cur].name.as_slice());
            cur = self.nodes[cur].parent;
        }
        let mut p = Vec::new();
        for c in parts.iter().rev() {
            p.push(b'/');
            p.extend_from_slice(c);
        }
        if p.is_empty() {
            p.push(b'/');
        }
        p
    }

    /// Looks up an absolute or relative path.
    pub fn lookup(&self, path: &[u8]) -> Option<NodeId> {
        let mut cur = ROOT;
        for c in split_path(path).ok()? {
            let kids = &self.nodes[cur].children;
            let i = kids
                .binary_search_by(|&k| self.nodes[k].name.as_slice().cmp(c))
                .ok()?;
            cur = kids[i];
        }
        Some(cur)
    }

    /// The regular files whose data must be read, in blob order: files under the given
    /// prefetch nodes first (in the order given; a file's position is that of the first
    /// pattern covering it), then every other one in build order. Hard-link followers and
    /// empty files are left out.
    pub fn data_order(&self, prefetch: &[NodeId]) -> Vec<NodeId> {
        let wanted = |id: NodeId| {
            let n = &self.nodes[id];
            n.file_type == FileType::Regular && n.hardlink_of.is_none() && n.size > 0
        };
        let mut taken = vec![false; self.nodes.len()];
        let mut out = Vec::new();
        for &p in prefetch {
            // Nodes under `p` in build order: ids are build order, so scan the subtree.
            let mut stack = vec![p];
            let mut sub = Vec::new();
            while let Some(n) = stack.pop() {
                sub.push(n);
                stack.extend(self.nodes[n].children.iter().copied());
            }
            sub.sort_unstable();
            for n in sub {
                if wanted(n) && !taken[n] {
                    taken[n] = true;
                    out.push(n);
                }
            }
        }
        for id in 0..self.nodes.len() {
            if wanted(id) && !taken[id] {
                out.push(id);
            }
        }
        out
    }

    /// Records a regular file's chunks (file order).
    pub fn set_chunks(&mut self, id: NodeId, chunks: Vec<ChunkRef>) {
        self.nodes[id].chunks = chunks;
    }

    /// The chunks of a regular file, following a hard link to its leader.
    pub fn chunks(&self, id: NodeId) -> &[ChunkRef] {
        let n = &self.nodes[id];
        match n.hardlink_of {
            Some(l) => &self.nodes[l].chunks,
            None => &n.chunks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ft: FileType) -> Entry {
        Entry {
            file_type: ft,
            attrs: Attrs {
                mode: 0o644,
                ..Attrs::default()
            },
            xattrs: vec![],
            size: 0,
            symlink: if ft == FileType::Symlink {
                Some(b"t".to_vec())
            } else {
                None
            },
            link_key: None,
            source: 0,
        }
    }

    #[test]
    fn numbering_is_children_first_then_descend() {
        let mut b = TreeBuilder::new();
        b.insert(b"b/y", e(FileType::Regular)).unwrap();
        b.insert(b"a/x", e(FileType::Regular)).unwrap();
        b.insert(b"c", e(FileType::Regular)).unwrap();
        b.insert(b"a/z/w", e(FileType::Regular)).unwrap();
        let t = b.finish();
        let paths: Vec<String> = (0..t.len())
            .map(|i| String::from_utf8(t.path(i)).unwrap())
            .collect();
        assert_eq!(
            paths,
            ["/", "/a", "/b", "/c", "/a/x", "/a/z", "/a/z/w", "/b/y"]
        );
        assert_eq!(t.node(0).nlink, 4);
        assert_eq!(t.lookup(b"/a/z/w"), Some(6));
        assert_eq!(t.node(6).ino, 7);
    }

    #[test]
    fn hard_links_group_and_count() {
        let mut b = TreeBuilder::new();
        let mut f = e(FileType::Regular);
        f.link_key = Some((1, 42));
        f.size = 10;
        b.insert(b"z", f.clone()).unwrap();
        b.insert(b"a", f).unwrap();
        let t = b.finish();
        let a = t.lookup(b"a").unwrap();
        let z = t.lookup(b"z").unwrap();
        assert_eq!(t.node(z).hardlink_of, Some(a));
        assert_eq!((t.node(a).nlink, t.node(z).nlink), (2, 2));
        assert_eq!(t.data_order(&[]), vec![a]);
    }

    #[test]
    fn rejects_dotdot_and_replaces() {
        let mut b = TreeBuilder::new();
        assert!(b.insert(b"a/../b", e(FileType::Regular)).is_err());
        b.insert(b"d/f", e(FileType::Regular)).unwrap();
        b.insert(b"d", e(FileType::Regular)).unwrap();
        let t = b.finish();
        assert_eq!(t.len(), 2);
        assert_eq!(t.node(1).file_type, FileType::Regular);
    }
}
