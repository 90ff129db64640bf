//! `nydus-image create` → `check` → `unpack` → GNU tar extraction gives back the source tree,
//! every attribute and byte; builds are deterministic; `inspect` and `stat` answer.

use std::path::Path;
use std::process::Command;

use nydus_tests::*;

fn tree(root: &Path) {
    require_root();
    make_tree(
        root,
        TreeSpec {
            big_dir_entries: 12_000,
            socket: true,
        },
    );
}

#[test]
fn create_check_unpack_round_trips_every_file_type() {
    round_trip("6");
}

#[test]
fn v5_create_check_unpack_round_trips_every_file_type() {
    round_trip("5");
}

fn round_trip(fs_version: &str) {
    require_tool("tar", "tar");
    let t = tempfile::tempdir().unwrap();
    let (src, out) = (t.path().join("src"), t.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    tree(&src);
    let (boot, blob) = (out.join("boot"), out.join("blob"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    nydus_image_ok(&[
        "create",
        "--fs-version",
        fs_version,
        "-B",
        &s(&boot),
        "-b",
        &s(&blob),
        &s(&src),
    ]);
    let o = nydus_image_ok(&["check", "-B", &s(&boot), "-b", &s(&blob)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("0 errors"), "{text}");
    assert!(text.contains(&format!("RAFS v{fs_version} ")), "{text}");

    let tar = out.join("rootfs.tar");
    let o = nydus_image_ok(&[
        "unpack",
        "-B",
        &s(&boot),
        "-b",
        &s(&blob),
        "--output",
        &s(&tar),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sock"),
        "the skipped socket is reported"
    );
    let x = t.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    let o = run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tar)
        .arg("-C")
        .arg(&x));
    assert!(
        o.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = ListOptions { skip_sockets: true };
    assert_same_tree(&list_tree(&src, o), &list_tree(&x, o));
}

#[test]
fn builds_are_deterministic_and_old_syntax_matches() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    tree(&src);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let p = |n: &str| t.path().join(n);
    nydus_image_ok(&[
        "create",
        "-B",
        &s(&p("b1")),
        "-b",
        &s(&p("blob1")),
        &s(&src),
    ]);
    nydus_image_ok(&[
        "create",
        "-B",
        &s(&p("b2")),
        "-b",
        &s(&p("blob2")),
        "--threads",
        "1",
        &s(&src),
    ]);
    std::fs::create_dir_all(p("d")).unwrap();
    nydus_image_ok(&[
        "create",
        "--bootstrap",
        &s(&p("b3")),
        "--backend_type",
        "localfs",
        "--backend_config",
        &format!("{{\"dir\":\"{}\"}}", s(&p("d"))),
        &s(&src),
    ]);
    let read = |n: &Path| std::fs::read(n).unwrap();
    assert_eq!(
        read(&p("b1")),
        read(&p("b2")),
        "bootstrap differs between thread counts"
    );
    assert_eq!(
        read(&p("blob1")),
        read(&p("blob2")),
        "blob differs between thread counts"
    );
    assert_eq!(
        read(&p("b1")),
        read(&p("b3")),
        "--backend-config dir gives another bootstrap"
    );
    let id = nydus_core::digest::sha256(&read(&p("blob1"))).to_hex();
    assert_eq!(
        read(&p("d").join(&id)),
        read(&p("blob1")),
        "blob stored under its id"
    );
}

#[test]
fn inspect_and_stat_answer_in_json() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    tree(&src);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (boot, blob) = (t.path().join("boot"), t.path().join("blob"));
    nydus_image_ok(&[
        "create",
        "-B",
        &s(&boot),
        "-b",
        &s(&blob),
        "--chunk-size",
        "0x100000",
        &s(&src),
    ]);
    let o = nydus_image_ok(&["inspect", "-B", &s(&boot), "--request", "stats"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect prints JSON");
    assert_eq!(v["blobs"], 1);
    assert_eq!(v["compressor"], "zstd");
    let o = nydus_image_ok(&[
        "inspect",
        "-B",
        &s(&boot),
        "--request",
        "stat /usr/bin/multi.bin",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect prints JSON");
    assert_eq!(v["size"], 2_500_123);
    assert_eq!(v["chunks"], 3);
    let o = nydus_image_ok(&[
        "stat",
        "-B",
        &s(&boot),
        "-J",
        &s(&t.path().join("stat.json")),
    ]);
    drop(o);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("stat.json")).unwrap()).unwrap();
    assert!(v.to_string().contains("dedup"), "{v}");
}
