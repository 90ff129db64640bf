//! The compression-information ("ci") table (`blob.md` §4): its 4096-byte header and the
//! 16-byte v1 / 24-byte v2 entries mapping a chunk index to offsets and sizes.

use crate::codec::{Codec, PutLe, Reader};
use crate::error::DecodeError;
use crate::model::chunk_flags;

/// Magic at both ends of the ci header.
pub const BLOB_CI_MAGIC: u32 = 0xB10B_B10B;
/// Size of the ci header.
pub const CI_HEADER_SIZE: usize = 4096;
/// Size of a v1 entry.
pub const CI_V1_ENTRY_SIZE: usize = 16;
/// Size of a v2 entry.
pub const CI_V2_ENTRY_SIZE: usize = 24;

/// v2 entry flag bits (`blob.md` §4.3).
pub mod v2_flags {
    pub const COMPRESSED: u8 = 0x01;
    pub const ZRAN: u8 = 0x02;
    pub const BATCH: u8 = 0x04;
    pub const ENCRYPTED: u8 = 0x08;
    pub const HAS_CRC32: u8 = 0x10;
}

/// The ci header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiHeader {
    pub features: u32,
    pub ci_compressor: u32,
    pub ci_entries: u32,
    pub ci_offset: u64,
    pub ci_compressed_size: u64,
    pub ci_uncompressed_size: u64,
    pub ci_zran_offset: u64,
    pub ci_zran_size: u64,
    pub ci_zran_count: u32,
}

impl Codec for CiHeader {
    const SIZE: usize = CI_HEADER_SIZE;
    const NAME: &'static str = "blob compression-info header";
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(BLOB_CI_MAGIC);
        out.put_u32(self.features);
        out.put_u32(self.ci_compressor);
        out.put_u32(self.ci_entries);
        out.put_u64(self.ci_offset);
        out.put_u64(self.ci_compressed_size);
        out.put_u64(self.ci_uncompressed_size);
        out.put_u64(self.ci_zran_offset);
        out.put_u64(self.ci_zran_size);
        out.put_u32(self.ci_zran_count);
        out.put_zeros(4032);
        out.put_u32(BLOB_CI_MAGIC);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        let magic = r.u32()?;
        if magic != BLOB_CI_MAGIC {
            return Err(DecodeError::BadMagic {
                what: Self::NAME,
                offset: at,
                found: magic as u64,
            });
        }
        let h = CiHeader {
            features: r.u32()?,
            ci_compressor: r.u32()?,
            ci_entries: r.u32()?,
            ci_offset: r.u64()?,
            ci_compressed_size: r.u64()?,
            ci_uncompressed_size: r.u64()?,
            ci_zran_offset: r.u64()?,
            ci_zran_size: r.u64()?,
            ci_zran_count: r.u32()?,
        };
        r.skip(4032)?;
        let at2 = r.offset();
        let magic2 = r.u32()?;
        if magic2 != BLOB_CI_MAGIC {
            return Err(DecodeError::BadMagic {
                what: Self::NAME,
                offset: at2,
                found: magic2 as u64,
            });
        }
        Ok(h)
    }
}

/// One decoded ci entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CiEntry {
    pub uncompressed_offset: u64,
    pub uncompressed_size: u32,
    pub compressed_offset: u64,
    pub compressed_size: u32,
    /// [`crate::model::chunk_flags`] bits implied by the entry (COMPRESSED, HAS_CRC32, ...).
    pub flags: u32,
    /// v2 `data` word (CRC-32C in the low half for normal chunks).
    pub data: u64,
}

impl CiEntry {
    pub fn is_compressed(&self) -> bool {
        self.flags & chunk_flags::COMPRESSED != 0
    }

    /// Encodes a v1 entry. Sizes must be 1..=16 MiB and the uncompressed offset 4 KiB aligned.
    pub fn encode_v1(&self, out: &mut Vec<u8>) {
        let u = (self.uncompressed_size - 1) as u64;
        let c = (self.compressed_size - 1) as u64;
        let uncomp = ((u >> 20) & 0xf) << 8
            | (self.uncompressed_offset & 0x0FFF_FFFF_F000)
            | (u & 0xF_FFFF) << 44;
        let comp = (self.compressed_offset & 0xFF_FFFF_FFFF)
            | ((c >> 20) & 0xf) << 40
            | (c & 0xF_FFFF) << 44;
        out.put_u64(uncomp);
        out.put_u64(comp);
    }

    /// Decodes a v1 entry.
    pub fn decode_v1(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let uncomp = r.u64()?;
        let comp = r.u64()?;
        let uncompressed_size = ((((uncomp >> 8) & 0xf) << 20 | (uncomp >> 44)) + 1) as u32;
        let compressed_size = ((((comp >> 40) & 0xf) << 20 | (comp >> 44)) + 1) as u32;
        let flags = if compressed_size != uncompressed_size {
            chunk_flags::COMPRESSED
        } else {
            0
        };
        Ok(CiEntry {
            uncompressed_offset: uncomp & 0x0FFF_FFFF_F000,
            uncompressed_size,
            compressed_offset: comp & 0xFF_FFFF_FFFF,
            compressed_size,
            flags,
            data: 0,
        })
    }

