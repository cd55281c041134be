//! Answer selection as a contextual bandit ([`AnswerEnv`]).
//!
//! Each episode a user asks one question of the knowledge base, heard
//! through a noisy recogniser; the retriever proposes its top `k` entries.
//! The agent answers with candidate `i < k`, or abstains with action `k`
//! ("I don't know"). Rewards: [`AnswerRewards::right`] when the chosen
//! entry is the one asked for, [`AnswerRewards::wrong`] otherwise, and
//! [`AnswerRewards::abstain`] for abstaining, whatever the candidates.
//! The right entry is not always among the candidates (the retriever
//! misses some): then abstaining is the best action.

use std::sync::Arc;

use rand::Rng;
use rlhf_env::rng::{EnvRng, seeded_rng, uniform_index};
use rlhf_env::spaces::{Discrete, Space};
use rlhf_env::{Env, EnvError, EpisodePhase, Snapshot, Step};

use super::kb::Question;
use super::retriever::Retriever;
use crate::noise::AsrNoise;
use rlhf_model::text::{HashedNgrams, SparseFeatures};

/// Rewards of [`AnswerEnv`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnswerRewards {
    /// The answer asked for.
    pub right: f64,
    /// Another answer.
    pub wrong: f64,
    /// "I don't know".
    pub abstain: f64,
}

impl Default for AnswerRewards {
    fn default() -> Self {
        Self { right: 1.0, wrong: -1.0, abstain: -0.1 }
    }
}

/// What the agent sees: the question as heard and the candidate entries.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct AnswerObs {
    /// The question, through the recogniser.
    pub question: String,
    /// Entry indices, the retriever's best first (`k` of them, fewer when
    /// the knowledge base is smaller).
    pub candidates: Vec<usize>,
}

/// The set of observations: up to `k` distinct entries of `entries`.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateSpace {
    /// Entries in the knowledge base.
    pub entries: usize,
    /// Candidates per question.
    pub k: usize,
}

impl std::fmt::Display for CandidateSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Candidates(k={}, of {} entries)", self.k, self.entries)
    }
}

impl Space<AnswerObs> for CandidateSpace {
    fn contains(&self, obs: &AnswerObs) -> bool {
        let mut seen = std::collections::HashSet::new();
        obs.candidates.len() <= self.k && obs.candidates.iter().all(|&c| c < self.entries && seen.insert(c))
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> AnswerObs {
        let mut pool: Vec<usize> = (0..self.entries).collect();
        let mut candidates = Vec::with_capacity(self.k.min(self.entries));
        while candidates.len() < self.k && !pool.is_empty() {
            candidates.push(pool.swap_remove(uniform_index(rng, pool.len())));
        }
        AnswerObs { question: String::new(), candidates }
    }
}

/// How an episode went.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnswerInfo {
    /// Which of the env's questions was asked ([`AnswerEnv::question`]).
    pub question: usize,
    /// The entry asked for.
    pub entry: usize,
    /// Whether it is among the candidates.
    pub in_candidates: bool,
    /// After the step: the entry answered, `None` when the agent abstained.
    pub answered: Option<usize>,
    /// After the step: whether the answer was right (`None` before it, and when abstaining).
    pub correct: Option<bool>,
}

/// Everything [`AnswerEnv`] needs to continue where it was.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnswerState {
    rng: EnvRng,
    phase: EpisodePhase,
    obs: AnswerObs,
    info: AnswerInfo,
}

/// Answer selection over a knowledge base (see the module docs).
#[derive(Debug, Clone)]
pub struct AnswerEnv {
    id: String,
    questions: Arc<Vec<Question>>,
    retriever: Arc<Retriever>,
    noise: AsrNoise,
    rewards: AnswerRewards,
    observation_space: CandidateSpace,
    action_space: Discrete,
    rng: EnvRng,
    phase: EpisodePhase,
    obs: AnswerObs,
    info: AnswerInfo,
    /// Whether a question's own phrasing is left out of the retrieval index.
    leave_one_out: bool,
    /// Reused every episode: the retriever's featuriser and buffers.
    featurizer: HashedNgrams,
    features: SparseFeatures,
    scores: Vec<f32>,
}

impl AnswerEnv {
    /// Users ask `questions` (of the knowledge base `retriever` indexes, with
    /// `entries` entries); `k` candidates each.
    pub fn new(
        questions: Arc<Vec<Question>>,
        retriever: Arc<Retriever>,
        entries: usize,
        k: usize,
        noise: AsrNoise,
        rewards: AnswerRewards,
    ) -> Result<Self, EnvError> {
        let invalid = |reason: String| EnvError::InvalidConfig { field: "answer_env", reason };
        if k == 0 || questions.is_empty() {
            return Err(invalid(format!("needs k >= 1 ({k}) and a question ({})", questions.len())));
        }
        if let Some(q) = questions.iter().find(|q| q.entry >= entries) {
            return Err(invalid(format!("question {:?} names entry {} of {entries}", q.text, q.entry)));
        }
        let featurizer = retriever.featurizer().map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            featurizer,
            features: SparseFeatures::default(),
            scores: Vec::with_capacity(entries),
            id: format!("answer:{entries}:k{k}"),
            questions,
            retriever,
            noise,
            rewards,
            observation_space: CandidateSpace { entries, k },
            action_space: Discrete::new(k + 1)?,
            rng: seeded_rng(0),
            phase: EpisodePhase::NotStarted,
            obs: AnswerObs::default(),
            info: AnswerInfo::default(),
            leave_one_out: false,
        })
    }

    /// With `leave_one_out`, a question that the retriever indexed (a
    /// training phrasing) is retrieved as if it had not been
    /// ([`Retriever::scores_into`]): its candidates are those a new phrasing
    /// of it would get.
    pub fn with_leave_one_out(mut self, leave_one_out: bool) -> Self {
        self.leave_one_out = leave_one_out;
        self
    }

    /// Whether questions' own phrasings are left out of retrieval.
    pub fn leaves_out(&self) -> bool {
        self.leave_one_out
    }

    /// The `i`th question users ask (see [`AnswerInfo::question`]).
    pub fn question(&self, i: usize) -> &Question {
        &self.questions[i]
    }

    /// The abstain action ("I don't know"): `k`.
    pub fn abstain_action(&self) -> usize {
        self.observation_space.k
    }
}

