//! What an upstream user meets in the first hour, against Debian's docker-registry on
//! loopback (plain HTTP and TLS with a test CA): the insecure flags reaching a plain-HTTP
//! registry, plain HTTP per side, a private CA trusted through `SSL_CERT_FILE`,
//! `SSL_CERT_DIR` and Docker's `certs.d`, a refused connection failing at once, upstream's
//! global flags, flag rules, upstream's `--output-json` fields, SIGINT leaving nothing
//! behind, and `| head` ending quietly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nydus_tests::*;
use serde_json::Value;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Our nydusify with extra environment variables.
fn nydusify_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(bin("nydusify"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(&mut c)
}

#[test]
fn insecure_flags_reach_plain_http_and_private_cas_are_trusted_from_files() {
    let reg = TestRegistry::start(None);
    // The TLS registry also wants a password (htpasswd), from a Docker config.
    let tls = TestRegistry::start_with(Some(("alice", "pa55-word")), true);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = s(&t.path().join("work"));
    let src = format!("{}/src/golden:t", reg.addr);
    let docker = t.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6cGE1NS13b3Jk"}}}}}}"#,
            tls.addr
        ),
    )
    .unwrap();
    let no_creds = t.path().join("no-creds");
    std::fs::create_dir(&no_creds).unwrap();

    // Only the insecure flags, as upstream users give them for a plain-HTTP registry.
    let plain = format!("{}/src/golden:insecure", reg.addr);
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target",
        &plain,
        "--source-insecure",
        "--target-insecure",
        "--work-dir",
        &work,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("plain HTTP"), "{}", stderr(&o));
    let chk = s(&t.path().join("chk"));
    let o = nydusify(&[
        "check",
        "--source",
        &src,
        "--target",
        &plain,
        "--source-insecure",
        "--target-insecure",
        "--work-dir",
        &chk,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A plain-HTTP source and a TLS target: plain HTTP for the source only, the target's CA
    // from SSL_CERT_FILE.
    let secure = format!("{}/tls/golden:nydus", tls.addr);
    let to_tls = |env: &[(&str, &Path)]| {
        nydusify_env(
            &[
                "convert",
                "--source",
                &src,
                "--target",
                &secure,
                "--source-plain-http",
                "--work-dir",
                &work,
            ],
            env,
        )
    };
    let o = to_tls(&[("DOCKER_CONFIG", &docker)]);
    assert!(
        !o.status.success(),
        "a certificate of an unknown CA was accepted"
    );
    let e = stderr(&o);
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let ca = tls.cert();
    let o = to_tls(&[("SSL_CERT_FILE", &ca), ("DOCKER_CONFIG", &no_creds)]);
    assert!(!o.status.success(), "pushed without credentials");
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    let o = to_tls(&[("SSL_CERT_FILE", &ca), ("DOCKER_CONFIG", &docker)]);
    assert!(o.status.success(), "{}", stderr(&o));

    // SSL_CERT_DIR: a directory of CA files named by subject hash, as `openssl rehash` makes.
    let dir = t.path().join("certs");
    std::fs::create_dir(&dir).unwrap();
    let hash = run(Command::new("openssl").args(["x509", "-hash", "-noout", "-in", &s(&ca)]));
    assert!(hash.status.success(), "{}", stderr(&hash));
    let name = format!("{}.0", String::from_utf8_lossy(&hash.stdout).trim());
    std::fs::copy(&ca, dir.join(name)).unwrap();
    let check_tls = |env: &[(&str, &Path)]| {
        nydusify_env(&["check", "--target", &secure, "--work-dir", &chk], env)
    };
    let o = check_tls(&[("SSL_CERT_DIR", &dir), ("DOCKER_CONFIG", &docker)]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Docker's certs.d (the rootless daemon's, under XDG_CONFIG_HOME): <host:port>/ca.crt.
    let xdg = t.path().join("xdg");
    let host_dir = xdg.join("docker/certs.d").join(&tls.addr);
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&ca, host_dir.join("ca.crt")).unwrap();
    let o = check_tls(&[("XDG_CONFIG_HOME", &xdg), ("DOCKER_CONFIG", &docker)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The system's trust store (Debian's update-ca-certificates), with no variable set.
    require_root();
    require_tool("update-ca-certificates", "ca-certificates");
    let system = SystemCa::add(&ca, &tls.addr);
    let o = check_tls(&[("DOCKER_CONFIG", &docker)]);
    drop(system);
    assert!(o.status.success(), "{}", stderr(&o));
    // A certs.d file that is not a certificate is named.
    std::fs::write(host_dir.join("bad.crt"), "not a certificate\n").unwrap();
    let o = check_tls(&[("XDG_CONFIG_HOME", &xdg), ("DOCKER_CONFIG", &docker)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.crt"), "{}", stderr(&o));
}

/// A CA added to the system's trust store, taken out again when dropped.
struct SystemCa(PathBuf);

impl SystemCa {
    fn add(ca: &Path, tag: &str) -> SystemCa {
        let name = format!("nydus-test-{}.crt", tag.replace([':', '.'], "-"));
        let p = Path::new("/usr/local/share/ca-certificates").join(name);
        std::fs::copy(ca, &p).unwrap();
        let o = run(&mut Command::new("update-ca-certificates"));
        assert!(o.status.success(), "update-ca-certificates: {}", stderr(&o));
        SystemCa(p)
    }
}

impl Drop for SystemCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = run(Command::new("update-ca-certificates").arg("--fresh"));
    }
}

#[test]
fn a_refused_connection_fails_at_once_naming_the_address() {
    let port = free_port();
    let t = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{port}/x/y:z");
    let started = Instant::now();
    let o = nydusify(&[
        "convert",
        "--source",
        &target,
        "--target",
        &format!("{target}-nydus"),
        "--plain-http",
        "--work-dir",
        &s(&t.path().join("work")),
    ]);
    let took = started.elapsed();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.to_lowercase().contains("refused"), "{e}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {e}");
    // Nothing is left in the work directory made for the run, nor the directory itself.
    assert!(!t.path().join("work").exists());
}

