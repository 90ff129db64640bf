//! Any bytes given to the RAFS v5 decoder (whatever their magic): opening, checking, walking
//! and reading every record must return errors, never panic, hang or allocate unboundedly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nydus_core::read::{lookup, walk, Filesystem};
use nydus_core::v5::check::check;
use nydus_core::v5::reader::Bootstrap;

fuzz_target!(|data: &[u8]| {
    if let Ok(boot) = Bootstrap::open(data.to_vec()) {
        let _ = check(&boot);
        let _ = walk(&boot, &mut |_, i| {
            let _ = boot.xattrs(i.nid);
            let _ = boot.all_chunks(i.nid);
            let _ = boot.symlink(i.nid);
            let _ = boot.digests(i.nid);
            Ok(())
        });
        let _ = boot.prefetch();
        let _ = boot.chunk_table();
        let _ = boot.has_hardlink_flag();
        let _ = lookup(&boot, b"/a/b");
    }
});
