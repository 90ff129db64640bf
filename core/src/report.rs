//! The checker's report: every finding, not just the first.

use std::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Upstream would accept it, but it is unusual (e.g. a quirk of older builders).
    Warning,
    /// The image violates the format: upstream or the kernel may reject it or misread data.
    Error,
}

/// One problem found in an image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Where: a path in the image, a structure name, or a blob id.
    pub location: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{s}: {}: {}", self.location, self.message)
    }
}

/// Everything a check found, plus what it covered.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Inodes (tree entries) visited.
    pub inodes: u64,
    /// Chunk references checked against the tables.
    pub chunks: u64,
    /// Chunks whose data was read back and verified by digest.
    pub chunks_verified: u64,
}

impl Report {
    pub fn error(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            severity: Severity::Error,
            location: location.into(),
            message: message.into(),
        });
    }
    pub fn warning(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            location: location.into(),
            message: message.into(),
        });
    }
    /// Whether there is no error (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.findings.iter().all(|f| f.severity != Severity::Error)
    }
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
}
