//! A trained answer model on disk: the pair network's weights and
//! everything needed to answer with them (the knowledge base, the feature
//! settings, k and the rewards), in one folder that `cargo xtask qa` writes
//! and `cargo xtask qa --ask` reads.
//!
//! The folder holds `qa.json` (the spec, with the knowledge base's entries
//! and the weights' size and FNV-1a hash) and `pair.mpk` (burn's named
//! MessagePack record). Each file is written atomically, the weights first,
//! so a kill leaves the old model or the new one; a damaged or mismatched
//! file is an error naming it.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::Backend;
use rlhf_model::checkpoint::CheckpointError;
use rlhf_model::hash::fnv1a_hex;
use rlhf_model::text::FeaturizerConfig;
use serde::{Deserialize, Serialize};

use super::env::AnswerRewards;
use super::index::AnswerIndex;
use super::kb::{KnowledgeBase, QaEntry};
use super::pair::{PairConfig, PairQNetwork};
use crate::AssistantError;

/// Where `cargo xtask qa` saves the answer model it trained (the first
/// seed's, fine-tuned to the car manual).
pub const DEFAULT_QA_MODEL_DIR: &str = "runs/qa/model";

const SPEC_FILE: &str = "qa.json";
const WEIGHTS_FILE: &str = "pair.mpk";
const FORMAT_VERSION: u32 = 1;

/// What `qa.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaSpec {
    /// The folder format's version.
    pub format_version: u32,
    /// The network's sizes.
    pub pair: PairConfig,
    /// The pair network's text features.
    pub features: FeaturizerConfig,
    /// Candidates per question.
    pub k: usize,
    /// The rewards the network learned (its Q-values are in their units).
    pub rewards: AnswerRewards,
    /// The knowledge base's entries.
    pub entries: Vec<QaEntry>,
    /// Size of `pair.mpk` in bytes.
    pub weights_bytes: u64,
    /// FNV-1a 64 hash of `pair.mpk`, hex.
    pub weights_fnv1a64: String,
}

/// A pair network with its knowledge base, ready to answer.
#[derive(Debug, Clone)]
pub struct QaModel<B: Backend> {
    /// The network.
    pub network: PairQNetwork<B>,
    /// The knowledge base, indexed.
    pub index: AnswerIndex,
    /// The rewards the network learned.
    pub rewards: AnswerRewards,
    /// The network's sizes.
    pub pair: PairConfig,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> AssistantError + '_ {
    move |source| AssistantError::Io { path: path.to_owned(), source }
}

fn corrupt(path: PathBuf, reason: impl Into<String>) -> AssistantError {
    CheckpointError::Corrupt { path, reason: reason.into() }.into()
}

