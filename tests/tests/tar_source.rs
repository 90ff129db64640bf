//! `create -t tar-rafs | targz-rafs` reads OCI layer streams (plain, gzip, zstd, stdin) in one
//! pass: the image equals the tree the tar was made from, odd but valid tars work, and
//! malicious ones fail with the entry named and nothing written.

use std::path::Path;
use std::process::{Command, Stdio};

use nydus_tests::*;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn unpack_and_list(boot: &Path, blob: &Path, dir: &Path) -> Vec<String> {
    let tar = dir.join("unpacked.tar");
    nydus_image_ok(&[
        "unpack",
        "-B",
        &s(boot),
        "-b",
        &s(blob),
        "--output",
        &s(&tar),
    ]);
    let x = dir.join("x");
    std::fs::create_dir_all(&x).unwrap();
    let o = run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tar)
        .arg("-C")
        .arg(&x));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let l = list_tree(&x, ListOptions { skip_sockets: true });
    std::fs::remove_dir_all(&x).unwrap();
    l
}

#[test]
fn layer_streams_round_trip_in_every_compression() {
    require_root();
    require_tool("tar", "tar");
    require_tool("zstd", "zstd");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    make_tree(
        &src,
        TreeSpec {
            big_dir_entries: 2000,
            socket: false,
        },
    );
    let layer = t.path().join("layer.tar");
    let o = run(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--format=pax",
            "--numeric-owner",
            "-C",
        ])
        .arg(&src)
        .arg("-cf")
        .arg(&layer)
        .arg("."));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(run(Command::new("gzip").arg("-k").arg(&layer))
        .status
        .success());
    assert!(run(Command::new("zstd").arg("-q").arg("-k").arg(&layer))
        .status
        .success());
    let want = list_tree(&src, ListOptions { skip_sockets: true });
    for (ty, input) in [
        ("tar-rafs", "layer.tar"),
        ("targz-rafs", "layer.tar.gz"),
        ("tar-rafs", "layer.tar.zst"),
    ] {
        let (boot, blob) = (t.path().join("boot"), t.path().join("blob"));
        nydus_image_ok(&[
            "create",
            "-t",
            ty,
            "-B",
            &s(&boot),
            "-b",
            &s(&blob),
            &s(&t.path().join(input)),
        ]);
        nydus_image_ok(&["check", "-B", &s(&boot), "-b", &s(&blob)]);
        assert_same_tree(&want, &unpack_and_list(&boot, &blob, t.path()));
    }
    // stdin, nydusify's per-layer form (inline bootstrap + ToC): same tree.
    let blob = t.path().join("inline.blob");
    let mut child = Command::new(bin("nydus-image"))
        .args([
            "create",
            "-t",
            "tar-rafs",
            "--blob-inline-meta",
            "--features",
            "blob-toc",
            "--whiteout-spec",
            "none",
            "--blob",
            &s(&blob),
            "-",
        ])
        .stdin(Stdio::from(
            std::fs::File::open(t.path().join("layer.tar.gz")).unwrap(),
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "stdin build failed");
    nydus_image_ok(&["check", "-B", &s(&blob)]);
    assert_same_tree(&want, &unpack_and_list(&blob, &blob, t.path()));
}

