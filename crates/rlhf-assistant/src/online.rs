//! Learning from feedback one answer at a time, without wrecking the model.
//!
//! Each answer's lessons ((action, reward) pairs, see
//! [`feedback::lessons`](super::feedback::lessons)) are bandit transitions:
//! the target of Q(s, a) is the reward itself (γ = 0, the episode ends with
//! the answer). One update regresses, with the mean squared error,
//!
//! - the newest lessons (every one, every update),
//! - `feedback_batch` lessons drawn again from a replay of recent feedback,
//! - `rehearsal_batch` labelled utterances from the pretraining data, all of
//!   whose Q-values are regressed to ±1 as in pretraining,
//!
//! each row weighted equally (a rehearsal row's error is averaged over its
//! outputs). The rehearsal is what keeps one answer, or a hundred answers
//! about one new domain, from erasing what the model knew.
//!
//! A **new intent** (an output marked with [`OnlineLearner::mark_new`])
//! starts from its first examples rather than at random (weight imprinting,
//! Qi, Brown & Lowe 2018): each of its first `prototype_shots` +1 lessons
//! sets its output to the linear discriminant between the prototype `p` (the
//! mean last-hidden-layer features of its examples so far) and the mean `m`
//! of what else the assistant hears (rehearsal utterances, else the replay):
//! `Q(h) = α (p − m)·h + b` with `α = 2 / ‖p − m‖²` and `b` such that
//! `Q(p) = +1` and `Q(m) = −1`, the targets pretraining gave the other
//! outputs; gradient steps refine it from there. It is off by default
//! (`prototype_shots = 0`): on the new-domain benchmark it learned the new
//! intents more slowly than gradient steps from a random start and took
//! utterances from old intents (docs/BENCHMARKS.md has the numbers).

use std::collections::VecDeque;

use crate::features::IntentFeatures;
use crate::{AsrNoise, IntentCorpus};
use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rlhf_env::rng::{EnvRng, seeded_rng, uniform_index};
use rlhf_model::text::{SparseFeatures, TextFeaturizer};
use rlhf_model::{HostQNetwork, QNetwork};
use serde::{Deserialize, Serialize};

use crate::AssistantError;
use crate::pipeline::output_indices;

/// Settings of [`OnlineLearner`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineConfig {
    /// Adam's step size.
    pub learning_rate: f64,
    /// Gradient steps per answer.
    pub updates_per_feedback: usize,
    /// Lessons kept for replay (the oldest go first).
    pub replay_capacity: usize,
    /// Replayed lessons per gradient step.
    pub feedback_batch: usize,
    /// Pretraining utterances per gradient step (0: no rehearsal).
    pub rehearsal_batch: usize,
    /// Recogniser noise of the rehearsal utterances.
    pub rehearsal_noise: f64,
    /// How many answers `undo` can take back.
    pub undo_depth: usize,
    /// A new intent's first this-many examples (+1 lessons) set its output
    /// to their prototype; 0 leaves new outputs to gradient steps alone.
    pub prototype_shots: usize,
    /// Seed of the replay and rehearsal draws.
    pub seed: u64,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            updates_per_feedback: 4,
            replay_capacity: 2_000,
            feedback_batch: 32,
            rehearsal_batch: 32,
            rehearsal_noise: 0.1,
            undo_depth: 16,
            prototype_shots: 0,
            seed: 0,
        }
    }
}

impl OnlineConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), AssistantError> {
        let bad =
            |field: &'static str, reason: &str| Err(AssistantError::InvalidConfig { field, reason: reason.into() });
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate", "must be positive and finite");
        }
        if self.replay_capacity == 0 {
            return bad("replay_capacity", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.rehearsal_noise) {
            return bad("rehearsal_noise", "must be in [0, 1]");
        }
        Ok(())
    }
}

/// One (utterance, action, reward) transition.
#[derive(Debug, Clone)]
struct Lesson {
    features: SparseFeatures,
    action: usize,
    reward: f32,
}

