//! Bad input gets a clear error naming the file and the problem, a non-zero exit, no panic,
//! and no partial output. Also the two upstream weaknesses we must not share: `check` notices a
//! corrupted blob byte, and `unpack` handles fifos and device nodes.

use std::path::{Path, PathBuf};
use std::process::Output;

use nydus_tests::*;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[track_caller]
fn fails_cleanly(o: &Output, mentions: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr:\n{err}"
    );
    assert_eq!(o.status.code(), Some(1), "exit code; stderr:\n{err}");
    assert!(!err.contains("panicked"), "panic:\n{err}");
    for m in mentions {
        assert!(err.contains(m), "stderr should mention {m:?}:\n{err}");
    }
}

fn small_image(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    require_root();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    make_tree(
        &src,
        TreeSpec {
            big_dir_entries: 50,
            socket: false,
        },
    );
    let (boot, blob) = (dir.join("boot"), dir.join("blob"));
    nydus_image_ok(&["create", "-B", &s(&boot), "-b", &s(&blob), &s(&src)]);
    (src, boot, blob)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    v.sort();
    v
}

#[test]
fn truncated_and_garbage_bootstraps_are_rejected_by_every_command() {
    let t = tempfile::tempdir().unwrap();
    let (_, boot, blob) = small_image(t.path());
    let bytes = std::fs::read(&boot).unwrap();
    let trunc = t.path().join("trunc.boot");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2 + 100]).unwrap();
    let garbage = t.path().join("garbage.boot");
    std::fs::write(&garbage, noise(16384, 3)).unwrap();
    let empty = t.path().join("empty.boot");
    std::fs::write(&empty, b"").unwrap();
    // The same for RAFS v5: truncated, and with a record offset pointing past the end.
    let src = t.path().join("src");
    let (v5, v5blob) = (t.path().join("v5.boot"), t.path().join("v5.blob"));
    nydus_image_ok(&[
        "create",
        "--fs-version",
        "5",
        "-B",
        &s(&v5),
        "-b",
        &s(&v5blob),
        &s(&src),
    ]);
    let v5bytes = std::fs::read(&v5).unwrap();
    let trunc5 = t.path().join("trunc5.boot");
    std::fs::write(&trunc5, &v5bytes[..v5bytes.len() / 2 / 8 * 8]).unwrap();
    let mut wild = v5bytes.clone();
    wild[8192 + 4..8192 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let wild5 = t.path().join("wild5.boot");
    std::fs::write(&wild5, &wild).unwrap();
    for bad in [&trunc, &garbage, &empty, &trunc5, &wild5] {
        let name = bad.file_name().unwrap().to_str().unwrap();
        fails_cleanly(&nydus_image(&["check", "-B", &s(bad)]), &[name]);
        fails_cleanly(
            &nydus_image(&["inspect", "-B", &s(bad), "--request", "stats"]),
            &[name],
        );
        fails_cleanly(&nydus_image(&["stat", "-B", &s(bad)]), &[name]);
        let out = t.path().join("o.tar");
        fails_cleanly(
            &nydus_image(&[
                "unpack",
                "-B",
                &s(bad),
                "-b",
                &s(&blob),
                "--output",
                &s(&out),
            ]),
            &[name],
        );
        assert!(!out.exists(), "no partial tar");
    }
    fails_cleanly(
        &nydus_image(&["check", "-B", &s(&t.path().join("missing.boot"))]),
        &["missing.boot"],
    );
}

#[test]
fn check_detects_a_single_corrupted_blob_byte() {
    let t = tempfile::tempdir().unwrap();
    let (_, boot, blob) = small_image(t.path());
    let mut bytes = std::fs::read(&blob).unwrap();
    // Every stored chunk byte matters: flip one in the middle of the data region.
    bytes[1_000_000] ^= 0x01;
    let bad = t.path().join("bad.blob");
    std::fs::write(&bad, &bytes).unwrap();
    let o = nydus_image(&["check", "-B", &s(&boot), "-b", &s(&bad)]);
    fails_cleanly(&o, &["boot"]);
    let all = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        all.contains("mismatch") || all.contains("decompress"),
        "the finding says what is wrong:\n{all}"
    );

    let out = t.path().join("out.tar");
    fails_cleanly(
        &nydus_image(&[
            "unpack",
            "-B",
            &s(&boot),
            "-b",
            &s(&bad),
            "--output",
            &s(&out),
        ]),
        &["bad.blob"],
    );
    assert_eq!(
        entries(t.path()),
        ["bad.blob", "blob", "boot", "src"],
        "no partial output"
    );

    let short = t.path().join("short.blob");
    std::fs::write(&short, &std::fs::read(&blob).unwrap()[..500_000]).unwrap();
    fails_cleanly(
        &nydus_image(&["check", "-B", &s(&boot), "-b", &s(&short)]),
        &["boot"],
    );
}