/// Writes a tar with Python's tarfile (a second, independent tar writer).
fn python_tar(out: &Path, script: &str) {
    require_tool("python3", "python3");
    let code = format!("import tarfile, io\nt = tarfile.open({:?}, 'w', format=tarfile.PAX_FORMAT)\n{script}\nt.close()\n", s(out));
    let o = run(Command::new("python3").arg("-c").arg(&code));
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const ADD: &str = "def add(name, data=b'', **kw):\n    i = tarfile.TarInfo(name)\n    for k, v in kw.items(): setattr(i, k, v)\n    i.size = len(data) if i.type == tarfile.REGTYPE else 0\n    t.addfile(i, io.BytesIO(data) if i.type == tarfile.REGTYPE else None)\n";

#[test]
fn odd_but_valid_tars_build() {
    let t = tempfile::tempdir().unwrap();
    let layer = t.path().join("odd.tar");
    python_tar(
        &layer,
        &format!(
            "{ADD}t.pax_headers = {{'comment': 'a global header'}}\n\
             add('./', type=tarfile.DIRTYPE, mode=0o755, mtime=1700000000)\n\
             add('./f', b'data', mode=0o644, pax_headers={{'SCHILY.xattr.security.capability': '\\x01\\x00\\x00\\x02', 'SCHILY.xattr.security.selinux': 'system_u:object_r:bin_t:s0', 'SCHILY.xattr.user.k': 'v'}})\n\
             add('./s', type=tarfile.SYMTYPE, linkname='f')\n\
             add('./hs', type=tarfile.LNKTYPE, linkname='./s')\n\
             add('./hf', type=tarfile.LNKTYPE, linkname='f')\n\
             add('./' + 'd' * 200 + '/' + 'n' * 200, b'long')\n\
             add('./dev', type=tarfile.CHRTYPE, devmajor=1, devminor=3)\n\
             add('./p', type=tarfile.FIFOTYPE)\n\
             add('./implicit/parent/file', b'x')\n"
        ),
    );
    let (boot, blob) = (t.path().join("boot"), t.path().join("blob"));
    nydus_image_ok(&[
        "create",
        "-t",
        "tar-rafs",
        "-B",
        &s(&boot),
        "-b",
        &s(&blob),
        &s(&layer),
    ]);
    nydus_image_ok(&["check", "-B", &s(&boot), "-b", &s(&blob)]);
    let stat = |p: &str| -> serde_json::Value {
        let o = nydus_image_ok(&[
            "inspect",
            "-B",
            &s(&boot),
            "--request",
            &format!("stat {p}"),
        ]);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(
        stat("/hs")["target"],
        "f",
        "a hard link to a symlink is a symlink"
    );
    assert_eq!(stat("/hf")["nlink"], 2);
    assert_eq!(stat("/f")["nlink"], 2);
    assert_eq!(
        stat(&format!("/{}/{}", "d".repeat(200), "n".repeat(200)))["size"],
        4
    );
    assert_eq!(stat("/implicit/parent/file")["size"], 1);
    let x = stat("/f").to_string();
    assert!(
        x.contains("security.capability") && x.contains("user.k") && x.contains("security.selinux"),
        "{x}"
    );
}

#[test]
fn malicious_tars_fail_naming_the_entry() {
    for (name, body, needle) in [
        ("escape", "add('../../etc/evil', b'x')", "../../etc/evil"),
        ("absolute", "add('/etc/evil', b'x')", "/etc/evil"),
        (
            "dangling-link",
            "add('./a', type=tarfile.LNKTYPE, linkname='./missing')",
            "missing",
        ),
    ] {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().join(format!("{name}.tar"));
        python_tar(&layer, &format!("{ADD}{body}\n"));
        let (boot, blob) = (t.path().join("boot"), t.path().join("blob"));
        let o = nydus_image(&[
            "create",
            "-t",
            "tar-rafs",
            "-B",
            &s(&boot),
            "-b",
            &s(&blob),
            &s(&layer),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{name}: {err}"
        );
        assert!(!boot.exists() && !blob.exists(), "{name}: partial output");
    }
    let t = tempfile::tempdir().unwrap();
    let junk = t.path().join("junk.tar");
    std::fs::write(&junk, noise(5000, 9)).unwrap();
    let o = nydus_image(&[
        "create",
        "-t",
        "tar-rafs",
        "-B",
        &s(&t.path().join("b")),
        "-b",
        &s(&t.path().join("c")),
        &s(&junk),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("junk.tar"));
}

/// GNU tar's own formats: sparse files (old GNU sparse headers), a file over 8 GiB (base-256
/// size) written sparse, and GNU long names and link targets. The 9 GiB file streams through
/// in bounded memory and lands chunk by chunk where its data is.
#[test]
fn gnu_sparse_huge_and_long_names() {
    require_tool("tar", "tar");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    const MIB: u64 = 1 << 20;
    let huge = src.join("huge");
    let f = std::fs::File::create(&huge).unwrap();
    let size = 9 * 1024 * MIB + 12345;
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    let marks = [(0u64, 1u64), (4096 * MIB + 7, 2), (size - 100, 3)];
    for (off, seed) in marks {
        f.write_all_at(&noise(100, seed), off).unwrap();
    }
    drop(f);
    let small = src.join("small-sparse");
    let f = std::fs::File::create(&small).unwrap();
    f.set_len(3 * MIB).unwrap();
    f.write_all_at(b"middle", MIB + 5).unwrap();
    drop(f);
    let long = format!("{}/{}", "L".repeat(150), "N".repeat(150));
    std::fs::create_dir_all(src.join("L".repeat(150))).unwrap();
    std::fs::write(src.join(&long), b"long name").unwrap();
    std::fs::hard_link(src.join(&long), src.join("link-to-long")).unwrap();
    let layer = t.path().join("gnu.tar");
    let o = run(Command::new("tar")
        .args(["--format=gnu", "--sparse", "-C"])
        .arg(&src)
        .args(["-cf"])
        .arg(&layer)
        .arg("."));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::metadata(&layer).unwrap().len() < 10 * MIB,
        "the tar itself is small (sparse)"
    );
    let (boot, blob) = (t.path().join("boot"), t.path().join("blob"));
    let o = run(Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kib=%M"])
        .arg(bin("nydus-image"))
        .args(["create", "-t", "tar-rafs", "-B"])
        .arg(&boot)
        .arg("-b")
        .arg(&blob)
        .arg(&layer));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let rss: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .expect("/usr/bin/time reports max RSS");
    assert!(rss < 256 * 1024, "9 GiB file built in {rss} KiB of memory");
    nydus_image_ok(&["check", "-B", &s(&boot), "-b", &s(&blob)]);
    let chunks = |p: &str| -> Vec<serde_json::Value> {
        let o = nydus_image_ok(&["inspect", "-B", &s(&boot), "-R", &format!("chunks {p}")]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["chunks"].as_array().unwrap().clone()
    };
    let c = chunks("/huge");
    assert_eq!(c.len() as u64, size.div_ceil(MIB));
    // Expected digest of each 1 MiB chunk: zeros except where data was written.
    let want_chunk = |k: u64| {
        let start = k * MIB;
        let len = MIB.min(size - start);
        let mut buf = vec![0u8; len as usize];
        for (off, seed) in marks {
            let d = noise(100, seed);
            for (i, b) in d.iter().enumerate() {
                let at = off + i as u64;
                if at >= start && at < start + len {
                    buf[(at - start) as usize] = *b;
                }
            }
        }
        nydus_core::digest::Digester::Blake3.digest(&buf).to_hex()
    };
    for k in [0, 1, 4096, 4097, 9000, c.len() as u64 - 1] {
        assert_eq!(
            c[k as usize]["digest"].as_str().unwrap(),
            want_chunk(k),
            "chunk {k} of /huge"
        );
    }
    let stat = |p: &str| -> serde_json::Value {
        let o = nydus_image_ok(&["inspect", "-B", &s(&boot), "-R", &format!("stat {p}")]);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(stat("/huge")["size"].as_u64(), Some(size));
    assert_eq!(stat("/small-sparse")["size"].as_u64(), Some(3 * MIB));
    assert_eq!(stat(&format!("/{long}"))["nlink"], 2);
    assert_eq!(stat("/link-to-long")["nlink"], 2);
    // The small sparse file's bytes, read back through unpack.
    let out = t.path().join("u.tar");
    nydus_image_ok(&["unpack", "-B", &s(&boot), "-b", &s(&blob), "-o", &s(&out)]);
    let o = run(Command::new("tar")
        .arg("-xOf")
        .arg(&out)
        .arg("small-sparse"));
    let mut want = vec![0u8; 3 * MIB as usize];
    want[MIB as usize + 5..MIB as usize + 11].copy_from_slice(b"middle");
    assert!(o.stdout == want, "small-sparse content");

    // The PAX sparse format would be misread as a plain file: refused, naming the entry.
    let pax = t.path().join("pax-sparse.tar");
    let o = run(Command::new("tar")
        .args(["--format=pax", "--sparse", "-C"])
        .arg(&src)
        .args(["-cf"])
        .arg(&pax)
        .arg("./small-sparse"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = nydus_image(&[
        "create",
        "-t",
        "tar-rafs",
        "-B",
        &s(&boot),
        "-b",
        &s(&blob),
        &s(&pax),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("PAX sparse") && err.contains("small-sparse"),
        "{err}"
    );
}

/// Malformed headers: a corrupted checksum and a truncated stream are errors naming the file.
#[test]
fn malformed_headers_fail_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let good = t.path().join("good.tar");
    python_tar(
        &good,
        &format!("{ADD}add('./a', b'x' * 3000)\nadd('./b', b'y')\n"),
    );
    let bytes = std::fs::read(&good).unwrap();
    // Find the second member's header (after a's PAX-less header + 3000 bytes of data).
    let mut bad = bytes.clone();
    let second = 512 + 3072;
    bad[second + 148] ^= 0x11; // checksum field
    let truncated = bytes[..512 + 1000].to_vec();
    for (name, data, needle) in [
        ("badsum.tar", bad, "badsum.tar"),
        ("truncated.tar", truncated, "truncated.tar"),
    ] {
        let p = t.path().join(name);
        std::fs::write(&p, data).unwrap();
        let (boot, blob) = (t.path().join("boot"), t.path().join("blob"));
        let o = nydus_image(&[
            "create",
            "-t",
            "tar-rafs",
            "-B",
            &s(&boot),
            "-b",
            &s(&blob),
            &s(&p),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{name}: {err}"
        );
        assert!(!boot.exists() && !blob.exists(), "{name}: partial output");
    }
}
