//! Throughput of the seed generator: generating and binary-COPY-encoding every table of a
//! 10 000-user dataset in memory, no database involved. Compare the bytes/s with the server's
//! ingest rate: generation must never be what limits seeding.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgdrill::seed::{encode_all, SeedSpec, Table, TableChunks, CHUNK_BYTES};
use std::hint::black_box;

fn generate(c: &mut Criterion) {
    let spec = SeedSpec {
        rows: 10_000,
        seed: 42,
    };
    let total = encode_all(&spec).stats.bytes_sent;

    let mut group = c.benchmark_group("seed");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(10));
    group.bench_function("encode_all_10k_users", |b| {
        b.iter(|| encode_all(black_box(&spec)))
    });
    // The shape seed() uses: 1 MiB chunks, one table after the other.
    group.bench_function("chunks_1mib_10k_users", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for table in Table::LOAD_ORDER {
                for chunk in TableChunks::new(black_box(&spec), table, CHUNK_BYTES) {
                    bytes += chunk.len();
                }
            }
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
