//! The voice assistant as environments: one command ([`IntentEnv`]) or a
//! short dialogue that may ask the user to rephrase ([`DialogEnv`]).

use std::sync::Arc;

use rlhf_env::goal::EpisodeOutcome;
use rlhf_env::rng::{EnvRng, seeded_rng};
use rlhf_env::spaces::{BoxSpace, Discrete, Space};
use rlhf_env::{Env, EnvError, EpisodePhase, Snapshot, Step};
use rlhf_model::text::TextFeaturizer;

use crate::corpus::IntentCorpus;
use crate::noise::AsrNoise;

/// Rewards of the intent environments.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntentRewards {
    /// Reward for executing the user's intent.
    pub correct: f64,
    /// Reward for executing any other intent.
    pub wrong: f64,
    /// Reward for asking the user to rephrase ([`DialogEnv`] only): a small cost.
    pub clarify: f64,
}

impl Default for IntentRewards {
    fn default() -> Self {
        Self { correct: 1.0, wrong: -1.0, clarify: -0.1 }
    }
}

/// What an intent environment reports with each reset and step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntentInfo {
    /// The intent the simulated user means (an index into the labels).
    pub intent: usize,
    /// What the recogniser heard so far (utterances joined by `" | "`).
    pub transcript: String,
    /// After the answering step: whether the executed intent was the user's.
    pub correct: Option<bool>,
    /// Utterances heard in this episode.
    pub turns: usize,
}

impl EpisodeOutcome for IntentInfo {
    fn is_success(&self) -> Option<bool> {
        self.correct
    }
}

/// The part both environments share: corpus, noise, featuriser, generator and
/// the current episode.
#[derive(Debug, Clone)]
struct Conversation<F> {
    id: String,
    corpus: Arc<IntentCorpus>,
    noise: AsrNoise,
    featurizer: F,
    rewards: IntentRewards,
    rng: EnvRng,
    phase: EpisodePhase,
    info: IntentInfo,
    clean: String,
    noisy: String,
}

/// The complete state of an intent environment (see [`Snapshot`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConversationState {
    rng: EnvRng,
    phase: EpisodePhase,
    intent: usize,
    transcript: String,
    correct: Option<bool>,
    turns: usize,
}

impl<F: TextFeaturizer> Conversation<F> {
    fn new(id: String, corpus: Arc<IntentCorpus>, featurizer: F, noise: AsrNoise, rewards: IntentRewards) -> Self {
        Self {
            id,
            corpus,
            noise,
            featurizer,
            rewards,
            rng: seeded_rng(0),
            phase: EpisodePhase::NotStarted,
            info: IntentInfo::default(),
            clean: String::new(),
            noisy: String::new(),
        }
    }

    fn n_intents(&self) -> usize {
        self.corpus.labels().len()
    }

    /// Starts an episode: a new intent and its first utterance.
    fn start(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = seeded_rng(seed);
        }
        self.phase = EpisodePhase::Running;
        self.info = IntentInfo { intent: self.corpus.sample(&mut self.rng, &mut self.clean), ..Default::default() };
        self.hear();
    }

    /// The user says the current utterance (already in `clean`) through the noisy recogniser.
    fn hear(&mut self) {
        self.noise.apply(&self.clean, &mut self.rng, &mut self.noisy);
        if self.info.turns > 0 {
            self.info.transcript.push_str(" | ");
        }
        self.info.transcript.push_str(&self.noisy);
        self.info.turns += 1;
    }

    /// The user rephrases: another utterance of the same intent.
    fn rephrase(&mut self) {
        self.corpus.sample_text(self.info.intent, &mut self.rng, &mut self.clean);
        self.hear();
    }

    /// The step that executes `intent`: the episode ends.
    fn answer(&mut self, intent: usize) -> (f64, IntentInfo) {
        let correct = intent == self.info.intent;
        self.info.correct = Some(correct);
        self.phase = EpisodePhase::Ended;
        (if correct { self.rewards.correct } else { self.rewards.wrong }, self.info.clone())
    }

    fn check_action(&self, action: usize, space: &Discrete) -> Result<(), EnvError> {
        self.phase.check_step(&self.id)?;
        if !space.contains(&action) {
            return Err(EnvError::InvalidAction {
                env: self.id.clone(),
                action: format!("{action}"),
                space: space.to_string(),
            });
        }
        Ok(())
    }

    fn snapshot(&self) -> ConversationState {
        ConversationState {
            rng: self.rng.clone(),
            phase: self.phase,
            intent: self.info.intent,
            transcript: self.info.transcript.clone(),
            correct: self.info.correct,
            turns: self.info.turns,
        }
    }

    fn restore(&mut self, state: ConversationState) {
        self.rng = state.rng;
        self.phase = state.phase;
        self.info = IntentInfo {
            intent: state.intent,
            transcript: state.transcript,
            correct: state.correct,
            turns: state.turns,
        };
    }
}

