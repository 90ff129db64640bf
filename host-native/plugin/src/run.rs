//! Running plugins for one event: per plugin a fresh store and instance, the sandbox (stdin,
//! bounded stdout/stderr, the bootstrap's directory preopened read-only, nothing else), the
//! limits, and the outcome read from how `_start` ended.

use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use nydus_core::plugin::{HookEvent, BOOTSTRAP_NAME, BOOTSTRAP_PATH, ENTRY, IMAGE_DIR};
use nydus_host_storage::atomic::Scratch;
use wasmtime::{Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::error::{Reason, Rejection};
use crate::limits::{Budget, TICK};
use crate::load::{Hooks, Plugin};

/// What a plugin's store holds.
pub(crate) struct State {
    pub(crate) wasi: WasiP1Ctx,
    budget: Budget,
}

impl Hooks {
    /// Runs every plugin, in order, for `event`, with `bootstrap` (a local file) as the
    /// image's bootstrap. The first rejection stops the others and is returned.
    pub fn run(&self, event: &HookEvent, bootstrap: &Path) -> Result<(), Rejection> {
        if self.plugins.is_empty() {
            return Ok(());
        }
        let host = |e: String| Rejection {
            plugin: self.plugins[0].name.clone(),
            reason: Reason::Host(e),
            stderr: String::new(),
        };
        // A directory holding only the bootstrap, for the preopen.
        let parent = bootstrap.parent().unwrap_or(Path::new("."));
        let dir = Scratch::new_in(parent, ".nydus-hook-").map_err(|e| host(format!("{e:#}")))?;
        let image = dir.path().join(BOOTSTRAP_NAME);
        if std::fs::hard_link(bootstrap, &image).is_err() {
            std::fs::copy(bootstrap, &image).map_err(|e| {
                host(format!(
                    "copying {} for the sandbox: {e}",
                    bootstrap.display()
                ))
            })?;
        }
        // The epoch advances while the plugins run; the ticker ends when `stop` is dropped.
        let (stop, ticks) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let engine = &self.engine;
            s.spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = ticks.recv_timeout(TICK) {
                    engine.increment_epoch();
                }
            });
            let result = self
                .plugins
                .iter()
                .try_for_each(|p| self.run_one(p, event, dir.path()));
            drop(stop);
            result
        })
    }

    fn run_one(&self, p: &Plugin, event: &HookEvent, dir: &Path) -> Result<(), Rejection> {
        let limits = self.limits;
        // One byte over the limit tells a plugin that wrote exactly the limit (accepted) from
        // one that wrote more (cut); what is kept and shown is at most the limit.
        let kept = |pipe: &MemoryOutputPipe| {
            let b = pipe.contents();
            b.slice(..b.len().min(limits.output))
        };
        let reject = |reason: Reason, stderr: &MemoryOutputPipe| Rejection {
            plugin: p.name.clone(),
            reason,
            stderr: String::from_utf8_lossy(&kept(stderr)).into_owned(),
        };
        let mut event = event.clone();
        event.bootstrap_path = BOOTSTRAP_PATH.to_string();
        event.plugin_config = p.config.clone();
        let stdout = MemoryOutputPipe::new(limits.output.saturating_add(1));
        let stderr = MemoryOutputPipe::new(limits.output.saturating_add(1));
        let mut b = WasiCtxBuilder::new();
        b.stdin(MemoryInputPipe::new(event.to_json()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg(&p.name);
        if let Err(e) = b.preopened_dir(dir, IMAGE_DIR, FsPerms::ReadOnly) {
            return Err(reject(
                Reason::Host(format!("preopening {}: {e:#}", dir.display())),
                &stderr,
            ));
        }
        let mut store = Store::new(
            &self.engine,
            State {
                wasi: b.build_p1(),
                budget: Budget::new(&limits),
            },
        );
        store.limiter(|s| &mut s.budget);
        if let Err(e) = store.set_fuel(limits.fuel) {
            return Err(reject(Reason::Host(format!("{e:#}")), &stderr));
        }
        store.set_epoch_deadline(limits.deadline_ticks());
        store.epoch_deadline_trap();
        let t = Instant::now();
        let ended = p
            .pre
            .instantiate(&mut store)
            .and_then(|i| i.get_typed_func::<(), ()>(&mut store, ENTRY))
            .and_then(|f| f.call(&mut store, ()));
        let fuel_used = limits.fuel - store.get_fuel().unwrap_or(0);
        log::debug!(
            "hook plugin {} ({}): {:?}, {fuel_used} fuel",
            p.name,
            event.hook.as_str(),
            t.elapsed()
        );
        let output_full =
            stdout.contents().len() > limits.output || stderr.contents().len() > limits.output;
        let reason = match ended {
            // Writes past the limit fail; a plugin that went on regardless still hit it.
            Ok(()) | Err(_) if output_full && !store.data().budget.memory_hit => {
                Some(Reason::Output(limits.output))
            }
            Ok(()) => None,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(0)) => None,
                Some(I32Exit(code)) => Some(Reason::Exit(*code)),
                None => Some(match e.downcast_ref::<Trap>() {
                    Some(Trap::OutOfFuel) => Reason::Fuel(limits.fuel),
                    Some(Trap::Interrupt) => Reason::Deadline(limits.deadline),
                    _ if store.data().budget.memory_hit => Reason::Memory(limits.memory),
                    Some(t) => Reason::Trap(t.to_string()),
                    None => Reason::Trap(format!("{e:#}")),
                }),
            },
        };
        relay(&p.name, "stdout", &kept(&stdout), reason.is_some());
        relay(&p.name, "stderr", &kept(&stderr), reason.is_some());
        match reason {
            None => Ok(()),
            Some(r) => Err(reject(r, &stderr)),
        }
    }
}

impl nydus_core::plugin::HookRunner for Hooks {
    fn run_hook(
        &self,
        event: &HookEvent,
        bootstrap: &Path,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.run(event, bootstrap).map_err(Into::into)
    }

    fn is_empty(&self) -> bool {
        Hooks::is_empty(self)
    }
}

/// A plugin's output into the log, a line each, with its name.
fn relay(name: &str, stream: &str, bytes: &[u8], rejected: bool) {
    for line in String::from_utf8_lossy(bytes).lines() {
        if rejected {
            log::warn!("plugin {name} ({stream}): {line}");
        } else {
            log::info!("plugin {name} ({stream}): {line}");
        }
    }
}
