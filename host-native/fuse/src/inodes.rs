//! The daemon's inode numbers: FUSE inode numbers handed to the kernel, each standing for one
//! inode of the image.
//!
//! The root is always [`ROOT`] (FUSE's fixed root number); every other inode gets the next
//! number the first time a lookup or a directory listing meets it, and keeps it for the life
//! of the mount (the image is immutable, so nothing is ever forgotten; the table grows at most
//! to the image's inode count). Hard links share a number: in RAFS v6 they share a nid; in v5
//! each link has its own record, so linked files are keyed by their build inode number.

use std::collections::HashMap;
use std::sync::RwLock;

use nydus_core::model::FileType;
use nydus_core::read::Inode;

/// FUSE's root inode number.
pub const ROOT: u64 = 1;

/// One inode known to the kernel.
#[derive(Debug, Clone)]
pub struct Node {
    /// The image's handle of the inode (v6 nid, v5 inode-table number).
    pub nid: u64,
    /// The FUSE number of the directory it was first found in (itself for the root).
    pub parent: u64,
    pub inode: Inode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Nid(u64),
    /// A v5 hard-link group, by build inode number.
    Link(u64),
}

#[derive(Debug, Default)]
struct Inner {
    /// Node of FUSE number `n` at `n - 1`.
    nodes: Vec<Node>,
    numbers: HashMap<Key, u64>,
}

/// The table of FUSE inode numbers.
#[derive(Debug)]
pub struct Inodes {
    version: u32,
    inner: RwLock<Inner>,
}

impl Inodes {
    /// A table holding the root inode of an image of RAFS `version`.
    pub fn new(version: u32, root: Inode) -> Self {
        let t = Inodes {
            version,
            inner: RwLock::new(Inner::default()),
        };
        t.number(ROOT, root);
        t
    }

    fn key(&self, i: &Inode) -> Key {
        if self.version == 5 && i.nlink > 1 && i.file_type != FileType::Directory {
            Key::Link(i.ino)
        } else {
            Key::Nid(i.nid)
        }
    }

    /// The FUSE number of `inode`, met in directory `parent`: its number if it has one, else a
    /// new one.
    pub fn number(&self, parent: u64, inode: Inode) -> u64 {
        let key = self.key(&inode);
        if let Some(&n) = self
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .numbers
            .get(&key)
        {
            return n;
        }
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(&n) = g.numbers.get(&key) {
            return n;
        }
        let n = g.nodes.len() as u64 + 1;
        let parent = if n == ROOT { ROOT } else { parent };
        g.nodes.push(Node {
            nid: inode.nid,
            parent,
            inode,
        });
        g.numbers.insert(key, n);
        n
    }

    /// The node of FUSE number `n`, if the kernel was ever given it.
    pub fn get(&self, n: u64) -> Option<Node> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        n.checked_sub(1)
            .and_then(|i| g.nodes.get(i as usize))
            .cloned()
    }

    /// How many numbers were handed out.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .nodes
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nydus_core::model::Attrs;

    fn inode(nid: u64, ino: u64, nlink: u32, t: FileType) -> Inode {
        Inode {
            nid,
            file_type: t,
            attrs: Attrs::default(),
            size: 0,
            nlink,
            ino,
        }
    }

    #[test]
    fn the_root_is_one_and_numbers_are_stable() {
        let t = Inodes::new(6, inode(36, 1, 2, FileType::Directory));
        assert_eq!(t.get(ROOT).unwrap().nid, 36);
        let a = t.number(ROOT, inode(40, 2, 1, FileType::Regular));
        let b = t.number(ROOT, inode(44, 3, 1, FileType::Regular));
        assert_eq!((a, b), (2, 3));
        assert_eq!(t.number(ROOT, inode(40, 2, 1, FileType::Regular)), 2);
        assert_eq!(t.get(2).unwrap().nid, 40);
        assert!(t.get(0).is_none() && t.get(4).is_none());
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn v5_hard_links_share_a_number_v6_ones_share_a_nid() {
        let t = Inodes::new(5, inode(0, 1, 2, FileType::Directory));
        let a = t.number(ROOT, inode(3, 7, 2, FileType::Regular));
        let b = t.number(ROOT, inode(4, 7, 2, FileType::Regular));
        assert_eq!(a, b);
        // Distinct single-link files with equal build numbers (foreign images) stay distinct.
        let c = t.number(ROOT, inode(5, 9, 1, FileType::Regular));
        let d = t.number(ROOT, inode(6, 9, 1, FileType::Regular));
        assert_ne!(c, d);
        let t6 = Inodes::new(6, inode(36, 1, 2, FileType::Directory));
        assert_eq!(
            t6.number(ROOT, inode(50, 7, 2, FileType::Regular)),
            t6.number(ROOT, inode(50, 7, 2, FileType::Regular))
        );
    }
}
