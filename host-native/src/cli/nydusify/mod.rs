//! The `nydusify` command line: the argument surface (upstream's names and aliases), each
//! subcommand's options turned into the library's typed options, and the results printed or
//! logged. `convert`, `copy`, `build` (`pack`), `check`, `mount` and `optimize` are built; the other subcommands
//! are not built yet and say so.

pub mod check;
pub mod commit;
pub mod convert;
pub mod copy;
pub mod mount;
pub mod optimize;
pub mod pack;
pub mod parse;

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use nydus_core::oci::manifest::Platform;
use nydus_host_nydusify::backend::BlobDest;
use nydus_host_storage::config::{self, BackendConfig, BackendFlags, LocalBlobs};

/// How the source and target registries are reached: TLS verification, plain HTTP.
#[derive(Debug, Args)]
pub struct TransportArgs {
    /// Skip TLS verification of the source registry, and speak plain HTTP to it when it does
    /// not speak TLS.
    #[arg(long = "source-insecure")]
    pub source_insecure: bool,
    /// Skip TLS verification of the target registry, and speak plain HTTP to it when it does
    /// not speak TLS.
    #[arg(long = "target-insecure")]
    pub target_insecure: bool,
    /// Speak plain HTTP to both registries.
    #[arg(long = "plain-http")]
    pub plain_http: bool,
    /// Speak plain HTTP to the source registry.
    #[arg(long = "source-plain-http")]
    pub source_plain_http: bool,
    /// Speak plain HTTP to the target registry.
    #[arg(long = "target-plain-http")]
    pub target_plain_http: bool,
}

/// Hook plugins and their limits (`convert`, `copy`): run before and after a Nydus manifest
/// is pushed.
#[derive(Debug, Args)]
pub struct HookArgs {
    /// A hook plugin (a wasm32-wasip1 command module) run before and after the manifest is
    /// pushed; repeat for several. Default: the `:`-separated list in NYDUS_HOOK_PLUGIN_PATH.
    #[arg(long = "hook-plugin", value_name = "WASM")]
    pub hook_plugin: Vec<std::path::PathBuf>,
    /// Wall-clock limit of one plugin run, e.g. 10s or 500ms.
    #[arg(long = "hook-timeout", default_value = "10s")]
    pub hook_timeout: String,
    /// Fuel of one plugin run (about one unit per WebAssembly instruction).
    #[arg(long = "hook-fuel", default_value_t = 10_000_000_000)]
    pub hook_fuel: u64,
    /// Linear memory a plugin may use, e.g. 256MiB.
    #[arg(long = "hook-memory", default_value = "256MiB")]
    pub hook_memory: String,
    /// Bytes of stdout and of stderr a plugin may write, e.g. 1MiB.
    #[arg(long = "hook-output", default_value = "1MiB")]
    pub hook_output: String,
}

