//! Nydus data blobs (spec blob.md): writer, compression-info table, ToC, cache files, reader.
