//! Finding the TOC of an eStargz layer (`stargz.md` §1): the footer at the end names the
//! offset of the TOC's gzip member, whose tar stream holds `stargz.index.json`.

use super::{StargzError, TOC_TAR_NAME};
use crate::compress::gunzip_member;

/// Size of the eStargz footer: an empty gzip member whose extra field is the subfield
/// `SG` (22 bytes: `%016x` of the TOC offset, then `STARGZ`).
pub const FOOTER_SIZE: usize = 51;
/// Size of the legacy stargz footer (the 22 bytes are the whole extra field).
pub const LEGACY_FOOTER_SIZE: usize = 47;
/// The largest TOC accepted (decompressed).
pub const MAX_TOC_SIZE: usize = 1 << 30;

const MAGIC: &[u8; 6] = b"STARGZ";

/// The TOC offset named by the footer at the end of `tail` (the last bytes of the layer, at
/// least [`FOOTER_SIZE`] of them when the layer is that long), and the footer's size.
pub fn toc_offset(tail: &[u8]) -> Result<(u64, usize), StargzError> {
    let bad = |reason: String| StargzError::Footer { reason };
    let parse_hex = |b: &[u8]| -> Option<u64> {
        let s = std::str::from_utf8(b).ok()?;
        u64::from_str_radix(s, 16).ok()
    };
    if tail.len() >= FOOTER_SIZE {
        let f = &tail[tail.len() - FOOTER_SIZE..];
        // Header (10) + XLEN 26 + subfield id `SG` and length 22.
        if f[..4] == [0x1f, 0x8b, 0x08, 0x04] && f[10..12] == [26, 0] && &f[12..14] == b"SG" {
            if f[14..16] != [22, 0] || &f[32..38] != MAGIC {
                return Err(bad("the SG subfield is not `%016xSTARGZ`".into()));
            }
            let off = parse_hex(&f[16..32])
                .ok_or_else(|| bad("the TOC offset is not 16 hex digits".into()))?;
            return Ok((off, FOOTER_SIZE));
        }
    }
    if tail.len() >= LEGACY_FOOTER_SIZE {
        let f = &tail[tail.len() - LEGACY_FOOTER_SIZE..];
        if f[..4] == [0x1f, 0x8b, 0x08, 0x04] && f[10..12] == [22, 0] && &f[28..34] == MAGIC {
            let off = parse_hex(&f[12..28])
                .ok_or_else(|| bad("the TOC offset is not 16 hex digits".into()))?;
            return Ok((off, LEGACY_FOOTER_SIZE));
        }
    }
    Err(bad(format!(
        "the last {} bytes are neither an eStargz nor a legacy stargz footer (not an eStargz layer, or cut)",
        tail.len().min(FOOTER_SIZE)
    )))
}

/// The `stargz.index.json` content of the TOC's gzip member (`member` starts at the TOC
/// offset; it may run on to the footer). `offset` names the member in errors.
pub fn toc_json(member: &[u8], offset: u64) -> Result<Vec<u8>, StargzError> {
    let bad = |reason: String| StargzError::TocMember { offset, reason };
    let (tar, _) = gunzip_member(member, MAX_TOC_SIZE).map_err(&bad)?;
    let mut pos = 0usize;
    let mut long_name: Option<Vec<u8>> = None;
    while pos + 512 <= tar.len() {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let size = octal(&h[124..136]).ok_or_else(|| bad("a tar header has a bad size".into()))?;
        let body = pos + 512;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| body.checked_add(s))
            .filter(|&e| e <= tar.len())
            .ok_or_else(|| bad("a tar entry runs past the member".into()))?;
        let name = long_name.take().unwrap_or_else(|| {
            let n = &h[..100];
            n[..n.iter().position(|&b| b == 0).unwrap_or(100)].to_vec()
        });
        match h[156] {
            // GNU long name: the next header's name.
            b'L' => {
                let n = &tar[body..end];
                long_name = Some(n[..n.iter().position(|&b| b == 0).unwrap_or(n.len())].to_vec());
            }
            // PAX headers say nothing the TOC needs.
            b'x' | b'g' => {}
            _ if name == TOC_TAR_NAME.as_bytes() => return Ok(tar[body..end].to_vec()),
            _ => {}
        }
        pos = body + (size as usize).next_multiple_of(512);
    }
    Err(bad(format!(
        "no {TOC_TAR_NAME} entry in the TOC's tar stream"
    )))
}

fn octal(field: &[u8]) -> Option<u64> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The footer Go's estargz writer emits for a TOC at 0x1234.
    fn footer(off: u64) -> Vec<u8> {
        let mut f = vec![
            0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 26, 0, b'S', b'G', 22, 0,
        ];
        f.extend_from_slice(format!("{off:016x}STARGZ").as_bytes());
        f.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
        f
    }

    #[test]
    fn footers() {
        let f = footer(0x1234);
        assert_eq!(f.len(), FOOTER_SIZE);
        let mut tail = vec![7u8; 100];
        tail.extend_from_slice(&f);
        assert_eq!(toc_offset(&tail), Ok((0x1234, FOOTER_SIZE)));
        let mut legacy = vec![0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 22, 0];
        legacy.extend_from_slice(b"00000000000000ffSTARGZ");
        legacy.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(toc_offset(&legacy), Ok((0xff, LEGACY_FOOTER_SIZE)));
        assert!(toc_offset(&f[1..]).is_err());
        assert!(toc_offset(b"short").is_err());
        let mut bad = f.clone();
        bad[20] = b'g';
        assert!(matches!(toc_offset(&bad), Err(StargzError::Footer { .. })));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut g = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
        g.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        g.extend(crc32fast::hash(data).to_le_bytes());
        g.extend((data.len() as u32).to_le_bytes());
        g
    }

    fn tar_entry(name: &str, body: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
        h[156] = b'0';
        h.extend_from_slice(body);
        h.resize(512 + body.len().next_multiple_of(512), 0);
        h
    }

    #[test]
    fn the_index_is_taken_out_of_the_toc_member() {
        let mut tar = tar_entry("other", b"x");
        tar.extend(tar_entry(TOC_TAR_NAME, b"{\"version\":1}"));
        tar.extend(vec![0u8; 1024]);
        let mut m = gzip(&tar);
        m.extend(footer(0));
        assert_eq!(toc_json(&m, 5).unwrap(), b"{\"version\":1}");
        let mut none = tar_entry("other", b"x");
        none.extend(vec![0u8; 1024]);
        match toc_json(&gzip(&none), 9) {
            Err(StargzError::TocMember { offset: 9, reason }) => {
                assert!(reason.contains(TOC_TAR_NAME), "{reason}")
            }
            r => panic!("{r:?}"),
        }
        // A size running past the member.
        let mut long = tar_entry(TOC_TAR_NAME, b"{}");
        long[124..135].copy_from_slice(b"77777777777");
        assert!(toc_json(&gzip(&long), 0).is_err());
        assert!(toc_json(b"garbage", 0).is_err());
    }
}