/// Pretraining data replayed during updates, its labels mapped to outputs.
#[derive(Debug, Clone)]
struct Rehearsal {
    corpus: IntentCorpus,
    /// Output index of each of the corpus's labels.
    outputs: Vec<usize>,
    noise: AsrNoise,
    /// With a sentence encoder: (intent, heard text) drawn once and embedded
    /// ahead, so an update does not wait for the encoder; empty with n-grams,
    /// which draw fresh utterances every time.
    pool: Vec<(usize, String)>,
}

/// Rehearsal utterances drawn once when the features include an embedding.
pub const REHEARSAL_POOL: usize = 1024;

/// `count` utterances of `corpus` (class-balanced, slots filled) passed
/// through `noise`, with their intents, drawn from `seed`.
pub fn noisy_draws(corpus: &IntentCorpus, noise: AsrNoise, count: usize, seed: u64) -> Vec<(usize, String)> {
    spoken_and_heard(corpus, noise, count, seed).into_iter().map(|(intent, _, heard)| (intent, heard)).collect()
}

/// [`noisy_draws`] with each utterance's text as spoken before the noise:
/// (intent, spoken, heard), the same draws from the same seed.
pub fn spoken_and_heard(
    corpus: &IntentCorpus,
    noise: AsrNoise,
    count: usize,
    seed: u64,
) -> Vec<(usize, String, String)> {
    let mut rng = seeded_rng(seed);
    let (mut spoken, mut heard) = (String::new(), String::new());
    (0..count)
        .map(|_| {
            let intent = corpus.sample(&mut rng, &mut spoken);
            noise.apply(&spoken, &mut rng, &mut heard);
            (intent, spoken.clone(), heard.clone())
        })
        .collect()
}

/// Everything an update changes, kept whole so `undo` can restore it.
#[derive(Clone)]
struct State<B: AutodiffBackend> {
    network: QNetwork<B>,
    optimizer: OptimizerAdaptor<Adam, QNetwork<B>, B>,
    replay: VecDeque<Lesson>,
    rng: EnvRng,
    updates: u64,
    /// Per output: for a new intent, the sum of its examples' normalised
    /// hidden features and their count (while imprinting); `None` otherwise.
    prototypes: Vec<Option<(Vec<f32>, usize)>>,
}

/// A Q-network that learns from feedback as it comes (see the module docs).
pub struct OnlineLearner<B: AutodiffBackend> {
    state: State<B>,
    history: VecDeque<State<B>>,
    featurizer: IntentFeatures,
    labels: Vec<String>,
    rehearsal: Option<Rehearsal>,
    config: OnlineConfig,
    features: SparseFeatures,
}

impl<B: AutodiffBackend> OnlineLearner<B> {
    /// A learner starting from `network`, whose outputs are `labels`.
    /// `rehearsal`, when given, must use some of those labels.
    pub fn new(
        network: QNetwork<B>,
        labels: Vec<String>,
        featurizer: IntentFeatures,
        rehearsal: Option<IntentCorpus>,
        config: OnlineConfig,
    ) -> Result<Self, AssistantError> {
        config.validate()?;
        if network.obs_dim() != featurizer.dim() || network.n_actions() != labels.len() {
            let reason = format!(
                "the network maps {} inputs to {} outputs; the featuriser writes {} and there are {} labels",
                network.obs_dim(),
                network.n_actions(),
                featurizer.dim(),
                labels.len()
            );
            return Err(AssistantError::InvalidConfig { field: "labels", reason });
        }
        let rehearsal = match rehearsal {
            None => None,
            Some(corpus) => {
                let outputs = output_indices(&corpus, &labels, "rehearsal")?;
                let noise = AsrNoise::new(config.rehearsal_noise);
                let pool = match featurizer.embedder() {
                    None => Vec::new(),
                    Some(_) => {
                        let pool = noisy_draws(&corpus, noise, REHEARSAL_POOL, config.seed ^ 0x5eed);
                        let texts: Vec<&str> = pool.iter().map(|(_, t)| t.as_str()).collect();
                        featurizer.prepare(&texts)?;
                        pool
                    }
                };
                Some(Rehearsal { corpus, outputs, noise, pool })
            }
        };
        let state = State {
            network,
            optimizer: AdamConfig::new().init(),
            replay: VecDeque::new(),
            rng: seeded_rng(config.seed),
            updates: 0,
            prototypes: vec![None; labels.len()],
        };
        Ok(Self {
            state,
            history: VecDeque::new(),
            featurizer,
            labels,
            rehearsal,
            config,
            features: SparseFeatures::default(),
        })
    }

