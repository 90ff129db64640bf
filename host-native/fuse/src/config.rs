//! upstream nydusd's JSON configurations (v1 and v2, `shared/spec/runtime.md` §4) read into
//! what our daemon needs: the backend (parsed by the one backend parser), the blob cache
//! directory, the batch size and the prefetch. Keys our daemon has no use for (upstream's
//! statistics and tuning knobs) are accepted and ignored; wrong types and unsupported cache
//! types are errors naming the key.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use nydus_host_storage::config::{parse_value, BackendConfig};
use serde_json::{Map, Value};

use crate::prefetch::PrefetchOptions;

/// A nydusd configuration, read.
#[derive(Debug, Clone)]
pub struct NydusdConfig {
    pub backend: BackendConfig,
    /// `None`: no cache on disk (`dummycache`, or no cache section).
    pub cache_dir: Option<PathBuf>,
    /// Largest merged backend request (`amplify_io`, `rafs.batch_size`); `None`: default.
    pub batch_size: Option<u64>,
    pub prefetch: Option<PrefetchOptions>,
    /// v1 or v2.
    pub version: u32,
}

fn obj<'a>(v: &'a Value, key: &str) -> Result<Option<&'a Map<String, Value>>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => bail!("{key:?} must be a JSON object"),
    }
}

fn num(m: &Map<String, Value>, key: &str, at: &str) -> Result<Option<u64>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| anyhow!("{at}{key:?} must be a non-negative integer")),
    }
}

fn flag(m: &Map<String, Value>, key: &str, at: &str) -> Result<bool> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => bail!("{at}{key:?} must be true or false"),
    }
}

fn text<'a>(m: &'a Map<String, Value>, key: &str, at: &str) -> Result<Option<&'a str>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => bail!("{at}{key:?} must be a string"),
    }
}

/// The prefetch of a `fs_prefetch` (v1) or `prefetch` (v2) section.
fn prefetch(m: &Map<String, Value>, at: &str, v1: bool) -> Result<Option<PrefetchOptions>> {
    if !flag(m, "enable", at)? {
        return Ok(None);
    }
    let (threads, rate) = if v1 {
        ("threads_count", "bandwidth_rate")
    } else {
        ("threads", "bandwidth_limit")
    };
    let t = num(m, threads, at)?.or(num(m, "threads_count", at)?);
    Ok(Some(PrefetchOptions {
        all: flag(m, "prefetch_all", at)?,
        threads: t.unwrap_or(2).clamp(1, 64) as usize,
        bandwidth: num(m, rate, at)?
            .or(num(m, "bandwidth_rate", at)?)
            .unwrap_or(0),
    }))
}

fn backend(kind: &str, config: &Value, at: &str) -> Result<BackendConfig> {
    let env = std::env::var("IMAGE_PULL_AUTH").ok();
    parse_value(kind, config, env.as_deref()).map_err(|e| anyhow!("{at}: {e}"))
}

fn cache_dir(kind: Option<&str>, work_dir: Option<&str>, at: &str) -> Result<Option<PathBuf>> {
    match kind.unwrap_or("") {
        "" | "dummycache" | "dummy" => Ok(None),
        "blobcache" | "filecache" => match work_dir {
            Some(d) if !d.is_empty() => Ok(Some(PathBuf::from(d))),
            _ => bail!("{at}: a {} cache needs \"work_dir\"", kind.unwrap_or("")),
        },
        "fscache" => bail!(
            "{at}: cache type \"fscache\" (EROFS over fscache) is not supported by this daemon; use \"blobcache\""
        ),
        other => bail!("{at}: unknown cache type {other:?}: expected blobcache, filecache or dummycache"),
    }
}

/// Reads a nydusd configuration (JSON text).
pub fn parse(json: &str) -> Result<NydusdConfig> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| anyhow!("the configuration is not JSON: {e}"))?;
    if !v.is_object() {
        bail!("the configuration must be a JSON object");
    }
    let version = match v.get("version") {
        None | Some(Value::Null) => 1,
        Some(n) => match n.as_u64() {
            Some(1) => 1,
            Some(2) => 2,
            _ => bail!("\"version\" must be 1 or 2, not {n}"),
        },
    };
    if version == 2 {
        return parse_v2(&v);
    }
    let device = obj(&v, "device")?.ok_or_else(|| anyhow!("\"device\" is missing"))?;
    let device = Value::Object(device.clone());
    let b = obj(&device, "backend")?.ok_or_else(|| anyhow!("\"device.backend\" is missing"))?;
    let kind = text(b, "type", "device.backend.")?
        .ok_or_else(|| anyhow!("\"device.backend.type\" is missing"))?;
    let cfg = b
        .get("config")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    let backend = backend(kind, &cfg, "device.backend.config")?;
    let cache_dir = match obj(&device, "cache")? {
        None => None,
        Some(c) => {
            let kind = text(c, "type", "device.cache.")?;
            let wd = match c.get("config") {
                Some(Value::Object(m)) => text(m, "work_dir", "device.cache.config.")?,
                _ => None,
            };
            cache_dir(kind, wd, "device.cache")?
        }
    };
    let top = v.as_object().expect("checked");
    let prefetch = match obj(&v, "fs_prefetch")? {
        Some(p) => prefetch(p, "fs_prefetch.", true)?,
        None => None,
    };
    Ok(NydusdConfig {
        backend,
        cache_dir,
        batch_size: num(top, "amplify_io", "")?,
        prefetch,
        version,
    })
}

