//! `nydusify commit` against Debian's containerd + runc (started here: own root, state and
//! socket, CRI disabled) and docker-registry: a busybox container from an OCI image in the
//! registry is changed (a directory deleted, files added and modified, a hard link, an
//! xattr, an opaque directory, a rename) and committed in a non-default namespace; the
//! committed image, mounted with `nydusify mount`, lists exactly as the container's rootfs
//! seen through `ctr snapshots mounts`; the container keeps running. A container of the
//! committed image commits on top of it (two committed layers); `--maximum-times` refuses;
//! `--with-path` adds a bind mount and leaves a path out; bad input (unknown container,
//! stopped container, wrong socket) fails with a clear message and pushes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use nydus_tests::containerd::Containerd;
use nydus_tests::served::Served;
use nydus_tests::*;

const NS: &str = "commit-test";

/// A busybox rootfs with the files the changes act on, as a layer tar.
fn busybox_layer(dir: &Path) -> PathBuf {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox is missing: apt-get install busybox-static (scripts/install-deps.sh)"
    );
    let r = dir.join("rootfs");
    for d in [
        "bin", "etc", "del/sub", "opq", "mv", "data", "tmp", "proc", "sys", "dev",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(bb, r.join("bin/busybox")).unwrap();
    for a in [
        "sh", "sleep", "rm", "mkdir", "ln", "echo", "cat", "mv", "chmod", "sync", "true",
    ] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    for (p, d) in [
        ("etc/conf", "base\n"),
        ("etc/keep", "keep\n"),
        ("del/sub/x", "x"),
        ("del/y", "y"),
        ("opq/a", "a"),
        ("opq/b", "b"),
        ("mv/src.txt", "moved"),
    ] {
        std::fs::write(r.join(p), d).unwrap();
    }
    tar_of(&r, &dir.join("base.tar"))
}

fn tar_of(root: &Path, out: &Path) -> PathBuf {
    let o = run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C"])
        .arg(root)
        .arg("-cf")
        .arg(out)
        .arg("."));
    assert!(
        o.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.to_path_buf()
}

/// Pushes a one-layer OCI image of `tar` as `reg/busybox:<tag>`.
fn push_image(reg: &TestRegistry, dir: &Path, tar: &Path, tag: &str) -> String {
    let layout = dir.join(format!("layout-{tag}"));
    umoci_image(&layout, tag, &[tar.to_path_buf()], "amd64");
    let r = format!("{}/busybox:{tag}", reg.addr);
    skopeo_push(&layout, tag, &r, false);
    r
}

fn commit(
    c: &Containerd,
    id: &str,
    target: &str,
    work: &Path,
    extra: &[&str],
) -> std::process::Output {
    let sock = c.socket.display().to_string();
    let w = work.display().to_string();
    let mut args = vec![
        "commit",
        "--containerd-address",
        &sock,
        "--namespace",
        NS,
        "--container",
        id,
        "--target",
        target,
        "--plain-http",
        "--work-dir",
        &w,
    ];
    args.extend_from_slice(extra);
    nydusify(&args)
}