    /// The labels, in output order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Marks `outputs` as new intents, whose first examples imprint them.
    pub fn mark_new(&mut self, outputs: impl IntoIterator<Item = usize>) {
        for output in outputs {
            if let Some(slot) = self.state.prototypes.get_mut(output) {
                *slot = Some((Vec::new(), 0));
            }
        }
    }

    /// Imprints each new intent among `lessons`' +1 actions from the
    /// running mean of its examples' hidden features (see the module docs).
    fn imprint(&mut self, lessons: &[(usize, f32)]) -> Result<(), AssistantError> {
        let shots = self.config.prototype_shots;
        let imprinted: Vec<usize> = lessons
            .iter()
            .filter(|&&(action, reward)| {
                reward > 0.0 && self.state.prototypes[action].as_ref().is_some_and(|(_, count)| *count < shots)
            })
            .map(|&(action, _)| action)
            .collect();
        if imprinted.is_empty() {
            return Ok(());
        }
        let mut host = self.state.network.to_host()?;
        let example = host.hidden_features_sparse(&self.features.indices, &self.features.values)?.to_vec();
        let mut background = self.background_mean(&mut host)?;
        background.resize(example.len(), 0.0);
        for action in imprinted {
            let Some((sum, count)) = self.state.prototypes[action].as_mut() else { continue };
            sum.resize(example.len(), 0.0);
            sum.iter_mut().zip(&example).for_each(|(s, h)| *s += h);
            *count += 1;
            let prototype: Vec<f32> = sum.iter().map(|s| s / *count as f32).collect();
            let direction: Vec<f32> = prototype.iter().zip(&background).map(|(p, m)| p - m).collect();
            let squared = direction.iter().map(|d| d * d).sum::<f32>();
            if squared <= f32::EPSILON {
                continue;
            }
            let alpha = 2.0 / squared;
            let weight: Vec<f32> = direction.iter().map(|d| alpha * d).collect();
            let at_mean = weight.iter().zip(&background).map(|(w, m)| w * m).sum::<f32>();
            self.state.network = self.state.network.with_output(action, &weight, -1.0 - at_mean)?;
        }
        Ok(())
    }

    /// The mean hidden features of what the assistant hears besides a new
    /// intent: rehearsal utterances (drawn with their own generator, so the
    /// replay's draws do not shift), else the replayed lessons, else zero.
    fn background_mean(&self, host: &mut HostQNetwork) -> Result<Vec<f32>, AssistantError> {
        const SAMPLES: usize = 128;
        let mut mean = Vec::new();
        let mut add = |host: &mut HostQNetwork, features: &SparseFeatures| -> Result<(), AssistantError> {
            let h = host.hidden_features_sparse(&features.indices, &features.values)?;
            mean.resize(h.len(), 0.0);
            mean.iter_mut().zip(h).for_each(|(m, x)| *m += x / SAMPLES as f32);
            Ok(())
        };
        if let Some(rehearsal) = &self.rehearsal {
            let mut rng = seeded_rng(self.config.seed ^ 0x5eed_ba5e);
            let (mut clean, mut heard, mut features) = (String::new(), String::new(), SparseFeatures::default());
            for _ in 0..SAMPLES {
                rehearsal.corpus.sample(&mut rng, &mut clean);
                rehearsal.noise.apply(&clean, &mut rng, &mut heard);
                self.featurizer.sparse(&heard, &mut features)?;
                add(host, &features)?;
            }
        } else if !self.state.replay.is_empty() {
            for k in 0..SAMPLES {
                add(host, &self.state.replay[k % self.state.replay.len()].features)?;
            }
        }
        Ok(mean)
    }

