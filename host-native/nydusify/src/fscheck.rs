//! Rule 3 of `nydusify check` (`oci-nydus-image.md` §8) without mounting: the source image's
//! layers are streamed from the registry and applied in order ([`View`]), the Nydus image's
//! blobs are fetched (digest verified) and every file read back through its chunks (each
//! chunk verified); the two trees are compared path by path.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use nydus_core::digest::Sha256Stream;
use nydus_core::model::{encode_rdev, FileType};
use nydus_core::oci::fsview::{FileMeta, LayerItem, View};
use nydus_core::oci::manifest::Manifest;
use nydus_core::rafs::Rafs;
use tar::EntryType;

use nydus_core::read::{Filesystem, Inode};
use nydus_host_image::tarsrc::{self, normalize, pax_num};
use nydus_host_registry::Registry;
use nydus_host_storage::ahead::{read_ahead, AheadOptions, JobError};
use nydus_host_storage::{ChunkReader, Localfs, ReaderOptions};

/// The merged view of the source image's layers.
pub async fn oci_view(reg: Arc<Registry>, repo: &str, m: &Manifest) -> Result<View> {
    let mut view = View::new();
    for l in &m.layers {
        let (pull, reader) = crate::stream::blob_reader(reg.clone(), repo, &l.digest);
        let shown = format!("source layer {}", l.digest);
        let read = tokio::task::spawn_blocking(move || {
            let input = tarsrc::decompress(Box::new(reader), &shown)?;
            layer_items(input, &shown)
        });
        let (pulled, items) = tokio::join!(pull, read);
        pulled?;
        let items = items.context("the layer reader task failed")??;
        view.apply_layer(&items)
            .map_err(|e| anyhow!("source layer {}: {e}", l.digest))?;
    }
    Ok(view)
}

/// The entries of one layer tar with each regular file's SHA-256.
fn layer_items(input: Box<dyn Read + Send>, shown: &str) -> Result<Vec<LayerItem>> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(input);
    for (n, e) in archive
        .entries()
        .with_context(|| format!("{shown}: reading the tar stream"))?
        .enumerate()
    {
        let mut e = e.with_context(|| format!("{shown}: tar entry {n} is malformed"))?;
        let raw = e.path_bytes().into_owned();
        let bad =
            |why: String| anyhow!("{shown}: entry {:?}: {why}", String::from_utf8_lossy(&raw));
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
        let path = normalize(&raw).map_err(&bad)?;
        let mut meta = FileMeta {
            file_type: FileType::Regular,
            mode: h.mode().map_err(|x| bad(format!("bad mode: {x}")))? & 0o7777,
            uid: h.uid().map_err(|x| bad(format!("bad uid: {x}")))? as u32,
            gid: h.gid().map_err(|x| bad(format!("bad gid: {x}")))? as u32,
            rdev: 0,
            size: 0,
            symlink: None,
            xattrs: Vec::new(),
            digest: None,
        };
        if let Some(pax) = e
            .pax_extensions()
            .map_err(|x| bad(format!("bad PAX header: {x}")))?
        {
            for ext in pax {
                let ext = ext.map_err(|x| bad(format!("bad PAX record: {x}")))?;
                let key = ext.key_bytes();
                if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    meta.xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"uid" {
                    meta.uid =
                        pax_num(ext.value_bytes()).ok_or_else(|| bad("bad PAX uid".into()))? as u32;
                } else if key == b"gid" {
                    meta.gid =
                        pax_num(ext.value_bytes()).ok_or_else(|| bad("bad PAX gid".into()))? as u32;
                }
            }
        }
        meta.xattrs.sort();
        let link = || {
            e.link_name_bytes()
                .map(|t| t.into_owned())
                .ok_or_else(|| bad("link without a target".into()))
        };
        meta.file_type = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => FileType::Regular,
            EntryType::Directory => FileType::Directory,
            EntryType::Symlink => {
                meta.symlink = Some(link()?);
                FileType::Symlink
            }
            EntryType::Link => {
                let target = normalize(&link()?).map_err(&bad)?;
                out.push(LayerItem::HardLink(path, target));
                continue;
            }
            EntryType::Char | EntryType::Block => {
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                meta.rdev = encode_rdev(major, minor);
                if kind == EntryType::Char {
                    FileType::CharDevice
                } else {
                    FileType::BlockDevice
                }
            }
            EntryType::Fifo => FileType::Fifo,
            other => return Err(bad(format!("unsupported tar entry type {other:?}"))),
        };
        if meta.file_type == FileType::Regular {
            let mut h = Sha256Stream::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = e.read(&mut buf).map_err(|x| bad(format!("reading: {x}")))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                meta.size += n as u64;
            }
            meta.digest = Some(h.finish().0);
        }
        out.push(LayerItem::Entry(path, meta));
    }
    Ok(out)
}

/// The files of the Nydus image, and what could not be read.
#[derive(Debug, Default)]
pub struct NydusFiles {
    pub files: BTreeMap<Vec<u8>, FileMeta>,
    /// A blob that did not match its digest, a file whose chunks failed verification, ...
    pub problems: Vec<String>,
}

/// Where the Nydus image's blobs are read from.
#[derive(Debug)]
pub enum BlobsFrom<'a> {
    /// The registry repository; fetched into the scratch directory.
    Registry(&'a Registry, &'a str, &'a Path),
    /// A localfs backend directory (blobs named by id).
    Dir(&'a Path),
    /// Any other backend (S3, OSS): chunks read by range, each verified by digest.
    Backend(Arc<dyn nydus_host_storage::local::Backend>),
}

/// SHA-256 hex of a file.
fn file_sha256(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut h = Sha256Stream::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", p.display()))?;
        if n == 0 {
            return Ok(h.finish().to_hex());
        }
        h.update(&buf[..n]);
    }
}

