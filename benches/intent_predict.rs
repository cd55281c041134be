//! Voice-assistant latency: featurise one utterance and choose its intent
//! (hashed n-grams, sparse first layer, batch 1, one core), for the default
//! pipeline network (2048 features, one hidden layer of 256, 24 intents), in
//! Chinese, English and a long mixed utterance; the same with the clarify
//! policy's decision (a second network of the same shape over the features
//! and the turn); the featuriser alone; and the online learner's update for
//! one answer (`updates_per_feedback` gradient steps, each on the answer,
//! 32 replayed lessons and 32 rehearsed training utterances).
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p rlhf-bench --bench intent_predict`

use std::hint::black_box;

use burn::tensor::Device;
use burn::tensor::backend::Backend;
use criterion::{Criterion, criterion_group, criterion_main};
use rlhf_assistant::BUILTIN_INTENTS;
use rlhf_assistant::IntentFeatures;
use rlhf_assistant::dialog::{ClarifyPolicy, ClarifySpec};
use rlhf_assistant::online::{OnlineConfig, OnlineLearner};
use rlhf_assistant::{IntentClassifier, IntentCorpus, PipelineConfig, Split};
use rlhf_model::backend::{AutodiffCpu, CpuBackend, cpu_device};
use rlhf_model::text::{HashedNgrams, SparseFeatures};
use rlhf_model::{QNetwork, QNetworkConfig};

const UTTERANCES: [(&str, &str); 3] = [
    ("zh", "把灯打开"),
    ("en", "could you turn the volume up a bit please"),
    ("mixed_long", "嗯那个 please 帮我把客厅的 light 打开然后 turn the volume down a little bit 谢谢"),
];

/// The default pipeline's featuriser, the 24 built-in labels and an
/// untrained network of its shape (speed does not depend on the weights).
fn default_model<B: Backend<Device = Device<CpuBackend>>>() -> (PipelineConfig, IntentFeatures, Vec<String>, QNetwork<B>)
{
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    let config = PipelineConfig::default();
    let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap_or_else(|e| panic!("{e}"));
    let labels: Vec<String> = BUILTIN_INTENTS.iter().map(|(name, _)| (*name).to_owned()).collect();
    let network = QNetworkConfig::new(config.featurizer.dim, labels.len())
        .with_hidden(config.net_arch.clone())
        .init::<B>(&cpu_device(), 0);
    (config, featurizer, labels, network)
}

fn predict(c: &mut Criterion) {
    let (config, featurizer, labels, network) = default_model::<CpuBackend>();
    let network = network.to_host().unwrap_or_else(|e| panic!("{e}"));
    let labels_len = labels.len();
    let mut classifier = IntentClassifier::new(labels, featurizer.clone(), network).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("intent_predict");
    for (name, text) in UTTERANCES {
        group.bench_function(name, |b| b.iter(|| black_box(classifier.predict(black_box(text)).unwrap_or(0))));
    }
    group.finish();
    let turns = config.dialog_max_turns;
    let dialog = QNetworkConfig::new(config.featurizer.dim + turns, labels_len + 1)
        .with_hidden(config.net_arch.clone())
        .init::<CpuBackend>(&cpu_device(), 1);
    let spec = ClarifySpec { labels: classifier.labels().to_vec(), featurizer: config.featurizer, max_turns: turns };
    let mut clarify = ClarifyPolicy::new(dialog, spec).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("intent_predict_with_clarify");
    for (name, text) in UTTERANCES {
        group.bench_function(name, |b| {
            b.iter(|| {
                let intent = classifier.predict(black_box(text)).unwrap_or(0);
                black_box((intent, clarify.should_clarify(black_box(text), 1).unwrap_or(false)))
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("featurize");
    let mut sparse = SparseFeatures::default();
    let featurizer = HashedNgrams::new(config.featurizer).unwrap_or_else(|e| panic!("{e}"));
    for (name, text) in UTTERANCES {
        group.bench_function(name, |b| {
            b.iter(|| {
                featurizer.sparse(black_box(text), &mut sparse);
                black_box(sparse.indices.len())
            })
        });
    }
    group.finish();
}

fn online_update(c: &mut Criterion) {
    let (_, featurizer, labels, network) = default_model::<AutodiffCpu>();
    let rehearsal = IntentCorpus::builtin(Split::Train).unwrap_or_else(|e| panic!("{e}"));
    let mut learner = OnlineLearner::new(network, labels, featurizer, Some(rehearsal), OnlineConfig::default())
        .unwrap_or_else(|e| panic!("{e}"));
    // A full replay, as on a server that has taken feedback for a while.
    for i in 0..64 {
        let text = UTTERANCES[i % UTTERANCES.len()].1;
        learner.remember(text, &[(i % 24, if i % 2 == 0 { 1.0 } else { -1.0 })]).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut group = c.benchmark_group("online_update");
    group.bench_function("answer", |b| {
        b.iter(|| {
            learner.learn(black_box("turn the volume up"), &[(3, 1.0), (5, -1.0)]).unwrap_or_else(|e| panic!("{e}"))
        })
    });
    group.finish();
}

criterion_group!(benches, predict, online_update);
criterion_main!(benches);
