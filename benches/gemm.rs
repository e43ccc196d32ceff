//! Criterion bench of the GEMM kernels (wall clock around a full sync).
//!
//! `cargo bench --bench gemm`. For GPU-timestamp figures and the JSON
//! records, use `recur-bench gemm`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use recur::gpu::ops::gemm::{Gemm, GemmKernel};
use recur::gpu::{Device, Rng, Tensor};

fn gemm(c: &mut Criterion) {
    let dev = match Device::new() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("no adapter, skipping GEMM bench: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group("gemm");
    group.sample_size(10);
    let mut rng = Rng::new(1);
    for n in [256usize, 512] {
        let a = Tensor::randn(&dev, &[n, n], 0.0, 1.0, &mut rng).expect("a");
        let b = Tensor::randn(&dev, &[n, n], 0.0, 1.0, &mut rng).expect("b");
        let out = Tensor::zeros(&dev, &[n, n]).expect("c");
        group.throughput(Throughput::Elements((2 * n * n * n) as u64));
        for kernel in GemmKernel::ALL {
            let cfg = Gemm {
                kernel,
                ..Gemm::default()
            };
            group.bench_with_input(
                BenchmarkId::new(format!("{kernel:?}"), n),
                &n,
                |bench, _| {
                    bench.iter(|| {
                        cfg.run_into(&a, &b, None, &out).expect("gemm");
                        dev.sync().expect("sync");
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
