//! Evaluation of answering: top-1 accuracy, MRR@10, the retriever's recall
//! of the right entry among the candidates, and how often and how rightly
//! the model says "I don't know", per language.
//!
//! Every ranker (the pair model, the TF-IDF retriever alone, BM25, a Python
//! peer) is scored on the same questions heard through the same noise:
//! [`heard`] draws them once from a seed.

use burn::tensor::backend::Backend;
use rlhf_env::rng::seeded_rng;
use serde::{Deserialize, Serialize};

use super::index::AnswerIndex;
use super::kb::Question;
use super::pair::PairQNetwork;
use crate::corpus::Language;
use crate::noise::AsrNoise;

/// A question as heard: the text after the noise, the entry that answers it, its language.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// What the model hears.
    pub text: String,
    /// The entry asked for.
    pub entry: usize,
    /// The language asked in.
    pub language: Language,
}

/// Each question of `questions` heard `draws` times through noise at `rate`, drawn from `seed`.
pub fn heard(questions: &[Question], rate: f64, draws: usize, seed: u64) -> Vec<Heard> {
    let (noise, mut rng) = (AsrNoise::new(rate), seeded_rng(seed));
    let mut out = Vec::with_capacity(questions.len() * draws);
    for _ in 0..draws {
        for question in questions {
            let mut text = String::new();
            noise.apply(&question.text, &mut rng, &mut text);
            out.push(Heard { text, entry: question.entry, language: question.language });
        }
    }
    out
}

/// How one question was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The question's language.
    pub language: Language,
    /// The entry asked for.
    pub entry: usize,
    /// Whether the first stage's candidates hold it.
    pub in_candidates: bool,
    /// The ranker's order of entries, best first (at least its top 10, when it has that many).
    pub ranking: Vec<usize>,
    /// Whether the ranker said "I don't know".
    pub abstained: bool,
}

/// Scores of a set of outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct QaScores {
    /// Questions scored.
    pub questions: usize,
    /// Share whose best-ranked entry is the right one (abstaining aside).
    pub top1: f64,
    /// Mean reciprocal rank of the right entry within the first 10 (0 beyond).
    pub mrr10: f64,
    /// Share whose right entry is among the first stage's candidates (recall@k).
    pub recall: f64,
    /// Share answered with "I don't know".
    pub abstain_rate: f64,
    /// Of the abstentions, the share where the right entry was not among the
    /// candidates (abstaining was right); `None` without abstentions.
    pub abstain_right: Option<f64>,
    /// Of the questions answered, the share answered rightly; `None` when all abstained.
    pub answered_accuracy: Option<f64>,
}

impl QaScores {
    /// The scores of `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Self {
        let (mut n, mut top1, mut rr, mut recall, mut abstained, mut abstain_right, mut answered, mut answered_right) =
            (0usize, 0usize, 0.0f64, 0usize, 0usize, 0usize, 0usize, 0usize);
        for outcome in outcomes {
            n += 1;
            let first = outcome.ranking.first() == Some(&outcome.entry);
            top1 += usize::from(first);
            if let Some(rank) = outcome.ranking.iter().take(10).position(|&e| e == outcome.entry) {
                rr += 1.0 / (rank + 1) as f64;
            }
            recall += usize::from(outcome.in_candidates);
            if outcome.abstained {
                abstained += 1;
                abstain_right += usize::from(!outcome.in_candidates);
            } else {
                answered += 1;
                answered_right += usize::from(first);
            }
        }
        let share = |count: usize, of: usize| if of == 0 { None } else { Some(count as f64 / of as f64) };
        Self {
            questions: n,
            top1: share(top1, n).unwrap_or_default(),
            mrr10: if n == 0 { 0.0 } else { rr / n as f64 },
            recall: share(recall, n).unwrap_or_default(),
            abstain_rate: share(abstained, n).unwrap_or_default(),
            abstain_right: share(abstain_right, abstained),
            answered_accuracy: share(answered_right, answered),
        }
    }
}

