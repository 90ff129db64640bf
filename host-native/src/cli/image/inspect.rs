//! `nydus-image inspect`: one-shot (`-R`) or line-by-line requests (from stdin) about a
//! bootstrap, answered in JSON (one document per request) unless `--text` is given.

use std::io::BufRead;

use anyhow::{Context, Result};
use nydus_host_image::inspect::Session;
use nydus_host_storage::open_image;
use serde_json::Value;

use super::args::{bootstrap_arg, InspectArgs};
use crate::cli::out;

/// An item of a list as text: an object with a `path` is that path, then its other fields.
fn text_item(item: &Value) -> String {
    match item {
        Value::Object(m) if m.get("path").is_some_and(Value::is_string) => {
            let rest: Vec<String> = m
                .iter()
                .filter(|(k, _)| *k != "path")
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let path = m["path"].as_str().unwrap_or_default();
            if rest.is_empty() {
                path.to_string()
            } else {
                format!("{path} ({})", rest.join(", "))
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print(v: &Value, text: bool) {
    if !text {
        out!("{v}");
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match val {
                    Value::Array(a) => {
                        out!("{k}:");
                        for item in a {
                            out!("  {}", text_item(item));
                        }
                    }
                    Value::String(s) => out!("{k}: {s}"),
                    other => out!("{k}: {other}"),
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                out!("{item}");
            }
        }
        other => out!("{other}"),
    }
}

pub fn run(a: InspectArgs) -> Result<()> {
    let path = bootstrap_arg(&a.bootstrap_pos, &a.bootstrap)?;
    // No request reads file data, but the blob options are checked like every command's.
    super::blobs::locator(&a.blobs)?;
    let img = open_image(&path)?;
    let mut s = Session::new(&img.boot);
    if let Some(r) = &a.request {
        let v = s
            .request(r)
            .with_context(|| format!("{}: request {r:?}", path.display()))?;
        if let Some(v) = v {
            print(&v, a.text);
        }
        return Ok(());
    }
    // Line-by-line requests from stdin (a terminal or a pipe).
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.context("reading requests from stdin")?;
        if matches!(line.trim(), "exit" | "q" | "quit") {
            break;
        }
        match s.request(&line) {
            Ok(Some(v)) => print(&v, a.text),
            Ok(None) => {}
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    Ok(())
}
