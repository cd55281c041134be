//! An intent model loaded for use: its network on a backend, its spec, and
//! what learning from feedback needs (new intents, rehearsal data, a learner).

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use rlhf_model::QNetwork;

use crate::AssistantError;
use crate::features::IntentFeatures;
use crate::online::{OnlineConfig, OnlineLearner};
use crate::pipeline::{IntentModelSpec, load_intent_model};
use crate::{IntentCorpus, Split};

/// Where `cargo xtask pipeline` leaves the all-intent assistant model, and
/// where the assistant's commands look for one by default.
pub const DEFAULT_MODEL_DIR: &str = "runs/pipeline/assistant";

/// An intent checkpoint loaded for learning.
pub struct IntentModel<B: AutodiffBackend> {
    /// The network, with an output per label.
    pub network: QNetwork<B>,
    /// Labels (new intents last) and featuriser settings.
    pub spec: IntentModelSpec,
    /// The labels the checkpoint had, before intents were added.
    pub original_labels: Vec<String>,
    /// The training step recorded in the checkpoint.
    pub step: u64,
    /// The features of `spec` (its encoder loaded once, shared by clones).
    pub features: IntentFeatures,
}

impl<B: AutodiffBackend> IntentModel<B> {
    /// Loads the checkpoint in `dir` onto `device` and adds a fresh output
    /// for each intent of `add` (seeded by `seed`). A missing `dir` is an
    /// error that says how to make a model.
    pub fn load(dir: &Path, add: &[String], seed: u64, device: &B::Device) -> Result<Self, AssistantError> {
        if !dir.exists() {
            return Err(AssistantError::Invalid {
                what: format!("checkpoint {}", dir.display()),
                reason: "no model there; `cargo xtask pipeline` trains the assistant model (runs/pipeline/assistant), \
                         or pass --checkpoint DIR"
                    .into(),
            });
        }
        let (network, spec, meta) = load_intent_model::<B>(dir, device)?;
        let features = spec.features()?;
        let mut model = Self { original_labels: spec.labels.clone(), network, spec, step: meta.step, features };
        model.add_intents(add, seed)?;
        Ok(model)
    }

    /// Adds a fresh output for each intent of `add`; the existing outputs are
    /// kept as they are. Names must be new, distinct and not blank.
    pub fn add_intents(&mut self, add: &[String], seed: u64) -> Result<(), AssistantError> {
        if add.is_empty() {
            return Ok(());
        }
        let mut keep: Vec<Option<usize>> = (0..self.spec.labels.len()).map(Some).collect();
        for label in add {
            let refuse = |reason: &str| Err(AssistantError::Intent { name: label.clone(), reason: reason.into() });
            if label.trim().is_empty() || label.trim() != label {
                return refuse("an intent name must be non-empty, without surrounding spaces");
            }
            if self.spec.labels.contains(label) {
                return refuse("already an intent of the model");
            }
            self.spec.labels.push(label.clone());
            keep.push(None);
        }
        self.network = self.network.with_actions(&keep, seed)?;
        Ok(())
    }

    /// The featuriser of the model's spec.
    pub fn featurizer(&self) -> Result<IntentFeatures, AssistantError> {
        Ok(self.features.clone())
    }

    /// The rehearsal corpus: `file`, or the built-in training split of the
    /// model's built-in intents (none if it has none).
    pub fn rehearsal(&self, file: Option<&Path>) -> Result<Option<IntentCorpus>, AssistantError> {
        if let Some(path) = file {
            return Ok(Some(IntentCorpus::from_path(path, Some(&self.spec.labels))?));
        }
        let builtin = IntentCorpus::builtin(Split::Train)?;
        let known = builtin.known_labels(&self.original_labels);
        if known.is_empty() {
            tracing::warn!("no built-in intent in the model and no rehearsal file: updates replay feedback only");
            return Ok(None);
        }
        Ok(Some(builtin.restrict(&known)?))
    }

    /// An online learner starting from this model, the added intents marked new.
    pub fn learner(
        &self,
        rehearsal: Option<IntentCorpus>,
        config: OnlineConfig,
    ) -> Result<OnlineLearner<B>, AssistantError> {
        let mut learner =
            OnlineLearner::new(self.network.clone(), self.spec.labels.clone(), self.featurizer()?, rehearsal, config)?;
        learner.mark_new(self.original_labels.len()..self.spec.labels.len());
        Ok(learner)
    }
}