    /// The network as it is now.
    pub fn network(&self) -> &QNetwork<B> {
        &self.state.network
    }

    /// A copy of the network for fast answers.
    pub fn host_network(&self) -> Result<HostQNetwork, AssistantError> {
        Ok(self.state.network.to_host()?)
    }

    /// Gradient steps taken so far.
    pub fn updates(&self) -> u64 {
        self.state.updates
    }

    /// Lessons in the replay.
    pub fn replay_len(&self) -> usize {
        self.state.replay.len()
    }

    /// Learns the `lessons` ((action, reward) pairs) about `text`: they join
    /// the replay and `updates_per_feedback` gradient steps follow. Nothing
    /// happens for no lessons. [`undo`](Self::undo) takes the call back.
    pub fn learn(&mut self, text: &str, lessons: &[(usize, f32)]) -> Result<(), AssistantError> {
        if lessons.is_empty() {
            return Ok(());
        }
        self.check(lessons)?;
        if self.config.undo_depth > 0 {
            if self.history.len() == self.config.undo_depth {
                self.history.pop_front();
            }
            self.history.push_back(self.state.clone());
        }
        self.featurizer.sparse(text, &mut self.features)?;
        self.imprint(lessons)?;
        let newest: Vec<Lesson> = lessons
            .iter()
            .map(|&(action, reward)| Lesson { features: self.features.clone(), action, reward })
            .collect();
        for _ in 0..self.config.updates_per_feedback {
            self.step(&newest)?;
        }
        for lesson in newest {
            self.push_replay(lesson);
        }
        Ok(())
    }

    /// Adds lessons to the replay without training (for offline fine-tuning,
    /// followed by [`train`](Self::train)).
    pub fn remember(&mut self, text: &str, lessons: &[(usize, f32)]) -> Result<(), AssistantError> {
        self.check(lessons)?;
        self.featurizer.sparse(text, &mut self.features)?;
        for &(action, reward) in lessons {
            self.push_replay(Lesson { features: self.features.clone(), action, reward });
        }
        Ok(())
    }

    /// Adds a lesson to the replay, the oldest going first when it is full.
    fn push_replay(&mut self, lesson: Lesson) {
        if self.state.replay.len() == self.config.replay_capacity {
            self.state.replay.pop_front();
        }
        self.state.replay.push_back(lesson);
    }

    /// `steps` gradient steps on the replay (and rehearsal) alone.
    pub fn train(&mut self, steps: usize) -> Result<(), AssistantError> {
        for _ in 0..steps {
            self.step(&[])?;
        }
        Ok(())
    }

    /// Restores the state before the last [`learn`](Self::learn); `false`
    /// when there is nothing left to undo.
    pub fn undo(&mut self) -> bool {
        match self.history.pop_back() {
            Some(state) => {
                self.state = state;
                true
            }
            None => false,
        }
    }

    /// Adds an output for the new intent `label` (fresh weights seeded by
    /// `seed`, the others kept), marked new. The optimizer's moments start
    /// again, since the output layer changed shape, and the undo history is
    /// cleared: states from before the intent existed cannot be restored.
    pub fn add_intent(&mut self, label: &str, seed: u64) -> Result<(), AssistantError> {
        if label.trim().is_empty() || label.trim() != label || self.labels.iter().any(|l| l == label) {
            let reason = "an intent name must be new, non-empty, without surrounding spaces".into();
            return Err(AssistantError::Intent { name: label.to_owned(), reason });
        }
        let mut keep: Vec<Option<usize>> = (0..self.labels.len()).map(Some).collect();
        keep.push(None);
        self.state.network = self.state.network.with_actions(&keep, seed)?;
        self.state.optimizer = AdamConfig::new().init();
        self.state.prototypes.push(Some((Vec::new(), 0)));
        self.labels.push(label.to_owned());
        self.history.clear();
        Ok(())
    }

