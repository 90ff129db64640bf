//! Messages for the user: to stderr, and also appended to the `-L/--log-file` if one is given.
//! Levels follow `-l/--log-level` (`trace|debug|info|warn|error`).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};

/// Message levels, most verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warn" => Level::Warn,
            "error" => Level::Error,
            _ => bail!("invalid --log-level {s:?}: expected trace, debug, info, warn or error"),
        })
    }
    fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug)]
struct Logger {
    level: Level,
    file: Option<Mutex<File>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the level and the optional log file; call once at start-up.
pub fn init(level: &str, file: Option<&Path>) -> Result<()> {
    let level = Level::parse(level)?;
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
    let _ = LOGGER.set(Logger { level, file });
    Ok(())
}

/// Emits one message at `level`.
pub fn log(level: Level, msg: &str) {
    let (min, file) = match LOGGER.get() {
        Some(l) => (l.level, l.file.as_ref()),
        None => (Level::Info, None),
    };
    if level < min {
        return;
    }
    eprintln!("{}: {msg}", level.name());
    if let Some(f) = file {
        if let Ok(mut f) = f.lock() {
            let _ = writeln!(f, "{}: {msg}", level.name());
        }
    }
}

/// Appends a message to the log file only (for what the caller prints itself).
pub fn record(level: Level, msg: &str) {
    if let Some(f) = LOGGER.get().and_then(|l| l.file.as_ref()) {
        if let Ok(mut f) = f.lock() {
            let _ = writeln!(f, "{}: {msg}", level.name());
        }
    }
}

/// A warning (something skipped or unusual, the command goes on).
pub fn warn(msg: &str) {
    log(Level::Warn, msg);
}

/// Progress and results worth a line.
pub fn info(msg: &str) {
    log(Level::Info, msg);
}
