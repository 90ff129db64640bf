//! Chunk processing: digest, compress, crc (a pure function the host runs in parallel).