    fn check(&self, lessons: &[(usize, f32)]) -> Result<(), AssistantError> {
        match lessons.iter().find(|(a, r)| *a >= self.labels.len() || !r.is_finite()) {
            Some((action, reward)) => Err(AssistantError::InvalidConfig {
                field: "lessons",
                reason: format!("action {action} with reward {reward} for {} labels", self.labels.len()),
            }),
            None => Ok(()),
        }
    }

    /// One gradient step on `newest` plus draws from the replay and the rehearsal.
    fn step(&mut self, newest: &[Lesson]) -> Result<(), AssistantError> {
        let (dim, n) = (self.featurizer.dim(), self.labels.len());
        let state = &mut self.state;
        let replayed = if state.replay.is_empty() { 0 } else { self.config.feedback_batch };
        let rehearsed = if self.rehearsal.is_some() { self.config.rehearsal_batch } else { 0 };
        let rows = newest.len() + replayed + rehearsed;
        if rows == 0 {
            return Ok(());
        }
        let mut inputs = vec![0.0f32; rows * dim];
        let mut targets = vec![0.0f32; rows * n];
        // Row weights: 1 on a lesson's action, 1/n on each output of a rehearsal row.
        let mut weights = vec![0.0f32; rows * n];
        let mut row = 0;
        let mut put_lesson = |row: usize, lesson: &Lesson| {
            for (&i, &v) in lesson.features.indices.iter().zip(&lesson.features.values) {
                inputs[row * dim + i as usize] = v;
            }
            targets[row * n + lesson.action] = lesson.reward;
            weights[row * n + lesson.action] = 1.0;
        };
        for lesson in newest {
            put_lesson(row, lesson);
            row += 1;
        }
        for _ in 0..replayed {
            let lesson = &state.replay[uniform_index(&mut state.rng, state.replay.len())];
            put_lesson(row, lesson);
            row += 1;
        }
        if let Some(rehearsal) = &self.rehearsal {
            let (mut clean, mut heard, mut dense) = (String::new(), String::new(), Vec::new());
            for _ in 0..rehearsed {
                let intent = if rehearsal.pool.is_empty() {
                    let intent = rehearsal.corpus.sample(&mut state.rng, &mut clean);
                    rehearsal.noise.apply(&clean, &mut state.rng, &mut heard);
                    intent
                } else {
                    let (intent, text) = &rehearsal.pool[uniform_index(&mut state.rng, rehearsal.pool.len())];
                    heard.clone_from(text);
                    *intent
                };
                self.featurizer.featurize(&heard, &mut dense);
                inputs[row * dim..(row + 1) * dim].copy_from_slice(&dense);
                let out = rehearsal.outputs[intent];
                for j in 0..n {
                    targets[row * n + j] = if j == out { 1.0 } else { -1.0 };
                    weights[row * n + j] = 1.0 / n as f32;
                }
                row += 1;
            }
        }
        let device = state.network.devices().into_iter().next().unwrap_or_default();
        let tensor =
            |data: Vec<f32>, cols: usize| Tensor::<B, 2>::from_data(TensorData::new(data, [rows, cols]), &device);
        let (inputs, targets, weights) = (tensor(inputs, dim), tensor(targets, n), tensor(weights, n));
        let q = state.network.forward(inputs);
        let loss = ((q - targets).powi_scalar(2) * weights).sum().div_scalar(rows as f32);
        let value = loss.clone().into_scalar().elem::<f32>();
        if !value.is_finite() {
            return Err(AssistantError::InvalidConfig {
                field: "learning_rate",
                reason: format!("the feedback loss became {value}; lower the learning rate"),
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &state.network);
        state.network = state.optimizer.step(self.config.learning_rate, state.network.clone(), grads);
        state.updates += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Split;
    use burn::backend::Autodiff;
    use rlhf_model::QNetworkConfig;
    use rlhf_model::backend::{CpuBackend, cpu_device};
    use rlhf_model::text::FeaturizerConfig;

    type B = Autodiff<CpuBackend>;

    fn learner(labels: &[&str], rehearsal: Option<IntentCorpus>) -> OnlineLearner<B> {
        let featurizer = IntentFeatures::ngrams(FeaturizerConfig { dim: 256, ..FeaturizerConfig::default() }).unwrap();
        let network = QNetworkConfig::new(256, labels.len()).with_hidden(vec![32]).init::<B>(&cpu_device(), 3);
        let labels = labels.iter().map(|l| (*l).to_owned()).collect();
        OnlineLearner::new(network, labels, featurizer, rehearsal, OnlineConfig::default()).unwrap()
    }

    fn q(learner: &OnlineLearner<B>, text: &str) -> Vec<f32> {
        let mut features = Vec::new();
        learner.featurizer.featurize(text, &mut features);
        learner.host_network().unwrap().q_values(&features).unwrap().to_vec()
    }

    #[test]
    fn feedback_moves_the_chosen_q_value_towards_the_reward_and_undo_restores_it() {
        let mut learner = learner(&["light_on", "light_off", "volume_up"], None);
        let before = q(&learner, "打开灯");
        learner.learn("打开灯", &[(1, -1.0), (0, 1.0)]).unwrap();
        let after = q(&learner, "打开灯");
        assert!(after[0] > before[0] && after[1] < before[1], "{before:?} -> {after:?}");
        assert_eq!((learner.updates(), learner.replay_len()), (4, 2));
        assert!(learner.undo());
        assert_eq!(q(&learner, "打开灯"), before, "undo restores the weights exactly");
        assert_eq!((learner.updates(), learner.replay_len()), (0, 0));
        assert!(!learner.undo());
        // No lessons, no update; a bad action is refused before anything changes.
        learner.learn("x", &[]).unwrap();
        assert!(learner.learn("x", &[(3, 1.0)]).is_err());
        assert_eq!(learner.updates(), 0);
    }

    #[test]
    fn replayed_corrections_teach_a_new_intent() {
        let mut learner = learner(&["light_on", "light_off"], None);
        for _ in 0..10 {
            learner.learn("please turn the lights on", &[(1, -1.0), (0, 1.0)]).unwrap();
            learner.learn("lights off now", &[(0, -1.0), (1, 1.0)]).unwrap();
        }
        let (on, off) = (q(&learner, "please turn the lights on"), q(&learner, "lights off now"));
        // Every taught Q-value has crossed zero towards its reward.
        assert!(on[0] > 0.0 && on[1] < 0.0 && off[1] > 0.0 && off[0] < 0.0, "{on:?} {off:?}");
    }

    #[test]
    fn rehearsal_labels_must_be_the_models() {
        let corpus = IntentCorpus::builtin(Split::Train).unwrap().restrict(&["light_on".to_owned()]).unwrap();
        let featurizer = IntentFeatures::ngrams(FeaturizerConfig { dim: 256, ..FeaturizerConfig::default() }).unwrap();
        let network = QNetworkConfig::new(256, 1).with_hidden(vec![8]).init::<B>(&cpu_device(), 0);
        let err = OnlineLearner::new(network, vec!["fly".into()], featurizer, Some(corpus), OnlineConfig::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("`light_on`"), "{err}");
        // With the right labels, updates run on rehearsal rows too.
        let corpus = IntentCorpus::builtin(Split::Train).unwrap().restrict(&["light_on".to_owned()]).unwrap();
        let mut learner = learner(&["volume_up", "light_on"], Some(corpus));
        learner.learn("turn it up", &[(0, 1.0)]).unwrap();
        learner.train(3).unwrap();
        assert_eq!(learner.updates(), 7);
    }
}
