//! Prefetch lists (`hooks-optimize-commit.md` §2): the files, and optionally the byte ranges
//! of them, that a container reads while it starts. `nydus-image optimize` and `nydusify
//! optimize` gather those bytes into one blob; the mount's `--record-prefetch` writes what a
//! container really read in the same form.
//!
//! Two spellings are accepted:
//! - upstream's JSON, `{"version": "v1", "files": [{"path": "/p", "ranges": [[offset, length],
//!   ...]}]}` (no `ranges`: the whole file);
//! - the text form, one file a line: `/path/to/file start-end, start-end, ...`, where each
//!   range is half-open (`0-4096` is the first 4096 bytes); a line holding only a path means
//!   the whole file; blank lines and lines starting with `#` are ignored.
//!
//! Parsing is strict about syntax (a malformed line or document is an error naming the line)
//! and lenient about content the way upstream is: a relative path or an empty range is
//! skipped with a [`Warning`].

use serde::{Deserialize, Serialize};

/// The only JSON version defined.
pub const PREFETCH_JSON_VERSION: &str = "v1";

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchFile {
    /// Absolute path in the image.
    pub path: String,
    /// `(offset, length)` byte ranges, in the order given; `None` is the whole file.
    pub ranges: Option<Vec<(u64, u64)>>,
}

/// A parsed prefetch list, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefetchList {
    pub files: Vec<PrefetchFile>,
}

/// A listed item that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line (text form) or file index (JSON form).
    pub at: usize,
    pub message: String,
}

/// Why a prefetch list cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefetchListError {
    /// The document is not valid UTF-8.
    NotUtf8,
    /// The JSON form does not parse.
    Json(String),
    /// The JSON form has a version other than `v1`.
    Version(String),
    /// A text line is malformed.
    Line { line: usize, problem: String },
}

impl std::fmt::Display for PrefetchListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotUtf8 => write!(f, "the prefetch list is not UTF-8 text"),
            Self::Json(e) => write!(f, "the prefetch list is not valid JSON: {e}"),
            Self::Version(v) => write!(
                f,
                "prefetch list version {v:?} is not supported (expected {PREFETCH_JSON_VERSION:?})"
            ),
            Self::Line { line, problem } => write!(f, "line {line}: {problem}"),
        }
    }
}

impl std::error::Error for PrefetchListError {}

#[derive(Deserialize, Serialize)]
struct JsonList {
    version: String,
    files: Vec<JsonFile>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ranges: Option<Vec<(u64, u64)>>,
}

/// Parses either form (JSON when the first non-blank byte is `{`).
pub fn parse(bytes: &[u8]) -> Result<(PrefetchList, Vec<Warning>), PrefetchListError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PrefetchListError::NotUtf8)?;
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_text(text)
    }
}

fn parse_json(text: &str) -> Result<(PrefetchList, Vec<Warning>), PrefetchListError> {
    let j: JsonList =
        serde_json::from_str(text).map_err(|e| PrefetchListError::Json(e.to_string()))?;
    if j.version != PREFETCH_JSON_VERSION {
        return Err(PrefetchListError::Version(j.version));
    }
    let mut out = PrefetchList::default();
    let mut warnings = Vec::new();
    for (i, f) in j.files.into_iter().enumerate() {
        let at = i + 1;
        if let Some(file) = checked(at, f.path, f.ranges, &mut warnings) {
            out.files.push(file);
        }
    }
    Ok((out, warnings))
}

/// Keeps absolute paths and non-empty ranges; warns about the rest.
fn checked(
    at: usize,
    path: String,
    ranges: Option<Vec<(u64, u64)>>,
    warnings: &mut Vec<Warning>,
) -> Option<PrefetchFile> {
    if !path.starts_with('/') {
        warnings.push(Warning {
            at,
            message: format!("{path:?} is not an absolute path: skipped"),
        });
        return None;
    }
    let ranges = ranges.map(|rs| {
        rs.into_iter()
            .filter(|&(off, len)| {
                let keep = len > 0 && off.checked_add(len).is_some();
                if !keep {
                    warnings.push(Warning {
                        at,
                        message: format!(
                            "{path}: range [{off}, {len}] is empty or overflows: skipped"
                        ),
                    });
                }
                keep
            })
            .collect::<Vec<_>>()
    });
    if ranges.as_ref().is_some_and(Vec::is_empty) {
        warnings.push(Warning {
            at,
            message: format!("{path}: no usable range: skipped"),
        });
        return None;
    }
    Some(PrefetchFile { path, ranges })
}

/// `start-end` (half-open) as `(offset, length)`.
fn text_range(s: &str) -> Option<Result<(u64, u64), String>> {
    let (a, b) = s.trim().split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    Some(if b > a {
        Ok((a, b - a))
    } else {
        Err(format!("range {a}-{b} ends before it starts"))
    })
}

/// A comma-separated range list, or `None` if `s` is not one.
fn text_ranges(s: &str) -> Option<Result<Vec<(u64, u64)>, String>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match text_range(part)? {
            Ok(r) => out.push(r),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(out))
}

