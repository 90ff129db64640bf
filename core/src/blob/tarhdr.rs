//! The 512-byte GNU tar headers that follow each blob section (`blob.md` §5).

use crate::error::{BlobProblem, DecodeError};

/// Size of one tar header.
pub const TAR_HEADER_SIZE: usize = 512;

const NAME_LEN: usize = 100;
const SIZE_OFF: usize = 124;
const MTIME_OFF: usize = 136;
const CHKSUM_OFF: usize = 148;
const TYPEFLAG_OFF: usize = 156;
const MAGIC_OFF: usize = 257;
const GNU_MAGIC: &[u8; 8] = b"ustar  \0";

/// Builds the header describing a section `name` of `size` bytes.
pub fn encode(name: &str, size: u64) -> [u8; TAR_HEADER_SIZE] {
    let mut h = [0u8; TAR_HEADER_SIZE];
    let n = name.as_bytes();
    h[..n.len().min(NAME_LEN)].copy_from_slice(&n[..n.len().min(NAME_LEN)]);
    if size < 0o100_000_000_000 {
        h[SIZE_OFF..SIZE_OFF + 12].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        h[SIZE_OFF] = 0x80;
        h[SIZE_OFF + 4..SIZE_OFF + 12].copy_from_slice(&size.to_be_bytes());
    }
    h[MTIME_OFF..MTIME_OFF + 12].copy_from_slice(b"00000000000\0");
    h[TYPEFLAG_OFF] = b'0';
    h[MAGIC_OFF..MAGIC_OFF + 8].copy_from_slice(GNU_MAGIC);
    let sum = checksum(&h);
    h[CHKSUM_OFF..CHKSUM_OFF + 8].copy_from_slice(format!("{sum:07o}\0").as_bytes());
    h
}

fn checksum(h: &[u8; TAR_HEADER_SIZE]) -> u32 {
    h.iter()
        .enumerate()
        .map(|(i, &b)| {
            if (CHKSUM_OFF..CHKSUM_OFF + 8).contains(&i) {
                0x20
            } else {
                b as u32
            }
        })
        .sum()
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let start = field.iter().position(|&b| b != b' ')?;
    let digits: Vec<u8> = field[start..]
        .iter()
        .take_while(|&&b| (b'0'..=b'7').contains(&b))
        .copied()
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 8).ok()
}

/// Parses a section header at absolute offset `offset`: `(name, size)`. Checks the checksum,
/// the magic and the regular-file type.
pub fn decode(h: &[u8], offset: u64) -> Result<(String, u64), DecodeError> {
    const WHAT: &str = "blob section tar header";
    let bad = |problem| DecodeError::BadBlobSection {
        what: WHAT,
        offset,
        problem,
    };
    let h: &[u8; TAR_HEADER_SIZE] = h.try_into().map_err(|_| {
        if h.len() < TAR_HEADER_SIZE {
            DecodeError::Truncated {
                what: WHAT,
                offset,
                needed: TAR_HEADER_SIZE as u64,
                available: h.len() as u64,
            }
        } else {
            DecodeError::TrailingBytes {
                what: WHAT,
                offset: offset + TAR_HEADER_SIZE as u64,
                count: (h.len() - TAR_HEADER_SIZE) as u64,
            }
        }
    })?;
    if &h[MAGIC_OFF..MAGIC_OFF + 6] != b"ustar " && &h[MAGIC_OFF..MAGIC_OFF + 6] != b"ustar\0" {
        return Err(bad(BlobProblem::TarMagic));
    }
    let recorded = parse_octal(&h[CHKSUM_OFF..CHKSUM_OFF + 8])
        .ok_or_else(|| bad(BlobProblem::Unreadable { field: "chksum" }))?;
    let computed = checksum(h) as u64;
    if recorded != computed {
        return Err(bad(BlobProblem::TarChecksum { recorded, computed }));
    }
    if h[TYPEFLAG_OFF] != b'0' && h[TYPEFLAG_OFF] != 0 {
        return Err(bad(BlobProblem::TarType(h[TYPEFLAG_OFF])));
    }
    let size = if h[SIZE_OFF] & 0x80 != 0 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[SIZE_OFF + 4..SIZE_OFF + 12]);
        u64::from_be_bytes(b)
    } else {
        parse_octal(&h[SIZE_OFF..SIZE_OFF + 12])
            .ok_or_else(|| bad(BlobProblem::Unreadable { field: "size" }))?
    };
    let end = h[..NAME_LEN]
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(NAME_LEN);
    let name = String::from_utf8(h[..end].to_vec())
        .map_err(|_| bad(BlobProblem::NotUtf8 { field: "name" }))?;
    Ok((name, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_gnu_layout() {
        let h = encode("image.blob", 6);
        assert_eq!(&h[124..136], b"00000000006\0");
        assert_eq!(&h[257..265], b"ustar  \0");
        assert_eq!(h[156], b'0');
        assert_eq!(h[155], 0);
        assert_eq!(decode(&h, 0).unwrap(), ("image.blob".to_string(), 6));
        let big = encode("image.blob", 1 << 34);
        assert_eq!(decode(&big, 0).unwrap().1, 1 << 34);
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut h = encode("blob.meta", 4112);
        h[3] ^= 1;
        assert!(decode(&h, 7).is_err());
    }
}
