//! Hook plugins against Debian's docker-registry on loopback: the example plugins (built for
//! wasm32-wasip1, the policy one running nydus-core inside wasmtime) and hostile modules, run
//! by `nydusify convert` (and `copy`) before and after the manifest push. A rejection before
//! the push leaves no tag; nothing a module does reaches outside its sandbox or past its
//! limits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nydus_tests::*;
use serde_json::Value;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file of a test layer: path, mode, uid, size.
type File<'a> = (&'a str, u32, u32, usize);

/// The one-layer image `<reg>/app:<tag>` holding `files` (and their directories).
fn seed(reg: &TestRegistry, dir: &Path, tag: &str, files: &[File<'_>]) -> String {
    let tar = dir.join(format!("{tag}.tar"));
    let spec: Vec<Value> = files
        .iter()
        .map(|(p, mode, uid, size)| serde_json::json!([p, mode, uid, size]))
        .collect();
    let script = r#"
import io, json, sys, tarfile
files = json.loads(sys.argv[2])
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    dirs = set()
    for path, mode, uid, size in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1
                t.addfile(ti)
        ti = tarfile.TarInfo(path); ti.mode = mode; ti.uid = uid; ti.gid = uid; ti.size = size; ti.mtime = 1
        t.addfile(ti, io.BytesIO(bytes((i * 7 + 3) % 251 for i in range(size))))
"#;
    let o = run(Command::new("python3").args([
        "-c",
        script,
        &s(&tar),
        &serde_json::to_string(&spec).unwrap(),
    ]));
    assert!(
        o.status.success(),
        "making {}: {}",
        tar.display(),
        stderr(&o)
    );
    let layout = dir.join(format!("layout-{tag}"));
    umoci_image(&layout, tag, &[tar], "amd64");
    let reference = format!("{}/app:{tag}", reg.addr);
    skopeo_push(&layout, tag, &reference, false);
    reference
}

/// A small clean image.
fn seed_clean(reg: &TestRegistry, dir: &Path) -> String {
    seed(
        reg,
        dir,
        "clean",
        &[
            ("usr/bin/tool", 0o755, 0, 3000),
            ("etc/conf", 0o644, 0, 100),
        ],
    )
}

/// `nydusify convert --source src --target <src>-nydus` with extra arguments and environment;
/// its output and peak RSS (KiB).
fn convert(src: &str, work: &Path, extra: &[&str], env: &[(&str, String)]) -> (Output, u64) {
    let target = format!("{src}-nydus");
    let mut c = Command::new(bin("nydusify"));
    c.args([
        "convert",
        "--source",
        src,
        "--target",
        &target,
        "--plain-http",
        "--work-dir",
        &s(work),
    ])
    .args(extra)
    .env_remove("NYDUS_HOOK_PLUGIN_PATH");
    for (k, v) in env {
        c.env(k, v);
    }
    run_measured(&mut c)
}

/// The tag a conversion of `src` pushes.
fn nydus_tag(src: &str) -> String {
    format!("{}-nydus", src.rsplit(':').next().unwrap())
}

/// Lines a plugin printed, relayed into nydusify's log (`plugin <name> (<stream>): <line>`).
fn relayed(o: &Output, name: &str, stream: &str) -> Vec<String> {
    let prefix = format!("plugin {name} ({stream}): ");
    stderr(o)
        .lines()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest.to_string()))
        .collect()
}

/// Checks that the command failed because the policy plugin found `/usr/bin/su` setuid root
/// before the push; returns its log.
#[track_caller]
fn rejected_setuid_root(o: &Output) -> String {
    assert!(!o.status.success());
    let e = stderr(o);
    assert!(
        e.contains("before_push_manifest: hook plugin policy rejected (exit code 1)"),
        "{e}"
    );
    assert!(e.contains("/usr/bin/su is setuid root"), "{e}");
    e
}

