//! Per-chunk compression (`blob.md` §1.4): `none`, one raw LZ4 block, one gzip member
//! (decode only) and one zstd frame at level 3.

use std::cell::RefCell;

use crate::error::{BuildError, DecodeError};
use crate::model::Compressor;

/// The zstd level upstream uses (the zstd default).
pub const ZSTD_LEVEL: i32 = 3;

// Per-thread zstd contexts. Pure: they hold no state between calls that affects output.
thread_local! {
    static ZSTD_CCTX: RefCell<zstd_safe::CCtx<'static>> = RefCell::new(zstd_safe::CCtx::create());
    static ZSTD_DCTX: RefCell<zstd_safe::DCtx<'static>> = RefCell::new(zstd_safe::DCtx::create());
}

/// Compresses `data` with `c`. The caller applies the "keep raw if not smaller" rule.
pub fn compress(c: Compressor, data: &[u8]) -> Result<Vec<u8>, BuildError> {
    match c {
        Compressor::None => Ok(data.to_vec()),
        Compressor::Lz4Block => Ok(lz4_flex::block::compress(data)),
        Compressor::Zstd => {
            let mut out = Vec::with_capacity(zstd_safe::compress_bound(data.len()));
            // The thread's context is reused (same output as a fresh one, without allocating
            // and clearing its tables for every chunk).
            ZSTD_CCTX
                .with(|c| c.borrow_mut().compress(&mut out, data, ZSTD_LEVEL))
                .map_err(|code| BuildError::Compress {
                    reason: format!("zstd: {}", zstd_safe::get_error_name(code)),
                })?;
            Ok(out)
        }
        Compressor::Gzip => Err(BuildError::InvalidOption {
            option: "compressor",
            reason: "gzip is only decoded (reference blobs), never written".into(),
        }),
    }
}

/// Decompresses `data`, which must expand to exactly `size` bytes. `what`/`offset` name the
/// stored bytes in errors.
pub fn decompress(
    c: Compressor,
    data: &[u8],
    size: usize,
    what: &'static str,
    offset: u64,
) -> Result<Vec<u8>, DecodeError> {
    let fail = |reason: String| DecodeError::Decompress {
        what,
        offset,
        reason,
    };
    // Reject a claimed size the stored bytes cannot possibly expand to, before allocating it
    // (a corrupt or hostile length must not cost gigabytes).
    if size as u64 > (data.len() as u64).saturating_mul(max_ratio(c)) {
        return Err(fail(format!(
            "{} stored bytes cannot expand to the claimed {size} bytes",
            data.len()
        )));
    }
    let out = match c {
        Compressor::None => data.to_vec(),
        Compressor::Lz4Block => {
            lz4_flex::block::decompress(data, size).map_err(|e| fail(format!("lz4: {e}")))?
        }
        Compressor::Zstd => {
            let mut out = Vec::with_capacity(size);
            let n = ZSTD_DCTX
                .with(|d| d.borrow_mut().decompress(&mut out, data))
                .map_err(|code| fail(format!("zstd: {}", zstd_safe::get_error_name(code))))?;
            out.truncate(n);
            out
        }
        Compressor::Gzip => gunzip(data, size).map_err(fail)?,
    };
    if out.len() != size {
        return Err(fail(format!(
            "expanded to {} bytes, expected {size}",
            out.len()
        )));
    }
    Ok(out)
}

/// The largest possible expansion of each format: zstd RLE blocks (4 bytes for 128 KiB),
/// LZ4 literal-length bytes (255 per byte), deflate (1032:1).
fn max_ratio(c: Compressor) -> u64 {
    match c {
        Compressor::None => 1,
        Compressor::Lz4Block => 256,
        Compressor::Gzip => 1040,
        Compressor::Zstd => 32 * 1024,
    }
}

/// Decodes one gzip member (RFC 1952) whose content is at most `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b || data[2] != 8 {
        return Err("not a gzip member (bad magic or method)".into());
    }
    let flags = data[3];
    let mut pos = 10usize;
    let short = || "gzip header is truncated".to_string();
    if flags & FEXTRA != 0 {
        let x = data.get(pos..pos + 2).ok_or_else(short)?;
        pos += 2 + u16::from_le_bytes([x[0], x[1]]) as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = data.get(pos..).ok_or_else(short)?;
            pos += rest.iter().position(|&b| b == 0).ok_or_else(short)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    let body = data
        .get(pos..data.len().saturating_sub(8))
        .ok_or_else(short)?;
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(body, limit)
        .map_err(|e| format!("deflate: {:?}", e.status))?;
    let trailer = &data[data.len() - 8..];
    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if isize != out.len() as u32 {
        return Err("gzip trailer size does not match the content".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        for c in [Compressor::None, Compressor::Lz4Block, Compressor::Zstd] {
            let z = compress(c, &data).unwrap();
            assert_eq!(decompress(c, &z, data.len(), "t", 0).unwrap(), data);
        }
    }

    #[test]
    fn wrong_size_and_garbage_are_errors() {
        let z = compress(Compressor::Zstd, b"hello hello hello hello").unwrap();
        assert!(decompress(Compressor::Zstd, &z, 5, "t", 0).is_err());
        assert!(decompress(Compressor::Zstd, b"garbage", 5, "t", 0).is_err());
        assert!(decompress(Compressor::Lz4Block, b"\xff\xff", 5, "t", 0).is_err());
        assert!(decompress(Compressor::Gzip, b"\x1f\x8b\x08", 5, "t", 0).is_err());
        // A claimed size no input of this length can produce is refused up front.
        assert!(decompress(Compressor::Zstd, &z, 1 << 40, "t", 0).is_err());
        assert!(decompress(Compressor::None, b"abc", 4, "t", 0).is_err());
    }

    #[test]
    fn gunzip_decodes_a_member() {
        // `printf hello | gzip -n`
        let gz = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9,
            0xc9, 0x07, 0x00, 0x86, 0xa6, 0x10, 0x36, 0x05, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            decompress(Compressor::Gzip, &gz, 5, "t", 0).unwrap(),
            b"hello"
        );
    }
}
