//! The app's answers: a health body, a version body, its URLs and its log lines.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &str, &str)| {
    let (status, body, other) = input;
    let _ = pgdrill::fuzzing::health(status, body, other);
    let _ = pgdrill::fuzzing::version(status, body);
    let _ = pgdrill::fuzzing::http_url(other);
    let _ = pgdrill::app::is_error_line(body);
});
