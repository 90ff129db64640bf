//! Blob pushes: skipped when the repository has the blob; whole uploads streamed from the file
//! and restarted in a new session after a transient failure; chunked uploads (PATCH) that
//! resume from the registry's offset, or start over when it cannot say; uploads of a blob
//! still being produced, whose digest is named at the end.

use std::path::Path;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::client::{location, Op, Registry};
use crate::error::{chain, ErrorKind, RegistryError, Result};

impl Registry {
    async fn start_upload(&self, repo: &str) -> Result<String> {
        let action = format!("starting an upload to {repo}");
        let op = Op {
            repo,
            action: &action,
        };
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scope = format!("repository:{repo}:pull,push");
        let resp = self
            .send(op, &scope, true, &|| {
                self.http.post(&url).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error_of(op, resp).await);
        }
        location(&resp).ok_or_else(|| {
            let msg = format!("{}: upload started without a Location", self.host());
            RegistryError::new(ErrorKind::Protocol, self.host(), action, msg).repo(repo)
        })
    }

    /// How much of an upload the registry has (its `Range: 0-N`) and the session's current
    /// location. `None` when that is unknown: registries answer `0-0` both for no byte and
    /// for one byte received, so the upload must start over.
    async fn upload_offset(&self, repo: &str, loc: &str) -> Result<(Option<u64>, String)> {
        let op = Op {
            repo,
            action: "upload status",
        };
        let url = self.url(loc);
        let scope = format!("repository:{repo}:pull,push");
        let resp = self.send(op, &scope, true, &|| self.http.get(&url)).await?;
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(self.error_of(op, resp).await);
        }
        let next = location(&resp).unwrap_or_else(|| loc.to_string());
        Ok((
            range_end(resp.headers()).filter(|&e| e > 0).map(|e| e + 1),
            next,
        ))
    }

    /// Pushes a blob file unless the repository already has it. Large blobs go up in chunks
    /// (`chunk_size`); a chunk the registry did not take (any answer but 202, or a transient
    /// failure) is resumed from the offset the registry reports. Authentication and TLS or
    /// protocol failures of the transport end the upload at once.
    pub async fn push_blob_file(&self, repo: &str, digest: &str, path: &Path) -> Result<()> {
        if self.blob_size(repo, digest).await?.is_some() {
            return Ok(());
        }
        let host = self.host();
        let read_err = |e| RegistryError::io(host, format!("reading {}", path.display()), e);
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| RegistryError::io(host, format!("{}", path.display()), e))?
            .len();
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| RegistryError::io(host, format!("opening {}", path.display()), e))?;
        let scope = format!("repository:{repo}:pull,push");
        let mut loc = self.start_upload(repo).await?;
        let cs = self.opts.chunk_size;
        if cs > 0 && size > cs {
            let mut off = 0u64;
            let mut failures = 0u32;
            while off < size {
                let len = cs.min(size - off);
                f.seek(std::io::SeekFrom::Start(off))
                    .await
                    .map_err(read_err)?;
                let mut buf = vec![0u8; len as usize];
                f.read_exact(&mut buf).await.map_err(read_err)?;
                let result = self
                    .patch_chunk(repo, &scope, &loc, off, Bytes::from(buf))
                    .await;
                let why = match result {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        loc = location(&r).unwrap_or(loc);
                        off += len;
                        continue;
                    }
                    Ok(r) => {
                        let op = Op {
                            repo,
                            action: "upload chunk",
                        };
                        self.error_of(op, r).await
                    }
                    Err(e) => e,
                };
                failures += 1;
                // An answer other than "not allowed" says the registry is there and the
                // session may be resumed; of transport failures only transient ones may.
                let resumable = why.kind() != ErrorKind::Auth
                    && (why.is_transient() || why.http_status().is_some());
                if !resumable || failures > self.opts.retries {
                    let msg = format!("{host}: uploading {digest} to {repo}: {why}");
                    return Err(why.reworded(msg));
                }
                log::warn!("{why}; resuming the upload");
                tokio::time::sleep(self.opts.retry_delay * failures).await;
                // Resume where the registry is; if it cannot say (or has dropped the
                // session), start over.
                match self.upload_offset(repo, &loc).await {
                    Ok((Some(o), next)) => {
                        off = o;
                        loc = next;
                    }
                    status => {
                        if let Err(e) = status {
                            log::warn!("{}; starting the upload over", chain(&e));
                        }
                        off = 0;
                        loc = self.start_upload(repo).await?;
                    }
                }
            }
            return self.commit_upload(repo, &loc, digest).await;
        }
        drop(f);
        self.put_whole(repo, digest, loc, size, &|| file_body(path))
            .await
    }

    /// Uploads a blob in one PUT to the session at `loc`, the body made by `body` for each
    /// attempt; after a transient failure the upload starts over in a new session (a
    /// registry may have kept part of the failed body).
    async fn put_whole(
        &self,
        repo: &str,
        digest: &str,
        mut loc: String,
        size: u64,
        body: &(dyn Fn() -> reqwest::Body + Sync),
    ) -> Result<()> {
        let action = format!("pushing {digest} to {repo}");
        let op = Op {
            repo,
            action: &action,
        };
        let scope = format!("repository:{repo}:pull,push");
        let mut failures = 0u32;
        loop {
            let url = self.url(&with_digest(&loc, digest));
            let result = self
                .send(op, &scope, false, &|| {
                    self.http
                        .put(&url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(body())
                })
                .await;
            let why = match result {
                Ok(r) if r.status() == StatusCode::CREATED => return Ok(()),
                Ok(r) => self.error_of(op, r).await,
                Err(e) => e,
            };
            if !why.is_transient() {
                return Err(why);
            }
            failures += 1;
            if failures > self.opts.retries {
                return Err(why.context(format!("gave up after {failures} attempts")));
            }
            log::warn!("{}; restarting the upload (retry {failures})", chain(&why));
            tokio::time::sleep(self.opts.retry_delay * failures).await;
            loc = self.start_upload(repo).await?;
        }
    }

    /// Uploads a blob whose digest is not known yet, as it is produced: the pieces received
    /// on `rx` go up in chunks of about `piece` bytes (PATCH), until the channel closes.
    /// Returns the upload's location and the bytes sent; [`Registry::commit_upload`] then
    /// names the digest. Any failure ends it (the caller falls back to a whole upload).
    pub async fn push_blob_stream(
        &self,
        repo: &str,
        mut rx: tokio::sync::mpsc::Receiver<Bytes>,
        piece: usize,
    ) -> Result<(String, u64)> {
        let scope = format!("repository:{repo}:pull,push");
        let mut loc = self.start_upload(repo).await?;
        let mut off = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(piece);
        loop {
            let next = rx.recv().await;
            if let Some(b) = &next {
                buf.extend_from_slice(b);
                if buf.len() < piece {
                    continue;
                }
            }
            if !buf.is_empty() {
                let body = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(piece)));
                let len = body.len() as u64;
                let resp = self.patch_chunk(repo, &scope, &loc, off, body).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    let op = Op {
                        repo,
                        action: "streaming upload",
                    };
                    return Err(self.error_of(op, resp).await);
                }
                loc = location(&resp).unwrap_or(loc);
                off += len;
            }
            if next.is_none() {
                return Ok((loc, off));
            }
        }
    }

    /// Sends one chunk of an upload (PATCH with its `Content-Range` at `off`).
    async fn patch_chunk(
        &self,
        repo: &str,
        scope: &str,
        loc: &str,
        off: u64,
        body: Bytes,
    ) -> Result<Response> {
        let op = Op {
            repo,
            action: "upload chunk",
        };
        let url = self.url(loc);
        let len = body.len() as u64;
        let range = format!("{}-{}", off, off + len - 1);
        self.send(op, scope, false, &|| {
            self.http
                .request(Method::PATCH, &url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Range", &range)
                .header(CONTENT_LENGTH, len)
                .body(body.clone())
        })
        .await
    }

    /// Completes a chunked upload (at `loc`) as blob `digest`.
    pub async fn commit_upload(&self, repo: &str, loc: &str, digest: &str) -> Result<()> {
        let action = format!("committing {digest} to {repo}");
        let op = Op {
            repo,
            action: &action,
        };
        let scope = format!("repository:{repo}:pull,push");
        let url = self.url(&with_digest(loc, digest));
        let resp = self
            .send(op, &scope, true, &|| {
                self.http.put(&url).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error_of(op, resp).await);
        }
        Ok(())
    }

    /// Pushes a small blob (a config) unless present.
    pub async fn push_blob_bytes(&self, repo: &str, digest: &str, data: &[u8]) -> Result<()> {
        if self.blob_size(repo, digest).await?.is_some() {
            return Ok(());
        }
        let loc = self.start_upload(repo).await?;
        let data = Bytes::copy_from_slice(data);
        self.put_whole(repo, digest, loc, data.len() as u64, &|| {
            reqwest::Body::from(data.clone())
        })
        .await
    }
}

