//! Where images are read from and written to: a repository of a registry, an OCI image-layout
//! tar archive to read (`--source-archive`, `file://` sources), or an OCI image layout being
//! written and packed into a tar at the end (`--target-archive`, `file://` targets). Blobs are
//! verified by digest whenever they are read, whatever the store.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use nydus_core::digest::{sha256, Sha256Stream};
use nydus_core::oci::manifest::{Descriptor, Index};
use nydus_core::oci::media;
use serde_json::Value;

use crate::stream::{ChannelReader, DrainOnDrop};
use nydus_host_registry::Registry;
use nydus_host_storage::atomic::AtomicFile;

/// The annotation naming a manifest of an image layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A pull in progress: awaiting it says whether the bytes were the blob.
pub type Pull = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>>>>;

/// An image store.
#[derive(Debug, Clone)]
pub enum Store {
    Registry { reg: Arc<Registry>, repo: String },
    Archive(Arc<ArchiveIn>),
    Layout(Arc<LayoutOut>),
}

impl Store {
    pub fn registry(reg: Registry, repo: &str) -> Store {
        Store::Registry {
            reg: Arc::new(reg),
            repo: repo.to_string(),
        }
    }

    /// What to call the store in messages.
    pub fn describe(&self) -> String {
        match self {
            Store::Registry { reg, repo } => format!("{}/{repo}", reg.host()),
            Store::Archive(a) => a.path.display().to_string(),
            Store::Layout(l) => l.target.display().to_string(),
        }
    }

    /// Attempts after the first for failed transfers.
    pub fn retries(&self) -> u32 {
        match self {
            Store::Registry { reg, .. } => reg.retries(),
            _ => 0,
        }
    }

    /// A manifest or index by tag or digest: media type, bytes, digest.
    pub async fn get_manifest(&self, reference: &str) -> Result<(String, Vec<u8>, String)> {
        match self {
            Store::Registry { reg, repo } => Ok(reg.get_manifest(repo, reference).await?),
            Store::Archive(a) => {
                let a = a.clone();
                let reference = reference.to_string();
                tokio::task::spawn_blocking(move || a.manifest(&reference))
                    .await
                    .context("the archive reader task failed")?
            }
            Store::Layout(_) => bail!("an archive being written cannot be read"),
        }
    }

    /// A small blob (a config), verified.
    pub async fn blob_bytes(&self, digest: &str) -> Result<Vec<u8>> {
        match self {
            Store::Registry { reg, repo } => Ok(reg.pull_blob_bytes(repo, digest).await?),
            Store::Archive(a) => {
                let (a, d) = (a.clone(), digest.to_string());
                tokio::task::spawn_blocking(move || a.blob_bytes(&d))
                    .await
                    .context("the archive reader task failed")?
            }
            Store::Layout(_) => bail!("an archive being written cannot be read"),
        }
    }

    /// A blob as a blocking reader, and the pull to await alongside (its result tells whether
    /// the bytes were the blob).
    pub fn blob_reader(&self, digest: &str) -> Result<(Pull, DrainOnDrop<ChannelReader>)> {
        match self {
            Store::Registry { reg, repo } => {
                let (pull, reader) = crate::stream::blob_reader(reg.clone(), repo, digest);
                Ok((Box::pin(pull), reader))
            }
            Store::Archive(a) => {
                let (tx, reader) = crate::stream::channel();
                let (a, d) = (a.clone(), digest.to_string());
                let pull = async move {
                    tokio::task::spawn_blocking(move || a.send_blob(&d, &tx))
                        .await
                        .context("the archive reader task failed")?
                };
                Ok((Box::pin(pull), reader))
            }
            Store::Layout(_) => bail!("an archive being written cannot be read"),
        }
    }

    /// Copies a blob into `path`, verified.
    pub async fn blob_to_file(&self, digest: &str, path: &Path) -> Result<()> {
        let mut f = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        match self {
            Store::Registry { reg, repo } => {
                Ok(reg.pull_blob(repo, digest, &mut f).await.map(|_| ())?)
            }
            Store::Archive(a) => {
                drop(f);
                let (a, d, p) = (a.clone(), digest.to_string(), path.to_path_buf());
                tokio::task::spawn_blocking(move || a.copy_blob(&d, &p))
                    .await
                    .context("the archive reader task failed")?
            }
            Store::Layout(_) => bail!("an archive being written cannot be read"),
        }
    }

