//! `nydus-image unpack`: the filesystem as a tar archive, written under a temporary name and
//! renamed into place when complete, or streamed to stdout with `--output -`.

use std::io::Write;

use anyhow::Result;
use nydus_host_image::unpack::unpack;
use nydus_host_storage::atomic::AtomicFile;
use nydus_host_storage::{open_image, ReaderOptions};

use super::args::{bootstrap_arg, UnpackArgs};

pub fn run(a: UnpackArgs) -> Result<()> {
    let path = bootstrap_arg(&a.bootstrap_pos, &a.bootstrap)?;
    let local = super::blobs::locator(&a.blobs)?;
    let img = open_image(&path)?;
    let reader = super::blobs::reader(&img, local, ReaderOptions::default())?;
    let skipped = if a.output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        let n = unpack(&img, reader.as_ref(), &mut out, "stdout")?;
        out.flush()?;
        n
    } else {
        let mut out = AtomicFile::create(&a.output)?;
        let dest = a.output.display().to_string();
        let n = unpack(&img, reader.as_ref(), out.file(), &dest)?;
        out.commit()?;
        n
    };
    if skipped > 0 {
        log::warn!("{skipped} socket(s) skipped");
    }
    Ok(())
}
