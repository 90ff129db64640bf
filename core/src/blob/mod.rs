//! Nydus data blobs (`blob.md`).
