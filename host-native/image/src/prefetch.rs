//! Prefetch patterns (`--prefetch-policy fs`), shared by `create` and `merge`: absolute paths
//! whose files the bootstrap lists for prefetching, in the order given. The command line reads
//! them (from stdin); the builder takes them as strings.

use nydus_core::tree::{NodeId, Tree};

/// The prefetch patterns of `input` (one absolute path per line): blank lines are skipped,
/// relative paths are warned about and dropped, and so is a pattern whose ancestor (or itself)
/// is already a pattern.
pub fn patterns_from_lines(input: &str) -> Vec<String> {
    let mut pats: Vec<String> = Vec::new();
    for line in input.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !line.starts_with('/') {
            log::warn!("ignoring prefetch pattern {line:?}: not an absolute path");
            continue;
        }
        let covered = pats.iter().any(|p| {
            p == "/"
                || line == p
                || line
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if !covered {
            pats.push(line.to_string());
        }
    }
    pats
}

/// Maps prefetch patterns to nodes of `tree`; with `warn`, a pattern matching nothing is
/// warned about.
pub fn prefetch_nodes(tree: &Tree, pats: &[String], warn: bool) -> Vec<NodeId> {
    let mut out = Vec::new();
    for p in pats {
        match tree.lookup(p.as_bytes()) {
            Some(id) => out.push(id),
            None if warn => log::warn!("prefetch pattern {p:?} matches nothing"),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_and_relative_patterns_are_dropped() {
        let p =
            patterns_from_lines("/usr/bin\n\n  /usr/bin/sh \nrel/x\n/usr\n/etc/hosts\n/usr/bin\n");
        assert_eq!(p, ["/usr/bin", "/usr", "/etc/hosts"]);
        assert_eq!(patterns_from_lines("/\n/a\n"), ["/"]);
        assert_eq!(patterns_from_lines("/ab\n/a\n/a/b\n"), ["/ab", "/a"]);
    }
}
