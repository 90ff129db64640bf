//! The one backend configuration: where a command's blobs live, as `--backend-type` with
//! `--backend-config <json>` or `--backend-config-file <file>` (and nydusify's
//! `--target-backend-*`) describe it. Every command parses it with [`parse`].
//!
//! Only `localfs` is built: `{"dir": D}` (blobs named by id in D) or `{"blob_file": F}` (one
//! blob), with `"alt_dirs": [..]` searched after `dir` by commands that read blobs. `dir` wins
//! when both are given; an empty string is the same as the key left out (upstream's
//! defaults). The `registry`, `s3` and `oss` types are recognised and refused as not built.
//! Unknown keys and values of the wrong JSON type are errors naming the key.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// A parsed backend configuration.
/// New backend types become variants here, so that every command has to decide about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// Blobs in local files.
    Localfs {
        /// The blob directory or the one blob file.
        blobs: LocalBlobs,
        /// Further directories searched for blobs after `dir`.
        alt_dirs: Vec<PathBuf>,
    },
}

/// Where a localfs backend's blobs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalBlobs {
    /// `{"dir": D}`: blobs named by id in D.
    Dir(PathBuf),
    /// `{"blob_file": F}`: one blob file.
    File(PathBuf),
}

impl BackendConfig {
    /// The blob directory of a localfs backend (`None` for a single blob file).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            BackendConfig::Localfs {
                blobs: LocalBlobs::Dir(d),
                ..
            } => Some(d),
            BackendConfig::Localfs { .. } => None,
        }
    }
}

/// How a command names its backend options, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendFlags<'a> {
    /// The options' common prefix: `--backend` or `--target-backend`.
    pub prefix: &'a str,
    /// The program, as in "not supported by this nydusify yet".
    pub tool: &'a str,
    /// Whether the command has `<prefix>-config-file`.
    pub config_file: bool,
}

/// Backend types known by name but not built yet.
const NOT_BUILT: [&str; 3] = ["registry", "s3", "oss"];

/// Parses backend type `kind` with its configuration: the JSON text `config`, else the file
/// `config_file` (`config` wins when both are given).
pub fn parse(
    flags: BackendFlags<'_>,
    kind: &str,
    config: Option<&str>,
    config_file: Option<&Path>,
) -> Result<BackendConfig> {
    let p = flags.prefix;
    match kind {
        "localfs" => {}
        k if NOT_BUILT.contains(&k) => bail!(
            "{p}-type {k}: backend type {k} is not supported by this {} yet (only localfs is)",
            flags.tool
        ),
        other => bail!("invalid {p}-type {other:?}: expected localfs, registry, oss or s3"),
    }
    let (text, shown) = match (config, config_file) {
        (Some(c), _) => (c.to_string(), format!("{p}-config")),
        (None, Some(f)) => (
            std::fs::read_to_string(f)
                .with_context(|| format!("reading {p}-config-file {}", f.display()))?,
            format!("{p}-config-file {}", f.display()),
        ),
        (None, None) if flags.config_file => {
            bail!("{p}-type {kind} needs {p}-config or {p}-config-file")
        }
        (None, None) => bail!("{p}-type {kind} needs {p}-config"),
    };
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{shown} is not valid JSON"))?;
    localfs(&v).map_err(|e| anyhow!("{shown}: {e}"))
}