    /// The size of a blob the store has.
    pub async fn blob_size(&self, digest: &str) -> Result<Option<u64>> {
        match self {
            Store::Registry { reg, repo } => Ok(reg.blob_size(repo, digest).await?),
            Store::Archive(a) => Ok(a.entries.get(&blob_name(digest)?).map(|e| e.1)),
            Store::Layout(l) => Ok(std::fs::metadata(l.blob_path(digest)?)
                .ok()
                .map(|m| m.len())),
        }
    }

    /// Whether the store has this blob.
    pub async fn has_blob(&self, digest: &str) -> Result<bool> {
        match self {
            Store::Registry { reg, repo } => Ok(reg.blob_size(repo, digest).await?.is_some()),
            Store::Archive(a) => Ok(a.entries.contains_key(&blob_name(digest)?)),
            Store::Layout(l) => Ok(l.blob_path(digest)?.exists()),
        }
    }

    /// Stores the blob file at `path` under `digest` (skipped if present).
    pub async fn push_blob_file(&self, digest: &str, path: &Path) -> Result<()> {
        match self {
            Store::Registry { reg, repo } => Ok(reg.push_blob_file(repo, digest, path).await?),
            Store::Layout(l) => {
                let dest = l.blob_path(digest)?;
                if !dest.exists() {
                    let (src, d) = (path.to_path_buf(), digest.to_string());
                    tokio::task::spawn_blocking(move || copy_verified(&src, &dest, &d))
                        .await
                        .context("the archive writer task failed")??;
                }
                Ok(())
            }
            Store::Archive(_) => bail!("an archive being read cannot be written"),
        }
    }

    /// Stores a small blob.
    pub async fn push_blob_bytes(&self, digest: &str, data: &[u8]) -> Result<()> {
        match self {
            Store::Registry { reg, repo } => Ok(reg.push_blob_bytes(repo, digest, data).await?),
            Store::Layout(l) => l.put_blob(digest, data),
            Store::Archive(_) => bail!("an archive being read cannot be written"),
        }
    }

    /// Stores a manifest or index under `reference` (a tag or its digest); returns its digest.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        match self {
            Store::Registry { reg, repo } => {
                Ok(reg.put_manifest(repo, reference, media_type, bytes).await?)
            }
            Store::Layout(l) => l.put_manifest(reference, media_type, bytes),
            Store::Archive(_) => bail!("an archive being read cannot be written"),
        }
    }

    /// Finishes a store being written (packs the layout into its tar).
    pub fn finish(&self) -> Result<()> {
        match self {
            Store::Layout(l) => l.pack(),
            _ => Ok(()),
        }
    }
}

