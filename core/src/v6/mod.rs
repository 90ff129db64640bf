//! RAFS v6
