//! `nydus-image unpack`: the filesystem as a tar archive whose extraction equals the source.
//!
//! Every chunk is read back through [`ChunkSource`], so its digest is verified before a byte
//! reaches the archive. Extended attributes and sub-second mtimes go into PAX records
//! (`SCHILY.xattr.*`, `mtime`), as GNU tar writes them. Sockets cannot be archived: they are
//! skipped with a warning, never a panic (upstream panics on fifos and devices).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use nydus_core::model::{decode_rdev, ChunkRef, FileType};
use nydus_core::v6::reader::InodeInfo;
use nydus_host_storage::{BlobLocator, ChunkSource, Image};
use tar::{EntryType, Header};

/// Streams a file's bytes chunk by chunk, verifying each chunk.
struct FileReader<'a> {
    chunks: std::vec::IntoIter<ChunkRef>,
    source: &'a mut ChunkSource,
    buf: Vec<u8>,
    pos: usize,
    left: u64,
}

impl Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.left == 0 {
                return Ok(0);
            }
            let c = self
                .chunks
                .next()
                .ok_or_else(|| io::Error::other("the file has fewer chunks than its size needs"))?;
            let data = self
                .source
                .read(&c)
                .map_err(|e| io::Error::other(format!("{e:#}")))?;
            let take = (data.len() as u64).min(self.left) as usize;
            self.buf = data;
            self.buf.truncate(take);
            self.pos = 0;
            self.left -= take as u64;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// One PAX record: `"<len> <key>=<value>\n"`, the length counting itself.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn tar_path(p: &[u8]) -> Vec<u8> {
    if p == b"/" {
        return b"./".to_vec();
    }
    let mut v = b".".to_vec();
    v.extend_from_slice(p);
    v
}

fn base_header(i: &InodeInfo, t: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(t);
    h.set_mode(i.attrs.mode & 0o7777);
    h.set_uid(u64::from(i.attrs.uid));
    h.set_gid(u64::from(i.attrs.gid));
    h.set_mtime(i.attrs.mtime);
    h.set_size(0);
    h
}

