//! CRC-64/ECMA-182 as OSS reports it (`x-oss-hash-crc64ecma`, in decimal): the ECMA-182
//! polynomial, reflected, initial value and final XOR all ones (the catalogue's CRC-64/XZ).

use std::fmt;

use crc::{Crc, Digest, Table, CRC_64_XZ};

static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_XZ);

/// The reflected ECMA-182 polynomial.
const POLY_REFLECTED: u64 = 0xC96C_5795_D787_0F42;

/// The CRC-64 of `data`.
pub fn crc64(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

/// A streaming CRC-64: [`Crc64::update`] with consecutive pieces, [`Crc64::value`] at any
/// point.
#[derive(Clone)]
pub struct Crc64 {
    digest: Digest<'static, u64, Table<16>>,
    len: u64,
}

impl Crc64 {
    pub fn new() -> Self {
        Crc64 {
            digest: CRC64.digest(),
            len: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
        self.len += data.len() as u64;
    }

    /// The CRC of everything fed so far.
    pub fn value(&self) -> u64 {
        self.digest.clone().finalize()
    }

    /// How many bytes were fed.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64::new()
    }
}

impl fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crc64")
            .field("value", &self.value())
            .field("len", &self.len)
            .finish()
    }
}

/// The CRC of `a ‖ b` from `crc64(a)`, `crc64(b)` and `b`'s length (zlib's `crc32_combine`
/// for this polynomial): multipart parts hashed apart, or in parallel, give the object's CRC.
pub fn combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    if len_b == 0 {
        return crc_a;
    }
    // Operators in GF(2) that append 2^k zero bits to a CRC, squared up from one zero bit.
    let mut odd = [0u64; 64];
    odd[0] = POLY_REFLECTED;
    for (n, row) in odd.iter_mut().enumerate().skip(1) {
        *row = 1 << (n - 1);
    }
    let mut even = [0u64; 64];
    square(&mut even, &odd); // two zero bits
    square(&mut odd, &even); // four zero bits
    let mut crc = crc_a;
    let mut len = len_b;
    loop {
        // The first square gives one zero byte.
        square(&mut even, &odd);
        if len & 1 != 0 {
            crc = times(&even, crc);
        }
        len >>= 1;
        if len == 0 {
            break;
        }
        square(&mut odd, &even);
        if len & 1 != 0 {
            crc = times(&odd, crc);
        }
        len >>= 1;
        if len == 0 {
            break;
        }
    }
    crc ^ crc_b
}

fn times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 != 0 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn square(out: &mut [u64; 64], mat: &[u64; 64]) {
    for n in 0..64 {
        out[n] = times(mat, mat[n]);
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::sign::vectors::to_json;

    const VECTORS: &str = include_str!("vectors/crc64.json");

    /// `vectors/crc64.json`, fields in sorted order.
    #[derive(Debug, Deserialize, Serialize)]
    struct File {
        combine: Vec<Combine>,
        generator: String,
        pattern: String,
        values: Vec<Value>,
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct Combine {
        combined: String,
        crc_a: String,
        crc_b: String,
        len_b: u64,
        pattern_len: usize,
        split: usize,
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct Value {
        crc64: String,
        input: Input,
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct Input {
        pattern_len: Option<usize>,
        text: Option<String>,
    }

    /// Byte i is (i * 31 + 7) mod 251, as in `tests/sign_vectors.py`.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
    }

    #[test]
    fn oss2_vectors_byte_for_byte() {
        let mut file: File = serde_json::from_str(VECTORS).unwrap();
        for v in &mut file.values {
            let data = match (&v.input.text, v.input.pattern_len) {
                (Some(t), None) => t.as_bytes().to_vec(),
                (None, Some(n)) => pattern(n),
                _ => panic!("bad input {:?}", v.input),
            };
            let whole = crc64(&data);
            // Streaming in uneven pieces gives the same value.
            let mut h = Crc64::new();
            for piece in data.chunks(4093) {
                h.update(piece);
            }
            assert_eq!(h.value(), whole);
            assert_eq!(h.len(), data.len() as u64);
            assert_eq!(whole.to_string(), v.crc64, "{:?}", v.input);
            v.crc64 = whole.to_string();
        }
        for c in &mut file.combine {
            let data = pattern(c.pattern_len);
            let (a, b) = data.split_at(c.split);
            let (ca, cb) = (crc64(a), crc64(b));
            assert_eq!(ca.to_string(), c.crc_a);
            assert_eq!(cb.to_string(), c.crc_b);
            let combined = combine(ca, cb, b.len() as u64);
            assert_eq!(combined, crc64(&data));
            assert_eq!(combined.to_string(), c.combined, "{c:?}");
            c.combined = combined.to_string();
        }
        assert!(
            to_json(&file) == VECTORS,
            "re-serialized crc64.json differs"
        );
    }

    #[test]
    fn check_value() {
        // The catalogue's check value for CRC-64/XZ.
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
        assert!(Crc64::new().is_empty());
        assert_eq!(Crc64::default().value(), 0);
    }
}
