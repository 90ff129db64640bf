//! The registry as a blob store: an image's blobs read by `Range` from the repository that
//! holds them, by digest (`sha256:<blob id>`), as upstream nydusd's registry backend does.
//!
//! The registry client is async (reqwest + tokio); blob stores are called from any thread
//! (FUSE workers, read-ahead threads, code already inside another runtime). So the backend
//! owns a small runtime of its own and every request is spawned onto it and waited for on a
//! channel: no `block_on` that would panic inside a caller's runtime, and connections that
//! live as long as the backend. The client retries transient failures (5xx, dropped
//! connections, bodies cut short) with backoff, never 4xx, and fetches a new bearer token when
//! one expires. Nothing read here is trusted: the [`crate::reader::ChunkReader`] verifies
//! every chunk by digest.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use nydus_core::read::exec::BlobLayout;
use nydus_host_registry::{
    error_chain as chain, ErrorKind, Registry, RegistryError, RegistryOptions,
};

use crate::local::{Backend, OpenBlob};
use crate::store::{BlobStore, StoreError, StoreErrorKind};

/// The blobs of one repository of one registry.
#[derive(Debug, Clone)]
pub struct RegistryBackend {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    registry: Registry,
    repo: String,
    /// `scheme://host/v2/<repo>/blobs/`, for messages.
    base: String,
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A runtime dropped inside another one's task would panic; this does not wait.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl RegistryBackend {
    /// A backend reading the blobs of `repo` on `host` (`name[:port]`).
    pub fn new(host: &str, repo: &str, opts: RegistryOptions) -> Result<Self, StoreError> {
        let scheme = if opts.plain_http { "http" } else { "https" };
        let base = format!("{scheme}://{host}/v2/{repo}/blobs/");
        let fail = |message: String| StoreError {
            blob: base.clone(),
            offset: 0,
            len: 0,
            kind: StoreErrorKind::Failed,
            message,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nydus-registry")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("starting the registry client's runtime: {e}")))?;
        // The client's connection pool belongs to the runtime it is first used on: ours.
        let registry = {
            let _in_rt = rt.enter();
            Registry::new(host, opts).map_err(|e| fail(chain(&e)))?
        };
        Ok(RegistryBackend {
            shared: Arc::new(Shared {
                registry,
                repo: repo.to_string(),
                base,
                rt: Some(rt),
            }),
        })
    }

    /// The blob `digest` (`sha256:<hex>`) of the repository as a store.
    pub fn blob(&self, digest: &str) -> RegistryBlob {
        RegistryBlob {
            shared: self.shared.clone(),
            digest: digest.to_string(),
            size: OnceLock::new(),
        }
    }

    /// The repository read from.
    pub fn repo(&self) -> &str {
        &self.shared.repo
    }
}

impl Backend for RegistryBackend {
    fn open(&self, id: &str, _index: u32, _count: usize) -> Result<OpenBlob, StoreError> {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError {
                blob: id.to_string(),
                offset: 0,
                len: 0,
                kind: StoreErrorKind::NotFound,
                message: format!(
                    "a blob id that is not a sha256 digest cannot be read from registry repository {}",
                    self.shared.repo
                ),
            });
        }
        Ok(OpenBlob {
            store: Arc::new(self.blob(&format!("sha256:{}", hex.to_ascii_lowercase()))),
            layout: BlobLayout::Stored,
        })
    }

    fn describe(&self) -> String {
        self.shared.base.trim_end_matches("/blobs/").to_string()
    }
}

/// One blob of a registry repository.
#[derive(Debug)]
pub struct RegistryBlob {
    shared: Arc<Shared>,
    digest: String,
    size: OnceLock<u64>,
}

impl RegistryBlob {
    /// Runs a request of the client on the backend's runtime and waits for it.
    fn call<T, F>(
        &self,
        offset: u64,
        len: u64,
        req: impl FnOnce(Arc<Shared>, String) -> F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, RegistryError>> + Send + 'static,
    {
        let err = |kind, message| StoreError {
            blob: self.describe(),
            offset,
            len,
            kind,
            message,
        };
        let rt = self.shared.rt.as_ref().expect("runtime lives until drop");
        let fut = req(self.shared.clone(), self.digest.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        match rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(err(store_kind(e.kind()), chain(&e))),
            Err(_) => Err(err(
                StoreErrorKind::Failed,
                "the registry client stopped before answering".into(),
            )),
        }
    }

    fn head(&self) -> Result<Option<u64>, StoreError> {
        self.call(0, 0, |s, digest| async move {
            s.registry.blob_size(&s.repo, &digest).await
        })
    }
}

impl BlobStore for RegistryBlob {
    fn describe(&self) -> String {
        format!("{}{}", self.shared.base, self.digest)
    }

