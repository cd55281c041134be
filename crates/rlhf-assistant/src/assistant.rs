//! The assistant behind `cargo xtask assistant`: answers utterances, takes
//! feedback, logs it durably and learns from it, and can take it back.
//!
//! Confidence is the **margin**: the best Q-value minus the second best, in
//! reward units (0 = a coin toss between two intents, 2 = one intent at +1
//! and all others at −1). A softmax of Q-values in [−1, 1] would look
//! uncertain however sure the model is.

use crate::corpus::describe_intent;
use crate::dialog::ClarifyPolicy;
use crate::{AsrNoise, IntentCorpus, Language};
use rlhf_env::rng::{EnvRng, seeded_rng, uniform_f64, uniform_index};
use rlhf_model::HostQNetwork;
use rlhf_model::text::SparseFeatures;
use serde::Serialize;

use crate::AssistantError;
use crate::feedback::{Feedback, FeedbackLog, FeedbackRecord, LogEntry, label_set_id, lessons, now_unix_ms};
use crate::online::OnlineLearner;
use crate::pipeline::output_indices;
use burn::tensor::backend::AutodiffBackend;

/// The assistant's reply to one utterance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// What was said.
    pub utterance: String,
    /// The chosen intent's index.
    pub intent: usize,
    /// The chosen intent's label.
    pub label: String,
    /// Q-value of every label.
    pub q_values: Vec<f32>,
    /// Best minus second-best Q-value.
    pub margin: f32,
    /// [`SparseFeatures::fingerprint`] of the utterance.
    pub features_hash: u64,
    /// The model that answered.
    pub model_version: u64,
    /// Which hearing of this request it is: 1, then 2 after one rephrasing, ...
    pub turn: usize,
    /// Set when the assistant asks the user to say it again instead of acting.
    pub clarify: Option<Clarification>,
}

/// The assistant asking instead of acting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clarification {
    /// The two intents it hesitates between, best first.
    pub options: [String; 2],
    /// What it says, in the language of the utterance ("关灯还是开灯？…").
    pub prompt: String,
}

impl Clarification {
    /// The question between the intents `first` and `second`, in the
    /// language of `text` (built-in intents by their spoken names).
    pub fn between(first: &str, second: &str, text: &str) -> Self {
        let language = Language::of_text(text);
        let say = |label: &str| describe_intent(label, language).unwrap_or(label).to_owned();
        let prompt = match language {
            Language::Zh => format!("您是想{}还是{}？请再说一遍。", say(first), say(second)),
            Language::En => format!("Did you mean {} or {}? Please say it again.", say(first), say(second)),
        };
        Self { options: [first.to_owned(), second.to_owned()], prompt }
    }

    /// The question for the two best intents of `answer`.
    fn new(answer: &Answer, labels: &[String], text: &str) -> Self {
        let top = answer.top(labels, 2);
        let first = top.first().map_or("", |(l, _)| l.as_str());
        let second = top.get(1).map_or(first, |(l, _)| l.as_str());
        Self::between(first, second, text)
    }
}

impl Answer {
    /// The `k` best intents with their Q-values, best first.
    pub fn top(&self, labels: &[String], k: usize) -> Vec<(String, f32)> {
        let mut order: Vec<usize> = (0..self.q_values.len()).collect();
        order.sort_by(|&a, &b| self.q_values[b].total_cmp(&self.q_values[a]));
        order.into_iter().take(k).map(|i| (labels[i].clone(), self.q_values[i])).collect()
    }
}

/// Counts over the session, for `:stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionStats {
    /// Answers given feedback (undone ones excluded).
    pub interactions: u64,
    /// Of those, confirmed right.
    pub right: u64,
    /// Said wrong without naming the right intent.
    pub wrong: u64,
    /// Corrected to another intent.
    pub corrected: u64,
    /// Without an answer.
    pub missing: u64,
    /// Feedback taken back.
    pub undone: u64,
}

impl SessionStats {
    fn count(&mut self, feedback: Feedback, sign: i64) {
        let field = match feedback {
            Feedback::Right => &mut self.right,
            Feedback::Wrong => &mut self.wrong,
            Feedback::Corrected => &mut self.corrected,
            Feedback::Missing => &mut self.missing,
        };
        *field = field.saturating_add_signed(sign);
        self.interactions = self.interactions.saturating_add_signed(sign);
    }
}

