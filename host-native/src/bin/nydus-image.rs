//! `nydus-image`: build, check, inspect, unpack and export RAFS images.

use clap::Parser;
use nydus_host_native::log;

fn main() {
    let cli = nydus_host_native::cli::image::args::Cli::parse();
    let result = log::init(&cli.log_level, cli.log_file.as_deref())
        .and_then(|()| nydus_host_native::interrupt::clean_up_on_signals("nydus-image"))
        .and_then(|()| nydus_host_native::cli::image::run(cli));
    nydus_host_native::interrupt::wait_if_interrupted();
    if let Err(e) = result {
        if nydus_host_native::cli::is_broken_pipe(&e) {
            nydus_host_native::cli::exit_on_broken_pipe();
        }
        log::record(log::Level::Error, &format!("{e:#}"));
        eprintln!("nydus-image: error: {e:#}");
        let inconsistent = e
            .downcast_ref::<nydus_host_native::image::merge::Inconsistent>()
            .is_some();
        std::process::exit(if inconsistent { 2 } else { 1 });
    }
}
