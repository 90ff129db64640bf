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
