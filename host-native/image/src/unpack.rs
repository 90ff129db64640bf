//! `nydus-image unpack`: the filesystem as a tar archive whose extraction equals the source.
//!
//! File data is read through read plans by the [`ChunkReader`] on all cores
//! ([`nydus_host_storage::ahead`]: chunks fetched, decompressed and verified by several
//! threads, handed back in file order), so every chunk's digest is verified before a byte of it
//! reaches the archive and the archive streams (to a file or to stdout) in bounded memory.
//! Extended attributes and sub-second mtimes go into PAX records (`SCHILY.xattr.*`, `mtime`),
//! as GNU tar writes them. Sockets cannot be archived: they are skipped with a warning, never
//! a panic (upstream panics on fifos and devices).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::model::{decode_rdev, FileType};
use nydus_core::read::{Filesystem, Inode};
use nydus_host_storage::ahead::{read_ahead, AheadOptions, JobError};
use nydus_host_storage::{ChunkReader, Image, Localfs, ReaderOptions};
use tar::{EntryType, Header};

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

fn base_header(i: &Inode, t: EntryType) -> Header {
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
/// file data read by `reader` (`None`: the image must hold no file data). Returns how many
/// sockets were skipped.
pub fn unpack<W: Write>(
    img: &Image,
    reader: Option<&ChunkReader>,
    out: W,
    dest: &str,
) -> Result<u64> {
    let boot = &img.boot;
    let path = &img.path;
    let mut entries: Vec<(Vec<u8>, Inode)> = Vec::new();
    boot.walk(&mut |p, i| {
        entries.push((p.to_vec(), i.clone()));
        Ok(())
    })
    .with_context(|| format!("{}: walking the filesystem", path.display()))?;
    // Which entries carry data (the first name of each hard-link group), in archive order.
    let mut seen_links: HashMap<u64, usize> = HashMap::new();
    let mut data_of: Vec<Option<usize>> = vec![None; entries.len()];
    let mut jobs = Vec::new();
    for (k, (_, i)) in entries.iter().enumerate() {
        if i.file_type != FileType::Regular {
            continue;
        }
        if i.nlink > 1 && seen_links.insert(i.ino, k).is_some() {
            continue;
        }
        data_of[k] = Some(jobs.len());
        jobs.push(k);
    }
    let no_blobs;
    let reader = match reader {
        Some(r) => r,
        None => {
            if let Some(&k) = jobs.iter().find(|&&k| entries[k].1.size > 0) {
                bail!(
                    "{}: {} has data, but no blob was given (use -b <file> or -D <dir>)",
                    path.display(),
                    String::from_utf8_lossy(&entries[k].0)
                );
            }
            no_blobs =
                ChunkReader::new(&[], Arc::new(Localfs::default()), ReaderOptions::default());
            &no_blobs
        }
    };
    let plans = jobs.iter().map(|&k| {
        let i = &entries[k].1;
        nydus_core::read::plan(boot, i, 0, i.size).map_err(JobError::Plan)
    });
    read_ahead(reader, plans, AheadOptions::default(), |pieces| {
        let mut skipped = 0u64;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, out));
        let mut first_link: HashMap<u64, Vec<u8>> = HashMap::new();
        for (k, (p, i)) in entries.iter().enumerate() {
            let name = tar_path(p);
            let shown = String::from_utf8_lossy(p).into_owned();
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
                    let mut h = base_header(i, EntryType::Link);
                    builder
                        .append_link(&mut h, osname, Path::new(OsStr::from_bytes(target)))
                        .with_context(ctx)?;
                    continue;
                }
                first_link.insert(i.ino, name.clone());
            }
            match i.file_type {
                FileType::Directory => {
                    let mut h = base_header(i, EntryType::Directory);
                    builder
                        .append_data(&mut h, osname, io::empty())
                        .with_context(ctx)?;
                }
                FileType::Regular => {
                    let job = data_of[k].expect("every first link has a job");
                    let mut h = base_header(i, EntryType::Regular);
                    h.set_size(i.size);
                    // The header (and any long-name entry) through the builder, then the data
                    // straight from the fetched chunks to the output, then the padding.
                    builder
                        .append_data(&mut h, osname, io::empty())
                        .with_context(ctx)?;
                    let w = builder.get_mut();
                    let n = pieces
                        .for_each_slice(job, |s| w.write_all(s))
                        .with_context(ctx)?;
                    if n != i.size {
                        bail!("{shown}: read {n} bytes of a {}-byte file", i.size);
                    }
                    w.write_all(&[0u8; 512][..((512 - i.size % 512) % 512) as usize])
                        .with_context(ctx)?;
                }
                FileType::Symlink => {
                    let target = boot
                        .symlink(i.nid)
                        .with_context(|| format!("{shown}: reading the symlink target"))?;
                    let mut h = base_header(i, EntryType::Symlink);
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
                    let mut h = base_header(i, t);
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
        Ok(skipped)
    })
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
