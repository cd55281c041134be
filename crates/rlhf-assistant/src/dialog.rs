//! Policies for [`DialogEnv`]: when to ask the user to rephrase.
//!
//! A learned dialogue policy is DQN's greedy policy over `n + 1` actions
//! (every intent, then *clarify*). To tell whether its clarifying is worth
//! anything, it is compared with two fixed rules that use the *same*
//! network's intent Q-values and differ only in when they clarify: never, or
//! always once (clarify on the first turn, answer on the second).

use std::path::Path;

use burn::tensor::backend::Backend;
use rlhf_algo::evaluate;
use rlhf_model::checkpoint::{self, CheckpointInfo, Expectation};
use rlhf_model::text::{FeaturizerConfig, HashedNgrams, SparseFeatures, TextFeaturizer};
use rlhf_model::{HostQNetwork, QNetwork, argmax};
use serde::{Deserialize, Serialize};

use crate::{AssistantError, DialogEnv};

/// When a dialogue policy asks for a rephrasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClarifyRule {
    /// Whatever the network's largest Q-value says, *clarify* included.
    Learned,
    /// Answer at once with the best intent.
    Never,
    /// Clarify on the first turn, then answer with the best intent.
    Once,
}

/// Mean return and more of a policy on a dialogue environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialogReport {
    /// The rule played.
    pub rule: ClarifyRule,
    /// Mean undiscounted return per episode.
    pub mean_return: f64,
    /// Share of episodes that ended with the right intent.
    pub accuracy: f64,
    /// Mean actions per episode (clarifications plus the answer).
    pub mean_length: f64,
    /// Share of all turns that asked for a rephrasing.
    pub asked: f64,
}

/// Plays `episodes` episodes of `env` (first reset seeded with `seed`) with
/// `network` (which reads the dialogue observation and scores every intent
/// and then *clarify*) under `rule`. The intent acted on is `answerer`'s
/// best on the transcript's features when given (an intent model, as the
/// assistant runs it), else `network`'s best intent. As in the product, the
/// last turn always acts.
pub fn play_dialog<F: TextFeaturizer>(
    network: &HostQNetwork,
    answerer: Option<&HostQNetwork>,
    env: &mut DialogEnv<F>,
    rule: ClarifyRule,
    episodes: usize,
    seed: u64,
) -> Result<DialogReport, AssistantError> {
    let (mut network, mut answerer) = (network.clone(), answerer.cloned());
    let clarify = env.clarify_action();
    let turns = env.max_turns();
    let (mut failure, mut asked, mut actions) = (None, 0usize, 0usize);
    let mut act = |obs: &Vec<f32>| {
        // The observation ends with the one-hot turn number.
        let features = &obs[..obs.len() - turns];
        let turn = obs[obs.len() - turns..].iter().position(|&x| x == 1.0).map_or(1, |i| i + 1);
        let mut choose = || -> Result<usize, AssistantError> {
            let q = network.q_values(obs)?;
            let wants_clarify = match rule {
                ClarifyRule::Learned => argmax(q) == clarify,
                ClarifyRule::Never => false,
                ClarifyRule::Once => turn == 1,
            };
            if wants_clarify && turn < turns {
                return Ok(clarify);
            }
            Ok(match answerer.as_mut() {
                Some(answerer) => argmax(answerer.q_values(features)?),
                None => argmax(&q[..clarify]),
            })
        };
        let action = choose().unwrap_or_else(|e| {
            failure.get_or_insert(e);
            0
        });
        actions += 1;
        asked += usize::from(action == clarify);
        action
    };
    let report = evaluate(env, &mut act, episodes, seed)?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(DialogReport {
        rule,
        mean_return: report.mean_return,
        accuracy: report.success_rate.unwrap_or(0.0),
        mean_length: report.lengths.iter().sum::<usize>() as f64 / report.lengths.len().max(1) as f64,
        asked: asked as f64 / actions.max(1) as f64,
    })
}

/// What a saved clarify policy needs besides its weights (`clarify.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClarifySpec {
    /// The intents it was trained on, in output order (then *clarify*).
    pub labels: Vec<String>,
    /// How text becomes the first part of its input.
    pub featurizer: FeaturizerConfig,
    /// Utterances heard at most per request: the one-hot turn's width.
    pub max_turns: usize,
}

const CLARIFY_SPEC_FILE: &str = "clarify.json";
/// The environment id clarify-policy checkpoints record.
pub const CLARIFY_ENV_ID: &str = "dialog";
/// The clarify policy's folder inside an assistant model's folder.
pub const CLARIFY_DIR: &str = "clarify";

/// The learned dialogue policy as the assistant uses it: it decides only
/// *whether to ask* (its largest Q-value is *clarify*); the intent acted on
/// comes from the intent model. It never asks on the last turn.
#[derive(Debug, Clone)]
pub struct ClarifyPolicy<B: Backend> {
    network: QNetwork<B>,
    host: HostQNetwork,
    featurizer: HashedNgrams,
    spec: ClarifySpec,
    /// The sparse input: the transcript's features, then the turn's one-hot.
    input: SparseFeatures,
}

impl<B: Backend> ClarifyPolicy<B> {
    /// A policy from a trained dialogue network (`features + max_turns`
    /// inputs, `labels + 1` outputs).
    pub fn new(network: QNetwork<B>, spec: ClarifySpec) -> Result<Self, AssistantError> {
        let featurizer = HashedNgrams::new(spec.featurizer)?;
        if network.obs_dim() != featurizer.dim() + spec.max_turns || network.n_actions() != spec.labels.len() + 1 {
            return Err(AssistantError::Invalid {
                what: "clarify policy".into(),
                reason: format!(
                    "a network of {} inputs and {} outputs for {} features, {} turns and {} intents",
                    network.obs_dim(),
                    network.n_actions(),
                    featurizer.dim(),
                    spec.max_turns,
                    spec.labels.len()
                ),
            });
        }
        Ok(Self { host: network.to_host()?, network, featurizer, spec, input: SparseFeatures::default() })
    }

