//! Fine-tuning an intent model offline from a feedback log: every logged
//! answer is resolved to what is known about it (the right intent, the wrong
//! ones), its lessons are replayed with rehearsal, and the held-out accuracy
//! before and after is reported per intent.

use burn::tensor::backend::AutodiffBackend;
use rlhf_model::text::SparseFeatures;
use serde::Serialize;

use crate::feedback::{LogContents, resolve};
use crate::model::IntentModel;
use crate::online::{OnlineConfig, OnlineLearner};
use crate::simulate::utterances_for;
use crate::{AsrNoise, AssistantError, ClassificationReport, IntentClassifier, IntentCorpus, Split, Utterance};

/// How [`finetune_from_log`] learns and measures.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneOptions {
    /// Learn from a correction which intent was right (hindsight relabeling),
    /// not only that the answer was wrong.
    pub relabel: bool,
    /// Gradient steps; `None`: `updates_per_feedback` per lesson.
    pub steps: Option<usize>,
    /// Recogniser noise on the held-out set.
    pub noise: f64,
    /// Seed of the held-out draws.
    pub seed: u64,
}

/// One intent's recall before and after fine-tuning.
#[derive(Debug, Clone, Serialize)]
pub struct IntentChange {
    /// The intent.
    pub intent: String,
    /// Held-out utterances of it.
    pub support: u64,
    /// Recall before.
    pub recall_before: f64,
    /// Recall after.
    pub recall_after: f64,
}

/// What fine-tuning from a log did.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneReport {
    /// Rated answers in the log (undone ones excluded).
    pub interactions: usize,
    /// Distinct utterances they were about.
    pub utterances: usize,
    /// Lessons (±1 targets) learned from.
    pub lessons: usize,
    /// Gradient steps taken.
    pub steps: usize,
    /// Held-out accuracy before.
    pub accuracy_before: f64,
    /// Held-out accuracy after.
    pub accuracy_after: f64,
    /// Held-out macro F1 before.
    pub macro_f1_before: f64,
    /// Held-out macro F1 after.
    pub macro_f1_after: f64,
    /// Per intent.
    pub per_intent: Vec<IntentChange>,
}

/// The built-in test utterances of `labels`; an error when a label is not
/// a built-in intent (then the caller needs its own held-out file).
pub fn builtin_held_out(labels: &[String], seed: u64) -> Result<Vec<Utterance>, AssistantError> {
    let test = IntentCorpus::builtin(Split::Test)?;
    if let Some(label) = labels.iter().find(|l| test.label_index(l).is_none()) {
        return Err(AssistantError::Intent {
            name: label.clone(),
            reason: "not a built-in intent, so there is no built-in held-out set: pass a held-out file".into(),
        });
    }
    utterances_for(&test.restrict(labels)?, labels, 5, seed)
}

/// Learns from the interactions of `log` (already checked against the
/// model's labels), starting from `model`, and measures on `held_out`.
pub fn finetune_from_log<B: AutodiffBackend>(
    model: &IntentModel<B>,
    log: &LogContents,
    held_out: &[Utterance],
    rehearsal: Option<IntentCorpus>,
    config: OnlineConfig,
    options: &FinetuneOptions,
) -> Result<(OnlineLearner<B>, FinetuneReport), AssistantError> {
    let labels = &model.spec.labels;
    let interactions = log.interactions();
    if interactions.is_empty() {
        return Err(AssistantError::Invalid {
            what: "the feedback log".into(),
            reason: "no feedback to learn from".into(),
        });
    }
    let featurizer = model.featurizer()?;
    let mut features = SparseFeatures::default();
    let records: Vec<_> = interactions.iter().map(|(_, r)| *r).collect();
    let mut fingerprints = std::collections::HashMap::new();
    for r in &records {
        if !fingerprints.contains_key(r.utterance.as_str()) {
            featurizer.sparse(&r.utterance, &mut features)?;
            fingerprints.insert(r.utterance.as_str(), features.fingerprint());
        }
    }
    let resolved = resolve(labels, &records, options.relabel, |r| fingerprints[r.utterance.as_str()])?;
    let updates_per_feedback = config.updates_per_feedback;
    let mut learner = model.learner(rehearsal, config)?;
    let mut lessons = 0;
    for utterance in &resolved {
        let taught = utterance.lessons();
        lessons += taught.len();
        learner.remember(&utterance.utterance, &taught)?;
    }
    let steps = options.steps.unwrap_or(updates_per_feedback * lessons).max(1);
    let evaluate = |learner: &OnlineLearner<B>| -> Result<ClassificationReport, AssistantError> {
        let mut classifier = IntentClassifier::new(labels.clone(), featurizer.clone(), learner.host_network()?)?;
        classifier.evaluate(held_out, AsrNoise::new(options.noise), options.seed.wrapping_add(17))
    };
    let before = evaluate(&learner)?;
    learner.train(steps)?;
    let after = evaluate(&learner)?;
    let per_intent = before
        .per_intent
        .iter()
        .zip(&after.per_intent)
        .map(|(b, a)| IntentChange {
            intent: b.label.clone(),
            support: b.support,
            recall_before: b.recall,
            recall_after: a.recall,
        })
        .collect();
    let report = FinetuneReport {
        interactions: interactions.len(),
        utterances: resolved.len(),
        lessons,
        steps,
        accuracy_before: before.accuracy,
        accuracy_after: after.accuracy,
        macro_f1_before: before.macro_f1,
        macro_f1_after: after.macro_f1,
        per_intent,
    };
    Ok((learner, report))
}
