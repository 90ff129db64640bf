//! Uploads of files to an S3 or OSS bucket.
//!
//! A file smaller than the part size goes in one PUT; a larger one in a multipart upload whose
//! parts are sent by a few threads at once ([`PARALLEL_PARTS`]), each part streamed from the
//! file (a few buffers in memory, whatever the part size: memory does not grow with the blob).
//! Every request is retried on transient failures (5xx, a dropped connection) with its body
//! re-read from the file; a multipart upload that fails is aborted, so no parts are left, and
//! no object appears until the upload completes. Unless forced, an object that exists with the
//! same size (blobs are named by their digest) is not sent again. For OSS, the CRC-64/ECMA of
//! what was sent is compared with the server's `x-oss-hash-crc64ecma` of every part and of the
//! whole object.
//!
//! Why from a file: an object's key is its blob's digest, known only once the blob is built,
//! and neither S3 nor OSS can rename an object; the builder writes the blob to a local file
//! anyway, and uploading it from that file keeps memory bounded and lets every request be
//! retried from its start. `upload_stream` sends the parts while the blob is being written,
//! into a temporary object copied to the blob's key at the end, and falls back to this.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::{Body, Response};

use crate::http::{describe_failure, xml_text, Outcome};
use crate::object::ObjectClient;
use crate::sign::crc64::{combine, Crc64};
use crate::sign::{Method, Payload};
use crate::store::{StoreError, StoreErrorKind};

/// Parts in flight at once.
pub const PARALLEL_PARTS: usize = 4;

/// The smallest part S3 accepts (but the last); parts are never made smaller than this when
/// they are evened out.
const MIN_PART: u64 = 5 << 20;

/// The length of the parts of a multipart upload of `size` bytes with parts of at most
/// `part_size`: the part count rounded up to a multiple of [`PARALLEL_PARTS`] and the bytes
/// spread evenly (in whole MiB), so every sender is busy until the end instead of the last
/// part going alone (1 GB in 200 MiB parts on 4 senders: two rounds, the second with one
/// part; in 8 parts of 120 MiB: two full rounds). Parts below `MIN_PART` (5 MiB) are not made.
pub fn part_len(size: u64, part_size: u64) -> u64 {
    let count = size.div_ceil(part_size.max(1));
    let even = count.div_ceil(PARALLEL_PARTS as u64) * PARALLEL_PARTS as u64;
    let len = size.div_ceil(even).div_ceil(1 << 20) << 20;
    if count <= 1 || len < MIN_PART || len > part_size {
        part_size
    } else {
        len
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The object's key.
    pub key: String,
    pub bytes: u64,
    /// Parts sent (1: a single PUT; 0: skipped).
    pub parts: usize,
    /// The object was there already and was not sent.
    pub skipped: bool,
}

/// A part sent: its ETag, the CRC-64 of its bytes (OSS), its length.
pub(crate) type SentPart = (String, Option<u64>, u64);

/// A reader that feeds the CRC-64 of what it reads.
struct CrcReader<R> {
    inner: R,
    crc: Arc<Mutex<Crc64>>,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(&buf[..n]);
        Ok(n)
    }
}

/// Where the bytes of a part are read from: a file by path (opened for each attempt), or an
/// open file (a blob still being written: read with `pread`, its name may change).
#[derive(Clone, Copy)]
pub(crate) enum PartSource<'a> {
    Path(&'a Path),
    File(&'a Arc<File>),
}

impl PartSource<'_> {
    fn shown(&self) -> String {
        match self {
            PartSource::Path(p) => p.display().to_string(),
            PartSource::File(_) => "the blob being built".to_string(),
        }
    }

    /// The bytes `offset..offset + len` as a request body, and the CRC-64 its reading
    /// computes.
    fn body(&self, offset: u64, len: u64) -> std::io::Result<(Body, Arc<Mutex<Crc64>>)> {
        let crc = Arc::new(Mutex::new(Crc64::new()));
        let inner: Box<dyn Read + Send> = match self {
            PartSource::Path(path) => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(offset))?;
                Box::new(f.take(len))
            }
            PartSource::File(f) => Box::new(Pread {
                file: Arc::clone(f),
                pos: offset,
                end: offset + len,
            }),
        };
        let reader = CrcReader {
            inner: std::io::BufReader::with_capacity(1 << 20, inner),
            crc: crc.clone(),
        };
        Ok((Body::sized(reader, len), crc))
    }
}