    /// The settings it was saved with.
    pub fn spec(&self) -> &ClarifySpec {
        &self.spec
    }

    /// Whether to ask for a rephrasing after hearing `transcript` (every
    /// utterance of this request so far) on turn `turn` (1-based).
    pub fn should_clarify(&mut self, transcript: &str, turn: usize) -> Result<bool, AssistantError> {
        if turn >= self.spec.max_turns {
            return Ok(false);
        }
        self.featurizer.sparse(transcript, &mut self.input);
        // The one-hot turn follows the features (indices stay ascending).
        self.input.indices.push((self.featurizer.dim() + turn.max(1) - 1) as u32);
        self.input.values.push(1.0);
        let q = self.host.q_values_sparse(&self.input.indices, &self.input.values)?;
        Ok(argmax(q) == self.spec.labels.len())
    }

    /// Saves the policy to the checkpoint directory `dir`, atomically.
    pub fn save(&self, dir: &Path, backend: String) -> Result<(), AssistantError> {
        let spec = serde_json::to_vec_pretty(&self.spec)
            .map_err(|e| AssistantError::Invalid { what: "clarify spec".into(), reason: e.to_string() })?;
        let info =
            CheckpointInfo { env_id: CLARIFY_ENV_ID.into(), step: 0, backend, run_config: serde_json::json!({}) };
        checkpoint::save_with_extras(dir, &self.network, &self.network.config(), info, &[(CLARIFY_SPEC_FILE, &spec)])?;
        Ok(())
    }

    /// Loads a policy saved by [`ClarifyPolicy::save`].
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, AssistantError> {
        let meta = checkpoint::read_meta(dir)?;
        let bytes = checkpoint::read_extra(dir, &meta, CLARIFY_SPEC_FILE)?;
        let spec: ClarifySpec = serde_json::from_slice(&bytes).map_err(|e| AssistantError::Invalid {
            what: dir.join(CLARIFY_SPEC_FILE).display().to_string(),
            reason: e.to_string(),
        })?;
        let obs_dim = spec.featurizer.dim + spec.max_turns;
        let expected = Expectation { env_id: CLARIFY_ENV_ID, obs_dim, n_actions: spec.labels.len() + 1 };
        let (network, _) = checkpoint::load::<B>(dir, &expected, device)?;
        Self::new(network, spec)
    }

    /// The policy saved beside the intent model in `model_dir`, if any.
    pub fn load_beside(model_dir: &Path, device: &B::Device) -> Result<Option<Self>, AssistantError> {
        let dir = model_dir.join(CLARIFY_DIR);
        if !dir.exists() {
            return Ok(None);
        }
        Self::load(&dir, device).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use rlhf_model::QNetworkConfig;
    use rlhf_model::backend::{CpuBackend, cpu_device};

    use super::*;

    #[test]
    fn the_clarify_decision_reads_the_features_and_the_turn_as_the_dialogue_environment_does() {
        let featurizer = FeaturizerConfig { dim: 256, ..FeaturizerConfig::default() };
        let spec = ClarifySpec { labels: vec!["a".into(), "b".into()], featurizer, max_turns: 3 };
        let texts = ["关灯", "turn it up", "嗯 那个 please", "打开客厅的灯", "play some music", "导航"];
        let hashed = HashedNgrams::new(featurizer).unwrap();
        let dense_input = |text: &str, turn: usize, input: &mut Vec<f32>| {
            hashed.featurize(text, input);
            input.extend((1..=3).map(|t| if t == turn { 1.0 } else { 0.0 }));
        };
        // Clarify's Q-value is set to the median of the best intent's, so
        // the cases below split between asking and acting.
        let random = QNetworkConfig::new(256 + 3, 3).with_hidden(vec![16]).init::<CpuBackend>(&cpu_device(), 4);
        let mut host = random.to_host().unwrap();
        let mut input = Vec::new();
        let mut best: Vec<f32> = Vec::new();
        for text in texts {
            for turn in 1..=2 {
                dense_input(text, turn, &mut input);
                let q = host.q_values(&input).unwrap();
                best.push(q[0].max(q[1]));
            }
        }
        best.sort_by(f32::total_cmp);
        let network = random.with_output(2, &[0.0; 16], best[best.len() / 2] - 1e-4).unwrap();
        let mut dense = network.to_host().unwrap();
        let mut policy = ClarifyPolicy::new(network, spec).unwrap();
        let mut decisions = Vec::new();
        for text in texts {
            for turn in 1..=2 {
                dense_input(text, turn, &mut input);
                let expected = argmax(dense.q_values(&input).unwrap()) == 2;
                decisions.push(expected);
                assert_eq!(policy.should_clarify(text, turn).unwrap(), expected, "{text} on turn {turn}");
            }
            assert!(!policy.should_clarify(text, 3).unwrap(), "the last turn always acts");
        }
        // Both decisions occur, so the comparison covers asking and acting.
        assert!(decisions.contains(&true) && decisions.contains(&false), "{decisions:?}");
        let wrong = QNetworkConfig::new(256, 3).init::<CpuBackend>(&cpu_device(), 4);
        let spec = ClarifySpec { labels: vec!["a".into(), "b".into()], featurizer, max_turns: 3 };
        assert!(ClarifyPolicy::new(wrong, spec).is_err());
    }
}
