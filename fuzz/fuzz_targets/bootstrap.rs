//! Any bytes given as a bootstrap (v6, or v5 by its magic): opening, checking, walking, reading
//! every inode and planning reads of every file must return errors, never panic, hang or
//! allocate unboundedly.
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
            let _ = boot.plan(i.nid, i.size / 3, i.size / 2 + 1);
            let _ = boot.symlink(i.nid);
            let _ = boot.lookup_child(i.nid, b"a");
            Ok(())
        });
        let _ = boot.prefetch();
        let _ = boot.lookup(b"/a/b");
    }
});