/// Reads `pos..end` of a shared open file with `pread` (no shared file offset to race on).
struct Pread {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for Pread {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file ends at {} before {}", self.pos, self.end),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The bytes `offset..offset + len` of `path` as a request body, and the CRC-64 its reading
/// computes.
fn file_body(path: &Path, offset: u64, len: u64) -> std::io::Result<(Body, Arc<Mutex<Crc64>>)> {
    PartSource::Path(path).body(offset, len)
}

/// The error S3 may put in the body of a 200 answer (to CompleteMultipartUpload and
/// CopyObject): its kind (`InternalError` and `SlowDown` are worth a retry) and code.
pub(crate) fn error_in_body(resp: Response) -> Option<(StoreErrorKind, String)> {
    let body = resp.text().unwrap_or_default();
    if !body.contains("<Error>") {
        return None;
    }
    let code = xml_text(&body, "Code").unwrap_or_default();
    let kind = if code == "InternalError" || code == "SlowDown" {
        StoreErrorKind::Transient
    } else {
        StoreErrorKind::Failed
    };
    Some((kind, code))
}

pub(crate) fn header_u64(resp: &Response, name: &str) -> Option<u64> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl ObjectClient {
    /// Time allowed for a request sending `len` bytes: `timeout`, plus a second per MiB.
    fn send_timeout(&self, len: u64) -> Duration {
        self.http.opts.timeout + Duration::from_secs(len >> 20)
    }

    pub(crate) fn err(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> impl Fn(StoreErrorKind, String) -> StoreError {
        let blob = self.describe(key);
        move |kind, message| StoreError {
            blob: blob.clone(),
            offset,
            len,
            kind,
            message,
        }
    }

    /// Uploads the file `path` as object `key`: skipped if an object of the same size is
    /// there, unless `force`.
    pub fn upload_file(&self, key: &str, path: &Path, force: bool) -> Result<Uploaded, StoreError> {
        let size = std::fs::metadata(path)
            .map_err(|e| StoreError {
                blob: path.display().to_string(),
                offset: 0,
                len: 0,
                kind: StoreErrorKind::Failed,
                message: format!("cannot read the file to upload: {e}"),
            })?
            .len();
        if !force {
            if let Some(i) = self.head(key)? {
                if i.size == size {
                    log::info!(
                        "{} exists ({size} bytes): not uploaded again",
                        self.describe(key)
                    );
                    return Ok(Uploaded {
                        key: key.to_string(),
                        bytes: size,
                        parts: 0,
                        skipped: true,
                    });
                }
            }
        }
        let parts = if size < self.part_size {
            self.put_file(key, path, size)?;
            1
        } else {
            self.multipart(key, path, size)?
        };
        // The object must be there, whole.
        match self.head(key)? {
            Some(i) if i.size == size => {}
            found => {
                return Err(self.err(key, 0, size)(
                    StoreErrorKind::Failed,
                    match found {
                        Some(i) => format!(
                            "after the upload the object has {} bytes, not {size}",
                            i.size
                        ),
                        None => "after the upload the object is not there".into(),
                    },
                ))
            }
        }
        log::info!(
            "uploaded {} ({size} bytes, {parts} part{})",
            self.describe(key),
            if parts == 1 { "" } else { "s" }
        );
        Ok(Uploaded {
            key: key.to_string(),
            bytes: size,
            parts,
            skipped: false,
        })
    }

    /// One PUT of the whole file.
    fn put_file(&self, key: &str, path: &Path, size: u64) -> Result<(), StoreError> {
        let err = self.err(key, 0, size);
        let crc: Mutex<Option<Arc<Mutex<Crc64>>>> = Mutex::new(None);
        let timeout = self.send_timeout(size);
        let sent_crc = self.http.run(
            false,
            &|c| {
                let req = self.sign(
                    self.request(Method::Put, key)
                        .with_payload(self.part_payload()),
                )?;
                let (body, this) = file_body(path, 0, size).map_err(|e| {
                    err(
                        StoreErrorKind::Failed,
                        format!("reading {}: {e}", path.display()),
                    )
                })?;
                *crc.lock().unwrap_or_else(|p| p.into_inner()) = Some(this);
                Ok(ObjectClient::builder(c, &req).timeout(timeout).body(body))
            },
            &mut |resp: Response| {
                if !resp.status().is_success() {
                    let (kind, m) = describe_failure(resp);
                    return Outcome::Fail(err(kind, m));
                }
                Outcome::Done(header_u64(&resp, "x-oss-hash-crc64ecma"))
            },
            &err,
        )?;
        let ours = crc.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(theirs), Some(ours)) = (sent_crc, ours) {
            let ours = ours.lock().unwrap_or_else(|p| p.into_inner()).value();
            if theirs != ours {
                // The object is wrong: remove it rather than leave it.
                let _ = self.delete(key);
                return Err(err(
                    StoreErrorKind::Failed,
                    format!("the server's CRC-64 {theirs} differs from the bytes sent ({ours})"),
                ));
            }
        }
        Ok(())
    }

    /// The payload hash of a streamed body: S3 takes `UNSIGNED-PAYLOAD` (the body is not read
    /// twice); OSS signs none anyway.
    fn part_payload(&self) -> Payload {
        Payload::Unsigned
    }

    /// A multipart upload: initiated, parts sent in parallel, completed, or aborted on failure
    /// or interruption. Uploads of the same key a killed run left are aborted first.
    fn multipart(&self, key: &str, path: &Path, size: u64) -> Result<usize, StoreError> {
        self.abort_stale_uploads(key);
        let err = self.err(key, 0, size);
        // Interrupted (SIGINT, SIGTERM), the upload is aborted before the process exits; one
        // whose id has not come back yet is looked for by key.
        let started: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let client = self.clone();
        let (k, id) = (key.to_string(), started.clone());
        let _undo = crate::atomic::on_interrupt(
            format!("aborting the multipart upload of {}", self.describe(key)),
            move || {
                let id = id.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match id {
                    Some(id) => {
                        if let Err(e) = client.abort(&k, &id) {
                            log::warn!("{e}");
                        }
                    }
                    None => client.abort_stale_uploads(&k),
                }
            },
        )
        .map_err(|e| err(StoreErrorKind::Failed, format!("{e:#}")))?;
        let upload_id = self.initiate(key)?;
        *started.lock().unwrap_or_else(|p| p.into_inner()) = Some(upload_id.clone());
        match self.send_parts(key, path, size, &upload_id) {
            Ok(n) => Ok(n),
            Err(e) => {
                if let Err(a) = self.abort(key, &upload_id) {
                    log::warn!(
                        "aborting the multipart upload of {}: {a}",
                        self.describe(key)
                    );
                }
                Err(e)
            }
        }
    }

    fn send_parts(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        upload_id: &str,
    ) -> Result<usize, StoreError> {
        let part = part_len(size, self.part_size);
        let count = size.div_ceil(part) as usize;
        let done: Mutex<Vec<Option<SentPart>>> = Mutex::new(vec![None; count]);
        let next = AtomicU64::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<StoreError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_PARTS.min(count) {
                s.spawn(|| loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= count {
                        return;
                    }
                    let offset = i as u64 * part;
                    let len = part.min(size - offset);
                    match self.send_part(key, PartSource::Path(path), upload_id, i + 1, offset, len)
                    {
                        Ok(r) => done.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let parts: Vec<SentPart> = done
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|p| p.expect("every part is sent when none failed"))
            .collect();
        self.complete(key, upload_id, &parts, size)?;
        Ok(count)
    }

    /// Initiates a multipart upload of `key`: its upload id.
    pub(crate) fn initiate(&self, key: &str) -> Result<String, StoreError> {
        let err = self.err(key, 0, 0);
        let timeout = self.http.opts.timeout;
        self.http.run(
            false,
            &|c| {
                let req = self.sign(self.with_body(
                    self.request(Method::Post, key).with_query("uploads", ""),
                    b"",
                ))?;
                Ok(ObjectClient::builder(c, &req).timeout(timeout))
            },
            &mut |resp: Response| {
                if !resp.status().is_success() {
                    let (kind, m) = describe_failure(resp);
                    return Outcome::Fail(err(kind, m));
                }
                let body = resp.text().unwrap_or_default();
                match xml_text(&body, "UploadId") {
                    Some(id) if !id.is_empty() => Outcome::Done(id),
                    _ => Outcome::Fail(err(
                        StoreErrorKind::Failed,
                        "initiating a multipart upload answered no UploadId".into(),
                    )),
                }
            },
            &err,
        )
    }

    /// Completes multipart upload `upload_id` of `key` from its parts (in order), checking the
    /// server's CRC-64 of the object against the parts' (OSS); a mismatch deletes the object.
    pub(crate) fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[SentPart],
        size: u64,
    ) -> Result<(), StoreError> {
        let count = parts.len();
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, (etag, _, _)) in parts.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                etag.replace('&', "&amp;").replace('<', "&lt;")
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        // The whole object's CRC-64, from the parts' (when the server gave every one).
        let expected_crc = parts.iter().try_fold(0u64, |acc, (_, crc, len)| {
            crc.map(|c| combine(acc, c, *len))
        });
        let err = self.err(key, 0, size);
        let timeout = self.http.opts.timeout + Duration::from_secs(count as u64);
        let final_crc = self.http.run(
            false,
            &|c| {
                let req = self.sign(
                    self.with_body(
                        self.request(Method::Post, key)
                            .with_query("uploadId", upload_id),
                        xml.as_bytes(),
                    ),
                )?;
                Ok(ObjectClient::builder(c, &req)
                    .timeout(timeout)
                    .body(xml.clone()))
            },
            &mut |resp: Response| {
                if !resp.status().is_success() {
                    let (kind, m) = describe_failure(resp);
                    return Outcome::Fail(err(kind, m));
                }
                let crc = header_u64(&resp, "x-oss-hash-crc64ecma");
                match error_in_body(resp) {
                    Some((kind, code)) => Outcome::Fail(err(
                        kind,
                        format!("completing the multipart upload: {code}"),
                    )),
                    None => Outcome::Done(crc),
                }
            },
            &err,
        )?;
        if let (Some(theirs), Some(ours)) = (final_crc, expected_crc) {
            if theirs != ours {
                let _ = self.delete(key);
                return Err(err(
                    StoreErrorKind::Failed,
                    format!("the server's CRC-64 {theirs} of the object differs from the parts sent ({ours})"),
                ));
            }
        }
        Ok(())
    }

    /// Sends part `number` (bytes `offset..offset + len` of the file): its ETag and CRC-64.
    pub(crate) fn send_part(
        &self,
        key: &str,
        src: PartSource<'_>,
        upload_id: &str,
        number: usize,
        offset: u64,
        len: u64,
    ) -> Result<SentPart, StoreError> {
        let err = self.err(key, offset, len);
        let crc: Mutex<Option<Arc<Mutex<Crc64>>>> = Mutex::new(None);
        let timeout = self.send_timeout(len);
        let n = number.to_string();
        let (etag, theirs) = self.http.run(
            false,
            &|c| {
                let req = self.sign(
                    self.request(Method::Put, key)
                        .with_query("partNumber", &n)
                        .with_query("uploadId", upload_id)
                        .with_payload(self.part_payload()),
                )?;
                let (body, this) = src.body(offset, len).map_err(|e| {
                    err(
                        StoreErrorKind::Failed,
                        format!("reading {}: {e}", src.shown()),
                    )
                })?;
                *crc.lock().unwrap_or_else(|p| p.into_inner()) = Some(this);
                Ok(ObjectClient::builder(c, &req).timeout(timeout).body(body))
            },
            &mut |resp: Response| {
                if !resp.status().is_success() {
                    let (kind, m) = describe_failure(resp);
                    return Outcome::Fail(err(kind, format!("part {number}: {m}")));
                }
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match etag {
                    Some(e) => Outcome::Done((e, header_u64(&resp, "x-oss-hash-crc64ecma"))),
                    None => Outcome::Fail(err(
                        StoreErrorKind::Failed,
                        format!("part {number}: answered without an ETag"),
                    )),
                }
            },
            &err,
        )?;
        let ours = crc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).value());
        if let (Some(t), Some(o)) = (theirs, ours) {
            if t != o {
                return Err(err(
                    StoreErrorKind::Failed,
                    format!(
                        "part {number}: the server's CRC-64 {t} differs from the bytes sent ({o})"
                    ),
                ));
            }
        }
        Ok((etag, ours, len))
    }

