//! wasm-bindgen façade of `nydus-core` for the browser inspector (`web/`). No logic of its
//! own: it opens a bootstrap (from bytes, or lazily through a JavaScript `read(offset, len)`
//! callback over `File.slice`), and answers with JSON strings what the core computes: listings,
//! inode details, chunks, statistics, the checker's report, and file contents read from
//! blobs and verified by digest.

use std::collections::HashMap;

use js_sys::{Function, Uint8Array};
use nydus_core::blob::reader::extract_inline_bootstrap;
use nydus_core::digest::hex;
use nydus_core::error::SourceError;
use nydus_core::listing::type_name;
use nydus_core::model::{decode_rdev, FileType};
use nydus_core::rafs::Rafs;
use nydus_core::read::exec::{read_to_vec, BlobLayout};
use nydus_core::read::Filesystem;
use nydus_core::source::ReadAt;
use nydus_core::stats::{find_paths, image_stat, sizes_by_child};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

/// Bytes of a bootstrap or blob: in memory, or read on demand through JavaScript.
#[derive(Debug)]
pub enum Src {
    Bytes(Vec<u8>),
    Js { size: u64, read: Function },
}

impl ReadAt for Src {
    fn size(&self) -> u64 {
        match self {
            Src::Bytes(b) => b.len() as u64,
            Src::Js { size, .. } => *size,
        }
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        match self {
            Src::Bytes(b) => b.as_slice().read_exact_at(offset, buf),
            Src::Js { read, .. } => {
                let err = |message: String| SourceError {
                    offset,
                    len: buf.len() as u64,
                    message,
                };
                let v = read
                    .call2(
                        &JsValue::NULL,
                        &JsValue::from_f64(offset as f64),
                        &JsValue::from_f64(buf.len() as f64),
                    )
                    .map_err(|e| err(format!("read failed: {e:?}")))?;
                let a = Uint8Array::new(&v);
                if a.length() as usize != buf.len() {
                    return Err(err(format!(
                        "read returned {} bytes instead of {}",
                        a.length(),
                        buf.len()
                    )));
                }
                a.copy_to(buf);
                Ok(())
            }
        }
    }
}

fn js_err(what: &str, e: impl std::fmt::Display) -> JsError {
    JsError::new(&format!("{what}: {e}"))
}

/// The bootstrap of an eStargz layer opened on its own: built from its TOC, naming the layer
/// `"x"` × 64 as an inline bootstrap names its blob (the page registers the file under it).
fn stargz_bootstrap<R: ReadAt + ?Sized>(
    src: &R,
) -> Result<Vec<u8>, nydus_core::stargz::StargzError> {
    nydus_core::stargz::layer_bootstrap(src, &"x".repeat(64))
}

fn not_an_image(name: &str, first: &impl std::fmt::Display) -> JsError {
    js_err(
        &format!(
            "{name}: not a RAFS bootstrap (v5 or v6), a blob with one inside, or an eStargz layer"
        ),
        first,
    )
}

/// Text if the bytes are printable UTF-8, else hex.
fn shown(v: &[u8]) -> Value {
    match std::str::from_utf8(v) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') => json!(s),
        _ => json!({ "hex": hex(v) }),
    }
}

/// An opened image.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Inspector {
    name: String,
    boot: Rafs<Src>,
    blobs: HashMap<String, Src>,
}

#[wasm_bindgen]
impl Inspector {
    /// Opens a bootstrap held in memory, the bootstrap inlined in a blob held in memory, or an
    /// eStargz layer (its bootstrap built from its TOC); for the last two the page registers
    /// the file itself as the blob under the id `"x"` × 64.
    pub fn open(name: String, bytes: Vec<u8>) -> Result<Inspector, JsError> {
        let boot = match Rafs::open(Src::Bytes(bytes.clone())) {
            Ok(b) => b,
            Err(first) => {
                let inner = match extract_inline_bootstrap(bytes.as_slice()) {
                    Ok(inner) => inner,
                    Err(_) => stargz_bootstrap(bytes.as_slice())
                        .map_err(|_| not_an_image(&name, &first))?,
                };
                Rafs::open(Src::Bytes(inner))
                    .map_err(|e| js_err(&format!("{name}: the bootstrap inside this blob"), e))?
            }
        };
        Ok(Inspector {
            name,
            boot,
            blobs: HashMap::new(),
        })
    }

    /// RAFS version (5 or 6).
    pub fn version(&self) -> u32 {
        self.boot.version()
    }