#[track_caller]
fn commit_ok(
    c: &Containerd,
    id: &str,
    target: &str,
    work: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let out = work.join(format!("{id}-{}.json", target.replace(['/', ':'], "_")));
    let o = out.display().to_string();
    let mut e = vec!["--output-json", &o];
    e.extend_from_slice(extra);
    let r = commit(c, id, target, work, &e);
    assert!(
        r.status.success(),
        "nydusify commit {id} -> {target}:\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

fn exec(c: &Containerd, id: &str, exec_id: &str, script: &str) {
    c.ctr_ok(
        NS,
        &[
            "tasks",
            "exec",
            "--exec-id",
            exec_id,
            id,
            "/bin/sh",
            "-c",
            script,
        ],
    );
}

/// The listing of a Nydus image in the registry, mounted with `nydusify mount`.
fn mounted_listing(target: &str, dir: &Path, tag: &str) -> (Vec<String>, Served) {
    let mp = dir.join(format!("mnt-{tag}"));
    let d = Served::start(
        served::mount_cmd(target, &mp, &dir.join(format!("work-{tag}")), &[]),
        &mp,
        &dir.join(format!("{tag}.log")),
    );
    (list_tree(&mp, ListOptions::default()), d)
}

fn commit_blobs(reference: &str) -> Vec<String> {
    let m = skopeo_raw(reference);
    let layers = m["layers"].as_array().unwrap();
    let boot = layers.last().unwrap();
    assert_eq!(
        boot["annotations"]["containerd.io/snapshot/nydus-bootstrap"], "true",
        "{m}"
    );
    boot["annotations"]["containerd.io/snapshot/nydus-commit-blobs"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn commit_a_running_container_and_stack_a_second_commit() {
    require_root();
    require_tool("setfattr", "attr");
    let reg = TestRegistry::start(None);
    let c = Containerd::start();
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let dir = t.path();
    let work = dir.join("work");
    let base = push_image(&reg, dir, &busybox_layer(dir), "1");
    c.ctr_ok(NS, &["images", "pull", "--plain-http", &base]);
    let data = dir.join("volume");
    std::fs::create_dir_all(&data).unwrap();
    let bind = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        data.display()
    );
    c.ctr_ok(
        NS,
        &[
            "run",
            "-d",
            "--snapshotter",
            "overlayfs",
            "--mount",
            &bind,
            &base,
            "c1",
            "/bin/sleep",
            "3600",
        ],
    );
    exec(
        &c,
        "c1",
        "change",
        "rm -rf /del && echo new > /added.txt && echo changed > /etc/conf && ln /added.txt /added-link \
         && rm -rf /opq && mkdir /opq && echo fresh > /opq/n && mv /mv/src.txt /mv/dst.txt \
         && chmod 600 /etc/keep && echo vol > /data/v.txt && sync",
    );
    let pid = c.pid(NS, "c1");
    let o = run(Command::new("setfattr")
        .args(["-n", "user.note", "-v", "committed"])
        .arg(format!("/proc/{pid}/root/added.txt")));
    assert!(
        o.status.success(),
        "setfattr: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The first commit: an OCI base, converted on the way.
    let c1 = format!("{}/busybox:c1", reg.addr);
    let out = commit_ok(&c, "c1", &c1, &work, &[]);
    assert_eq!(out["base_converted"], true, "{out}");
    assert_eq!(out["committed_layers"], 1, "{out}");
    assert_eq!(c.status(NS, "c1"), "RUNNING", "the container keeps running");
    let blobs = commit_blobs(&c1);
    assert_eq!(
        blobs,
        vec![format!("sha256:{}", out["blob"].as_str().unwrap())]
    );
    let m = skopeo_raw(&c1);
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        3,
        "base blob, upper blob, bootstrap: {m}"
    );
    let cfg_digest = m["config"]["digest"].as_str().unwrap().to_string();
    let cfg = reg_blob_json(&reg, "busybox", &cfg_digest);
    let history = cfg["history"].as_array().unwrap();
    assert!(
        history.iter().any(|h| h["created_by"]
            .as_str()
            .is_some_and(|s| s.contains("nydusify commit"))),
        "{cfg}"
    );
    // The committed tree is the container's rootfs.
    let view = dir.join("view-c1");
    let want = {
        let _m = c.rootfs_view(NS, "c1", &view);
        list_tree(&view, ListOptions::default())
    };
    assert!(
        want.iter()
            .any(|l| l.starts_with("added.txt ") && l.contains("user.note")),
        "{want:#?}"
    );
    assert!(!want.iter().any(|l| l.starts_with("del")), "{want:#?}");
    let (got, d) = mounted_listing(&c1, dir, "c1");
    assert_same_tree(&want, &got);
    d.stop();
    let o = nydusify(&[
        "check",
        "--target",
        &c1,
        "--plain-http",
        "--work-dir",
        &work.display().to_string(),
    ]);
    assert!(
        o.status.success(),
        "nydusify check of the commit: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // --with-path: the bind mount committed as a layer of its own, a path left out.
    let c1d = format!("{}/busybox:c1-data", reg.addr);
    let out = commit_ok(
        &c,
        "c1",
        &c1d,
        &work,
        &["--with-path", "/data", "--with-path", "!/opq"],
    );
    assert_eq!(out["mount_blobs"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(commit_blobs(&c1d).len(), 2);
    let (got, d) = mounted_listing(&c1d, dir, "c1-data");
    let mp = dir.join("mnt-c1-data");
    assert_eq!(std::fs::read(mp.join("data/v.txt")).unwrap(), b"vol\n");
    assert_eq!(
        std::fs::read(mp.join("opq/a")).unwrap(),
        b"a",
        "!/opq keeps the base's /opq"
    );
    assert!(!mp.join("opq/n").exists());
    assert!(got.iter().any(|l| l.starts_with("added.txt ")));
    d.stop();

    // A container of the committed image (its tree as an OCI image, tagged locally with the
    // committed image's name, as nydus-snapshotter would run it): its commit stacks.
    let (_, d) = mounted_listing(&c1, dir, "c1-export");
    let c1_tar = tar_of(&dir.join("mnt-c1-export"), &dir.join("c1.tar"));
    d.stop();
    let c1_oci = push_image(&reg, dir, &c1_tar, "c1-oci");
    c.ctr_ok(NS, &["images", "pull", "--plain-http", &c1_oci]);
    c.ctr_ok(NS, &["images", "tag", &c1_oci, &c1]);
    c.ctr_ok(
        NS,
        &[
            "run",
            "-d",
            "--snapshotter",
            "overlayfs",
            &c1,
            "c2",
            "/bin/sleep",
            "3600",
        ],
    );
    exec(
        &c,
        "c2",
        "change",
        "echo second > /second.txt && rm /etc/keep && sync",
    );
    let c2 = format!("{}/busybox:c2", reg.addr);
    let out = commit_ok(&c, "c2", &c2, &work, &[]);
    assert_eq!(out["base_converted"], false, "{out}");
    assert_eq!(out["committed_layers"], 2, "{out}");
    assert_eq!(commit_blobs(&c2).len(), 2);
    assert_eq!(skopeo_raw(&c2)["layers"].as_array().unwrap().len(), 4);
    let view = dir.join("view-c2");
    let want = {
        let _m = c.rootfs_view(NS, "c2", &view);
        list_tree(&view, ListOptions::default())
    };
    assert!(want.iter().any(|l| l.starts_with("second.txt ")));
    let (got, d) = mounted_listing(&c2, dir, "c2");
    assert_same_tree(&want, &got);
    d.stop();
    assert_eq!(c.status(NS, "c2"), "RUNNING");

    // --maximum-times: c2's image holds one committed layer; a limit of 1 refuses.
    let c3 = format!("{}/busybox:c3", reg.addr);
    let r = commit(&c, "c2", &c3, &work, &["--maximum-times", "1"]);
    fails_with(&r, "reached maximum committed times 1");
    assert!(!has_tag(&reg.addr, "busybox", "c3"), "nothing pushed");
    assert_eq!(c.status(NS, "c2"), "RUNNING");
}

#[test]
fn bad_input_fails_clearly_and_pushes_nothing() {
    require_root();
    let reg = TestRegistry::start(None);
    let c = Containerd::start();
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let dir = t.path();
    let work = dir.join("work");
    let base = push_image(&reg, dir, &busybox_layer(dir), "1");
    c.ctr_ok(NS, &["images", "pull", "--plain-http", &base]);
    let target = format!("{}/busybox:bad", reg.addr);

    let r = commit(&c, "no-such-container", &target, &work, &[]);
    fails_with(&r, "\"no-such-container\" not found in namespace");

    // A stopped container: its task exited.
    c.ctr_ok(
        NS,
        &[
            "run",
            "-d",
            "--snapshotter",
            "overlayfs",
            &base,
            "stopped",
            "/bin/true",
        ],
    );
    let t0 = std::time::Instant::now();
    while c.status(NS, "stopped") != "STOPPED" {
        assert!(t0.elapsed().as_secs() < 20, "the task did not stop");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let r = commit(&c, "stopped", &target, &work, &[]);
    fails_with(&r, "not running (its task is stopped)");
    // The same container in another namespace: not found there.
    let sock = c.socket.display().to_string();
    let w = work.display().to_string();
    let r = nydusify(&[
        "commit",
        "--containerd-address",
        &sock,
        "--container",
        "stopped",
        "--target",
        &target,
        "--plain-http",
        "--work-dir",
        &w,
    ]);
    fails_with(&r, "namespace \"default\"");

    // A wrong socket: no such socket, and a file that is no containerd.
    let wrong = dir.join("nothing.sock");
    let ws = wrong.display().to_string();
    let r = nydusify(&[
        "commit",
        "--containerd-address",
        &ws,
        "--namespace",
        NS,
        "--container",
        "stopped",
        "--target",
        &target,
        "--plain-http",
        "--work-dir",
        &w,
    ]);
    fails_with(&r, "no such socket");
    std::fs::write(&wrong, b"").unwrap();
    let r = nydusify(&[
        "commit",
        "--containerd-address",
        &format!("unix://{ws}"),
        "--namespace",
        NS,
        "--container",
        "stopped",
        "--target",
        &target,
        "--plain-http",
        "--work-dir",
        &w,
    ]);
    fails_with(&r, "containerd at");
    // Bad --with-path values fail before anything.
    let r = commit(&c, "stopped", &target, &work, &["--with-path", "relative"]);
    fails_with(&r, "--with-path \"relative\"");
    assert!(!has_tag(&reg.addr, "busybox", "bad"), "nothing pushed");
    // No scratch left behind.
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// A failed run whose error says `needle` (and no panic).
#[track_caller]
fn fails_with(r: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains(needle) && !err.contains("panicked"),
        "expected a failure saying {needle:?}:\n{err}"
    );
}

/// A blob of `repo` in a plain-HTTP registry, as JSON.
fn reg_blob_json(reg: &TestRegistry, repo: &str, digest: &str) -> serde_json::Value {
    let r = nydus_host_native::registry::Registry::new(
        &reg.addr,
        nydus_host_native::registry::RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = rt.block_on(r.pull_blob_bytes(repo, digest)).unwrap();
    serde_json::from_slice(&b).unwrap()
}
