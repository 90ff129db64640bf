//! Messages for the user: to stderr, and also appended to the `-L/--log-file` if one is given.
//! Levels follow `-l/--log-level` (`trace|debug|info|warn|error`).
//!
//! The libraries log through the `log` facade (`log::warn!`, `log::info!`); this is its
//! logger. It shows only records of this workspace's crates (targets starting with `nydus_`),
//! not those of the HTTP and TLS stacks.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};
pub use log::Level;

fn parse_level(s: &str) -> Result<Level> {
    Ok(match s {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => bail!("invalid --log-level {s:?}: expected trace, debug, info, warn or error"),
    })
}

fn name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warning",
        Level::Error => "error",
    }
}

#[derive(Debug)]
struct State {
    level: Level,
    file: Option<Mutex<File>>,
}

#[derive(Debug)]
struct Logger(OnceLock<State>);

static LOGGER: Logger = Logger(OnceLock::new());

impl Logger {
    fn append(&self, level: Level, msg: &str) {
        if let Some(f) = self.0.get().and_then(|s| s.file.as_ref()) {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{}: {msg}", name(level));
            }
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        let min = self.0.get().map_or(Level::Info, |s| s.level);
        m.target().starts_with("nydus_") && m.level() <= min
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        eprintln!("{}: {msg}", name(r.level()));
        self.append(r.level(), &msg);
    }

    fn flush(&self) {
        if let Some(f) = self.0.get().and_then(|s| s.file.as_ref()) {
            if let Ok(mut f) = f.lock() {
                let _ = f.flush();
            }
        }
    }
}

/// Sets the level and the optional log file and installs the logger; call once at start-up.
pub fn init(level: &str, file: Option<&Path>) -> Result<()> {
    let level = parse_level(level)?;
    let file = match file {
        Some(p) => Some(Mutex::new(
            File::options()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening log file {}", p.display()))?,
        )),
        None => None,
    };
    let _ = LOGGER.0.set(State { level, file });
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level.to_level_filter());
    }
    Ok(())
}

/// Appends a message to the log file only (for what the caller prints itself).
pub fn record(level: Level, msg: &str) {
    LOGGER.append(level, msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_are_named_as_before() {
        assert_eq!(parse_level("warn").unwrap(), Level::Warn);
        assert_eq!(name(Level::Warn), "warning");
        let e = parse_level("loud").unwrap_err().to_string();
        assert!(e.contains("invalid --log-level"), "{e}");
        assert!(
            Level::Debug > Level::Info,
            "more verbose levels compare greater"
        );
    }
}
