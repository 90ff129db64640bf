//! Validation of new bootstraps: every build and merge decodes and checks what it wrote
//! before committing it.

use anyhow::{bail, Result};
use nydus_core::rafs::Rafs as Bootstrap;

/// Checks a bootstrap's bytes as the post-build validation of `create` and `merge`.
pub fn self_check(bootstrap: &[u8]) -> Result<()> {
    let boot = Bootstrap::open(bootstrap.to_vec())
        .map_err(|e| anyhow::anyhow!("the new bootstrap does not decode: {e}"))?;
    let report = boot.check();
    if !report.is_ok() {
        let list: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
        bail!(
            "the new bootstrap violates the format:\n  {}",
            list.join("\n  ")
        );
    }
    Ok(())
}
