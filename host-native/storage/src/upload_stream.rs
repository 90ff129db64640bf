//! Uploads to an S3 or OSS bucket that go up while the blob is built.
//!
//! A blob's key is its digest, known only when the blob is finished, and neither S3 nor OSS
//! renames objects. So the parts go, as soon as each is written, into a multipart upload of a
//! temporary key beside the blob (`<object_prefix>.nydus-upload-<hash of what is built>`: a run
//! killed mid-way leaves an upload the next run of the same build finds and aborts, as
//! uploads of a file are found by their key), read back from
//! the blob file being written (by `pread`: no bytes are held in memory); when the blob is done
//! the upload is completed, the object copied server-side to its real key (S3 `CopyObject`,
//! OSS `x-oss-copy-source`; the CRC-64 checked on OSS), checked by HEAD and the temporary
//! object deleted. A blob smaller than one part is never streamed (one PUT of the finished
//! file is cheaper than an upload and a copy); one larger than what one copy request takes
//! (5 GiB on S3, 1 GiB on OSS) stops streaming when it passes that size. Whatever goes wrong
//! (a part that fails after its retries, the copy, an interruption) aborts the upload and
//! deletes the temporary object: no parts and no stray object remain, and the caller uploads
//! the finished file instead, as it would have without streaming.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::blocking::Response;

use crate::atomic::UndoGuard;
use crate::http::{describe_failure, Outcome};
use crate::object::ObjectClient;
use crate::sign::crc64::combine;
use crate::sign::{uri_encode, Method};
use crate::store::{StoreError, StoreErrorKind};
use crate::upload::{error_in_body, header_u64, PartSource, SentPart, Uploaded, PARALLEL_PARTS};

/// The largest object one copy request takes: S3 `CopyObject` 5 GiB, OSS `CopyObject` 1 GiB.
fn copy_limit(c: &ObjectClient) -> u64 {
    if c.is_s3() {
        5 << 30
    } else {
        1 << 30
    }
}

#[derive(Default)]
struct State {
    file: Option<Arc<File>>,
    written: u64,
    /// Bytes handed to parts so far.
    queued: u64,
    upload_id: Option<String>,
    jobs: VecDeque<(usize, u64, u64)>,
    parts: Vec<Option<SentPart>>,
    senders: Vec<std::thread::JoinHandle<()>>,
    error: Option<StoreError>,
    /// Streaming given up (an error, too large, no file): the file is uploaded instead.
    given_up: bool,
    /// No more parts come: senders exit once the queue is empty.
    closing: bool,
    finished: bool,
    interrupt: Option<UndoGuard>,
}

struct Shared {
    client: ObjectClient,
    temp_key: String,
    part: u64,
    st: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The caller's side: finishes (or abandons, when dropped unfinished) the upload.
pub struct StreamUpload {
    shared: Arc<Shared>,
}

/// The builder's side: told of the blob file and of each write to it.
#[derive(Clone)]
pub struct StreamFeed {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StreamUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamUpload({})", self.shared.temp_key)
    }
}

impl std::fmt::Debug for StreamFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamFeed({})", self.shared.temp_key)
    }
}

