//! The README's shell examples, run as written (so that the README cannot drift from what
//! the tools do): every ```sh block of README.md is either run here, all of them in order as
//! one bash script in a scratch directory (variables such as `$S3` carry over, as the README
//! reads), or listed in [`NOT_RUN_HERE`] with why. `registry.example` and `other.example` are
//! a loopback docker-registry over TLS whose CA is trusted through `SSL_CERT_FILE`, seeded
//! with `app:1`; the S3 endpoint is s3s-fs and the OSS one `tests/oss_server.py`, with the
//! test keys; `rootfs/` is `examples/rootfs`; `layer1.tar.gz` and `layer2.tar` are the golden
//! layers; absolute paths under `/mnt`, `/var/lib` and `/run` are moved into the scratch
//! directory; `…` and `<…>` placeholders are filled from what the earlier lines made. A
//! daemon a line starts (`nydusify mount`, `nydusd … &`) is waited for, its mount listed (a
//! `nydusify mount` one read whole), and
//! stopped with SIGTERM before the next line (`kill %1` where the README does it).

use std::path::{Path, PathBuf};
use std::process::Command;

use nydus_tests::*;

/// Blocks not run here, by a line they contain, with why and what covers them.
const NOT_RUN_HERE: [(&str, &str); 7] = [
    ("bash scripts/quickstart.sh", "the set-up command: CI runs the other one, this test is part of it"),
    ("bash scripts/test.sh", "the test command itself"),
    ("-p nydus-plugin-policy -p nydus-plugin-bookkeeping", "builds with cargo, which the test harness holds the lock of; tests/hooks.rs builds the same plugins (in a target directory of its own) and converts with them"),
    ("cargo run --release --example converter", "builds with cargo, which the test harness holds the lock of; tests/library.rs runs the built example against a registry"),
    ("nydusify commit --containerd-address", "needs containerd running a container of the image; tests/commit.rs starts containerd + runc, runs one and commits it with these flags"),
    ("-t estargztoc-ref", "needs eStargz layers, which ctr-remote makes against a running containerd; tests/stargz.rs makes them and builds, checks and unpacks with these commands"),
    ("python3 -m http.server", "builds with cargo (the test harness holds cargo's lock) and serves until killed; tests/browser.rs builds web/dist and opens it in headless chromium"),
];