/// How the assistant treats feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssistantMode {
    /// Learn from each answer as it comes (`false`: only log).
    pub update: bool,
    /// Turn corrections into +1 lessons for the named intent (hindsight relabeling).
    pub relabel: bool,
}

impl Default for AssistantMode {
    fn default() -> Self {
        Self { update: true, relabel: true }
    }
}

/// A model answering, learning and logging (see the module docs).
pub struct Assistant<B: AutodiffBackend> {
    learner: OnlineLearner<B>,
    host: HostQNetwork,
    featurizer: crate::IntentFeatures,
    features: SparseFeatures,
    label_set: String,
    base_version: u64,
    mode: AssistantMode,
    log: Option<FeedbackLog>,
    /// Decides when to ask for a rephrasing; `None` never asks.
    clarify: Option<ClarifyPolicy<B>>,
    /// Interactions that `undo` can take back, newest last: (log id, feedback, learned).
    undoable: Vec<(Option<u64>, Feedback, bool)>,
    stats: SessionStats,
}

impl<B: AutodiffBackend> Assistant<B> {
    /// An assistant over `learner`, whose weights came from a checkpoint at
    /// step `base_version`; feedback goes to `log` when given.
    pub fn new(
        learner: OnlineLearner<B>,
        featurizer: crate::IntentFeatures,
        base_version: u64,
        mode: AssistantMode,
        log: Option<FeedbackLog>,
    ) -> Result<Self, AssistantError> {
        let host = learner.host_network()?;
        let label_set = label_set_id(learner.labels());
        Ok(Self {
            learner,
            host,
            featurizer,
            features: SparseFeatures::default(),
            label_set,
            base_version,
            mode,
            log,
            clarify: None,
            undoable: Vec::new(),
            stats: SessionStats::default(),
        })
    }

    /// The labels, in output order.
    pub fn labels(&self) -> &[String] {
        self.learner.labels()
    }

    /// The learner (its network, for saving).
    pub fn learner(&self) -> &OnlineLearner<B> {
        &self.learner
    }

    /// The log, if feedback is logged.
    pub fn log(&self) -> Option<&FeedbackLog> {
        self.log.as_ref()
    }

    /// The session's counts.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// The checkpoint's step plus the gradient steps learned since.
    pub fn model_version(&self) -> u64 {
        self.base_version + self.learner.updates()
    }

    /// The same assistant asking for a rephrasing when `policy` says so.
    pub fn with_clarify(mut self, policy: ClarifyPolicy<B>) -> Self {
        self.clarify = Some(policy);
        self
    }

    /// The clarify policy, if the assistant asks when unsure.
    pub fn clarify_policy(&self) -> Option<&ClarifyPolicy<B>> {
        self.clarify.as_ref()
    }

    /// The intent for `text`, the first hearing of a request; with a clarify
    /// policy, [`Answer::clarify`] may ask for a rephrasing instead.
    pub fn answer(&mut self, text: &str) -> Result<Answer, AssistantError> {
        self.answer_turn(text, 1, text)
    }

    /// The intent after the user said `text` again when `previous` asked:
    /// the answer reads everything heard for this request (as the dialogue
    /// environment the clarify policy learned in does).
    pub fn rephrased(&mut self, previous: &Answer, text: &str) -> Result<Answer, AssistantError> {
        let transcript = format!("{} {}", previous.utterance, text.trim());
        self.answer_turn(&transcript, previous.turn + 1, text)
    }

    fn answer_turn(&mut self, text: &str, turn: usize, latest: &str) -> Result<Answer, AssistantError> {
        self.featurizer.sparse(text, &mut self.features)?;
        let q = self.host.q_values_sparse(&self.features.indices, &self.features.values)?.to_vec();
        let intent = rlhf_model::argmax(&q);
        let second =
            q.iter().enumerate().filter(|&(i, _)| i != intent).map(|(_, &v)| v).fold(f32::NEG_INFINITY, f32::max);
        let margin = if second.is_finite() { q[intent] - second } else { 0.0 };
        let mut answer = Answer {
            utterance: text.to_owned(),
            intent,
            label: self.labels()[intent].clone(),
            q_values: q,
            margin,
            features_hash: self.features.fingerprint(),
            model_version: self.model_version(),
            turn,
            clarify: None,
        };
        if let Some(policy) = &mut self.clarify
            && policy.should_clarify(text, turn)?
        {
            answer.clarify = Some(Clarification::new(&answer, self.learner.labels(), latest));
        }
        Ok(answer)
    }

