//! The command lines: the clap surfaces, their options turned into the libraries' typed
//! plans and options, and all printing and exit codes.

pub mod image;
pub mod nydusd;
pub mod nydusify;

use std::io::Write;

/// Whether `e` (anywhere in its chain) is a write to a pipe whose reader has gone.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Ends the process as a shell expects when the reader of stdout has gone (`| head`):
/// quietly, status 141 (128 + SIGPIPE), temporaries removed.
pub fn exit_on_broken_pipe() -> ! {
    nydus_host_storage::atomic::remove_pending();
    std::process::exit(141)
}

/// A line to stdout, as `println!`, but a reader that has gone ends the process quietly
/// ([`exit_on_broken_pipe`]) instead of a panic.
pub fn print_line(args: std::fmt::Arguments<'_>) {
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_fmt(args).and_then(|()| o.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            exit_on_broken_pipe();
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for command output: see [`print_line`].
macro_rules! out {
    ($($t:tt)*) => {
        $crate::cli::print_line(format_args!($($t)*))
    };
}
pub(crate) use out;

/// Fails unless a file can be written at `p`, the path of the output option `flag`: checked
/// before any work, so that a typo costs neither a whole build nor leaves half its outputs.
pub fn check_output_path(p: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    if p.is_dir() {
        anyhow::bail!("{flag} {}: is a directory", p.display());
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "{flag} {}: directory {} does not exist",
            p.display(),
            parent.display()
        );
    }
    tempfile::Builder::new()
        .prefix(".nydus-probe-")
        .tempfile_in(parent)
        .map(drop)
        .with_context(|| {
            format!(
                "{flag} {}: cannot write in {}",
                p.display(),
                parent.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every visible flag and argument of `cmd` and its subcommands without a description.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let builtin = matches!(a.get_id().as_str(), "help" | "version");
            if !builtin && !a.is_hide_set() && a.get_help().is_none() {
                out.push(format!("{path} {}", a.get_id()));
            }
        }
        for s in cmd.get_subcommands() {
            if s.get_name() != "help" {
                undocumented(s, &format!("{path} {}", s.get_name()), out);
            }
        }
    }

    #[test]
    fn every_flag_has_a_description() {
        let mut missing = Vec::new();
        undocumented(
            &super::image::args::Cli::command(),
            "nydus-image",
            &mut missing,
        );
        undocumented(&super::nydusify::Cli::command(), "nydusify", &mut missing);
        undocumented(
            &super::nydusd::NydusdArgs::command(),
            "nydusd",
            &mut missing,
        );
        assert!(missing.is_empty(), "flags without help: {missing:#?}");
    }

    #[test]
    fn built_flags_do_not_say_they_are_not() {
        let help = |c: &clap::Command, sub: &str, flag: &str| -> String {
            let s = c.find_subcommand(sub).expect(sub);
            let a = s
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .expect(flag);
            a.get_help().map(|h| h.to_string()).unwrap_or_default()
        };
        let image = super::image::args::Cli::command();
        for flag in ["parent-bootstrap", "chunk-dict"] {
            let h = help(&image, "create", flag);
            assert!(!h.contains("not built"), "--{flag}: {h}");
        }
    }
}
