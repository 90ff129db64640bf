//! OCI layer tar streams (`-t tar-rafs | targz-rafs`) as a build source: plain, gzip or zstd
//! (detected by magic), read once, front to back, never extracted. Entries go to the core's
//! tree builder; file data goes straight into the chunk pipeline in stream order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::model::{encode_rdev, Attrs, ChunkRef, FileType, Xattrs};
use nydus_core::tree::{Entry, TreeBuilder};
use tar::EntryType;

use crate::pipeline::Feeder;

/// Key space of hard-link groups found in a stream (distinct from `(st_dev, st_ino)`).
const TAR_LINK_DEV: u64 = u64::MAX;

/// Opens `path` (`-` is stdin), undoing gzip or zstd compression if its magic says so.
pub fn open_layer(path: &Path) -> Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(File::open(path).with_context(|| format!("opening layer {}", path.display()))?)
    };
    decompress(raw, &path.display().to_string())
}

/// Wraps a layer stream so that gzip or zstd compression (detected by magic) is undone; `shown`
/// names the stream in errors.
pub fn decompress(raw: Box<dyn Read + Send>, shown: &str) -> Result<Box<dyn Read + Send>> {
    let mut r = BufReader::with_capacity(1 << 20, raw);
    let magic = r
        .fill_buf()
        .with_context(|| format!("reading layer {shown}"))?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r).context("starting zstd decoding")?)
    } else {
        Box::new(r)
    })
}

/// Normalizes an entry path: `./a/b/` → `a/b`; the root is empty. Absolute paths are refused.
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.first() == Some(&b'/') && raw.iter().any(|&b| b != b'/') {
        return Err("absolute path".into());
    }
    let parts: Vec<&[u8]> = raw
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if parts.iter().any(|c| *c == b"..") {
        return Err("path with a `..` component".into());
    }
    Ok(parts.join(&b'/'))
}

/// A numeric PAX value (`uid`, `gid`, `mtime`: the integer part).
pub fn pax_num(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    s.split('.').next()?.parse().ok()
}

/// Where a stream source sends file data: the chunk pipeline, or (fuzzing, tests) a counter.
pub trait Feed {
    /// Consumes everything `r` yields as the data of item `id`; returns the byte count.
    fn feed(&mut self, id: usize, r: &mut dyn Read, name: &dyn Fn() -> String) -> Result<u64>;
}

impl Feed for Feeder {
    fn feed(&mut self, id: usize, r: &mut dyn Read, name: &dyn Fn() -> String) -> Result<u64> {
        Feeder::feed(self, id, r, name)
    }
}

/// A [`Feed`] that only counts bytes.
#[derive(Debug, Default)]
pub struct CountingFeed(pub u64);

impl Feed for CountingFeed {
    fn feed(&mut self, _id: usize, r: &mut dyn Read, name: &dyn Fn() -> String) -> Result<u64> {
        let n = std::io::copy(r, &mut std::io::sink())
            .map_err(|e| anyhow!("reading {}: {e}", name()))?;
        self.0 += n;
        Ok(n)
    }
}

/// Reads a layer held in memory (fuzzing and tests), discarding file data.
pub fn read_layer_bytes(data: &[u8]) -> Result<TreeBuilder> {
    read_layer_from(
        Box::new(std::io::Cursor::new(data.to_vec())),
        "<memory>",
        &mut CountingFeed::default(),
    )
}

/// A regular file of the layers below (`--parent-bootstrap`), for hard links whose target is
/// not in this layer. Chunk blob indexes are the build's own numbering.
#[derive(Debug, Clone)]
pub struct LowerFile {
    pub attrs: Attrs,
    pub xattrs: Xattrs,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
}

/// Finds a regular file of the lower layers by its normalized path.
pub type LowerLookup<'a> = &'a (dyn Fn(&[u8]) -> Option<LowerFile> + Sync);

/// What reading a layer gives: the tree of its entries (each regular file's `source` is the id
/// its chunks were fed under) and the chunks of ids that were not fed but taken from lower
/// layers.
#[derive(Debug)]
pub struct LayerRead {
    pub builder: TreeBuilder,
    pub preset: Vec<(usize, Vec<ChunkRef>)>,
}

