//! Any bytes as what a registry or an image hands nydusify: a manifest or index document, a
//! bootstrap layer (gzip or plain tar), an image reference, a prefetch list (the layer's
//! `image/prefetch.files`; a parsed list must survive its JSON round trip). Each decoder must
//! return an error or a value, never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nydus_core::oci::{bootstrap_layer, manifest, reference};
use nydus_core::prefetch_list;

fuzz_target!(|data: &[u8]| {
    let _ = manifest::parse_document(None, data);
    let _ = manifest::parse_document(Some(nydus_core::oci::media::OCI_INDEX), data);
    let _ = bootstrap_layer::extract_files(data, 16 << 20);
    if let Ok((list, _)) = prefetch_list::parse(data) {
        let (back, warnings) = prefetch_list::parse(prefetch_list::to_json(&list).as_bytes())
            .expect("a written list parses");
        assert_eq!(back, list);
        assert!(warnings.is_empty());
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = reference::Reference::parse(s);
    }
});
