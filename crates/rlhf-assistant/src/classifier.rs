//! A trained intent network ready to answer: featuriser, weights, labels.

use crate::{AsrNoise, Utterance};
use rlhf_model::text::{SparseFeatures, TextFeaturizer};
use rlhf_model::{HostQNetwork, argmax};

use crate::AssistantError;
use crate::features::IntentFeatures;
use crate::metrics::ClassificationReport;

/// Maps text to one of its labels by the largest Q-value.
///
/// Acting reads the features sparsely ([`HostQNetwork::q_values_sparse`]):
/// an utterance has a few dozen non-zero features out of thousands.
#[derive(Debug, Clone)]
pub struct IntentClassifier {
    labels: Vec<String>,
    featurizer: IntentFeatures,
    network: HostQNetwork,
    features: SparseFeatures,
}

impl IntentClassifier {
    /// A classifier; errors when the network's input or output size does not
    /// match the featuriser or the labels.
    pub fn new(labels: Vec<String>, featurizer: IntentFeatures, network: HostQNetwork) -> Result<Self, AssistantError> {
        let dim = featurizer.dim();
        if network.obs_dim() != dim {
            let reason = format!("the network reads {} features, the featuriser writes {dim}", network.obs_dim());
            return Err(AssistantError::InvalidConfig { field: "featurizer.dim", reason });
        }
        if network.n_actions() < labels.len() {
            let reason = format!("{} labels for a network with {} outputs", labels.len(), network.n_actions());
            return Err(AssistantError::InvalidConfig { field: "labels", reason });
        }
        Ok(Self { labels, featurizer, network, features: SparseFeatures::default() })
    }

    /// The labels, in output order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The Q-value of every intent for `text` (outputs beyond the labels,
    /// such as a dialogue's *clarify*, are left out).
    pub fn q_values(&mut self, text: &str) -> Result<&[f32], AssistantError> {
        self.featurizer.sparse(text, &mut self.features)?;
        let q = self.network.q_values_sparse(&self.features.indices, &self.features.values)?;
        Ok(&q[..self.labels.len()])
    }

    /// `text` as the featuriser reads it: misheard words put back when the
    /// model has a lexicon ([`IntentFeatures::heard_as`]).
    pub fn heard_as<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.featurizer.heard_as(text)
    }

    /// The index of the intent with the largest Q-value.
    pub fn predict(&mut self, text: &str) -> Result<usize, AssistantError> {
        Ok(argmax(self.q_values(text)?))
    }

    /// Accuracy and the rest on `utterances`, each passed through `noise`
    /// (drawn from `seed`, so the same call gives the same report).
    pub fn evaluate(
        &mut self,
        utterances: &[Utterance],
        noise: AsrNoise,
        seed: u64,
    ) -> Result<ClassificationReport, AssistantError> {
        let predictions = self.predict_all(utterances, noise, seed)?;
        let pairs = utterances.iter().zip(predictions).map(|(u, p)| (u.intent, p));
        Ok(ClassificationReport::new(&self.labels, pairs))
    }

    /// The predicted intent of each utterance passed through `noise` (drawn from `seed`).
    pub fn predict_all(
        &mut self,
        utterances: &[Utterance],
        noise: AsrNoise,
        seed: u64,
    ) -> Result<Vec<usize>, AssistantError> {
        let heard = noise.hear_all(utterances.iter().map(|u| u.text.as_str()), seed);
        self.prepare(&heard)?;
        heard.iter().map(|text| self.predict(text)).collect()
    }

    /// Computes ahead, on every core, what answering `texts` needs of a
    /// sentence encoder (nothing with n-grams alone); the answers then read it.
    pub fn prepare<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<(), AssistantError> {
        self.featurizer.prepare(texts)?;
        Ok(())
    }
}