#[test]
fn upstream_global_flags_and_flag_rules() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = s(&t.path().join("work"));
    let src = format!("{}/src/golden:t", reg.addr);
    let info_lines = |o: &Output| stderr(o).lines().filter(|l| l.starts_with("info:")).count();

    // `--target-suffix -nydus`: a value starting with `-`; `-l warn` shows no info lines, and
    // `--log-file` gets what is shown.
    let log = t.path().join("convert.log");
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target-suffix",
        "-nydus",
        "--plain-http",
        "--log-file",
        &s(&log),
        "--work-dir",
        &work,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(info_lines(&o) > 0, "{}", stderr(&o));
    assert!(has_tag(&reg.addr, "src/golden", "t-nydus"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("info: converted"), "{logged}");
    // The default level shows them; LOG_LEVEL and --debug are upstream's too.
    let convert = |extra: &[&str], env: &[(&str, &Path)]| {
        let mut args = vec!["convert", "--source", &src, "--target-suffix", "-nydus"];
        args.extend_from_slice(&["--plain-http", "--work-dir", &work]);
        args.extend_from_slice(extra);
        let o = nydusify_env(&args, env);
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    assert!(info_lines(&convert(&[], &[])) > 0);
    assert_eq!(info_lines(&convert(&["-l", "warn"], &[])), 0);
    assert_eq!(
        info_lines(&convert(&[], &[("LOG_LEVEL", Path::new("error"))])),
        0
    );
    let debug = convert(&["--debug"], &[("LOG_LEVEL", Path::new("error"))]);
    assert!(info_lines(&debug) > 0, "{}", stderr(&debug));
    assert_eq!(info_lines(&convert(&["--log-level", "fatal"], &[])), 0);

    // Rules: --target with --target-suffix, a backend config without a type, or given twice.
    let fails = |args: &[&str], want: &str| {
        let o = nydusify(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = stderr(&o);
        assert!(e.contains(want), "{args:?}: want {want:?} in: {e}");
        assert!(!e.contains("panicked"), "{e}");
    };
    fails(
        &[
            "convert",
            "--source",
            &src,
            "--target",
            "x/y:z",
            "--target-suffix",
            "-n",
        ],
        "cannot be used with",
    );
    let cfg_file = t.path().join("backend.json");
    std::fs::write(&cfg_file, r#"{"dir":"/tmp"}"#).unwrap();
    fails(
        &[
            "convert",
            "--source",
            &src,
            "--target-suffix",
            "-n",
            "--backend-config",
            "{}",
        ],
        "--backend-config is given without --backend-type",
    );
    fails(
        &[
            "convert",
            "--source",
            &src,
            "--target-suffix",
            "-n",
            "--backend-type",
            "localfs",
            "--backend-config",
            r#"{"dir":"/tmp"}"#,
            "--backend-config-file",
            &s(&cfg_file),
        ],
        "not both",
    );
    assert!(!has_tag(&reg.addr, "src/golden", "t-n"));

    // An image whose blobs are in a backend, checked without naming it: the error says where
    // to look.
    let blobs = t.path().join("blobs");
    std::fs::create_dir(&blobs).unwrap();
    let cfg = format!(r#"{{"dir":"{}"}}"#, s(&blobs));
    let o = nydusify(&[
        "convert",
        "--source",
        &src,
        "--target-suffix",
        "-local",
        "--plain-http",
        "--backend-type",
        "localfs",
        "--backend-config",
        &cfg,
        "--work-dir",
        &work,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let target = format!("{src}-local");
    let o = nydusify(&[
        "check",
        "--target",
        &target,
        "--plain-http",
        "--work-dir",
        &work,
    ]);
    assert!(!o.status.success());
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(out.contains("--target-backend-type"), "{out}");
    let o = nydusify(&[
        "check",
        "--target",
        &target,
        "--plain-http",
        "--work-dir",
        &work,
        "--target-backend-type",
        "localfs",
        "--target-backend-config",
        &cfg,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn output_json_has_upstream_fields_and_its_path_is_checked_first() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let work = s(&t.path().join("work"));
    let src = format!("{}/src/golden:t", reg.addr);
    let dst = format!("{}/src/golden:nydus", reg.addr);
    let json = t.path().join("metrics.json");
    let convert = |out: &Path| {
        nydusify(&[
            "convert",
            "--source",
            &src,
            "--target",
            &dst,
            "--plain-http",
            "--work-dir",
            &work,
            "--output-json",
            &s(out),
        ])
    };
    // A path that cannot be written fails before anything is pulled or pushed.
    let bad = t.path().join("missing-dir/metrics.json");
    let o = convert(&bad);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&s(&bad)), "{}", stderr(&o));
    assert!(!has_tag(&reg.addr, "src/golden", "nydus"));
    let o = convert(t.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));

    let o = convert(&json);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let layer_sum = |manifest: &Value| -> u64 {
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        m["SourceImageSize"].as_u64(),
        Some(layer_sum(&skopeo_raw(&src))),
        "{m}"
    );
    assert_eq!(
        m["TargetImageSize"].as_u64(),
        Some(layer_sum(&skopeo_raw(&dst))),
        "{m}"
    );
    for k in [
        "SourcePullElapsed",
        "ConversionElapsed",
        "TargetPushElapsed",
    ] {
        let ns = m[k].as_u64().unwrap_or_else(|| panic!("{k} in {m}"));
        assert!(ns > 0 && ns < 600_000_000_000, "{k} = {ns} ns");
    }
    // Ours stay beside them.
    assert!(m["target_digest"].as_str().is_some(), "{m}");
}

/// Waits until `ready` holds (polling), failing after 60 s with `what`.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed() < Duration::from_secs(60), "{what} within 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every file under `dir` with its size.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.metadata() {
            Ok(m) if m.is_dir() => out.extend(files_under(&p)),
            Ok(m) => out.push((p, m.len())),
            Err(_) => {}
        }
    }
    out
}

fn interrupt(child: &std::process::Child) {
    signal(child, "INT");
}

fn signal(child: &std::process::Child, sig: &str) {
    let pid = child.id().to_string();
    let o = run(Command::new("kill").args([&format!("-{sig}"), &pid]));
    assert!(o.status.success(), "kill -{sig} {pid}");
}

#[test]
fn signals_during_convert_copy_or_create_leave_nothing_behind() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    // 96 MiB of incompressible data in 12 files: long enough to be caught mid-build.
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..12u64 {
        std::fs::write(tree.join(format!("f{i}")), noise(8 << 20, 2 * i + 1)).unwrap();
    }
    let tar = t.path().join("big.tar");
    let o = run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&tree)
        .arg("."));
    assert!(o.status.success(), "{}", stderr(&o));
    let layout = t.path().join("layout");
    umoci_image(&layout, "big", &[tar], "amd64");
    let src = format!("{}/src/big:t", reg.addr);
    skopeo_push(&layout, "big", &src, false);

    // Interrupted as soon as the scratch directory exists, and once a blob is being written.
    let work = t.path().join("work");
    let convert = || {
        Command::new(bin("nydusify"))
            .args([
                "convert",
                "--source",
                &src,
                "--target-suffix",
                "-nydus",
                "--plain-http",
            ])
            .arg("--work-dir")
            .arg(&work)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    type Point = fn(&[(PathBuf, u64)]) -> bool;
    let points: [(&str, Point); 2] = [
        ("the scratch directory", |_| true),
        ("a blob of 1 MiB being built", |f| {
            f.iter().any(|(_, n)| *n > 1 << 20)
        }),
    ];
    for (what, reached) in points {
        let child = convert();
        wait_until(what, || work.is_dir() && reached(&files_under(&work)));
        interrupt(&child);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "at {what}: {}", stderr(&o));
        assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
        assert!(!work.exists(), "at {what}: {:?} left", files_under(&work));
        assert!(
            !has_tag(&reg.addr, "src/big", "t-nydus"),
            "a tag after SIGINT at {what}"
        );
    }
    // A second run does not trip over anything and leaves nothing either.
    let o = convert().wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!work.exists(), "{:?} left", files_under(&work));
    assert!(has_tag(&reg.addr, "src/big", "t-nydus"));

    // nydusify copy to another registry, stopped by SIGTERM while a blob is on its way.
    let other = TestRegistry::start(None);
    let copy = Command::new(bin("nydusify"))
        .args(["copy", "--source", &src, "--target"])
        .arg(format!("{}/copy/big:t", other.addr))
        .args(["--plain-http", "--work-dir"])
        .arg(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a blob of 1 MiB being copied", || {
        files_under(&work).iter().any(|(_, n)| *n > 1 << 20)
    });
    signal(&copy, "TERM");
    let o = copy.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(!work.exists(), "{:?} left", files_under(&work));
    assert!(!has_tag(&other.addr, "copy/big", "t"));

    // nydus-image create, interrupted while the blob is written: no temporary file stays.
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let child = Command::new(bin("nydus-image"))
        .arg("create")
        .arg("-B")
        .arg(out.join("image.boot"))
        .arg("-b")
        .arg(out.join("image.blob"))
        .arg(&tree)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a blob of 1 MiB in the output directory", || {
        files_under(&out).iter().any(|(_, n)| *n > 1 << 20)
    });
    interrupt(&child);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert_eq!(files_under(&out), vec![], "left in the output directory");
}

