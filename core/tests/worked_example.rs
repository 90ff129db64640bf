//! The worked example of `rafs-v6.md` §18, which was verified against the upstream builder:
//! our encoder must produce the same bytes.

// Tests are hosts: they read golden files from disk.
#![allow(clippy::disallowed_methods)]

use nydus_core::digest::sha256;
use nydus_core::memimage::{build, worked_example, MemOptions};
use nydus_core::model::Compressor;
use nydus_core::read::Filesystem;
use nydus_core::v6::check::check;
use nydus_core::v6::reader::Bootstrap;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[track_caller]
fn at(buf: &[u8], off: usize, expect: &str) {
    let e = hex(expect);
    assert_eq!(&buf[off..off + e.len()], &e[..], "bytes at {off:#x}");
}

#[test]
fn bootstrap_and_blob_match_upstream_byte_for_byte() {
    let img = build(
        &worked_example(),
        &MemOptions {
            compressor: Compressor::None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(img.blob.len(), 4118);
    assert_eq!(
        img.blob_info.blob_id,
        "350fea00b001c21bc5901eeb0cf2a04ab7a282b23fefce94b5b01c809a0fd779"
    );
    let b = &img.bootstrap;
    assert_eq!(b.len(), 20480);
    assert!(b[..0x400].iter().all(|&x| x == 0));
    at(b, 0x400, "e2 e1 f5 e0 00 00 00 00 00 00 00 40 0c 00 80 00");
    at(b, 0x410, "03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    at(b, 0x420, "00 00 00 00 01 00 00 00 02 00 00 00 00 00 00 00");
    at(b, 0x450, "0c 00 00 00 00 00 01 00 0b 00 00 00 00 00 00 00");
    at(b, 0x480, "15 00 00 01 00 00 00 00 00 10 00 00 00 00 00 00");
    at(b, 0x490, "00 01 00 00 00 00 10 00 00 40 00 00 00 00 00 00");
    at(b, 0x4a0, "50 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    assert_eq!(&b[0x580..0x5c0], img.blob_info.blob_id.as_bytes());
    at(b, 0x5c0, "01 00 00 00 80 00 00 00 00");
    assert_eq!(&b[0x1000..0x1040], img.blob_info.blob_id.as_bytes());
    at(b, 0x1040, "00 00 00 00 00 00 10 00 01 00 00 00 00 00 00 00");
    at(b, 0x1050, "00 00 00 00 01 00 00 40 16 10 00 00 00 00 00 00");
    at(b, 0x1060, "00 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    at(b, 0x1070, "06 00 00 00 00 00 00 00 10 00 00 00 00 00 00 00");
    at(b, 0x1080, "10 00 00 00 00 00 00 00 00");
    assert!(b[0x1100..0x3000].iter().all(|&x| x == 0));
    at(b, 0x3000, "05 00 00 00 ed 41 00 00 40 00 00 00 00 00 00 00");
    at(b, 0x3010, "03 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00");
    at(b, 0x3020, "00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00");
    at(b, 0x3040, "80 00 00 00 00 00 00 00 30 00 02 00");
    at(b, 0x304c, "80 00 00 00 00 00 00 00 31 00 02 00");
    at(b, 0x3058, "84 00 00 00 00 00 00 00 33 00 01 00");
    at(b, 0x3064, "87 00 00 00 00 00 00 00 3c 00 07 00");
    assert_eq!(&b[0x3070..0x3080], b"...hello.txtlink");
    at(b, 0x3080, "09 00 00 00 a4 81 00 00 06 00 00 00 00 00 00 00");
    at(b, 0x3090, "28 00 00 00 02 00 00 00 00 00 00 00 00 00 00 00");
    at(b, 0x30a0, "00 f1 53 65 00 00 00 00 00 00 00 00 01 00 00 00");
    at(b, 0x30c0, "00 00 01 00 00 00 00 00");
    at(b, 0x30e0, "05 00 00 00 ff a1 00 00 09 00 00 00 00 00 00 00");
    at(b, 0x30f0, "03 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00");
    at(b, 0x3100, "00 f1 53 65 00 00 00 00 00 00 00 00 01 00 00 00");
    assert_eq!(&b[0x3120..0x3129], b"hello.txt");
    assert!(b[0x3129..0x4000].iter().all(|&x| x == 0));
    at(b, 0x4000, "8e 4c 7c 1b 99 db fd 50 e7 a9 51 85 fe ad 5e e1");
    at(b, 0x4010, "44 8f a9 04 a2 fd d7 78 ea f5 f2 db fd 62 9a 99");
    at(b, 0x4020, "00 00 00 00 10 00 00 00 06 00 00 00 06 00 00 00");
    at(b, 0x4030, "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    at(b, 0x4040, "00 00 00 00 00 00 00 00 00 00 00 00 be d8 3d 35");
    assert!(b[0x4050..].iter().all(|&x| x == 0));

    // The golden file shared with the WASM build is exactly these bytes. Regenerate it (after
    // the assertions above pass) with NYDUS_BLESS=1.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/worked-example.boot"
    );
    if std::env::var_os("NYDUS_BLESS").is_some() {
        std::fs::write(path, b).unwrap();
    }
    let golden = std::fs::read(path).unwrap();
    assert_eq!(
        sha256(b),
        sha256(&golden),
        "tests/golden/worked-example.boot is stale"
    );
}

#[test]
fn the_reader_and_checker_accept_it() {
    let img = build(
        &worked_example(),
        &MemOptions {
            compressor: Compressor::None,
            ..Default::default()
        },
    )
    .unwrap();
    let boot = Bootstrap::open(img.bootstrap.clone()).unwrap();
    let rep = check(&boot);
    assert!(rep.findings.is_empty(), "{:?}", rep.findings);
    assert_eq!(rep.inodes, 3);
    let nid = nydus_core::read::lookup(&boot, b"/hello.txt")
        .unwrap()
        .unwrap();
    assert_eq!(nid, 132);
    let c = boot.all_chunks(nid).unwrap();
    let data = nydus_core::blob::reader::read_chunk(
        &img.blob,
        &img.blob_info,
        &c[0].chunk,
        boot.digester(),
    )
    .unwrap();
    assert_eq!(data, b"hello\n");
    assert_eq!(boot.symlink(135).unwrap(), b"hello.txt");
}

#[test]
fn nydusify_style_layer_matches_upstream_sizes() {
    // rafs-v6.md §18.8 (built from a tar upstream; the inlined bootstrap has flags 0x01000194).
    let mut entries = worked_example();
    entries[0].entry.attrs.mtime = 0;
    let img = build(
        &entries,
        &MemOptions {
            inline_meta: true,
            blob_toc: true,
            ..Default::default()
        },
    )
    .unwrap();
    let boot = Bootstrap::open(img.bootstrap.clone()).unwrap();
    assert_eq!(boot.flags(), 0x0100_0194);
    assert_eq!(boot.blobs()[0].blob_id, "x".repeat(64));
    assert_eq!(boot.blobs()[0].features, 0x7000_0023);
    assert_eq!(boot.blobs()[0].compressed_size, 5686);
    let inner = nydus_core::blob::reader::extract_inline_bootstrap(&img.blob).unwrap();
    assert_eq!(inner, img.bootstrap);
}
