//! A `drill --plan FILE` TOML file, turned into flags and then parsed as the command line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;

fuzz_target!(|bytes: &[u8]| {
    let path = std::path::Path::new("plan.toml");
    match pgdrill::cmd::drill::plan_flags(path, bytes.to_vec()) {
        Ok(flags) => {
            let mut argv: Vec<OsString> = vec!["pgdrill".into(), "drill".into()];
            argv.extend(flags);
            let _ = pgdrill::cmd::parse(argv);
        }
        Err(e) => assert!(e.to_string().contains("plan.toml"), "{e}"),
    }
});
