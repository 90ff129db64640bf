//! `nydus-image optimize` and `nydusify optimize` against Debian's docker-registry on loopback:
//! the golden layers (umoci + skopeo) converted with 4 KiB chunks, then optimized with a
//! prefetch list in both forms. The optimized image has exactly one more blob, passes
//! `nydusify check --source` against the original OCI image (every file's bytes compared),
//! its prefetch table lists the files, the new blob holds exactly the chunks of the listed
//! ranges (and those chunks, only those, point into it), the list rides along as
//! `image/prefetch.files`; missing paths and ranges past the end warn, or fail with
//! `--strict` leaving no tag; a bad list fails naming the file and the line.

use std::collections::BTreeSet;
use std::path::Path;

use nydus_core::oci::bootstrap_layer::extract_files;
use nydus_host_native::registry::{Registry, RegistryOptions};
use nydus_tests::*;
use serde_json::Value;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn client(addr: &str) -> Registry {
    Registry::new(
        addr,
        RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap()
}

/// The manifest of `repo:tag` and the files of its bootstrap layer.
fn pull(addr: &str, repo: &str, tag: &str) -> (Value, Vec<(String, Vec<u8>)>) {
    let c = client(addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_, bytes, _) = c.get_manifest(repo, tag).await.unwrap();
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        let layers = m["layers"].as_array().unwrap();
        let boot = layers.last().unwrap()["digest"].as_str().unwrap();
        let gz = c.pull_blob_bytes(repo, boot).await.unwrap();
        (m, extract_files(&gz, 1 << 30).unwrap())
    })
}

