//! `nydusify`: Nydus images in registries.

use clap::Parser;
use nydus_host_native::log;

fn main() {
    let cli = nydus_host_native::cli::nydusify::Cli::parse();
    let result =
        log::init(&cli.log_level, None).and_then(|()| nydus_host_native::cli::nydusify::run(cli));
    if let Err(e) = result {
        log::record(log::Level::Error, &format!("{e:#}"));
        eprintln!("nydusify: error: {e:#}");
        std::process::exit(1);
    }
}
