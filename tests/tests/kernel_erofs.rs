//! The Linux kernel's EROFS driver mounts what we build: the `--blob-cache-dir` form with
//! `device=<id>.blob.data` (file-backed, through mount(2)), and the single-file disk of
//! `export --block`. erofs-utils' `fsck.erofs` and `dump.erofs` accept the bootstraps too.

use std::path::{Path, PathBuf};
use std::process::Command;

use nydus_tests::*;

struct Built {
    _t: tempfile::TempDir,
    src: PathBuf,
    cache: PathBuf,
    boot: PathBuf,
    data: PathBuf,
}

fn build() -> Built {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let cache = t.path().join("cache");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    make_tree(
        &src,
        TreeSpec {
            big_dir_entries: 10_500,
            socket: true,
        },
    );
    let boot = t.path().join("boot");
    nydus_image_ok(&[
        "create",
        "-B",
        boot.to_str().unwrap(),
        "--blob-cache-dir",
        cache.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    let data = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".blob.data"))
        .expect("--blob-cache-dir wrote <id>.blob.data");
    let meta = PathBuf::from(data.to_string_lossy().replace(".blob.data", ".blob.meta"));
    assert!(meta.exists(), "--blob-cache-dir wrote <id>.blob.meta");
    Built {
        src,
        cache,
        boot,
        data,
        _t: t,
    }
}

fn mnt(t: &Path) -> PathBuf {
    let m = t.join("mnt");
    std::fs::create_dir_all(&m).unwrap();
    m
}

#[test]
fn kernel_mounts_bootstrap_with_blob_cache_device() {
    let b = build();
    let m = mnt(b.cache.parent().unwrap());
    let _g = mount(
        &b.boot,
        &m,
        "erofs",
        &format!("device={}", b.data.display()),
    )
    .unwrap_or_else(|e| {
        panic!("the kernel refused our image: {e} (needs EROFS with file-backed devices)")
    });
    let o = ListOptions::default();
    assert_same_tree(&list_tree(&b.src, o), &list_tree(&m, o));
}

#[test]
fn kernel_mounts_the_exported_block_image_alone() {
    let b = build();
    let disk = b.cache.parent().unwrap().join("disk.img");
    nydus_image_ok(&[
        "export",
        "--block",
        "--bootstrap",
        b.boot.to_str().unwrap(),
        "--localfs-dir",
        b.cache.to_str().unwrap(),
        "--output",
        disk.to_str().unwrap(),
    ]);
    let m = mnt(b.cache.parent().unwrap());
    let _g = mount(&disk, &m, "erofs", "")
        .unwrap_or_else(|e| panic!("the kernel refused the exported disk: {e}"));
    let o = ListOptions::default();
    assert_same_tree(&list_tree(&b.src, o), &list_tree(&m, o));
}

#[test]
fn erofs_utils_accept_the_bootstrap() {
    require_tool("fsck.erofs", "erofs-utils");
    require_tool("dump.erofs", "erofs-utils");
    let b = build();
    let x = b.cache.parent().unwrap().join("extracted");
    let o = run(Command::new("fsck.erofs")
        .arg(format!("--device={}", b.data.display()))
        .arg(format!("--extract={}", x.display()))
        .arg(&b.boot));
    let err = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    // fsck.erofs may exit 0 after printing errors: read its output too.
    assert!(
        o.status.success() && !err.contains("<E>"),
        "fsck.erofs rejected the image:\n{err}"
    );
    let lo = ListOptions {
        skip_sockets: false,
    };
    let mut want = list_tree(&b.src, lo);
    // fsck.erofs 1.5 extracts neither xattrs nor hard links (each name becomes its own file)
    // and not the ownership of symlinks; compare names, types and content.
    let strip = |v: &mut Vec<String>| {
        for l in v.iter_mut() {
            for n in 1..10 {
                *l = l.replace(&format!(" nlink={n} "), " ");
            }
            if let Some(i) = l.find(" xattrs=") {
                l.truncate(i);
            }
            let f: Vec<&str> = l.splitn(5, ' ').collect();
            *l = format!(
                "{} {} {}",
                f[0],
                f[1],
                f.get(4)
                    .map(|s| s.split_once(' ').map_or("", |x| x.1))
                    .unwrap_or("")
            );
        }
    };
    let mut got = list_tree(&x, lo);
    strip(&mut want);
    strip(&mut got);
    assert_same_tree(&want, &got);

    let o = run(Command::new("dump.erofs")
        .arg(format!("--device={}", b.data.display()))
        .arg("-s")
        .arg(&b.boot));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "dump.erofs failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("chunked_file") && text.contains("device_table"),
        "{text}"
    );
    assert!(
        text.contains("Filesystem root nid:                          128"),
        "{text}"
    );
}
