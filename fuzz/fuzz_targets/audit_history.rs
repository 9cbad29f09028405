//! One line of `audit.ndjson` and of `history.ndjson`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    if let Ok(e) = serde_json::from_str::<pgdrill::repo::audit::Event>(line) {
        let _ = e.compute_sha256();
        let _ = e.at();
    }
    let _ = serde_json::from_str::<pgdrill::report::history::Entry>(line);
});
