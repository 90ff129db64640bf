//! `nydusify`: Nydus images in registries.

use clap::Parser;
use nydus_host_native::log;

fn main() {
    let cli = nydus_host_native::cli::nydusify::Cli::parse();
    // The mount stops on signals itself (it unmounts first).
    let mounts = matches!(
        cli.command,
        nydus_host_native::cli::nydusify::Command::Mount(_)
    );
    let result = log::init(cli.level(), cli.log_file.as_deref())
        .and_then(|()| {
            if mounts {
                Ok(())
            } else {
                nydus_host_native::interrupt::clean_up_on_signals("nydusify")
            }
        })
        .and_then(|()| nydus_host_native::cli::nydusify::run(cli));
    nydus_host_native::interrupt::wait_if_interrupted();
    if let Err(e) = result {
        if nydus_host_native::cli::is_broken_pipe(&e) {
            nydus_host_native::cli::exit_on_broken_pipe();
        }
        log::record(log::Level::Error, &format!("{e:#}"));
        eprintln!("nydusify: error: {e:#}");
        std::process::exit(1);
    }
}
