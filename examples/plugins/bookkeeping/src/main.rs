//! A bookkeeping hook plugin: prints one line per blob of each manifest it is told about
//! (`<hook> <target> <manifest digest> sha256:<blob id> <size>`), the record a blob garbage
//! collector keeps. It reads the event as plain JSON, without linking anything of Nydus: the
//! event is the whole interface.
//!
//! Build: `cargo build --release --target wasm32-wasip1 -p nydus-plugin-bookkeeping`.

use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .expect("reading the event");
    let event: serde_json::Value = serde_json::from_str(&input).expect("the event is JSON");
    let s = |k: &str| event[k].as_str().unwrap_or("-").to_string();
    let (hook, target, manifest) = (s("hook"), s("target_ref"), s("manifest_digest"));
    for blob in event["blobs"].as_array().into_iter().flatten() {
        println!(
            "{hook} {target} {manifest} sha256:{} {}",
            blob["id"].as_str().unwrap_or("-"),
            blob["size"].as_u64().unwrap_or(0)
        );
    }
}
