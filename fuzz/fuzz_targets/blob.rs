//! Any bytes given as a blob: the ToC, inline-bootstrap, ci-table and tar-header decoders must
//! return errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nydus_core::blob::reader::{extract_inline_bootstrap, read_ci_entries, read_toc};
use nydus_core::model::{blob_features, BlobInfo};

fuzz_target!(|data: &[u8]| {
    let _ = read_toc(data);
    let _ = extract_inline_bootstrap(data);
    if data.len() > 16 {
        let n = u32::from_le_bytes([data[0], data[1], data[2], 0]) % 4096;
        let info = BlobInfo {
            chunk_count: n,
            features: blob_features::ALIGNED | if data[3] & 1 == 1 { blob_features::CHUNK_INFO_V2 } else { 0 },
            ci_offset: u64::from(data[4]),
            ci_compressed_size: u64::from(data[5]) * 16,
            ci_uncompressed_size: u64::from(n) * 16,
            ..Default::default()
        };
        let _ = read_ci_entries(data, &info);
    }
    let _ = nydus_core::blob::tarhdr::decode(data, 0);
});
