//! The oracle of how container runtimes stack layers: the kernel's overlayfs. Layers in
//! overlayfs form (whiteouts as 0/0 character devices, opaque directories by xattr) are
//! mounted as one overlay and listed; OCI layer tars are first extracted and turned into
//! that form.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{lchown, list_tree, mknod, mount, run, set_mtime, ListOptions};

/// The overlayfs view of OCI layer tars (gzip or not; lowest first): each one extracted below
/// `work` in overlayfs form, then all mounted as one overlay at `work/overlay` and listed.
pub fn overlay_view_of_oci_layers(layers: &[PathBuf], work: &Path) -> Vec<String> {
    let mut ovl: Vec<PathBuf> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = work.join(format!("ovl{i}"));
        fs::create_dir_all(&d).unwrap();
        let o = run(Command::new("tar")
            .args([
                "--xattrs",
                "--xattrs-include=*",
                "--numeric-owner",
                "--delay-directory-restore",
                "-xpf",
            ])
            .arg(l)
            .arg("-C")
            .arg(&d));
        // umoci also writes `man/.wh.<child>` after replacing directory `man` by a file;
        // those whiteouts hide nothing and tar cannot create them: the only errors allowed.
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success()
                || err
                    .lines()
                    .all(|l| (l.contains("/.wh.") && l.contains("Not a directory"))
                        || l.contains("Exiting with failure status")),
            "extracting {}: {err}",
            l.display()
        );
        oci_to_overlay(&d);
        inherit_implicit_dirs(l, &d, &ovl);
        ovl.push(d);
    }
    overlay_view(&ovl, &work.join("overlay"))
}

/// The kernel's overlayfs view of the layers (lowest first).
pub fn overlay_view(layers: &[PathBuf], mnt: &Path) -> Vec<String> {
    fs::create_dir_all(mnt).unwrap();
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    let _g = mount(
        Path::new("overlay"),
        mnt,
        "overlay",
        &format!("lowerdir={}", lower.join(":")),
    )
    .unwrap_or_else(|e| panic!("the kernel's overlayfs is needed as the oracle: {e}"));
    list_tree(mnt, ListOptions::default())
}

/// Turns an extracted OCI layer into overlayfs form, keeping directory times.
pub fn oci_to_overlay(d: &Path) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(d).unwrap();
    let mut entries: Vec<PathBuf> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_str().unwrap_or("").to_string();
        if name == ".wh..wh..opq" {
            fs::remove_file(&p).unwrap();
            xattr::set(d, "trusted.overlay.opaque", b"y").unwrap();
        } else if let Some(target) = name.strip_prefix(".wh.") {
            fs::remove_file(&p).unwrap();
            // Deleted and recreated in the same layer: the new entry alone hides the lower.
            if fs::symlink_metadata(d.join(target)).is_err() {
                mknod(&d.join(target), libc::S_IFCHR, 0, 0);
            }
        } else if fs::symlink_metadata(&p).unwrap().is_dir() {
            oci_to_overlay(&p);
        }
    }
    set_mtime(d, m.mtime(), m.mtime_nsec());
}

/// Directories tar created only as parents of a layer's entries stand for the lower layers'
/// directories (a runtime applies the layer on top of them): give them those attributes.
pub fn inherit_implicit_dirs(layer_tar: &Path, layer: &Path, lowers: &[PathBuf]) {
    use std::os::unix::fs::MetadataExt;
    let o = run(Command::new("tar").arg("-tf").arg(layer_tar));
    assert!(o.status.success());
    let explicit: std::collections::HashSet<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect();
    let mut stack = vec![PathBuf::new()];
    let mut fix = Vec::new();
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(layer.join(&rel)).unwrap() {
            let e = e.unwrap();
            if !e.file_type().unwrap().is_dir() {
                continue;
            }
            let r = rel.join(e.file_name());
            if !explicit.contains(r.to_str().unwrap()) {
                if let Some(m) = lowers
                    .iter()
                    .rev()
                    .filter_map(|l| fs::symlink_metadata(l.join(&r)).ok())
                    .find(|m| m.is_dir())
                {
                    fix.push((r.clone(), m));
                }
            }
            stack.push(r);
        }
    }
    // Deepest first, so fixing a child does not touch a fixed parent's time.
    fix.sort_by_key(|(r, _)| std::cmp::Reverse(r.components().count()));
    for (r, m) in fix {
        let p = layer.join(&r);
        lchown(&p, m.uid(), m.gid());
        fs::set_permissions(&p, fs::Permissions::from_mode(m.mode() & 0o7777)).unwrap();
        set_mtime(&p, m.mtime(), m.mtime_nsec());
    }
}
