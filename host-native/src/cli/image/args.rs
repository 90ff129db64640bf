//! Command-line surface of `nydus-image`, with upstream's option names, aliases and defaults
//! (`shared/spec/cli.md` §1).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nydus-image",
    version,
    about = "Build, check, inspect and unpack RAFS (Nydus) images"
)]
pub struct Cli {
    /// Log file (messages also go to stderr).
    #[arg(short = 'L', long = "log-file", global = true)]
    pub log_file: Option<PathBuf>,
    /// trace | debug | info | warn | error
    #[arg(short = 'l', long = "log-level", default_value = "info", global = true)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a RAFS filesystem (bootstrap + data blob) from a directory.
    Create(Box<CreateArgs>),
    /// Validate a bootstrap and, given the blobs, every chunk digest.
    Check(CheckArgs),
    /// Answer inspection requests about a bootstrap (stats, blobs, prefetch, stat <path>).
    Inspect(InspectArgs),
    /// File, chunk and deduplication statistics.
    Stat(StatArgs),
    /// Write the filesystem as a tar archive.
    Unpack(UnpackArgs),
    /// Export the image as a raw block device image the kernel mounts on its own.
    Export(ExportArgs),
    /// Overlay per-layer bootstraps (lowest first) into one bootstrap.
    Merge(MergeArgs),
    /// Gather a prefetch list's file data into one new blob, listed in a new bootstrap.
    Optimize(OptimizeArgs),
}

