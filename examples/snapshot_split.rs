//! One session against two: times `snapshot::take` and `snapshot::take_split` on the same
//! database, alternating, to show what running the checks beside the table reads saves.
//!
//! Usage: `snapshot_split DSN [ROUNDS]` (DSN of the database, e.g. a drill kept with --keep;
//! default 5 rounds). Prints one JSON object with the times in ms and their medians.

use std::time::Instant;

use tokio_postgres::{Client, NoTls};

async fn connect(dsn: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dsn = args.next().ok_or("usage: snapshot_split DSN [ROUNDS]")?;
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let c = connect(&dsn).await?;
        let t = Instant::now();
        let a = pgdrill::snapshot::take(&c).await?;
        one.push(t.elapsed().as_secs_f64() * 1000.0);

        let (c, h) = (connect(&dsn).await?, connect(&dsn).await?);
        let t = Instant::now();
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let id: String = c
            .query_one("SELECT pg_export_snapshot()", &[])
            .await?
            .get(0);
        h.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{id}'"
        ))
        .await?;
        let b = pgdrill::snapshot::take_split(&c, &h, &pgdrill::progress::Progress::none()).await?;
        two.push(t.elapsed().as_secs_f64() * 1000.0);
        if a.tables != b.tables || a.schema != b.schema {
            return Err("the two ways disagree".into());
        }
    }
    println!(
        "{{\"one_session_ms\": {one:?}, \"two_sessions_ms\": {two:?}, \"median_one_ms\": {:.0}, \"median_two_ms\": {:.0}}}",
        median(one.clone()),
        median(two.clone())
    );
    Ok(())
}
