//! Upstream's own reader (the `nydus-rafs` crate, what `nydusd` uses) opens bootstraps we
//! build and walks the same tree the source has: types, modes, owners, mtimes, sizes, link
//! counts, device numbers, symlink targets, xattrs, and every chunk's digest and size.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use nydus_api::ConfigV2;
use nydus_core::digest::Digester;
use nydus_core::model::{encode_rdev, split_dev_t};
use nydus_rafs::metadata::RafsSuper;
use nydus_tests::*;

const CHUNK: u64 = 0x10_0000;

/// One line per entry from the source tree, as upstream should report it.
fn expected(src: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = [
                b"/".as_slice(),
                p.strip_prefix(src).unwrap().as_os_str().as_bytes(),
            ]
            .concat();
            let ft = m.file_type();
            let mut line = format!(
                "mode={:o} uid={} gid={} mtime={}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.mtime()
            );
            if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                let digests: Vec<String> = data
                    .chunks(CHUNK as usize)
                    .map(|c| format!("{}:{}", Digester::Blake3.digest(c).to_hex(), c.len()))
                    .collect();
                line += &format!(
                    " size={} nlink={} chunks=[{}]",
                    m.len(),
                    m.nlink(),
                    digests.join(",")
                );
            } else if ft.is_symlink() {
                line += &format!(" target={}", std::fs::read_link(&p).unwrap().display());
            } else if ft.is_dir() {
                stack.push(p.clone());
            } else {
                let (ma, mi) = split_dev_t(m.rdev());
                line += &format!(" rdev={}", encode_rdev(ma, mi));
            }
            let mut xs: Vec<String> = xattr::list(&p)
                .unwrap()
                .map(|k| {
                    format!(
                        "{}={:?}",
                        k.to_string_lossy(),
                        xattr::get(&p, &k).unwrap().unwrap_or_default()
                    )
                })
                .collect();
            xs.sort();
            line += &format!(" xattrs=[{}]", xs.join(","));
            out.insert(rel, line);
        }
    }
    out
}

#[test]
fn upstream_nydus_rafs_reads_our_v6_bootstrap() {
    upstream_reads("6");
}

#[test]
fn upstream_nydus_rafs_reads_our_v5_bootstrap() {
    upstream_reads("5");
}

fn upstream_reads(fs_version: &str) {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    make_tree(
        &src,
        TreeSpec {
            big_dir_entries: 10_200,
            socket: true,
        },
    );
    let boot = t.path().join("boot");
    let blob = t.path().join("blob");
    nydus_image_ok(&[
        "create",
        "--fs-version",
        fs_version,
        "-B",
        boot.to_str().unwrap(),
        "-b",
        blob.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);

    let (got, per_blob) = upstream_walk(&boot, fs_version, 1);
    assert_eq!(per_blob.len(), 1);
    compare(&expected(&src), &got);

    // Optimized (a prefetch blob appended, some chunks repointed into it): upstream reads the
    // same tree, with the same chunks.
    let list = t.path().join("list");
    std::fs::write(&list, "/\n").unwrap();
    let opt = t.path().join("opt.boot");
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    nydus_image_ok(&[
        "optimize",
        "-B",
        boot.to_str().unwrap(),
        "-b",
        blob.to_str().unwrap(),
        "-p",
        list.to_str().unwrap(),
        "-O",
        opt.to_str().unwrap(),
        "--output-blob-dir",
        out.to_str().unwrap(),
    ]);
    let (opt_got, opt_blobs) = upstream_walk(&opt, fs_version, 2);
    compare(&got, &opt_got);
    // Everything was listed: every chunk now points into the prefetch blob (index 1).
    assert_eq!(
        opt_blobs.keys().copied().collect::<Vec<_>>(),
        [1],
        "{opt_blobs:?}"
    );
}

/// Upstream's view of bootstrap `boot`: one line per entry; it must list `blobs` blobs.
/// Also the count of chunk references per blob index.
fn upstream_walk(
    boot: &Path,
    fs_version: &str,
    blobs: usize,
) -> (BTreeMap<Vec<u8>, String>, BTreeMap<u32, usize>) {
    let mut per_blob = BTreeMap::new();
    let (rs, _reader) = RafsSuper::load_from_file(boot, Arc::new(ConfigV2::default()), false)
        .unwrap_or_else(|e| panic!("upstream nydus-rafs refused our v{fs_version} bootstrap: {e}"));
    assert_eq!(
        rs.meta.is_v5(),
        fs_version == "5",
        "upstream sees the version we wrote"
    );
    let root = rs.superblock.root_ino();
    let mut got = BTreeMap::new();
    rs.walk_directory::<&Path>(root, None, &mut |inode, path| {
        let rel = path.as_os_str().as_bytes().to_vec();
        if rel == b"/" {
            return Ok(());
        }
        let a = inode.get_attr();
        let i = inode.as_inode();
        let mut line = format!(
            "mode={:o} uid={} gid={} mtime={}",
            a.mode, a.uid, a.gid, a.mtime
        );
        if i.is_reg() {
            let mut chunks = Vec::new();
            for k in 0..i.get_chunk_count() {
                let c = inode.get_chunk_info(k)?;
                *per_blob.entry(c.blob_index()).or_insert(0) += 1;
                chunks.push(format!(
                    "{}:{}",
                    nydus_core::digest::hex(&c.chunk_id().data),
                    c.uncompressed_size()
                ));
            }
            line += &format!(
                " size={} nlink={} chunks=[{}]",
                a.size,
                a.nlink,
                chunks.join(",")
            );
        } else if i.is_symlink() {
            line += &format!(" target={}", i.get_symlink()?.to_string_lossy());
        } else if !i.is_dir() {
            line += &format!(" rdev={}", i.rdev());
        }
        let mut xs = Vec::new();
        for name in i.get_xattrs()? {
            let v = i.get_xattr(OsStr::from_bytes(&name))?.unwrap_or_default();
            xs.push(format!("{}={:?}", String::from_utf8_lossy(&name), v));
        }
        xs.sort();
        line += &format!(" xattrs=[{}]", xs.join(","));
        got.insert(rel, line);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        rs.superblock.get_blob_infos().len(),
        blobs,
        "upstream's blob table"
    );
    (got, per_blob)
}

fn compare(want: &BTreeMap<Vec<u8>, String>, got: &BTreeMap<Vec<u8>, String>) {
    let diff: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(5)
        .map(|(k, v)| {
            format!(
                "{}\n  want {v}\n  got  {:?}",
                String::from_utf8_lossy(k),
                got.get(k)
            )
        })
        .collect();
    assert!(
        diff.is_empty() && want.len() == got.len(),
        "{} vs {} entries\n{}",
        want.len(),
        got.len(),
        diff.join("\n")
    );
}
