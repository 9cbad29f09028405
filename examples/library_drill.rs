//! A drill from Rust code, as a user's own `cargo test` would run it:
//! `cargo run --example library_drill -- [ROWS]` (the native backend, no application).

#[tokio::main]
async fn main() -> Result<(), pgdrill::Error> {
    let rows = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    let out = tempfile::tempdir().expect("a temp dir for the report");
    let report = pgdrill::Drill::builder()
        .backend(pgdrill::BackendKind::Native)
        .rows(rows)
        .seed(7)
        .app(pgdrill::AppChoice::None)
        .out(out.path())
        .run()
        .await?;
    print!("{}", report.summary());
    assert!(report.passed(), "{}", report.summary());
    Ok(())
}
