//! The sandbox against hostile and probe modules (the modules in `tests/wat/`), without a
//! registry: each is loaded and run for an event, and how it ended is checked.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nydus_host_plugin::{
    Hook, HookBlob, HookEvent, Hooks, Limits, LoadError, LoadProblem, Reason, Rejection,
};

fn wat_module(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/wat")
        .join(format!("{name}.wat"));
    let wasm = wat::parse_file(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let out = dir.join(format!("{name}.wasm"));
    std::fs::write(&out, wasm).unwrap();
    out
}

fn event() -> HookEvent {
    HookEvent {
        hook: Hook::BeforePushManifest,
        source_ref: "127.0.0.1:1/src:1".into(),
        target_ref: "127.0.0.1:1/dst:1".into(),
        platform: Some("linux/amd64".into()),
        blobs: vec![HookBlob {
            id: "ab".repeat(32),
            size: 7,
        }],
        manifest: serde_json::json!({"schemaVersion": 2}),
        config: serde_json::json!({}),
        manifest_digest: format!("sha256:{}", "cd".repeat(32)),
        bootstrap_path: String::new(),
        plugin_config: serde_json::Value::Null,
    }
}

struct Sandbox {
    dir: tempfile::TempDir,
    boot: PathBuf,
}

fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let boot = work.join("merged.boot");
    std::fs::write(&boot, b"bootstrap bytes").unwrap();
    // Something the plugin must not reach, next to its preopen.
    std::fs::write(work.join("secret"), b"credentials").unwrap();
    Sandbox { dir, boot }
}

fn run(name: &str, limits: Limits) -> Result<(), Rejection> {
    let s = sandbox();
    let m = wat_module(s.dir.path(), name);
    let hooks = Hooks::load(&[m], limits, None).unwrap();
    let r = hooks.run(&event(), &s.boot);
    // Nothing of the sandbox is left beside the bootstrap.
    let left: Vec<_> = std::fs::read_dir(s.boot.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "left behind: {left:?}");
    r
}

