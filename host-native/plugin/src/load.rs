//! Loading plugins: each file read, checked (magic, `_start`, imports) and compiled once per
//! run; a compiled module is kept in the cache directory under its module's digest and the
//! engine's compatibility hash, so a later run loads it instead of compiling.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, ExternType, InstancePre, Linker, Module, OptLevel};

use crate::error::{LoadError, LoadProblem};
use crate::limits::Limits;
use crate::run::State;

/// The loaded plugins of a run, with the engine that runs them.
pub struct Hooks {
    pub(crate) engine: Engine,
    pub(crate) plugins: Vec<Plugin>,
    pub(crate) limits: Limits,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field(
                "plugins",
                &self.plugins.iter().map(|p| &p.path).collect::<Vec<_>>(),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

/// One plugin, ready to be instantiated.
pub(crate) struct Plugin {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) pre: InstancePre<State>,
    /// `<name>.json` beside the module, or null.
    pub(crate) config: Value,
}

/// Feeds `Hash` into SHA-256, for a cache key that does not change between builds.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Hooks {
    /// Loads the plugins at `paths` (in the order they run). With `cache_dir`, compiled
    /// modules are kept there and reused by later runs.
    pub fn load(
        paths: &[PathBuf],
        limits: Limits,
        cache_dir: Option<&Path>,
    ) -> Result<Hooks, LoadError> {
        let engine_error = |e: wasmtime::Error| LoadError {
            path: paths.first().cloned().unwrap_or_default(),
            problem: LoadProblem::Engine(format!("{e:#}")),
        };
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true);
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
            .map_err(engine_error)?;
        let compat = {
            let mut h = ShaHasher(Sha256::new());
            engine.precompile_compatibility_hash().hash(&mut h);
            hex(&h.0.finalize()[..8])
        };
        let mut plugins = Vec::new();
        for path in paths {
            let t = std::time::Instant::now();
            let fail = |problem| LoadError {
                path: path.clone(),
                problem,
            };
            let bytes = std::fs::read(path).map_err(|e| fail(LoadProblem::Read(e)))?;
            if !bytes.starts_with(b"\0asm") {
                return Err(fail(LoadProblem::NotWasm));
            }
            let key = format!("{}-{compat}.cwasm", hex(&Sha256::digest(&bytes)));
            let module = match cache_dir {
                Some(dir) => cached_module(&engine, &bytes, &dir.join(key), path),
                None => Module::from_binary(&engine, &bytes)
                    .map_err(|e| fail(LoadProblem::Invalid(format!("{e:#}")))),
            }?;
            match module.get_export(nydus_core::plugin::ENTRY) {
                Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
                _ => return Err(fail(LoadProblem::NoStart)),
            }
            let pre = linker
                .instantiate_pre(&module)
                .map_err(|e| fail(LoadProblem::Imports(format!("{e:#}"))))?;
            log::debug!(
                "hook plugin {}: loaded in {:?}",
                path.display(),
                t.elapsed()
            );
            plugins.push(Plugin {
                name: plugin_name(path),
                path: path.clone(),
                pre,
                config: plugin_config(path)?,
            });
        }
        Ok(Hooks {
            engine,
            plugins,
            limits,
        })
    }

    /// Whether there is no plugin to run.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The plugins' names, in the order they run.
    pub fn names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name.as_str()).collect()
    }

    /// The limits every run gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// A plugin's name: its file name without `.wasm`.
fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// `<name>.json` beside the module, parsed, or null when there is none.
fn plugin_config(path: &Path) -> Result<Value, LoadError> {
    let cfg = path.with_extension("json");
    let fail = |reason: String| LoadError {
        path: path.to_path_buf(),
        problem: LoadProblem::Config {
            path: cfg.clone(),
            reason,
        },
    };
    match std::fs::read(&cfg) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| fail(format!("not JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The module compiled from `bytes`, loaded from `cached` when an earlier run compiled it,
/// otherwise compiled and written there (a cache that cannot be written only costs time).
fn cached_module(
    engine: &Engine,
    bytes: &[u8],
    cached: &Path,
    path: &Path,
) -> Result<Module, LoadError> {
    if cached.is_file() {
        match deserialize(engine, cached) {
            Ok(m) => {
                log::debug!(
                    "hook plugin {}: compiled module from {}",
                    path.display(),
                    cached.display()
                );
                return Ok(m);
            }
            Err(e) => log::warn!(
                "hook plugin {}: the cached compiled module {} is not usable ({e:#}); compiling again",
                path.display(),
                cached.display()
            ),
        }
    }
    let module = Module::from_binary(engine, bytes).map_err(|e| LoadError {
        path: path.to_path_buf(),
        problem: LoadProblem::Invalid(format!("{e:#}")),
    })?;
    let written = module
        .serialize()
        .map_err(anyhow::Error::from)
        .and_then(|compiled| {
            if let Some(dir) = cached.parent() {
                std::fs::create_dir_all(dir)?;
            }
            nydus_host_storage::atomic::write_file(cached, &compiled)
        });
    if let Err(e) = written {
        log::warn!(
            "hook plugin {}: keeping the compiled module in {} failed ({e:#})",
            path.display(),
            cached.display()
        );
    }
    Ok(module)
}

/// Loads a compiled module this program wrote. The file is read into memory, not mapped: a
/// mapped file changed under the process would crash it.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, cached: &Path) -> wasmtime::Result<Module> {
    let bytes = std::fs::read(cached)?;
    // SAFETY: wasmtime requires the bytes to be a module serialized by a compatible wasmtime.
    // They are: written whole (temporary name, then rename) by `cached_module` from
    // `Module::serialize`, under a name that carries the source module's digest and this
    // engine's compatibility hash, in the run's own work directory; wasmtime also checks
    // their header and engine settings and refuses a mismatch.
    unsafe { Module::deserialize(engine, &bytes) }
}
