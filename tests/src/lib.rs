//! Helpers of the end-to-end tests in `tests/tests/`: locating the built binaries, creating a
//! source tree with every file type, listing a tree (or a mounted image) for comparison, and
//! mounting with the kernel through mount(2).

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod containerd;
pub mod overlay;
pub mod plugins;
pub mod served;
pub use overlay::*;
pub use plugins::*;
pub use served::*;

use nydus_core::digest::Sha256Stream;
use nydus_core::model::split_dev_t;

/// The built binary `name` (next to the test executable's `deps/` directory), or the path in
/// `$NYDUS_IMAGE` for `nydus-image`. Fails with instructions if it is missing.
pub fn bin(name: &str) -> PathBuf {
    if name == "nydus-image" {
        if let Some(p) = std::env::var_os("NYDUS_IMAGE") {
            return p.into();
        }
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --release --workspace` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Runs `nydus-image` with `args`; returns its output (never panics on a non-zero exit).
pub fn nydus_image(args: &[&str]) -> Output {
    Command::new(bin("nydus-image"))
        .args(args)
        .output()
        .expect("spawning nydus-image")
}

/// Runs `nydus-image` and fails the test unless it succeeds.
#[track_caller]
pub fn nydus_image_ok(args: &[&str]) -> Output {
    let o = nydus_image(args);
    assert!(
        o.status.success(),
        "nydus-image {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Fails unless `tool` is on PATH, naming the package that provides it.
#[track_caller]
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
        .unwrap_or(false);
    assert!(
        found,
        "prerequisite missing: `{tool}` (Debian package {package}); run scripts/install-deps.sh"
    );
}

/// Fails unless running as root (mount(2), mknod and chown need it).
#[track_caller]
pub fn require_root() {
    // SAFETY-free: geteuid has no preconditions; libc exposes it as a safe-to-call extern.
    assert_eq!(
        current_euid(),
        0,
        "prerequisite missing: these tests must run as root (mount, mknod, chown)"
    );
}

#[allow(unsafe_code)]
fn current_euid() -> u32 {
    // SAFETY: geteuid() takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// mknod(2).
#[allow(unsafe_code)]
pub fn mknod(path: &Path, mode: u32, major: u32, minor: u32) {
    let c = cstr(path);
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// lchown(2).
#[allow(unsafe_code)]
pub fn lchown(path: &Path, uid: u32, gid: u32) {
    let c = cstr(path);
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let r = unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    assert_eq!(
        r,
        0,
        "lchown {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Sets atime/mtime (seconds, nanoseconds) without following symlinks.
#[allow(unsafe_code)]
pub fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let c = cstr(path);
    let ts = [
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: `c` and `ts` are valid for the duration of the call.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        r,
        0,
        "utimensat {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A mount that is undone when dropped.
#[derive(Debug)]
pub struct Mounted(PathBuf);

impl Drop for Mounted {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let c = cstr(&self.0);
        // SAFETY: `c` is a valid NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// mount(2) of `source` on `target` with filesystem type `fstype` and `data` options,
/// read-only. Returns an error message (with the kernel's errno) on failure.
#[allow(unsafe_code)]
pub fn mount(source: &Path, target: &Path, fstype: &str, data: &str) -> Result<Mounted, String> {
    let (s, t) = (cstr(source), cstr(target));
    let f = CString::new(fstype).expect("fstype");
    let d = CString::new(data).expect("data");
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ptr(),
            libc::MS_RDONLY,
            d.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(format!(
            "mount -t {fstype} -o {data} {} {}: {}",
            source.display(),
            target.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(Mounted(target.to_path_buf()))
}

/// What [`make_tree`] puts in a tree.
#[derive(Debug, Clone, Copy)]
pub struct TreeSpec {
    /// Files in the big directory.
    pub big_dir_entries: usize,
    /// Include a unix socket (tar cannot carry one).
    pub socket: bool,
}

fn write(p: &Path, data: &[u8], mode: u32) {
    fs::write(p, data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Pseudo-random bytes (xorshift), incompressible enough for chunk tests.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Creates a tree under `root` (which must exist and be empty) with every file type the
/// format carries: empty, tiny, multi-chunk, duplicate and sparse regular files, a directory
/// with `big_dir_entries` entries, short and long symlinks, hard links, char and block devices,
/// a fifo, optionally a socket, xattrs (user, security.capability, trusted), owners, modes,
/// mtimes with nanoseconds, and long and non-UTF-8 names.
pub fn make_tree(root: &Path, spec: TreeSpec) {
    let d = |p: &str| root.join(p);
    fs::create_dir_all(d("etc/conf.d")).unwrap();
    fs::create_dir_all(d("usr/bin")).unwrap();
    fs::create_dir_all(d("big")).unwrap();
    write(&d("empty"), b"", 0o644);
    write(&d("tiny.txt"), b"hello\n", 0o640);
    write(&d("usr/bin/multi.bin"), &noise(2_500_000 + 123, 7), 0o755);
    write(&d("usr/bin/copy.bin"), &noise(2_500_000 + 123, 7), 0o755);
    let text: Vec<u8> = (0..300_000u32)
        .flat_map(|i| format!("line {i} of a compressible file\n").into_bytes())
        .collect();
    write(&d("etc/text.conf"), &text, 0o600);
    {
        let f = fs::File::create(d("sparse.img")).unwrap();
        f.set_len(5 * 1024 * 1024 + 17).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"in the middle", 3 * 1024 * 1024).unwrap();
    }
    for i in 0..spec.big_dir_entries {
        write(
            &d(&format!("big/entry-{i:06}")),
            if i % 1000 == 0 { b"x" } else { b"" },
            0o644,
        );
    }
    fs::hard_link(d("tiny.txt"), d("etc/hardlink-1")).unwrap();
    fs::hard_link(d("tiny.txt"), d("usr/hardlink-2")).unwrap();
    symlink("../tiny.txt", d("etc/link")).unwrap();
    symlink("x".repeat(4000), d("long-target-link")).unwrap();
    mknod(&d("null"), libc::S_IFCHR | 0o666, 1, 3);
    mknod(&d("disk"), libc::S_IFBLK | 0o660, 259, 65536 + 7);
    mknod(&d("pipe"), libc::S_IFIFO | 0o644, 0, 0);
    if spec.socket {
        let l = std::os::unix::net::UnixListener::bind(d("sock")).unwrap();
        drop(l);
    }
    let long = "n".repeat(255);
    write(&d(&long), b"long name", 0o644);
    let weird = std::ffi::OsStr::from_bytes(b"caf\xe9-latin1");
    write(&root.join(weird), b"non-utf8 name", 0o644);
    xattr::set(d("tiny.txt"), "user.greeting", b"hi there").unwrap();
    xattr::set(d("etc"), "trusted.overlay.note", b"y").unwrap();
    lchown(&d("usr/bin/multi.bin"), 1234, 5678);
    lchown(&d("etc/link"), 42, 43);
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    xattr::set(d("usr/bin/multi.bin"), "security.capability", &cap).unwrap();
    // Mtimes last (children before parents).
    let mut all = Vec::new();
    collect(root, &mut all);
    for (k, p) in all.iter().rev().enumerate() {
        set_mtime(p, 1_600_000_000 + k as i64, 123_456_789);
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            collect(&p, out);
        }
    }
}

/// Options of [`list_tree`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ListOptions {
    /// Leave sockets out (tar cannot carry them).
    pub skip_sockets: bool,
}

/// A listing of a directory tree: one line per entry (root excluded) with type, permissions,
/// owner, mtime seconds, size (files), nlink (files), content digest, symlink target, device
/// numbers and xattrs. Two trees are equal for our purposes iff their listings are.
pub fn list_tree(root: &Path, o: ListOptions) -> Vec<String> {
    let mut all = Vec::new();
    collect(root, &mut all);
    let mut out = Vec::new();
    for p in all {
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        if o.skip_sockets && ft.is_socket() {
            continue;
        }
        let rel = p.strip_prefix(root).unwrap();
        let (kind, detail) = if ft.is_file() {
            let mut h = Sha256Stream::new();
            let mut f = fs::File::open(&p).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            (
                "file",
                format!("size={} nlink={} sha256={}", m.len(), m.nlink(), h.finish()),
            )
        } else if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                format!("-> {}", fs::read_link(&p).unwrap().display()),
            )
        } else if ft.is_char_device() || ft.is_block_device() {
            let (ma, mi) = split_dev_t(m.rdev());
            (
                if ft.is_char_device() {
                    "chardev"
                } else {
                    "blockdev"
                },
                format!("{ma}:{mi}"),
            )
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("socket", String::new())
        };
        let mut xs: Vec<String> = xattr::list(&p)
            .map(|l| {
                l.map(|k| {
                    let v = xattr::get(&p, &k).ok().flatten().unwrap_or_default();
                    format!("{}={:?}", k.to_string_lossy(), v)
                })
                .collect()
            })
            .unwrap_or_default();
        xs.sort();
        let perm = if ft.is_symlink() {
            0o777
        } else {
            m.mode() & 0o7777
        };
        out.push(format!(
            "{} {kind} {perm:o} {}:{} mtime={} {detail} xattrs=[{}]",
            String::from_utf8_lossy(rel.as_os_str().as_bytes()),
            m.uid(),
            m.gid(),
            m.mtime(),
            xs.join(",")
        ));
    }
    out
}

/// Asserts two listings are equal, showing the first differences.
#[track_caller]
pub fn assert_same_tree(want: &[String], got: &[String]) {
    if want == got {
        return;
    }
    let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).take(10).collect();
    let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).take(10).collect();
    panic!("trees differ ({} vs {} entries)\nonly in source:\n{missing:#?}\nonly in result:\n{extra:#?}", want.len(), got.len());
}

/// Runs a command and returns its output; fails the test if it cannot be spawned.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

/// A `debootstrap --variant=minbase bookworm` rootfs, made once under `/var/tmp/nydus-bench`
/// (shared with `bench/create.sh`; `$NYDUS_ROOTFS` overrides). Creating it needs root and the
/// Debian mirror.
pub fn debootstrap_rootfs() -> PathBuf {
    if let Some(p) = std::env::var_os("NYDUS_ROOTFS") {
        return p.into();
    }
    let p = PathBuf::from("/var/tmp/nydus-bench/rootfs");
    if p.is_dir() {
        return p;
    }
    require_root();
    require_tool("debootstrap", "debootstrap");
    let tmp = PathBuf::from(format!(
        "/var/tmp/nydus-bench/rootfs.tmp{}",
        std::process::id()
    ));
    fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    let o = run(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&tmp)
        .arg("http://deb.debian.org/debian"));
    assert!(
        o.status.success(),
        "prerequisite missing: debootstrap of a minbase rootfs failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    fs::rename(&tmp, &p).unwrap();
    p
}

/// A Debian `docker-registry` (distribution) on 127.0.0.1, filesystem storage in a temp dir,
/// optionally with htpasswd (bcrypt) basic auth; killed when dropped.
#[derive(Debug)]
pub struct TestRegistry {
    pub addr: String,
    pub storage: PathBuf,
    child: std::process::Child,
    /// The token service of a bearer-auth registry.
    token_server: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        for c in std::iter::once(&mut self.child).chain(self.token_server.as_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl TestRegistry {
    /// Starts a registry over plain HTTP; with `user` set, `(user, password)` is the only
    /// account.
    pub fn start(user: Option<(&str, &str)>) -> TestRegistry {
        Self::start_with(user, false)
    }

    /// The CA certificate that signed a TLS registry's certificate.
    pub fn cert(&self) -> PathBuf {
        self._dir.path().join("ca.pem")
    }

    /// Starts a registry, over TLS with a self-signed certificate made here if `tls`.
    pub fn start_with(user: Option<(&str, &str)>, tls: bool) -> TestRegistry {
        Self::start_full(user, tls, None)
    }

    /// Starts a registry whose auth is the bearer-token flow: a token service (the
    /// `tests/token_server.py` child) issues JWTs to `user` only.
    pub fn start_token(user: (&str, &str)) -> TestRegistry {
        Self::start_full(Some(user), false, Some(300))
    }

    /// Like [`TestRegistry::start_token`], with tokens valid for `ttl` seconds (the registry
    /// allows 60 s of clock skew: -57 gives tokens refused 3 s after they are issued). The
    /// scopes of the tokens issued are listed in [`TestRegistry::token_log`].
    pub fn start_token_ttl(user: (&str, &str), ttl: i64) -> TestRegistry {
        Self::start_full(Some(user), false, Some(ttl))
    }

    /// One line per token the token service issued: its scope.
    pub fn token_log(&self) -> Vec<String> {
        fs::read_to_string(self._dir.path().join("tokens.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn start_full(user: Option<(&str, &str)>, tls: bool, token_ttl: Option<i64>) -> TestRegistry {
        require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        if tls {
            require_tool("openssl", "openssl");
            let p = |n: &str| dir.path().join(n);
            let ssl = |args: &[&str]| {
                let o = run(Command::new("openssl").current_dir(dir.path()).args(args));
                assert!(
                    o.status.success(),
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            };
            // A CA, and a leaf certificate for 127.0.0.1 signed by it.
            ssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=nydus-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ]);
            ssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ]);
            fs::write(
                p("ext.cnf"),
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .unwrap();
            ssl(&[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
                "-out",
                "cert.pem",
            ]);
            cfg += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                p("cert.pem").display(),
                p("key.pem").display()
            );
        }
        let mut token_server = None;
        if let (Some(ttl), Some((u, pw))) = (token_ttl, user) {
            require_tool("openssl", "openssl");
            require_tool("python3", "python3");
            let o = run(Command::new("openssl").current_dir(dir.path()).args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=nydus-test-token",
                "-keyout",
                "token.key",
                "-out",
                "token.pem",
            ]));
            assert!(
                o.status.success(),
                "openssl: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("token_server.py");
            let mut child = Command::new("python3")
                .arg(script)
                .arg(dir.path().join("token.key"))
                .arg(dir.path().join("token.pem"))
                .args(["nydus-test-issuer", "nydus-test-registry", u, pw])
                .env("TOKEN_TTL", ttl.to_string())
                .env("TOKEN_LOG", dir.path().join("tokens.log"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("starting the token service");
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                &mut line,
            )
            .unwrap();
            let tport: u16 = line
                .trim()
                .parse()
                .expect("the token service prints its port");
            cfg += &format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: nydus-test-registry\n    issuer: nydus-test-issuer\n    rootcertbundle: {}\n",
                dir.path().join("token.pem").display()
            );
            token_server = Some(child);
        } else if let Some((u, p)) = user {
            require_tool("htpasswd", "apache2-utils");
            let file = dir.path().join("htpasswd");
            let o = run(Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&file)
                .args([u, p]));
            assert!(
                o.status.success(),
                "htpasswd: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            cfg += &format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            );
        }
        let cfg_path = dir.path().join("config.yml");
        fs::write(&cfg_path, cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let r = TestRegistry {
            addr,
            storage,
            child,
            token_server,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&r.addr).is_ok() {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on {} within 10 s", r.addr);
    }

    /// The data file of a blob in the registry's storage.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// Writes the three small layer tars of `scripts/golden_layers.py` (`layer1.tar` …
/// `layer3.tar`: whiteouts, an opaque dir, a dir replaced by a file, hard links) into `dir`.
pub fn golden_layers(dir: &Path) {
    require_tool("python3", "python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/golden_layers.py");
    let o = run(Command::new("python3").arg(script).arg(dir));
    assert!(
        o.status.success(),
        "golden_layers.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The first blob id in a `nydus-image --output-json` file.
pub fn first_blob_id(json: &Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&fs::read(json).unwrap()).unwrap();
    v["blobs"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no blob id in {v}", json.display()))
        .to_string()
}

/// Runs our `nydusify`.
pub fn nydusify(args: &[&str]) -> Output {
    run(Command::new(bin("nydusify")).args(args))
}

/// Runs our `nydusify` and requires success.
pub fn nydusify_ok(args: &[&str]) -> Output {
    let o = nydusify(args);
    assert!(
        o.status.success(),
        "nydusify {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Builds an OCI image layout `layout` with image `tag` from layer tars (lowest first) with
/// umoci, for `arch`.
pub fn umoci_image(layout: &Path, tag: &str, tars: &[PathBuf], arch: &str) {
    require_tool("umoci", "umoci");
    let image = format!("{}:{tag}", layout.display());
    let ok = |args: &[&str]| {
        let o = run(Command::new("umoci").args(args));
        assert!(
            o.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    if !layout.join("index.json").exists() {
        ok(&["init", "--layout", &layout.display().to_string()]);
    }
    ok(&["new", "--image", &image]);
    ok(&[
        "config",
        "--image",
        &image,
        "--architecture",
        arch,
        "--os",
        "linux",
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "PATH=/usr/bin:/bin",
    ]);
    for t in tars {
        ok(&[
            "raw",
            "add-layer",
            "--image",
            &image,
            &t.display().to_string(),
        ]);
    }
}

/// The golden layers (`golden_layers`, written into `t`) as the image `src/golden:t` (gzip
/// layers, built by umoci in `t/layout`) in `reg`; the layout and the layer tars.
pub fn seed_golden(reg: &TestRegistry, t: &Path) -> (PathBuf, Vec<PathBuf>) {
    golden_layers(t);
    let tars: Vec<PathBuf> = (1..=3).map(|i| t.join(format!("layer{i}.tar"))).collect();
    let layout = t.join("layout");
    umoci_image(&layout, "t", &tars, "amd64");
    skopeo_push(&layout, "t", &format!("{}/src/golden:t", reg.addr), false);
    (layout, tars)
}

/// Pushes `oci:<layout>:<tag>` to `docker://<reference>` (plain HTTP) with skopeo; `zstd`
/// recompresses the layers with zstd on the way (through a second layout, so that no blob is
/// reused as gzip).
pub fn skopeo_push(layout: &Path, tag: &str, reference: &str, zstd: bool) {
    require_tool("skopeo", "skopeo");
    let mut src = format!("oci:{}:{tag}", layout.display());
    let zdir = layout.with_extension("zstd");
    if zstd {
        let o = run(Command::new("skopeo").args([
            "copy",
            "--dest-compress-format",
            "zstd",
            &src,
            &format!("oci:{}:{tag}", zdir.display()),
        ]));
        assert!(
            o.status.success(),
            "skopeo zstd copy: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        src = format!("oci:{}:{tag}", zdir.display());
    }
    let o = run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{reference}"),
    ]));
    assert!(
        o.status.success(),
        "skopeo copy to {reference}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `skopeo inspect --raw` of an image in a plain-HTTP registry: skopeo must parse it.
pub fn skopeo_raw(reference: &str) -> serde_json::Value {
    let o = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{reference}"),
    ]));
    assert!(
        o.status.success(),
        "skopeo inspect --raw {reference}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("skopeo printed JSON")
}

