//! Layered images against the kernel's overlayfs, the oracle of how container runtimes stack
//! layers: four layers with deletions, opaque directories, a directory replaced by a file,
//! delete-and-recreate in one layer, renames, hard links, owners and xattrs are mounted as an
//! overlay and the listing of that view must equal ours, built three ways: per-layer tar
//! builds then `merge`, chained `--parent-bootstrap` builds from OCI tars, and chained builds
//! from overlayfs-format directories. The merged v6 image is also mounted by the kernel's EROFS
//! driver with one `device=` per blob. Real layers come from `umoci` over a debootstrap rootfs;
//! that image also goes through a registry: `nydusify convert` and `check --source`, and the
//! pulled bootstrap and blobs, and the image mounted by `nydusify mount`, must equal the
//! overlayfs view.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nydus_tests::*;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[track_caller]
fn sh(cmd: &mut Command) {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn file(root: &Path, rel: &str, data: &[u8], mode: u32) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn dir(root: &Path, rel: &str) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(&p).unwrap();
    p
}

/// An overlayfs whiteout: a character device 0/0.
fn whiteout(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    mknod(&p, libc::S_IFCHR, 0, 0);
}

fn opaque(root: &Path, rel: &str) -> PathBuf {
    let p = dir(root, rel);
    xattr::set(&p, "trusted.overlay.opaque", b"y").unwrap();
    p
}

/// Four layers in overlayfs format (lowest first).
fn make_layers(t: &Path) -> Vec<PathBuf> {
    let big = noise(3 << 20, 7);
    // L1: the base.
    let l1 = dir(t, "ovl/1");
    let hosts = file(&l1, "etc/hosts", b"127.0.0.1 localhost\n", 0o644);
    xattr::set(&hosts, "user.note", b"base").unwrap();
    let pw = file(&l1, "etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644);
    set_mtime(&pw, 1_650_000_000, 0);
    file(&l1, "usr/bin/tool", &noise(10_000, 1), 0o755);
    file(&l1, "usr/bin/big", &big, 0o755);
    let t2 = file(&l1, "usr/bin/trusted", b"t", 0o644);
    xattr::set(&t2, "trusted.test", b"value").unwrap();
    file(&l1, "opq/a/f", b"lower f", 0o644);
    file(&l1, "opq/k", b"lower k", 0o644);
    file(&l1, "del/sub/x", b"x", 0o644);
    file(&l1, "del/y", b"y", 0o644);
    let a = file(&l1, "hl/a", b"linked in the base layer", 0o640);
    fs::hard_link(&a, l1.join("hl/b")).unwrap();
    lchown(&a, 1000, 1000);
    std::os::unix::fs::symlink("../etc/hosts", l1.join("hl/link")).unwrap();
    file(&l1, "mv/src.txt", b"moved content", 0o644);
    mknod(&l1.join("hl/fifo"), libc::S_IFIFO | 0o600, 0, 0);
    mknod(&l1.join("hl/null"), libc::S_IFCHR | 0o666, 1, 3);
    // L2: deletions, an opaque directory, a modification, a rename, a copy of a lower file
    // (cross-layer dedup) and a new hard-link pair.
    let l2 = dir(t, "ovl/2");
    whiteout(&l2, "del");
    opaque(&l2, "opq");
    file(&l2, "opq/n", b"new in an opaque dir", 0o644);
    let h = file(&l2, "etc/hosts", b"127.0.0.1 localhost changed\n", 0o644);
    xattr::set(&h, "user.note", b"changed").unwrap();
    whiteout(&l2, "mv/src.txt");
    file(&l2, "mv/dst.txt", b"moved content", 0o644);
    file(&l2, "usr/bin/big-copy", &big, 0o755);
    let c = file(&l2, "hl2/c", b"linked in layer 2", 0o600);
    fs::hard_link(&c, l2.join("hl2/d")).unwrap();
    file(&l2, "dir2/deep/file", b"deep", 0o644);
    // A hard link to a file of the base layer: overlayfs copies the file up and links it.
    let pw = file(&l2, "etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644);
    set_mtime(&pw, 1_650_000_000, 0);
    fs::hard_link(&pw, l2.join("etc/passwd.link")).unwrap();
    // L3: a deleted directory comes back as a file; a file and a whole directory deleted; a
    // metadata-only change.
    let l3 = dir(t, "ovl/3");
    file(&l3, "del", b"del is a file now", 0o600);
    whiteout(&l3, "usr/bin/tool");
    whiteout(&l3, "dir2");
    let n = file(&l3, "opq/n", b"new in an opaque dir", 0o600);
    lchown(&n, 5, 5);
    // L4: recreations: the hosts file (deleted and recreated in this layer in the OCI form)
    // and the directory deleted by L3, with other content.
    let l4 = dir(t, "ovl/4");
    file(&l4, "etc/hosts", b"recreated\n", 0o600);
    file(&l4, "dir2/other", b"other", 0o644);
    // Directory mtimes: every layer's directories get fixed, distinct times.
    for (i, l) in [&l1, &l2, &l3, &l4].iter().enumerate() {
        set_dir_mtimes(l, 1_600_000_000 + i as i64 * 1000);
    }
    vec![l1, l2, l3, l4]
}

fn set_dir_mtimes(root: &Path, t: i64) {
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            set_dir_mtimes(&p, t);
        }
    }
    set_mtime(root, t, 0);
}

