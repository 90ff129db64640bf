//! Images that reference unmodified eStargz layers (`-t estargztoc-ref`): real eStargz layers
//! made by stargz-snapshotter's `ctr-remote image convert --estargz --oci` against a
//! containerd of the test's own, the source image seeded into Debian's docker-registry by
//! umoci + skopeo. Each layer's bootstrap is built from its TOC (from the layer file, or from
//! the extracted `stargz.index.json`), layered with `--parent-bootstrap`; the result unpacks,
//! checks and mounts as the kernel's overlayfs shows the original OCI layers, and upstream's
//! reader walks it.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use nydus_api::ConfigV2;
use nydus_rafs::metadata::RafsSuper;
use nydus_tests::containerd::Containerd;
use nydus_tests::overlay::overlay_view_of_oci_layers;
use nydus_tests::served::Served;
use nydus_tests::*;
use serde_json::{json, Value};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The eStargz image, its layers and what they must show.
struct Fixture {
    t: tempfile::TempDir,
    /// `blobs/sha256` of the eStargz image's OCI layout: layers named by digest hex.
    blobs: PathBuf,
    /// (digest hex, size, TOC digest annotation) of each eStargz layer, lowest first.
    layers: Vec<(String, u64, String)>,
    /// The overlayfs view of the source image's OCI layers.
    want: Vec<String>,
    /// The bootstrap of each layer stacked on the ones below (top last).
    boots: Vec<PathBuf>,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// The golden layers (whiteouts, an opaque directory, a directory replaced by a file, hard
/// links) plus a layer with a file of three 4 MiB eStargz chunks, a device, a fifo, a
/// symlink, a hard link and xattrs; converted to eStargz by ctr-remote.
fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        require_root();
        require_tool("ctr-remote", "stargz-snapshotter");
        require_tool("tar", "tar");
        let t = tempfile::Builder::new()
            .prefix("nydus-stargz-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = t.path();
        golden_layers(d);
        let four = d.join("four");
        fs::create_dir_all(four.join("opt/data")).unwrap();
        fs::write(four.join("opt/data/big"), noise(9 << 20 | 12345, 7)).unwrap();
        fs::write(four.join("opt/data/small"), b"small\n").unwrap();
        xattr::set(four.join("opt/data/small"), "user.note", b"kept").unwrap();
        fs::hard_link(four.join("opt/data/big"), four.join("opt/big-link")).unwrap();
        std::os::unix::fs::symlink("data/small", four.join("opt/sym")).unwrap();
        mknod(&four.join("opt/null"), libc::S_IFCHR | 0o644, 1, 3);
        mknod(&four.join("opt/pipe"), libc::S_IFIFO | 0o600, 0, 0);
        lchown(&four.join("opt/data/small"), 1000, 1001);
        // Whole seconds: a TOC's modtime has no fraction (ctr-remote rounds it), a PAX tar's
        // has one.
        for (p, t) in [
            ("opt/data/big", 1_600_000_100),
            ("opt/sym", 1_600_000_200),
            ("opt/null", 1_600_000_300),
            ("opt/pipe", 1_600_000_400),
            ("opt/data/small", 1_600_000_000),
            ("opt/data", 1_600_000_500),
            ("opt", 1_600_000_600),
        ] {
            set_mtime(&four.join(p), t, 0);
        }
        let o = run(Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C"])
            .arg(&four)
            .arg("-cf")
            .arg(d.join("layer4.tar"))
            .arg("opt"));
        assert!(
            o.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let tars: Vec<PathBuf> = (1..=4).map(|i| d.join(format!("layer{i}.tar"))).collect();
        let want = overlay_view_of_oci_layers(&tars, &d.join("ovl"));

        let reg = TestRegistry::start(None);
        let layout = d.join("layout");
        umoci_image(&layout, "t", &tars, "amd64");
        let src = format!("{}/src/sgz:t", reg.addr);
        let dst = format!("{}/src/sgz:esgz", reg.addr);
        skopeo_push(&layout, "t", &src, false);
        let c = Containerd::start();
        let remote = |args: &[&str]| {
            let o = run(Command::new("ctr-remote")
                .arg("--address")
                .arg(&c.socket)
                .args(args));
            assert!(
                o.status.success(),
                "ctr-remote {args:?}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        remote(&["image", "pull", "--plain-http", &src]);
        remote(&["image", "convert", "--estargz", "--oci", &src, &dst]);
        remote(&["image", "push", "--plain-http", &dst]);
        drop(c);
        let esgz = d.join("esgz");
        let o = run(Command::new("skopeo").args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{dst}"),
            &format!("oci:{}:esgz", esgz.display()),
        ]));
        assert!(
            o.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let blobs = esgz.join("blobs/sha256");
        let index: Value =
            serde_json::from_slice(&fs::read(esgz.join("index.json")).unwrap()).unwrap();
        let mdigest = index["manifests"][0]["digest"].as_str().unwrap();
        let manifest: Value =
            serde_json::from_slice(&fs::read(blobs.join(&mdigest[7..])).unwrap()).unwrap();
        let layers: Vec<(String, u64, String)> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let toc = l["annotations"]["containerd.io/snapshot/stargz/toc.digest"]
                    .as_str()
                    .unwrap_or_else(|| panic!("ctr-remote made a layer without a TOC digest: {l}"))
                    .to_string();
                (
                    l["digest"].as_str().unwrap()[7..].to_string(),
                    l["size"].as_u64().unwrap(),
                    toc,
                )
            })
            .collect();
        assert_eq!(layers.len(), 4, "{manifest}");

        // Layer 1 from its layer file, the others from their extracted TOC with the id and
        // size given, each on the one below.
        let mut boots: Vec<PathBuf> = Vec::new();
        for (i, (hex, size, toc_digest)) in layers.iter().enumerate() {
            let boot = d.join(format!("boot{i}"));
            let out = d.join(format!("out{i}.json"));
            let mut args = vec![
                "create".to_string(),
                "--blob-cache-dir".into(),
                s(&d.join("meta")),
                "-t".into(),
                if i % 2 == 0 {
                    "estargztoc-ref"
                } else {
                    "stargz_index"
                }
                .into(),
                "-B".into(),
                s(&boot),
                "--output-json".into(),
                s(&out),
            ];
            let layer = blobs.join(hex);
            if i == 0 {
                args.push(s(&layer));
            } else {
                let toc = d.join(format!("toc{i}.json"));
                fs::write(&toc, toc_bytes(&layer)).unwrap();
                args.extend([
                    "--blob-id".into(),
                    hex.clone(),
                    "--blob-data-size".into(),
                    format!("{size:x}"),
                    "--parent-bootstrap".into(),
                    s(&boots[i - 1]),
                    s(&toc),
                ]);
            }
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            nydus_image_ok(&a);
            let j: Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
            assert_eq!(j["toc_digest"], json!(toc_digest), "layer {i}");
            assert_eq!(
                j["blobs"].as_array().unwrap().len(),
                i + 1,
                "layer {i}: the blob table holds every layer so far: {j}"
            );
            assert_eq!(j["blobs"][i], json!(hex));
            // The ci upstream nydusd reads from its work directory: raw ci padded to 4 KiB,
            // then the ci header (magic at both ends).
            let meta = fs::read(d.join("meta").join(format!("{hex}.blob.meta"))).unwrap();
            assert!(
                meta.len() >= 8192 && meta.len() % 4096 == 0,
                "{}",
                meta.len()
            );
            let magic = 0xB10B_B10Bu32.to_le_bytes();
            assert_eq!(&meta[meta.len() - 4096..meta.len() - 4092], &magic);
            assert_eq!(&meta[meta.len() - 4..], &magic);
            boots.push(boot);
        }
        Fixture {
            t,
            blobs,
            layers,
            want,
            boots,
        }
    })
}

