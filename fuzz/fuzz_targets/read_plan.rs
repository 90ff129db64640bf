//! A round trip, not only a no-panic check: a random tree (files of random sizes and contents,
//! nested directories, symlinks) is built in memory as RAFS v5 or v6 with a random compressor
//! and chunk size, decoded, and random ranges of its files are read through read plans; every
//! range must equal the source bytes.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use nydus_core::memimage::{build, MemEntry, MemOptions};
use nydus_core::model::Compressor;
use nydus_core::rafs::Rafs;
use nydus_core::read::exec::{read_to_vec, BlobLayout};

/// File content: runs of repeated bytes (compressible) mixed with noise, so every compressor
/// path (stored raw, compressed) is taken.
fn content(u: &mut Unstructured, size: usize) -> Result<Vec<u8>> {
    let mut v = Vec::with_capacity(size);
    let mut seed = u.arbitrary::<u32>()? | 1;
    while v.len() < size {
        let run = (u.int_in_range(1..=4096u32)? as usize).min(size - v.len());
        if u.arbitrary::<bool>()? {
            let b = u.arbitrary::<u8>()?;
            v.extend(std::iter::repeat_n(b, run));
        } else {
            for _ in 0..run {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                v.push(seed as u8);
            }
        }
    }
    Ok(v)
}

fn run(u: &mut Unstructured) -> Result<()> {
    let v5 = u.arbitrary::<bool>()?;
    let compressor = *u.choose(&[Compressor::Zstd, Compressor::None, Compressor::Lz4Block])?;
    let chunk_size = *u.choose(&[0x1000u32, 0x1000, 0x2000, 0x10000])?;
    let mut entries = vec![MemEntry::dir(b"/")];
    let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
    let mut files: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let n = u.int_in_range(0..=16u32)?;
    for i in 0..n {
        let parent = u.choose(&dirs)?.clone();
        let mut path = parent.clone();
        path.push(b'/');
        path.extend_from_slice(format!("e{i}").as_bytes());
        match u.int_in_range(0..=9u8)? {
            0..=1 => {
                entries.push(MemEntry::dir(&path));
                dirs.push(path);
            }
            2 => entries.push(MemEntry::symlink(&path, b"target")),
            _ => {
                let size = match u.int_in_range(0..=3u8)? {
                    0 => u.int_in_range(0..=16u32)? as usize,
                    1 => chunk_size as usize * u.int_in_range(1..=4u32)? as usize,
                    _ => u.int_in_range(0..=3 * chunk_size)? as usize,
                };
                let data = content(u, size)?;
                entries.push(MemEntry::file(&path, data.clone()));
                files.push((path, data));
            }
        }
    }
    let img = build(
        &entries,
        &MemOptions {
            compressor,
            chunk_size,
            v5,
            ..Default::default()
        },
    )
    .expect("a valid tree builds");
    let boot = Rafs::open(img.bootstrap.clone()).expect("what we build decodes");
    assert!(boot.check().is_ok(), "{:?}", boot.check().findings);
    if files.is_empty() {
        return Ok(());
    }
    for _ in 0..u.int_in_range(1..=16u32)? {
        let (path, data) = u.choose(&files)?;
        let size = data.len() as u64;
        let offset = u.int_in_range(0..=size + 8)?;
        let len = u.int_in_range(0..=size + 8)?;
        let nid = boot.lookup(path).expect("lookup").expect("the file is there");
        let plan = boot.plan(nid, offset, len).expect("plan");
        let got = read_to_vec(&plan, |_| Ok((img.blob.as_slice(), BlobLayout::Stored)))
            .expect("read");
        let s = offset.min(size) as usize;
        let e = offset.saturating_add(len).min(size) as usize;
        assert_eq!(got, &data[s..e], "{} {offset}+{len}", String::from_utf8_lossy(path));
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
