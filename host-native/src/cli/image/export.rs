//! `nydus-image export --block`: the options checked, the export, and its summary line.

use anyhow::{bail, Context, Result};
use nydus_host_image::export::{export_block, ExportOptions};

use super::args::ExportArgs;
use crate::cli::out;

pub fn run(a: ExportArgs) -> Result<()> {
    if !a.block {
        bail!("export needs --block (the only export format)");
    }
    if a.verity {
        bail!("--verity is not supported by this nydus-image yet");
    }
    if !(1..=32).contains(&a.threads) {
        bail!("invalid --threads {}: expected 1..32", a.threads);
    }
    let path = a.bootstrap.clone().context("export needs --bootstrap")?;
    let output = a.output.clone().unwrap_or_else(|| {
        let mut p = path.clone().into_os_string();
        p.push(".disk");
        p.into()
    });
    let blocks = export_block(&ExportOptions {
        bootstrap: path.clone(),
        blob_dir: a.localfs_dir.clone(),
        output: output.clone(),
        threads: a.threads,
    })?;
    out!(
        "exported {} ({blocks} blocks) to {}",
        path.display(),
        output.display()
    );
    Ok(())
}
