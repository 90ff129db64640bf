//! The Nydus bootstrap layer the core writes (`core::oci::bootstrap_layer`) is an ordinary
//! tar.gz to GNU tar and gzip: `image/` and `image/image.boot` with upstream's modes, the
//! bootstrap bytes intact, and the diff id the SHA-256 of the uncompressed tar.

use std::process::Command;

use nydus_core::digest::sha256;
use nydus_core::oci::bootstrap_layer::{build, extract_bootstrap};
use nydus_tests::*;

#[test]
fn gnu_tar_reads_the_bootstrap_layer() {
    require_tool("tar", "tar");
    let t = tempfile::tempdir().unwrap();
    let boot = noise(70_000, 11);
    let meta = noise(8192, 12);
    let id = "cd".repeat(32);
    let l = build(&boot, &[(id.clone(), meta.clone())]);
    let gz = t.path().join("layer.tar.gz");
    std::fs::write(&gz, &l.gz).unwrap();
    let o = run(Command::new("tar").arg("-tvzf").arg(&gz));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" image"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("-r--r--r--") && lines[1].ends_with(" image/image.boot"),
        "{list}"
    );
    assert!(
        lines[2].ends_with(&format!(" image/{id}.blob.meta")),
        "{list}"
    );
    let x = t.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    let o = run(Command::new("tar").arg("-xzf").arg(&gz).arg("-C").arg(&x));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(x.join("image/image.boot")).unwrap() == boot);
    assert!(std::fs::read(x.join(format!("image/{id}.blob.meta"))).unwrap() == meta);
    let o = run(Command::new("gzip").arg("-dc").arg(&gz));
    assert_eq!(format!("sha256:{}", sha256(&o.stdout).to_hex()), l.diff_id);
    // And a layer GNU tar wrote (legacy root `image.boot`, `./` prefixes) reads back.
    let legacy = t.path().join("legacy");
    std::fs::create_dir_all(&legacy).unwrap();
    std::fs::write(legacy.join("image.boot"), &boot).unwrap();
    let lgz = t.path().join("legacy.tar.gz");
    let o = run(Command::new("tar")
        .arg("-czf")
        .arg(&lgz)
        .arg("-C")
        .arg(&legacy)
        .arg("."));
    assert!(o.status.success());
    assert!(extract_bootstrap(&std::fs::read(&lgz).unwrap(), 1 << 24).unwrap() == boot);
}
