//! The golden-vector checks of `core/tests/{worked_example,upstream_golden}.rs`, the eStargz
//! vectors of `core/src/stargz/build.rs` and the
//! decode-error table of `core/tests/decode_errors.rs`, compiled to `wasm32-unknown-unknown`
//! and run by `run.mjs` under Node, so the WASM build of the core is proven to encode and
//! decode the same bytes, and to refuse the same corruptions with the same typed errors, as
//! the native one.

use std::sync::Mutex;

use nydus_core::blob::reader::extract_inline_bootstrap;
use nydus_core::digest::sha256;
use nydus_core::listing::listing;
use nydus_core::memimage::{build, worked_example, MemOptions};
use nydus_core::model::Compressor;
use nydus_core::rafs::Rafs as Bootstrap;

const WORKED_BOOT: &[u8] = include_bytes!("../../../core/tests/golden/worked-example.boot");
const TREE: &str = include_str!("../../../core/tests/golden/tree.listing");
const DIR_ZSTD: (&[u8], &[u8]) = (
    include_bytes!("../../../core/tests/golden/upstream/up-dir-zstd.boot"),
    include_bytes!("../../../core/tests/golden/upstream/up-dir-zstd.blob"),
);
const DIR_LZ4: (&[u8], &[u8]) = (
    include_bytes!("../../../core/tests/golden/upstream/up-dir-lz4-sha256.boot"),
    include_bytes!("../../../core/tests/golden/upstream/up-dir-lz4-sha256.blob"),
);
const DIR_V5: (&[u8], &[u8]) = (
    include_bytes!("../../../core/tests/golden/upstream/up-dir-v5.boot"),
    include_bytes!("../../../core/tests/golden/upstream/up-dir-v5.blob"),
);
const LAYER: &[u8] = include_bytes!("../../../core/tests/golden/upstream/up-layer-inline-toc.blob");
const STARGZ_SAMPLE: &[u8] = include_bytes!("../../../core/tests/golden/stargz/sample-toc.json");
const STARGZ_TWO: &[u8] = include_bytes!("../../../core/tests/golden/stargz/two.esgz");
const STARGZ_TWO_LISTING: &str = include_str!("../../../core/tests/golden/stargz/two.listing");

/// The mutation table shared with `core/tests/decode_errors.rs`.
mod mutations {
    include!("../../../core/tests/shared/decode_mutations.rs");
}

static MESSAGE: Mutex<String> = Mutex::new(String::new());

/// Runs every golden check; returns the number of checks passed, or fails with a message.
pub fn run_all() -> Result<u32, String> {
    let mut passed = 0;
    let img = build(
        &worked_example(),
        &MemOptions {
            compressor: Compressor::None,
            ..Default::default()
        },
    )
    .map_err(|e| format!("worked example build: {e}"))?;
    if sha256(&img.bootstrap) != sha256(WORKED_BOOT) {
        return Err("worked example: encoded bootstrap differs from the golden file".into());
    }
    if img.blob_info.blob_id != "350fea00b001c21bc5901eeb0cf2a04ab7a282b23fefce94b5b01c809a0fd779" {
        return Err(format!("worked example: blob id {}", img.blob_info.blob_id));
    }
    passed += 1;
    for (name, (boot, blob)) in [
        ("up-dir-zstd", DIR_ZSTD),
        ("up-dir-lz4-sha256", DIR_LZ4),
        ("up-dir-v5", DIR_V5),
    ] {
        let b = Bootstrap::open(boot).map_err(|e| format!("{name}: {e}"))?;
        let rep = b.check();
        if !rep.findings.is_empty() {
            return Err(format!("{name}: {:?}", rep.findings));
        }
        let l = listing(&b, &[blob]).map_err(|e| format!("{name}: {e}"))?;
        if l != TREE {
            return Err(format!("{name}: listing differs:\n{l}"));
        }
        passed += 1;
    }
    let inner = extract_inline_bootstrap(LAYER).map_err(|e| format!("layer: {e}"))?;
    let b = Bootstrap::open(inner).map_err(|e| format!("layer: {e}"))?;
    let want = TREE.replacen("/\tdir\t755\t0:0\t0\t", "/\tdir\t755\t0:0\t1700000000\t", 1);
    if listing(&b, &[LAYER]).map_err(|e| format!("layer: {e}"))? != want {
        return Err("layer: listing differs".into());
    }
    passed += 1;
    // eStargz: upstream's TOC test vector, and a real layer built and read back (its chunks
    // inflated from the layer's own gzip members).
    let sample = nydus_core::stargz::build_from_toc(
        STARGZ_SAMPLE,
        &nydus_core::stargz::StargzOptions {
            blob_id: "0".repeat(64),
            blob_size: 0x100_0000,
        },
    )
    .map_err(|e| format!("stargz sample: {e}"))?;
    if sha256(&sample.ci_section).to_hex()
        != "bd4eff3fe6f5a352457c076d2133583e43db895b4af08d717b3fbcaeca89834e"
    {
        return Err("stargz sample: the ci section differs from upstream's vector".into());
    }
    passed += 1;
    let boot = nydus_core::stargz::layer_bootstrap(STARGZ_TWO, &sha256(STARGZ_TWO).to_hex())
        .map_err(|e| format!("stargz layer: {e}"))?;
    let b = Bootstrap::open(boot).map_err(|e| format!("stargz layer: {e}"))?;
    if listing(&b, &[STARGZ_TWO]).map_err(|e| format!("stargz layer: {e}"))? != STARGZ_TWO_LISTING {
        return Err("stargz layer: listing differs".into());
    }
    passed += 1;
    for v5 in [false, true] {
        mutations::run(v5)?;
        passed += 1;
    }
    Ok(passed)
}

/// Entry point for Node: the number of checks passed, or 0 with a message in [`message_ptr`].
#[allow(unsafe_code)] // `no_mangle` exports the symbol; no unsafe operation is involved.
#[no_mangle]
pub extern "C" fn golden_run() -> u32 {
    let r = run_all();
    let mut m = MESSAGE.lock().unwrap_or_else(|p| p.into_inner());
    match r {
        Ok(n) => {
            *m = format!("{n} golden checks passed");
            n
        }
        Err(e) => {
            *m = e;
            0
        }
    }
}

/// Address of the last message (UTF-8) in linear memory.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn message_ptr() -> u32 {
    MESSAGE.lock().unwrap_or_else(|p| p.into_inner()).as_ptr() as usize as u32
}

/// Length of the last message.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn message_len() -> u32 {
    MESSAGE.lock().unwrap_or_else(|p| p.into_inner()).len() as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn passes_natively_too() {
        assert_eq!(super::run_all(), Ok(9));
    }
}