#[test]
fn an_accepting_module_reads_the_event_on_stdin() {
    // `accept` echoes stdin to stdout; a full pipe would reject it, so the event went through.
    run("accept", Limits::default()).unwrap();
    let small = Limits {
        output: 64,
        ..Limits::default()
    };
    let r = run("accept", small).unwrap_err();
    assert_eq!(r.reason, Reason::Output(64));
    // Exactly the limit is within it: `accept` echoes the event it is given, whose size is
    // known (the host fills in the sandbox's bootstrap path).
    let told = HookEvent {
        bootstrap_path: "/image/image.boot".into(),
        ..event()
    }
    .to_json()
    .len();
    let exact = Limits {
        output: told,
        ..Limits::default()
    };
    run("accept", exact).unwrap();
    let one_less = Limits {
        output: told - 1,
        ..Limits::default()
    };
    assert_eq!(
        run("accept", one_less).unwrap_err().reason,
        Reason::Output(one_less.output)
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline() {
    let t = Instant::now();
    let r = run(
        "endless_loop",
        Limits {
            deadline: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(r.reason, Reason::Deadline(Duration::from_millis(300)));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(r.to_string().contains("deadline"), "{r}");
}

#[test]
fn an_endless_loop_is_stopped_by_its_fuel() {
    let r = run(
        "endless_loop",
        Limits {
            fuel: 1_000_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(r.reason, Reason::Fuel(1_000_000));
}

#[test]
fn a_memory_hog_is_stopped_by_the_limit() {
    let r = run(
        "memory_hog",
        Limits {
            memory: 32 << 20,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(r.reason, Reason::Memory(32 << 20));
    assert!(r.to_string().contains("memory limit of 32 MiB"), "{r}");
}

#[test]
fn paths_out_of_the_preopen_and_other_descriptors_are_refused() {
    let r = run("escape", Limits::default()).unwrap_err();
    // 3: every escape refused, after image.boot opened from the preopen (4 otherwise).
    assert_eq!(r.reason, Reason::Exit(3), "{r}");
    assert!(r.stderr.contains("refused"), "{r}");
}

#[test]
fn a_stderr_flood_is_cut_at_the_limit() {
    let r = run(
        "stderr_flood",
        Limits {
            output: 100_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(r.reason, Reason::Output(100_000));
    assert_eq!(r.stderr.len(), 100_000);
}

fn load_error(path: &Path) -> LoadError {
    Hooks::load(&[path.to_path_buf()], Limits::default(), None).unwrap_err()
}

#[test]
fn modules_that_cannot_run_fail_to_load_naming_the_file() {
    let s = sandbox();
    let text = s.dir.path().join("policy.wasm");
    std::fs::write(&text, b"#!/bin/sh\nexit 0\n").unwrap();
    let e = load_error(&text);
    assert!(matches!(e.problem, LoadProblem::NotWasm), "{e}");
    assert!(e.to_string().contains(&*text.to_string_lossy()), "{e}");

    let e = load_error(&wat_module(s.dir.path(), "no_start"));
    assert!(matches!(e.problem, LoadProblem::NoStart), "{e}");
    assert!(e.to_string().contains("no_start.wasm"), "{e}");

    let e = load_error(&wat_module(s.dir.path(), "foreign_import"));
    assert!(matches!(e.problem, LoadProblem::Imports(_)), "{e}");
    assert!(e.to_string().contains("open_socket"), "{e}");

    let broken = s.dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x01\0\0\0\x01\xff").unwrap();
    let e = load_error(&broken);
    assert!(matches!(e.problem, LoadProblem::Invalid(_)), "{e}");

    let e = load_error(&s.dir.path().join("missing.wasm"));
    assert!(matches!(e.problem, LoadProblem::Read(_)), "{e}");

    let m = wat_module(s.dir.path(), "accept");
    std::fs::write(m.with_extension("json"), b"{not json").unwrap();
    let e = load_error(&m);
    assert!(matches!(e.problem, LoadProblem::Config { .. }), "{e}");
    assert!(e.to_string().contains("accept.json"), "{e}");
}

#[test]
fn compiled_modules_are_cached_and_reused() {
    let s = sandbox();
    let m = wat_module(s.dir.path(), "accept");
    let cache = s.dir.path().join("cache");
    let t = Instant::now();
    Hooks::load(std::slice::from_ref(&m), Limits::default(), Some(&cache)).unwrap();
    let first = t.elapsed();
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(files.len(), 1);
    let t = Instant::now();
    let hooks = Hooks::load(std::slice::from_ref(&m), Limits::default(), Some(&cache)).unwrap();
    let second = t.elapsed();
    hooks.run(&event(), &s.boot).unwrap();
    drop(hooks);
    eprintln!("load: first {first:?}, cached {second:?}");
    // A damaged cache file is compiled again, not trusted.
    let f = files[0].as_ref().unwrap().path();
    std::fs::write(&f, b"garbage").unwrap();
    let hooks = Hooks::load(std::slice::from_ref(&m), Limits::default(), Some(&cache)).unwrap();
    hooks.run(&event(), &s.boot).unwrap();
    assert_ne!(std::fs::read(&f).unwrap(), b"garbage");
}

#[test]
fn plugins_run_in_order_and_the_first_rejection_stops_the_rest() {
    let s = sandbox();
    let a = wat_module(s.dir.path(), "accept");
    let e = wat_module(s.dir.path(), "escape");
    let l = wat_module(s.dir.path(), "endless_loop");
    let hooks = Hooks::load(
        &[a, e, l],
        Limits {
            deadline: Duration::from_secs(30),
            ..Limits::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(hooks.names(), ["accept", "escape", "endless_loop"]);
    let t = Instant::now();
    let r = hooks.run(&event(), &s.boot).unwrap_err();
    assert_eq!(r.plugin, "escape");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_plugin_gets_no_environment_and_only_its_name_as_argument() {
    // The test process has an environment that could leak.
    assert!(std::env::vars().count() > 0);
    let r = run("environment", Limits::default()).unwrap_err();
    // 10 * variables + arguments: none of ours, one argument.
    assert_eq!(r.reason, Reason::Exit(1), "{r}");
}
