//! nydusify as a Rust library: `host-native/nydusify/examples/converter.rs` (built by `cargo
//! test --workspace`, as every example is) converts an image in Debian's docker-registry with
//! a hook plugin and a progress callback, and the result passes `nydusify check` against its
//! source.

use std::path::Path;
use std::process::Command;

use nydus_tests::*;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn the_converter_example_converts_an_image() {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/converter");
    assert!(
        example.is_file(),
        "{} is missing: it is built by `cargo test --workspace` (or `cargo build --examples -p nydus-host-nydusify`)",
        example.display()
    );
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let src = format!("{}/src/golden:t", reg.addr);
    let dst = format!("{}/lib/golden:nydus", reg.addr);
    let work = t.path().join("work");
    let book = example_plugin("bookkeeping");
    let o = run(Command::new(&example).args([
        &src,
        &dst,
        "--plain-http",
        "--work-dir",
        &s(&work),
        "--hook-plugin",
        &s(&book),
    ]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The progress callback saw every layer and the push; the outcome names what was pushed.
    for i in 1..=3 {
        assert!(out.contains(&format!("layer {i}/3: sha256:")), "{out}");
    }
    let manifest = skopeo_raw(&dst);
    let target_line = out
        .lines()
        .find(|l| l.starts_with(&format!("target {dst} is sha256:")))
        .unwrap_or_else(|| panic!("no target digest in {out}"));
    let digest = target_line.rsplit(' ').next().unwrap();
    assert!(out.contains(&format!("pushed nydus: {digest}")), "{out}");
    let layers = manifest["layers"].as_array().unwrap();
    let blobs: Vec<&str> = layers[..3]
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert!(out.contains(&blobs.join(" ")), "{out}");
    // The plugin ran (its lines are in the library's log, which the example does not show;
    // the compiled module it left in the work directory says it was loaded).
    assert_eq!(
        std::fs::read_dir(work.join("hook-plugins"))
            .unwrap()
            .count(),
        1
    );
    nydusify_ok(&[
        "check",
        "--source",
        &src,
        "--target",
        &dst,
        "--plain-http",
        "--work-dir",
        &s(&t.path().join("check")),
    ]);
}
