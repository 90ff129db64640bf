//! `nydus-image inspect`: requests about a bootstrap, each answered with a JSON value.
//!
//! Requests: `stats`, `blobs`, `prefetch`, `ls [dir]`, `cd <dir>`, `stat <path>`,
//! `chunks <path>`, `icheck <ino>`, `help`. A [`Session`] keeps the current directory
//! between requests.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::model::FileType;
use nydus_core::rafs::Rafs as Bootstrap;
use nydus_core::read::{Filesystem, Inode};
use nydus_host_storage::open::BootSource;
use serde_json::{json, Value};

/// The requests a session answers.
pub const HELP: &str = "requests: stats | blobs | prefetch | ls [dir] | cd <dir> | stat <path> | chunks <path> | icheck <ino> | help | exit";

/// Requests about one bootstrap, with a current directory (initially `/`).
#[derive(Debug)]
pub struct Session<'a> {
    boot: &'a Bootstrap<BootSource>,
    cwd: Vec<u8>,
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Regular => "file",
        FileType::Directory => "dir",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "chardev",
        FileType::BlockDevice => "blockdev",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

fn inode_json(boot: &Bootstrap<BootSource>, path: &[u8], i: &Inode) -> Result<Value> {
    let mut v = json!({
        "path": String::from_utf8_lossy(path),
        "nid": i.nid,
        "ino": i.ino,
        "type": type_name(i.file_type),
        "mode": format!("{:o}", i.attrs.mode),
        "uid": i.attrs.uid,
        "gid": i.attrs.gid,
        "mtime": i.attrs.mtime,
        "mtime_nsec": i.attrs.mtime_nsec,
        "size": i.size,
        "nlink": i.nlink,
    });
    if i.file_type.is_device() {
        v["rdev"] = json!(i.attrs.rdev);
    }
    if i.file_type == FileType::Symlink {
        v["target"] = json!(String::from_utf8_lossy(&boot.symlink(i.nid)?));
    }
    let xattrs = boot.xattrs(i.nid)?;
    if !xattrs.is_empty() {
        let m: serde_json::Map<String, Value> = xattrs
            .iter()
            .map(|(k, val)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    json!(String::from_utf8_lossy(val)),
                )
            })
            .collect();
        v["xattrs"] = Value::Object(m);
    }
    if i.file_type == FileType::Regular {
        v["chunks"] = json!(boot.all_chunks(i.nid)?.len());
    }
    Ok(v)
}

impl<'a> Session<'a> {
    /// A session at the root of `boot`.
    pub fn new(boot: &'a Bootstrap<BootSource>) -> Self {
        Session {
            boot,
            cwd: b"/".to_vec(),
        }
    }

    fn resolve(&self, arg: &str) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let joined: Vec<u8> = if arg.starts_with('/') {
            arg.as_bytes().to_vec()
        } else {
            let mut p = self.cwd.clone();
            p.push(b'/');
            p.extend_from_slice(arg.as_bytes());
            p
        };
        for c in joined.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        let mut out = Vec::new();
        for p in parts {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        out
    }

    fn lookup(&self, path: &[u8]) -> Result<Inode> {
        let nid = self.boot.lookup(path)?.ok_or_else(|| {
            anyhow!(
                "{}: no such file or directory",
                String::from_utf8_lossy(path)
            )
        })?;
        Ok(self.boot.inode(nid)?)
    }

    /// The figures `stat` prints (hard links counted once), with the image's settings.
    fn stats(&self) -> Result<Value> {
        let st = nydus_core::stats::image_stat(self.boot, "")?;
        let unique = self.boot.chunk_table()?.len();
        Ok(json!({
            "fs_version": self.boot.version().to_string(),
            "inodes": st.inodes,
            "files": st.files,
            "hardlinks": st.hardlinks,
            "directories": st.directories,
            "symlinks": st.symlinks,
            "special_files": st.special_files,
            "file_bytes": st.file_bytes,
            "chunk_references": st.chunk_references,
            "unique_chunks": unique,
            "chunk_size": self.boot.chunk_size(),
            "compressor": self.boot.compressor().name(),
            "digester": self.boot.digester().name(),
            "blobs": self.boot.blobs().len(),
            "flags": format!("{:#x}", self.boot.flags()),
        }))
    }

