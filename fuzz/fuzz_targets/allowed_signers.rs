//! `evidence verify --allowed-signers FILE` (OpenSSH's allowed signers file) and the bundle's
//! SHA256SUMS.sig, judged against it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgdrill::report::evidence::{allowed_signers::AllowedSigners, signature};

fuzz_target!(|input: (&str, &[u8], &[u8])| {
    let (signers, sig, sums) = input;
    if let Ok(a) = AllowedSigners::parse(signers) {
        let now = pgdrill::duration::parse_time("2026-12-06T00:00:00Z").unwrap();
        let _ = signature::judge(sig, sums, &a, now);
    }
});
