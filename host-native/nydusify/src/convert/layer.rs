//! One layer of a conversion: taken from the build cache by its source chain id, or streamed
//! from the source through decompression into a layer build (a blob with its bootstrap
//! inlined, as upstream's per-layer `create -t tar-rafs --blob-inline-meta`), uploaded while
//! it is built when the target is a registry, and recorded in the build cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures_util::{StreamExt, TryStreamExt};
use nydus_core::oci::bootstrap_layer;
use nydus_core::oci::manifest::Descriptor;
use nydus_core::read::Filesystem;
use nydus_host_image::create::{self, BlobSink, Plan};
use nydus_host_image::tarsrc;
use serde_json::{json, Value};

use super::Job;
use crate::backend::BlobDest;
use crate::cache::{self, BuildCache, Record};
use crate::store::Store;
use crate::stream::ChannelSink;

/// Layers converted at once.
const PARALLEL_LAYERS: usize = 2;

/// One layer of a manifest, converted or from the cache.
pub(super) struct LayerResult {
    pub built: create::Built,
    /// The blob is already in the target (uploaded while built).
    pub already_pushed: bool,
    pub from_cache: bool,
    pub record: Option<Record>,
    pub seconds: f64,
}

impl Job {
    /// Converts the layers of one manifest, [`PARALLEL_LAYERS`] at a time (pulls overlap
    /// builds when bandwidth, not CPU, is the limit); results come in layer order.
    pub(super) async fn convert_layers(
        &self,
        layers: &[Descriptor],
        chains: Option<Vec<String>>,
        dir: &Path,
    ) -> Result<Vec<LayerResult>> {
        let n = layers.len();
        futures_util::stream::iter(layers.iter().enumerate())
            .map(|(i, l)| {
                let chain = chains.as_ref().map(|c| c[i].clone());
                async move { self.obtain_layer(i, n, l, chain, dir).await }
            })
            .buffered(PARALLEL_LAYERS)
            .try_collect()
            .await
    }

    /// One layer from the build cache or converted (and recorded in the cache).
    async fn obtain_layer(
        &self,
        i: usize,
        n: usize,
        l: &Descriptor,
        chain: Option<String>,
        dir: &Path,
    ) -> Result<LayerResult> {
        let t = Instant::now();
        let cached = match &chain {
            Some(c) => self.cached_layer(c).await,
            None => None,
        };
        if let Some((built, rec)) = cached {
            log::info!(
                "layer {}/{n} {}: reused from the build cache",
                i + 1,
                l.digest
            );
            // Used records move to the front of the cache.
            return Ok(LayerResult {
                built,
                already_pushed: false,
                from_cache: true,
                record: Some(rec),
                seconds: t.elapsed().as_secs_f64(),
            });
        }
        let label = format!("layer {}/{n}", i + 1);
        let (built, pushed) = self.convert_layer(l, dir, &label).await?;
        let record = match &chain {
            Some(c) => Some(self.cache_record(c, &built).await?),
            None => None,
        };
        Ok(LayerResult {
            built,
            already_pushed: pushed,
            from_cache: false,
            record,
            seconds: t.elapsed().as_secs_f64(),
        })
    }

    /// Chain ids of the source layers, when the build cache is used and the config's diff ids
    /// match the layers.
    pub(super) fn chain_ids(&self, config: &Value, layers: usize) -> Option<Vec<String>> {
        self.cache.as_ref()?;
        let ids: Vec<String> = config
            .pointer("/rootfs/diff_ids")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()?;
        if ids.len() != layers {
            log::warn!(
                "the source config's diff ids do not match its layers: build cache not used",
            );
            return None;
        }
        Some(cache::chain_ids(&ids))
    }

    /// The fingerprint of the settings a layer build depends on, kept with cache records.
    fn settings_key(&self) -> String {
        let mut pats = self.settings.patterns.join("\n");
        if let Some((p, _)) = &self.settings.chunk_dict {
            // Another dictionary gives other blobs.
            let d = std::fs::read(p)
                .map(|b| nydus_core::digest::sha256(&b).to_hex())
                .unwrap_or_default();
            pats.push_str(&format!("\nchunk-dict {d}"));
        }
        format!(
            "{}:{:#x}:{}",
            self.settings.compressor.name(),
            self.settings.chunk_size,
            nydus_core::digest::sha256(pats.as_bytes()).to_hex()
        )
    }

