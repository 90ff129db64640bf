//! nydusify's duration and byte-size arguments (`--push-retry-delay 5s`,
//! `--push-chunk-size 16MB`).

use std::time::Duration;

/// Parses `5s`, `500ms`, `1m`, `2` (seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" | "" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Parses `0MB`, `16MB`, `512KB`, `1048576` into bytes.
pub fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let upper = s.to_ascii_uppercase();
    let (num, mult) = [
        ("GIB", 1u64 << 30),
        ("MIB", 1 << 20),
        ("KIB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suf, m)| upper.strip_suffix(suf).map(|n| (n.trim().to_string(), *m)))
    .unwrap_or((upper.clone(), 1));
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_byte_size("0MB"), Some(0));
        assert_eq!(parse_byte_size("16MB"), Some(16_000_000));
        assert_eq!(parse_byte_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_byte_size("4096"), Some(4096));
        assert_eq!(parse_byte_size("lots"), None);
    }
}
