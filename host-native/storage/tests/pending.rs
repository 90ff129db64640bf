//! The register of temporary files and scratch directories, removed on request (what a
//! command line does on SIGINT/SIGTERM). Its own test binary: `remove_pending` removes every
//! entry of the process, which would disturb other tests running beside it.

use std::io::Write;

use nydus_host_storage::atomic::{remove_pending, AtomicFile, Scratch};

/// One test: after `remove_pending` nothing can be made in this process any more.
#[test]
fn pending_files_and_scratch_dirs_are_removed_on_request() {
    let d = tempfile::tempdir().unwrap();
    let work = d.path().join("work");
    // A scratch directory dropped normally takes the work dir it made with it.
    let s = Scratch::new_in(&work, "scratch-").unwrap();
    assert!(work.is_dir());
    drop(s);
    assert!(!work.exists());
    // But not a work dir that was there before.
    std::fs::create_dir(&work).unwrap();
    drop(Scratch::new_in(&work, "scratch-").unwrap());
    assert!(work.is_dir());

    // Now an interrupted run.
    std::fs::remove_dir(&work).unwrap();
    let s = Scratch::new_in(&work, "scratch-").unwrap();
    std::fs::write(s.path().join("x"), b"x").unwrap();
    let mut f = AtomicFile::create(&d.path().join("out")).unwrap();
    f.file().write_all(b"partial").unwrap();
    assert_eq!(remove_pending(), 3);
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    // Dropping afterwards finds nothing to remove and does not fail.
    drop(s);
    drop(f);
    // Nothing new is made after: a signal's clean-up cannot miss it.
    let e = AtomicFile::create(&d.path().join("late")).unwrap_err();
    assert!(e.to_string().contains("interrupted"), "{e}");
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}
