//! What the served-assistant tests share: a small model saved once per test folder.

use std::path::Path;

use rlhf_assistant::IntentFeatures;
use rlhf_assistant::pipeline::{IntentModelSpec, new_network, save_intent_model};
use rlhf_assistant::qa::{AnswerIndex, KnowledgeBase, PairConfig, QaLearnConfig, QaLearner, QaModel};
use rlhf_assistant::serve::ServeConfig;
use rlhf_assistant::{IntentCorpus, PipelineConfig, PretrainConfig, Split, pretrain};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use rlhf_model::text::FeaturizerConfig;
use serde_json::json;

/// The intents of the small test model.
pub const INTENTS: [&str; 4] = ["light_on", "light_off", "volume_up", "volume_down"];

/// Pretrains a small model of [`INTENTS`] and saves it to `dir`.
fn save_model(dir: &Path) {
    let config = PipelineConfig {
        featurizer: FeaturizerConfig { dim: 1024, ..Default::default() },
        net_arch: vec![64],
        pretrain: PretrainConfig { steps: 300, ..Default::default() },
        ..Default::default()
    };
    let labels: Vec<String> = INTENTS.iter().map(|s| (*s).to_owned()).collect();
    let train = IntentCorpus::builtin(Split::Train).unwrap().restrict(&labels).unwrap();
    let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap();
    let network = new_network::<AutodiffCpu>(&config, &featurizer, labels.len(), &cpu_device(), 0);
    let network = pretrain(network, &train, &featurizer, &config.pretrain, |_, _| {}).unwrap();
    let spec = IntentModelSpec::new(train.labels().to_vec(), &featurizer);
    save_intent_model(dir, &network, &spec, 300, "cpu".into(), json!({})).unwrap();
}

/// The default serving settings for a small model of [`INTENTS`] saved
/// under `root` (once): its run folder and SQLite store beside it.
pub fn serve_config(root: &Path) -> ServeConfig {
    let model = root.join("model");
    if !model.exists() {
        save_model(&model);
    }
    ServeConfig::new(&model)
}

/// [`serve_config`] with a small answer model of the built-in knowledge
/// base, pretrained briefly and saved under `root` (once).
pub fn serve_config_with_answers(root: &Path) -> ServeConfig {
    let dir = root.join("answer-model");
    if !dir.exists() {
        let features = FeaturizerConfig { dim: 4096, ..Default::default() };
        let index = AnswerIndex::new(KnowledgeBase::builtin().unwrap(), features, 10).unwrap();
        let pair = PairConfig { input_dim: features.dim, embedding: 0, hidden: 16 };
        let network = pair.init::<AutodiffCpu>(&cpu_device(), 0);
        let mut learner = QaLearner::new(network, QaLearnConfig::default(), 0).unwrap();
        let train = index.kb().questions(Split::Train);
        for _ in 0..60 {
            learner.pretrain_step(&index, &train).unwrap();
        }
        let rewards = learner.config().rewards;
        QaModel { network: learner.network().clone(), index, rewards, pair }.save(&dir).unwrap();
    }
    ServeConfig { qa_model: Some(dir), ..serve_config(root) }
}
