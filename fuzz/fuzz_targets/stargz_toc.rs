//! Any bytes as an eStargz TOC, footer or TOC member: the TOC builder, the footer parser and
//! the member reader must return errors, never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nydus_core::stargz::footer::{toc_json, toc_offset};
use nydus_core::stargz::{build_from_toc, StargzOptions};

fuzz_target!(|data: &[u8]| {
    let size = data.first().map_or(0, |&b| u64::from(b) << 16);
    let _ = build_from_toc(
        data,
        &StargzOptions {
            blob_id: "0".repeat(64),
            blob_size: size,
        },
    );
    let _ = toc_offset(data);
    let _ = toc_json(data, 0);
});
