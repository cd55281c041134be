//! The sentence encoder's matrix products on one core: int8 block-quantised
//! `QuantizedLinear` against f32 `linalg::matmul`, for multilingual-e5-small's
//! three shapes (384→384, 384→1536, 1536→384) at 20 rows (a 10-word
//! utterance), the whole set of a 12-layer pass with distinct weights (as
//! they sit in memory), and the exact GELU on 20×1536 values against libm.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p rlhf-bench --bench quant`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rlhf_env::rng::{seeded_rng, uniform_f64};
use rlhf_model::linalg::{Layout, matmul};
use rlhf_model::quant::{Kernel, QuantizedLinear, gelu_in_place};

const ROWS: usize = 20;
const HIDDEN: usize = 384;
const FEED: usize = 1536;
const LAYERS: usize = 12;
/// One layer's products: query, key, value, attention out, feed in, feed out.
const LAYER_SHAPES: [(usize, usize); 6] =
    [(HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, FEED), (FEED, HIDDEN)];

fn random(n: usize, seed: u64, scale: f64) -> Vec<f32> {
    let mut rng = seeded_rng(seed);
    (0..n).map(|_| uniform_f64(&mut rng, -scale, scale) as f32).collect()
}

/// A product both ways: f32 weights `[d_out, d_in]` and their int8 form.
struct Product {
    d_in: usize,
    d_out: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    quantised: QuantizedLinear,
}

impl Product {
    fn new(d_in: usize, d_out: usize, seed: u64) -> Self {
        let weights = random(d_in * d_out, seed, 0.05);
        let bias = random(d_out, seed + 1, 0.1);
        let quantised =
            QuantizedLinear::from_f32(&weights, bias.clone(), d_in, d_out).unwrap_or_else(|e| panic!("{e}"));
        Self { d_in, d_out, weights, bias, quantised }
    }

    /// The encoder's f32 path today: bias rows, then `out += x · Wᵀ`.
    fn matmul(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for _ in 0..ROWS {
            out.extend_from_slice(&self.bias);
        }
        matmul(x, &self.weights, out, [ROWS, self.d_in, self.d_out], Layout::NByK, true)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn quantised(&self, x: &[f32], out: &mut Vec<f32>) {
        self.quantised.forward(x, ROWS, out).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn products(c: &mut Criterion) {
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    eprintln!("quantised kernel: {:?}", Kernel::detect());
    let mut group = c.benchmark_group("quant");
    let mut out = Vec::new();
    for (d_in, d_out) in [(HIDDEN, HIDDEN), (HIDDEN, FEED), (FEED, HIDDEN)] {
        let product = Product::new(d_in, d_out, 1);
        let x = random(ROWS * d_in, 2, 1.0);
        group.bench_function(format!("int8_{d_in}x{d_out}_rows{ROWS}"), |b| {
            b.iter(|| {
                product.quantised(black_box(&x), &mut out);
                black_box(out[0])
            })
        });
        group.bench_function(format!("f32_matmul_{d_in}x{d_out}_rows{ROWS}"), |b| {
            b.iter(|| {
                product.matmul(black_box(&x), &mut out);
                black_box(out[0])
            })
        });
    }

    // Every product of a 12-layer pass, each with its own weights (21 MB as
    // int8, 85 MB as f32), so memory traffic counts as in the encoder.
    let layers: Vec<Product> = (0..LAYERS * LAYER_SHAPES.len())
        .map(|i| {
            let (d_in, d_out) = LAYER_SHAPES[i % LAYER_SHAPES.len()];
            Product::new(d_in, d_out, 10 + 2 * i as u64)
        })
        .collect();
    let inputs = [random(ROWS * HIDDEN, 3, 1.0), random(ROWS * FEED, 4, 1.0)];
    let input = |d_in: usize| if d_in == HIDDEN { &inputs[0] } else { &inputs[1] };
    group.bench_function(format!("int8_12_layers_rows{ROWS}"), |b| {
        b.iter(|| {
            for p in &layers {
                p.quantised(black_box(input(p.d_in)), &mut out);
            }
            black_box(out[0])
        })
    });
    group.bench_function(format!("f32_matmul_12_layers_rows{ROWS}"), |b| {
        b.iter(|| {
            for p in &layers {
                p.matmul(black_box(input(p.d_in)), &mut out);
            }
            black_box(out[0])
        })
    });

    let values = random(ROWS * FEED, 5, 4.0);
    let mut work = values.clone();
    group.bench_function(format!("gelu_fast_{ROWS}x{FEED}"), |b| {
        b.iter(|| {
            work.copy_from_slice(&values);
            gelu_in_place(black_box(&mut work));
            black_box(work[0])
        })
    });
    group.bench_function(format!("gelu_libm_{ROWS}x{FEED}"), |b| {
        b.iter(|| {
            work.copy_from_slice(&values);
            for v in black_box(&mut work).iter_mut() {
                *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
            }
            black_box(work[0])
        })
    });
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