    /// Records the user's `feedback` on `answer` (`corrected`: the intent the
    /// user named), appends it to the log (on disk before this returns), and
    /// learns from it unless only logging.
    pub fn feedback(
        &mut self,
        answer: &Answer,
        feedback: Feedback,
        corrected: Option<usize>,
    ) -> Result<FeedbackRecord, AssistantError> {
        let corrected_intent = match (feedback, corrected) {
            (Feedback::Corrected, Some(c)) if c < self.labels().len() => Some(self.labels()[c].clone()),
            (Feedback::Corrected, _) => {
                return Err(AssistantError::Invalid {
                    what: "a correction".into(),
                    reason: "it needs one of the model's intents".into(),
                });
            }
            _ => None,
        };
        // Naming the chosen intent is confirming it.
        let feedback = if corrected == Some(answer.intent) { Feedback::Right } else { feedback };
        let record = FeedbackRecord {
            id: self.log.as_ref().map_or(0, FeedbackLog::next_id),
            unix_ms: now_unix_ms(),
            utterance: answer.utterance.clone(),
            features_hash: format!("{:016x}", answer.features_hash),
            label_set: self.label_set.clone(),
            action: answer.label.clone(),
            q_values: answer.q_values.clone(),
            feedback,
            corrected_intent: corrected_intent.filter(|_| feedback == Feedback::Corrected),
            model_version: answer.model_version,
        };
        if let Some(log) = &mut self.log {
            log.append(&LogEntry::Interaction(record.clone()))?;
        }
        let taught = lessons(self.labels(), &record, self.mode.relabel)?;
        let learned = self.mode.update && !taught.is_empty();
        if learned {
            self.learner.learn(&record.utterance, &taught)?;
            self.host = self.learner.host_network()?;
        }
        self.undoable.push((self.log.as_ref().map(|_| record.id), feedback, learned));
        self.stats.count(feedback, 1);
        Ok(record)
    }

    /// Takes back the last feedback: logs an undo entry and restores the
    /// model from before it. `None` when there is nothing to undo (the
    /// learner keeps its last `undo_depth` states).
    pub fn undo(&mut self) -> Result<Option<UndoneFeedback>, AssistantError> {
        let Some(&(id, feedback, learned)) = self.undoable.last() else { return Ok(None) };
        if learned && !self.learner.undo() {
            return Ok(None);
        }
        self.undoable.pop();
        if let (Some(log), Some(undoes)) = (&mut self.log, id) {
            log.append(&LogEntry::Undo { id: log.next_id(), unix_ms: now_unix_ms(), undoes })?;
        }
        if learned {
            self.host = self.learner.host_network()?;
        }
        self.stats.count(feedback, -1);
        self.stats.undone += 1;
        Ok(Some(UndoneFeedback { id, feedback }))
    }
}

/// Which feedback an undo took back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UndoneFeedback {
    /// Its id in the log, when logged.
    pub id: Option<u64>,
    /// What it was.
    pub feedback: Feedback,
}

/// A scripted user for measuring learning from feedback: says utterances
/// drawn from a corpus (through recogniser noise) and judges the answers,
/// making mistakes at `error_rate`.
///
/// A mistake is, with equal chance, a *missing* answer (no feedback) or a
/// *wrong* one: a right answer called wrong, or a wrong answer confirmed as
/// right. An honest answer is "right", or a correction naming the true
/// intent (or, at `wrong_without_correction`, just "wrong").
#[derive(Debug, Clone)]
pub struct SimulatedUser {
    corpus: IntentCorpus,
    /// Output index of each corpus label.
    outputs: Vec<usize>,
    noise: AsrNoise,
    error_rate: f64,
    wrong_without_correction: f64,
    rng: EnvRng,
    clean: String,
}