/// The port of a listener the kernel picks on 127.0.0.1 (closed again).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{what} did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An S3 server, `s3s-fs` (which verifies SigV4), on 127.0.0.1 with the bucket `nydus`, its
/// storage in a temp dir; killed when dropped. Fails naming the install command if `s3s-fs`
/// is missing.
#[derive(Debug)]
pub struct S3Server {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _child: KillOnDrop,
}

/// The access key pair of the test object stores.
pub const TEST_AK: &str = "nydus-test-ak";
pub const TEST_SK: &str = "nydus-test-secret-0123456789";

impl S3Server {
    pub fn start() -> S3Server {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        if let Some(h) = std::env::var_os("CARGO_HOME") {
            dirs.push(PathBuf::from(h).join("bin"));
        }
        if let Some(h) = std::env::var_os("HOME") {
            dirs.push(PathBuf::from(h).join(".cargo/bin"));
        }
        let bin = dirs
            .into_iter()
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file())
            .expect(
                "prerequisite missing: `s3s-fs` (cargo install s3s-fs --version 0.14.1 --features binary); \
                 run scripts/install-deps.sh",
            );
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("nydus")).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", TEST_AK, "--secret-key", TEST_SK])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting s3s-fs");
        let child = KillOnDrop(child);
        wait_for_port(port, "s3s-fs");
        S3Server {
            port,
            dir,
            _child: child,
        }
    }

    /// The file holding object `key` of the bucket.
    pub fn object(&self, key: &str) -> PathBuf {
        self.dir.path().join("nydus").join(key)
    }

    /// Multipart uploads not completed nor aborted (s3s-fs keeps a `.upload-<id>.json` each).
    pub fn open_uploads(&self) -> Vec<String> {
        fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload-") && n.ends_with(".json"))
            .collect()
    }
}

