//! The voice assistant on your own intents: a JSON-lines file of
//! `{"text": ..., "intent": ...}` utterances, pretrained into a Q-network,
//! then answering new phrasings.
//!
//! `cargo run --release -p rlhf-assistant --example assistant_from_jsonl [FILE.jsonl]`
//! (without a file it writes a small one of its own first).

use std::path::PathBuf;

use rlhf_assistant::IntentCorpus;
use rlhf_assistant::pipeline::{IntentModelSpec, classifier_of, new_network};
use rlhf_assistant::{PipelineConfig, PretrainConfig, pretrain};
use rlhf_model::backend::{AutodiffCpu, cpu_device};

const SAMPLE: &str = r#"{"text": "turn on the kitchen lights", "intent": "light_on"}
{"text": "lights on please", "intent": "light_on"}
{"text": "打开厨房的灯", "intent": "light_on"}
{"text": "开灯", "intent": "light_on"}
{"text": "switch off the lights", "intent": "light_off"}
{"text": "lights off", "intent": "light_off"}
{"text": "关灯", "intent": "light_off"}
{"text": "把灯关掉", "intent": "light_off"}
{"text": "what's the weather tomorrow", "intent": "weather"}
{"text": "will it rain today", "intent": "weather"}
{"text": "明天天气怎么样", "intent": "weather"}
{"text": "今天会下雨吗", "intent": "weather"}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(path) => PathBuf::from(path),
        None => {
            let path = std::env::temp_dir().join("rlhf-example-intents.jsonl");
            std::fs::write(&path, SAMPLE)?;
            path
        }
    };
    // Malformed lines are errors naming the file and line.
    let corpus = IntentCorpus::from_path(&path, None)?;
    println!("{} phrasings of {} intents from {}", corpus.phrases().len(), corpus.labels().len(), path.display());

    let config = PipelineConfig {
        pretrain: PretrainConfig { steps: 400, ..PretrainConfig::default() },
        ..PipelineConfig::default()
    };
    let featurizer = config.features()?;
    let device = cpu_device();
    let network = new_network::<AutodiffCpu>(&config, &featurizer, corpus.labels().len(), &device, 0);
    let network = pretrain(network, &corpus, &featurizer, &config.pretrain, |_, _| {})?;

    let spec = IntentModelSpec::new(corpus.labels().to_vec(), &featurizer);
    let mut classifier = classifier_of(&network, &spec)?;
    for text in ["kitchen lights on", "关掉灯", "is it going to rain", "天气"] {
        let intent = classifier.predict(text)?;
        println!("{text:>22} → {}", classifier.labels()[intent]);
    }
    Ok(())
}