    /// A layer converted before, from the build cache (`None` on a miss, or when the record is
    /// unusable: another build setting, a missing or damaged layer).
    async fn cached_layer(&self, chain: &str) -> Option<(create::Built, Record)> {
        let cache = self.cache.as_ref()?.lock().await;
        let rec = cache.lookup(chain)?.clone();
        let store = cache.store.clone();
        drop(cache);
        let attempt = async {
            if rec.bootstrap.annotation(SETTINGS_ANNOTATION) != Some(&self.settings_key()) {
                bail!("built with other settings");
            }
            let gz = store.blob_bytes(&rec.bootstrap.digest).await?;
            let files = bootstrap_layer::extract_files(&gz, 1 << 30)
                .map_err(|e| anyhow!("bootstrap layer {}: {e}", rec.bootstrap.digest))?;
            let id = rec.blob.digest_hex().to_string();
            let find = |n: &str| files.iter().find(|(f, _)| f == n).map(|(_, d)| d.clone());
            let bootstrap = find(nydus_core::oci::BOOTSTRAP_PATH)
                .ok_or_else(|| anyhow!("no bootstrap in {}", rec.bootstrap.digest))?;
            let blob_meta = find(&format!("image/{id}.blob.meta")).unwrap_or_default();
            let rafs = nydus_core::rafs::Rafs::open(bootstrap.clone())
                .map_err(|e| anyhow!("cached bootstrap: {e}"))?;
            if rafs.compressor() != self.settings.compressor
                || rafs.chunk_size() != self.settings.chunk_size
            {
                bail!("built with another compressor or chunk size");
            }
            if !store.has_blob(&rec.blob.digest).await? {
                bail!("blob {} is missing", rec.blob.digest);
            }
            Ok::<_, anyhow::Error>(create::Built {
                bootstrap,
                bootstrap_path: None,
                blob_id: id,
                blob_size: rec.blob.size,
                table_ids: Vec::new(),
                blob_meta,
                trace: json!({"from_cache": true}),
            })
        };
        match attempt.await {
            Ok(b) => Some((b, rec)),
            Err(e) => {
                log::warn!("build cache record {chain} not used: {e:#}");
                None
            }
        }
    }

    /// Pushes the cache layer of a newly built layer (its bootstrap) and returns its record.
    async fn cache_record(&self, chain: &str, b: &create::Built) -> Result<Record> {
        let cache = self
            .cache
            .as_ref()
            .expect("called with a cache")
            .lock()
            .await;
        let metas = if b.blob_meta.is_empty() {
            Vec::new()
        } else {
            vec![(b.blob_id.clone(), b.blob_meta.clone())]
        };
        let layer = bootstrap_layer::build(&b.bootstrap, &metas);
        cache
            .store
            .push_blob_bytes(&layer.digest, &layer.gz)
            .await?;
        let mut boot =
            cache.bootstrap_desc(chain, &layer.digest, layer.gz.len() as u64, &layer.diff_id);
        boot.annotations
            .insert(SETTINGS_ANNOTATION.to_string(), self.settings_key());
        Ok(Record {
            chain_id: chain.to_string(),
            bootstrap: boot,
            blob: BuildCache::blob_desc(chain, &format!("sha256:{}", b.blob_id), b.blob_size),
        })
    }

