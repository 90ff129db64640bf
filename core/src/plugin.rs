//! The hook plugin ABI (`hooks-optimize-commit.md` §1): the event a plugin reads as one JSON
//! document on its standard input, shared by the host that writes it and by plugins written
//! in Rust that read it (the policy example links this crate, compiled for `wasm32-wasip1`).
//!
//! A plugin is a WASI preview 1 command module. For each hook a fresh instance runs `_start`
//! with the event on stdin and the image's bootstrap read-only at [`BOOTSTRAP_PATH`] (its
//! directory, [`IMAGE_DIR`], is the only one preopened). Exit code 0 accepts; anything else
//! rejects, and a rejection of a `before_*` hook aborts the command before anything is tagged.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The directory preopened for a plugin, holding only the bootstrap.
pub const IMAGE_DIR: &str = "/image";
/// Where a plugin finds the image's bootstrap (read-only).
pub const BOOTSTRAP_PATH: &str = "/image/image.boot";
/// The name of the bootstrap inside [`IMAGE_DIR`].
pub const BOOTSTRAP_NAME: &str = "image.boot";
/// The entry point every plugin exports.
pub const ENTRY: &str = "_start";

/// The hook points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// Every blob, the bootstrap layer and the config are pushed; the manifest is not. A
    /// rejection aborts with nothing tagged.
    BeforePushManifest,
    /// The manifest (or the index naming it) is pushed under the target tag.
    AfterPushManifest,
}

impl Hook {
    /// As spelled in the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::BeforePushManifest => "before_push_manifest",
            Hook::AfterPushManifest => "after_push_manifest",
        }
    }

    /// Whether a rejection stops the command (hooks that run before the push).
    pub fn can_abort(self) -> bool {
        matches!(self, Hook::BeforePushManifest)
    }
}

/// A data blob of the image, as upstream's hook payload names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookBlob {
    /// The blob id: the sha256 of the blob, in hex.
    pub id: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// What a plugin is told, one JSON document on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookEvent {
    pub hook: Hook,
    /// The source image as the user named it (empty when there is none).
    pub source_ref: String,
    /// The target image as the user named it.
    pub target_ref: String,
    /// `os/arch[/variant]` of the manifest, when known.
    #[serde(default)]
    pub platform: Option<String>,
    /// The image's data blobs, in layer order.
    pub blobs: Vec<HookBlob>,
    /// The manifest that is (or was) pushed.
    pub manifest: Value,
    /// The image config that is pushed.
    pub config: Value,
    /// The manifest's digest (`sha256:...`).
    pub manifest_digest: String,
    /// Where the bootstrap is inside the sandbox: [`BOOTSTRAP_PATH`] (upstream's payload has
    /// the host path under the same name).
    pub bootstrap_path: String,
    /// The plugin's own configuration: the JSON document next to the module (`policy.wasm`
    /// → `policy.json`), or null.
    #[serde(default)]
    pub plugin_config: Value,
}

impl HookEvent {
    /// The event as the JSON bytes a plugin reads.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a hook event serializes")
    }

    /// Parses the event a plugin read from stdin.
    pub fn from_json(bytes: &[u8]) -> Result<HookEvent, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Something that runs hook plugins for an event: what commands that push manifests call,
/// so that they need not know how plugins run (`nydus_host_plugin::Hooks` runs them in
/// wasmtime). `bootstrap` is a local file holding the image's bootstrap.
pub trait HookRunner: Send + Sync + std::fmt::Debug {
    /// Runs every plugin for `event`; the first rejection, as an error saying which plugin
    /// rejected and why.
    fn run_hook(
        &self,
        event: &HookEvent,
        bootstrap: &std::path::Path,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

    /// Whether there is no plugin to run.
    fn is_empty(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_with_the_spec_field_names() {
        let e = HookEvent {
            hook: Hook::BeforePushManifest,
            source_ref: "127.0.0.1:5000/a:1".into(),
            target_ref: "127.0.0.1:5000/a:1-nydus".into(),
            platform: Some("linux/amd64".into()),
            blobs: vec![HookBlob {
                id: "ab".repeat(32),
                size: 42,
            }],
            manifest: serde_json::json!({"schemaVersion": 2}),
            config: serde_json::json!({}),
            manifest_digest: format!("sha256:{}", "cd".repeat(32)),
            bootstrap_path: BOOTSTRAP_PATH.into(),
            plugin_config: Value::Null,
        };
        let v: Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["hook"], "before_push_manifest");
        for k in [
            "source_ref",
            "target_ref",
            "platform",
            "blobs",
            "manifest",
            "config",
            "bootstrap_path",
        ] {
            assert!(v.get(k).is_some(), "{k} missing");
        }
        assert_eq!(v["blobs"][0]["size"], 42);
        assert_eq!(HookEvent::from_json(&e.to_json()).unwrap(), e);
        assert_eq!(Hook::AfterPushManifest.as_str(), "after_push_manifest");
        assert!(!Hook::AfterPushManifest.can_abort());
    }
}
