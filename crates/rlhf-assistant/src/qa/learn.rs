//! Learning to answer: supervised pretraining on pairs, then Q-learning from
//! users' feedback with hindsight relabeling of their corrections.
//!
//! Answer selection is a bandit (the episode ends with the answer), so the
//! target of `Q(question, choice)` is the reward itself. A [`Lesson`] is
//! one such (question, choice, target) triple; [`QaLearner`] regresses
//! the network's predictions to lessons' targets with the mean squared
//! error and Adam.
//!
//! - **Pretraining** ([`QaLearner::pretrain_step`]) knows the right entry
//!   of every training question, so every candidate gets a lesson (+1 for
//!   the right entry, −1 for the others, the right entry included when the
//!   retriever missed it) and "I don't know" gets the abstain reward.
//! - **Feedback** ([`QaLearner::interact`]) plays [`AnswerEnv`]: the
//!   learner answers ε-greedily and hears the reward. The simulated user
//!   then corrects some wrong answers (and abstentions): "this one" with the
//!   right candidate, or "none of these" when the retriever missed it.
//! - **Hindsight** ([`lessons`]): a correction tells what every other
//!   choice would have earned: the entry shown is right, so each other
//!   candidate was wrong; "none of these" makes every candidate wrong. The
//!   interaction is relabeled into those lessons, the way a correction of
//!   an intent is relabeled into a right answer for the intent named.

use std::collections::VecDeque;
use std::sync::Arc;

use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::Rng;
use rlhf_env::Env;
use rlhf_env::rng::{EnvRng, seeded_rng, uniform_f64, uniform_index};
use rlhf_model::text::SparseFeatures;
use serde::{Deserialize, Serialize};

use super::env::{AnswerEnv, AnswerRewards};
use super::index::{AnswerIndex, Choice, Retrieved};
use super::kb::PhrasingId;
use super::kb::Question;
use super::pair::PairQNetwork;
use crate::AssistantError;
use crate::noise::AsrNoise;

/// What a user says about an answer (or about "I don't know").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QaFeedback {
    /// The answer was right.
    Right,
    /// The answer was wrong (nothing more said).
    Wrong,
    /// The answer the user wanted is this entry.
    ThisOne(usize),
    /// None of the candidates answers the question.
    NoneOfThese,
}

/// What an interaction teaches: `(entry answered, or None for "I don't
/// know", target)` pairs.
pub type Taught = Vec<(Option<usize>, f32)>;

/// The lessons `(entry answered or None for "I don't know", target)` of one
/// interaction: the candidates shown, the choice made, and what the user
/// said. Without `hindsight`, only the choice made is taught, with the reward
/// it earned; with it, what the user revealed relabels the other choices too
/// (see the module docs). The choice made comes first.
pub fn lessons(
    candidates: &[usize],
    answered: Option<usize>,
    feedback: QaFeedback,
    hindsight: bool,
    rewards: &AnswerRewards,
) -> Taught {
    let (right, wrong, abstain) = (rewards.right as f32, rewards.wrong as f32, rewards.abstain as f32);
    // The entry known to be right, if the user revealed one.
    let revealed = match (feedback, answered) {
        (QaFeedback::Right, Some(entry)) => Some(entry),
        (QaFeedback::ThisOne(entry), _) => Some(entry),
        _ => None,
    };
    let made = match answered {
        None => abstain,
        Some(entry) if revealed == Some(entry) => right,
        Some(_) => wrong,
    };
    let mut out = vec![(answered, made)];
    if !hindsight || matches!(feedback, QaFeedback::Wrong) || (answered.is_none() && feedback == QaFeedback::Right) {
        return out;
    }
    if let Some(entry) = revealed.filter(|&e| Some(e) != answered) {
        out.push((Some(entry), right));
    }
    out.extend(candidates.iter().filter(|&&c| Some(c) != answered && Some(c) != revealed).map(|&c| (Some(c), wrong)));
    if feedback == QaFeedback::NoneOfThese && answered.is_some() {
        out.push((None, abstain));
    }
    out
}

