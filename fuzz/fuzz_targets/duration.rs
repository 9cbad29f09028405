//! `--rpo 15m`, `--budget-total`, `--since`, `--at 2026-12-01T03:00:00Z`, `forecast --size 50GB`:
//! durations, times and sizes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = pgdrill::duration::parse_duration(text) {
        assert!(e.contains("duration"), "{e}");
    }
    if let Err(e) = pgdrill::duration::parse_time(text) {
        assert!(e.contains("RFC 3339"), "{e}");
    }
    match pgdrill::report::forecast::parse_size(text) {
        Ok(b) => assert!(b >= 1),
        Err(e) => assert!(e.contains("50GB"), "{e}"),
    }
});