    /// Encodes a v2 entry.
    pub fn encode_v2(&self, out: &mut Vec<u8>) {
        let mut f = 0u8;
        if self.flags & chunk_flags::COMPRESSED != 0 {
            f |= v2_flags::COMPRESSED;
        }
        if self.flags & chunk_flags::HAS_CRC32 != 0 {
            f |= v2_flags::HAS_CRC32;
        }
        let uncomp = (self.uncompressed_offset >> 12) & 0xFFFF_FFFF
            | ((self.uncompressed_size - 1) as u64 & 0xFF_FFFF) << 32
            | (f as u64) << 56;
        let comp = (self.compressed_offset & 0xFF_FFFF_FFFF)
            | (self.compressed_size as u64 & 0xFF_FFFF) << 40;
        out.put_u64(uncomp);
        out.put_u64(comp);
        out.put_u64(self.data);
    }

    /// Decodes a v2 entry.
    pub fn decode_v2(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let uncomp = r.u64()?;
        let comp = r.u64()?;
        let data = r.u64()?;
        let f = (uncomp >> 56) as u8;
        let mut flags = 0;
        for (v2, cf) in [
            (v2_flags::COMPRESSED, chunk_flags::COMPRESSED),
            (v2_flags::BATCH, chunk_flags::BATCH),
            (v2_flags::ENCRYPTED, chunk_flags::ENCRYPTED),
            (v2_flags::HAS_CRC32, chunk_flags::HAS_CRC32),
        ] {
            if f & v2 != 0 {
                flags |= cf;
            }
        }
        Ok(CiEntry {
            uncompressed_offset: (uncomp & 0xFFFF_FFFF) << 12,
            uncompressed_size: (((uncomp >> 32) & 0xFF_FFFF) + 1) as u32,
            compressed_offset: comp & 0xFF_FFFF_FFFF,
            compressed_size: (comp >> 40) as u32,
            flags,
            data,
        })
    }
}

/// Decodes `count` entries from uncompressed ci data starting at absolute `base`.
pub fn decode_entries(
    bytes: &[u8],
    count: u32,
    v2: bool,
    base: u64,
) -> Result<Vec<CiEntry>, DecodeError> {
    let size = if v2 {
        CI_V2_ENTRY_SIZE
    } else {
        CI_V1_ENTRY_SIZE
    };
    let need = size as u64 * count as u64;
    if (bytes.len() as u64) < need {
        return Err(DecodeError::Truncated {
            what: "compression-info entries",
            offset: base,
            needed: need,
            available: bytes.len() as u64,
        });
    }
    let mut r = Reader::new(&bytes[..need as usize], base, "compression-info entry");
    (0..count)
        .map(|_| {
            if v2 {
                CiEntry::decode_v2(&mut r)
            } else {
                CiEntry::decode_v1(&mut r)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_matches_the_worked_example() {
        // rafs-v6.md §18.1: "hello\n" at 0/0, 6 bytes raw.
        let e = CiEntry {
            uncompressed_size: 6,
            compressed_size: 6,
            ..Default::default()
        };
        let mut v = Vec::new();
        e.encode_v1(&mut v);
        assert_eq!(v, [0, 0, 0, 0, 0, 0x50, 0, 0, 0, 0, 0, 0, 0, 0x50, 0, 0]);
        assert_eq!(decode_entries(&v, 1, false, 0).unwrap()[0], e);
    }

    #[test]
    fn v1_and_v2_round_trip_large_values() {
        let e = CiEntry {
            uncompressed_offset: 0x0123_4567_8000,
            uncompressed_size: 0x100_0000,
            compressed_offset: 0xAB_CDEF_0123,
            compressed_size: 0xF_FFFF,
            flags: chunk_flags::COMPRESSED,
            data: 0,
        };
        let mut v = Vec::new();
        e.encode_v1(&mut v);
        assert_eq!(decode_entries(&v, 1, false, 0).unwrap()[0], e);
        let e2 = CiEntry {
            flags: chunk_flags::COMPRESSED | chunk_flags::HAS_CRC32,
            data: 0xdead_beef,
            ..e
        };
        let mut v = Vec::new();
        e2.encode_v2(&mut v);
        assert_eq!(decode_entries(&v, 1, true, 0).unwrap()[0], e2);
    }

    #[test]
    fn header_round_trips_and_checks_magic() {
        let h = CiHeader {
            features: 0x4000_0001,
            ci_entries: 1,
            ci_offset: 6,
            ci_compressed_size: 16,
            ci_uncompressed_size: 16,
            ..Default::default()
        };
        let b = h.to_bytes();
        assert_eq!(b.len(), 4096);
        assert_eq!(CiHeader::decode_at(&b, 0).unwrap(), h);
        let mut bad = b.clone();
        bad[4095] = 0;
        assert!(CiHeader::decode_at(&bad, 0).is_err());
    }
}
