//! Hook plugins at the commands that push manifests (`hooks-optimize-commit.md` §1): the event
//! of a Nydus manifest, the plugins run on a blocking thread (a rejection before the push is
//! an error), and the after-push hooks (a rejection there is a warning: the tag is pushed).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use nydus_core::oci::manifest::{Manifest, Platform};
use nydus_core::plugin::{Hook, HookBlob, HookEvent, HookRunner};
use serde_json::Value;

/// The hooks of one command: the runner, and the references as the user gave them.
#[derive(Debug, Clone)]
pub struct Hooks {
    pub runner: Arc<dyn HookRunner>,
    pub source_ref: String,
    pub target_ref: String,
}

/// `os/arch[/variant]`.
pub fn platform_name(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

impl Hooks {
    /// The `before_push_manifest` event of the Nydus manifest `m` (its last layer is the
    /// bootstrap layer; the others are data blobs).
    pub fn event(
        &self,
        m: &Manifest,
        config: Value,
        digest: &str,
        platform: Option<String>,
    ) -> Result<HookEvent> {
        let data = &m.layers[..m.layers.len().saturating_sub(1)];
        Ok(HookEvent {
            hook: Hook::BeforePushManifest,
            source_ref: self.source_ref.clone(),
            target_ref: self.target_ref.clone(),
            platform,
            blobs: data
                .iter()
                .map(|l| HookBlob {
                    id: l.digest.trim_start_matches("sha256:").to_string(),
                    size: l.size,
                })
                .collect(),
            manifest: serde_json::to_value(m)?,
            config,
            manifest_digest: digest.to_string(),
            bootstrap_path: String::new(),
            plugin_config: Value::Null,
        })
    }

    /// Runs the plugins for `event` with the bootstrap file `bootstrap`; a rejection is an
    /// error naming the hook.
    pub async fn run(&self, event: HookEvent, bootstrap: PathBuf) -> Result<()> {
        let runner = self.runner.clone();
        let hook = event.hook;
        tokio::task::spawn_blocking(move || runner.run_hook(&event, &bootstrap))
            .await
            .context("the hook task failed")?
            .map_err(|r| anyhow!("{}: {r}", hook.as_str()))
    }

    /// The `after_push_manifest` hooks of what `before` saw: a rejection can no longer stop
    /// anything, so it is a warning.
    pub async fn after_push(&self, before: Vec<(HookEvent, PathBuf)>) {
        for (e, boot) in before {
            let event = HookEvent {
                hook: Hook::AfterPushManifest,
                ..e
            };
            if let Err(e) = self.run(event, boot).await {
                log::warn!("{e:#}");
            }
        }
    }
}
