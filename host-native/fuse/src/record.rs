//! `--record-prefetch F`: the files and byte ranges a container really read, written on
//! unmount as a prefetch list (upstream's JSON v1, `nydus_core::prefetch_list`), ready for
//! `nydusify optimize --prefetch-files F` (closing upstream's open request, nydus#1794).
//!
//! Files are listed in the order of their first read; each file's ranges are coalesced as
//! they come (memory stays proportional to the distinct ranges read, merged whenever they
//! touch); a file read from its start to its end is listed without ranges (the whole file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use nydus_core::prefetch_list::{coalesce, to_json, PrefetchFile, PrefetchList};
use nydus_core::read::Filesystem;
use nydus_host_storage::atomic::write_file;

/// Ranges kept per file before they are coalesced again.
const COALESCE_AT: usize = 64;

#[derive(Debug, Default)]
struct Inner {
    /// Build inode numbers in the order of their first read.
    order: Vec<u64>,
    /// `(offset, length)` ranges read, by build inode number (shared by hard links).
    ranges: HashMap<u64, Vec<(u64, u64)>>,
}

/// What was read, by inode.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl Recorder {
    /// A recorder that will write to `path`.
    pub fn new(path: &Path) -> Recorder {
        Recorder {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Notes that `len` bytes at `offset` of the inode with build number `ino` were read.
    pub fn record(&self, ino: u64, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Inner { order, ranges } = &mut *g;
        let r = ranges.entry(ino).or_insert_with(|| {
            order.push(ino);
            Vec::new()
        });
        r.push((offset, len));
        if r.len() >= COALESCE_AT {
            coalesce(r);
        }
    }

    /// The list of what was read from `fs`, each inode named by its first path.
    pub fn list<F: Filesystem + ?Sized>(&self, fs: &F) -> Result<PrefetchList> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: HashMap<u64, (String, u64)> = HashMap::new();
        nydus_core::read::walk(fs, &mut |p, i| {
            if g.ranges.contains_key(&i.ino) {
                names
                    .entry(i.ino)
                    .or_insert_with(|| (String::from_utf8_lossy(p).into_owned(), i.size));
            }
            Ok(())
        })
        .context("walking the image for the recorded files' paths")?;
        let Inner { order, ranges } = &mut *g;
        let mut out = PrefetchList::default();
        for ino in order.iter() {
            let (Some(r), Some((path, size))) = (ranges.get_mut(ino), names.get(ino)) else {
                continue;
            };
            coalesce(r);
            let whole = matches!(r.as_slice(), [(0, l)] if *l >= *size);
            out.files.push(PrefetchFile {
                path: path.clone(),
                ranges: (!whole).then(|| r.clone()),
            });
        }
        Ok(out)
    }

    /// Writes the list (under a temporary name, then renamed) and returns how many files it
    /// names.
    pub fn write<F: Filesystem + ?Sized>(&self, fs: &F) -> Result<usize> {
        let list = self.list(fs)?;
        write_file(&self.path, to_json(&list).as_bytes()).with_context(|| {
            format!("writing the recorded prefetch list {}", self.path.display())
        })?;
        Ok(list.files.len())
    }

    /// Where the list goes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nydus_core::memimage::{build, MemEntry, MemOptions};

    #[test]
    fn reads_become_a_prefetch_list() {
        let img = build(
            &[
                MemEntry::file(b"/a", vec![1u8; 10_000]),
                MemEntry::file(b"/b", vec![2u8; 100]),
                MemEntry::file(b"/c", vec![3u8; 100]),
            ],
            &MemOptions::default(),
        )
        .unwrap();
        let fs = nydus_core::rafs::Rafs::open(img.bootstrap.clone()).unwrap();
        let ino = |p: &str| {
            let nid = fs.lookup(p.as_bytes()).unwrap().unwrap();
            fs.inode(nid).unwrap().ino
        };
        let r = Recorder::new(Path::new("/nonexistent/list.json"));
        r.record(ino("/b"), 0, 100);
        r.record(ino("/a"), 4096, 4096);
        r.record(ino("/a"), 0, 4096);
        r.record(ino("/a"), 9000, 0);
        let l = r.list(&fs).unwrap();
        assert_eq!(
            l.files,
            vec![
                PrefetchFile {
                    path: "/b".into(),
                    ranges: None
                },
                PrefetchFile {
                    path: "/a".into(),
                    ranges: Some(vec![(0, 8192)])
                },
            ]
        );
        // The JSON written is what optimize reads back.
        let (back, w) = nydus_core::prefetch_list::parse(to_json(&l).as_bytes()).unwrap();
        assert_eq!(back, l);
        assert!(w.is_empty());
        assert!(r.write(&fs).is_err(), "an unwritable path is an error");
    }
}