/// One regression example: the network's prediction for `choice` on the
/// question of `features` should be `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lesson {
    /// The pair features of the question as heard (shared by its lessons).
    pub features: Arc<SparseFeatures>,
    /// An entry answered, or "I don't know".
    pub choice: Choice,
    /// The reward that choice earns.
    pub target: f32,
    /// The indexed phrasing the question is, left out of its entry's features.
    pub left_out: Option<PhrasingId>,
}

impl Lesson {
    /// The lessons of `taught` (from [`lessons`]) on the question `retrieved`.
    pub fn from_taught(retrieved: &Retrieved, taught: &[(Option<usize>, f32)]) -> Vec<Lesson> {
        let features = Arc::new(retrieved.features.clone());
        taught
            .iter()
            .map(|&(entry, target)| Lesson {
                features: features.clone(),
                choice: entry.map_or_else(|| retrieved.abstain(), |e| retrieved.answer(e)),
                target,
                left_out: retrieved.left_out,
            })
            .collect()
    }
}

/// Settings of [`QaLearner`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QaLearnConfig {
    /// Adam's step size.
    pub learning_rate: f64,
    /// Adam's weight decay (L2 penalty); 0 for none. With a text embedding
    /// it keeps the embedding from memorising the training phrasings (top-1
    /// on new phrasings at noise 0, zh/en: 0.61/0.56 without, 0.74/0.67 with
    /// 0.01); without one (the default network) it only flattens the learned
    /// term weights, so it is off.
    pub weight_decay: f64,
    /// Questions per pretraining step (each gives a lesson per candidate).
    pub pretrain_batch: usize,
    /// Lessons kept for replay (the oldest go first).
    pub replay_capacity: usize,
    /// Replayed lessons per gradient step, besides the newest.
    pub replay_batch: usize,
    /// Gradient steps per interaction.
    pub updates_per_interaction: usize,
    /// Pretraining questions rehearsed per feedback step (every candidate
    /// labelled, as in pretraining): what keeps feedback, which teaches
    /// mostly about the model's own choices, from wrecking the rest.
    pub rehearsal_batch: usize,
    /// Probability of a random action (a candidate or "I don't know") per interaction.
    pub epsilon: f64,
    /// Share of wrong answers and abstentions that the simulated user corrects.
    pub correction_rate: f64,
    /// Whether corrections are relabeled into lessons about every candidate ([`lessons`]).
    pub hindsight: bool,
    /// Recogniser noise of the questions asked.
    pub noise: f64,
    /// The rewards. Abstaining earns −0.5 (it is the better choice when the
    /// best candidate is right less than a quarter of the time): at −0.1
    /// the pretrained model said "I don't know" to 60–100% of new phrasings.
    pub rewards: AnswerRewards,
}

impl Default for QaLearnConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            weight_decay: 0.0,
            pretrain_batch: 16,
            replay_capacity: 5_000,
            replay_batch: 32,
            updates_per_interaction: 1,
            rehearsal_batch: 4,
            epsilon: 0.1,
            correction_rate: 0.5,
            hindsight: true,
            noise: 0.1,
            rewards: AnswerRewards { abstain: -0.5, ..AnswerRewards::default() },
        }
    }
}

impl QaLearnConfig {
    /// Checks every field; errors name the one out of range.
    pub fn validate(&self) -> Result<(), AssistantError> {
        let invalid =
            |field: &'static str, reason: &str| Err(AssistantError::InvalidConfig { field, reason: reason.into() });
        let probability = |v: f64| (0.0..=1.0).contains(&v);
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid("learning_rate", "must be a positive number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return invalid("weight_decay", "must be a number >= 0");
        }
        if self.pretrain_batch == 0 || self.updates_per_interaction == 0 {
            return invalid("pretrain_batch/updates_per_interaction", "must be at least 1");
        }
        if self.replay_capacity == 0 {
            return invalid("replay_capacity", "must be at least 1");
        }
        if !probability(self.epsilon) || !probability(self.correction_rate) || !probability(self.noise) {
            return invalid("epsilon/correction_rate/noise", "must be in [0, 1]");
        }
        Ok(())
    }
}