fn blob_name(digest: &str) -> Result<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| anyhow!("{digest:?} is not a sha256 digest"))?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Copies `src` to `dest` (atomically), checking that its SHA-256 is `digest`.
pub(crate) fn copy_verified(src: &Path, dest: &Path, digest: &str) -> Result<()> {
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut out = AtomicFile::create(dest)?;
    let mut h = Sha256Stream::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("reading {}", src.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        std::io::Write::write_all(out.file(), &buf[..n])
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    let got = format!("sha256:{}", h.finish().to_hex());
    if got != digest {
        bail!("{}: has digest {got}, expected {digest}", src.display());
    }
    out.commit()
}

/// An OCI image-layout tar (uncompressed) opened for reading: entries are found once by
/// walking the headers; blobs are read in place.
#[derive(Debug)]
pub struct ArchiveIn {
    path: PathBuf,
    /// Entry name (`./` stripped) → (data offset, size).
    entries: HashMap<String, (u64, u64)>,
}

impl ArchiveIn {
    pub fn open(path: &Path) -> Result<ArchiveIn> {
        if path.is_dir() {
            bail!(
                "{}: a directory; an OCI image layout archive is a tar file (`tar -cf x.tar -C {} .` makes one)",
                path.display(),
                path.display()
            );
        }
        let f = File::open(path).with_context(|| format!("opening archive {}", path.display()))?;
        let mut archive = tar::Archive::new(f);
        let mut entries = HashMap::new();
        for e in archive
            .entries_with_seek()
            .with_context(|| format!("{}: not a tar archive", path.display()))?
        {
            let e = e.with_context(|| format!("{}: malformed tar entry", path.display()))?;
            let name = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .to_string();
            entries.insert(name, (e.raw_file_position(), e.size()));
        }
        if !entries.contains_key("index.json") {
            bail!(
                "{}: not an OCI image layout archive (no index.json)",
                path.display()
            );
        }
        Ok(ArchiveIn {
            path: path.to_path_buf(),
            entries,
        })
    }

    fn section(&self, name: &str) -> Result<(File, u64)> {
        let &(off, size) = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("{}: no {name} in the archive", self.path.display()))?;
        let mut f = File::open(&self.path)
            .with_context(|| format!("opening archive {}", self.path.display()))?;
        f.seek(SeekFrom::Start(off))
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok((f, size))
    }

    fn read_entry(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let (f, size) = self.section(name)?;
        if size > limit {
            bail!(
                "{}: {name} is too large ({size} bytes)",
                self.path.display()
            );
        }
        let mut v = Vec::with_capacity(size as usize);
        f.take(size)
            .read_to_end(&mut v)
            .with_context(|| format!("reading {name} from {}", self.path.display()))?;
        Ok(v)
    }

    fn blob_bytes(&self, digest: &str) -> Result<Vec<u8>> {
        let data = self.read_entry(&blob_name(digest)?, 64 << 20)?;
        let got = format!("sha256:{}", sha256(&data).to_hex());
        if got != digest {
            bail!(
                "{}: blob {digest} has digest {got}: the archive is corrupted",
                self.path.display()
            );
        }
        Ok(data)
    }

    /// Copies a blob into the file `dest`, verified.
    fn copy_blob(&self, digest: &str, dest: &Path) -> Result<()> {
        let (f, size) = self.section(&blob_name(digest)?)?;
        let mut r = f.take(size);
        let mut out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
        let mut h = Sha256Stream::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r
                .read(&mut buf)
                .with_context(|| format!("reading {}", self.path.display()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            std::io::Write::write_all(&mut out, &buf[..n])
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        let got = format!("sha256:{}", h.finish().to_hex());
        if got != digest {
            bail!(
                "{}: blob {digest} has digest {got}: the archive is corrupted",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Sends a blob's bytes in pieces, then checks its digest.
    fn send_blob(
        &self,
        digest: &str,
        tx: &tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    ) -> Result<u64> {
        let result = (|| {
            let (f, size) = self.section(&blob_name(digest)?)?;
            let mut r = f.take(size);
            let mut h = Sha256Stream::new();
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = r
                    .read(&mut buf)
                    .with_context(|| format!("reading {}", self.path.display()))?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                h.update(&buf);
                tx.blocking_send(Ok(bytes::Bytes::from(buf)))
                    .map_err(|_| anyhow!("the layer reader stopped early"))?;
            }
            let got = format!("sha256:{}", h.finish().to_hex());
            if got != digest {
                bail!(
                    "{}: blob {digest} has digest {got}: the archive is corrupted",
                    self.path.display()
                );
            }
            Ok(size)
        })();
        if let Err(e) = &result {
            let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
        }
        result
    }

    /// The manifest named `reference` (a digest, a `ref.name` annotation, or, when the index
    /// holds one entry, anything).
    fn manifest(&self, reference: &str) -> Result<(String, Vec<u8>, String)> {
        let index_bytes = self.read_entry("index.json", 64 << 20)?;
        let index: Index = serde_json::from_slice(&index_bytes)
            .with_context(|| format!("{}: index.json is not an OCI index", self.path.display()))?;
        let desc = if reference.starts_with("sha256:") {
            let data = self.blob_bytes(reference)?;
            let v: Value = serde_json::from_slice(&data)
                .with_context(|| format!("{}: {reference} is not JSON", self.path.display()))?;
            let mt = v
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or(media::OCI_MANIFEST)
                .to_string();
            return Ok((mt, data, reference.to_string()));
        } else {
            let named: Vec<&Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.annotation(REF_NAME) == Some(reference))
                .collect();
            match (named.as_slice(), index.manifests.as_slice()) {
                ([d], _) => (*d).clone(),
                ([], [only]) => only.clone(),
                _ => {
                    let mut tags: Vec<&str> = index
                        .manifests
                        .iter()
                        .filter_map(|d| d.annotation(REF_NAME))
                        .collect();
                    tags.sort_unstable();
                    let listed = if tags.is_empty() {
                        "none is tagged".to_string()
                    } else {
                        format!("tags: {}", tags.join(", "))
                    };
                    bail!(
                        "{}: no image tagged {reference:?} in the archive ({} entries; {listed})",
                        self.path.display(),
                        index.manifests.len()
                    )
                }
            }
        };
        let data = self.blob_bytes(&desc.digest)?;
        Ok((desc.media_type.clone(), data, desc.digest.clone()))
    }
}

/// An OCI image layout written into a scratch directory and packed into `target` (a tar) by
/// [`Store::finish`].
#[derive(Debug)]
pub struct LayoutOut {
    dir: PathBuf,
    target: PathBuf,
    manifests: Mutex<Vec<Descriptor>>,
}

impl LayoutOut {
    pub fn create(scratch: &Path, target: &Path) -> Result<LayoutOut> {
        let dir = scratch.join("layout");
        std::fs::create_dir_all(dir.join("blobs/sha256"))
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(LayoutOut {
            dir,
            target: target.to_path_buf(),
            manifests: Mutex::new(Vec::new()),
        })
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.dir.join(blob_name(digest)?))
    }

    fn put_blob(&self, digest: &str, data: &[u8]) -> Result<()> {
        let got = format!("sha256:{}", sha256(data).to_hex());
        if got != digest {
            bail!("blob {digest} has digest {got}");
        }
        nydus_host_storage::atomic::write_file(&self.blob_path(digest)?, data)
    }

    fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<String> {
        let digest = format!("sha256:{}", sha256(bytes).to_hex());
        self.put_blob(&digest, bytes)?;
        if !reference.starts_with("sha256:") {
            let mut d = Descriptor {
                media_type: media_type.to_string(),
                digest: digest.clone(),
                size: bytes.len() as u64,
                ..Default::default()
            };
            d.annotations.insert(REF_NAME.into(), reference.to_string());
            let mut m = self.manifests.lock().expect("manifest list lock");
            m.retain(|x| x.annotation(REF_NAME) != Some(reference));
            m.push(d);
        }
        Ok(digest)
    }

    /// Writes `oci-layout` and `index.json` and packs the layout into the target tar
    /// (deterministic headers, written to a temporary name and renamed).
    fn pack(&self) -> Result<()> {
        let index = Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.into()),
            manifests: self.manifests.lock().expect("manifest list lock").clone(),
            ..Default::default()
        };
        let files: Vec<(String, Vec<u8>)> = vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), serde_json::to_vec(&index)?),
        ];
        let mut out = AtomicFile::create(&self.target)?;
        {
            let mut b = tar::Builder::new(out.file());
            let header = |size: u64, dir: bool| {
                let mut h = tar::Header::new_ustar();
                h.set_size(size);
                h.set_mode(if dir { 0o755 } else { 0o644 });
                h.set_mtime(0);
                h.set_entry_type(if dir {
                    tar::EntryType::Directory
                } else {
                    tar::EntryType::Regular
                });
                h
            };
            for d in ["blobs/", "blobs/sha256/"] {
                let mut h = header(0, true);
                b.append_data(&mut h, d, std::io::empty())?;
            }
            let mut names: Vec<String> = std::fs::read_dir(self.dir.join("blobs/sha256"))?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<std::io::Result<_>>()?;
            names.sort();
            for n in names {
                let p = self.dir.join("blobs/sha256").join(&n);
                let f = File::open(&p).with_context(|| format!("opening {}", p.display()))?;
                let mut h = header(f.metadata()?.len(), false);
                b.append_data(&mut h, format!("blobs/sha256/{n}"), f)
                    .with_context(|| format!("writing {}", self.target.display()))?;
            }
            for (name, data) in &files {
                let mut h = header(data.len() as u64, false);
                b.append_data(&mut h, name, data.as_slice())?;
            }
            b.finish()
                .with_context(|| format!("writing {}", self.target.display()))?;
        }
        out.commit()
    }
}