    /// Opens a bootstrap (or a blob with an inline bootstrap) of `size` bytes read on demand by
    /// `read(offset, len) -> Uint8Array` (the page passes `File.slice` through
    /// `FileReaderSync`).
    pub fn open_lazy(name: String, size: f64, read: Function) -> Result<Inspector, JsError> {
        let src = Src::Js {
            size: size as u64,
            read: read.clone(),
        };
        let first = match Rafs::open(src) {
            Ok(boot) => {
                return Ok(Inspector {
                    name,
                    boot,
                    blobs: HashMap::new(),
                })
            }
            Err(e) => e,
        };
        let src = Src::Js {
            size: size as u64,
            read: read.clone(),
        };
        let inner = match extract_inline_bootstrap(&src) {
            Ok(inner) => inner,
            Err(_) => stargz_bootstrap(&src).map_err(|_| not_an_image(&name, &first))?,
        };
        let boot = Rafs::open(Src::Bytes(inner))
            .map_err(|e| js_err(&format!("{name}: the bootstrap inside this blob"), e))?;
        let mut blobs = HashMap::new();
        // The inline bootstrap names its own blob "x" × 64; the file is that blob.
        blobs.insert(
            "x".repeat(64),
            Src::Js {
                size: size as u64,
                read,
            },
        );
        Ok(Inspector { name, boot, blobs })
    }

    /// Registers a blob file by id, read on demand.
    pub fn add_blob(&mut self, id: String, size: f64, read: Function) {
        self.blobs.insert(
            id,
            Src::Js {
                size: size as u64,
                read,
            },
        );
    }

    /// Ids of the image's blobs that no file was given for.
    pub fn missing_blobs(&self) -> String {
        let v: Vec<&str> = self
            .boot
            .blobs()
            .iter()
            .map(|b| b.blob_id.as_str())
            .filter(|id| !self.blobs.contains_key(*id))
            .collect();
        json!(v).to_string()
    }

    /// Version, flags, tables and the statistics `nydus-image stat` reports.
    pub fn summary(&self) -> Result<String, JsError> {
        let b = &self.boot;
        let stats = image_stat(b, &self.name).map_err(|e| js_err(&self.name, e))?;
        let blobs: Vec<Value> = b
            .blobs()
            .iter()
            .map(|x| {
                json!({
                    "blob_id": x.blob_id,
                    "chunk_count": x.chunk_count,
                    "compressed_size": x.compressed_size,
                    "uncompressed_size": x.uncompressed_size,
                    "compressor": x.compressor.name(),
                    "digester": x.digester.name(),
                    "features": format!("{:#x}", x.features),
                    "given": self.blobs.contains_key(&x.blob_id),
                })
            })
            .collect();
        let prefetch = b.prefetch().map_err(|e| js_err(&self.name, e))?;
        Ok(json!({
            "name": self.name,
            "fs_version": b.version(),
            "size": b.size(),
            "flags": format!("{:#x}", b.flags()),
            "chunk_size": b.chunk_size(),
            "compressor": b.compressor().name(),
            "digester": b.digester().name(),
            "blobs": blobs,
            "prefetch": prefetch,
            "stats": stats,
        })
        .to_string())
    }

    /// The entries of the directory at `path`.
    pub fn list(&self, path: &str) -> Result<String, JsError> {
        let nid = self.nid(path)?;
        let mut out = Vec::new();
        for e in self.boot.read_dir(nid).map_err(|e| js_err(path, e))? {
            let i = self.boot.inode(e.nid).map_err(|x| js_err(path, x))?;
            out.push(json!({
                "name": String::from_utf8_lossy(&e.name),
                "type": type_name(i.file_type),
                "size": i.size,
            }));
        }
        Ok(json!(out).to_string())
    }

    /// Attributes, xattrs and symlink target of the entry at `path`.
    pub fn stat(&self, path: &str) -> Result<String, JsError> {
        let nid = self.nid(path)?;
        let b = &self.boot;
        let i = b.inode(nid).map_err(|e| js_err(path, e))?;
        let xattrs: Vec<Value> = b
            .xattrs(nid)
            .map_err(|e| js_err(path, e))?
            .iter()
            .map(|(k, v)| json!({ "name": String::from_utf8_lossy(k), "value": shown(v) }))
            .collect();
        let mut v = json!({
            "path": path,
            "type": type_name(i.file_type),
            "mode": format!("{:o}", i.attrs.mode & 0o7777),
            "uid": i.attrs.uid,
            "gid": i.attrs.gid,
            "mtime": i.attrs.mtime,
            "mtime_nsec": i.attrs.mtime_nsec,
            "size": i.size,
            "nlink": i.nlink,
            "ino": i.ino,
            "xattrs": xattrs,
        });
        match i.file_type {
            FileType::Symlink => {
                v["target"] = shown(&b.symlink(nid).map_err(|e| js_err(path, e))?);
            }
            FileType::CharDevice | FileType::BlockDevice => {
                let (ma, mi) = decode_rdev(i.attrs.rdev);
                v["rdev"] = json!(format!("{ma}:{mi}"));
            }
            FileType::Regular => {
                v["chunks"] = json!(b.all_chunks(nid).map_err(|e| js_err(path, e))?.len());
            }
            _ => {}
        }
        Ok(v.to_string())
    }