    /// Streams one source layer through decompression into a layer build; the blob lands in
    /// `dir` named by its digest. A failed pull (connection lost, digest mismatch) is retried
    /// from the start.
    /// Converts a layer; the flag says whether its blob is already in the target.
    async fn convert_layer(
        &self,
        l: &Descriptor,
        dir: &Path,
        label: &str,
    ) -> Result<(create::Built, bool)> {
        let mut attempt = 0u32;
        loop {
            match self.try_convert_layer(l, dir, label).await {
                Ok(b) => return Ok(b),
                Err(LayerError::Pull(e)) if attempt < self.src.retries() => {
                    attempt += 1;
                    log::warn!(
                        "{e:#}; converting layer {} again (retry {attempt})",
                        l.digest
                    );
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
                Err(LayerError::Pull(e)) | Err(LayerError::Build(e)) => return Err(e),
            }
        }
    }

    async fn try_convert_layer(
        &self,
        l: &Descriptor,
        dir: &Path,
        label: &str,
    ) -> Result<(create::Built, bool), LayerError> {
        let (pull, reader) = self.src.blob_reader(&l.digest).map_err(LayerError::Build)?;
        let bar = progress_bar(l.size, label);
        let reader = Counted {
            inner: reader,
            bar: bar.clone(),
        };
        let mut plan = Plan::layer(
            dir.to_path_buf(),
            self.settings.compressor,
            self.settings.chunk_size,
        );
        if self.settings.fs_version == 5 {
            // RAFS v5 layers: the bootstrap inlined after the data, no ci table or ToC (what
            // upstream's `create -t tar-rafs --fs-version 5 --blob-inline-meta` writes).
            plan.v5 = true;
            plan.blob_toc = false;
        }
        plan.chunk_dict = self.settings.chunk_dict.as_ref().map(|(p, _)| p.clone());
        // Into a registry, the blob goes up while it is built (chunked upload; the digest is
        // named at the end). If that fails, the finished file is uploaded instead.
        // Into a bucket, the parts go up as they are written (read back from the blob file)
        // into a temporary object copied to the blob's key at the end; if that fails, the
        // finished file is uploaded instead.
        let mut tee: Option<Box<dyn BlobSink>> = None;
        let mut to_bucket = None;
        let stream_to = match (&self.dst, &self.settings.backend) {
            (Store::Registry { reg, repo }, None) => {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tee = Some(Box::new(ChannelSink::new(tx)));
                Some((reg.clone(), repo.clone(), rx))
            }
            (_, Some(d @ BlobDest::Bucket(_))) => {
                let what = format!(
                    "convert {} v{} {} {}",
                    l.digest,
                    self.settings.fs_version,
                    self.settings.compressor.name(),
                    self.settings.chunk_size
                );
                if let Some((upload, sink)) = d.streamed(&what) {
                    tee = Some(sink);
                    to_bucket = Some(upload);
                }
                None
            }
            _ => None,
        };
        let piece = self.settings.stream_piece;
        let upload = async move {
            match stream_to {
                Some((reg, repo, rx)) => Some(reg.push_blob_stream(&repo, rx, piece).await),
                None => None,
            }
        };
        let patterns = self.settings.patterns.clone();
        let shown = format!("layer {}", l.digest);
        let build = tokio::task::spawn_blocking(move || {
            let input = tarsrc::decompress(Box::new(reader), &shown)?;
            plan.source = PathBuf::from(shown);
            create::build(&plan, &patterns, Some(input), tee)
        });
        let (pulled, built, streamed) = tokio::join!(pull, build, upload);
        bar.finish_and_clear();
        pulled.map_err(LayerError::Pull)?;
        let built = built
            .map_err(|e| LayerError::Build(anyhow!("the layer build task failed: {e}")))?
            .map_err(LayerError::Build)?;
        let mut pushed = false;
        if let Some(upload) = to_bucket {
            let id = built.blob_id.clone();
            let (size, force) = (built.blob_size, self.settings.backend_force_push);
            match tokio::task::spawn_blocking(move || upload.finish(&id, size, force)).await {
                Ok(Some(up)) => {
                    log::info!(
                        "blob sha256:{} {} {}",
                        built.blob_id,
                        if up.skipped {
                            "already in"
                        } else {
                            "streamed to"
                        },
                        up.location
                    );
                    pushed = true;
                }
                Ok(None) => {}
                Err(e) => log::warn!(
                    "the streamed upload of layer {} failed ({e}); uploading it as a whole",
                    l.digest
                ),
            }
        }
        match (streamed, &self.dst) {
            (Some(Ok((loc, sent))), Store::Registry { reg, repo }) if sent == built.blob_size => {
                let digest = format!("sha256:{}", built.blob_id);
                match reg.commit_upload(repo, &loc, &digest).await {
                    Ok(()) => pushed = true,
                    Err(e) => log::warn!("{e:#}; uploading blob {digest} again as a whole"),
                }
            }
            (Some(Err(e)), _) => log::warn!(
                "streaming the blob of layer {} failed ({e:#}); uploading it as a whole",
                l.digest
            ),
            _ => {}
        }
        Ok((built, pushed))
    }
}

/// Our annotation on cache bootstrap layers: the build settings (compressor, chunk size,
/// prefetch patterns) the record was made with; records without it are checked by their
/// bootstrap's compressor and chunk size.
const SETTINGS_ANNOTATION: &str = "dev.nydus-rs.build-settings";

/// A progress bar over a layer's compressed bytes on a terminal; hidden otherwise (the log
/// lines say the same).
fn progress_bar(len: u64, label: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

/// Counts what is read into a progress bar.
struct Counted<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

enum LayerError {
    /// Fetching the layer failed (worth a retry).
    Pull(anyhow::Error),
    /// The layer is bad or the build failed.
    Build(anyhow::Error),
}