fn feature_space(dim: usize) -> Result<BoxSpace, EnvError> {
    // Featurisers write L2-normalised vectors, so every entry is in [-1, 1].
    BoxSpace::uniform(-1.0, 1.0, dim)
}

/// One command, one action: a contextual bandit.
///
/// Each episode the simulated user picks an intent uniformly and says one of
/// its phrasings through the noisy recogniser; the observation is the
/// featurised text. Action `i` executes intent `i`: reward
/// [`IntentRewards::correct`] or [`IntentRewards::wrong`], and the episode
/// terminates. `info.correct` tells evaluation whether the answer was right,
/// so DQN's success rate is the accuracy.
#[derive(Debug, Clone)]
pub struct IntentEnv<F> {
    talk: Conversation<F>,
    observation_space: BoxSpace,
    action_space: Discrete,
    obs: Vec<f32>,
}

impl<F: TextFeaturizer> IntentEnv<F> {
    /// An environment over `corpus`'s intents.
    pub fn new(
        corpus: Arc<IntentCorpus>,
        featurizer: F,
        noise: AsrNoise,
        rewards: IntentRewards,
    ) -> Result<Self, EnvError> {
        let dim = featurizer.dim();
        let n = corpus.labels().len();
        Ok(Self {
            talk: Conversation::new(format!("intent:{n}"), corpus, featurizer, noise, rewards),
            observation_space: feature_space(dim)?,
            action_space: Discrete::new(n)?,
            obs: Vec::with_capacity(dim),
        })
    }

    /// The corpus the user speaks from.
    pub fn corpus(&self) -> &IntentCorpus {
        &self.talk.corpus
    }

    fn observe(&mut self) -> Vec<f32> {
        self.talk.featurizer.featurize(&self.talk.info.transcript, &mut self.obs);
        self.obs.clone()
    }
}

impl<F: TextFeaturizer> Env for IntentEnv<F> {
    type Obs = Vec<f32>;
    type Action = usize;
    type Info = IntentInfo;
    type ObsSpace = BoxSpace;
    type ActionSpace = Discrete;

    fn id(&self) -> &str {
        &self.talk.id
    }

    fn observation_space(&self) -> &BoxSpace {
        &self.observation_space
    }

    fn action_space(&self) -> &Discrete {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> (Vec<f32>, IntentInfo) {
        self.talk.start(seed);
        (self.observe(), self.talk.info.clone())
    }

    fn step(&mut self, action: usize) -> Result<Step<Vec<f32>, IntentInfo>, EnvError> {
        self.talk.check_action(action, &self.action_space)?;
        let (reward, info) = self.talk.answer(action);
        Ok(Step { obs: self.obs.clone(), reward, terminated: true, truncated: false, info })
    }
}

impl<F: TextFeaturizer> Snapshot for IntentEnv<F> {
    type State = ConversationState;

    fn snapshot(&self) -> ConversationState {
        self.talk.snapshot()
    }