    fn blobs(&self) -> Value {
        let list: Vec<Value> = self
            .boot
            .blobs()
            .iter()
            .enumerate()
            .map(|(i, b)| {
                json!({
                    "index": i,
                    "blob_id": b.blob_id,
                    "chunk_count": b.chunk_count,
                    "compressed_size": b.compressed_size,
                    "uncompressed_size": b.uncompressed_size,
                    "compressor": b.compressor.name(),
                    "digester": b.digester.name(),
                    "features": format!("{:#x}", b.features),
                    "ci_offset": b.ci_offset,
                    "ci_compressed_size": b.ci_compressed_size,
                    "ci_uncompressed_size": b.ci_uncompressed_size,
                })
            })
            .collect();
        Value::Array(list)
    }

    /// Answers one request line (`None` for an empty line).
    pub fn request(&mut self, line: &str) -> Result<Option<Value>> {
        let line = line.trim();
        let (cmd, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        let v = match cmd {
            "" => return Ok(None),
            "help" | "h" => json!({ "help": HELP }),
            "stats" => self.stats()?,
            "blobs" => self.blobs(),
            "prefetch" => {
                // The table holds nids (v6) or inode numbers (v5): each with its path.
                let list = self.boot.prefetch()?;
                let by_nid = self.boot.version() == 6;
                let mut found: HashMap<u64, (String, u64, u64)> = HashMap::new();
                self.boot.walk(&mut |p, i| {
                    let key = if by_nid { i.nid } else { i.ino };
                    if list.contains(&key) {
                        found.entry(key).or_insert_with(|| {
                            (String::from_utf8_lossy(p).into_owned(), i.ino, i.nid)
                        });
                    }
                    Ok(())
                })?;
                let entries: Vec<Value> = list
                    .iter()
                    .map(|k| match found.get(k) {
                        Some((path, ino, nid)) => json!({ "path": path, "ino": ino, "nid": nid }),
                        None if by_nid => json!({ "path": null, "nid": k }),
                        None => json!({ "path": null, "ino": k }),
                    })
                    .collect();
                json!({ "prefetch": entries })
            }
            "ls" => {
                let dir = self.resolve(if arg.is_empty() { "." } else { arg });
                let d = self.lookup(&dir)?;
                if d.file_type != FileType::Directory {
                    bail!("{}: not a directory", String::from_utf8_lossy(&dir));
                }
                let entries: Vec<Value> = self
                    .boot
                    .read_dir(d.nid)?
                    .iter()
                    .map(|e| json!({ "name": String::from_utf8_lossy(&e.name), "nid": e.nid, "type": type_name(e.file_type) }))
                    .collect();
                json!({ "path": String::from_utf8_lossy(&dir), "entries": entries })
            }
            "cd" => {
                let dir = self.resolve(if arg.is_empty() { "/" } else { arg });
                let d = self.lookup(&dir)?;
                if d.file_type != FileType::Directory {
                    bail!("{}: not a directory", String::from_utf8_lossy(&dir));
                }
                self.cwd = dir;
                json!({ "cwd": String::from_utf8_lossy(&self.cwd) })
            }
            "stat" => {
                let p = self.resolve(arg);
                let i = self.lookup(&p)?;
                inode_json(self.boot, &p, &i)?
            }
            "chunks" => {
                let p = self.resolve(arg);
                let i = self.lookup(&p)?;
                let list: Vec<Value> = self
                    .boot
                    .all_chunks(i.nid)?
                    .iter()
                    .map(|fc| {
                        let c = &fc.chunk;
                        json!({
                            "file_offset": fc.file_offset,
                            "digest": c.digest.to_hex(),
                            "blob_index": c.blob_index,
                            "index": c.index,
                            "compressed_offset": c.compressed_offset,
                            "compressed_size": c.compressed_size,
                            "uncompressed_offset": c.uncompressed_offset,
                            "uncompressed_size": c.uncompressed_size,
                            "compressed": c.is_compressed(),
                        })
                    })
                    .collect();
                json!({ "path": String::from_utf8_lossy(&p), "chunks": list })
            }
            "icheck" => {
                let want: u64 = arg
                    .parse()
                    .with_context(|| format!("icheck: {arg:?} is not an inode number"))?;
                let mut found = Vec::new();
                self.boot.walk(&mut |p, i| {
                    if i.ino == want {
                        found.push(String::from_utf8_lossy(p).into_owned());
                    }
                    Ok(())
                })?;
                if found.is_empty() {
                    bail!("icheck {want}: no inode has this number (icheck takes the \"ino\" that stat and prefetch print, not the nid)");
                }
                json!({ "ino": want, "paths": found })
            }
            c => bail!("unknown request {c:?}; {HELP}"),
        };
        Ok(Some(v))
    }
}