/// Reads a whole (decompressed) layer stream; `shown` names it in errors. A hard link to a
/// file of a lower layer (found by `lower`) becomes, as when a runtime applies the layer, one
/// inode of the target (copied up with its attributes and data) and the new name.
pub fn read_layer(
    input: Box<dyn Read + Send>,
    shown: &str,
    feeder: &mut Feeder,
    lower: Option<LowerLookup<'_>>,
) -> Result<LayerRead> {
    read_layer_with(input, shown, feeder, lower)
}

/// [`read_layer`] over any (already decompressed) stream without lower layers; `shown` names
/// it in errors.
pub fn read_layer_from(
    input: Box<dyn Read + Send>,
    shown: &str,
    feeder: &mut dyn Feed,
) -> Result<TreeBuilder> {
    Ok(read_layer_with(input, shown, feeder, None)?.builder)
}

fn read_layer_with(
    input: Box<dyn Read + Send>,
    shown: &str,
    feeder: &mut dyn Feed,
    lower: Option<LowerLookup<'_>>,
) -> Result<LayerRead> {
    let mut preset = Vec::new();
    let mut archive = tar::Archive::new(input);
    let mut b = TreeBuilder::new();
    let mut token = 0usize;
    let mut group_of: HashMap<usize, (u64, u64)> = HashMap::new();
    let entries = archive
        .entries()
        .with_context(|| format!("{shown}: reading the tar stream"))?;
    for (n, e) in entries.enumerate() {
        let mut e = e.with_context(|| format!("{shown}: tar entry {n} is malformed"))?;
        let raw_path = e.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let bad = |why: String| anyhow!("{shown}: entry {name:?}: {why}");
        let h = e.header().clone();
        let kind = h.entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        let rel = normalize(&raw_path).map_err(&bad)?;
        let mut attrs = Attrs {
            mode: h.mode().map_err(|x| bad(format!("bad mode: {x}")))? & 0o7777,
            uid: h.uid().map_err(|x| bad(format!("bad uid: {x}")))? as u32,
            gid: h.gid().map_err(|x| bad(format!("bad gid: {x}")))? as u32,
            mtime: h.mtime().map_err(|x| bad(format!("bad mtime: {x}")))?,
            mtime_nsec: 0,
            rdev: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = e
            .pax_extensions()
            .map_err(|x| bad(format!("bad PAX header: {x}")))?
        {
            for ext in pax {
                let ext = ext.map_err(|x| bad(format!("bad PAX record: {x}")))?;
                let key = ext.key_bytes();
                if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"uid" {
                    attrs.uid =
                        pax_num(ext.value_bytes()).ok_or_else(|| bad("bad PAX uid".into()))? as u32;
                } else if key == b"gid" {
                    attrs.gid =
                        pax_num(ext.value_bytes()).ok_or_else(|| bad("bad PAX gid".into()))? as u32;
                } else if key == b"mtime" {
                    attrs.mtime =
                        pax_num(ext.value_bytes()).ok_or_else(|| bad("bad PAX mtime".into()))?;
                } else if key.starts_with(b"GNU.sparse.") {
                    // The PAX sparse formats (GNU tar --sparse --format=pax) store a sparse map
                    // inside the data under a made-up name; reading them as plain files would
                    // build the wrong content, so refuse instead.
                    return Err(bad(
                        "PAX sparse file (GNU tar --sparse --format=pax) is not supported; \
                         write the layer with --format=gnu or without --sparse"
                            .into(),
                    ));
                }
            }
        }
        let entry = Entry::new;
        let new = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let id = token;
                token += 1;
                let size = feeder.feed(id, &mut e, &|| format!("{shown}: entry {name:?}"))?;
                Entry {
                    size,
                    source: id as u64,
                    ..entry(FileType::Regular, attrs, xattrs, None)
                }
            }
            EntryType::Directory => entry(FileType::Directory, attrs, xattrs, None),
            EntryType::Symlink => {
                let t = e
                    .link_name_bytes()
                    .ok_or_else(|| bad("symlink without a target".into()))?
                    .into_owned();
                entry(FileType::Symlink, attrs, xattrs, Some(t))
            }
            EntryType::Char | EntryType::Block => {
                let major = h
                    .device_major()
                    .map_err(|x| bad(format!("bad device major: {x}")))?
                    .unwrap_or(0);
                let minor = h
                    .device_minor()
                    .map_err(|x| bad(format!("bad device minor: {x}")))?
                    .unwrap_or(0);
                attrs.rdev = encode_rdev(major, minor);
                let ft = if kind == EntryType::Char {
                    FileType::CharDevice
                } else {
                    FileType::BlockDevice
                };
                entry(ft, attrs, xattrs, None)
            }
            EntryType::Fifo => entry(FileType::Fifo, attrs, xattrs, None),
            EntryType::Link => {
                let t = e
                    .link_name_bytes()
                    .ok_or_else(|| bad("hard link without a target".into()))?;
                let target = normalize(&t).map_err(|w| bad(format!("hard link target: {w}")))?;
                let lower_file = match b.lookup(&target) {
                    Some(_) => None,
                    None => lower.and_then(|f| f(&target)),
                };
                if let Some(lf) = lower_file {
                    // Copy the lower file up into this layer, linked with the new name.
                    let id = token;
                    token += 1;
                    let key = (TAR_LINK_DEV, id as u64);
                    preset.push((id, lf.chunks));
                    let e = Entry {
                        size: lf.size,
                        link_key: Some(key),
                        source: id as u64,
                        ..entry(FileType::Regular, lf.attrs, lf.xattrs, None)
                    };
                    group_of.insert(id, key);
                    b.insert(&target, e.clone())
                        .map_err(|x| bad(x.to_string()))?;
                    b.insert(&rel, e).map_err(|x| bad(x.to_string()))?;
                    continue;
                }
                let tid = b.lookup(&target).ok_or_else(|| {
                    bad(format!(
                        "hard link to {:?}, which is neither earlier in the layer nor (with \
                         --parent-bootstrap) a regular file of a lower layer",
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                let tn = b.node(tid).clone();
                if tn.file_type == FileType::Regular {
                    let key = *group_of
                        .entry(tn.source as usize)
                        .or_insert((TAR_LINK_DEV, tn.source));
                    b.set_link_key(tid, key);
                    // One inode: the link has the target's attributes and xattrs (whichever
                    // name comes first in the tree carries the v6 inode; every v5 record
                    // repeats them). Upstream's v5 writes the xattrs into the link's record
                    // without accounting for them in the inode table, corrupting the image.
                    Entry {
                        size: tn.size,
                        link_key: Some(key),
                        source: tn.source,
                        ..entry(FileType::Regular, tn.attrs.clone(), tn.xattrs.clone(), None)
                    }
                } else if tn.file_type == FileType::Directory {
                    return Err(bad("hard link to a directory".into()));
                } else {
                    // A hard link to a symlink or special file: an independent copy (RAFS
                    // links only regular files).
                    entry(
                        tn.file_type,
                        tn.attrs.clone(),
                        tn.xattrs.clone(),
                        tn.symlink.clone(),
                    )
                }
            }
            other => bail!(
                "{shown}: entry {name:?}: unsupported tar entry type {:?}",
                other.as_byte() as char
            ),
        };
        if rel.is_empty() && new.file_type != FileType::Directory {
            return Err(bad("the root must be a directory".into()));
        }
        match b.insert(&rel, new) {
            Ok(_) => {}
            // umoci writes `d/.wh.x` after replacing directory `d` by a file: the file already
            // hides all of `d`, so such a whiteout hides nothing (runtimes skip it too).
            Err(nydus_core::error::BuildError::Conflict { .. }) if is_whiteout_name(&rel) => {
                log::warn!(
                    "{shown}: entry {name:?}: whiteout under a non-directory hides nothing; skipped"
                );
            }
            Err(x) => return Err(bad(x.to_string())),
        }
    }
    Ok(LayerRead { builder: b, preset })
}

fn is_whiteout_name(path: &[u8]) -> bool {
    let name = path.rsplit(|&c| c == b'/').next().unwrap_or_default();
    name.starts_with(nydus_core::layer::OCISPEC_WHITEOUT_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::{is_whiteout_name, normalize};

    #[test]
    fn whiteout_names() {
        assert!(is_whiteout_name(b"d/.wh.x"));
        assert!(is_whiteout_name(b".wh..wh..opq"));
        assert!(!is_whiteout_name(b"d.wh.x/y"));
    }

    #[test]
    fn paths_are_normalized_and_escapes_refused() {
        assert_eq!(normalize(b"./a/b/").unwrap(), b"a/b");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert_eq!(normalize(b"a//./b").unwrap(), b"a/b");
        assert!(normalize(b"/etc/passwd").is_err());
        assert!(normalize(b"a/../../x").is_err());
    }
}
