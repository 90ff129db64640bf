//! Inline extended attributes (`rafs-v6.md` §8).

use crate::codec::{PutLe, Reader};
use crate::error::{BuildError, DecodeError, Feature, XattrProblem};
use crate::model::Xattrs;

/// Size of the inline xattr body header.
pub const XATTR_HEADER_SIZE: usize = 12;
/// Longest full name.
pub const XATTR_NAME_MAX: usize = 255;
/// Largest value.
pub const XATTR_VALUE_MAX: usize = 65535;

/// Name prefixes by index, in matching order.
const PREFIXES: [(u8, &[u8], bool); 5] = [
    (1, b"user.", false),
    (2, b"system.posix_acl_access", true),
    (3, b"system.posix_acl_default", true),
    (4, b"trusted.", false),
    (6, b"security.", false),
];

fn split(name: &[u8]) -> Option<(u8, &[u8])> {
    PREFIXES.iter().find_map(|&(idx, p, whole)| {
        if whole {
            (name == p).then_some((idx, &name[name.len()..]))
        } else {
            name.strip_prefix(p).map(|s| (idx, s))
        }
    })
}

/// Encodes an xattr body; returns `(body, i_xattr_icount)`, or an empty body and 0 for none.
pub fn encode(path: &[u8], xattrs: &Xattrs) -> Result<(Vec<u8>, u16), BuildError> {
    if xattrs.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let err = |reason: String| BuildError::InvalidEntry {
        path: String::from_utf8_lossy(path).into_owned(),
        reason,
    };
    let mut body = Vec::new();
    body.put_zeros(XATTR_HEADER_SIZE);
    for (name, value) in xattrs {
        let shown = String::from_utf8_lossy(name);
        let (idx, suffix) =
            split(name).ok_or_else(|| err(format!("xattr {shown}: unsupported name prefix")))?;
        if name.len() > XATTR_NAME_MAX || suffix.len() > 255 {
            return Err(err(format!(
                "xattr {shown}: name longer than {XATTR_NAME_MAX} bytes"
            )));
        }
        if value.len() > XATTR_VALUE_MAX {
            return Err(err(format!(
                "xattr {shown}: value longer than {XATTR_VALUE_MAX} bytes"
            )));
        }
        body.put_u8(suffix.len() as u8);
        body.put_u8(idx);
        body.put_u16(value.len() as u16);
        body.extend_from_slice(suffix);
        body.extend_from_slice(value);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let icount = (body.len() - XATTR_HEADER_SIZE) / 4 + 1;
    if icount > u16::MAX as usize {
        return Err(err("xattrs exceed the 256 KiB inline limit".into()));
    }
    Ok((body, icount as u16))
}

/// Decodes an xattr body of `i_xattr_icount` slots starting at absolute `base`, of inode `nid`.
pub fn decode(body: &[u8], base: u64, nid: u64) -> Result<Xattrs, DecodeError> {
    let mut r = Reader::new(body, base, "inline xattr body");
    r.skip(4)?;
    let shared = r.u8()?;
    if shared != 0 {
        return Err(DecodeError::Unsupported {
            what: "xattrs",
            feature: Feature::SharedXattrs,
        });
    }
    r.skip(7)?;
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let at = r.offset();
        let name_len = r.u8()? as usize;
        let idx = r.u8()?;
        let value_len = r.u16()? as usize;
        let suffix = r.take(name_len)?;
        let value = r.take(value_len)?;
        let pad = (4 - (4 + name_len + value_len) % 4) % 4;
        r.skip(pad.min(r.remaining()))?;
        let (_, prefix, _) = PREFIXES
            .iter()
            .find(|p| p.0 == idx)
            .ok_or(DecodeError::BadXattr {
                nid,
                offset: at,
                problem: XattrProblem::UnknownNameIndex(idx),
            })?;
        let mut name = prefix.to_vec();
        name.extend_from_slice(suffix);
        out.push((name, value.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_all_prefixes() {
        let x: Xattrs = vec![
            (
                b"security.capability".to_vec(),
                vec![
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            (b"system.posix_acl_access".to_vec(), vec![2, 0, 0, 0]),
            (b"trusted.overlay.opaque".to_vec(), b"y".to_vec()),
            (b"user.a".to_vec(), b"".to_vec()),
        ];
        let (body, icount) = encode(b"/f", &x).unwrap();
        assert_eq!(12 + 4 * (icount as usize - 1), body.len());
        assert_eq!(decode(&body, 0, 1).unwrap(), x);
        assert!(encode(b"/f", &vec![(b"bogus.x".to_vec(), vec![])]).is_err());
    }
}
