//! The allocator's settings for the long-running daemons (`nydusd`, `nydusify mount`).
//!
//! glibc gives each thread that allocates while another holds an arena an arena of its own
//! (up to 8 per core), and every arena keeps the chunk buffers freed in it. The FUSE workers,
//! the read-ahead and the registry client's threads each grew one: 115 MiB peak RSS after a
//! read of a 300 MB image, where two arenas keep 65 MiB at the same speed (bench/mount.sh, 2
//! cores; one arena: 46 MiB but 15 % slower reads).

/// Arenas the daemons use, unless `MALLOC_ARENA_MAX` says otherwise.
pub const DAEMON_ARENAS: i32 = 2;

/// Limits glibc's malloc to [`DAEMON_ARENAS`] arenas (a no-op elsewhere, or when the user set
/// `MALLOC_ARENA_MAX`, which glibc reads itself). Call before the daemon starts its threads.
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes a tunable of glibc's allocator; it takes plain integers and
    // may be called at any time, from any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, DAEMON_ARENAS);
    }
}
