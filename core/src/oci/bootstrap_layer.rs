//! The bootstrap layer of a Nydus image (`oci-nydus-image.md` §2): a gzip-compressed tar
//! holding `image/` (0755), `image/image.boot` (0444, the merged bootstrap) and, for v6, one
//! `image/<blob digest>.blob.meta` per blob layer. Also the reverse: the bootstrap out of such
//! a layer.

use crate::compress::gunzip;
use crate::digest::sha256;
use crate::oci::error::{DocKind, OciError};

const BLOCK: usize = 512;

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    field[w] = 0;
}

/// A USTAR header (as Go's archive/tar writes for short names): uid/gid 0, mtime 0.
fn header(name: &str, mode: u32, size: u64, dir: bool) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = if dir { b'5' } else { b'0' };
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A built bootstrap layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapLayer {
    /// The gzip bytes pushed as the layer.
    pub gz: Vec<u8>,
    /// `sha256:<hex>` of `gz` (the layer digest).
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar (the config's diff id).
    pub diff_id: String,
}

/// Packs the merged bootstrap and the blob-meta files (`(blob digest hex, bytes)`).
pub fn build(bootstrap: &[u8], blob_metas: &[(String, Vec<u8>)]) -> BootstrapLayer {
    build_with(bootstrap, blob_metas, &[])
}

/// [`build`] with further files after the blob metas (`(path inside the layer, bytes)`, e.g.
/// [`super::PREFETCH_FILES_PATH`] for an optimized image).
pub fn build_with(
    bootstrap: &[u8],
    blob_metas: &[(String, Vec<u8>)],
    extra: &[(String, Vec<u8>)],
) -> BootstrapLayer {
    let mut tar = Vec::new();
    let mut file = |name: &str, data: &[u8]| {
        tar.extend_from_slice(&header(name, 0o444, data.len() as u64, false));
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(BLOCK) * BLOCK, 0);
    };
    let mut all = vec![(super::BOOTSTRAP_PATH.to_string(), bootstrap.to_vec())];
    for (id, meta) in blob_metas {
        all.push((format!("image/{id}.blob.meta"), meta.clone()));
    }
    all.extend(extra.iter().cloned());
    let mut head = header("image", 0o755, 0, true).to_vec();
    for (name, data) in &all {
        file(name, data);
    }
    head.extend_from_slice(&tar);
    let mut tar = head;
    tar.extend_from_slice(&[0u8; 2 * BLOCK]);
    let gz = gzip(&tar);
    BootstrapLayer {
        digest: format!("sha256:{}", sha256(&gz).to_hex()),
        diff_id: format!("sha256:{}", sha256(&tar).to_hex()),
        gz,
    }
}

fn parse_octal(f: &[u8]) -> Option<u64> {
    let s: String = f
        .iter()
        .map(|&b| b as char)
        .skip_while(|c| *c == ' ')
        .take_while(|c| ('0'..='7').contains(c))
        .collect();
    if s.is_empty() {
        Some(0)
    } else {
        u64::from_str_radix(&s, 8).ok()
    }
}

/// The regular files of a bootstrap layer (gzip or plain tar), by name (a leading `./`
/// dropped). The uncompressed layer may be at most `limit` bytes.
pub fn extract_files(layer: &[u8], limit: usize) -> Result<Vec<(String, Vec<u8>)>, OciError> {
    const DOC: DocKind = DocKind::BootstrapLayer;
    let tar = if layer.starts_with(&[0x1f, 0x8b]) {
        gunzip(layer, limit).map_err(|reason| OciError::Gzip {
            document: DOC,
            reason,
        })?
    } else {
        layer.to_vec()
    };
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + BLOCK <= tar.len() {
        let h = &tar[at..at + BLOCK];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let mut name = String::from_utf8_lossy(&h[..name_end]).into_owned();
        if &h[257..262] == b"ustar" && h[345] != 0 {
            let p_end = h[345..500].iter().position(|&b| b == 0).unwrap_or(155);
            name = format!("{}/{name}", String::from_utf8_lossy(&h[345..345 + p_end]));
        }
        let size = parse_octal(&h[124..136]).ok_or(OciError::TarHeader {
            document: DOC,
            offset: at as u64,
            field: "size",
        })? as usize;
        let start = at + BLOCK;
        let end =
            start
                .checked_add(size)
                .filter(|&e| e <= tar.len())
                .ok_or(OciError::Truncated {
                    document: DOC,
                    offset: at as u64,
                })?;
        if h[156] == b'0' || h[156] == 0 {
            out.push((
                name.trim_start_matches("./").to_string(),
                tar[start..end].to_vec(),
            ));
        }
        at = start + size.div_ceil(BLOCK) * BLOCK;
    }
    Ok(out)
}

/// The merged bootstrap out of a bootstrap layer (gzip or plain tar): `image/image.boot`, or
/// the legacy `image.boot` at the root (a leading `./` is accepted). The uncompressed layer may
/// be at most `limit` bytes.
pub fn extract_bootstrap(layer: &[u8], limit: usize) -> Result<Vec<u8>, OciError> {
    let files = extract_files(layer, limit)?;
    let find = |want: &str| {
        files
            .iter()
            .find(|(n, _)| n == want)
            .map(|(_, d)| d.clone())
    };
    find(super::BOOTSTRAP_PATH)
        .or_else(|| find(super::LEGACY_BOOTSTRAP_PATH))
        .ok_or(OciError::Missing {
            document: DocKind::BootstrapLayer,
            path: super::BOOTSTRAP_PATH,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_extracts() {
        let boot = vec![7u8; 5000];
        let l = build(&boot, &[("ab".repeat(32), vec![1, 2, 3])]);
        assert_eq!(extract_bootstrap(&l.gz, 1 << 20).unwrap(), boot);
        assert!(l.digest.starts_with("sha256:") && l.digest != l.diff_id);
        // Deterministic.
        assert_eq!(build(&boot, &[("ab".repeat(32), vec![1, 2, 3])]), l);
        assert!(matches!(
            extract_bootstrap(&l.gz[..l.gz.len() / 2], 1 << 20),
            Err(OciError::Gzip { .. })
        ));
        assert!(
            matches!(extract_bootstrap(&l.gz, 100), Err(OciError::Gzip { .. })),
            "limit"
        );
        // A plain tar cut inside the bootstrap's content.
        let tar = crate::compress::gunzip(&l.gz, 1 << 20).unwrap();
        assert_eq!(
            extract_bootstrap(&tar[..2048], 1 << 20),
            Err(OciError::Truncated {
                document: DocKind::BootstrapLayer,
                offset: 512
            })
        );
        let other = build(&boot, &[]);
        let mut tar = crate::compress::gunzip(&other.gz, 1 << 20).unwrap();
        tar[512] = b'x'; // image/image.boot becomes ximage/image.boot
        assert_eq!(
            extract_bootstrap(&tar, 1 << 20).unwrap_err().to_string(),
            "the layer holds no image/image.boot"
        );
        let files = extract_files(&l.gz, 1 << 20).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[1],
            (
                format!("image/{}.blob.meta", "ab".repeat(32)),
                vec![1, 2, 3]
            )
        );
    }
}
