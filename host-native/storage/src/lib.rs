//! Where the bytes of images live for the native hosts, and the one way they are read back.
//!
//! - [`store`]: [`store::BlobStore`], one blob's bytes served by range from any thread (local
//!   files now; the S3, OSS and registry backends implement the same trait).
//! - [`local`]: [`local::Backend`] resolves a bootstrap's blob table to stores;
//!   [`local::Localfs`] is the localfs backend (a directory, extra directories, one file).
//! - [`reader`]: [`reader::ChunkReader`] carries out the core's read plans from many threads:
//!   merged range reads, every chunk verified before use, one fetch per chunk however many
//!   threads want it, an in-memory and an on-disk cache ([`blobcache`], upstream's layout).
//! - [`registry`]: [`registry::RegistryBackend`], blobs read by `Range` from a registry
//!   repository.
//! - [`ahead`]: many plans read in order on all cores (unpack, check, `nydusify check`).
//! - [`open`]: opening images (a bootstrap file read by range through [`cached`], or one
//!   inlined in a blob); [`source`]: local files as the core's byte sources; [`atomic`]:
//!   outputs that appear only when complete; [`config`]: the one backend configuration every
//!   `--backend-*` option is parsed into; [`sign`]: request signing for the object stores.

pub mod ahead;
pub mod atomic;
pub mod blobcache;
pub mod cached;
pub mod config;
pub mod local;
pub mod open;
pub mod reader;
pub mod registry;
pub mod sign;
pub mod source;
pub mod store;

pub use config::BackendConfig;
pub use local::Localfs;
pub use open::{open_image, Image};
pub use reader::{ChunkReader, ReaderOptions};
pub use registry::RegistryBackend;
pub use source::FileSource;

#[cfg(test)]
pub(crate) mod testimg {
    //! An image built in memory, its blob written to a directory, for the tests of this crate.

    use std::path::PathBuf;

    use nydus_core::memimage::{build, MemEntry, MemOptions};
    use nydus_core::model::{BlobInfo, Compressor};
    use nydus_core::rafs::Rafs;

    pub const CS: u32 = 0x1000;

    /// Distinct bytes for file `seed`.
    pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2654435761) >> 13) as u8 ^ seed)
            .collect()
    }

    pub struct Img {
        pub dir: tempfile::TempDir,
        pub boot: Rafs<Vec<u8>>,
        pub blobs: Vec<BlobInfo>,
        pub files: Vec<(String, Vec<u8>)>,
        pub blob_path: PathBuf,
    }

    /// Files `/f0`..: sizes given, chunk size 4 KiB, zstd.
    pub fn image(sizes: &[usize]) -> Img {
        let mut entries = vec![MemEntry::dir(b"/")];
        let mut files = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let p = format!("/f{i:03}");
            let d = pattern(n, i as u8);
            entries.push(MemEntry::file(p.as_bytes(), d.clone()));
            files.push((p, d));
        }
        let img = build(
            &entries,
            &MemOptions {
                chunk_size: CS,
                compressor: Compressor::Zstd,
                ..Default::default()
            },
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blob_path = dir.path().join(&img.blob_info.blob_id);
        std::fs::write(&blob_path, &img.blob).unwrap();
        let boot = Rafs::open(img.bootstrap).unwrap();
        let blobs = nydus_core::read::Filesystem::blobs(&boot).to_vec();
        Img {
            dir,
            boot,
            blobs,
            files,
            blob_path,
        }
    }
}
