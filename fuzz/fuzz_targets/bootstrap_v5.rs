//! Any bytes given to the RAFS v5 decoder (whatever their magic): opening, checking, walking,
//! reading every record and planning reads must return errors, never panic, hang or allocate
//! unboundedly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nydus_core::read::{self, Filesystem};
use nydus_core::v5::check::check;
use nydus_core::v5::reader::Bootstrap;

fuzz_target!(|data: &[u8]| {
    if let Ok(boot) = Bootstrap::open(data.to_vec()) {
        let _ = check(&boot);
        let _ = read::walk(&boot, &mut |_, i| {
            let _ = boot.xattrs(i.nid);
            let _ = boot.all_chunks(i.nid);
            let _ = read::plan(&boot, i, i.size / 3, i.size / 2 + 1);
            let _ = boot.symlink(i.nid);
            let _ = boot.digests(i.nid);
            let _ = boot.lookup_child(i.nid, b"a");
            Ok(())
        });
        let _ = boot.prefetch();
        let _ = boot.chunk_table();
        let _ = boot.has_hardlink_flag();
        let _ = read::lookup(&boot, b"/a/b");
    }
});
