//! The daemon's HTTP API on a unix socket (`--apisock`), the part of upstream nydusd's API
//! that scripts and the snapshotter poll: `GET /api/v1/daemon` (state `RUNNING`) and
//! `GET /api/v1/metrics/backend` (backend requests and bytes). Other paths answer 404.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

/// Produces the JSON body of a path (`None`: not found).
pub type Route = dyn Fn(&str) -> Option<Value> + Send + Sync;

/// A running API server; dropping it stops it and removes the socket.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `route` on the unix socket `path` (a stale socket file there is replaced).
pub fn serve(path: &Path, route: Arc<Route>) -> Result<ApiServer> {
    if path.exists() && UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path)
        .with_context(|| format!("binding the API socket {}", path.display()))?;
    l.set_nonblocking(true)
        .with_context(|| format!("API socket {}", path.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                        if let Err(e) = answer(conn, &*route) {
                            log::debug!("API request: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => {
                        log::warn!("API socket: {e}");
                        std::thread::sleep(Duration::from_millis(100))
                    }
                }
            }
        })
        .context("starting the API thread")?;
    Ok(ApiServer {
        path: path.to_path_buf(),
        stop,
        handle: Some(handle),
    })
}

/// Reads one request and writes its answer (the connection is closed after it).
fn answer(conn: UnixStream, route: &Route) -> std::io::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    // Skip the headers.
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = match (method, route(path)) {
        ("GET", Some(v)) => ("200 OK", v),
        ("GET", None) => (
            "404 Not Found",
            serde_json::json!({"code": "NotFound", "message": format!("no such API path {path:?}")}),
        ),
        _ => (
            "405 Method Not Allowed",
            serde_json::json!({"code": "MethodNotAllowed", "message": format!("{method} {path} is not served")}),
        ),
    };
    let body = body.to_string();
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(path: &Path, req: &str) -> String {
        let mut c = UnixStream::connect(path).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn the_daemon_path_answers_and_others_are_404() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("api.sock");
        let route: Arc<Route> = Arc::new(|p: &str| {
            (p == "/api/v1/daemon").then(|| serde_json::json!({"state": "RUNNING"}))
        });
        let server = serve(&sock, route).unwrap();
        let ok = get(&sock, "GET /api/v1/daemon HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.ends_with(r#"{"state":"RUNNING"}"#), "{ok}");
        let nf = get(&sock, "GET /api/v1/nope HTTP/1.1\r\n\r\n");
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        let put = get(&sock, "PUT /api/v1/daemon HTTP/1.1\r\n\r\n");
        assert!(put.starts_with("HTTP/1.1 405"), "{put}");
        drop(server);
        assert!(!sock.exists());
    }
}