impl ObjectClient {
    /// A streaming upload into this bucket, in parts of the bucket's part size, of the blob
    /// built from `what` (a stable name of the build: a layer digest and the settings, a
    /// source directory).
    pub fn stream_upload(&self, what: &str) -> (StreamUpload, StreamFeed) {
        let tag = nydus_core::digest::sha256(what.as_bytes()).to_hex();
        let shared = Arc::new(Shared {
            client: self.clone(),
            temp_key: format!("{}.nydus-upload-{}", self.object_prefix, &tag[..32]),
            part: self.part_size.max(5 << 20),
            st: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        (
            StreamUpload {
                shared: shared.clone(),
            },
            StreamFeed { shared },
        )
    }

    /// Copies object `from` to `to` on the server (S3 `x-amz-copy-source`, OSS
    /// `x-oss-copy-source`); the copy's CRC-64 (OSS) must be `crc` when given.
    pub(crate) fn copy_object(
        &self,
        from: &str,
        to: &str,
        size: u64,
        crc: Option<u64>,
    ) -> Result<(), StoreError> {
        let err = self.err(to, 0, size);
        let (header, source) = if self.is_s3() {
            // Path-style: the request path of `from` is `/bucket/key`.
            (
                "x-amz-copy-source",
                uri_encode(&self.request(Method::Get, from).path, true),
            )
        } else {
            (
                "x-oss-copy-source",
                format!("/{}/{}", self.bucket_name(), uri_encode(from, true)),
            )
        };
        let timeout = self.http.opts.timeout + Duration::from_secs(size >> 24);
        let theirs = self.http.run(
            false,
            &|c| {
                let req = self.sign(
                    self.with_body(self.request(Method::Put, to), b"")
                        .with_header(header, source.clone()),
                )?;
                Ok(ObjectClient::builder(c, &req).timeout(timeout).body(""))
            },
            &mut |resp: Response| {
                if !resp.status().is_success() {
                    let (kind, m) = describe_failure(resp);
                    return Outcome::Fail(err(kind, format!("copying the uploaded object: {m}")));
                }
                let crc = header_u64(&resp, "x-oss-hash-crc64ecma");
                match error_in_body(resp) {
                    Some((kind, code)) => {
                        Outcome::Fail(err(kind, format!("copying the uploaded object: {code}")))
                    }
                    None => Outcome::Done(crc),
                }
            },
            &err,
        )?;
        if let (Some(t), Some(o)) = (theirs, crc) {
            if t != o {
                let _ = self.delete(to);
                return Err(err(
                    StoreErrorKind::Failed,
                    format!("the copy's CRC-64 {t} differs from the bytes sent ({o})"),
                ));
            }
        }
        Ok(())
    }
}

impl StreamFeed {
    /// The file the blob is written to (parts are read back from it).
    pub fn spool(&self, file: &File) {
        let mut st = self.shared.lock();
        match file.try_clone() {
            Ok(f) => st.file = Some(Arc::new(f)),
            Err(e) => {
                log::debug!("not streaming the upload: {e}");
                st.given_up = true;
            }
        }
    }

    /// `n` more bytes were written to the file: full parts are queued (the upload is started
    /// with the first).
    pub fn wrote(&self, n: usize) {
        let sh = &self.shared;
        let mut st = sh.lock();
        if st.given_up || st.closing {
            return;
        }
        st.written += n as u64;
        if st.written > copy_limit(&sh.client) {
            log::info!(
                "the blob passed {} bytes, more than one copy request takes: uploading it when it is built",
                copy_limit(&sh.client)
            );
            st.given_up = true;
            sh.cv.notify_all();
            return;
        }
        while st.written - st.queued >= sh.part {
            if st.file.is_none() {
                st.given_up = true;
                return;
            }
            if st.upload_id.is_none() && !start(sh, &mut st) {
                return;
            }
            let (idx, off) = (st.parts.len(), st.queued);
            st.parts.push(None);
            st.jobs.push_back((idx, off, sh.part));
            st.queued += sh.part;
            sh.cv.notify_all();
        }
    }
}

/// Initiates the upload of the temporary key and starts the senders (with the lock held:
/// one request, once per blob).
fn start(sh: &Arc<Shared>, st: &mut State) -> bool {
    sh.client.abort_stale_uploads(&sh.temp_key);
    // Registered before the upload is initiated: interrupted before its id comes back, the
    // upload is looked for by key.
    let started: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let (client, key, id) = (sh.client.clone(), sh.temp_key.clone(), started.clone());
    st.interrupt = crate::atomic::on_interrupt(
        format!(
            "aborting the multipart upload of {} (streamed)",
            sh.client.describe(&sh.temp_key)
        ),
        move || {
            let id = id.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match id {
                Some(id) => {
                    if let Err(e) = client.abort(&key, &id) {
                        log::warn!("{e}");
                    }
                }
                None => client.abort_stale_uploads(&key),
            }
            let _ = client.delete(&key);
        },
    )
    .ok();
    if st.interrupt.is_none() {
        st.given_up = true;
        return false;
    }
    match sh.client.initiate(&sh.temp_key) {
        Ok(id) => {
            *started.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
            st.upload_id = Some(id);
            for _ in 0..PARALLEL_PARTS {
                let sh = sh.clone();
                st.senders.push(std::thread::spawn(move || send_loop(&sh)));
            }
            true
        }
        Err(e) => {
            log::info!("not streaming the upload: {e}");
            st.interrupt = None;
            st.given_up = true;
            false
        }
    }
}

fn send_loop(sh: &Shared) {
    loop {
        let (job, file, id) = {
            let mut st = sh.lock();
            loop {
                if st.given_up {
                    return;
                }
                if let Some(j) = st.jobs.pop_front() {
                    break (
                        j,
                        st.file.clone().expect("a file before parts"),
                        st.upload_id.clone().expect("an upload before parts"),
                    );
                }
                if st.closing {
                    return;
                }
                st = sh.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let (idx, off, len) = job;
        let r = sh.client.send_part(
            &sh.temp_key,
            PartSource::File(&file),
            &id,
            idx + 1,
            off,
            len,
        );
        let mut st = sh.lock();
        match r {
            Ok(p) => st.parts[idx] = Some(p),
            Err(e) => {
                st.error.get_or_insert(e);
                st.given_up = true;
            }
        }
        sh.cv.notify_all();
    }
}

impl StreamUpload {
    /// Stops the senders and aborts the upload (its parts are deleted).
    fn abandon(&self, mut st: MutexGuard<'_, State>) {
        st.given_up = true;
        st.finished = true;
        let senders = std::mem::take(&mut st.senders);
        let id = st.upload_id.take();
        let guard = st.interrupt.take();
        drop(st);
        self.shared.cv.notify_all();
        for s in senders {
            let _ = s.join();
        }
        if let Some(id) = id {
            if let Err(e) = self.shared.client.abort(&self.shared.temp_key, &id) {
                log::warn!("{e}");
            }
        }
        drop(guard);
    }

    /// The blob is built (`size` bytes) and named `key`: the upload is finished there.
    /// `Ok(None)`: nothing was streamed (a small blob, or streaming was given up without an
    /// error): upload the file. `Err`: streaming failed, nothing is left in the bucket.
    pub fn finish(
        &self,
        key: &str,
        size: u64,
        force: bool,
    ) -> Result<Option<Uploaded>, StoreError> {
        let sh = &self.shared;
        let c = &sh.client;
        let mut st = sh.lock();
        if st.upload_id.is_none() || st.given_up {
            let e = st.error.take();
            self.abandon(st);
            return match e {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
        if st.written != size {
            let got = st.written;
            self.abandon(st);
            return Err(c.err(key, 0, size)(
                StoreErrorKind::Failed,
                format!("the streamed upload saw {got} bytes of a {size}-byte blob"),
            ));
        }
        if size > st.queued {
            let (idx, off) = (st.parts.len(), st.queued);
            st.parts.push(None);
            st.jobs.push_back((idx, off, size - off));
            st.queued = size;
        }
        st.closing = true;
        sh.cv.notify_all();
        let senders = std::mem::take(&mut st.senders);
        drop(st);
        for s in senders {
            let _ = s.join();
        }
        let mut st = sh.lock();
        if let Some(e) = st.error.take() {
            self.abandon(st);
            return Err(e);
        }
        let parts: Vec<SentPart> = st.parts.iter().map(|p| p.clone().expect("sent")).collect();
        let id = st.upload_id.clone().expect("started");
        drop(st);
        let expected_crc = parts.iter().try_fold(0u64, |acc, (_, crc, len)| {
            crc.map(|v| combine(acc, v, *len))
        });
        let skip = if force {
            None
        } else {
            match c.head(key) {
                Ok(Some(i)) if i.size == size => Some(i),
                _ => None,
            }
        };
        let result = match skip {
            Some(_) => {
                log::info!(
                    "{} exists ({size} bytes): not uploaded again",
                    c.describe(key)
                );
                self.abandon(sh.lock());
                return Ok(Some(Uploaded {
                    key: key.to_string(),
                    bytes: size,
                    parts: 0,
                    skipped: true,
                }));
            }
            None => c
                .complete(&sh.temp_key, &id, &parts, size)
                .and_then(|()| c.copy_object(&sh.temp_key, key, size, expected_crc))
                .and_then(|()| match c.head(key)? {
                    Some(i) if i.size == size => Ok(()),
                    found => Err(c.err(key, 0, size)(
                        StoreErrorKind::Failed,
                        match found {
                            Some(i) => format!(
                                "after the copy the object has {} bytes, not {size}",
                                i.size
                            ),
                            None => "after the copy the object is not there".into(),
                        },
                    )),
                }),
        };
        // The temporary object goes whatever happened; the upload, if not completed, too.
        if let Err(e) = c.delete(&sh.temp_key) {
            log::warn!("deleting the temporary object of a streamed upload: {e}");
        }
        let mut st = sh.lock();
        match result {
            Ok(()) => {
                st.finished = true;
                st.interrupt = None;
                log::info!(
                    "uploaded {} while it was built ({size} bytes, {} parts)",
                    c.describe(key),
                    parts.len()
                );
                Ok(Some(Uploaded {
                    key: key.to_string(),
                    bytes: size,
                    parts: parts.len(),
                    skipped: false,
                }))
            }
            Err(e) => {
                st.upload_id = Some(id);
                self.abandon(st);
                Err(e)
            }
        }
    }
}

impl Drop for StreamUpload {
    fn drop(&mut self) {
        let st = self.shared.lock();
        if !st.finished {
            self.abandon(st);
        }
    }
}