    fn restore(&mut self, state: ConversationState) {
        self.talk.restore(state);
        self.talk.featurizer.featurize(&self.talk.info.transcript, &mut self.obs);
    }
}

/// A short dialogue: the assistant may ask the user to rephrase before it acts.
///
/// Actions `0..n` execute an intent and end the episode as in [`IntentEnv`];
/// action `n` (*clarify*) costs [`IntentRewards::clarify`] and the user says
/// another phrasing of the same intent, again through the noisy recogniser.
/// **The new utterance is concatenated to what was heard before**: the
/// observation is the featurised transcript of every utterance so far, so
/// evidence accumulates (a cut-off first utterance plus a clean second one is
/// read as both), followed by a one-hot of the turn number `1..=max_turns` so
/// the policy knows how many rephrasings it has left. Clarifying on the last
/// turn ends the episode as a failure: the user gives up, reward
/// [`IntentRewards::wrong`], `terminated` (not `truncated`: the turn is part of
/// the observation, so this end is a state of the task, and a learner that
/// bootstrapped past it learned to ask forever). A good policy therefore clarifies when the
/// transcript is ambiguous or garbled and answers at once otherwise.
#[derive(Debug, Clone)]
pub struct DialogEnv<F> {
    talk: Conversation<F>,
    max_turns: usize,
    observation_space: BoxSpace,
    action_space: Discrete,
    obs: Vec<f32>,
}

impl<F: TextFeaturizer> DialogEnv<F> {
    /// A dialogue over `corpus`'s intents that hears at most `max_turns` (≥ 1) utterances.
    pub fn new(
        corpus: Arc<IntentCorpus>,
        featurizer: F,
        noise: AsrNoise,
        rewards: IntentRewards,
        max_turns: usize,
    ) -> Result<Self, EnvError> {
        if max_turns == 0 {
            return Err(EnvError::InvalidConfig { field: "max_turns", reason: "must be at least 1".into() });
        }
        let dim = featurizer.dim() + max_turns;
        let n = corpus.labels().len();
        Ok(Self {
            talk: Conversation::new(format!("dialog:{n}"), corpus, featurizer, noise, rewards),
            max_turns,
            observation_space: feature_space(dim)?,
            action_space: Discrete::new(n + 1)?,
            obs: Vec::with_capacity(dim),
        })
    }

    /// The index of the clarify action (after every intent).
    pub fn clarify_action(&self) -> usize {
        self.talk.n_intents()
    }

    /// The most utterances an episode hears.
    pub fn max_turns(&self) -> usize {
        self.max_turns
    }

    /// The corpus the user speaks from.
    pub fn corpus(&self) -> &IntentCorpus {
        &self.talk.corpus
    }

    fn observe(&mut self) -> Vec<f32> {
        self.talk.featurizer.featurize(&self.talk.info.transcript, &mut self.obs);
        let turn = self.talk.info.turns.clamp(1, self.max_turns);
        self.obs.extend((1..=self.max_turns).map(|t| if t == turn { 1.0 } else { 0.0 }));
        self.obs.clone()
    }
}

impl<F: TextFeaturizer> Env for DialogEnv<F> {
    type Obs = Vec<f32>;
    type Action = usize;
    type Info = IntentInfo;
    type ObsSpace = BoxSpace;
    type ActionSpace = Discrete;

    fn id(&self) -> &str {
        &self.talk.id
    }

    fn observation_space(&self) -> &BoxSpace {
        &self.observation_space
    }

    fn action_space(&self) -> &Discrete {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> (Vec<f32>, IntentInfo) {
        self.talk.start(seed);
        (self.observe(), self.talk.info.clone())
    }

    fn step(&mut self, action: usize) -> Result<Step<Vec<f32>, IntentInfo>, EnvError> {
        self.talk.check_action(action, &self.action_space)?;
        if action < self.clarify_action() {
            let (reward, info) = self.talk.answer(action);
            return Ok(Step { obs: self.obs.clone(), reward, terminated: true, truncated: false, info });
        }
        if self.talk.info.turns >= self.max_turns {
            // The user gives up: the command failed, and the episode truly
            // ends (the turn is observed, so this is a terminal state of the
            // MDP, not a time limit to bootstrap past).
            self.talk.phase = EpisodePhase::Ended;
            self.talk.info.correct = Some(false);
            let obs = self.observe();
            return Ok(Step {
                obs,
                reward: self.talk.rewards.wrong,
                terminated: true,
                truncated: false,
                info: self.talk.info.clone(),
            });
        }
        self.talk.rephrase();
        let obs = self.observe();
        Ok(Step {
            obs,
            reward: self.talk.rewards.clarify,
            terminated: false,
            truncated: false,
            info: self.talk.info.clone(),
        })
    }
}

impl<F: TextFeaturizer> Snapshot for DialogEnv<F> {
    type State = ConversationState;

    fn snapshot(&self) -> ConversationState {
        self.talk.snapshot()
    }

