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

#[test]
fn v5_directory_build_matches_upstream_bytes() {
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
        "--fs-version",
        "5",
        "--chunk-size",
        "0x1000",
        "-B",
        &s(&boot),
        "-b",
        &s(&blob),
        &s(&src),
    ]);
    same(&boot, "up-dir-v5.boot");
    same(&blob, "up-dir-v5.blob");
}

/// Per-layer tar builds (whiteouts kept) of `scripts/golden_layers.py`'s three layers, each
/// bootstrap named after its blob's digest, merged: the same bytes as upstream's merge.
fn merge_matches(fs_version: &str, golden_name: &str) {
    let t = tempfile::tempdir().unwrap();
    golden_layers(t.path());
    let mut sources = Vec::new();
    for i in 1..=3 {
        let (boot, blob, j) = (
            t.path().join("tmp.boot"),
            t.path().join(format!("blob{i}")),
            t.path().join("out.json"),
        );
        nydus_image_ok(&[
            "create",
            "-t",
            "tar-rafs",
            "--fs-version",
            fs_version,
            "--whiteout-spec",
            "none",
            "--chunk-size",
            "0x1000",
            "-B",
            &s(&boot),
            "-b",
            &s(&blob),
            "-J",
            &s(&j),
            &s(&t.path().join(format!("layer{i}.tar"))),
        ]);
        let id = first_blob_id(&j);
        let named = t.path().join(format!("{id}.boot"));
        std::fs::rename(&boot, &named).unwrap();
        sources.push(s(&named));
    }
    let merged = t.path().join("merged.boot");
    let mut args = vec!["merge".to_string(), "-B".into(), s(&merged)];
    args.extend(sources);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    nydus_image_ok(&args);
    same(&merged, golden_name);
}

#[test]
fn merge_matches_upstream_bytes() {
    merge_matches("6", "up-merged-v6.boot");
}

#[test]
fn v5_merge_matches_upstream_bytes() {
    merge_matches("5", "up-merged-v5.boot");
}
