//! `--source-dsn` / `--target-dsn`: a URL or key=value DSN; the printable form hides the
//! password, and the conninfo handed to an app reads back as the same endpoint.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(ep) = pgdrill::env::Endpoint::from_dsn(text) {
        let shown = ep.display();
        if ep.password().is_some() {
            assert!(shown.contains(":***@"), "{shown}");
        }
        if !format!("{}{}{}", ep.user, ep.dbname, ep.password().unwrap_or("")).contains('\0') {
            let back = pgdrill::env::Endpoint::from_dsn(&ep.url()).expect("its own conninfo reads");
            assert_eq!(
                (&back.user, &back.dbname, back.port),
                (&ep.user, &ep.dbname, ep.port)
            );
            assert_eq!(back.password(), ep.password());
        }
        let _ = ep.libpq_env();
    }
});