#[test]
fn plugins_see_the_event_and_the_after_hook_runs_after_the_push() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    seed_golden(&reg, t.path());
    let src = format!("{}/src/golden:t", reg.addr);
    let book = example_plugin("bookkeeping");
    let echo = wat_plugin(t.path(), "accept");
    // Two plugins through upstream's variable, `:`-separated, run in that order.
    let (o, _) = convert(
        &src,
        &t.path().join("work"),
        &[],
        &[(
            "NYDUS_HOOK_PLUGIN_PATH",
            format!("{}:{}", s(&echo), s(&book)),
        )],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let dst = format!("{}/src/golden:t-nydus", reg.addr);
    let manifest = skopeo_raw(&dst);
    let layers = manifest["layers"].as_array().unwrap();
    let blobs: Vec<(String, u64)> = layers[..layers.len() - 1]
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(blobs.len(), 3);

    // The echo module printed the events it read on stdin: both hooks, with everything.
    let events: Vec<Value> = relayed(&o, "accept", "stdout")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.len(), 2, "{}", stderr(&o));
    assert_eq!(events[0]["hook"], "before_push_manifest");
    assert_eq!(events[1]["hook"], "after_push_manifest");
    for e in &events {
        assert_eq!(e["source_ref"], src.as_str());
        assert_eq!(e["target_ref"], dst.as_str());
        assert_eq!(e["platform"], "linux/amd64");
        assert_eq!(e["bootstrap_path"], "/image/image.boot");
        assert_eq!(e["manifest"], manifest, "the manifest pushed");
        assert_eq!(e["config"]["rootfs"]["type"], "layers");
        let told: Vec<(String, u64)> = e["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    format!("sha256:{}", b["id"].as_str().unwrap()),
                    b["size"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(told, blobs);
    }

    // The bookkeeping plugin's lines: every blob before the push, again after it; the tag
    // push is logged between them.
    let lines = relayed(&o, "bookkeeping", "stdout");
    assert_eq!(lines.len(), 6, "{}", stderr(&o));
    let log = stderr(&o);
    let pushed_at = log
        .find(&format!("pushed {dst}"))
        .expect("the push is logged");
    for (i, l) in lines.iter().enumerate() {
        let hook = if i < 3 {
            "before_push_manifest"
        } else {
            "after_push_manifest"
        };
        let (digest, size) = &blobs[i % 3];
        assert!(
            l.starts_with(&format!("{hook} {dst} sha256:"))
                && l.ends_with(&format!(" {digest} {size}")),
            "{l}"
        );
        let at = log.find(l.as_str()).unwrap();
        assert_eq!(
            at < pushed_at,
            i < 3,
            "{hook} line at {at}, push at {pushed_at}"
        );
    }

    // The compiled modules are cached in the work directory for the next run.
    let cached = std::fs::read_dir(t.path().join("work/hook-plugins"))
        .unwrap()
        .count();
    assert_eq!(cached, 2);
}

#[test]
fn the_policy_plugin_rejects_setuid_root_and_big_files_and_accepts_a_clean_image() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let dir = t.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let policy = dir.join("policy.wasm");
    std::fs::copy(example_plugin("policy"), &policy).unwrap();
    std::fs::write(dir.join("policy.json"), br#"{"max_file_size": 1000000}"#).unwrap();
    let flag = ["--hook-plugin", policy.to_str().unwrap()];

    let clean = seed_clean(&reg, t.path());
    let (o, _) = convert(&clean, &work, &flag, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(has_tag(&reg.addr, "app", "clean-nydus"));
    let said = relayed(&o, "policy", "stdout");
    assert!(
        said.iter()
            .any(|l| l.contains("2 files, none breaks the policy")),
        "{said:?}"
    );

    let suid = seed(
        &reg,
        t.path(),
        "suid",
        &[
            ("usr/bin/su", 0o4755, 0, 2000),
            ("usr/bin/mine", 0o4755, 1000, 2000),
        ],
    );
    let (o, _) = convert(&suid, &work, &flag, &[]);
    let e = rejected_setuid_root(&o);
    // Setuid to another user is not setuid root.
    assert!(!e.contains("/usr/bin/mine is setuid"), "{e}");
    assert!(!has_tag(&reg.addr, "app", "suid-nydus"));

    let big = seed(
        &reg,
        t.path(),
        "big",
        &[("data/blob.bin", 0o644, 0, 1_500_000)],
    );
    let (o, _) = convert(&big, &work, &flag, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/data/blob.bin is 1500000 bytes, over the limit of 1000000"),
        "{}",
        stderr(&o)
    );
    assert!(!has_tag(&reg.addr, "app", "big-nydus"));
}

/// Converts the clean image with the hand-written module `name` and `extra` flags, expecting
/// a rejection: no tag, the reason in the error; returns the output and peak RSS (KiB).
fn rejected_by(name: &str, extra: &[&str], reason: &str) -> (Output, u64, Duration) {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let src = seed_clean(&reg, t.path());
    let m = wat_plugin(t.path(), name);
    let mut args = vec!["--hook-plugin", m.to_str().unwrap()];
    args.extend_from_slice(extra);
    let t0 = Instant::now();
    let (o, rss) = convert(&src, &t.path().join("work"), &args, &[]);
    let took = t0.elapsed();
    assert!(!o.status.success(), "{name} was accepted: {}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("hook plugin {name} rejected ({reason}")),
        "{name}: {e}"
    );
    assert!(
        !has_tag(&reg.addr, "app", &nydus_tag(&src)),
        "{name} left a tag"
    );
    (o, rss, took)
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline() {
    let (_, _, took) = rejected_by(
        "endless_loop",
        &["--hook-timeout", "1s"],
        "stopped at its deadline of 1s",
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn an_endless_loop_is_stopped_by_its_fuel() {
    rejected_by(
        "endless_loop",
        &["--hook-fuel", "5000000", "--hook-timeout", "60s"],
        "stopped when its fuel of 5000000 ran out",
    );
}

#[test]
fn a_module_growing_memory_without_end_is_stopped_and_nydusify_stays_bounded() {
    // The same conversion with a harmless plugin gives the baseline.
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let src = seed_clean(&reg, t.path());
    let echo = wat_plugin(t.path(), "accept");
    let (o, base) = convert(
        &src,
        &t.path().join("work"),
        &["--hook-plugin", echo.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, rss, _) = rejected_by(
        "memory_hog",
        &["--hook-memory", "64MiB"],
        "stopped at its memory limit of 64 MiB",
    );
    eprintln!("peak RSS: {base} KiB with an accepting plugin, {rss} KiB with the memory hog");
    assert!(
        rss < base + (64 + 48) * 1024,
        "nydusify peaked at {rss} KiB (baseline {base} KiB, plugin limit 64 MiB)"
    );
}

#[test]
fn paths_out_of_the_preopen_and_other_descriptors_are_refused() {
    // The module exits 4 if it cannot read image.boot from its preopen, 0 if any escape
    // opened, 3 when all were refused.
    let (o, _, _) = rejected_by("escape", &[], "exit code 3");
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));
}

#[test]
fn a_module_flooding_stderr_is_cut_at_the_limit() {
    let (o, _, _) = rejected_by(
        "stderr_flood",
        &["--hook-output", "100KB"],
        "output cut at its limit of 100000 bytes",
    );
    // 8 MiB were written; what reaches our log is at most the limit (and its line prefix).
    assert!(o.stderr.len() < 300_000, "{} bytes of log", o.stderr.len());
}

#[test]
fn modules_that_are_not_commands_fail_before_any_work_naming_the_file() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let src = seed_clean(&reg, t.path());
    let text = t.path().join("plugin.wasm");
    std::fs::write(&text, b"#!/bin/sh\nexit 0\n").unwrap();
    let no_start = wat_plugin(t.path(), "no_start");
    let cases: [(PathBuf, &str); 3] = [
        (text, "not a WebAssembly module"),
        (no_start, "not a WASI command module"),
        (t.path().join("missing.wasm"), "cannot be read"),
    ];
    for (m, problem) in cases {
        let (o, _) = convert(
            &src,
            &t.path().join("work"),
            &["--hook-plugin", m.to_str().unwrap()],
            &[],
        );
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(
            e.contains(&format!("hook plugin {}: {problem}", s(&m))),
            "{e}"
        );
        // Before any work: no layer was converted.
        assert!(!e.contains("layer 1/"), "{e}");
        assert!(!has_tag(&reg.addr, "app", "clean-nydus"));
    }
}

#[test]
fn copy_runs_the_hooks_of_nydus_manifests() {
    let reg = TestRegistry::start(None);
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let suid = seed(&reg, t.path(), "suid", &[("usr/bin/su", 0o4755, 0, 2000)]);
    let (o, _) = convert(&suid, &work, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let nydus = format!("{suid}-nydus");
    let copy = |target: &str, plugin: &Path| {
        let mut c = Command::new(bin("nydusify"));
        c.args([
            "copy",
            "--source",
            &nydus,
            "--target",
            target,
            "--plain-http",
            "--work-dir",
            &s(&work),
            "--hook-plugin",
            &s(plugin),
        ]);
        run(&mut c)
    };
    // The policy plugin reads the copied image's bootstrap and rejects it: nothing tagged.
    let policy = example_plugin("policy");
    let target = format!("{}/copied:suid", reg.addr);
    let o = copy(&target, &policy);
    rejected_setuid_root(&o);
    assert!(!has_tag(&reg.addr, "copied", "suid"));
    // The bookkeeping plugin is told of the blob before and after the push.
    let o = copy(&target, &example_plugin("bookkeeping"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(has_tag(&reg.addr, "copied", "suid"));
    let lines = relayed(&o, "bookkeeping", "stdout");
    let manifest = skopeo_raw(&target);
    let blob = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(lines.len(), 2, "{}", stderr(&o));
    assert!(
        lines[0].starts_with(&format!("before_push_manifest {target} sha256:")),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("after_push_manifest {target} sha256:")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l.contains(blob)), "{lines:?}");
    // optimize runs them too: the policy rejects the optimized image (nothing tagged); the
    // bookkeeping plugin sees the source blob and the new prefetch blob.
    let list = t.path().join("prefetch.txt");
    std::fs::write(&list, "/usr/bin/su\n").unwrap();
    let optimize = |target: &str, plugin: &Path| {
        let mut c = Command::new(bin("nydusify"));
        c.args([
            "optimize",
            "--source",
            &nydus,
            "--target",
            target,
            "--plain-http",
            "--prefetch-files",
            &s(&list),
            "--work-dir",
            &s(&work),
            "--hook-plugin",
            &s(plugin),
        ]);
        run(&mut c)
    };
    let opt = format!("{}/optimized:suid", reg.addr);
    rejected_setuid_root(&optimize(&opt, &policy));
    assert!(!has_tag(&reg.addr, "optimized", "suid"));
    let o = optimize(&opt, &example_plugin("bookkeeping"));
    assert!(o.status.success(), "{}", stderr(&o));
    let m = skopeo_raw(&opt);
    let lines = relayed(&o, "bookkeeping", "stdout");
    // One line per blob and hook: the source blob and the prefetch blob, before and after.
    assert_eq!(lines.len(), 4, "{}", stderr(&o));
    for k in 0..2 {
        let d = m["layers"][k]["digest"].as_str().unwrap();
        for hook in ["before_push_manifest", "after_push_manifest"] {
            assert!(
                lines.iter().any(|l| l.starts_with(hook) && l.contains(d)),
                "{lines:?}: no {hook} line for blob {k}"
            );
        }
    }
    // An OCI image gets no hook: its manifest is not a Nydus image.
    let mut c = Command::new(bin("nydusify"));
    c.args([
        "copy",
        "--source",
        &suid,
        "--target",
        &format!("{}/copied:oci", reg.addr),
        "--plain-http",
        "--work-dir",
        &s(&work),
        "--hook-plugin",
        &s(&policy),
    ]);
    let o = run(&mut c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a Nydus manifest: no hook runs for it"),
        "{}",
        stderr(&o)
    );
}
