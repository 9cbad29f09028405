//! What pg_restore says about an archive: its `--list` (header and table of contents) and
//! its `--schema-only` script, and a `.globals.sql` file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = pgdrill::fuzzing::archive_list(text);
    let _ = pgdrill::preflight::parse_script(text);
    let (kept, _) = pgdrill::restore::without_tablespaces(text);
    assert!(kept.len() <= text.len());
});