    fn size(&self) -> Result<u64, StoreError> {
        if let Some(&n) = self.size.get() {
            return Ok(n);
        }
        match self.head()? {
            Some(n) => Ok(*self.size.get_or_init(|| n)),
            None => Err(StoreError {
                blob: self.describe(),
                offset: 0,
                len: 0,
                kind: StoreErrorKind::NotFound,
                message: "the repository has no such blob (or did not say its size)".into(),
            }),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let len = buf.len() as u64;
        let got = self.call(offset, len, |s, digest| async move {
            s.registry.blob_range(&s.repo, &digest, offset, len).await
        })?;
        // The client returns exactly the range or fails; a mismatch would be our bug.
        if got.len() != buf.len() {
            return Err(StoreError {
                blob: self.describe(),
                offset,
                len,
                kind: StoreErrorKind::Failed,
                message: format!("{} bytes came for a range of {len}", got.len()),
            });
        }
        buf.copy_from_slice(&got);
        Ok(())
    }

    fn exists(&self) -> Result<bool, StoreError> {
        Ok(self.head()?.is_some())
    }
}

fn store_kind(k: ErrorKind) -> StoreErrorKind {
    match k {
        ErrorKind::Transient => StoreErrorKind::Transient,
        ErrorKind::Auth => StoreErrorKind::Auth,
        ErrorKind::NotFound => StoreErrorKind::NotFound,
        ErrorKind::OutOfRange => StoreErrorKind::Short,
        _ => StoreErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A loopback HTTP server answering blob requests of `blob` (honouring `Range`), with
    /// the first `fail` requests answered 503 and `cut` requests whose body ends early.
    fn server(blob: Vec<u8>, fail: usize, cut: usize) -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let (mut range, head) = (None, line.starts_with("HEAD"));
                loop {
                    let mut hl = String::new();
                    if r.read_line(&mut hl).unwrap_or(0) == 0 || hl == "\r\n" {
                        break;
                    }
                    if let Some(v) = hl.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        let (a, b) = v.trim().split_once('-').unwrap();
                        range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()));
                    }
                }
                let n = h.fetch_add(1, Ordering::SeqCst);
                if n < fail {
                    let _ = c.write_all(
                        b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    continue;
                }
                let (status, body) = match range {
                    Some((a, _)) if a >= blob.len() => ("416 Range Not Satisfiable", &blob[..0]),
                    Some((a, b)) => ("206 Partial Content", &blob[a..(b + 1).min(blob.len())]),
                    None => ("200 OK", &blob[..]),
                };
                let hdr = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(hdr.as_bytes());
                if !head {
                    let sent = if n < fail.saturating_add(cut) {
                        body.len() / 2
                    } else {
                        body.len()
                    };
                    let _ = c.write_all(&body[..sent]);
                }
                let mut sink = [0u8; 1];
                let _ = c.shutdown(std::net::Shutdown::Write);
                let _ = c.read(&mut sink);
            }
        });
        (addr, hits)
    }

    fn backend(addr: &str) -> RegistryBackend {
        let opts = RegistryOptions {
            plain_http: true,
            retries: 3,
            retry_delay: std::time::Duration::from_millis(10),
            ..Default::default()
        };
        RegistryBackend::new(addr, "lib/img", opts).unwrap()
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn ranges_are_read_and_retried() {
        let blob: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let (addr, hits) = server(blob.clone(), 1, 1);
        let b = backend(&addr).open(ID, 0, 1).unwrap();
        assert_eq!(b.layout, BlobLayout::Stored);
        let mut buf = vec![0u8; 1000];
        // 503 first, then a body cut short: both retried.
        b.store.read_at(4000, &mut buf).unwrap();
        assert_eq!(buf, blob[4000..5000]);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(b.store.size().unwrap(), 10_000);
        assert!(b.store.exists().unwrap());
        let e = b.store.read_at(20_000, &mut buf).unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Short, "{e}");
        assert!(
            e.blob.ends_with(&format!("/v2/lib/img/blobs/sha256:{ID}")),
            "{e}"
        );
    }

    #[test]
    fn failures_are_reported_with_their_kind() {
        // Always 503: transient after the retries.
        let (addr, hits) = server(vec![1; 10], usize::MAX, 0);
        let b = backend(&addr).open(ID, 0, 1).unwrap();
        let e = b.store.read_at(0, &mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 4);
        // Nothing listening.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = l.local_addr().unwrap().to_string();
        drop(l);
        let e = backend(&gone)
            .open(ID, 0, 1)
            .unwrap()
            .store
            .exists()
            .unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
        // Not a digest.
        assert!(backend(&gone).open("../x", 0, 1).is_err());
    }

    /// A registry that redirects every blob request to `http://blobs.invalid:1<path>?sig=1`
    /// (a host that resolves nowhere); the requests it saw.
    fn redirector() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut hl = String::new();
                    if r.read_line(&mut hl).unwrap_or(0) == 0 || hl == "\r\n" {
                        break;
                    }
                }
                let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                s.lock().unwrap().push(line.trim().to_string());
                let _ = c.write_all(
                    format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://blobs.invalid:1{path}?sig=1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            }
        });
        (addr, seen)
    }

    #[test]
    fn redirected_blob_reads_go_to_blob_redirected_host() {
        let blob: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
        let (cdn, hits) = server(blob.clone(), 0, 0);
        let (reg, seen) = redirector();
        let opts = |host: Option<String>| RegistryOptions {
            plain_http: true,
            retries: 0,
            blob_redirected_host: host,
            ..Default::default()
        };
        let b = RegistryBackend::new(&reg, "lib/img", opts(Some(cdn.clone())))
            .unwrap()
            .open(ID, 0, 1)
            .unwrap();
        let mut buf = vec![0u8; 100];
        b.store.read_at(1000, &mut buf).unwrap();
        assert_eq!(buf, blob[1000..1100]);
        assert_eq!(b.store.size().unwrap(), 5000);
        // Each read asked the registry first, then the host given (HEAD and GET).
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(seen.lock().unwrap().len(), 2, "{:?}", seen.lock().unwrap());
        // Without it, the redirect's own host (which does not resolve) fails the read.
        let b = RegistryBackend::new(&reg, "lib/img", opts(None))
            .unwrap()
            .open(ID, 0, 1)
            .unwrap();
        let e = b.store.read_at(0, &mut buf).unwrap_err();
        assert_ne!(e.kind, StoreErrorKind::NotFound, "{e}");
        assert!(!e.message.contains("sig=1"), "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn reads_of_a_registry_that_never_answers_time_out() {
        // Connections are accepted (by the kernel) and never read from or answered.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let opts = RegistryOptions {
            plain_http: true,
            retries: 0,
            read_timeout: Some(std::time::Duration::from_secs(1)),
            ..Default::default()
        };
        let b = RegistryBackend::new(&addr, "lib/img", opts)
            .unwrap()
            .open(ID, 0, 1)
            .unwrap();
        let started = std::time::Instant::now();
        let e = b.store.read_at(0, &mut [0u8; 16]).unwrap_err();
        let took = started.elapsed();
        assert!(
            (1..5).contains(&took.as_secs()),
            "a read of 16 bytes with a 1 s timeout took {took:?}: {e}"
        );
        assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
        assert!(
            e.message.contains("timed out") && e.message.contains(&addr),
            "{e}"
        );
        // The size lookup (HEAD) too.
        let started = std::time::Instant::now();
        let e = b.store.size().unwrap_err();
        assert!(started.elapsed().as_secs() < 5, "{e}");
        assert!(e.message.contains("timed out"), "{e}");
        drop(l);
    }

    #[test]
    fn dropped_inside_a_runtime_without_panicking() {
        let (addr, _) = server(vec![1; 10], 0, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async move {
            let b = backend(&addr);
            drop(b);
        });
    }
}