impl<B: Backend> QaModel<B> {
    /// Writes the model into `dir` (created).
    pub fn save(&self, dir: &Path) -> Result<(), AssistantError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
            .record(self.network.clone().into_record(), ())
            .map_err(|e| corrupt(weights_path.clone(), e.to_string()))?;
        let spec = QaSpec {
            format_version: FORMAT_VERSION,
            pair: self.pair,
            features: *self.index.features(),
            k: self.index.k(),
            rewards: self.rewards,
            entries: self.index.kb().entries().to_vec(),
            weights_bytes: weights.len() as u64,
            weights_fnv1a64: fnv1a_hex(&weights),
        };
        rlhf_env::atomic::write_atomically(&weights_path, &weights).map_err(io(&weights_path))?;
        let spec_path = dir.join(SPEC_FILE);
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| corrupt(spec_path.clone(), e.to_string()))?;
        rlhf_env::atomic::write_atomically(&spec_path, &json).map_err(io(&spec_path))
    }

    /// The same network answering from `kb` instead (a user's file, say):
    /// the pair network scores answers it was never trained on, so the new
    /// knowledge base needs no training; feedback then teaches it.
    pub fn with_knowledge_base(self, kb: KnowledgeBase) -> Result<Self, AssistantError> {
        let index = AnswerIndex::new(kb, *self.index.features(), self.index.k())?;
        Ok(Self { index, ..self })
    }

    /// What identifies the model saved in `dir`: the FNV-1a hash of its
    /// spec, which records its knowledge base, settings and weights' hash.
    pub fn fingerprint(dir: &Path) -> Result<String, AssistantError> {
        let spec_path = dir.join(SPEC_FILE);
        Ok(fnv1a_hex(&std::fs::read(&spec_path).map_err(io(&spec_path))?))
    }

    /// Reads the model in `dir` onto `device`.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, AssistantError> {
        let spec_path = dir.join(SPEC_FILE);
        if !spec_path.exists() {
            return Err(CheckpointError::Missing { path: spec_path }.into());
        }
        let text = std::fs::read(&spec_path).map_err(io(&spec_path))?;
        let spec: QaSpec = serde_json::from_slice(&text).map_err(|e| corrupt(spec_path.clone(), e.to_string()))?;
        if spec.format_version != FORMAT_VERSION {
            let reason = format!("format version {}, this build reads {FORMAT_VERSION}", spec.format_version);
            return Err(corrupt(spec_path, reason));
        }
        if spec.pair.input_dim != spec.features.dim {
            let reason = format!(
                "the network reads {} features, the featuriser writes {}",
                spec.pair.input_dim, spec.features.dim
            );
            return Err(corrupt(spec_path, reason));
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights = std::fs::read(&weights_path).map_err(io(&weights_path))?;
        if weights.len() as u64 != spec.weights_bytes || fnv1a_hex(&weights) != spec.weights_fnv1a64 {
            let reason =
                format!("{} bytes with another hash than {SPEC_FILE} records (truncated or replaced?)", weights.len());
            return Err(corrupt(weights_path, reason));
        }
        let record = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
            .load(weights, device)
            .map_err(|e| corrupt(weights_path.clone(), e.to_string()))?;
        let network = spec.pair.init::<B>(device, 0).load_record(record);
        let kb = KnowledgeBase::new(spec.entries, &spec_path.display().to_string())?;
        let index = AnswerIndex::new(kb, spec.features, spec.k)?;
        Ok(Self { network, index, rewards: spec.rewards, pair: spec.pair })
    }
}

#[cfg(test)]
mod tests {
    use rlhf_model::backend::{CpuBackend, cpu_device};

    use super::*;

    #[test]
    fn a_saved_model_answers_as_before_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let pair = PairConfig { input_dim: 256, embedding: 4, hidden: 8 };
        let features = FeaturizerConfig { dim: 256, ..FeaturizerConfig::default() };
        let index = AnswerIndex::new(KnowledgeBase::car_manual().unwrap(), features, 5).unwrap();
        let model = QaModel::<CpuBackend> {
            network: pair.init(&cpu_device(), 4),
            index,
            rewards: AnswerRewards::default(),
            pair,
        };
        model.save(dir.path()).unwrap();
        let loaded = QaModel::<CpuBackend>::load(dir.path(), &cpu_device()).unwrap();
        let question = "how do I open the trunk";
        let decide = |m: &QaModel<CpuBackend>| m.index.decide(&m.network, vec![m.index.retrieve(question)]).remove(0);
        assert_eq!(decide(&loaded), decide(&model));
        assert_eq!(loaded.index.kb().entries(), model.index.kb().entries());
        // Another knowledge base, the same network and settings.
        let other = loaded.clone().with_knowledge_base(KnowledgeBase::builtin().unwrap()).unwrap();
        assert_eq!(other.index.kb().len(), KnowledgeBase::builtin().unwrap().len());
        assert_eq!((other.index.k(), other.index.features()), (loaded.index.k(), loaded.index.features()));
        // A damaged weights file names itself.
        let weights = dir.path().join(WEIGHTS_FILE);
        let mut bytes = std::fs::read(&weights).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&weights, bytes).unwrap();
        let error = QaModel::<CpuBackend>::load(dir.path(), &cpu_device()).unwrap_err().to_string();
        assert!(error.contains("pair.mpk"), "{error}");
        // So does a missing model.
        let error = QaModel::<CpuBackend>::load(&dir.path().join("none"), &cpu_device()).unwrap_err().to_string();
        assert!(error.contains("qa.json"), "{error}");
    }
}
