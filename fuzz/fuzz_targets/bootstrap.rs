//! Any bytes given as a bootstrap (v6, or v5 by its magic): opening, checking, walking and
//! reading every inode must return errors, never panic, hang or allocate unboundedly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nydus_core::rafs::Rafs;
use nydus_core::read::Filesystem;

fuzz_target!(|data: &[u8]| {
    if let Ok(boot) = Rafs::open(data.to_vec()) {
        let _ = boot.check();
        let _ = boot.walk(&mut |_, i| {
            let _ = boot.xattrs(i.nid);
            let _ = boot.all_chunks(i.nid);
            let _ = boot.symlink(i.nid);
            Ok(())
        });
        let _ = boot.prefetch();
        let _ = boot.lookup(b"/a/b");
    }
});
