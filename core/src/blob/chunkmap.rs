//! The chunk map of a blob cache (`runtime.md` §3): `<blob id>.chunk_map` beside the cache's
//! `<blob id>.blob.data` says which chunks the data file holds. A 4096-byte header, then one
//! bit per chunk of the blob (by ci index), most significant bit first. Hosts own the files;
//! this module owns the layout.

use crate::codec::{Codec, PutLe, Reader};
use crate::error::{DecodeError, Rule};

/// `magic` of the header.
pub const CHUNK_MAP_MAGIC: u32 = 0x424D_4150;
/// `version` of the header.
pub const CHUNK_MAP_VERSION: u32 = 1;
/// `magic2` of the header.
pub const CHUNK_MAP_MAGIC2: u32 = 0x434D_4150;
/// `all_ready` once every chunk is present (else 0).
pub const CHUNK_MAP_ALL_READY: u32 = 0x4D4D_4150;
/// Bytes of the header; the bits follow it.
pub const CHUNK_MAP_HEADER_SIZE: u64 = 4096;

/// The chunk map header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMapHeader {
    /// Every chunk is present.
    pub all_ready: bool,
}

impl Codec for ChunkMapHeader {
    const SIZE: usize = CHUNK_MAP_HEADER_SIZE as usize;
    const NAME: &'static str = "chunk map header";

    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(CHUNK_MAP_MAGIC);
        out.put_u32(CHUNK_MAP_VERSION);
        out.put_u32(CHUNK_MAP_MAGIC2);
        out.put_u32(if self.all_ready {
            CHUNK_MAP_ALL_READY
        } else {
            0
        });
        out.put_zeros(Self::SIZE - 16);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        let magic = r.u32()?;
        if magic != CHUNK_MAP_MAGIC {
            return Err(DecodeError::BadMagic {
                what: Self::NAME,
                offset: at,
                found: magic.into(),
            });
        }
        let field = |field, value: u32, rule| DecodeError::BadField {
            what: Self::NAME,
            field,
            offset: at,
            value: value.into(),
            rule,
        };
        let version = r.u32()?;
        if version != CHUNK_MAP_VERSION {
            return Err(field(
                "version",
                version,
                Rule::Equals(CHUNK_MAP_VERSION.into()),
            ));
        }
        let magic2 = r.u32()?;
        if magic2 != CHUNK_MAP_MAGIC2 {
            return Err(field(
                "magic2",
                magic2,
                Rule::Equals(CHUNK_MAP_MAGIC2.into()),
            ));
        }
        let ready = r.u32()?;
        if ready != 0 && ready != CHUNK_MAP_ALL_READY {
            return Err(field(
                "all_ready",
                ready,
                Rule::Equals(CHUNK_MAP_ALL_READY.into()),
            ));
        }
        r.skip(Self::SIZE - 16)?;
        Ok(ChunkMapHeader {
            all_ready: ready == CHUNK_MAP_ALL_READY,
        })
    }
}

/// Bytes of the bit array for `chunks` chunks.
pub fn bitmap_len(chunks: u32) -> u64 {
    u64::from(chunks).div_ceil(8)
}

/// Where the bit of chunk `index` is: `(byte offset in the file, mask)`.
pub fn bit_position(index: u32) -> (u64, u8) {
    (
        CHUNK_MAP_HEADER_SIZE + u64::from(index / 8),
        1 << (7 - index % 8),
    )
}

/// A new chunk map file for `chunks` chunks: header and clear bits.
pub fn new_chunk_map(chunks: u32) -> Vec<u8> {
    let mut v = ChunkMapHeader { all_ready: false }.to_bytes();
    v.put_zeros(bitmap_len(chunks) as usize);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_is_little_endian() {
        let h = ChunkMapHeader { all_ready: true };
        let b = h.to_bytes();
        assert_eq!(b.len(), 4096);
        assert_eq!(
            &b[..16],
            [0x50, 0x41, 0x4D, 0x42, 1, 0, 0, 0, 0x50, 0x41, 0x4D, 0x43, 0x50, 0x41, 0x4D, 0x4D]
        );
        assert_eq!(ChunkMapHeader::decode_at(&b, 0).unwrap(), h);
        let mut bad = b.clone();
        bad[0] ^= 1;
        assert!(matches!(
            ChunkMapHeader::decode_at(&bad, 0),
            Err(DecodeError::BadMagic { .. })
        ));
        let mut bad = b;
        bad[4] = 2;
        assert!(matches!(
            ChunkMapHeader::decode_at(&bad, 0),
            Err(DecodeError::BadField {
                field: "version",
                ..
            })
        ));
    }

    #[test]
    fn bits_are_most_significant_first() {
        assert_eq!(bit_position(0), (4096, 0x80));
        assert_eq!(bit_position(7), (4096, 0x01));
        assert_eq!(bit_position(8), (4097, 0x80));
        assert_eq!(bitmap_len(9), 2);
        assert_eq!(new_chunk_map(9).len(), 4098);
    }
}
