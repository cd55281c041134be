//! Question-answering latency: retrieve the 10 best candidates of the
//! built-in knowledge base (TF-IDF over 65,536 hashed n-gram buckets) and
//! score each with the pair network and "I don't know", one question, one
//! core: on the host copy of the network (what serving runs) and through
//! burn; and the retrieval alone.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p rlhf-bench --bench qa_answer`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rlhf_assistant::qa::study::QaStudyConfig;
use rlhf_assistant::qa::{AnswerIndex, KnowledgeBase};
use rlhf_model::backend::{CpuBackend, cpu_device};

const QUESTIONS: [(&str, &str); 2] =
    [("zh", "空调的除湿模式怎么开"), ("en", "how do I pair my phone with the speaker over bluetooth")];

fn answer(c: &mut Criterion) {
    rlhf_model::subnormals::flush_subnormals_unless_kept(); // as `cargo xtask` runs
    let config = QaStudyConfig::default();
    let kb = KnowledgeBase::builtin().unwrap_or_else(|e| panic!("{e}"));
    let index = AnswerIndex::new(kb, config.features, config.k).unwrap_or_else(|e| panic!("{e}"));
    let network = config.pair().init::<CpuBackend>(&cpu_device(), 0);
    let host = network.to_host().unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("qa_answer");
    for (name, text) in QUESTIONS {
        group.bench_function(format!("host_{name}"), |b| {
            b.iter(|| black_box(index.decide_host(&host, index.retrieve(black_box(text))).choice()))
        });
        group.bench_function(format!("burn_{name}"), |b| {
            b.iter(|| black_box(index.decide(&network, vec![index.retrieve(black_box(text))])))
        });
        group.bench_function(format!("retrieve_{name}"), |b| b.iter(|| black_box(index.retrieve(black_box(text)))));
    }
    group.finish();
}

criterion_group!(benches, answer);
criterion_main!(benches);
