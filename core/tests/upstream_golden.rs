//! Images written by upstream `nydus-image` (see `tests/golden/upstream/README.md`) decode to
//! exactly the source tree's listing. The WASM build runs the same checks
//! (`tests/wasm-golden`).

// Tests are hosts: they read golden files from disk.
#![allow(clippy::disallowed_methods)]

use nydus_core::blob::reader::extract_inline_bootstrap;
use nydus_core::listing::listing;
use nydus_core::rafs::Rafs as Bootstrap;
use nydus_core::read::Filesystem;

fn golden(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn expected() -> String {
    String::from_utf8(golden("tree.listing")).unwrap()
}

#[test]
fn upstream_dir_images_decode_to_the_source_tree() {
    for stem in ["up-dir-zstd", "up-dir-lz4-sha256", "up-dir-v5"] {
        let boot = Bootstrap::open(golden(&format!("upstream/{stem}.boot"))).unwrap();
        let rep = boot.check();
        assert!(rep.findings.is_empty(), "{stem}: {:?}", rep.findings);
        let blob = golden(&format!("upstream/{stem}.blob"));
        assert_eq!(listing(&boot, &[blob]).unwrap(), expected(), "{stem}");
    }
}

#[test]
fn upstream_layer_with_inline_bootstrap_and_toc_decodes() {
    let blob = golden("upstream/up-layer-inline-toc.blob");
    let boot = Bootstrap::open(extract_inline_bootstrap(&blob).unwrap()).unwrap();
    assert_eq!(boot.blobs()[0].blob_id, "x".repeat(64));
    assert_eq!(boot.prefetch().unwrap(), vec![128]);
    let rep = boot.check();
    assert!(rep.findings.is_empty(), "{:?}", rep.findings);
    // A tar source keeps the `./` entry's mtime on the root.
    let want = expected().replacen("/\tdir\t755\t0:0\t0\t", "/\tdir\t755\t0:0\t1700000000\t", 1);
    assert_eq!(listing(&boot, &[blob]).unwrap(), want);
}

#[test]
fn upstream_v5_image_is_v5() {
    let boot = Bootstrap::open(golden("upstream/up-dir-v5.boot")).unwrap();
    assert_eq!(boot.version(), 5);
    assert_eq!(boot.chunk_size(), 0x1000);
}

#[test]
fn upstream_merged_images_check_clean() {
    for stem in ["up-merged-v6", "up-merged-v5"] {
        let boot = Bootstrap::open(golden(&format!("upstream/{stem}.boot"))).unwrap();
        let rep = boot.check();
        assert!(rep.findings.is_empty(), "{stem}: {:?}", rep.findings);
        assert_eq!(boot.blobs().len(), 3, "{stem}");
        // The view after whiteouts: `del` is a file, `opq` holds only `n`, `mv/src.txt` and
        // `bin/sh` are gone.
        assert!(boot.lookup(b"/mv/src.txt").unwrap().is_none(), "{stem}");
        assert!(boot.lookup(b"/bin/sh").unwrap().is_none(), "{stem}");
        assert!(boot.lookup(b"/opq/k").unwrap().is_none(), "{stem}");
        assert!(boot.lookup(b"/opq/n").unwrap().is_some(), "{stem}");
    }
}
