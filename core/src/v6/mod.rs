//! RAFS v6 bootstrap (spec rafs-v6.md): on-disk structures, layout, writer, reader, checker.
