//! A containerd (Debian's, with runc) of the test's own: its own root, state and socket under
//! `/var/tmp` (overlayfs needs a real filesystem for its upper directories), the CRI plugin
//! disabled. `ctr` drives it. Dropping it kills every task, unmounts what it left and stops
//! the daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{require_root, require_tool, run, KillOnDrop};

#[derive(Debug)]
pub struct Containerd {
    pub socket: PathBuf,
    pub root: PathBuf,
    /// Namespaces the test used (cleaned on drop).
    namespaces: std::sync::Mutex<Vec<String>>,
    daemon: Option<KillOnDrop>,
    dir: Option<tempfile::TempDir>,
}

impl Containerd {
    pub fn start() -> Containerd {
        require_root();
        for t in ["containerd", "ctr"] {
            require_tool(t, "containerd");
        }
        require_tool("runc", "runc");
        let dir = tempfile::Builder::new()
            .prefix("nydus-containerd-")
            .tempdir_in("/var/tmp")
            .expect("a directory under /var/tmp");
        let d = dir.path();
        let socket = d.join("c.sock");
        let root = d.join("root");
        let cfg = format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n",
            root.display(),
            d.join("state").display(),
            socket.display(),
            d.join("t.sock").display()
        );
        std::fs::write(d.join("config.toml"), cfg).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let c = Containerd {
            socket,
            root,
            namespaces: Default::default(),
            daemon: Some(KillOnDrop(child)),
            dir: Some(dir),
        };
        let t0 = Instant::now();
        loop {
            if c.socket.exists()
                && run(Command::new("ctr")
                    .args(["--address"])
                    .arg(&c.socket)
                    .arg("version"))
                .status
                .success()
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "containerd did not answer on {} within 30 s; its log:\n{}",
                c.socket.display(),
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    pub fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("containerd.log")).ok())
            .unwrap_or_default()
    }

    /// `ctr --address SOCK -n NS args...`.
    pub fn ctr(&self, ns: &str, args: &[&str]) -> Output {
        {
            let mut n = self.namespaces.lock().unwrap();
            if !n.iter().any(|x| x == ns) {
                n.push(ns.to_string());
            }
        }
        run(Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", ns])
            .args(args))
    }

    /// As [`Containerd::ctr`], requiring success; stdout.
    #[track_caller]
    pub fn ctr_ok(&self, ns: &str, args: &[&str]) -> String {
        let o = self.ctr(ns, args);
        assert!(
            o.status.success(),
            "ctr -n {ns} {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The pid of a container's task.
    pub fn pid(&self, ns: &str, id: &str) -> u32 {
        let out = self.ctr_ok(ns, &["tasks", "ls"]);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no task {id} in:\n{out}"))
    }

    /// The status column of `ctr tasks ls` for a container (RUNNING, PAUSED, STOPPED).
    pub fn status(&self, ns: &str, id: &str) -> String {
        let out = self.ctr_ok(ns, &["tasks", "ls"]);
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("NONE")
            .to_string()
    }

    /// A read-only view of a container's rootfs: the overlay options `ctr snapshots mounts`
    /// prints, with the upper directory as the top lower one (no workdir: the container's
    /// own mount keeps using it). Unmounted on drop.
    pub fn rootfs_view(&self, ns: &str, key: &str, at: &Path) -> crate::Mounted {
        let out = self.ctr_ok(ns, &["snapshots", "mounts", "/mnt", key]);
        let opts = out
            .split_whitespace()
            .skip_while(|w| *w != "-o")
            .nth(1)
            .unwrap_or_else(|| panic!("no -o in {out:?}"));
        let mut upper = None;
        let mut lower = None;
        for o in opts.split(',') {
            if let Some(v) = o.strip_prefix("upperdir=") {
                upper = Some(v.to_string());
            } else if let Some(v) = o.strip_prefix("lowerdir=") {
                lower = Some(v.to_string());
            }
        }
        let (upper, lower) = (upper.expect("upperdir"), lower.expect("lowerdir"));
        std::fs::create_dir_all(at).unwrap();
        crate::mount(
            Path::new("overlay"),
            at,
            "overlay",
            &format!("lowerdir={upper}:{lower}"),
        )
        .unwrap_or_else(|e| panic!("read-only overlay view of {key}: {e}"))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let namespaces = self.namespaces.lock().unwrap().clone();
        for ns in &namespaces {
            let ls = self.ctr(ns, &["tasks", "ls", "-q"]);
            for id in String::from_utf8_lossy(&ls.stdout).lines() {
                let _ = self.ctr(ns, &["tasks", "resume", id]);
                let _ = self.ctr(ns, &["tasks", "kill", "-s", "SIGKILL", id]);
            }
            let t0 = Instant::now();
            for id in String::from_utf8_lossy(&ls.stdout).lines() {
                while t0.elapsed() < Duration::from_secs(10)
                    && !self.ctr(ns, &["tasks", "rm", "-f", id]).status.success()
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let cs = self.ctr(ns, &["containers", "ls", "-q"]);
            for id in String::from_utf8_lossy(&cs.stdout).lines() {
                let _ = self.ctr(ns, &["containers", "rm", id]);
            }
        }
        drop(self.daemon.take());
        // Rootfs mounts a killed shim left behind.
        if let Some(d) = &self.dir {
            if let Ok(m) = std::fs::read_to_string("/proc/self/mounts") {
                let prefix = d.path().display().to_string();
                let mut points: Vec<&str> = m
                    .lines()
                    .filter_map(|l| l.split_whitespace().nth(1))
                    .filter(|p| p.starts_with(&prefix))
                    .collect();
                points.sort_by_key(|p| std::cmp::Reverse(p.len()));
                for p in points {
                    let _ = Command::new("umount").arg("-l").arg(p).status();
                }
            }
        }
        drop(self.dir.take());
    }
}
