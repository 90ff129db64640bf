//! Per-chunk compression codecs (spec blob.md).