/// The OSS test server (`tests/oss_server.py`, which checks V1 and V4 signatures as Alibaba
/// documents them) on 127.0.0.1; killed when dropped.
#[derive(Debug)]
pub struct OssServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _child: KillOnDrop,
}

impl OssServer {
    /// With `region` for V4 and parts of at least `min_part` bytes (but the last).
    pub fn start(region: &str, min_part: u64) -> OssServer {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("oss_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--dir", dir.path().to_str().unwrap()])
            .args([
                "--access-key",
                TEST_AK,
                "--secret-key",
                TEST_SK,
                "--port",
                "0",
            ])
            .args(["--region", region, "--min-part-size", &min_part.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prerequisite missing: python3 (runs tests/oss_server.py)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("oss_server.py prints its port");
        OssServer {
            port,
            dir,
            _child: KillOnDrop(child),
        }
    }

    /// The file holding object `key` of bucket `nydus`.
    pub fn object(&self, key: &str) -> PathBuf {
        let quoted: String = key
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        self.dir.path().join("nydus").join(quoted)
    }

    /// Multipart uploads in progress.
    pub fn open_uploads(&self) -> Vec<String> {
        match fs::read_dir(self.dir.path().join(".oss-uploads")) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// `tests/object_proxy.py` in front of 127.0.0.1:`port`, injecting the faults `rules`
/// (`METHOD:SUBSTRING:WHICH:ACTION`); its port and the child.
pub fn object_proxy(port: u16, rules: &[&str]) -> (u16, KillOnDrop) {
    use std::io::BufRead;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("object_proxy.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(format!("127.0.0.1:{port}"))
        .args(rules)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prerequisite missing: python3 (runs tests/object_proxy.py)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (
        line.trim()
            .parse()
            .expect("object_proxy.py prints its port"),
        KillOnDrop(child),
    )
}

/// Whether `repo:tag` exists in a plain-HTTP registry.
pub fn has_tag(addr: &str, repo: &str, tag: &str) -> bool {
    let reg = nydus_host_native::registry::Registry::new(
        addr,
        nydus_host_native::registry::RegistryOptions {
            plain_http: true,
            ..Default::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    match rt.block_on(reg.get_manifest(repo, tag)) {
        Ok(_) => true,
        Err(e) if e.kind() == nydus_host_native::registry::ErrorKind::NotFound => false,
        Err(e) => panic!("reading {addr}/{repo}:{tag}: {e}"),
    }
}

/// Unpacks an image through `nydus-image unpack` (blobs from the directory `blob_dir`) and GNU
/// tar, below `work`, and lists it.
pub fn unpack_view(boot: &Path, blob_dir: &Path, work: &Path) -> Vec<String> {
    let tar = work.join("unpacked.tar");
    let shown = |p: &Path| p.to_str().unwrap().to_string();
    nydus_image_ok(&[
        "unpack",
        "-B",
        &shown(boot),
        "-D",
        &shown(blob_dir),
        "--output",
        &shown(&tar),
    ]);
    let x = work.join("x");
    let _ = fs::remove_dir_all(&x);
    fs::create_dir_all(&x).unwrap();
    let o = run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tar)
        .arg("-C")
        .arg(&x));
    assert!(
        o.status.success(),
        "tar -x of the unpacked image: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let l = list_tree(&x, ListOptions::default());
    fs::remove_dir_all(&x).unwrap();
    fs::remove_file(&tar).unwrap();
    l
}