    /// Multipart uploads of exactly `key` in progress (ListMultipartUploads, first 1000).
    pub fn uploads_of(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let err = self.err(key, 0, 0);
        let timeout = self.http.opts.timeout;
        self.http.run(
            false,
            &|c| {
                let req = self.sign(
                    self.request(Method::Get, "")
                        .with_query("uploads", "")
                        .with_query("prefix", key),
                )?;
                Ok(ObjectClient::builder(c, &req).timeout(timeout))
            },
            &mut |resp: Response| {
                if !resp.status().is_success() {
                    let (kind, m) = describe_failure(resp);
                    return Outcome::Fail(err(kind, format!("listing multipart uploads: {m}")));
                }
                let body = resp.text().unwrap_or_default();
                // Each `<Upload>` element; what comes before the first is the listing's header.
                let ids = body
                    .split("<Upload>")
                    .skip(1)
                    .filter(|u| xml_text(u, "Key").as_deref() == Some(key))
                    .filter_map(|u| xml_text(u, "UploadId"))
                    .collect();
                Outcome::Done(ids)
            },
            &err,
        )
    }

    /// Aborts the multipart uploads of `key` a run killed before it could abort them left
    /// (their parts would otherwise stay in the bucket, billed, forever). A server that cannot
    /// list uploads (s3s-fs, for one) is not an error: there is nothing more to do then.
    pub(crate) fn abort_stale_uploads(&self, key: &str) {
        match self.uploads_of(key) {
            Ok(ids) => {
                for id in ids {
                    match self.abort(key, &id) {
                        Ok(()) => log::warn!(
                            "aborted a multipart upload of {} left by an earlier run ({id})",
                            self.describe(key)
                        ),
                        Err(e) => log::warn!("{e}"),
                    }
                }
            }
            Err(e) => log::debug!("not cleaning up earlier uploads: {e}"),
        }
    }

