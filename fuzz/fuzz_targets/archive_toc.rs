//! A custom archive's binary table of contents (`pg::archive`), which the precheck reads to
//! split the archive between its readers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(entries) = pgdrill::pg::archive::entries_in(bytes) {
        // Each entry takes dozens of bytes: a count beyond that was not read from these.
        assert!(entries.len() <= bytes.len());
    }
});