#[test]
fn a_reader_that_goes_away_ends_output_quietly() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..3000 {
        std::fs::write(tree.join(format!("file-{i:05}")), format!("{i}")).unwrap();
    }
    let boot = t.path().join("image.boot");
    let blob = t.path().join("image.blob");
    nydus_image_ok(&["create", "-B", &s(&boot), "-b", &s(&blob), &s(&tree)]);
    // Like `| head -0`: the pipe's reader is gone before the first write.
    let quiet = |args: &[&str]| {
        let mut child = Command::new(bin("nydus-image"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let code = o.status.code();
        assert!(
            code == Some(0) || code == Some(141),
            "{args:?}: status {:?}: {}",
            o.status,
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    };
    quiet(&["inspect", "-B", &s(&boot), "-R", "stats"]);
    quiet(&["inspect", "-B", &s(&boot), "--text", "-R", "blobs"]);
    quiet(&["check", "-B", &s(&boot), "-b", &s(&blob)]);
    quiet(&["stat", "-B", &s(&boot)]);
    quiet(&["unpack", "-B", &s(&boot), "-b", &s(&blob), "--output", "-"]);
}

/// The `error:` lines of a command's stdout and stderr.
fn error_lines(o: &Output) -> Vec<String> {
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
    all.lines()
        .filter(|l| l.contains("error:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn errors_say_what_is_wrong_once() {
    let t = tempfile::tempdir().unwrap();
    let p = |n: &str| s(&t.path().join(n));
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..6u64 {
        std::fs::write(tree.join(format!("f{i}")), noise(1 << 20, 2 * i + 101)).unwrap();
    }
    let o = nydus_image_ok(&["create", "-B", &p("i.boot"), "-b", &p("i.blob"), &s(&tree)]);
    // A one-line summary on success.
    let summary = stderr(&o);
    assert!(
        summary.contains("built RAFS v6") && summary.contains("blob "),
        "{summary}"
    );

    // A cut blob: one finding saying so, not one per chunk.
    let blob = std::fs::read(t.path().join("i.blob")).unwrap();
    std::fs::write(t.path().join("cut.blob"), &blob[..blob.len() / 2]).unwrap();
    let o = nydus_image(&["check", "-B", &p("i.boot"), "-b", &p("cut.blob")]);
    assert_eq!(o.status.code(), Some(1));
    let lines = error_lines(&o);
    assert!(
        lines[0].contains("but the bootstrap places data up to byte"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2, "one finding and the summary: {lines:?}");
    // A missing blob: one finding too.
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = nydus_image(&["check", "-B", &p("i.boot"), "-D", &s(&empty)]);
    let lines = error_lines(&o);
    assert!(lines[0].contains("not found"), "{lines:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    // Every chunk bad: the first three, then a count.
    let mut bad = blob.clone();
    for b in bad.iter_mut().take(6 << 20) {
        *b ^= 0x5a;
    }
    std::fs::write(t.path().join("bad.blob"), &bad).unwrap();
    let o = nydus_image(&["check", "-B", &p("i.boot"), "-b", &p("bad.blob")]);
    let lines = error_lines(&o);
    let chunk_lines = lines.iter().filter(|l| l.contains(": chunk ")).count();
    assert_eq!(chunk_lines, 3, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("and 3 more bad chunk(s)")),
        "{lines:?}"
    );
    // The blob id is named once per line.
    let id = first_blob_id_of(&o);
    assert!(
        lines.iter().all(|l| l.matches(&id).count() <= 1),
        "{lines:?}"
    );

    // merge: a blob id taken from a file name that is not a digest is warned about.
    std::fs::copy(t.path().join("i.boot"), t.path().join("layer.boot")).unwrap();
    let o = nydus_image_ok(&["merge", "-B", &p("merged.boot"), &p("layer.boot")]);
    assert!(stderr(&o).contains("not a 64-hex digest"), "{}", stderr(&o));
    // Outputs are checked before the build: nothing is written when one cannot be.
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for (flag, path) in [
        ("-B", "/nonexistent-dir/i.boot"),
        ("-J", "/nonexistent-dir/o.json"),
    ] {
        let mut args = vec!["create", "-B", "", "-b", ""];
        let boot = s(&out.join("i.boot"));
        let blob = s(&out.join("i.blob"));
        args[2] = if flag == "-B" { path } else { &boot };
        args[4] = &blob;
        if flag == "-J" {
            args.extend_from_slice(&["-J", path]);
        }
        let tree = s(&tree);
        args.push(&tree);
        let o = nydus_image(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains("/nonexistent-dir"), "{}", stderr(&o));
        assert_eq!(files_under(&out), vec![], "{args:?} left outputs");
    }

    // nydusify: an archive that is a directory, a tag that is not in the archive.
    let o = nydusify(&[
        "copy",
        "--source",
        &format!("file://{}", s(&tree)),
        "--target",
        &format!("file://{}", p("x.tar")),
    ]);
    assert!(
        stderr(&o).contains("a directory; an OCI image layout archive is a tar file"),
        "{}",
        stderr(&o)
    );
    golden_layers(t.path());
    let layout = t.path().join("layout");
    let tars = [t.path().join("layer1.tar")];
    umoci_image(&layout, "one", &tars, "amd64");
    umoci_image(&layout, "two", &tars, "amd64");
    let archive = t.path().join("two-tags.tar");
    let o = run(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .arg("."));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = nydusify(&[
        "convert",
        "--source",
        "127.0.0.1:1/x/y:three",
        "--source-archive",
        &s(&archive),
        "--target",
        "127.0.0.1:1/x/y:nydus",
        "--target-archive",
        &p("out.tar"),
        "--work-dir",
        &p("work"),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no image tagged \"three\""),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("tags: one, two"), "{}", stderr(&o));
}

/// The blob id in the `blob 0:` line of a `nydus-image check` output.
fn first_blob_id_of(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("blob 0:"))
        .unwrap_or_else(|| panic!("no blob line in {out}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

/// `nydus-image check`, `inspect` and `stat` on upstream's golden image, compared with the
/// outputs kept in `tests/snapshots/` (`UPDATE_SNAPSHOTS=1` rewrites them; review the diff).
/// The chunk-reference counts the three print must agree.
#[test]
fn introspection_outputs_match_their_snapshots() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/golden/upstream");
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let (boot, blob) = ("up-dir-zstd.boot", "up-dir-zstd.blob");
    let cases: [(&str, Vec<&str>); 7] = [
        ("check", vec!["check", "-B", boot, "-b", blob]),
        ("inspect-stats", vec!["inspect", "-B", boot, "-R", "stats"]),
        (
            "inspect-blobs",
            vec!["inspect", "-B", boot, "--text", "-R", "blobs"],
        ),
        ("inspect-ls", vec!["inspect", "-B", boot, "-R", "ls /"]),
        (
            "inspect-prefetch",
            vec!["inspect", "-B", boot, "--text", "-R", "prefetch"],
        ),
        ("stat", vec!["stat", "-B", boot]),
        ("stat-dir", vec!["stat", "-D", "."]),
    ];
    let mut mismatched = Vec::new();
    let mut outputs = std::collections::HashMap::new();
    for (name, args) in &cases {
        let o = run(Command::new(bin("nydus-image"))
            .current_dir(&golden)
            .args(args));
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let got = String::from_utf8_lossy(&o.stdout).into_owned();
        let file = snapshots.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&snapshots).unwrap();
            std::fs::write(&file, &got).unwrap();
        } else {
            let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
                panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", file.display())
            });
            if want != got {
                mismatched.push(format!("{name}:\n--- want\n{want}\n--- got\n{got}"));
            }
        }
        outputs.insert(*name, got);
    }
    assert!(mismatched.is_empty(), "{}", mismatched.join("\n"));
    // One count of chunk references, whoever prints it.
    let check_refs = outputs["check"]
        .split(", ")
        .find_map(|p| p.strip_suffix(" chunk references"))
        .and_then(|n| n.rsplit(' ').next())
        .expect("check prints the chunk references")
        .to_string();
    let stats: Value = serde_json::from_str(outputs["inspect-stats"].trim()).unwrap();
    assert_eq!(stats["chunk_references"].to_string(), check_refs);
    assert!(
        outputs["stat"].contains(&format!("chunk references {check_refs},")),
        "{}",
        outputs["stat"]
    );
}
