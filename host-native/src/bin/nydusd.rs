//! `nydusd`: a Nydus image served with FUSE, started as upstream's daemon is.

use clap::Parser;
use nydus_host_native::log;

fn main() {
    let a = nydus_host_native::cli::nydusd::NydusdArgs::parse();
    let result = log::init(&a.log_level, a.log_file.as_deref())
        .and_then(|()| nydus_host_native::cli::nydusd::run(a));
    if let Err(e) = result {
        log::record(log::Level::Error, &format!("{e:#}"));
        eprintln!("nydusd: error: {e:#}");
        std::process::exit(1);
    }
}
