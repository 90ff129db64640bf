//! Chunk digests (`blob.md` §1.2) and hex helpers.

use std::fmt;

/// The digest algorithm of chunks (and of v5 inode digests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Digester {
    /// BLAKE3-256, code 0, the default.
    #[default]
    Blake3,
    /// SHA-256, code 1.
    Sha256,
}

impl Digester {
    /// The on-disk code used in the blob table.
    pub fn code(self) -> u32 {
        match self {
            Digester::Blake3 => 0,
            Digester::Sha256 => 1,
        }
    }
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Digester::Blake3),
            1 => Some(Digester::Sha256),
            _ => None,
        }
    }
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Digester::Blake3 => "blake3",
            Digester::Sha256 => "sha256",
        }
    }
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "blake3" => Some(Digester::Blake3),
            "sha256" => Some(Digester::Sha256),
            _ => None,
        }
    }
    /// Digest of `data`.
    pub fn digest(self, data: &[u8]) -> Digest {
        match self {
            Digester::Blake3 => Digest(*blake3::hash(data).as_bytes()),
            Digester::Sha256 => sha256(data),
        }
    }
}

/// A 32-byte digest (chunk id, blob id, ToC digest).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let b = unhex(s)?;
        Some(Digest(b.try_into().ok()?))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest(sha2::Sha256::digest(data).into())
}

/// Incremental SHA-256 (blob ids over streamed bytes).
#[derive(Clone, Default)]
pub struct Sha256Stream(sha2::Sha256);

impl fmt::Debug for Sha256Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha256Stream")
    }
}

impl Sha256Stream {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        self.0.update(data);
    }
    pub fn finish(self) -> Digest {
        use sha2::Digest as _;
        Digest(self.0.finalize().into())
    }
}

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Parses hex (either case); `None` on odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let v = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(v(p[0])? << 4 | v(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake3_of_hello_matches_spec_worked_example() {
        // rafs-v6.md §18.7: BLAKE3("hello\n") starts 8e 4c 7c 1b.
        let d = Digester::Blake3.digest(b"hello\n");
        assert_eq!(&d.0[..4], &[0x8e, 0x4c, 0x7c, 0x1b]);
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut s = Sha256Stream::new();
        s.update(b"a");
        s.update(b"bc");
        assert_eq!(s.finish(), sha256(b"abc"));
    }
}