impl HookArgs {
    /// The plugins named by `--hook-plugin` or NYDUS_HOOK_PLUGIN_PATH.
    fn paths(&self) -> Vec<std::path::PathBuf> {
        if !self.hook_plugin.is_empty() {
            return self.hook_plugin.clone();
        }
        std::env::var("NYDUS_HOOK_PLUGIN_PATH")
            .map(|v| {
                v.split(':')
                    .filter(|p| !p.is_empty())
                    .map(std::path::PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The plugins, loaded and compiled (compiled modules cached in
    /// `<work_dir>/hook-plugins`), or `None` when none is named.
    #[cfg(feature = "plugin")]
    pub fn load(
        &self,
        work_dir: &Path,
    ) -> Result<Option<std::sync::Arc<dyn nydus_core::plugin::HookRunner>>> {
        let paths = self.paths();
        if paths.is_empty() {
            return Ok(None);
        }
        let size = |flag: &str, v: &str| {
            parse::parse_byte_size(v)
                .with_context(|| format!("invalid {flag} {v:?}: expected e.g. 256MiB or 1MB"))
        };
        let limits = nydus_host_plugin::Limits {
            deadline: parse::parse_duration(&self.hook_timeout).with_context(|| {
                format!(
                    "invalid --hook-timeout {:?}: expected e.g. 10s or 500ms",
                    self.hook_timeout
                )
            })?,
            fuel: self.hook_fuel,
            memory: size("--hook-memory", &self.hook_memory)?,
            output: size("--hook-output", &self.hook_output)? as usize,
        };
        let hooks =
            nydus_host_plugin::Hooks::load(&paths, limits, Some(&work_dir.join("hook-plugins")))?;
        log::info!("hook plugins: {}", hooks.names().join(", "));
        Ok(Some(std::sync::Arc::new(hooks)))
    }

    /// Without the `plugin` feature: an error if a plugin is named.
    #[cfg(not(feature = "plugin"))]
    pub fn load(
        &self,
        _work_dir: &Path,
    ) -> Result<Option<std::sync::Arc<dyn nydus_core::plugin::HookRunner>>> {
        match self.paths().first() {
            None => Ok(None),
            Some(p) => bail!(
                "hook plugin {}: this nydusify was built without hook plugins (cargo feature `plugin`)",
                p.display()
            ),
        }
    }
}

impl TransportArgs {
    pub fn source_plain_http(&self) -> bool {
        self.plain_http || self.source_plain_http
    }

    pub fn target_plain_http(&self) -> bool {
        self.plain_http || self.target_plain_http
    }
}

/// The backend of `--backend-type` with `--backend-config[-file]`, parsed by the one
/// backend parser; `None` without a backend type, or with `registry`: the image's own
/// repository, where the blobs go anyway. `flag` names the options in errors.
pub fn backend_config(
    kind: Option<&str>,
    config: Option<&str>,
    config_file: Option<&Path>,
    flag: &str,
) -> Result<Option<BackendConfig>> {
    let kind = match kind {
        None | Some("") if config.is_some() || config_file.is_some() => {
            let given = if config.is_some() {
                "config"
            } else {
                "config-file"
            };
            bail!("{flag}-{given} is given without {flag}-type (localfs, oss or s3)")
        }
        None | Some("registry") | Some("") => return Ok(None),
        Some(k) => k,
    };
    let flags = BackendFlags {
        prefix: flag,
        tool: "nydusify",
        config_file: true,
    };
    let c = config::parse(flags, kind, config, config_file)?;
    if let BackendConfig::Localfs {
        blobs: LocalBlobs::File(_),
        ..
    } = &c
    {
        bail!("{flag}-config: a localfs backend for images needs \"dir\", not \"blob_file\"")
    }
    Ok(Some(c))
}

/// The backend blobs are pushed to (`convert`, `pack`).
pub fn backend_dest(
    kind: Option<&str>,
    config: Option<&str>,
    config_file: Option<&Path>,
    flag: &str,
) -> Result<Option<BlobDest>> {
    match backend_config(kind, config, config_file, flag)? {
        Some(c) => Ok(Some(
            BlobDest::new(&c).with_context(|| format!("{flag}-config"))?,
        )),
        None => Ok(None),
    }
}

/// `--platform` (`os/arch[/variant]`), or `linux/<host arch>`.
pub fn platform_arg(p: Option<&str>) -> Result<Platform> {
    match p {
        Some(p) => Platform::parse(p)
            .with_context(|| format!("invalid --platform {p:?}: expected os/arch[/variant]")),
        None => Ok(nydus_host_nydusify::host_platform()),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "nydusify",
    version,
    about = "Convert, check and copy Nydus images in registries"
)]
pub struct Cli {
    /// Log level: trace, debug, info, warn, error (upstream's panic and fatal mean error).
    #[arg(
        short = 'l',
        long = "log-level",
        env = "LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    pub log_level: String,
    /// Debug log level; overrides --log-level.
    #[arg(short = 'D', long = "debug", env = "DEBUG_LOG_LEVEL", global = true)]
    pub debug: bool,
    /// Also append the log to this file.
    #[arg(long = "log-file", global = true)]
    pub log_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The log level the flags ask for, in the logger's names.
    pub fn level(&self) -> &str {
        if self.debug {
            return "debug";
        }
        match self.log_level.as_str() {
            "panic" | "fatal" => "error",
            "warning" => "warn",
            l => l,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a Nydus image in a registry: manifest, config and bootstrap rules.
    Check(check::CheckArgs),
    /// Convert an OCI image in a registry to a Nydus image.
    Convert(Box<convert::ConvertArgs>),
    /// Build a Nydus bootstrap and blob from a local directory.
    #[command(alias = "pack")]
    Build(pack::PackArgs),
    /// Copy images between registries.
    Copy(copy::CopyArgs),
    /// Mount a Nydus image with FUSE, its data fetched lazily from its backend.
    #[command(alias = "view")]
    Mount(mount::MountArgs),
    /// Commit a running container's changes (containerd) as a new Nydus image.
    Commit(Box<commit::CommitArgs>),
    /// Gather the data of a prefetch list into one new blob of a Nydus image.
    Optimize(optimize::OptimizeArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Convert(a) => convert::run(*a),
        Command::Build(a) => pack::run(a),
        Command::Copy(a) => copy::run(a),
        Command::Mount(a) => mount::run(a),
        Command::Commit(a) => commit::run(*a),
        Command::Optimize(a) => optimize::run(a),
    }
}
