//! Hook plugins (`hooks-optimize-commit.md` §1): WebAssembly command modules (WASI preview 1)
//! run in wasmtime with no ambient authority, at the hook points of nydusify's commands.
//!
//! [`Hooks::load`] reads, checks and compiles every plugin once per run (compiled modules are
//! cached by the module's digest in a directory the caller names, so later runs only map
//! them); [`Hooks::run`] runs each plugin in order for one [`HookEvent`]: a fresh instance,
//! the event as JSON on stdin, the bootstrap read-only at `/image/image.boot` (the only
//! preopened directory), no environment, no arguments beyond the plugin's name, no network.
//! Exit code 0 accepts; any other exit code, a trap, or a [`Limits`] hit is a [`Rejection`].
//! Standard output and error are relayed to the log, prefixed with the plugin's name.
//!
//! ```no_run
//! use nydus_host_plugin::{HookEvent, Hooks, Limits};
//! let hooks = Hooks::load(&["policy.wasm".into()], Limits::default(), None)?;
//! let event = HookEvent::from_json(&std::fs::read("event.json")?)?;
//! if let Err(rejection) = hooks.run(&event, "work/image.boot".as_ref()) {
//!     eprintln!("{rejection}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod limits;
mod load;
mod run;

pub use error::{LoadError, LoadProblem, Reason, Rejection};
pub use limits::Limits;
pub use load::Hooks;
pub use nydus_core::plugin::{Hook, HookBlob, HookEvent};