    fn restore(&mut self, state: ConversationState) {
        self.talk.restore(state);
        self.observe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{Domain, Split};
    use rlhf_env::check_env;

    /// Bag of characters hashed into 64 buckets, L2-normalised: enough to test
    /// the environments without the model crate's featuriser.
    #[derive(Debug, Clone)]
    struct CharBag;

    impl TextFeaturizer for CharBag {
        fn dim(&self) -> usize {
            64
        }

        fn featurize(&self, text: &str, out: &mut Vec<f32>) {
            out.clear();
            out.resize(64, 0.0);
            for c in text.chars() {
                out[c as usize % 64] += 1.0;
            }
            let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            out.iter_mut().for_each(|v| *v /= norm);
        }
    }

    fn corpus() -> Arc<IntentCorpus> {
        Arc::new(IntentCorpus::builtin_domains(Split::Train, &[Domain::Media]).unwrap())
    }

    #[test]
    fn the_right_intent_earns_plus_one_and_any_other_minus_one() {
        let mut env = IntentEnv::new(corpus(), CharBag, AsrNoise::new(0.0), IntentRewards::default()).unwrap();
        for seed in 0..20 {
            let (_, info) = env.reset(Some(seed));
            let intent = info.intent;
            assert_eq!(info.correct, None);
            let step = env.step(intent).unwrap();
            assert_eq!(
                (step.reward, step.terminated, step.truncated, step.info.correct),
                (1.0, true, false, Some(true))
            );
            assert!(matches!(env.step(intent), Err(EnvError::EpisodeEnded { .. })));
            env.reset(Some(seed));
            let step = env.step((intent + 1) % 3).unwrap();
            assert_eq!((step.reward, step.info.correct), (-1.0, Some(false)));
        }
        assert!(matches!(env.reset(None).0.len(), 64));
        assert!(matches!(env.step(3), Err(EnvError::InvalidAction { .. })));
    }

    #[test]
    fn rewards_are_configurable() {
        let rewards = IntentRewards { correct: 2.0, wrong: -5.0, clarify: -0.5 };
        let mut env = DialogEnv::new(corpus(), CharBag, AsrNoise::new(0.0), rewards, 2).unwrap();
        let (_, info) = env.reset(Some(1));
        assert_eq!(env.step(3).unwrap().reward, -0.5);
        assert_eq!(env.step((info.intent + 1) % 3).unwrap().reward, -5.0);
    }

    #[test]
    fn clarifying_adds_an_utterance_until_the_user_gives_up() {
        let mut env = DialogEnv::new(corpus(), CharBag, AsrNoise::new(0.2), IntentRewards::default(), 3).unwrap();
        let clarify = env.clarify_action();
        let (obs, info) = env.reset(Some(4));
        assert_eq!(obs.len(), 64 + 3);
        assert_eq!(&obs[64..], &[1.0, 0.0, 0.0]);
        let first = info.transcript.clone();
        let step = env.step(clarify).unwrap();
        assert_eq!((step.reward, step.terminated, step.truncated), (-0.1, false, false));
        assert!(step.info.transcript.starts_with(&format!("{first} | ")), "{}", step.info.transcript);
        assert_eq!(&step.obs[64..], &[0.0, 1.0, 0.0]);
        assert_eq!(step.info.intent, info.intent);
        let step = env.step(clarify).unwrap();
        assert_eq!((step.truncated, step.info.turns, &step.obs[64..]), (false, 3, &[0.0, 0.0, 1.0][..]));
        let step = env.step(clarify).unwrap();
        assert!(step.terminated && !step.truncated && step.info.correct == Some(false));
        assert_eq!(step.reward, -1.0);
        assert!(env.step(0).is_err());
    }

    #[test]
    fn both_environments_pass_the_checker_and_snapshot_exactly() {
        let intent = IntentEnv::new(corpus(), CharBag, AsrNoise::new(0.3), IntentRewards::default()).unwrap();
        let dialog = DialogEnv::new(corpus(), CharBag, AsrNoise::new(0.3), IntentRewards::default(), 3).unwrap();
        check_env(&mut intent.clone(), 0, 20, 10).unwrap();
        check_env(&mut dialog.clone(), 0, 20, 10).unwrap();

        let mut a = dialog;
        a.reset(Some(9));
        a.step(3).unwrap();
        let mut b = a.clone();
        b.reset(Some(123)); // diverge, then restore
        b.restore(a.snapshot());
        for _ in 0..30 {
            let (sa, sb) = (a.step(3).unwrap(), b.step(3).unwrap());
            assert_eq!(sa, sb);
            if sa.done() {
                assert_eq!(a.reset(None), b.reset(None));
            }
        }
    }

    #[test]
    fn intents_are_drawn_uniformly() {
        let mut env = IntentEnv::new(corpus(), CharBag, AsrNoise::new(0.0), IntentRewards::default()).unwrap();
        let mut counts = [0usize; 3];
        env.reset(Some(0));
        for _ in 0..3000 {
            counts[env.reset(None).1.intent] += 1;
        }
        assert!(counts.iter().all(|&c| (900..1100).contains(&c)), "{counts:?}");
    }
}
