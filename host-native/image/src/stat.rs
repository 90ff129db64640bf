//! `nydus-image stat`: file, chunk and deduplication statistics over one or more bootstraps,
//! and of a target bootstrap after deduplication against them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nydus_core::digest::Digest;
use nydus_core::stats::{accumulate, image_stat, ImageStat};
use nydus_host_storage::{open_image, Image};

fn stat_one(img: &Image) -> Result<ImageStat> {
    image_stat(&img.boot, &img.path.display().to_string())
        .with_context(|| format!("{}: walking the filesystem", img.path.display()))
}

fn add(img: &Image, s: &mut ImageStat, seen: &mut HashMap<Digest, (u64, u64)>) -> Result<()> {
    accumulate(&img.boot, s, seen)
        .with_context(|| format!("{}: walking the filesystem", img.path.display()))
}

/// Every file in `dir` that opens as a bootstrap, sorted by name; others are skipped.
pub fn bootstraps_in(dir: &Path) -> Result<Vec<Image>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    Ok(paths.iter().filter_map(|p| open_image(p).ok()).collect())
}

/// Statistics of a set of images.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Per image, in the order given.
    pub images: Vec<ImageStat>,
    /// Over all of them, chunks counted once.
    pub total: ImageStat,
    /// The target after deduplication against all the images.
    pub target: Option<ImageStat>,
}

/// Statistics of `images`, their total, and `target` deduplicated against them.
pub fn stat(images: &[Image], target: Option<&Image>) -> Result<Stats> {
    let per_image: Vec<ImageStat> = images.iter().map(stat_one).collect::<Result<_>>()?;
    let mut total = ImageStat {
        bootstrap: "(all)".into(),
        ..Default::default()
    };
    let mut seen = HashMap::new();
    for img in images {
        add(img, &mut total, &mut seen)?;
    }
    // The target after deduplication against everything else.
    let target = match target {
        Some(t) => {
            let mut s = ImageStat {
                bootstrap: t.path.display().to_string(),
                ..Default::default()
            };
            add(t, &mut s, &mut seen)?;
            Some(s)
        }
        None => None,
    };
    Ok(Stats {
        images: per_image,
        total,
        target,
    })
}