/// Every path of the Nydus image with its content digest. A blob that fails its digest is
/// still read, so that the files it damages are named.
pub async fn nydus_files(from: BlobsFrom<'_>, boot: Vec<u8>) -> Result<NydusFiles> {
    let mut problems = Vec::new();
    let rafs = Rafs::open(boot).map_err(|e| anyhow!("the Nydus bootstrap: {e}"))?;
    let blobs = rafs.blobs().to_vec();
    let backend: Arc<dyn nydus_host_storage::local::Backend> = match from {
        BlobsFrom::Registry(reg, repo, scratch) => {
            for b in &blobs {
                let dest = scratch.join(&b.blob_id);
                let mut f = tokio::fs::File::create(&dest)
                    .await
                    .with_context(|| format!("creating {}", dest.display()))?;
                if let Err(e) = reg
                    .pull_blob(repo, &format!("sha256:{}", b.blob_id), &mut f)
                    .await
                {
                    problems.push(format!("blob sha256:{}: {e:#}", b.blob_id));
                }
            }
            Arc::new(Localfs::dir(scratch.to_path_buf()))
        }
        BlobsFrom::Dir(d) => {
            for b in &blobs {
                let p = d.join(&b.blob_id);
                match tokio::task::spawn_blocking(move || file_sha256(&p))
                    .await
                    .context("the blob hashing task failed")?
                {
                    Ok(h) if h == b.blob_id => {}
                    Ok(h) => problems.push(format!(
                        "blob {} in the backend has digest sha256:{h}: corrupted",
                        b.blob_id
                    )),
                    Err(e) => problems.push(format!("blob {}: {e:#}", b.blob_id)),
                }
            }
            Arc::new(Localfs::dir(d.to_path_buf()))
        }
        BlobsFrom::Backend(b) => b,
    };
    tokio::task::spawn_blocking(move || -> Result<NydusFiles> {
        let reader = ChunkReader::new(&blobs, backend, ReaderOptions::default());
        // Every path with its inode; the content of each regular file is read once per inode
        // (hard links share it), through read plans on all cores.
        let mut entries: Vec<(Vec<u8>, Inode)> = Vec::new();
        rafs.walk(&mut |p, i| {
            entries.push((p.to_vec(), i.clone()));
            Ok(())
        })
        .map_err(|e| anyhow!("the Nydus bootstrap: {e}"))?;
        let mut job_of_ino: HashMap<u64, usize> = HashMap::new();
        let mut jobs: Vec<usize> = Vec::new();
        for (k, (_, i)) in entries.iter().enumerate() {
            if i.file_type == FileType::Regular && !(i.nlink > 1 && job_of_ino.contains_key(&i.ino))
            {
                job_of_ino.insert(i.ino, jobs.len());
                jobs.push(k);
            }
        }
        let plans = jobs.iter().map(|&k| {
            let i = &entries[k].1;
            nydus_core::read::plan(&rafs, i, 0, i.size).map_err(JobError::Plan)
        });
        let digests: Vec<Option<[u8; 32]>> =
            read_ahead(&reader, plans, AheadOptions::default(), |pieces| {
                let mut out = vec![None; jobs.len()];
                let mut h = Sha256Stream::new();
                let mut failed = false;
                while let Some(p) = pieces.next_piece() {
                    match &p.data {
                        Ok(_) if !failed => p.slices().for_each(|s| h.update(s)),
                        Ok(_) => {}
                        Err(err) => {
                            if !failed {
                                let shown = String::from_utf8_lossy(&entries[jobs[p.job]].0);
                                problems
                                    .push(format!("{shown}: unreadable in the Nydus image: {err}"));
                            }
                            failed = true;
                        }
                    }
                    if p.last {
                        let done = std::mem::replace(&mut h, Sha256Stream::new());
                        out[p.job] = (!failed).then(|| done.finish().0);
                        failed = false;
                    }
                }
                out
            });
        let mut out = BTreeMap::new();
        for (path, i) in &entries {
            let regular = i.file_type == FileType::Regular;
            let digest = if regular {
                digests[job_of_ino[&i.ino]]
            } else {
                None
            };
            let mut xattrs = rafs
                .xattrs(i.nid)
                .map_err(|e| anyhow!("the Nydus bootstrap: {e}"))?;
            xattrs.sort();
            let symlink = if i.file_type == FileType::Symlink {
                Some(
                    rafs.symlink(i.nid)
                        .map_err(|e| anyhow!("the Nydus bootstrap: {e}"))?,
                )
            } else {
                None
            };
            let key = path.strip_prefix(b"/").unwrap_or(path).to_vec();
            out.insert(
                key,
                FileMeta {
                    file_type: i.file_type,
                    mode: i.attrs.mode & 0o7777,
                    uid: i.attrs.uid,
                    gid: i.attrs.gid,
                    // Only devices have one (RAFS v5 stores all-ones for other inodes).
                    rdev: if i.file_type.is_device() {
                        i.attrs.rdev
                    } else {
                        0
                    },
                    size: if regular { i.size } else { 0 },
                    symlink,
                    xattrs,
                    digest,
                },
            );
        }
        Ok(NydusFiles {
            files: out,
            problems,
        })
    })
    .await
    .context("the Nydus reader task failed")?
}