fn parse_text(text: &str) -> Result<(PrefetchList, Vec<Warning>), PrefetchListError> {
    let mut out = PrefetchList::default();
    let mut warnings = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        // The ranges are the longest tail, after a blank, that reads as a range list; a path
        // may itself hold blanks.
        let mut split = None;
        for (at, ch) in l.char_indices() {
            if !ch.is_whitespace() {
                continue;
            }
            if let Some(r) = text_ranges(&l[at..]) {
                split = Some((at, r));
                break;
            }
        }
        let (path, ranges) = match split {
            Some((at, Ok(r))) => (l[..at].trim_end().to_string(), Some(r)),
            Some((_, Err(problem))) => return Err(PrefetchListError::Line { line, problem }),
            None => {
                if l.contains(char::is_whitespace) && l.ends_with(|c: char| c.is_ascii_digit()) {
                    // Looks like an attempt at ranges that did not parse: say so rather than
                    // taking the whole line as a path.
                    let tail = l.rsplit(char::is_whitespace).next().unwrap_or_default();
                    if tail.contains('-') {
                        return Err(PrefetchListError::Line {
                            line,
                            problem: format!("cannot read the ranges in {l:?} (expected start-end, start-end, ...)"),
                        });
                    }
                }
                (l.to_string(), None)
            }
        };
        if let Some(f) = checked(line, path, ranges, &mut warnings) {
            out.files.push(f);
        }
    }
    Ok((out, warnings))
}

/// The JSON form of `list` (what `--record-prefetch` writes).
pub fn to_json(list: &PrefetchList) -> String {
    let j = JsonList {
        version: PREFETCH_JSON_VERSION.into(),
        files: list
            .files
            .iter()
            .map(|f| JsonFile {
                path: f.path.clone(),
                ranges: f.ranges.clone(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&j).expect("a prefetch list always serializes")
}

/// Sorts and merges overlapping or touching `(offset, length)` ranges.
pub fn coalesce(ranges: &mut Vec<(u64, u64)>) {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(off, len) in ranges.iter() {
        let end = off.saturating_add(len);
        match out.last_mut() {
            Some((o, l)) if off <= *o + *l => *l = (*o + *l).max(end) - *o,
            _ => out.push((off, len)),
        }
    }
    *ranges = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_with_and_without_ranges() {
        let (l, w) = parse(
            b"# startup\n/bin/sh\n/usr/lib/libc.so.6 0-4096, 8192-12288\n\n/a b/c 10-20\nrel/x\n",
        )
        .unwrap();
        assert_eq!(
            l.files,
            vec![
                PrefetchFile {
                    path: "/bin/sh".into(),
                    ranges: None
                },
                PrefetchFile {
                    path: "/usr/lib/libc.so.6".into(),
                    ranges: Some(vec![(0, 4096), (8192, 4096)])
                },
                PrefetchFile {
                    path: "/a b/c".into(),
                    ranges: Some(vec![(10, 10)])
                },
            ]
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].at, 6);
    }

    #[test]
    fn text_form_errors_name_the_line() {
        let e = parse(b"/x\n/y 20-10\n").unwrap_err();
        assert_eq!(
            e,
            PrefetchListError::Line {
                line: 2,
                problem: "range 20-10 ends before it starts".into()
            }
        );
        assert!(matches!(
            parse(b"/y 1-2, 3-x4\n").unwrap_err(),
            PrefetchListError::Line { line: 1, .. }
        ));
        assert_eq!(parse(b"\xff").unwrap_err(), PrefetchListError::NotUtf8);
    }

    #[test]
    fn json_form_round_trips() {
        let doc = br#"{"version":"v1","files":[{"path":"/bin/sh"},{"path":"/lib/x","ranges":[[0,4096],[10,0]]},{"path":"y"}]}"#;
        let (l, w) = parse(doc).unwrap();
        assert_eq!(l.files.len(), 2);
        assert_eq!(l.files[1].ranges, Some(vec![(0, 4096)]));
        assert_eq!(w.len(), 2);
        let (again, w2) = parse(to_json(&l).as_bytes()).unwrap();
        assert_eq!(again, l);
        assert!(w2.is_empty());
    }

    #[test]
    fn json_form_errors() {
        assert!(matches!(
            parse(br#"{"version":"v2","files":[]}"#).unwrap_err(),
            PrefetchListError::Version(v) if v == "v2"
        ));
        assert!(matches!(
            parse(br#"{"version":"v1","files":[{"path":"/a","size":3}]}"#).unwrap_err(),
            PrefetchListError::Json(_)
        ));
        assert!(matches!(
            parse(b"{").unwrap_err(),
            PrefetchListError::Json(_)
        ));
    }

    #[test]
    fn ranges_coalesce() {
        let mut r = vec![(100, 10), (0, 10), (5, 10), (15, 5), (200, 1)];
        coalesce(&mut r);
        assert_eq!(r, vec![(0, 20), (100, 10), (200, 1)]);
    }
}
