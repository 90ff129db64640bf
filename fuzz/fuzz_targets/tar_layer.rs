//! Any bytes given as a layer tar: the host's stream reader (through the core's tree builder)
//! must return an error or a tree, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nydus_host_image::tarsrc::read_layer_bytes(data);
});