fn parse_v2(v: &Value) -> Result<NydusdConfig> {
    let b = obj(v, "backend")?.ok_or_else(|| anyhow!("\"backend\" is missing"))?;
    let kind =
        text(b, "type", "backend.")?.ok_or_else(|| anyhow!("\"backend.type\" is missing"))?;
    let cfg = b.get(kind).cloned().unwrap_or(Value::Object(Map::new()));
    let backend = backend(kind, &cfg, &format!("backend.{kind}"))?;
    let (mut cache_dir_v, mut pf) = (None, None);
    if let Some(c) = obj(v, "cache")? {
        let kind = text(c, "type", "cache.")?;
        let wd = ["filecache", "blobcache", "fscache"]
            .iter()
            .find_map(|k| match c.get(*k) {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            })
            .map(|m| text(m, "work_dir", "cache.<type>."))
            .transpose()?
            .flatten();
        cache_dir_v = cache_dir(kind, wd, "cache")?;
        if let Some(p) = obj(&Value::Object(c.clone()), "prefetch")? {
            pf = prefetch(p, "cache.prefetch.", false)?;
        }
    }
    let mut batch = None;
    if let Some(r) = obj(v, "rafs")? {
        batch = num(r, "batch_size", "rafs.")?;
        if let Some(p) = obj(&Value::Object(r.clone()), "prefetch")? {
            if let Some(p) = prefetch(p, "rafs.prefetch.", false)? {
                pf = Some(p);
            }
        }
    }
    Ok(NydusdConfig {
        backend,
        cache_dir: cache_dir_v,
        batch_size: batch,
        prefetch: pf,
        version: 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_localfs_with_blobcache_and_prefetch() {
        let c = parse(
            r#"{"device":{"backend":{"type":"localfs","config":{"dir":"/tmp"}},
                "cache":{"type":"blobcache","config":{"work_dir":"/var/cache/n"}}},
                "mode":"direct","digest_validate":false,"iostats_files":false,
                "enable_xattr":true,"amplify_io":262144,
                "fs_prefetch":{"enable":true,"threads_count":4,"prefetch_all":true,"bandwidth_rate":1000}}"#,
        )
        .unwrap();
        assert_eq!(c.version, 1);
        assert_eq!(c.backend.dir(), Some(std::path::Path::new("/tmp")));
        assert_eq!(
            c.cache_dir.as_deref(),
            Some(std::path::Path::new("/var/cache/n"))
        );
        assert_eq!(c.batch_size, Some(262144));
        assert_eq!(
            c.prefetch,
            Some(PrefetchOptions {
                all: true,
                threads: 4,
                bandwidth: 1000
            })
        );
    }

    #[test]
    fn v2_registry_with_filecache() {
        let c = parse(
            r#"{"version":2,"backend":{"type":"registry","registry":{"scheme":"http","host":"127.0.0.1:5000","repo":"a/b"}},
                "cache":{"type":"filecache","filecache":{"work_dir":"/w"}},
                "rafs":{"mode":"direct","batch_size":1048576,"prefetch":{"enable":true,"threads":2}}}"#,
        )
        .unwrap();
        assert_eq!(c.version, 2);
        assert!(matches!(c.backend, BackendConfig::Registry(_)));
        assert_eq!(c.cache_dir.as_deref(), Some(std::path::Path::new("/w")));
        assert_eq!(c.prefetch.map(|p| (p.all, p.threads)), Some((false, 2)));
    }

    #[test]
    fn bad_configurations_name_the_key() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert!(e("[]").contains("JSON object"));
        assert!(e("{").contains("not JSON"));
        assert!(e(r#"{"version":3}"#).contains("\"version\""));
        assert!(e(r#"{"device":{}}"#).contains("device.backend"));
        assert!(e(r#"{"device":{"backend":{"type":"ftp","config":{}}}}"#).contains("ftp"));
        let fscache = r#"{"device":{"backend":{"type":"localfs","config":{"dir":"/tmp"}},"cache":{"type":"fscache"}}}"#;
        assert!(e(fscache).contains("fscache"));
        let nowd = r#"{"device":{"backend":{"type":"localfs","config":{"dir":"/tmp"}},"cache":{"type":"blobcache","config":{}}}}"#;
        assert!(e(nowd).contains("work_dir"));
        let badnum =
            r#"{"device":{"backend":{"type":"localfs","config":{"dir":"/tmp"}}},"amplify_io":"x"}"#;
        assert!(e(badnum).contains("amplify_io"));
    }
}
