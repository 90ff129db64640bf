//! The browser inspector (`web/dist`, the core compiled to WASM) in Debian's headless chromium,
//! driven by playwright-core (`tests/browser/inspect.mjs`): it opens v6, v5, merged and
//! inline-bootstrap images built by the CLI here, and must show the tree, a file's details,
//! chunks and verified content, the summary figures `nydus-image stat --output-json` gives, a
//! clean check report, and a clear error for corrupt files. Screenshots go to
//! `target/browser-artifacts/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use nydus_tests::*;
use serde_json::{json, Value};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn json_of(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The figures of `nydus-image stat -J` the page's summary must equal.
fn stat_of(boot: &Path, work: &Path) -> Value {
    let j = work.join("stat.json");
    nydus_image_ok(&["stat", "-B", &s(boot), "-J", &s(&j)]);
    let i = &json_of(&j)["images"][0];
    json!({
        "files": i["files"], "directories": i["directories"], "inodes": i["inodes"],
        "unique_chunks": i["unique_chunks"], "file_bytes": i["file_bytes"],
    })
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| s(&e.unwrap().path()))
        .filter(|p| !p.ends_with(".boot") && !p.ends_with(".json"))
        .collect();
    v.sort();
    v
}

#[test]
fn inspector_page_in_headless_chromium() {
    require_root();
    require_tool("node", "nodejs");
    require_tool("chromium", "chromium");
    let dist = repo().join("web/dist");
    assert!(
        dist.join("index.html").exists() && dist.join("pkg/nydus_host_wasm_bg.wasm").exists(),
        "prerequisite missing: web/dist (run web/build.sh; scripts/test.sh does)"
    );
    let driver = repo().join("tests/browser");
    assert!(
        driver.join("node_modules/playwright-core").exists(),
        "prerequisite missing: playwright-core (run `npm ci` in tests/browser; scripts/install-deps.sh does)"
    );
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    make_tree(
        &src,
        TreeSpec {
            big_dir_entries: 300,
            socket: false,
        },
    );
    let text = "hello from nydus\n".repeat(4000);
    std::fs::create_dir_all(src.join("docs")).unwrap();
    std::fs::write(src.join("docs/readme.txt"), &text).unwrap();
    let mut root: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    root.sort();
    let readme = json!({"path": "/docs/readme.txt", "content": text, "mode": "644",
                        "size": text.len(), "chunks": 1});
    let mut cases = Vec::new();
    for (v, compressor) in [
        ("6", "zstd"),
        ("5", "zstd"),
        ("6", "lz4_block"),
        ("5", "none"),
    ] {
        let name = format!("v{v}-{compressor}");
        let dir = t.path().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let boot = dir.join("image.boot");
        nydus_image_ok(&[
            "create",
            "--fs-version",
            v,
            "--compressor",
            compressor,
            "-B",
            &s(&boot),
            "-D",
            &s(&dir),
            &s(&src),
        ]);
        cases.push(
            json!({"name": name, "boot": s(&boot), "blobs": files_in(&dir),
            "expect": {"stats": stat_of(&boot, t.path()), "root": root, "file": readme}}),
        );
    }
    // A blob with its bootstrap inlined, opened on its own.
    let inline = t.path().join("inline.blob");
    nydus_image_ok(&[
        "create",
        "--blob-inline-meta",
        "--features",
        "blob-toc",
        "-b",
        &s(&inline),
        &s(&src),
    ]);
    let inline_stats = stat_of(&inline, t.path());
    cases.push(
        json!({"name": "inline-blob", "boot": s(&inline), "blobs": [],
        "expect": {"stats": inline_stats, "root": root, "file": readme}}),
    );
    // The same blob read range by range (File.slice), as the page does for large files.
    cases.push(
        json!({"name": "inline-blob-lazy", "lazy": true, "boot": s(&inline), "blobs": [],
        "expect": {"stats": inline_stats, "root": root, "file": readme}}),
    );
    // A merged image of three layers with whiteouts (scripts/golden_layers.py).
    let layers = t.path().join("layers");
    golden_layers(&layers);
    let mut bootstraps = Vec::new();
    for i in 1..=3 {
        let (tmp, j) = (layers.join("tmp.boot"), layers.join("l.json"));
        nydus_image_ok(&[
            "create",
            "-t",
            "tar-rafs",
            "--whiteout-spec",
            "none",
            "-B",
            &s(&tmp),
            "-D",
            &s(&layers),
            "-J",
            &s(&j),
            &s(&layers.join(format!("layer{i}.tar"))),
        ]);
        let id = first_blob_id(&j);
        let named = layers.join(format!("{id}.boot"));
        std::fs::rename(&tmp, &named).unwrap();
        bootstraps.push(s(&named));
    }
    let merged = t.path().join("merged.boot");
    let mut args = vec!["merge".to_string(), "-B".into(), s(&merged)];
    args.extend(bootstraps);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    nydus_image_ok(&args);
    let blobs: Vec<String> = files_in(&layers)
        .into_iter()
        .filter(|p| !p.ends_with(".tar"))
        .collect();
    cases.push(json!({"name": "merged", "boot": s(&merged), "blobs": blobs,
        "expect": {"stats": stat_of(&merged, t.path()), "root": ["bin", "del", "etc", "opq"],
                   "file": {"path": "/etc/hosts", "content": "recreated\n", "mode": "600",
                            "size": 10, "chunks": 1}}}));
    // An image referencing an eStargz layer (chunks inflated from the layer's gzip members),
    // and the layer itself opened on its own (its bootstrap built in the page from the TOC).
    let esgz = std::fs::read(repo().join("core/tests/golden/stargz/two.esgz")).unwrap();
    let edir = t.path().join("estargz");
    std::fs::create_dir_all(&edir).unwrap();
    let hex = nydus_core::digest::sha256(&esgz).to_hex();
    std::fs::write(edir.join(&hex), &esgz).unwrap();
    let eboot = t.path().join("estargz.boot");
    nydus_image_ok(&[
        "create",
        "-t",
        "estargztoc-ref",
        "-B",
        &s(&eboot),
        &s(&edir.join(&hex)),
    ]);
    let two =
        json!({"path": "/etc/two", "content": "two\n", "mode": "644", "size": 4, "chunks": 1});
    let estats = stat_of(&eboot, t.path());
    cases.push(
        json!({"name": "estargz", "boot": s(&eboot), "blobs": [s(&edir.join(&hex))],
        "expect": {"stats": estats, "root": ["etc"], "file": two}}),
    );
    let layer = t.path().join("layer.esgz");
    std::fs::write(&layer, &esgz).unwrap();
    cases.push(
        json!({"name": "estargz-layer", "boot": s(&layer), "blobs": [],
        "expect": {"stats": estats, "root": ["etc"], "file": two}}),
    );
    cases.push(
        json!({"name": "estargz-layer-lazy", "lazy": true, "boot": s(&layer), "blobs": [],
        "expect": {"stats": estats, "root": ["etc"], "file": two}}),
    );
    // Files the page must refuse with a message.
    let garbage = t.path().join("garbage.boot");
    std::fs::write(&garbage, noise(20_000, 5)).unwrap();
    cases.push(json!({"name": "garbage", "boot": s(&garbage), "blobs": [],
                      "error": "not a RAFS bootstrap"}));
    let v6 = std::fs::read(t.path().join("v6-zstd/image.boot")).unwrap();
    let truncated = t.path().join("truncated.boot");
    std::fs::write(&truncated, &v6[..v6.len() / 2]).unwrap();
    cases.push(
        json!({"name": "truncated", "boot": s(&truncated), "blobs": [],
                      "error": "truncated.boot"}),
    );

    let cases_file = t.path().join("cases.json");
    std::fs::write(&cases_file, serde_json::to_vec_pretty(&cases).unwrap()).unwrap();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let o = run(Command::new("node")
        .arg(driver.join("inspect.mjs"))
        .arg(&dist)
        .arg(&cases_file)
        .arg(&artifacts));
    assert!(
        o.status.success(),
        "browser checks failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
