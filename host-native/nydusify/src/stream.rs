//! Registry blobs as blocking readers: a pull task sends the pieces through a bounded channel
//! to a reader on a blocking thread, so layer streams feed synchronous parsers and the build
//! pipeline with bounded memory.

use std::io::Read;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use nydus_host_image::create::BlobSink;
use tokio::sync::mpsc;

use nydus_host_registry::Registry;

/// Pieces in flight between the pull and the reader.
const IN_FLIGHT: usize = 32;

/// Starts nothing yet: returns the pull (to be awaited, concurrently with the reader's use on
/// a blocking thread) and the reader of the blob's bytes. The pull's result says whether the
/// bytes were the blob (digest verified); the reader drains the stream when dropped, so the
/// pull always reaches the end.
pub fn blob_reader(
    reg: Arc<Registry>,
    repo: &str,
    digest: &str,
) -> (
    impl std::future::Future<Output = Result<u64>> + 'static,
    DrainOnDrop<ChannelReader>,
) {
    let (tx, reader) = channel();
    let (repo, digest) = (repo.to_string(), digest.to_string());
    let pull = async move {
        let r = reg
            .pull_blob_each(&repo, &digest, async |c: Bytes| {
                tx.send(Ok(c))
                    .await
                    .map_err(|_| anyhow!("the layer reader stopped early"))
            })
            .await;
        if let Err(e) = &r {
            let _ = tx.send(Err(std::io::Error::other(format!("{e:#}")))).await;
        }
        r
    };
    (pull, reader)
}

/// The builder's [`BlobSink`] over a bounded channel to an upload task: a write waits for room
/// (the build goes at the upload's pace); once the upload has stopped, the rest is dropped.
#[derive(Debug)]
pub struct ChannelSink(Option<mpsc::Sender<Bytes>>);

impl ChannelSink {
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChannelSink(Some(tx))
    }
}

impl BlobSink for ChannelSink {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(tx) = &self.0 {
            if tx.blocking_send(Bytes::copy_from_slice(bytes)).is_err() {
                self.0 = None;
            }
        }
    }
}

/// A bounded channel of blob pieces and the blocking reader of its other end.
pub fn channel() -> (
    mpsc::Sender<std::io::Result<Bytes>>,
    DrainOnDrop<ChannelReader>,
) {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(IN_FLIGHT);
    (
        tx,
        DrainOnDrop(ChannelReader {
            rx,
            cur: Bytes::new(),
        }),
    )
}

/// A blocking reader over the pieces a pull task sends.
#[derive(Debug)]
pub struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Reads its stream to the end when dropped, so that the pull sees the whole blob (and checks
/// its digest) even when the tar reader stops at the end-of-archive blocks.
#[derive(Debug)]
pub struct DrainOnDrop<R: Read>(R);

impl<R: Read> Read for DrainOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Drop for DrainOnDrop<R> {
    fn drop(&mut self) {
        let _ = std::io::copy(&mut self.0, &mut std::io::sink());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_sink_ignores_the_rest() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut sink = ChannelSink::new(tx);
        sink.write(b"ab");
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"ab"));
        drop(rx);
        sink.write(b"cd");
        sink.write(b"ef");
        assert!(sink.0.is_none());
    }

    #[test]
    fn channel_reader_passes_errors_and_drains() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"abc"))).unwrap();
        tx.try_send(Err(std::io::Error::other("digest mismatch")))
            .unwrap();
        drop(tx);
        let mut r = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        let mut s = String::new();
        let e = r.read_to_string(&mut s).unwrap_err();
        assert_eq!(e.to_string(), "digest mismatch");
        assert_eq!(s, "abc");
    }
}
