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
        Compressor::Gzip => gunzip_prefix(data, size).map_err(fail)?,
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

/// Length of a gzip member's header (RFC 1952: fixed part, FEXTRA, FNAME, FCOMMENT, FHCRC).
pub fn gzip_header_len(data: &[u8]) -> Result<usize, String> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    if data.len() < 10 || data[0] != 0x1f || data[1] != 0x8b || data[2] != 8 {
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
    if pos > data.len() {
        return Err(short());
    }
    Ok(pos)
}

/// Inflates the deflate stream at the start of `body` until it ends (`Ok(out, consumed)`) or,
/// with `stop_at`, until that many bytes are out. More than `limit` bytes of output is an
/// error. Bytes after the stream are not looked at.
fn inflate_raw(
    body: &[u8],
    limit: usize,
    stop_at: Option<usize>,
) -> Result<(Vec<u8>, usize), String> {
    use miniz_oxide::inflate::stream::{inflate, InflateState};
    use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};
    let mut state = InflateState::new_boxed(DataFormat::Raw);
    // One byte past the limit shows a stream that goes on beyond it.
    let want = stop_at.map_or(limit.saturating_add(1), |n| n.min(limit));
    let mut out = vec![0u8; want.min(1 << 20)];
    let (mut read, mut written) = (0usize, 0usize);
    loop {
        if written == out.len() {
            if stop_at.is_some() && written == want {
                return Ok((out, read));
            }
            if written >= want {
                return Err(format!("expands to more than {limit} bytes"));
            }
            out.resize((out.len() * 2).clamp(1 << 16, want), 0);
        }
        let r = inflate(
            &mut state,
            &body[read..],
            &mut out[written..],
            MZFlush::None,
        );
        read += r.bytes_consumed;
        written += r.bytes_written;
        match r.status {
            Ok(MZStatus::StreamEnd) => {
                out.truncate(written);
                return Ok((out, read));
            }
            Ok(_) | Err(MZError::Buf) if r.bytes_consumed > 0 || r.bytes_written > 0 => {}
            Ok(_) | Err(MZError::Buf) => {
                if written == out.len() {
                    continue;
                }
                return Err(format!(
                    "deflate stream is cut after {written} bytes of output"
                ));
            }
            Err(e) => return Err(format!("deflate: {e:?}")),
        }
    }
}

/// Decodes one whole gzip member (RFC 1952) whose content is at most `limit` bytes; the
/// trailer's size must match.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let (out, end) = gunzip_member(data, limit)?;
    let trailer = data
        .get(end..end + 8)
        .ok_or_else(|| "gzip trailer is missing".to_string())?;
    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if isize != out.len() as u32 {
        return Err("gzip trailer size does not match the content".into());
    }
    Ok(out)
}

/// Decodes the gzip member at the start of `data` (at most `limit` bytes of content): its
/// content and where its deflate stream ends (the trailer's offset). Later bytes are ignored.
pub fn gunzip_member(data: &[u8], limit: usize) -> Result<(Vec<u8>, usize), String> {
    let start = gzip_header_len(data)?;
    let (out, used) = inflate_raw(&data[start..], limit, None)?;
    Ok((out, start + used))
}

/// The first `size` bytes of the content of the gzip member at the start of `data`: how an
/// eStargz chunk is read, whose member may go on (tar padding, the next headers) and whose
/// stored range is an estimate that may end before the member does.
pub fn gunzip_prefix(data: &[u8], size: usize) -> Result<Vec<u8>, String> {
    let start = gzip_header_len(data)?;
    let (out, _) = inflate_raw(&data[start..], size, Some(size))?;
    if out.len() != size {
        return Err(format!(
            "the gzip member holds {} bytes, expected at least {size}",
            out.len()
        ));
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

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut g = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
        g.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        g.extend(crc32fast::hash(data).to_le_bytes());
        g.extend((data.len() as u32).to_le_bytes());
        g
    }

    /// An eStargz chunk: the first bytes of a member that goes on (and of a stored range that
    /// may end before the member or run into the next one).
    #[test]
    fn gzip_prefixes() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut g = gzip(&data);
        assert_eq!(
            decompress(Compressor::Gzip, &g, 1000, "t", 0).unwrap(),
            &data[..1000]
        );
        assert_eq!(
            decompress(Compressor::Gzip, &g, data.len(), "t", 0).unwrap(),
            data
        );
        assert!(decompress(Compressor::Gzip, &g, data.len() + 1, "t", 0).is_err());
        let whole = g.len();
        g.extend(gzip(b"next member"));
        assert_eq!(
            gunzip_member(&g, 1 << 20).unwrap(),
            (data.clone(), whole - 8)
        );
        assert!(gunzip(&g[..whole - 3], 1 << 20).is_err());
        assert!(gunzip_member(&g, 1000).is_err());
        // A range cut inside the deflate stream is an error, not short output.
        assert!(decompress(Compressor::Gzip, &g[..200], data.len(), "t", 0).is_err());
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