fn config(addr: &str, repo: &str, m: &Value) -> Value {
    let c = client(addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = m["config"]["digest"].as_str().unwrap();
    serde_json::from_slice(&rt.block_on(c.pull_blob_bytes(repo, d)).unwrap()).unwrap()
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in the bootstrap layer"))
        .1
}

fn inspect(boot: &Path, request: &str) -> Value {
    let o = nydus_image_ok(&["inspect", "-B", &s(boot), "-R", request]);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `(blob index, digest)` of each chunk of `path`, in file order.
fn chunks(boot: &Path, path: &str) -> Vec<(u64, String)> {
    inspect(boot, &format!("chunks {path}"))["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["blob_index"].as_u64().unwrap(),
                c["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn optimize(
    work: &Path,
    src: &str,
    dst: &str,
    list: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "optimize",
        "--source",
        src,
        "--target",
        dst,
        "--plain-http",
        "--prefetch-files",
        list.to_str().unwrap(),
        "--work-dir",
        work.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    nydusify(&args)
}

#[test]
fn optimize_gathers_the_listed_ranges_into_one_blob() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    seed_golden(&reg, t.path());
    let oci = format!("{}/src/golden:t", reg.addr);
    let nydus = format!("{}/dst/golden:n", reg.addr);
    nydusify_ok(&[
        "convert",
        "--source",
        &oci,
        "--target",
        &nydus,
        "--plain-http",
        "--chunk-size",
        "0x1000",
        "--work-dir",
        &s(&work),
    ]);
    let (src_m, src_files) = pull(&reg.addr, "dst/golden", "n");
    let src_boot = t.path().join("src.boot");
    std::fs::write(&src_boot, file(&src_files, "image/image.boot")).unwrap();
    let src_tool = chunks(&src_boot, "/bin/tool");
    assert_eq!(src_tool.len(), 4, "bin/tool is 3 chunks and a bit");

    // Text form: the second chunk of bin/tool, a whole file, a hard link's second name, a
    // range cut at the end, a missing path (warned).
    let text = t.path().join("prefetch.txt");
    std::fs::write(
        &text,
        "# startup set\n/bin/tool 4096-8192\n/etc/hosts\n/hl/b\n/etc/passwd 0-99999\n/missing\n",
    )
    .unwrap();
    let dst = format!("{}/opt/golden:text", reg.addr);
    let o = optimize(&work, &nydus, &dst, &text, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "optimize failed: {err}");
    assert!(err.contains("/missing: not in the image"), "{err}");
    assert!(
        err.contains("/etc/passwd: range 0-99999 ends past its end"),
        "{err}"
    );

    let (m, files) = pull(&reg.addr, "opt/golden", "text");
    let (src_layers, layers) = (
        src_m["layers"].as_array().unwrap(),
        m["layers"].as_array().unwrap(),
    );
    assert_eq!(layers.len(), src_layers.len() + 1, "exactly one more blob");
    assert_eq!(
        layers[..src_layers.len() - 1],
        src_layers[..src_layers.len() - 1],
        "the source blobs are reused as they are"
    );
    let new_blob = layers[layers.len() - 2]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let boot_layer = layers.last().unwrap();
    assert_eq!(
        boot_layer["annotations"]
            ["containerd.io/snapshot/nydus-separated-blob-with-prefetch-files"],
        new_blob.as_str()
    );
    assert_eq!(
        boot_layer["annotations"]["containerd.io/snapshot/nydus-bootstrap"],
        "true"
    );
    assert_eq!(
        file(&files, "image/prefetch.files"),
        std::fs::read(&text).unwrap().as_slice()
    );
    let cfg = config(&reg.addr, "opt/golden", &m);
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), layers.len());
    assert_eq!(diff_ids[diff_ids.len() - 2], format!("sha256:{new_blob}"));

    let boot = t.path().join("opt.boot");
    std::fs::write(&boot, file(&files, "image/image.boot")).unwrap();
    let prefetch: BTreeSet<String> = inspect(&boot, "prefetch")["prefetch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    // The table lists inodes: the hard link /hl/b is shown by its inode's first name.
    let want: BTreeSet<String> = ["/bin/tool", "/etc/hosts", "/hl/a", "/etc/passwd"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(prefetch, want, "the prefetch table lists the files");

    // Exactly the listed ranges' chunks point into the new blob, and it holds only them.
    let blobs = inspect(&boot, "blobs");
    let table = blobs.as_array().unwrap();
    let new_index = (table.len() - 1) as u64;
    assert_eq!(
        table.last().unwrap()["blob_id"],
        new_blob.as_str(),
        "{blobs}"
    );
    let tool = chunks(&boot, "/bin/tool");
    for (k, (b, d)) in tool.iter().enumerate() {
        assert_eq!(d, &src_tool[k].1, "chunk {k} keeps its content");
        assert_eq!(*b == new_index, k == 1, "bin/tool chunk {k} in blob {b}");
    }
    let mut moved = BTreeSet::from([tool[1].1.clone()]);
    for p in ["/etc/hosts", "/hl/a", "/hl/b", "/etc/passwd"] {
        for (b, d) in chunks(&boot, p) {
            assert_eq!(b, new_index, "{p} is listed (directly or by its hard link)");
            moved.insert(d);
        }
    }
    assert_eq!(
        table.last().unwrap()["chunk_count"].as_u64().unwrap(),
        moved.len() as u64,
        "the new blob holds exactly the listed ranges' chunks: {blobs}"
    );

    // The optimized image is the OCI image, byte for byte (read through the registry).
    let o = nydusify(&[
        "check",
        "--source",
        &oci,
        "--target",
        &dst,
        "--plain-http",
        "--work-dir",
        &s(&work),
    ]);
    assert!(
        o.status.success(),
        "check --source of the optimized image: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // The JSON form of the same list gives the same blob and bootstrap.
    let json = t.path().join("prefetch.json");
    std::fs::write(
        &json,
        r#"{"version":"v1","files":[{"path":"/bin/tool","ranges":[[4096,4096]]},{"path":"/etc/hosts"},{"path":"/hl/b"},{"path":"/etc/passwd","ranges":[[0,99999]]},{"path":"/missing"}]}"#,
    )
    .unwrap();
    let o = optimize(
        &work,
        &nydus,
        &format!("{}/opt/golden:json", reg.addr),
        &json,
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (mj, fj) = pull(&reg.addr, "opt/golden", "json");
    assert_eq!(mj["layers"][layers.len() - 2], layers[layers.len() - 2]);
    assert_eq!(
        file(&fj, "image/image.boot"),
        file(&files, "image/image.boot")
    );

    // --strict: the missing path is an error and nothing is tagged.
    let o = optimize(
        &work,
        &nydus,
        &format!("{}/opt/golden:strict", reg.addr),
        &text,
        &["--strict"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/etc/passwd: range 0-99999 ends past its end") && err.contains("--strict"),
        "{err}"
    );
    assert!(!has_tag(&reg.addr, "opt/golden", "strict"));

    // A bad list names the file and the line, before anything is pulled.
    let bad = t.path().join("bad.txt");
    std::fs::write(&bad, "/bin/tool 0-4096\n/etc/hosts 9-3\n").unwrap();
    let o = optimize(
        &work,
        &nydus,
        &format!("{}/opt/golden:bad", reg.addr),
        &bad,
        &[],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.txt") && err.contains("line 2"), "{err}");
    assert!(!has_tag(&reg.addr, "opt/golden", "bad"));
    // An OCI image is not optimized (convert it first).
    let o = optimize(
        &work,
        &oci,
        &format!("{}/opt/golden:oci", reg.addr),
        &text,
        &[],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a Nydus image"));

    // Recorded from real use: the mount writes what was read, and optimize takes it.
    require_root();
    let mp = t.path().join("mnt");
    let record = t.path().join("recorded.json");
    let log = t.path().join("mount.log");
    let d = Served::start(
        mount_cmd(
            &nydus,
            &mp,
            &t.path().join("mwork"),
            &["--record-prefetch", &s(&record)],
        ),
        &mp,
        &log,
    );
    assert!(!std::fs::read(mp.join("etc/hosts")).unwrap().is_empty());
    assert_eq!(
        std::fs::read(mp.join("bin/tool")).unwrap().len(),
        3 * 4096 + 100
    );
    let log = d.stop();
    assert!(log.contains("recorded 2 files read"), "{log}");
    let (list, w) = nydus_core::prefetch_list::parse(&std::fs::read(&record).unwrap()).unwrap();
    assert!(w.is_empty());
    let paths: Vec<&str> = list.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/etc/hosts", "/bin/tool"], "in the order read");
    assert!(
        list.files.iter().all(|f| f.ranges.is_none()),
        "read whole: {list:?}"
    );
    let o = optimize(
        &work,
        &nydus,
        &format!("{}/opt/golden:rec", reg.addr),
        &record,
        &["--strict"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, fr) = pull(&reg.addr, "opt/golden", "rec");
    let rb = t.path().join("rec.boot");
    std::fs::write(&rb, file(&fr, "image/image.boot")).unwrap();
    assert!(chunks(&rb, "/bin/tool")
        .iter()
        .all(|(b, _)| *b == new_index));

    // Nothing left in the work directory but what other commands keep.
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("nydusify-optimize-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn nydus_image_optimize_on_local_files() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::write(src.join("big"), noise(5 * 4096 + 7, 1)).unwrap();
    std::fs::write(src.join("lib/a"), b"a file").unwrap();
    std::fs::write(src.join("lib/b"), noise(9000, 2)).unwrap();
    std::fs::write(src.join("other"), noise(4096, 3)).unwrap();
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    for v in ["6", "5"] {
        let boot = out.join(format!("v{v}.boot"));
        nydus_image_ok(&[
            "create",
            "--fs-version",
            v,
            "--chunk-size",
            "0x1000",
            "-B",
            &s(&boot),
            "-D",
            &s(&out),
            &s(&src),
        ]);
        let list = t.path().join("list");
        std::fs::write(&list, "/big 8192-8193\n/lib\n").unwrap();
        let opt = out.join(format!("v{v}.opt"));
        let j = t.path().join("o.json");
        nydus_image_ok(&[
            "optimize",
            "-B",
            &s(&boot),
            "-D",
            &s(&out),
            "-p",
            &s(&list),
            "-O",
            &s(&opt),
            "--output-blob-dir",
            &s(&out),
            "-J",
            &s(&j),
        ]);
        let r: Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
        // bin chunk 2, lib/a (1 chunk), lib/b (3 chunks).
        assert_eq!(r["prefetch_chunks"], 5, "v{v}: {r}");
        assert_eq!(
            r["prefetch_files"],
            serde_json::json!(["/big", "/lib"]),
            "v{v}"
        );
        let big = chunks(&opt, "/big");
        let n = big.iter().filter(|(b, _)| *b == 1).count();
        assert_eq!(
            (n, big[2].0),
            (1, 1),
            "v{v}: only the third chunk of /big moved"
        );
        // Every chunk verified, and the tree unchanged.
        nydus_image_ok(&["check", "-B", &s(&opt), "-D", &s(&out)]);
        let tar = t.path().join("x.tar");
        nydus_image_ok(&["unpack", "-B", &s(&opt), "-D", &s(&out), "-o", &s(&tar)]);
        let x = t.path().join(format!("x{v}"));
        std::fs::create_dir_all(&x).unwrap();
        let o = run(std::process::Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&x));
        assert!(o.status.success());
        for f in ["big", "lib/a", "lib/b", "other"] {
            assert_eq!(
                std::fs::read(x.join(f)).unwrap(),
                std::fs::read(src.join(f)).unwrap(),
                "v{v}: {f}"
            );
        }
        // A directory-only list with a missing blob: the error names the chunk's blob.
        let empty = tempfile::tempdir().unwrap();
        let o = nydus_image(&[
            "optimize",
            "-B",
            &s(&boot),
            "-D",
            &s(empty.path()),
            "-p",
            &s(&list),
            "-O",
            &s(&t.path().join("never.boot")),
        ]);
        assert!(!o.status.success());
        assert!(!t.path().join("never.boot").exists());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("reading chunk"), "{err}");
    }
}
