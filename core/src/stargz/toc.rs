//! The TOC (`stargz.index.json`, `stargz.md` §2): `{"version": 1, "entries": [...]}`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::StargzError;

/// One TOC entry, fields spelled as in the JSON. Unknown fields (`NumLink`, ...) are ignored.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TocEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    /// RFC 3339; empty means zero or unknown.
    pub modtime: String,
    #[serde(rename = "linkName")]
    pub link_name: String,
    /// The tar header's mode (permission bits, possibly with type bits).
    pub mode: u64,
    pub uid: u32,
    pub gid: u32,
    #[serde(rename = "userName")]
    pub user_name: String,
    #[serde(rename = "groupName")]
    pub group_name: String,
    #[serde(rename = "devMajor")]
    pub dev_major: u32,
    #[serde(rename = "devMinor")]
    pub dev_minor: u32,
    /// Name → base64 of the value.
    pub xattrs: BTreeMap<String, String>,
    /// `sha256:<hex>` of the whole file.
    pub digest: String,
    /// Where this entry's gzip member starts in the layer.
    pub offset: u64,
    #[serde(rename = "chunkOffset")]
    pub chunk_offset: u64,
    /// 0: to the end of the file.
    #[serde(rename = "chunkSize")]
    pub chunk_size: u64,
    /// `sha256:<hex>` of this chunk's bytes.
    #[serde(rename = "chunkDigest")]
    pub chunk_digest: String,
    #[serde(rename = "innerOffset")]
    pub inner_offset: u64,
}

/// A parsed TOC.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Toc {
    pub version: u64,
    #[serde(default)]
    pub entries: Vec<TocEntry>,
}

/// Parses TOC JSON and checks its version.
pub fn parse_toc(json: &[u8]) -> Result<Toc, StargzError> {
    let toc: Toc = serde_json::from_slice(json).map_err(|e| StargzError::Json {
        reason: e.to_string(),
    })?;
    if toc.version != 1 {
        return Err(StargzError::Version { found: toc.version });
    }
    Ok(toc)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to seconds and nanoseconds since the epoch (times
/// before 1970 are clamped to 0, as RAFS stores unsigned seconds). `None` if malformed.
pub fn parse_rfc3339(s: &str) -> Option<(u64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nsec = 0u32;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        for k in 0..9 {
            let digit = if start + k < i {
                b[start + k] - b'0'
            } else {
                0
            };
            nsec = nsec * 10 + digit as u32;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    Some(if secs < 0 {
        (0, 0)
    } else {
        (secs as u64, nsec)
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2019-08-20T10:30:43Z"),
            Some((1_566_297_043, 0))
        );
        assert_eq!(
            parse_rfc3339("2019-08-20T12:30:43.5+02:00"),
            Some((1_566_297_043, 500_000_000))
        );
        assert_eq!(parse_rfc3339("1960-01-01T00:00:00Z"), Some((0, 0)));
        for bad in [
            "",
            "2019-08-20",
            "2019-13-20T10:30:43Z",
            "2019-08-20T10:30:43",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn toc_versions_and_shapes() {
        let t = parse_toc(br#"{"version":1,"entries":[{"name":"a","type":"dir","NumLink":0}]}"#)
            .unwrap();
        assert_eq!(t.entries[0].kind, "dir");
        assert_eq!(
            parse_toc(br#"{"version":2,"entries":[]}"#),
            Err(StargzError::Version { found: 2 })
        );
        assert!(matches!(
            parse_toc(b"{\"version\":1,\"entries\":[{\"size\":-1}]}"),
            Err(StargzError::Json { .. })
        ));
    }
}