/// A request body streaming the file at `path` (read again for every attempt).
fn file_body(path: &Path) -> reqwest::Body {
    let path = path.to_path_buf();
    let stream = futures_util::stream::unfold(None, move |state: Option<tokio::fs::File>| {
        let path = path.clone();
        async move {
            let mut f = match state {
                Some(f) => f,
                None => match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    Err(e) => return Some((Err(e), None)),
                },
            };
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    reqwest::Body::wrap_stream(stream)
}

fn range_end(h: &HeaderMap<HeaderValue>) -> Option<u64> {
    h.get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.rsplit('-').next())
        .and_then(|n| n.trim().parse().ok())
}

fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={}", digest.replace(':', "%3A"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_join_locations() {
        assert_eq!(
            with_digest("/u/1?_state=a", "sha256:ab"),
            "/u/1?_state=a&digest=sha256%3Aab"
        );
        assert_eq!(with_digest("/u/1", "sha256:ab"), "/u/1?digest=sha256%3Aab");
    }

    #[test]
    fn upload_ranges_parse() {
        let mut h = HeaderMap::new();
        h.insert("range", HeaderValue::from_static("0-4095"));
        assert_eq!(range_end(&h), Some(4095));
        assert_eq!(range_end(&HeaderMap::new()), None);
    }
}
