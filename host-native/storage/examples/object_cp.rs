//! Copies one file to or from an S3 or OSS bucket with this crate's uploader and ranged
//! reader: the peer of `aws s3 cp` in `bench/backends.sh`.
//!
//! usage: object_cp put <s3|oss> <config-json> <file> <key>
//!        object_cp get <s3|oss> <config-json> <key> <file>
//!
//! `put` is `upload_file` (one PUT below the part size, parallel multipart above); `get`
//! reads the object with ranged GETs of 8 MiB on 8 threads, as the chunk reader's batches
//! do, into `<file>` (written in place with `pwrite`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use nydus_host_storage::config::parse_value;
use nydus_host_storage::object_client;

const RANGE: u64 = 8 << 20;
const THREADS: usize = 8;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, kind, config, a, b] = args.as_slice() else {
        bail!("usage: object_cp put|get <s3|oss> <config-json> <from> <to>");
    };
    let v: serde_json::Value = serde_json::from_str(config).context("the config is not JSON")?;
    let cfg = parse_value(kind, &v, None).map_err(anyhow::Error::msg)?;
    let c = object_client(&cfg)?.context("an s3 or oss configuration")?;
    match op.as_str() {
        "put" => {
            let up = c.upload_file(b, Path::new(a), true)?;
            eprintln!("{} bytes in {} part(s)", up.bytes, up.parts);
        }
        "get" => {
            let size = c.head(a)?.context("no such object")?.size;
            let out = File::create(b).with_context(|| format!("creating {b}"))?;
            out.set_len(size)?;
            let next = AtomicU64::new(0);
            std::thread::scope(|s| -> Result<()> {
                let workers: Vec<_> = (0..THREADS)
                    .map(|_| {
                        s.spawn(|| -> Result<()> {
                            let mut buf = vec![0u8; RANGE as usize];
                            loop {
                                let off = next.fetch_add(RANGE, Ordering::Relaxed);
                                if off >= size {
                                    return Ok(());
                                }
                                let n = RANGE.min(size - off) as usize;
                                c.get_range(a, off, &mut buf[..n])?;
                                out.write_all_at(&buf[..n], off)?;
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().expect("a reader thread panicked")?;
                }
                Ok(())
            })?;
        }
        other => bail!("unknown operation {other:?}: put or get"),
    }
    Ok(())
}