fn localfs(v: &Value) -> Result<BackendConfig, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| "a localfs configuration is a JSON object".to_string())?;
    let string = |key: &str| -> Result<Option<PathBuf>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(PathBuf::from(s))),
            Some(_) => Err(format!("{key:?} must be a string")),
        }
    };
    for k in obj.keys() {
        if !["dir", "blob_file", "alt_dirs"].contains(&k.as_str()) {
            return Err(format!(
                "unknown key {k:?} for a localfs backend (expected dir, blob_file or alt_dirs)"
            ));
        }
    }
    let dir = string("dir")?;
    let file = string("blob_file")?;
    let alt_dirs = match obj.get("alt_dirs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|d| match d {
                Value::String(s) => Ok(PathBuf::from(s)),
                _ => Err("\"alt_dirs\" must be an array of strings".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("\"alt_dirs\" must be an array of strings".into()),
    };
    let blobs = match (dir, file) {
        (Some(d), _) => LocalBlobs::Dir(d),
        (None, Some(f)) => LocalBlobs::File(f),
        (None, None) => return Err("a localfs backend needs \"dir\" or \"blob_file\"".into()),
    };
    Ok(BackendConfig::Localfs { blobs, alt_dirs })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: BackendFlags<'static> = BackendFlags {
        prefix: "--backend",
        tool: "nydus-image",
        config_file: true,
    };

    fn local(blobs: LocalBlobs) -> BackendConfig {
        BackendConfig::Localfs {
            blobs,
            alt_dirs: Vec::new(),
        }
    }

    fn err(kind: &str, config: &str) -> String {
        format!("{:#}", parse(IMAGE, kind, Some(config), None).unwrap_err())
    }

    #[test]
    fn parses_localfs_configs() {
        assert_eq!(
            parse(IMAGE, "localfs", Some(r#"{"dir":"/d"}"#), None).unwrap(),
            local(LocalBlobs::Dir("/d".into()))
        );
        assert_eq!(
            parse(IMAGE, "localfs", Some(r#"{"blob_file":"/f"}"#), None).unwrap(),
            local(LocalBlobs::File("/f".into()))
        );
        assert_eq!(
            parse(
                IMAGE,
                "localfs",
                Some(r#"{"dir":"/d","alt_dirs":["/a","/b"],"blob_file":""}"#),
                None
            )
            .unwrap(),
            BackendConfig::Localfs {
                blobs: LocalBlobs::Dir("/d".into()),
                alt_dirs: vec!["/a".into(), "/b".into()],
            }
        );
        assert!(parse(IMAGE, "s3", Some("{}"), None).is_err());
        assert!(parse(IMAGE, "localfs", Some("{"), None).is_err());
    }

    #[test]
    fn errors_name_the_flag_and_the_key() {
        let e = err("s3", "{}");
        assert!(
            e.contains("--backend-type s3") && e.contains("not supported by this nydus-image yet"),
            "{e}"
        );
        let e = err("registry", "{}");
        assert!(e.contains("backend type registry is not supported"), "{e}");
        assert!(err("ftp", "{}").contains("invalid --backend-type \"ftp\""));
        let e = err("localfs", r#"{"dir":"/d","readahead":true}"#);
        assert!(
            e.contains("--backend-config") && e.contains("\"readahead\""),
            "{e}"
        );
        let e = err("localfs", r#"{"dir":5}"#);
        assert!(e.contains("\"dir\" must be a string"), "{e}");
        let e = err("localfs", r#"{"dir":"/d","alt_dirs":"/a"}"#);
        assert!(e.contains("\"alt_dirs\" must be an array"), "{e}");
        assert!(err("localfs", "{").contains("--backend-config is not valid JSON"));
        assert!(err("localfs", "{}").contains("needs \"dir\" or \"blob_file\""));
        let e = parse(IMAGE, "localfs", None, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "--backend-type localfs needs --backend-config or --backend-config-file"
        );
        let no_file = BackendFlags {
            config_file: false,
            ..IMAGE
        };
        let e = parse(no_file, "localfs", None, None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--backend-type localfs needs --backend-config");
    }

    #[test]
    fn config_files_are_read_and_named() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("backend.json");
        std::fs::write(&f, r#"{"dir":"/d"}"#).unwrap();
        let target = BackendFlags {
            prefix: "--target-backend",
            tool: "nydusify",
            config_file: true,
        };
        let c = parse(target, "localfs", None, Some(&f)).unwrap();
        assert_eq!(c.dir(), Some(Path::new("/d")));
        std::fs::write(&f, r#"{"dir":[]}"#).unwrap();
        let e = format!(
            "{:#}",
            parse(target, "localfs", None, Some(&f)).unwrap_err()
        );
        assert!(
            e.contains("--target-backend-config-file") && e.contains("\"dir\" must be a string"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            parse(target, "localfs", None, Some(&t.path().join("none"))).unwrap_err()
        );
        assert!(e.contains("reading --target-backend-config-file"), "{e}");
    }
}
