//! Stopping on SIGINT, SIGTERM or SIGHUP without leaving anything behind: the temporary
//! files and scratch directories alive at that moment (the register of
//! [`nydus_host_storage::atomic`]) are removed, and the process exits with 128 + the signal,
//! as a shell reports a process killed by it. An output not yet renamed into place never
//! appears, and a manifest not yet pushed leaves no tag.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Set when a signal arrived: the signal thread is cleaning up and will exit.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// When a signal arrived, waits for the signal thread to finish and exit with its status:
/// the command's own end (an error because its scratch files vanished, or success) must not
/// exit first, with another status and before the clean-up is done.
pub fn wait_if_interrupted() {
    while INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::park();
    }
}

/// Installs the handler (a thread waiting for the signals) for the command `tool`.
pub fn clean_up_on_signals(tool: &'static str) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                INTERRUPTED.store(true, Ordering::SeqCst);
                let n = nydus_host_storage::atomic::remove_pending();
                crate::log::record(
                    crate::log::Level::Error,
                    &format!("interrupted by signal {sig}"),
                );
                eprintln!(
                    "{tool}: interrupted by signal {sig}; {n} temporary file(s) and director(ies) removed"
                );
                std::process::exit(128 + sig);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}