/// The ```sh blocks of the README, continuation lines joined.
fn sh_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in readme.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```sh") => cur = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(b.replace("\\\n", " "));
                cur = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The README's wording turned into this machine's: hosts, paths and placeholders.
fn localize(block: &str, reg: &str, dir: &Path, s3: u16, oss: u16) -> String {
    let d = dir.display();
    let mut s = block.to_string();
    for (from, to) in [
        (
            "--source … --target …",
            "--source registry.example/app:1 --target registry.example/app:1-nydus",
        ),
        ("--source …:nydus", "--source registry.example/app:1-nydus"),
        (
            r#""endpoint":"localhost:9000""#,
            &format!(r#""endpoint":"127.0.0.1:{s3}""#),
        ),
        (
            r#""endpoint":"oss-cn-hangzhou.aliyuncs.com","scheme":"https""#,
            &format!(r#""endpoint":"localhost:{oss}","scheme":"http","region":"cn-hangzhou""#),
        ),
        (
            r#""access_key_id":"AK""#,
            &format!(r#""access_key_id":"{TEST_AK}""#),
        ),
        (
            r#""access_key_secret":"SK""#,
            &format!(r#""access_key_secret":"{TEST_SK}""#),
        ),
        (
            r#""host":"registry.example.com""#,
            &format!(r#""host":"{reg}""#),
        ),
        (r#""registry_token":"…""#, r#""registry_token":"a-token""#),
        ("registry.example/", &format!("{reg}/")),
        ("other.example/", &format!("{reg}/other/")),
        ("/var/lib/", &format!("{d}/var/lib/")),
        ("/mnt", &format!("{d}/mnt")),
        ("/run/", &format!("{d}/run/")),
        (
            "cache/<id>.blob.data",
            "cache/$(ls cache | sed -n 's/[.]blob[.]data$//p').blob.data",
        ),
        ("<blob-id-1>", "$BLOB_ID_1"),
        ("<blob-id-2>", "$BLOB_ID_2"),
    ] {
        s = s.replace(from, to);
    }
    // A daemon started in the background: wait for its API socket before the next line.
    let mut out = String::new();
    for line in s.lines() {
        out.push_str(line);
        out.push('\n');
        if let (true, Some(sock)) = (line.trim_end().ends_with('&'), api_sock(line)) {
            out.push_str(&format!(
                "for _ in $(seq 100); do [ -S {sock} ] && break; kill -0 $! 2>/dev/null || break; sleep 0.1; done\n"
            ));
        }
        // A mount made by a line is unmounted after it (and the loop devices of the blob cache
        // files detached), so that the next can use the path.
        if line.starts_with("mount ") {
            let cmd = line.split(" #").next().unwrap_or(line);
            let target = cmd.split_whitespace().last().expect("mount ... <target>");
            out.push_str(&format!(
                "ls {target} >/dev/null\numount {target}\nfor f in cache/*.blob.data; do losetup -j \"$f\" | cut -d: -f1 | xargs -r -n1 losetup -d; done\n"
            ));
        }
        // `nydusify mount` serves until stopped: in the background, listed, then stopped.
        if line.starts_with("nydusify mount ") {
            let path = flag_value(line, "--mount-path").expect("--mount-path");
            out.pop();
            out.push_str(&format!(
                " &\nfor _ in $(seq 300); do mountpoint -q {path} && break; kill -0 $! 2>/dev/null || break; sleep 0.1; done\nfind {path} -type f -exec cat {{}} + >/dev/null\nkill -TERM $!\nwait $!\n"
            ));
        }
        // A daemon stopped by job number: wait until it has unmounted and exited.
        if line.starts_with("kill ") && line.contains('%') {
            out.push_str("wait\n");
        }
    }
    out
}

fn api_sock(line: &str) -> Option<&str> {
    flag_value(line, "--apisock")
}

/// The word after `flag` in a command line.
fn flag_value<'a>(line: &'a str, flag: &str) -> Option<&'a str> {
    let mut w = line.split_whitespace();
    while let Some(x) = w.next() {
        if x == flag {
            return w.next();
        }
    }
    None
}

#[test]
fn readme_examples_run_as_written() {
    require_root();
    require_tool("curl", "curl");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 8, "{} sh blocks in README.md", blocks.len());

    let tls = TestRegistry::start_with(None, true);
    let s3 = S3Server::start();
    let oss = OssServer::start("cn-hangzhou", 1);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    // The image every registry example starts from, and the layer files.
    golden_layers(dir);
    let tars: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("layer{i}.tar"))).collect();
    umoci_image(&dir.join("layout"), "1", &tars, "amd64");
    skopeo_push(
        &dir.join("layout"),
        "1",
        &format!("{}/app:1", tls.addr),
        false,
    );
    let o = run(Command::new("gzip").arg("-k").arg(dir.join("layer1.tar")));
    assert!(o.status.success());
    let o = run(Command::new("cp")
        .arg("-a")
        .arg(repo.join("examples/rootfs"))
        .arg(dir.join("rootfs")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for d in ["mnt/app", "var/lib/nydus", "run", "docker"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    // What the examples name by placeholder: two per-layer bootstraps named by blob id, and
    // an OCI layout archive.
    let prelude = format!(
        r#"set -euo pipefail
export PATH="{bin}:$PATH"
mkdir -p prep
for i in 1 2; do
  nydus-image create -t tar-rafs --whiteout-spec none -B prep/l$i.boot -b prep/l$i.blob -J prep/l$i.json layer$i.tar
  id=$(sed -n 's/.*"\([0-9a-f]\{{64\}}\)".*/\1/p' prep/l$i.json | head -1)
  cp prep/l$i.boot $id.boot
  eval "BLOB_ID_$i=$id"
done
nydusify copy --source {reg}/app:1 --target file://oci.tar
"#,
        bin = bin("nydus-image").parent().unwrap().display(),
        reg = tls.addr,
    );
    let mut script = format!("{prelude}set -x\n");
    let mut ran = 0;
    // How many commands of each tool the README gives: each must show in the trace.
    let tools = ["nydus-image", "nydusify", "nydusd", "mount", "curl"];
    let mut given = [0usize; 5];
    for b in &blocks {
        if let Some((_, why)) = NOT_RUN_HERE.iter().find(|(m, _)| b.contains(m)) {
            eprintln!("not run here ({why}):\n{b}");
            continue;
        }
        for line in b.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if let Some(i) = tools.iter().position(|t| *t == first) {
                given[i] += 1;
            }
        }
        script.push_str(&localize(b, &tls.addr, dir, s3.port, oss.port));
        ran += 1;
    }
    let o = run(Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("SSL_CERT_FILE", tls.cert())
        .env("DOCKER_CONFIG", dir.join("docker")));
    assert!(
        o.status.success(),
        "a README example failed (the last command in the trace):\n--- as run:\n{script}\n--- stdout:\n{}\n--- stderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let trace = String::from_utf8_lossy(&o.stderr);
    for (tool, n) in tools.iter().zip(given) {
        let traced = trace.matches(&format!("\n+ {tool} ")).count();
        assert!(
            traced >= n,
            "{n} {tool} commands in the README, {traced} run:\n{trace}"
        );
    }
    // Each exclusion still names a block: one that went away is taken off the list.
    for (marker, _) in NOT_RUN_HERE {
        assert!(
            blocks.iter().any(|b| b.contains(marker)),
            "no README block has {marker:?}"
        );
    }
    assert!(ran >= 5, "only {ran} blocks ran");
}
