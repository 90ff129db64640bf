//! Our `nydus-image create` writes the same bytes as upstream's for the golden images in
//! `core/tests/golden/upstream/` (built by upstream from `scripts/golden_tree.py`'s tree and
//! from `layer.tar`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nydus_tests::*;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/golden/upstream")
        .join(name)
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[track_caller]
fn same(ours: &Path, theirs: &str) {
    let (a, b) = (
        std::fs::read(ours).unwrap(),
        std::fs::read(golden(theirs)).unwrap(),
    );
    assert!(
        a == b,
        "{} differs from upstream's {theirs} ({} vs {} bytes)",
        ours.display(),
        a.len(),
        b.len()
    );
}

#[test]
fn directory_build_matches_upstream_bytes() {
    require_root();
    require_tool("python3", "python3");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/golden_tree.py");
    let o = run(Command::new("python3").arg(script).arg(&src));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (boot, blob) = (t.path().join("boot"), t.path().join("blob"));
    nydus_image_ok(&[
        "create",
        "--chunk-size",
        "0x1000",
        "-B",
        &s(&boot),
        "-b",
        &s(&blob),
        &s(&src),
    ]);
    same(&boot, "up-dir-zstd.boot");
    same(&blob, "up-dir-zstd.blob");
}

#[test]
fn layer_build_matches_upstream_bytes() {
    let t = tempfile::tempdir().unwrap();
    let blob = t.path().join("layer.blob");
    let mut child = Command::new(bin("nydus-image"))
        .args([
            "create",
            "--prefetch-policy",
            "fs",
            "--whiteout-spec",
            "none",
            "--type",
            "tar-rafs",
            "--blob-inline-meta",
            "--features",
            "blob-toc",
            "--chunk-size",
            "0x1000",
            "--blob",
            &s(&blob),
        ])
        .arg(golden("layer.tar"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"/\n").unwrap();
    assert!(child.wait().unwrap().success());
    same(&blob, "up-layer-inline-toc.blob");
}