impl SimulatedUser {
    /// A user speaking `corpus` to a model with `labels` (every corpus label
    /// must be one of them).
    pub fn new(
        corpus: IntentCorpus,
        labels: &[String],
        noise: f64,
        error_rate: f64,
        wrong_without_correction: f64,
        seed: u64,
    ) -> Result<Self, AssistantError> {
        for (field, p) in
            [("error_rate", error_rate), ("noise", noise), ("wrong_without_correction", wrong_without_correction)]
        {
            if !(0.0..=1.0).contains(&p) {
                return Err(AssistantError::InvalidConfig { field, reason: format!("{p} is not in [0, 1]") });
            }
        }
        let outputs = output_indices(&corpus, labels, "labels")?;
        Ok(Self {
            corpus,
            outputs,
            noise: AsrNoise::new(noise),
            error_rate,
            wrong_without_correction,
            rng: seeded_rng(seed),
            clean: String::new(),
        })
    }

    /// Says something: the heard text goes to `out`; returns the intended output index.
    pub fn speak(&mut self, out: &mut String) -> usize {
        let intent = self.corpus.sample(&mut self.rng, &mut self.clean);
        self.noise.apply(&self.clean, &mut self.rng, out);
        self.outputs[intent]
    }

    /// The user's reaction to `answer` when `intended` was meant.
    pub fn judge(&mut self, intended: usize, answer: usize) -> (Feedback, Option<usize>) {
        let right = intended == answer;
        if uniform_f64(&mut self.rng, 0.0, 1.0) < self.error_rate {
            return if uniform_index(&mut self.rng, 2) == 0 {
                (Feedback::Missing, None)
            } else if right {
                (Feedback::Wrong, None)
            } else {
                (Feedback::Right, None)
            };
        }
        if right {
            (Feedback::Right, None)
        } else if uniform_f64(&mut self.rng, 0.0, 1.0) < self.wrong_without_correction {
            (Feedback::Wrong, None)
        } else {
            (Feedback::Corrected, Some(intended))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Split;

    fn user(error_rate: f64, wrong_without_correction: f64) -> SimulatedUser {
        let labels: Vec<String> =
            ["find_parking", "navigate_to", "query_traffic", "light_on"].map(String::from).to_vec();
        let corpus = IntentCorpus::builtin_domains(Split::Train, &[crate::Domain::Navigation]).unwrap();
        SimulatedUser::new(corpus, &labels, 0.0, error_rate, wrong_without_correction, 1).unwrap()
    }

    #[test]
    fn an_honest_user_confirms_right_answers_and_corrects_wrong_ones() {
        let mut honest = user(0.0, 0.0);
        let mut heard = String::new();
        for _ in 0..50 {
            let intended = honest.speak(&mut heard);
            assert!(intended < 3 && !heard.is_empty(), "navigation intents only: {intended} {heard}");
            assert_eq!(honest.judge(intended, intended), (Feedback::Right, None));
            assert_eq!(honest.judge(intended, 3), (Feedback::Corrected, Some(intended)));
        }
        let mut terse = user(0.0, 1.0);
        assert_eq!(terse.judge(0, 1), (Feedback::Wrong, None));
    }

    #[test]
    fn an_unreliable_user_errs_at_the_error_rate() {
        let mut careless = user(0.2, 0.0);
        let trials = 20_000;
        let errors = (0..trials).filter(|i| careless.judge(i % 3, i % 3) != (Feedback::Right, None)).count();
        let rate = errors as f64 / trials as f64;
        assert!((rate - 0.2).abs() < 0.015, "{rate}");
        // Every error on a wrong answer is a confirmation or silence, never a correction.
        let mut always = user(1.0, 0.0);
        for _ in 0..100 {
            assert!(matches!(always.judge(0, 1), (Feedback::Right | Feedback::Missing, None)));
        }
        let err = SimulatedUser::new(
            IntentCorpus::builtin_domains(Split::Train, &[crate::Domain::Phone]).unwrap(),
            &["light_on".to_owned()],
            0.0,
            0.1,
            0.0,
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not one of the model's labels"), "{err}");
    }
}
