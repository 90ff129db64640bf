//! The `nydus-image` command line: the argument surface, and per subcommand its options
//! turned into the library's plans and its results printed.

pub mod args;
pub mod blobs;
pub mod check;
pub mod create;
pub mod export;
pub mod inspect;
pub mod merge;
pub mod optimize;
pub mod stat;
pub mod unpack;

use std::io::Read;

use anyhow::{Context, Result};
use args::{Cli, Command};

/// Reads the prefetch patterns of `--prefetch-policy fs` from stdin (absolute paths, one per
/// line; see [`nydus_host_image::prefetch::patterns_from_lines`]).
pub fn read_prefetch_patterns() -> Result<Vec<String>> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading prefetch patterns from stdin")?;
    Ok(nydus_host_image::prefetch::patterns_from_lines(&input))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Create(a) => create::run(*a),
        Command::Check(a) => check::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Stat(a) => stat::run(a),
        Command::Unpack(a) => unpack::run(a),
        Command::Export(a) => export::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Optimize(a) => optimize::run(a),
    }
}