/// Writes the filesystem of `img` to `out` as a tar archive (`dest` names it in errors), its
/// file data read through `locator`'s blobs (or, when it gives none and the image is a blob
/// carrying its bootstrap, that blob). Returns how many sockets were skipped.
pub fn unpack<W: Write>(img: &Image, locator: BlobLocator, out: W, dest: &str) -> Result<u64> {
    let boot = &img.boot;
    let path = &img.path;
    let mut locator = locator;
    if let Some(b) = &img.inline_blob {
        if locator.is_empty() {
            locator = BlobLocator::single(b.clone());
        }
    }
    let mut source = ChunkSource::new(locator, boot.blobs());
    let mut skipped = 0u64;
    {
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, out));
        let mut first_link: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut entries: Vec<(Vec<u8>, InodeInfo)> = Vec::new();
        boot.walk(&mut |p, i| {
            entries.push((p.to_vec(), i.clone()));
            Ok(())
        })
        .with_context(|| format!("{}: walking the filesystem", path.display()))?;
        for (p, i) in entries {
            let name = tar_path(&p);
            let shown = String::from_utf8_lossy(&p).into_owned();
            let ctx = || format!("writing {shown} to {dest}");
            // PAX records: xattrs and a precise mtime.
            let mut pax = Vec::new();
            if i.attrs.mtime_nsec != 0 {
                pax_record(
                    &mut pax,
                    b"mtime",
                    format!("{}.{:09}", i.attrs.mtime, i.attrs.mtime_nsec).as_bytes(),
                );
            }
            for (k, v) in boot
                .xattrs(i.nid)
                .with_context(|| format!("{shown}: reading xattrs"))?
            {
                let mut key = b"SCHILY.xattr.".to_vec();
                key.extend_from_slice(&k);
                pax_record(&mut pax, &key, &v);
            }
            let osname = Path::new(OsStr::from_bytes(&name));
            if i.file_type == FileType::Socket {
                log::warn!("{shown}: sockets cannot be stored in a tar archive; skipped");
                skipped += 1;
                continue;
            }
            if !pax.is_empty() {
                let mut h = Header::new_ustar();
                h.set_entry_type(EntryType::XHeader);
                h.set_path("././@PaxHeader").with_context(ctx)?;
                h.set_mode(0o644);
                h.set_size(pax.len() as u64);
                h.set_cksum();
                builder.append(&h, pax.as_slice()).with_context(ctx)?;
            }
            if i.file_type == FileType::Regular && i.nlink > 1 {
                if let Some(target) = first_link.get(&i.ino) {
                    let mut h = base_header(&i, EntryType::Link);
                    builder
                        .append_link(&mut h, osname, Path::new(OsStr::from_bytes(target)))
                        .with_context(ctx)?;
                    continue;
                }
                first_link.insert(i.ino, name.clone());
            }
            match i.file_type {
                FileType::Directory => {
                    let mut h = base_header(&i, EntryType::Directory);
                    builder
                        .append_data(&mut h, osname, io::empty())
                        .with_context(ctx)?;
                }
                FileType::Regular => {
                    let chunks = boot
                        .chunks(i.nid)
                        .with_context(|| format!("{shown}: reading chunk indexes"))?;
                    let mut h = base_header(&i, EntryType::Regular);
                    h.set_size(i.size);
                    let reader = FileReader {
                        chunks: chunks.into_iter(),
                        source: &mut source,
                        buf: Vec::new(),
                        pos: 0,
                        left: i.size,
                    };
                    builder
                        .append_data(&mut h, osname, reader)
                        .with_context(ctx)?;
                }
                FileType::Symlink => {
                    let target = boot
                        .symlink(i.nid)
                        .with_context(|| format!("{shown}: reading the symlink target"))?;
                    let mut h = base_header(&i, EntryType::Symlink);
                    builder
                        .append_link(&mut h, osname, Path::new(OsStr::from_bytes(&target)))
                        .with_context(ctx)?;
                }
                FileType::CharDevice | FileType::BlockDevice | FileType::Fifo => {
                    let t = match i.file_type {
                        FileType::CharDevice => EntryType::Char,
                        FileType::BlockDevice => EntryType::Block,
                        _ => EntryType::Fifo,
                    };
                    let mut h = base_header(&i, t);
                    if i.file_type.is_device() {
                        let (major, minor) = decode_rdev(i.attrs.rdev);
                        h.set_device_major(major).with_context(ctx)?;
                        h.set_device_minor(minor).with_context(ctx)?;
                    }
                    builder
                        .append_data(&mut h, osname, io::empty())
                        .with_context(ctx)?;
                }
                FileType::Socket => {} // skipped above
            }
        }
        builder
            .finish()
            .with_context(|| format!("writing {dest}"))?;
        let mut w = builder
            .into_inner()
            .with_context(|| format!("writing {dest}"))?;
        w.flush().with_context(|| format!("writing {dest}"))?;
        w.into_inner()
            .map_err(|e| anyhow!("writing {dest}: {}", e.error()))?;
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        for (k, v, want) in [
            (&b"mtime"[..], &b"1.5"[..], &b"13 mtime=1.5\n"[..]),
            (b"k", b"", b"5 k=\n"),
            (b"SCHILY.xattr.user.a", &[b'x'; 80][..], b""),
        ] {
            let mut out = Vec::new();
            pax_record(&mut out, k, v);
            let sp = out.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, out.len());
            if !want.is_empty() {
                assert_eq!(out, want);
            }
        }
    }

    #[test]
    fn tar_paths_are_relative() {
        assert_eq!(tar_path(b"/"), b"./");
        assert_eq!(tar_path(b"/a/b"), b"./a/b");
    }
}
