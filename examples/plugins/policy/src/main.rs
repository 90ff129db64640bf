//! A policy hook plugin: before the manifest is pushed, it opens the image's bootstrap with
//! `nydus-core` (compiled for `wasm32-wasip1`) and rejects the image if it holds a setuid-root
//! file, or a file larger than `max_file_size` bytes. Other hooks are accepted.
//!
//! Configuration, in `policy.json` beside `policy.wasm` (both keys optional):
//! `{"max_file_size": 104857600, "allow_setuid_root": false}`.
//!
//! Build: `cargo build --release --target wasm32-wasip1 -p nydus-plugin-policy`, then
//! `nydusify convert --hook-plugin target/wasm32-wasip1/release/policy.wasm ...`.

use std::io::Read;
use std::process::exit;

use nydus_core::model::FileType;
use nydus_core::plugin::{Hook, HookEvent, BOOTSTRAP_PATH};
use nydus_core::rafs::Rafs;

/// Exit codes: 0 accepts, 1 is a policy rejection, 2 a plugin that could not decide.
fn give_up(what: &str) -> ! {
    eprintln!("policy: {what}");
    exit(2)
}

fn main() {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        give_up(&format!("reading the event: {e}"));
    }
    let event = HookEvent::from_json(&input)
        .unwrap_or_else(|e| give_up(&format!("the event is not a hook event: {e}")));
    if event.hook != Hook::BeforePushManifest {
        exit(0);
    }
    let cfg = &event.plugin_config;
    let max_size = cfg.get("max_file_size").and_then(|v| v.as_u64());
    let allow_setuid_root = cfg
        .get("allow_setuid_root")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let boot = std::fs::read(BOOTSTRAP_PATH)
        .unwrap_or_else(|e| give_up(&format!("reading {BOOTSTRAP_PATH}: {e}")));
    let fs = Rafs::open(boot)
        .unwrap_or_else(|e| give_up(&format!("{BOOTSTRAP_PATH} is not a bootstrap: {e}")));
    let mut broken = Vec::new();
    let mut files = 0u64;
    let walked = fs.walk(&mut |path, inode| {
        if inode.file_type != FileType::Regular {
            return Ok(());
        }
        files += 1;
        let shown = String::from_utf8_lossy(path);
        if !allow_setuid_root && inode.attrs.uid == 0 && inode.attrs.mode & 0o4000 != 0 {
            broken.push(format!("{shown} is setuid root"));
        }
        if let Some(max) = max_size.filter(|&m| inode.size > m) {
            broken.push(format!(
                "{shown} is {} bytes, over the limit of {max}",
                inode.size
            ));
        }
        Ok(())
    });
    if let Err(e) = walked {
        give_up(&format!("walking {BOOTSTRAP_PATH}: {e}"));
    }
    if broken.is_empty() {
        println!(
            "policy: {} ({}): {files} files, none breaks the policy",
            event.target_ref,
            event.platform.as_deref().unwrap_or("-")
        );
        exit(0);
    }
    for b in &broken {
        eprintln!("policy: {b}");
    }
    eprintln!(
        "policy: {} breaks the policy in {} place(s)",
        event.target_ref,
        broken.len()
    );
    exit(1);
}