    /// Aborts a multipart upload (its parts are deleted).
    pub fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let err = self.err(key, 0, 0);
        let timeout = self.http.opts.timeout;
        self.http.run(
            false,
            &|c| {
                let req = self.sign(
                    self.request(Method::Delete, key)
                        .with_query("uploadId", upload_id),
                )?;
                Ok(ObjectClient::builder(c, &req).timeout(timeout))
            },
            &mut |resp: Response| {
                if resp.status().is_success() || resp.status().as_u16() == 404 {
                    Outcome::Done(())
                } else {
                    let (kind, m) = describe_failure(resp);
                    Outcome::Fail(err(kind, format!("aborting the multipart upload: {m}")))
                }
            },
            &err,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_evened_out_for_the_senders() {
        const MIB: u64 = 1 << 20;
        // 1 GB with 200 MiB parts: 8 parts of 120 MiB (the last shorter), not 5.
        assert_eq!(part_len(1_000_000_000, 200 * MIB), 120 * MIB);
        assert_eq!(1_000_000_000u64.div_ceil(120 * MIB), 8);
        // Already a multiple of the senders: unchanged.
        assert_eq!(part_len(800 * MIB, 200 * MIB), 200 * MIB);
        // Evened-out parts would be below 5 MiB: the part size stays.
        assert_eq!(part_len((20 << 20) + 123, 5 * MIB), 5 * MIB);
        // One part only (a single PUT anyway) and tiny part sizes.
        assert_eq!(part_len(100, 200 * MIB), 200 * MIB);
        assert_eq!(part_len(100, 1), 1);
        // Never above the part size asked for.
        for size in [6 * MIB, 41 * MIB + 7, 999 * MIB, 5_000 * MIB] {
            for ps in [5 * MIB, 8 * MIB, 64 * MIB, 200 * MIB] {
                assert!(part_len(size, ps) <= ps, "{size} {ps}");
            }
        }
    }
}