/// Where blob data comes from, for read-side commands.
#[derive(Debug, Args, Clone, Default)]
pub struct BlobSourceArgs {
    /// A single local blob file.
    #[arg(short = 'b', long = "blob")]
    pub blob: Option<PathBuf>,
    /// Directory holding blobs named by their blob id.
    #[arg(short = 'D', long = "blob-dir", alias = "localfs-dir")]
    pub blob_dir: Option<PathBuf>,
    /// Backend type: localfs, s3, oss or registry.
    #[arg(long = "backend-type", alias = "backend_type")]
    pub backend_type: Option<String>,
    /// Backend configuration JSON (README, "Storage backends").
    #[arg(long = "backend-config", alias = "backend_config")]
    pub backend_config: Option<String>,
    /// Backend configuration file.
    #[arg(long = "backend-config-file", alias = "backend_config_file")]
    pub backend_config_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Source directory, or layer tar stream with `-t tar-rafs`/`targz-rafs`.
    pub source: PathBuf,
    /// Source type: dir-rafs (alias directory), tar-rafs or targz-rafs (plain, gzip or zstd layer stream; `-` is stdin), estargztoc-ref (alias stargz_index: an eStargz TOC or layer file); the other ref types are not built yet.
    #[arg(
        short = 't',
        long = "type",
        alias = "source-type",
        default_value = "dir-rafs"
    )]
    pub source_type: String,
    /// Output bootstrap file.
    #[arg(short = 'B', long = "bootstrap")]
    pub bootstrap: Option<PathBuf>,
    /// Output data blob file.
    #[arg(short = 'b', long = "blob")]
    pub blob: Option<PathBuf>,
    /// Output directory: blob named `<blob id>`, bootstrap (if -B is absent) named by its SHA-256.
    #[arg(short = 'D', long = "blob-dir")]
    pub blob_dir: Option<PathBuf>,
    /// Embed the bootstrap in the blob (`image.boot`).
    #[arg(long = "blob-inline-meta", alias = "inline-bootstrap")]
    pub blob_inline_meta: bool,
    /// Blob features: `blob-toc`.
    #[arg(long = "features", value_delimiter = ',')]
    pub features: Vec<String>,
    /// RAFS version (5 or 6).
    #[arg(short = 'v', long = "fs-version", default_value = "6")]
    pub fs_version: String,
    /// none | lz4_block | zstd
    #[arg(long = "compressor")]
    pub compressor: Option<String>,
    /// blake3 | sha256
    #[arg(long = "digester", default_value = "blake3")]
    pub digester: String,
    /// Chunk size, a power of two in [0x1000, 0x1000000] (decimal or 0x hex).
    #[arg(long = "chunk-size", default_value = "0x100000")]
    pub chunk_size: String,
    /// Batch size (0 = off); batching is not built yet.
    #[arg(long = "batch-size", default_value = "0")]
    pub batch_size: String,
    /// oci | overlayfs | none
    #[arg(long = "whiteout-spec", default_value = "oci")]
    pub whiteout_spec: String,
    /// fs | blob | none; `fs` reads absolute paths to prefetch from stdin.
    #[arg(long = "prefetch-policy", default_value = "none")]
    pub prefetch_policy: String,
    /// Chunk dictionary bootstrap (`bootstrap=<path>` or `<path>`): chunks it has are not
    /// stored again, the image refers to its blobs.
    #[arg(long = "chunk-dict")]
    pub chunk_dict: Option<String>,
    /// Parent bootstrap: the new layer is built on top of it (whiteouts act on it) and the
    /// bootstrap written is the merged image.
    #[arg(long = "parent-bootstrap")]
    pub parent_bootstrap: Option<PathBuf>,
    /// Override the blob id.
    #[arg(long = "blob-id")]
    pub blob_id: Option<String>,
    /// `estargztoc-ref`: the eStargz layer's size (hex, `0x` optional); by default the size
    /// of the layer file given as the source.
    #[arg(long = "blob-data-size")]
    pub blob_data_size: Option<String>,
    /// Hidden upstream option: start chunk data at this offset (only 0 is supported).
    #[arg(long = "blob-offset", default_value = "0", hide = true)]
    pub blob_offset: String,
    /// v5 only: align uncompressed chunk offsets to 4 KiB.
    #[arg(long = "aligned-chunk")]
    pub aligned_chunk: bool,
    /// Drop uid/gid for reproducible metadata.
    #[arg(long = "repeatable")]
    pub repeatable: bool,
    /// Skip the post-build validation.
    #[arg(long = "disable-check", hide = true)]
    pub disable_check: bool,
    /// Encrypt chunks; not built yet.
    #[arg(short = 'E', long = "encrypt")]
    pub encrypt: bool,
    /// Write `<id>.blob.data` (uncompressed, 4 KiB aligned, kernel-mountable) and
    /// `<id>.blob.meta` to this directory instead of a blob.
    #[arg(long = "blob-cache-dir")]
    pub blob_cache_dir: Option<PathBuf>,
    /// Nydus configuration file (accepted; only needed for remote backends).
    #[arg(short = 'C', long = "config")]
    pub config: Option<PathBuf>,
    /// Write the build result as JSON here.
    #[arg(short = 'J', long = "output-json")]
    pub output_json: Option<PathBuf>,
    /// Where the blob goes: localfs, s3, oss or registry (README, "Storage backends").
    #[arg(long = "backend-type", alias = "backend_type")]
    pub backend_type: Option<String>,
    /// The backend's configuration JSON (localfs: `{"dir": D}` or `{"blob_file": F}`).
    #[arg(long = "backend-config", alias = "backend_config")]
    pub backend_config: Option<String>,
    /// The backend's configuration in a file.
    #[arg(long = "backend-config-file", alias = "backend_config_file")]
    pub backend_config_file: Option<PathBuf>,
    /// Upload the blob even if the backend has it already.
    #[arg(long = "backend-force-push", alias = "backend_force_push")]
    pub backend_force_push: bool,
    /// Worker threads for hashing and compression (default: all cores).
    #[arg(long = "threads")]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Bootstrap file (positional form).
    pub bootstrap_pos: Option<PathBuf>,
    /// Bootstrap file.
    #[arg(short = 'B', long = "bootstrap")]
    pub bootstrap: Option<PathBuf>,
    #[command(flatten)]
    pub blobs: BlobSourceArgs,
    /// Nydus configuration file (accepted for compatibility).
    #[arg(short = 'C', long = "config")]
    pub config: Option<PathBuf>,
    /// Print every inode.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Write the result as JSON here.
    #[arg(short = 'J', long = "output-json")]
    pub output_json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Bootstrap file (positional form).
    pub bootstrap_pos: Option<PathBuf>,
    /// Bootstrap file.
    #[arg(short = 'B', long = "bootstrap")]
    pub bootstrap: Option<PathBuf>,
    #[command(flatten)]
    pub blobs: BlobSourceArgs,
    /// Nydus configuration file (accepted for compatibility; blobs come from -b/-D).
    #[arg(short = 'C', long = "config")]
    pub config: Option<PathBuf>,
    /// One request: stats | blobs | prefetch | ls [dir] | stat <path> | chunks <path> | icheck <ino>.
    #[arg(short = 'R', long = "request")]
    pub request: Option<String>,
    /// Text instead of JSON.
    #[arg(long = "text")]
    pub text: bool,
}

