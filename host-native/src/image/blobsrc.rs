//! Local files as byte sources, and locating blobs for read-side commands.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nydus_core::error::SourceError;
use nydus_core::source::ReadAt;

use super::args::BlobSourceArgs;

/// A local file served by `pread`.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    size: u64,
    path: PathBuf,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let md = file
            .metadata()
            .with_context(|| format!("stat {}", path.display()))?;
        if !md.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        Ok(Self {
            file,
            size: md.len(),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ReadAt for FileSource {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| SourceError {
                offset,
                len: buf.len() as u64,
                message: format!("{}: {e}", self.path.display()),
            })
    }
}

/// The localfs backend of the older `--backend-type localfs --backend-config JSON` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalBackend {
    /// `{"dir": D}`: blobs named by id in D.
    Dir(PathBuf),
    /// `{"blob_file": F}`: one blob file.
    File(PathBuf),
}

impl LocalBackend {
    pub fn parse(backend_type: &str, config: &str) -> Result<Self> {
        if backend_type != "localfs" {
            bail!("backend type {backend_type:?} is not supported here (only localfs)");
        }
        let v: serde_json::Value =
            serde_json::from_str(config).context("--backend-config is not valid JSON")?;
        if let Some(d) = v.get("dir").and_then(|d| d.as_str()) {
            return Ok(LocalBackend::Dir(PathBuf::from(d)));
        }
        if let Some(f) = v.get("blob_file").and_then(|d| d.as_str()) {
            return Ok(LocalBackend::File(PathBuf::from(f)));
        }
        bail!("--backend-config for localfs needs \"dir\" or \"blob_file\"")
    }
}

/// Resolves blob ids to local files for commands that read data.
#[derive(Debug, Default)]
pub struct BlobLocator {
    single: Option<PathBuf>,
    dir: Option<PathBuf>,
}

impl BlobLocator {
    pub fn from_args(a: &BlobSourceArgs) -> Result<Self> {
        let mut l = BlobLocator {
            single: a.blob.clone(),
            dir: a.blob_dir.clone(),
        };
        let cfg = match (&a.backend_config, &a.backend_config_file) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            ),
            _ => None,
        };
        if let Some(cfg) = cfg {
            match LocalBackend::parse(a.backend_type.as_deref().unwrap_or("localfs"), &cfg)? {
                LocalBackend::Dir(d) => l.dir = Some(d),
                LocalBackend::File(f) => l.single = Some(f),
            }
        } else if let Some(t) = &a.backend_type {
            bail!("--backend-type {t} needs --backend-config or --backend-config-file");
        }
        if let Some(d) = &l.dir {
            if !d.is_dir() {
                bail!("blob directory {} does not exist", d.display());
            }
        }
        Ok(l)
    }

    /// A locator serving the blobs of a directory, named by id.
    pub fn dir(path: PathBuf) -> Self {
        Self {
            single: None,
            dir: Some(path),
        }
    }

    /// A locator serving one blob file.
    pub fn single(path: PathBuf) -> Self {
        Self {
            single: Some(path),
            dir: None,
        }
    }

    /// Whether any blob source was given.
    pub fn is_empty(&self) -> bool {
        self.single.is_none() && self.dir.is_none()
    }

    /// Opens the blob with this id (the single blob file is used for blob index 0 of a
    /// one-blob image, whatever its name).
    pub fn open(&self, blob_id: &str, blob_count: usize) -> Result<Option<FileSource>> {
        if let Some(f) = &self.single {
            if blob_count <= 1 {
                return FileSource::open(f).map(Some);
            }
        }
        if let Some(d) = &self.dir {
            for name in [blob_id.to_string(), format!("{blob_id}.blob.data")] {
                let p = d.join(&name);
                if p.exists() {
                    return FileSource::open(&p).map(Some);
                }
            }
            bail!("blob {blob_id} not found in {}", d.display());
        }
        Ok(None)
    }

    /// Whether the blob for `blob_id` is an uncompressed cache file (`<id>.blob.data`).
    pub fn is_cache_file(&self, blob_id: &str) -> bool {
        self.dir.as_ref().is_some_and(|d| {
            !d.join(blob_id).exists() && d.join(format!("{blob_id}.blob.data")).exists()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_localfs_configs() {
        assert_eq!(
            LocalBackend::parse("localfs", r#"{"dir":"/d"}"#).unwrap(),
            LocalBackend::Dir("/d".into())
        );
        assert_eq!(
            LocalBackend::parse("localfs", r#"{"blob_file":"/f"}"#).unwrap(),
            LocalBackend::File("/f".into())
        );
        assert!(LocalBackend::parse("s3", "{}").is_err());
        assert!(LocalBackend::parse("localfs", "{").is_err());
    }

    #[test]
    fn file_source_reads_ranges_and_reports_paths() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let s = FileSource::open(&p).unwrap();
        assert_eq!(s.read_vec(2, 3).unwrap(), b"234");
        let e = s.read_vec(8, 5).unwrap_err();
        assert!(e.message.contains("beyond"), "{e}");
    }
}