/// The OCI form of an overlayfs-format layer: char 0/0 → `.wh.<name>`, opaque xattr →
/// `.wh..wh..opq`. `recreate` lists files to delete and recreate in the same layer.
fn to_oci(ovl: &Path, oci: &Path, recreate: &[&str]) {
    sh(Command::new("cp").arg("-a").arg(ovl).arg(oci));
    convert(oci);
    for r in recreate {
        let p = oci.join(r);
        let wh = p
            .parent()
            .unwrap()
            .join(format!(".wh.{}", p.file_name().unwrap().to_str().unwrap()));
        fs::write(wh, b"").unwrap();
    }
}

fn convert(d: &Path) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if xattr::get(d, "trusted.overlay.opaque").unwrap().is_some() {
        xattr::remove(d, "trusted.overlay.opaque").unwrap();
        fs::write(d.join(".wh..wh..opq"), b"").unwrap();
    }
    for e in fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_char_device() && m.rdev() == 0 {
            fs::remove_file(&p).unwrap();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            fs::write(p.with_file_name(format!(".wh.{name}")), b"").unwrap();
        } else if m.is_dir() {
            convert(&p);
        }
    }
}

fn tar_of(dir: &Path, out: &Path) {
    sh(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C"])
        .arg(dir)
        .args(["-cf"])
        .arg(out)
        .arg("."));
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn blob_ids(j: &serde_json::Value) -> Vec<String> {
    j["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect()
}

struct Fixture {
    t: tempfile::TempDir,
    ovl: Vec<PathBuf>,
    tars: Vec<PathBuf>,
    want: Vec<String>,
}

fn fixture() -> Fixture {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let ovl = make_layers(t.path());
    let mut tars = Vec::new();
    for (i, l) in ovl.iter().enumerate() {
        let oci = t.path().join(format!("oci/{}", i + 1));
        fs::create_dir_all(oci.parent().unwrap()).unwrap();
        let recreate: &[&str] = if i == 3 { &["etc/hosts"] } else { &[] };
        to_oci(l, &oci, recreate);
        // Conversion touched directories: give them the layer's times again.
        set_dir_mtimes(&oci, 1_600_000_000 + i as i64 * 1000);
        let tar = t.path().join(format!("layer{}.tar", i + 1));
        tar_of(&oci, &tar);
        tars.push(tar);
    }
    let want = overlay_view(&ovl, &t.path().join("overlay"));
    // The oracle itself must show what the layers did.
    for (line, present) in [
        ("del file 600", true),
        ("opq/n file 600 5:5", true),
        ("opq/k ", false),
        ("mv/src.txt", false),
        ("usr/bin/tool ", false),
        ("dir2/other", true),
        ("dir2/deep", false),
        ("hl/b file 640 0:0", false),
        (
            "etc/passwd.link file 644 0:0 mtime=1650000000 size=26 nlink=2",
            true,
        ),
    ] {
        assert_eq!(
            want.iter().any(|l| l.starts_with(line)),
            present,
            "overlay view {line:?}: {want:#?}"
        );
    }
    Fixture { t, ovl, tars, want }
}

#[test]
fn merge_of_per_layer_builds_equals_overlayfs() {
    let f = fixture();
    let blobs = dir(f.t.path(), "blobs");
    let mut sources = Vec::new();
    for (i, tar) in f.tars.iter().enumerate() {
        // What nydusify does per layer: whiteouts kept, bootstrap inlined in the blob.
        let j = f.t.path().join(format!("l{i}.json"));
        nydus_image_ok(&[
            "create",
            "-t",
            "tar-rafs",
            "--whiteout-spec",
            "none",
            "--blob-inline-meta",
            "--features",
            "blob-toc",
            "--blob-dir",
            &s(&blobs),
            "-J",
            &s(&j),
            &s(tar),
        ]);
        let ids = blob_ids(&json(&j));
        assert_eq!(ids.len(), 1, "one blob per layer");
        sources.push(s(&blobs.join(&ids[0])));
    }
    let merged = f.t.path().join("merged.boot");
    let mj = f.t.path().join("merged.json");
    let mut args = vec![
        "merge".to_string(),
        "-B".into(),
        s(&merged),
        "-J".into(),
        s(&mj),
    ];
    args.extend(sources.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    nydus_image_ok(&args);
    // Layer 3 only deletes and changes metadata: its blob holds nothing the view uses...
    // except opq/n's bytes, which dedup within its own layer; all four layers have data.
    let ids = blob_ids(&json(&mj));
    assert!(!ids.is_empty() && ids.len() <= 4, "{ids:?}");
    nydus_image_ok(&["check", "-B", &s(&merged), "-D", &s(&blobs)]);
    assert_same_tree(&f.want, &unpack_view(&merged, &blobs, f.t.path()));
}

/// Layer 2 as a builder that links to the lower file without copying it would write it:
/// `etc/passwd.link` a hard link to `etc/passwd`, which is only in layer 1.
fn with_link_to_lower(tar: &Path, out: &Path) {
    let code = format!(
        "import tarfile\n\
         src = tarfile.open({:?})\n\
         dst = tarfile.open({:?}, 'w', format=tarfile.PAX_FORMAT)\n\
         tmpl = None\n\
         for m in src.getmembers():\n\
         \x20   if m.name in ('./etc/passwd', './etc/passwd.link'):\n\
         \x20       tmpl = tmpl or m\n\
         \x20       continue\n\
         \x20   dst.addfile(m, src.extractfile(m) if m.isreg() else None)\n\
         tmpl.name, tmpl.type, tmpl.linkname, tmpl.size = './etc/passwd.link', tarfile.LNKTYPE, './etc/passwd', 0\n\
         dst.addfile(tmpl)\n\
         dst.close()\n",
        s(tar),
        s(out)
    );
    sh(Command::new("python3").arg("-c").arg(code));
    let o = run(Command::new("tar").arg("-tvf").arg(out));
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(
        list.contains("./etc/passwd.link link to ./etc/passwd")
            && !list
                .lines()
                .any(|l| l.starts_with('-') && l.ends_with(" ./etc/passwd")),
        "{list}"
    );
}

/// Builds `sources` layer on layer, each on the previous bootstrap (`--parent-bootstrap`),
/// blobs into `blobs`; returns the top bootstrap.
fn chain(blobs: &Path, sources: &[PathBuf], opts: &[&str]) -> PathBuf {
    let mut parent: Option<PathBuf> = None;
    for (i, src) in sources.iter().enumerate() {
        let boot = blobs.join(format!("{i}.boot"));
        let mut args: Vec<String> = vec!["create".into()];
        args.extend(opts.iter().map(|o| o.to_string()));
        args.extend(["-B".into(), s(&boot), "--blob-dir".into(), s(blobs)]);
        if let Some(p) = &parent {
            args.extend(["--parent-bootstrap".into(), s(p)]);
        }
        args.push(s(src));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nydus_image_ok(&args);
        parent = Some(boot);
    }
    parent.expect("at least one layer")
}

#[test]
fn chained_parent_builds_equal_overlayfs() {
    let f = fixture();
    // From OCI tars (whiteouts by name; layer 2 links to a file of layer 1) ...
    let blobs = dir(f.t.path(), "chain-tar");
    let mut tars = f.tars.clone();
    tars[1] = f.t.path().join("layer2-lowerlink.tar");
    with_link_to_lower(&f.tars[1], &tars[1]);
    let top = chain(&blobs, &tars, &["-t", "tar-rafs"]);
    nydus_image_ok(&["check", "-B", &s(&top), "-D", &s(&blobs)]);
    assert_same_tree(&f.want, &unpack_view(&top, &blobs, f.t.path()));
    // The copy of a lower file in layer 2 was stored once, in layer 1's blob.
    let chunks = |p: &str| {
        let o = nydus_image_ok(&["inspect", "-B", &s(&top), "-R", &format!("chunks {p}")]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["chunks"].clone()
    };
    let big = chunks("/usr/bin/big");
    assert_eq!(big.as_array().map(Vec::len), Some(3), "{big}");
    assert_eq!(chunks("/usr/bin/big-copy"), big, "cross-layer dedup");
    // `stat` reports it per layer: layer 1's blob serves big and big-copy, 3 MiB saved.
    let sj = f.t.path().join("stat.json");
    nydus_image_ok(&["stat", "-B", &s(&top), "-J", &s(&sj)]);
    let st = json(&sj);
    let b0 = &st["images"][0]["blobs"][0];
    assert_eq!(b0["saved_bytes"].as_u64(), Some(3 << 20), "{st}");
    assert_eq!(
        st["images"][0]["blobs"].as_array().unwrap().len(),
        4,
        "{st}"
    );

    // ... and from overlayfs-format directories (char 0/0 and the opaque xattr).
    let blobs = dir(f.t.path(), "chain-dir");
    let top = chain(&blobs, &f.ovl, &["--whiteout-spec", "overlayfs"]);
    assert_same_tree(&f.want, &unpack_view(&top, &blobs, f.t.path()));
}

#[test]
fn kernel_erofs_mounts_merged_image_with_a_device_per_blob() {
    let f = fixture();
    let cache = dir(f.t.path(), "cache");
    let boots = dir(f.t.path(), "boots");
    let mut sources = Vec::new();
    for (i, tar) in f.tars.iter().enumerate() {
        let boot = boots.join(format!("tmp{i}"));
        let j = f.t.path().join(format!("c{i}.json"));
        nydus_image_ok(&[
            "create",
            "-t",
            "tar-rafs",
            "--whiteout-spec",
            "none",
            "-B",
            &s(&boot),
            "--blob-cache-dir",
            &s(&cache),
            "-J",
            &s(&j),
            &s(tar),
        ]);
        let id = blob_ids(&json(&j)).remove(0);
        // merge names each layer's blob after its bootstrap's file name.
        let named = boots.join(format!("{id}.boot"));
        fs::rename(&boot, &named).unwrap();
        sources.push(s(&named));
    }
    let merged = f.t.path().join("merged.boot");
    let mj = f.t.path().join("merged.json");
    let mut args = vec![
        "merge",
        "-B",
        merged.to_str().unwrap(),
        "-J",
        mj.to_str().unwrap(),
    ];
    args.extend(sources.iter().map(String::as_str));
    nydus_image_ok(&args);
    let devices: Vec<String> = blob_ids(&json(&mj))
        .iter()
        .map(|id| format!("device={}", s(&cache.join(format!("{id}.blob.data")))))
        .collect();
    let m = dir(f.t.path(), "erofs");
    let _g = mount(&merged, &m, "erofs", &devices.join(","))
        .unwrap_or_else(|e| panic!("the kernel refused the merged image: {e}"));
    assert_same_tree(&f.want, &list_tree(&m, ListOptions::default()));
}

/// `umoci` layers of a debootstrap rootfs: a base layer and an upper one that deletes,
/// replaces and changes files; converted layer by layer (gzip streams) and merged, the image
/// equals the overlayfs view of the extracted layers.
#[test]
fn umoci_layers_of_a_debootstrap_rootfs() {
    require_root();
    require_tool("umoci", "umoci");
    let rootfs = debootstrap_rootfs();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("oci");
    sh(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    let img = format!("{}:img", s(&layout));
    sh(Command::new("umoci").args(["new", "--image", &img]));
    let bundle = t.path().join("bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--image", &img])
        .arg(&bundle));
    let rfs = bundle.join("rootfs");
    sh(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", s(&rootfs)))
        .arg(&rfs));
    sh(Command::new("umoci")
        .args(["repack", "--image", &img])
        .arg(&bundle));
    // umoci diffs against the image a bundle was unpacked from: unpack the new one.
    let bundle = t.path().join("bundle2");
    sh(Command::new("umoci")
        .args(["unpack", "--image", &img])
        .arg(&bundle));
    let rfs = bundle.join("rootfs");
    // The upper layer: deletions (a file, a directory tree), a modification, an addition, a
    // directory replaced by a file, an opaque-making recreation.
    fs::remove_file(rfs.join("etc/issue")).unwrap();
    fs::remove_dir_all(rfs.join("usr/share/doc")).unwrap();
    fs::write(rfs.join("etc/hostname"), b"converted\n").unwrap();
    fs::write(rfs.join("etc/new-file"), noise(200_000, 3)).unwrap();
    fs::remove_dir_all(rfs.join("usr/share/man")).ok();
    fs::write(rfs.join("usr/share/man"), b"not a directory any more").unwrap();
    fs::remove_dir_all(rfs.join("var/cache")).unwrap();
    fs::create_dir_all(rfs.join("var/cache/fresh")).unwrap();
    fs::write(rfs.join("var/cache/fresh/f"), b"fresh").unwrap();
    sh(Command::new("umoci")
        .args(["repack", "--image", &img])
        .arg(&bundle));

    let layers = umoci_layers(&layout);
    assert_eq!(layers.len(), 2, "base + upper layer");
    // The oracle: each layer extracted in overlayfs form, mounted as an overlay.
    let want = overlay_view_of_oci_layers(&layers, t.path());
    assert!(want.iter().any(|l| l.starts_with("var/cache/fresh/f ")));
    assert!(!want
        .iter()
        .any(|l| l.starts_with("usr/share/doc/") || l.starts_with("usr/share/doc ")));
    assert!(want.iter().any(|l| l.starts_with("usr/share/man file ")));

    let blobs = dir(t.path(), "blobs");
    let mut sources = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let j = t.path().join(format!("l{i}.json"));
        nydus_image_ok(&[
            "create",
            "-t",
            "targz-rafs",
            "--whiteout-spec",
            "none",
            "--blob-inline-meta",
            "--features",
            "blob-toc",
            "--blob-dir",
            &s(&blobs),
            "-J",
            &s(&j),
            &s(l),
        ]);
        sources.push(s(&blobs.join(blob_ids(&json(&j)).remove(0))));
    }
    let merged = t.path().join("merged.boot");
    let mut args = vec!["merge", "-B", merged.to_str().unwrap()];
    args.extend(sources.iter().map(String::as_str));
    nydus_image_ok(&args);
    nydus_image_ok(&["check", "-B", &s(&merged), "-D", &s(&blobs)]);
    assert_same_tree(&want, &unpack_view(&merged, &blobs, t.path()));

    // The same image through a registry: pushed by skopeo, converted by nydusify, checked
    // against its source, and its pulled bootstrap and blobs equal the overlayfs view.
    let reg = TestRegistry::start(None);
    skopeo_push(
        &layout,
        "img",
        &format!("{}/deb/minbase:oci", reg.addr),
        false,
    );
    let src = format!("{}/deb/minbase:oci", reg.addr);
    let dst = format!("{}/deb/minbase:nydus", reg.addr);
    let work = dir(t.path(), "work");
    nydusify_ok(&[
        "convert",
        "--source",
        &src,
        "--target",
        &dst,
        "--plain-http",
        "--work-dir",
        &s(&work),
    ]);
    let chk = t.path().join("chk");
    nydusify_ok(&[
        "check",
        "--source",
        &src,
        "--target",
        &dst,
        "--plain-http",
        "--work-dir",
        &s(&chk),
    ]);
    let pulled = dir(t.path(), "pulled");
    let c = nydus_host_native::registry::Registry::new(
        &reg.addr,
        nydus_host_native::registry::RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    let m = json(&chk.join("nydus_manifest.json"));
    let layers = m["layers"].as_array().unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        for l in &layers[..layers.len() - 1] {
            let d = l["digest"].as_str().unwrap();
            let mut f = tokio::fs::File::create(pulled.join(d.trim_start_matches("sha256:")))
                .await
                .unwrap();
            c.pull_blob("deb/minbase", d, &mut f).await.unwrap();
        }
    });
    let boot = chk.join("nydus_bootstrap");
    nydus_image_ok(&["check", "-B", &s(&boot), "-D", &s(&pulled)]);
    assert_same_tree(&want, &unpack_view(&boot, &pulled, t.path()));

    // And mounted lazily by `nydusify mount` from the registry: the same view.
    mount_equals(&dst, t.path(), "nydusify", &[], &want);
}

/// The layer blobs of the single image in an OCI layout, lowest first.
fn umoci_layers(layout: &Path) -> Vec<PathBuf> {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = json(&layout.join("index.json"));
    let m = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = json(&blob(&m));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect()
}

/// A parent given as a blob with its bootstrap inlined (what nydusify pushes per layer): the
/// new image names that blob by its digest, never by the inline placeholder `"x"` × 64.
#[test]
fn parent_may_be_a_blob_with_inline_bootstrap() {
    let t = tempfile::tempdir().unwrap();
    golden_layers(t.path());
    let blobs = dir(t.path(), "blobs");
    let j = t.path().join("l1.json");
    nydus_image_ok(&[
        "create",
        "-t",
        "tar-rafs",
        "--blob-inline-meta",
        "--features",
        "blob-toc",
        "--blob-dir",
        &s(&blobs),
        "-J",
        &s(&j),
        &s(&t.path().join("layer1.tar")),
    ]);
    let id1 = blob_ids(&json(&j)).remove(0);
    let top = t.path().join("top.boot");
    let j2 = t.path().join("l2.json");
    nydus_image_ok(&[
        "create",
        "-t",
        "tar-rafs",
        "--parent-bootstrap",
        &s(&blobs.join(&id1)),
        "-B",
        &s(&top),
        "--blob-dir",
        &s(&blobs),
        "-J",
        &s(&j2),
        &s(&t.path().join("layer2.tar")),
    ]);
    let ids = blob_ids(&json(&j2));
    assert_eq!(ids[0], id1, "{ids:?}");
    assert!(!ids.iter().any(|i| i == &"x".repeat(64)), "{ids:?}");
    nydus_image_ok(&["check", "-B", &s(&top), "-D", &s(&blobs)]);
}
