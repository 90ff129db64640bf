//! Why a plugin could not be loaded, and why a plugin rejected an event.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A plugin that cannot be used: the file and the problem.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub problem: LoadProblem,
}

/// What is wrong with a plugin file.
#[derive(Debug)]
pub enum LoadProblem {
    /// The file cannot be read.
    Read(std::io::Error),
    /// It does not start with the WebAssembly magic (`\0asm`).
    NotWasm,
    /// wasmtime refused to compile it (invalid module, unsupported feature).
    Invalid(String),
    /// It exports no `_start` function taking and returning nothing: not a command module.
    NoStart,
    /// It imports something the sandbox does not give (only WASI preview 1 is there).
    Imports(String),
    /// Its configuration file (`<name>.json` beside it) is not readable JSON.
    Config { path: PathBuf, reason: String },
    /// The engine could not be set up.
    Engine(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hook plugin {}: ", self.path.display())?;
        match &self.problem {
            LoadProblem::Read(e) => write!(f, "cannot be read: {e}"),
            LoadProblem::NotWasm => write!(
                f,
                "not a WebAssembly module (it does not start with \\0asm)"
            ),
            LoadProblem::Invalid(e) => write!(f, "not a valid WebAssembly module: {e}"),
            LoadProblem::NoStart => write!(
                f,
                "not a WASI command module: it exports no `_start` function (build it for wasm32-wasip1 as a binary)"
            ),
            LoadProblem::Imports(e) => write!(
                f,
                "imports what the sandbox does not give (only wasi_snapshot_preview1): {e}"
            ),
            LoadProblem::Config { path, reason } => {
                write!(f, "its configuration {}: {reason}", path.display())
            }
            LoadProblem::Engine(e) => write!(f, "the WebAssembly engine failed: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// A plugin said no (or could not say yes).
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The plugin's name (its file name without `.wasm`).
    pub plugin: String,
    pub reason: Reason,
    /// What the plugin wrote to stderr (at most the output limit).
    pub stderr: String,
}

/// Why a plugin rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// It exited with this non-zero code.
    Exit(i32),
    /// It trapped (a panic, `unreachable`, an out-of-bounds access, ...).
    Trap(String),
    /// It ran past the wall-clock deadline.
    Deadline(Duration),
    /// It used up its fuel.
    Fuel(u64),
    /// It asked for more linear memory than the limit (bytes).
    Memory(u64),
    /// It wrote more than the limit (bytes) to stdout or stderr.
    Output(usize),
    /// The host could not run it (the sandbox could not be set up).
    Host(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Exit(c) => write!(f, "exit code {c}"),
            Reason::Trap(t) => write!(f, "trapped: {t}"),
            Reason::Deadline(d) => write!(f, "stopped at its deadline of {d:?}"),
            Reason::Fuel(n) => write!(f, "stopped when its fuel of {n} ran out"),
            Reason::Memory(n) if n % (1 << 20) == 0 => {
                write!(f, "stopped at its memory limit of {} MiB", n >> 20)
            }
            Reason::Memory(n) => write!(f, "stopped at its memory limit of {n} bytes"),
            Reason::Output(n) => write!(f, "output cut at its limit of {n} bytes"),
            Reason::Host(e) => write!(f, "could not be run: {e}"),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hook plugin {} rejected ({})", self.plugin, self.reason)?;
        let said = self.stderr.trim();
        if !said.is_empty() {
            // The end of what it said: the reason is usually the last thing written.
            let lines: Vec<&str> = said.lines().collect();
            let tail = &lines[lines.len().saturating_sub(5)..];
            let mut text = tail.join("; ");
            if text.len() > 2000 {
                let mut cut = text.len() - 2000;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                text = format!("...{}", &text[cut..]);
            }
            write!(f, ": {text}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_names_the_plugin_the_reason_and_what_it_said_last() {
        let r = Rejection {
            plugin: "policy".into(),
            reason: Reason::Exit(1),
            stderr: "checking\n/usr/bin/su is setuid root\n".into(),
        };
        assert_eq!(
            r.to_string(),
            "hook plugin policy rejected (exit code 1): checking; /usr/bin/su is setuid root"
        );
        let e = LoadError {
            path: "x.wasm".into(),
            problem: LoadProblem::NoStart,
        };
        assert!(e
            .to_string()
            .starts_with("hook plugin x.wasm: not a WASI command"));
    }
}
