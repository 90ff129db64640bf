//! The hook plugins of the tests: the example plugins of `examples/plugins/` built for
//! `wasm32-wasip1` (once per test binary, into a target directory of their own beside the
//! test build's), and the hand-written modules of `host-native/plugin/tests/wat/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::run;

/// The target directory the tests were built in (`<target>/<profile>/deps/<exe>`).
fn target_root() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf()
}

/// The example plugin `name` (`policy`, `bookkeeping`), built for wasm32-wasip1. Needs the
/// rustup target `wasm32-wasip1` and Debian's `wasi-libc` (the C of zstd inside the core
/// compiles against it); `scripts/install-deps.sh` installs both.
pub fn example_plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let wasi_include = Path::new("/usr/include/wasm32-wasi");
        assert!(
            wasi_include.is_dir(),
            "{} is missing: install Debian's wasi-libc (scripts/install-deps.sh does)",
            wasi_include.display()
        );
        let installed = run(Command::new("rustup").args(["target", "list", "--installed"]));
        assert!(
            String::from_utf8_lossy(&installed.stdout)
                .lines()
                .any(|l| l == "wasm32-wasip1"),
            "the rustup target wasm32-wasip1 is missing: `rustup target add wasm32-wasip1` (scripts/install-deps.sh does)"
        );
        let target = target_root().join("wasm-plugins");
        // clang finds the WASI headers through a sysroot whose include/ is Debian's.
        let sysroot = target.join("wasi-sysroot");
        std::fs::create_dir_all(&sysroot).unwrap();
        let link = sysroot.join("include");
        if !link.exists() {
            std::os::unix::fs::symlink(wasi_include, &link).unwrap();
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let o = run(Command::new(cargo)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "wasm32-wasip1",
                "-p",
                "nydus-plugin-policy",
                "-p",
                "nydus-plugin-bookkeeping",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .env(
                "CFLAGS_wasm32_wasip1",
                format!("--sysroot={}", sysroot.display()),
            ));
        assert!(
            o.status.success(),
            "building the example plugins for wasm32-wasip1 failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        target.join("wasm32-wasip1/release")
    });
    let p = dir.join(format!("{name}.wasm"));
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// The hand-written module `host-native/plugin/tests/wat/<name>.wat`, assembled into
/// `<dir>/<name>.wasm`.
pub fn wat_plugin(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../host-native/plugin/tests/wat")
        .join(format!("{name}.wat"));
    let wasm = wat::parse_file(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let out = dir.join(format!("{name}.wasm"));
    std::fs::write(&out, wasm).unwrap();
    out
}

/// Runs `cmd` to the end and returns its output with its peak resident memory in KiB
/// (`wait4`'s `ru_maxrss` of that child alone).
#[allow(unsafe_code)]
pub fn run_measured(cmd: &mut Command) -> (std::process::Output, u64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).unwrap();
        v
    });
    let mut stderr = Vec::new();
    err.read_to_end(&mut stderr).unwrap();
    let stdout = reader.join().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, once; `child` is not waited on after this.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as libc::pid_t, "wait4");
    // Reaped above: dropping the handle neither waits nor kills.
    drop(child);
    (
        std::process::Output {
            status: std::process::ExitStatus::from_raw(status),
            stdout,
            stderr,
        },
        usage.ru_maxrss as u64,
    )
}