/// `stargz.index.json` of an eStargz layer, taken out by GNU tar (an eStargz layer is a
/// valid tar.gz): an extraction independent of ours.
fn toc_bytes(layer: &Path) -> Vec<u8> {
    let o = run(Command::new("tar")
        .arg("-xzf")
        .arg(layer)
        .arg("-O")
        .arg("stargz.index.json"));
    assert!(
        o.status.success(),
        "tar -x stargz.index.json of {}: {}",
        layer.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn toc_of(layer: &Path) -> Value {
    serde_json::from_slice(&toc_bytes(layer)).unwrap()
}

/// The `nydusd` entry serving the top bootstrap from the layers in `blobs` (localfs), its
/// cache and mount point under `d`.
fn mount_layers(blobs: &Path, d: &Path) -> (Served, PathBuf) {
    let cfg = d.join("cfg.json");
    fs::write(
        &cfg,
        json!({"version": 2, "backend": {"type": "localfs", "localfs": {"dir": s(blobs)}},
               "cache": {"type": "filecache", "filecache": {"work_dir": s(&d.join("work"))}}})
        .to_string(),
    )
    .unwrap();
    let mp = d.join("mnt");
    let mut c = Command::new(bin("nydusd"));
    c.arg("--config")
        .arg(&cfg)
        .arg("--mountpoint")
        .arg(&mp)
        .arg("--bootstrap")
        .arg(top());
    (Served::start(c, &mp, &d.join("nydusd.log")), mp)
}

fn top() -> &'static Path {
    fixture().boots.last().unwrap()
}

#[test]
fn unpack_of_the_stacked_estargz_bootstraps_equals_the_overlayfs_view() {
    let f = fixture();
    let work = f.t.path().join("unpack");
    fs::create_dir_all(&work).unwrap();
    assert_same_tree(&f.want, &unpack_view(top(), &f.blobs, &work));
}

#[test]
fn check_reads_every_estargz_chunk_and_verifies_it() {
    let f = fixture();
    let o = nydus_image_ok(&["check", "-B", &s(top()), "-D", &s(&f.blobs)]);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(out.contains(" 0 errors, 0 warnings"), "{out}");
    // Every distinct chunk was read from its layer and verified.
    let refs = out
        .split(" chunk references, ")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        out.contains(&format!(" {refs} chunks verified by digest")),
        "{out}"
    );
    assert_ne!(refs, "0", "{out}");
}

