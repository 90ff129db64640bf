//! Any bytes given as a bootstrap: opening, checking, walking and reading every inode must
//! return errors, never panic, hang or allocate unboundedly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nydus_core::v6::check::check;
use nydus_core::v6::reader::Bootstrap;

fuzz_target!(|data: &[u8]| {
    if let Ok(boot) = Bootstrap::open(data.to_vec()) {
        let _ = check(&boot);
        let _ = boot.walk(&mut |_, i| {
            let _ = boot.xattrs(i.nid);
            let _ = boot.chunks(i.nid);
            let _ = boot.symlink(i.nid);
            Ok(())
        });
        let _ = boot.prefetch();
        let _ = boot.lookup(b"/a/b");
    }
});
