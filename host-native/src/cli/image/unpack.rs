//! `nydus-image unpack`: the filesystem as a tar archive, written under a temporary name and
//! renamed into place when complete.

use anyhow::Result;
use nydus_host_image::unpack::unpack;
use nydus_host_storage::atomic::AtomicFile;
use nydus_host_storage::open_image;

use super::args::{bootstrap_arg, UnpackArgs};

pub fn run(a: UnpackArgs) -> Result<()> {
    let path = bootstrap_arg(&a.bootstrap_pos, &a.bootstrap)?;
    let locator = super::blobs::locator(&a.blobs)?;
    let img = open_image(&path)?;
    let mut out = AtomicFile::create(&a.output)?;
    let dest = a.output.display().to_string();
    let skipped = unpack(&img, locator, out.file(), &dest)?;
    out.commit()?;
    if skipped > 0 {
        log::warn!("{skipped} socket(s) skipped");
    }
    Ok(())
}