/// Upstream's `nydus-rafs` opens every layer's bootstrap and walks the same paths with the
/// same sizes; every chunk it lists is a chunk the TOCs name.
#[test]
fn upstream_reader_walks_the_estargz_bootstraps() {
    let f = fixture();
    let mut toc_digests = std::collections::HashSet::new();
    for (hex, _, _) in &f.layers {
        let toc = toc_of(&f.blobs.join(hex));
        for e in toc["entries"].as_array().unwrap() {
            if let Some(d) = e["chunkDigest"].as_str() {
                toc_digests.insert(d[7..].to_string());
            }
        }
    }
    for (i, boot) in f.boots.iter().enumerate() {
        let (rs, _r) = RafsSuper::load_from_file(boot, Arc::new(ConfigV2::default()), false)
            .unwrap_or_else(|e| panic!("upstream nydus-rafs refused layer {i}'s bootstrap: {e}"));
        assert_eq!(rs.superblock.get_blob_infos().len(), i + 1);
        let mut files = 0;
        rs.walk_directory::<&Path>(rs.superblock.root_ino(), None, &mut |inode, _path| {
            let ino = inode.as_inode();
            if ino.is_reg() {
                files += 1;
                let mut sum = 0u64;
                for k in 0..ino.get_chunk_count() {
                    let c = inode.get_chunk_info(k)?;
                    assert!(
                        toc_digests.contains(&nydus_core::digest::hex(&c.chunk_id().data)),
                        "a chunk no TOC names"
                    );
                    sum += u64::from(c.uncompressed_size());
                }
                assert_eq!(sum, ino.size(), "chunks cover the file");
            }
            Ok(())
        })
        .unwrap();
        assert!(files > 0);
    }
    // The top image's paths are the overlay's.
    let (rs, _r) = RafsSuper::load_from_file(top(), Arc::new(ConfigV2::default()), false).unwrap();
    let mut paths = Vec::new();
    rs.walk_directory::<&Path>(rs.superblock.root_ino(), None, &mut |_, p| {
        if p != Path::new("/") {
            paths.push(p.to_str().unwrap()[1..].to_string());
        }
        Ok(())
    })
    .unwrap();
    paths.sort();
    let mut want: Vec<String> = f
        .want
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(paths, want);
}

/// The `nydusd` entry mounts the top bootstrap with the eStargz layers as its localfs blobs:
/// the mount equals the overlayfs view, every chunk inflated from its gzip member and
/// verified; the cache is filled only with what was read.
#[test]
fn the_nydusd_entry_mounts_the_estargz_image() {
    let f = fixture();
    let d = f.t.path().join("mount");
    fs::create_dir_all(&d).unwrap();
    let (served, mp) = mount_layers(&f.blobs, &d);
    assert_eq!(fs::read(mp.join("opt/data/small")).unwrap(), b"small\n");
    assert_same_tree(&f.want, &list_tree(&mp, ListOptions::default()));
    served.stop();
}