#[derive(Debug, Args)]
pub struct StatArgs {
    /// Bootstrap file (positional form).
    pub bootstrap_pos: Option<PathBuf>,
    /// Bootstrap file.
    #[arg(short = 'B', long = "bootstrap")]
    pub bootstrap: Option<PathBuf>,
    /// Directory of bootstraps (statistics over all of them).
    #[arg(short = 'D', long = "blob-dir")]
    pub blob_dir: Option<PathBuf>,
    /// Target bootstrap, whose dedup against the others is reported.
    #[arg(short = 'T', long = "target")]
    pub target: Option<PathBuf>,
    /// Accepted for compatibility: each bootstrap's chunks carry their own digester.
    #[arg(long = "digester", default_value = "blake3")]
    pub digester: String,
    /// Nydus configuration file (accepted for compatibility; statistics need no blobs).
    #[arg(short = 'C', long = "config")]
    pub config: Option<PathBuf>,
    /// Write the statistics as JSON here.
    #[arg(short = 'J', long = "output-json")]
    pub output_json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// Bootstrap file (positional form).
    pub bootstrap_pos: Option<PathBuf>,
    /// Bootstrap file.
    #[arg(short = 'B', long = "bootstrap")]
    pub bootstrap: Option<PathBuf>,
    #[command(flatten)]
    pub blobs: BlobSourceArgs,
    /// Output tar file (`-`: stream the archive to stdout).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Export as a raw block image (required).
    #[arg(long = "block")]
    pub block: bool,
    /// Bootstrap file.
    #[arg(short = 'B', long = "bootstrap")]
    pub bootstrap: Option<PathBuf>,
    /// Directory holding the blobs (named by blob id, or `<id>.blob.data` cache files).
    #[arg(short = 'D', long = "localfs-dir", alias = "blob-dir")]
    pub localfs_dir: Option<PathBuf>,
    /// Output file (default `<bootstrap>.disk`).
    #[arg(short = 'O', long = "output")]
    pub output: Option<PathBuf>,
    /// Nydus configuration file (accepted for compatibility; blobs come from -D).
    #[arg(short = 'C', long = "config")]
    pub config: Option<PathBuf>,
    /// Worker threads (1..32).
    #[arg(long = "threads", default_value = "4")]
    pub threads: usize,
    /// Append a dm-verity hash tree; not built yet.
    #[arg(long = "verity")]
    pub verity: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Per-layer bootstraps (or data blobs with an inline bootstrap), lowest layer first.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Output bootstrap.
    #[arg(short = 'B', long = "bootstrap")]
    pub bootstrap: PathBuf,
    /// Start from this bootstrap as the lowest layer.
    #[arg(long = "parent-bootstrap")]
    pub parent_bootstrap: Option<PathBuf>,
    /// `bootstrap=<file>` (or a path): blobs of this dictionary may appear in the sources.
    #[arg(long = "chunk-dict")]
    pub chunk_dict: Option<String>,
    /// fs: prefetch the paths read from stdin (one per line); none.
    #[arg(long = "prefetch-policy", default_value = "none")]
    pub prefetch_policy: String,
    /// Whiteout convention of the upper layers (oci, overlayfs, none).
    #[arg(long = "whiteout-spec", default_value = "oci")]
    pub whiteout_spec: String,
    /// Per source: the new blob id (hex digest).
    #[arg(long = "blob-digests", value_delimiter = ',')]
    pub blob_digests: Option<Vec<String>>,
    /// Per source: the blob id to use (instead of the file name stem).
    #[arg(long = "original-blob-ids", value_delimiter = ',')]
    pub original_blob_ids: Option<Vec<String>>,
    /// Per source: the blob's compressed size.
    #[arg(long = "blob-sizes", value_delimiter = ',')]
    pub blob_sizes: Option<Vec<u64>>,
    /// Per source: the blob's ToC digest (hex).
    #[arg(long = "blob-toc-digests", value_delimiter = ',')]
    pub blob_toc_digests: Option<Vec<String>>,
    /// Per source: the blob's ToC size.
    #[arg(long = "blob-toc-sizes", value_delimiter = ',')]
    pub blob_toc_sizes: Option<Vec<u64>>,
    /// Nydus configuration (backend access to the blobs); not built yet.
    #[arg(short = 'C', long = "config")]
    pub config: Option<PathBuf>,
    /// Write the result (bootstrap, merged blob table) as JSON here.
    #[arg(short = 'J', long = "output-json")]
    pub output_json: Option<PathBuf>,
}

