//! The app's /metrics body (Prometheus text format).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = pgdrill::app::parse_prometheus(text);
});