/// A layer whose gzip member is corrupted: `check` names the bad chunk, `unpack` fails and
/// leaves no output, the mount answers EIO for that file and serves the others.
#[test]
fn a_corrupted_estargz_member_is_an_error_never_wrong_bytes() {
    let f = fixture();
    let d = f.t.path().join("corrupt");
    let blobs = d.join("blobs");
    fs::create_dir_all(&blobs).unwrap();
    for (hex, _, _) in &f.layers {
        fs::copy(f.blobs.join(hex), blobs.join(hex)).unwrap();
    }
    // The member of opt/data/small in the top layer.
    let (hex, _, _) = &f.layers[3];
    let toc = toc_of(&blobs.join(hex));
    let small = toc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "opt/data/small")
        .unwrap();
    let off = small["offset"].as_u64().unwrap();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(blobs.join(hex))
        .unwrap();
    // Past the 10-byte gzip header: the deflate data.
    file.write_all_at(b"\xff\xff\xff\xff", off + 12).unwrap();
    drop(file);

    let o = nydus_image(&["check", "-B", &s(top()), "-D", &s(&blobs)]);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "check passed a corrupted member:\n{out}"
    );
    assert!(out.contains(hex.as_str()), "check names the blob:\n{out}");

    let tar = d.join("x.tar");
    let o = nydus_image(&[
        "unpack",
        "-B",
        &s(top()),
        "-D",
        &s(&blobs),
        "--output",
        &s(&tar),
    ]);
    assert!(!o.status.success());
    assert!(!tar.exists(), "unpack left a partial output");

    let (served, mp) = mount_layers(&blobs, &d);
    let e = fs::read(mp.join("opt/data/small")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert_eq!(
        fs::read(mp.join("opt/data/big")).unwrap(),
        noise(9 << 20 | 12345, 7)
    );
    let log = served.stop();
    assert!(log.contains(hex.as_str()), "the log names the blob:\n{log}");
}

/// A layer cut short (no footer), a TOC whose entries are out of order, a TOC chunk past the
/// layer: clear errors naming the file and the entry, no bootstrap written.
#[test]
fn bad_estargz_input_is_refused_clearly() {
    let f = fixture();
    let d = f.t.path().join("bad");
    fs::create_dir_all(&d).unwrap();
    let (hex, size, _) = &f.layers[3];
    let cut = d.join("cut");
    let bytes = fs::read(f.blobs.join(hex)).unwrap();
    fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    let boot = d.join("boot");
    let o = nydus_image(&["create", "-t", "estargztoc-ref", "-B", &s(&boot), &s(&cut)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(&s(&cut)) && err.contains("footer"),
        "{err}"
    );
    assert!(!boot.exists());

    let mut toc = toc_of(&f.blobs.join(hex));
    let entries = toc["entries"].as_array_mut().unwrap();
    let with_data: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i]["offset"].as_u64().unwrap_or(0) > 0 && entries[i]["type"] != "dir")
        .collect();
    let (a, b) = (with_data[1], with_data[2]);
    let (oa, ob) = (entries[a]["offset"].clone(), entries[b]["offset"].clone());
    entries[a]["offset"] = ob;
    entries[b]["offset"] = oa;
    let name = entries[a]["name"].as_str().unwrap().to_string();
    let bad = d.join("swapped.json");
    fs::write(&bad, toc.to_string()).unwrap();
    let o = nydus_image(&[
        "create",
        "-t",
        "estargztoc-ref",
        "--blob-id",
        hex,
        "--blob-data-size",
        &format!("{size:x}"),
        "-B",
        &s(&boot),
        &s(&bad),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("out of order") && err.contains(&name),
        "{err}"
    );
    assert!(!boot.exists());

    // Offsets past a layer said to be 100 bytes long.
    let o = nydus_image(&[
        "create",
        "-t",
        "estargztoc-ref",
        "--blob-id",
        hex,
        "--blob-data-size",
        "64",
        "-B",
        &s(&boot),
        &s(&d.join("swapped.json")),
    ]);
    assert!(!o.status.success());
    // Missing --blob-id for a TOC.
    let o = nydus_image(&["create", "-t", "estargztoc-ref", "-B", &s(&boot), &s(&bad)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--blob-id"), "{err}");
    assert!(!boot.exists());
}