/// What one interaction did.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// The entry answered, `None` for "I don't know".
    pub answered: Option<usize>,
    /// The reward heard.
    pub reward: f64,
    /// What the simulated user said.
    pub feedback: QaFeedback,
    /// Lessons taught.
    pub lessons: usize,
}

/// The pair network and everything that trains it (see the module docs).
pub struct QaLearner<B: AutodiffBackend> {
    network: PairQNetwork<B>,
    optimizer: OptimizerAdaptor<Adam, PairQNetwork<B>, B>,
    replay: VecDeque<Lesson>,
    rng: EnvRng,
    config: QaLearnConfig,
    updates: u64,
    retrieved: Retrieved,
    /// Questions whose right entries are known, rehearsed during feedback.
    rehearsal: Vec<Question>,
}

impl<B: AutodiffBackend> QaLearner<B> {
    /// A learner starting from `network`, drawing its samples from `seed`.
    pub fn new(network: PairQNetwork<B>, config: QaLearnConfig, seed: u64) -> Result<Self, AssistantError> {
        config.validate()?;
        Ok(Self {
            network,
            optimizer: AdamConfig::new()
                .with_weight_decay(
                    (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32)),
                )
                .init(),
            replay: VecDeque::new(),
            rng: seeded_rng(seed),
            config,
            updates: 0,
            retrieved: Retrieved::default(),
            rehearsal: Vec::new(),
        })
    }

    /// Rehearses `questions` (labelled: their right entries known) during
    /// feedback, `rehearsal_batch` per step.
    pub fn with_rehearsal(mut self, questions: Vec<Question>) -> Self {
        self.rehearsal = questions;
        self
    }

    /// The network.
    pub fn network(&self) -> &PairQNetwork<B> {
        &self.network
    }

    /// The network without autodiff, for answering.
    pub fn valid(&self) -> PairQNetwork<B::InnerBackend> {
        self.network.valid()
    }

    /// The settings.
    pub fn config(&self) -> &QaLearnConfig {
        &self.config
    }

    /// Gradient steps taken.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// One supervised step on `pretrain_batch` questions drawn from
    /// `questions` (heard with the configured noise): every candidate, the
    /// right entry and "I don't know" each get their reward as the target.
    pub fn pretrain_step(&mut self, index: &AnswerIndex, questions: &[Question]) -> Result<f32, AssistantError> {
        if questions.is_empty() {
            return Err(AssistantError::InvalidConfig { field: "questions", reason: "nothing to pretrain on".into() });
        }
        let n = self.config.pretrain_batch;
        let batch = labelled_lessons(&mut self.rng, &mut self.retrieved, &self.config, index, questions, n);
        self.step(index, &batch, 0)
    }

    /// One interaction with `env` (whose retriever must be `index`'s): the
    /// learner answers ε-greedily, hears the reward, and the simulated user
    /// corrects a share of the misses; the lessons go to the replay and
    /// `updates_per_interaction` gradient steps follow.
    pub fn interact(&mut self, index: &AnswerIndex, env: &mut AnswerEnv) -> Result<Interaction, AssistantError> {
        let seed = self.rng.next_u64();
        let (obs, info) = env.reset(Some(seed));
        let mut retrieved = Retrieved::default();
        index.retrieve_into(&obs.question, env.leaves_out().then(|| env.question(info.question)), &mut retrieved);
        debug_assert_eq!(retrieved.candidates, obs.candidates, "the env and the index share a retriever");
        let action = if uniform_f64(&mut self.rng, 0.0, 1.0) < self.config.epsilon {
            uniform_index(&mut self.rng, retrieved.candidates.len() + 1)
        } else {
            let decision = index.decide(&self.valid(), vec![retrieved.clone()]).remove(0);
            let choice = decision.choice();
            choice.map_or(retrieved.candidates.len(), |entry| {
                retrieved.candidates.iter().position(|&c| c == entry).unwrap_or_default()
            })
        };
        let step = env.step(action.min(env.abstain_action()))?;
        let answered = step.info.answered;
        let corrects = uniform_f64(&mut self.rng, 0.0, 1.0) < self.config.correction_rate;
        let feedback = match answered {
            Some(entry) if entry == info.entry => QaFeedback::Right,
            _ if !corrects => QaFeedback::Wrong,
            _ if info.in_candidates => QaFeedback::ThisOne(info.entry),
            _ => QaFeedback::NoneOfThese,
        };
        let lessons = self.learn(index, &retrieved, answered, feedback)?;
        Ok(Interaction { answered, reward: step.reward, feedback, lessons })
    }

    /// Learns from what a user said (`feedback`) about the answer
    /// `answered` (`None`: "I don't know") to the question `retrieved`: its
    /// lessons ([`lessons`]) go to the replay after
    /// `updates_per_interaction` gradient steps on them, the replay and the
    /// rehearsal. Returns how many lessons it taught.
    pub fn learn(
        &mut self,
        index: &AnswerIndex,
        retrieved: &Retrieved,
        answered: Option<usize>,
        feedback: QaFeedback,
    ) -> Result<usize, AssistantError> {
        let taught = lessons(&retrieved.candidates, answered, feedback, self.config.hindsight, &self.config.rewards);
        let newest = Lesson::from_taught(retrieved, &taught);
        for _ in 0..self.config.updates_per_interaction {
            let n = self.config.rehearsal_batch;
            let mut rows =
                labelled_lessons(&mut self.rng, &mut self.retrieved, &self.config, index, &self.rehearsal, n);
            rows.extend(newest.iter().cloned());
            self.step(index, &rows, self.config.replay_batch)?;
        }
        for lesson in &newest {
            if self.replay.len() == self.config.replay_capacity {
                self.replay.pop_front();
            }
            self.replay.push_back(lesson.clone());
        }
        Ok(newest.len())
    }

    /// One gradient step on `newest` and `replayed` lessons drawn from the replay.
    fn step(&mut self, index: &AnswerIndex, newest: &[Lesson], replayed: usize) -> Result<f32, AssistantError> {
        let replayed = if self.replay.is_empty() { 0 } else { replayed };
        let mut rows: Vec<&Lesson> = newest.iter().collect();
        for _ in 0..replayed {
            rows.push(&self.replay[uniform_index(&mut self.rng, self.replay.len())]);
        }
        if rows.is_empty() {
            return Ok(0.0);
        }
        let device = self.network.devices().into_iter().next().unwrap_or_default();
        let pairs: Vec<_> = rows.iter().map(|l| (&*l.features, l.choice, l.left_out)).collect();
        let (predictions, order) = index.predict(&self.network, &pairs, &device);
        let targets: Vec<f32> = order.iter().map(|&i| rows[i].target).collect();
        let targets = Tensor::<B, 2>::from_data(TensorData::new(targets, [rows.len(), 1]), &device);
        let loss = (predictions - targets).powi_scalar(2).mean();
        let value = loss.clone().into_scalar().elem::<f32>();
        if !value.is_finite() {
            return Err(AssistantError::InvalidConfig {
                field: "learning_rate",
                reason: format!("the answer model's loss became {value}; lower the learning rate"),
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.network);
        self.network = self.optimizer.step(self.config.learning_rate, self.network.clone(), grads);
        self.updates += 1;
        Ok(value)
    }
}

/// The lessons of `n` questions drawn from `questions`, whose right
/// entries are known, heard with `config`'s noise: every candidate, the
/// right entry and "I don't know" get their rewards.
fn labelled_lessons(
    rng: &mut EnvRng,
    retrieved: &mut Retrieved,
    config: &QaLearnConfig,
    index: &AnswerIndex,
    questions: &[Question],
    n: usize,
) -> Vec<Lesson> {
    let noise = AsrNoise::new(config.noise);
    let rewards = config.rewards;
    let mut batch = Vec::new();
    let mut heard = String::new();
    for _ in 0..if questions.is_empty() { 0 } else { n } {
        let question = &questions[uniform_index(rng, questions.len())];
        noise.apply(&question.text, rng, &mut heard);
        index.retrieve_into(&heard, Some(question), retrieved);
        let mut taught = lessons(&retrieved.candidates, Some(question.entry), QaFeedback::Right, true, &rewards);
        taught.push((None, rewards.abstain as f32));
        batch.extend(Lesson::from_taught(retrieved, &taught));
    }
    batch
}

/// An [`AnswerEnv`] over `questions` of `index`'s knowledge base, with
/// `config`'s noise and rewards, leaving each question's own phrasing out
/// of retrieval (users ask in words the index has not seen).
pub fn answer_env(
    index: &AnswerIndex,
    questions: Vec<Question>,
    config: &QaLearnConfig,
) -> Result<AnswerEnv, AssistantError> {
    Ok(AnswerEnv::new(
        Arc::new(questions),
        index.retriever().clone(),
        index.kb().len(),
        index.k(),
        AsrNoise::new(config.noise),
        config.rewards,
    )?
    .with_leave_one_out(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REWARDS: AnswerRewards = AnswerRewards { right: 1.0, wrong: -1.0, abstain: -0.1 };

    /// Candidates 7, 3, 9; the hand-written lessons of each case.
    #[test]
    fn corrections_are_relabeled_into_lessons_about_every_candidate() {
        let candidates = [7, 3, 9];
        let cases: [(Option<usize>, QaFeedback, Taught); 8] = [
            // Answered 7, right: 7 is +1; so 3 and 9 were wrong.
            (Some(7), QaFeedback::Right, vec![(Some(7), 1.0), (Some(3), -1.0), (Some(9), -1.0)]),
            // Answered 7, wrong, nothing more: only 7 is known.
            (Some(7), QaFeedback::Wrong, vec![(Some(7), -1.0)]),
            // Answered 7, the user shows 9: 7 wrong, 9 right, 3 wrong.
            (Some(7), QaFeedback::ThisOne(9), vec![(Some(7), -1.0), (Some(9), 1.0), (Some(3), -1.0)]),
            // Shows 5, which the retriever missed: every candidate wrong, 5 right.
            (Some(7), QaFeedback::ThisOne(5), vec![(Some(7), -1.0), (Some(5), 1.0), (Some(3), -1.0), (Some(9), -1.0)]),
            // None of these: every candidate wrong, and "I don't know" was the best choice.
            (Some(7), QaFeedback::NoneOfThese, vec![(Some(7), -1.0), (Some(3), -1.0), (Some(9), -1.0), (None, -0.1)]),
            // Abstained, then the user shows 3.
            (None, QaFeedback::ThisOne(3), vec![(None, -0.1), (Some(3), 1.0), (Some(7), -1.0), (Some(9), -1.0)]),
            // Abstained, none of these.
            (None, QaFeedback::NoneOfThese, vec![(None, -0.1), (Some(7), -1.0), (Some(3), -1.0), (Some(9), -1.0)]),
            // Abstained and "right" says nothing about the candidates.
            (None, QaFeedback::Right, vec![(None, -0.1)]),
        ];
        for (answered, feedback, expected) in cases {
            assert_eq!(lessons(&candidates, answered, feedback, true, &REWARDS), expected, "{answered:?} {feedback:?}");
            // Without hindsight only the choice made is taught, with its reward.
            let plain = lessons(&candidates, answered, feedback, false, &REWARDS);
            assert_eq!(plain, expected[..1], "{answered:?} {feedback:?}");
        }
    }
}
