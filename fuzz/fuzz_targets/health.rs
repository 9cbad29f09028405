//! The app's health body in every format, recognised or forced, and `--app-health-format`
//! values (the `json-path=` expression).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgdrill::app::{Health, HealthFormat};

fuzz_target!(|input: (u16, &str, &str)| {
    let (status, body, format) = input;
    let mut formats = vec![
        HealthFormat::Auto,
        HealthFormat::Ietf,
        HealthFormat::Spring,
        HealthFormat::AspNet,
        HealthFormat::Plain,
    ];
    if let Ok(f) = format.parse::<HealthFormat>() {
        formats.push(f);
    }
    for f in &formats {
        let health = Health::read(f, body, format);
        let _ = health.healthy(status);
        let _ = health.describe();
        let _ = pgdrill::fuzzing::health_as(f, status, body, format);
    }
});