#[test]
fn missing_sources_and_backend_dirs_are_named() {
    let t = tempfile::tempdir().unwrap();
    let (_, boot, _) = small_image(t.path());
    let (b2, blob2) = (t.path().join("b2"), t.path().join("blob2"));
    fails_cleanly(
        &nydus_image(&[
            "create",
            "-B",
            &s(&b2),
            "-b",
            &s(&blob2),
            "/nonexistent-source",
        ]),
        &["/nonexistent-source"],
    );
    assert!(!b2.exists() && !blob2.exists(), "no partial output");
    fails_cleanly(
        &nydus_image(&["check", "-B", &s(&boot), "-D", "/nonexistent-dir"]),
        &["/nonexistent-dir"],
    );
    fails_cleanly(
        &nydus_image(&[
            "create",
            "-B",
            &s(&b2),
            "--compressor",
            "brotli",
            "-b",
            &s(&blob2),
            "/tmp",
        ]),
        &["brotli"],
    );
    fails_cleanly(
        &nydus_image(&[
            "create",
            "-B",
            &s(&b2),
            "--chunk-size",
            "0x3000",
            "-b",
            &s(&blob2),
            "/tmp",
        ]),
        &["0x3000"],
    );
}

#[test]
fn a_full_disk_fails_cleanly_without_leftovers() {
    let t = tempfile::tempdir().unwrap();
    let (src, _, _) = small_image(t.path());
    let small = t.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    // A writable 1 MiB tmpfs (the mount() helper mounts read-only).
    let r = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status();
    assert!(
        r.map(|s| s.success()).unwrap_or(false),
        "prerequisite missing: cannot mount a tmpfs (needs root)"
    );
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(small.clone());
    let o = nydus_image(&[
        "create",
        "-B",
        &s(&small.join("boot")),
        "-b",
        &s(&small.join("blob")),
        &s(&src),
    ]);
    fails_cleanly(&o, &["No space left on device"]);
    assert!(
        entries(&small).is_empty(),
        "partial output left behind: {:?}",
        entries(&small)
    );
}

#[test]
fn unpack_handles_fifos_and_devices() {
    let t = tempfile::tempdir().unwrap();
    let (_, boot, blob) = small_image(t.path());
    let out = t.path().join("out.tar");
    nydus_image_ok(&[
        "unpack",
        "-B",
        &s(&boot),
        "-b",
        &s(&blob),
        "--output",
        &s(&out),
    ]);
    let o = run(std::process::Command::new("tar").arg("-tvf").arg(&out));
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(
        list.lines()
            .any(|l| l.starts_with('p') && l.ends_with("pipe")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with('c') && l.ends_with("null")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with('b') && l.ends_with("disk")),
        "{list}"
    );
}

#[test]
fn merge_refuses_bad_and_inconsistent_layers() {
    let t = tempfile::tempdir().unwrap();
    let (src, boot, _blob) = small_image(t.path());
    let out = t.path().join("merged");
    // A missing and a garbage source: named, exit 1, nothing written.
    let garbage = t.path().join("garbage.boot");
    std::fs::write(&garbage, noise(9000, 4)).unwrap();
    for bad in [t.path().join("missing.boot"), garbage.clone()] {
        let o = nydus_image(&["merge", "-B", &s(&out), &s(&boot), &s(&bad)]);
        fails_cleanly(&o, &[&s(&bad)]);
        assert!(!out.exists(), "partial output");
    }
    // Lists that do not match the sources.
    let o = nydus_image(&[
        "merge",
        "-B",
        &s(&out),
        "--blob-digests",
        "ab",
        &s(&boot),
        &s(&boot),
    ]);
    fails_cleanly(&o, &["--blob-digests"]);
    // Layers with different chunk sizes cannot be merged: exit code 2, as upstream.
    let other = t.path().join("other.boot");
    nydus_image_ok(&[
        "create",
        "--chunk-size",
        "0x1000",
        "-B",
        &s(&other),
        "-b",
        &s(&t.path().join("other.blob")),
        &s(&src),
    ]);
    let o = nydus_image(&["merge", "-B", &s(&out), &s(&boot), &s(&other)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("chunk size") && err.contains("other.boot"),
        "{err}"
    );
    assert!(!out.exists(), "partial output");
}

#[test]
fn parents_and_dicts_of_another_shape_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (src, boot, _blob) = small_image(t.path());
    let out = t.path().join("out.boot");
    let blobs = t.path().join("blobs");
    for (flag, value, needle) in [
        ("--parent-bootstrap", s(&boot), "--fs-version"),
        (
            "--chunk-dict",
            format!("bootstrap={}", s(&boot)),
            "chunk dict",
        ),
    ] {
        let o = nydus_image(&[
            "create",
            "--fs-version",
            "5",
            flag,
            &value,
            "-B",
            &s(&out),
            "-D",
            &s(&blobs),
            &s(&src),
        ]);
        fails_cleanly(&o, &[needle, &s(&boot)]);
        assert!(!out.exists(), "partial output");
    }
}
