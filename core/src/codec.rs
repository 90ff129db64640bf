//! Explicit little-endian reading and writing of binary layouts.
//!
//! [`Reader`] walks a byte slice with bounds checks: every `take` either returns exactly the
//! bytes asked for or a [`DecodeError::Truncated`] naming the structure and offset. Writing goes
//! through the `put_*` helpers on `Vec<u8>`.

use crate::error::DecodeError;

/// A bounds-checked cursor over a byte slice holding one on-disk structure.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the file, for error messages.
    base: u64,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, which starts at absolute file offset `base` and holds `what`.
    pub fn new(buf: &'a [u8], base: u64, what: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    /// Absolute file offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what: self.what,
                offset: self.offset(),
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Takes the next `N` bytes as an array.
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Skips `n` bytes (reserved fields).
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    /// A sub-reader over the next `n` bytes.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        let base = self.offset();
        Ok(Reader::new(self.take(n)?, base, what))
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take_array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take_array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take_array()?))
    }

    /// Fails unless every byte has been consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                what: self.what,
                offset: self.offset(),
                count: self.remaining() as u64,
            });
        }
        Ok(())
    }
}

/// Little-endian append helpers for building structures.
pub trait PutLe {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    /// Appends `n` zero bytes.
    fn put_zeros(&mut self, n: usize);
    /// Appends `bytes` zero-padded (or failing debug assertion if longer) to `width` bytes.
    fn put_padded(&mut self, bytes: &[u8], width: usize);
}

impl PutLe for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
    fn put_padded(&mut self, bytes: &[u8], width: usize) {
        debug_assert!(bytes.len() <= width);
        let n = bytes.len().min(width);
        self.extend_from_slice(&bytes[..n]);
        self.put_zeros(width - n);
    }
}

/// An on-disk structure of fixed size that decodes from and encodes to bytes.
pub trait Codec: Sized {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Name used in error messages (as in the spec).
    const NAME: &'static str;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes from exactly `Self::SIZE` bytes at absolute offset `base`.
    fn decode_at(bytes: &[u8], base: u64) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, base, Self::NAME);
        let mut s = r.sub(Self::SIZE, Self::NAME)?;
        let v = Self::decode(&mut s)?;
        s.finish()?;
        Ok(v)
    }

    /// Encodes into a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::SIZE);
        self.encode(&mut v);
        debug_assert_eq!(
            v.len(),
            Self::SIZE,
            "{} encoded to a wrong size",
            Self::NAME
        );
        v
    }
}

/// `round_up(x, a)` for a power-of-two `a`.
pub const fn round_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

/// `round_down(x, a)` for a power-of-two `a`.
pub const fn round_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_with_offset() {
        let b = [1u8, 2, 3];
        let mut r = Reader::new(&b, 100, "thing");
        assert_eq!(r.u16().unwrap(), 0x0201);
        match r.u16() {
            Err(DecodeError::Truncated {
                what,
                offset,
                needed,
                available,
            }) => {
                assert_eq!((what, offset, needed, available), ("thing", 102, 2, 1));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn put_and_round() {
        let mut v = Vec::new();
        v.put_u32(0xE0F5E1E2);
        v.put_padded(b"ab", 4);
        assert_eq!(v, [0xE2, 0xE1, 0xF5, 0xE0, b'a', b'b', 0, 0]);
        assert_eq!(round_up(4097, 4096), 8192);
        assert_eq!(round_down(4097, 4096), 4096);
    }
}