impl Env for AnswerEnv {
    type Obs = AnswerObs;
    type Action = usize;
    type Info = AnswerInfo;
    type ObsSpace = CandidateSpace;
    type ActionSpace = Discrete;

    fn id(&self) -> &str {
        &self.id
    }

    fn observation_space(&self) -> &CandidateSpace {
        &self.observation_space
    }

    fn action_space(&self) -> &Discrete {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> (AnswerObs, AnswerInfo) {
        if let Some(seed) = seed {
            self.rng = seeded_rng(seed);
        }
        let question = uniform_index(&mut self.rng, self.questions.len());
        let asked = &self.questions[question];
        let mut heard = String::new();
        self.noise.apply(&asked.text, &mut self.rng, &mut heard);
        self.featurizer.sparse(&heard, &mut self.features);
        let left_out = self.leave_one_out.then_some(asked);
        self.retriever.scores_into(&self.features, left_out, &mut self.scores);
        let mut candidates = std::mem::take(&mut self.obs.candidates);
        Retriever::top_into(&self.scores, self.observation_space.k, &mut candidates);
        self.info = AnswerInfo {
            question,
            entry: asked.entry,
            in_candidates: candidates.contains(&asked.entry),
            answered: None,
            correct: None,
        };
        self.obs = AnswerObs { question: heard, candidates };
        self.phase = EpisodePhase::Running;
        (self.obs.clone(), self.info.clone())
    }

    fn step(&mut self, action: usize) -> Result<Step<AnswerObs, AnswerInfo>, EnvError> {
        self.phase.check_step(&self.id)?;
        let answered = match action {
            a if a == self.observation_space.k => None,
            a if a < self.obs.candidates.len() => Some(self.obs.candidates[a]),
            _ => {
                return Err(EnvError::InvalidAction {
                    env: self.id.clone(),
                    action: action.to_string(),
                    space: format!("{} (with {} candidates)", self.action_space, self.obs.candidates.len()),
                });
            }
        };
        let reward = match answered {
            None => self.rewards.abstain,
            Some(entry) if entry == self.info.entry => self.rewards.right,
            Some(_) => self.rewards.wrong,
        };
        self.info.answered = answered;
        self.info.correct = answered.map(|entry| entry == self.info.entry);
        self.phase = EpisodePhase::Ended;
        Ok(Step { obs: self.obs.clone(), reward, terminated: true, truncated: false, info: self.info.clone() })
    }
}

impl Snapshot for AnswerEnv {
    type State = AnswerState;

    fn snapshot(&self) -> AnswerState {
        AnswerState { rng: self.rng.clone(), phase: self.phase, obs: self.obs.clone(), info: self.info.clone() }
    }

    fn restore(&mut self, state: AnswerState) {
        self.rng = state.rng;
        self.phase = state.phase;
        self.obs = state.obs;
        self.info = state.info;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::Split;
    use crate::qa::kb::KnowledgeBase;

    fn env(k: usize) -> AnswerEnv {
        let kb = KnowledgeBase::builtin().unwrap();
        let retriever = Arc::new(Retriever::new(&kb, Retriever::default_config()).unwrap());
        let questions = Arc::new(kb.questions(Split::Test));
        AnswerEnv::new(questions, retriever, kb.len(), k, AsrNoise::new(0.1), AnswerRewards::default()).unwrap()
    }

    #[test]
    fn rewards_follow_the_candidate_chosen_and_abstaining() {
        let mut env = env(10);
        let rewards = AnswerRewards::default();
        let (mut seen_in, mut seen_out) = (false, false);
        for seed in 0..200 {
            let (obs, info) = env.reset(Some(seed));
            assert!(env.observation_space().contains(&obs));
            assert_eq!(obs.candidates.len(), 10);
            assert_eq!(info.in_candidates, obs.candidates.contains(&info.entry));
            let snapshot = env.snapshot();
            let abstained = env.step(10).unwrap();
            assert_eq!((abstained.reward, abstained.info.correct), (rewards.abstain, None));
            env.restore(snapshot.clone());
            let first = env.step(0).unwrap();
            let right = obs.candidates[0] == info.entry;
            assert_eq!(first.reward, if right { rewards.right } else { rewards.wrong });
            assert_eq!(first.info.correct, Some(right));
            match obs.candidates.iter().position(|&c| c == info.entry) {
                Some(i) => {
                    seen_in = true;
                    env.restore(snapshot);
                    assert_eq!(env.step(i).unwrap().reward, rewards.right);
                }
                None => seen_out = true,
            }
            assert!(matches!(env.step(0), Err(EnvError::EpisodeEnded { .. })));
        }
        assert!(seen_in && seen_out, "the right answer is usually, not always, a candidate");
        assert!(matches!(env.reset(Some(1)).0.candidates.len(), 10));
        assert!(matches!(env.step(11), Err(EnvError::InvalidAction { .. })));
    }

    #[test]
    fn the_same_seed_gives_the_same_episode() {
        let (mut a, mut b) = (env(5), env(5));
        for seed in 0..20 {
            assert_eq!(a.reset(Some(seed)), b.reset(Some(seed)));
        }
    }
}