    /// The chunks of the file at `path`, in file order.
    pub fn chunks(&self, path: &str) -> Result<String, JsError> {
        let nid = self.nid(path)?;
        let blobs = self.boot.blobs();
        let cs = self.boot.all_chunks(nid).map_err(|e| js_err(path, e))?;
        let v: Vec<Value> = cs
            .iter()
            .enumerate()
            .map(|(k, fc)| {
                let c = &fc.chunk;
                let blob = blobs.get(c.blob_index as usize);
                json!({
                    "index": k,
                    "file_offset": fc.file_offset,
                    "blob_index": c.blob_index,
                    "blob_id": blob.map(|b| b.blob_id.clone()),
                    "chunk_index": c.index,
                    "compressed": c.is_compressed(),
                    "compressor": blob.map(|b| b.compressor.name()),
                    "compressed_offset": c.compressed_offset,
                    "compressed_size": c.compressed_size,
                    "uncompressed_offset": c.uncompressed_offset,
                    "uncompressed_size": c.uncompressed_size,
                    "digest": c.digest.to_hex(),
                })
            })
            .collect();
        Ok(json!(v).to_string())
    }

    /// Everything the checker finds.
    pub fn check(&self) -> String {
        serde_json::to_string(&self.boot.check()).unwrap_or_default()
    }

    /// Paths containing `query` (case-insensitive), at most `limit`.
    pub fn search(&self, query: &str, limit: u32) -> Result<String, JsError> {
        let hits =
            find_paths(&self.boot, query, limit as usize).map_err(|e| js_err(&self.name, e))?;
        let v: Vec<Value> = hits
            .iter()
            .map(|(p, t, size)| json!({ "path": p, "type": type_name(*t), "size": size }))
            .collect();
        Ok(json!(v).to_string())
    }

    /// Total file bytes under each child of the directory at `path` (hard links once), for the
    /// size-by-directory plot.
    pub fn dir_sizes(&self, path: &str) -> Result<String, JsError> {
        let v = sizes_by_child(&self.boot, path).map_err(|e| js_err(&self.name, e))?;
        Ok(json!(v
            .iter()
            .map(|(n, s)| json!({ "name": n, "bytes": s }))
            .collect::<Vec<_>>())
        .to_string())
    }

    /// The content of the file at `path`, each chunk read from its blob, decompressed and
    /// verified against its digest. At most `max` bytes are returned.
    pub fn read_file(&self, path: &str, max: f64) -> Result<Vec<u8>, JsError> {
        self.read_range(path, 0.0, max)
    }

    /// Bytes `offset..offset + len` of the file at `path` (cut at its end), through a read
    /// plan: only the chunks of that range are fetched, each verified against its digest.
    pub fn read_range(&self, path: &str, offset: f64, len: f64) -> Result<Vec<u8>, JsError> {
        let nid = self.nid(path)?;
        let b = &self.boot;
        let plan = b
            .plan(nid, offset as u64, len as u64)
            .map_err(|e| js_err(path, e))?;
        let blob = |index: u32| {
            let info = b.blobs().get(index as usize).ok_or_else(|| {
                nydus_core::error::DecodeError::NotFound {
                    path: format!("blob {index} of the blob table"),
                }
            })?;
            let src = self.blobs.get(&info.blob_id).ok_or_else(|| {
                nydus_core::error::DecodeError::NotFound {
                    path: format!("blob {} (give its file to read this one)", info.blob_id),
                }
            })?;
            Ok((src, BlobLayout::Stored))
        };
        read_to_vec(&plan, blob).map_err(|e| js_err(path, e))
    }
}

impl Inspector {
    fn nid(&self, path: &str) -> Result<u64, JsError> {
        self.boot
            .lookup(path.as_bytes())
            .map_err(|e| js_err(path, e))?
            .ok_or_else(|| JsError::new(&format!("{path}: no such entry")))
    }
}
