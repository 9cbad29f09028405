//! How long until a disposable native server accepts connections, measured directly with
//! the backend a drill uses (benches/compare.sh runs this).
//!
//! The first provision pays for initdb of the template cluster; later ones are copies of it,
//! which is what a drill's second server (server-loss) costs. Prints one JSON object:
//! `first_ready_ms`, `ready_ms[]` (copies), `destroy_ms[]`.
//!
//! Usage: `server_ready [COUNT] [ID]` (default 5 copies; ID names the temp dirs,
//! `pgdrill-ID-*`, so a caller can clean them up if this is killed).

use std::time::Instant;

use pgdrill::env::native::NativeBackend;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|e| format!("COUNT must be a number ({e})"))?,
        None => 5,
    };
    let id = args.next().unwrap_or_else(|| "bench-ready".into());
    let backend = NativeBackend::discover(&id)?;

    let t = Instant::now();
    let first = backend.provision("first").await?;
    let first_ready_ms = ms(t);
    let t = Instant::now();
    first.destroy().await?;
    let mut destroy_ms = vec![ms(t)];

    let mut ready_ms = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        let target = backend.provision(&format!("copy{i}")).await?;
        ready_ms.push(ms(t));
        let t = Instant::now();
        target.destroy().await?;
        destroy_ms.push(ms(t));
    }
    println!(
        "{}",
        serde_json::json!({
            "first_ready_ms": first_ready_ms,
            "ready_ms": ready_ms,
            "destroy_ms": destroy_ms,
        })
    );
    Ok(())
}
