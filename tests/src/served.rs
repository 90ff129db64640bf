//! A FUSE daemon under test: started, waited for until it has mounted, stopped by SIGTERM
//! (it must unmount and exit 0), killed and lazily unmounted when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{assert_same_tree, bin, list_tree, ListOptions};

/// Whether a FUSE file system is mounted at `mp`.
pub fn fuse_mounted(mp: &Path) -> bool {
    let want = mp.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-").unwrap();
            f[4] == want && f[sep + 1].starts_with("fuse")
        })
}

/// A daemon process serving a mount; SIGTERM and a check that it unmounted on drop.
#[derive(Debug)]
pub struct Served {
    child: Option<Child>,
    mp: PathBuf,
    log: PathBuf,
}

impl Served {
    /// Starts `cmd` (stderr to `log`) and waits until `mp` is mounted and the daemon says so
    /// (a stale mount there is in the mount table before the daemon replaces it).
    pub fn start(mut cmd: Command, mp: &Path, log: &Path) -> Served {
        let f = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(f))
            .spawn()
            .expect("starting the daemon");
        let mut me = Served {
            child: Some(child),
            mp: mp.to_path_buf(),
            log: log.to_path_buf(),
        };
        let t0 = Instant::now();
        while !(fuse_mounted(mp) && me.log_text().contains("mounted at")) {
            if let Some(st) = me.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the daemon exited with {st} before mounting:\n{}",
                    me.log_text()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "not mounted within 60 s:\n{}",
                me.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGKILL, and waited for: the mount point is left stale (as a crashed daemon leaves it).
    pub fn kill_leaving_the_mount(mut self) {
        let mut c = self.child.take().unwrap();
        assert_eq!(unsafe_kill(c.id() as i32, libc::SIGKILL), 0);
        c.wait().unwrap();
    }

    /// SIGTERM; the daemon must unmount and exit 0.
    pub fn stop(mut self) -> String {
        let mut c = self.child.take().unwrap();
        assert_eq!(unsafe_kill(c.id() as i32, libc::SIGTERM), 0);
        let st = c.wait().unwrap();
        let log = self.log_text();
        assert!(
            st.success(),
            "the daemon exited with {st} after SIGTERM:\n{log}"
        );
        assert!(
            !fuse_mounted(&self.mp),
            "still mounted after SIGTERM:\n{log}"
        );
        log
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = Command::new("umount").arg("-l").arg(&self.mp).status();
        }
    }
}

#[allow(unsafe_code)]
pub fn unsafe_kill(pid: i32, sig: i32) -> i32 {
    unsafe { libc::kill(pid, sig) }
}

pub fn mount_cmd(target: &str, mp: &Path, work: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin("nydusify"));
    c.args(["mount", "--target", target, "--plain-http", "--mount-path"])
        .arg(mp)
        .arg("--work-dir")
        .arg(work)
        .args(extra);
    c
}

/// `nydusify mount` of `target` at `<dir>/mnt-<tag>` (work dir `<dir>/work-<tag>`, log
/// `<dir>/<tag>.log`, `extra` flags): the mounted tree must list as `want`; then SIGTERM.
/// Returns the daemon's log.
pub fn mount_equals(
    target: &str,
    dir: &Path,
    tag: &str,
    extra: &[&str],
    want: &[String],
) -> String {
    let mp = dir.join(format!("mnt-{tag}"));
    let d = Served::start(
        mount_cmd(target, &mp, &dir.join(format!("work-{tag}")), extra),
        &mp,
        &dir.join(format!("{tag}.log")),
    );
    assert_same_tree(want, &list_tree(&mp, ListOptions::default()));
    d.stop()
}