/// Picks the bootstrap path from `-B` or the positional form.
pub fn bootstrap_arg(pos: &Option<PathBuf>, flag: &Option<PathBuf>) -> Result<PathBuf> {
    match (pos, flag) {
        (Some(_), Some(_)) => {
            bail!("give the bootstrap either positionally or with -B, not both")
        }
        (Some(p), None) | (None, Some(p)) => Ok(p.clone()),
        (None, None) => bail!("a bootstrap is required (-B <file>)"),
    }
}

/// `--chunk-dict bootstrap=<file>` (or a bare path) to the dictionary's path.
pub fn chunk_dict_path(arg: &str) -> Result<PathBuf> {
    let p = match arg.split_once('=') {
        Some(("bootstrap", p)) => p,
        Some((kind, _)) => {
            bail!("invalid --chunk-dict {arg:?}: unknown kind {kind:?} (expected bootstrap=<file>)")
        }
        None => arg,
    };
    if p.is_empty() {
        bail!("invalid --chunk-dict {arg:?}: no file given");
    }
    Ok(PathBuf::from(p))
}

/// Parses a size given in decimal or `0x` hex.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `--chunk-size`: a power of two in `[0x1000, 0x1000000]`.
pub fn parse_chunk_size(s: &str) -> anyhow::Result<u32> {
    parse_size(s)
        .filter(|v| v.is_power_of_two() && (0x1000..=0x100_0000).contains(v))
        .map(|v| v as u32)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "invalid --chunk-size {s:?}: expected a power of two in [0x1000, 0x1000000]"
            )
        })
}

/// `--compressor` of a build: none, lz4_block or zstd (gzip is only read).
pub fn parse_compressor(s: &str) -> anyhow::Result<nydus_core::model::Compressor> {
    use nydus_core::model::Compressor;
    match Compressor::from_name(s) {
        Some(Compressor::Gzip) | None => {
            bail!("invalid --compressor {s:?}: expected none, lz4_block or zstd")
        }
        Some(c) => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("0x100000"), Some(0x100000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("zz"), None);
    }

    #[test]
    fn chunk_dict_args() {
        assert_eq!(
            chunk_dict_path("bootstrap=/a/b").unwrap(),
            PathBuf::from("/a/b")
        );
        assert_eq!(chunk_dict_path("/a/b").unwrap(), PathBuf::from("/a/b"));
        assert!(chunk_dict_path("registry=x").is_err());
        assert!(chunk_dict_path("bootstrap=").is_err());
    }

    #[test]
    fn old_backend_syntax_parses() {
        let c = Cli::try_parse_from([
            "nydus-image",
            "create",
            "--bootstrap",
            "b",
            "--backend_type",
            "localfs",
            "--backend_config",
            r#"{"dir":"d"}"#,
            "src",
        ])
        .unwrap();
        match c.command {
            Command::Create(a) => assert_eq!(a.backend_type.as_deref(), Some("localfs")),
            _ => panic!(),
        }
    }
}

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// The bootstrap to optimize.
    #[arg(short = 'B', long = "bootstrap")]
    pub bootstrap: PathBuf,
    /// Prefetch list: upstream's JSON (`{"version":"v1","files":[{"path":..,"ranges":[[offset,length],..]}]}`)
    /// or text lines `/path start-end, start-end` (half-open byte ranges; a bare path is the whole file).
    #[arg(short = 'p', long = "prefetch-files")]
    pub prefetch_files: PathBuf,
    #[command(flatten)]
    pub blobs: BlobSourceArgs,
    /// Nydus configuration file (accepted for compatibility; blobs come from -b/-D/--backend-*).
    #[arg(short = 'C', long = "config")]
    pub config: Option<PathBuf>,
    /// The optimized bootstrap.
    #[arg(
        short = 'O',
        long = "output-bootstrap",
        default_value = "optimized_bootstrap"
    )]
    pub output_bootstrap: PathBuf,
    /// Directory for the new blob (named by its id) and its `.blob.meta` (default: the
    /// output bootstrap's directory).
    #[arg(long = "output-blob-dir")]
    pub output_blob_dir: Option<PathBuf>,
    /// A listed path not in the image, or a range past a file's end, is an error.
    #[arg(long = "strict")]
    pub strict: bool,
    /// Write the result as JSON here.
    #[arg(short = 'J', long = "output-json")]
    pub output_json: Option<PathBuf>,
}