/// Scores per language and overall.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ByLanguage {
    /// Chinese questions.
    pub zh: QaScores,
    /// English questions.
    pub en: QaScores,
    /// All questions.
    pub all: QaScores,
}

impl ByLanguage {
    /// The scores of `outcomes`, per language and overall.
    pub fn of(outcomes: &[Outcome]) -> Self {
        let of = |language: Language| QaScores::of(outcomes.iter().filter(|o| o.language == language));
        Self { zh: of(Language::Zh), en: of(Language::En), all: QaScores::of(outcomes) }
    }

    /// The scores of one language.
    pub fn language(&self, language: Language) -> &QaScores {
        match language {
            Language::Zh => &self.zh,
            Language::En => &self.en,
        }
    }
}

/// Questions scored per batch of [`evaluate`] (bounds its memory).
const EVAL_BATCH: usize = 64;

/// The pair network's outcomes on `questions` (as heard): its ranking of
/// the candidates and whether it abstained.
pub fn outcomes<B: Backend>(network: &PairQNetwork<B>, index: &AnswerIndex, questions: &[Heard]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(questions.len());
    for batch in questions.chunks(EVAL_BATCH) {
        let decisions = index.decide(network, batch.iter().map(|q| index.retrieve(&q.text)).collect());
        out.extend(batch.iter().zip(decisions).map(|(question, decision)| Outcome {
            language: question.language,
            entry: question.entry,
            in_candidates: decision.retrieved.candidates.contains(&question.entry),
            ranking: decision.ranking(),
            abstained: decision.choice().is_none(),
        }));
    }
    out
}

/// The scores of the pair network on `questions` (as heard).
pub fn evaluate<B: Backend>(network: &PairQNetwork<B>, index: &AnswerIndex, questions: &[Heard]) -> ByLanguage {
    ByLanguage::of(&outcomes(network, index, questions))
}

/// The outcomes of a ranker that never abstains (`rank` gives its order of
/// entries for a text, best first); `index`'s retriever decides recall.
pub fn ranker_outcomes(
    index: &AnswerIndex,
    questions: &[Heard],
    mut rank: impl FnMut(&str) -> Vec<usize>,
) -> Vec<Outcome> {
    questions
        .iter()
        .map(|q| Outcome {
            language: q.language,
            entry: q.entry,
            in_candidates: index.retrieve(&q.text).candidates.contains(&q.entry),
            ranking: rank(&q.text),
            abstained: false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(entry: usize, ranking: &[usize], in_candidates: bool, abstained: bool) -> Outcome {
        Outcome { language: Language::En, entry, in_candidates, ranking: ranking.to_vec(), abstained }
    }

    /// Four questions scored by hand.
    #[test]
    fn scores_follow_their_definitions() {
        let outcomes = [
            outcome(1, &[1, 2, 3], true, false), // right first: rr 1
            outcome(2, &[1, 2, 3], true, false), // second: rr 1/2, answered wrongly
            outcome(9, &[1, 2, 3], false, true), // missed by the retriever, abstained rightly
            outcome(3, &[1, 2, 3], true, true),  // third: rr 1/3, abstained wrongly
        ];
        let scores = QaScores::of(&outcomes);
        assert_eq!(scores.questions, 4);
        assert_eq!(scores.top1, 0.25);
        assert!((scores.mrr10 - (1.0 + 0.5 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
        assert_eq!(scores.recall, 0.75);
        assert_eq!(scores.abstain_rate, 0.5);
        assert_eq!(scores.abstain_right, Some(0.5));
        assert_eq!(scores.answered_accuracy, Some(0.5));
        let empty = QaScores::of(&[]);
        assert_eq!((empty.abstain_right, empty.answered_accuracy, empty.top1), (None, None, 0.0));
        // Rank 11 is beyond MRR@10.
        let far: Vec<usize> = (0..12).collect();
        assert_eq!(QaScores::of(&[outcome(10, &far, true, false)]).mrr10, 0.0);
    }
}
