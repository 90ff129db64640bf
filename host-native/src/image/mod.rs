//! The `nydus-image` command: argument surface and one module per subcommand.

pub mod args;
pub mod blobsrc;
pub mod check;
pub mod create;
pub mod export;
pub mod inspect;
pub mod layered;
pub mod merge;
pub mod stat;
pub mod unpack;

use anyhow::Result;
use args::{Cli, Command};

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
    }
}
