//! A backup's and a config backup's `.manifest.json`, as `drill --backup-file`, `verify`,
//! `prune` and `config restore` read them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = serde_json::from_slice::<pgdrill::backup::Manifest>(bytes);
    let _ = serde_json::from_slice::<pgdrill::config::Manifest>(bytes);
});
