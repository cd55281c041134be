//! Simulated feedback sessions: a scripted user speaks, judges the
//! assistant's answers and corrects them; held-out accuracy is measured as
//! the assistant learns. `cargo xtask assistant --simulate` and
//! `cargo xtask bench feedback` are built on [`simulate`].

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

use crate::assistant::{Assistant, AssistantMode, SimulatedUser};
use crate::feedback::FeedbackLog;
use crate::model::IntentModel;
use crate::online::OnlineConfig;
use crate::pipeline::output_indices;
use crate::{AsrNoise, AssistantError, Domain, IntentClassifier, IntentCorpus, Split, Utterance};

/// Utterances of `corpus` with their intents as indices into `labels`.
pub fn utterances_for(
    corpus: &IntentCorpus,
    labels: &[String],
    per_phrase: usize,
    seed: u64,
) -> Result<Vec<Utterance>, AssistantError> {
    let outputs = output_indices(corpus, labels, "labels")?;
    Ok(corpus.utterances(per_phrase, seed).into_iter().map(|u| Utterance { intent: outputs[u.intent], ..u }).collect())
}

/// A simulated feedback session's setting.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// What the user says.
    pub user: IntentCorpus,
    /// Held-out utterances of the user's intents.
    pub held_out: Vec<Utterance>,
    /// Held-out utterances of the model's original built-in intents, to see forgetting.
    pub retained: Vec<Utterance>,
    /// Utterances the user says.
    pub interactions: u64,
    /// After how many interactions to measure (0 is always measured).
    pub eval_at: Vec<u64>,
    /// Share of the user's judgements that are wrong or missing.
    pub error_rate: f64,
    /// Recogniser noise on the user's utterances and the held-out sets.
    pub noise: f64,
    /// Seed of the user and of the measurements.
    pub seed: u64,
}

impl Simulation {
    /// A session on `model` where the user speaks `data` (or the built-in
    /// training split of `domains`), measured on `eval` (or the test split
    /// of `domains`, or `data` itself) and on the model's original built-in
    /// intents.
    pub fn new<B: AutodiffBackend>(
        model: &IntentModel<B>,
        data: Option<&Path>,
        eval: Option<&Path>,
        domains: &[Domain],
        seed: u64,
    ) -> Result<Self, AssistantError> {
        let (user, held_out) = user_and_held_out(&model.spec.labels, data, eval, domains, seed)?;
        Ok(Self {
            user,
            held_out,
            retained: retained_set(model, seed)?,
            interactions: 500,
            eval_at: vec![50, 100, 200, 500],
            error_rate: 0.0,
            noise: 0.1,
            seed,
        })
    }
}

/// What the simulated user says (`data`, or the training split of
/// `domains`) and the held-out utterances to measure on (`eval`, or the
/// test split of `domains`, or `data` itself).
fn user_and_held_out(
    labels: &[String],
    data: Option<&Path>,
    eval: Option<&Path>,
    domains: &[Domain],
    seed: u64,
) -> Result<(IntentCorpus, Vec<Utterance>), AssistantError> {
    let eval = eval.map(|path| IntentCorpus::from_path(path, Some(labels))).transpose()?;
    Ok(match data {
        Some(path) => {
            let user = IntentCorpus::from_path(path, Some(labels))?;
            let held_out = eval.as_ref().unwrap_or(&user).utterances(1, seed);
            (user, held_out)
        }
        None => {
            let user = IntentCorpus::builtin_domains(Split::Train, domains)?;
            let held_out = match eval {
                Some(corpus) => corpus.utterances(1, seed),
                None => utterances_for(&IntentCorpus::builtin_domains(Split::Test, domains)?, labels, 5, seed)?,
            };
            (user, held_out)
        }
    })
}

/// The built-in test utterances of the model's original built-in intents.
pub fn retained_set<B: AutodiffBackend>(model: &IntentModel<B>, seed: u64) -> Result<Vec<Utterance>, AssistantError> {
    let test = IntentCorpus::builtin(Split::Test)?;
    let known = test.known_labels(&model.original_labels);
    if known.is_empty() {
        return Ok(Vec::new());
    }
    utterances_for(&test.restrict(&known)?, &model.spec.labels, 5, seed)
}

/// Accuracy at one point of a simulated session.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationPoint {
    /// Interactions so far.
    pub interactions: u64,
    /// On the held-out utterances of the user's intents.
    pub accuracy: f64,
    /// On the original intents' test split (forgetting shows here).
    pub retained_accuracy: Option<f64>,
    /// Share of the answers so far that were right.
    pub online_accuracy: f64,
}

/// Plays `simulation` and measures at every `eval_at` point (and at 0);
/// the feedback goes to `log` when given.
pub fn simulate<B: AutodiffBackend>(
    model: &IntentModel<B>,
    config: OnlineConfig,
    rehearsal: Option<IntentCorpus>,
    mode: AssistantMode,
    simulation: &Simulation,
    log: Option<FeedbackLog>,
) -> Result<Vec<SimulationPoint>, AssistantError> {
    let labels = model.spec.labels.clone();
    let featurizer = model.featurizer()?;
    let learner = model.learner(rehearsal, config)?;
    let mut assistant = Assistant::new(learner, featurizer.clone(), model.step, mode, log)?;
    let mut user = SimulatedUser::new(
        simulation.user.clone(),
        &labels,
        simulation.noise,
        simulation.error_rate,
        0.0,
        simulation.seed,
    )?;
    let eval_seed = simulation.seed.wrapping_add(17);
    let noise = AsrNoise::new(simulation.noise);
    let measure = |assistant: &Assistant<B>, utterances: &[Utterance]| -> Result<f64, AssistantError> {
        let host = assistant.learner().host_network()?;
        let mut classifier = IntentClassifier::new(labels.clone(), featurizer.clone(), host)?;
        Ok(classifier.evaluate(utterances, noise, eval_seed)?.accuracy)
    };
    let mut points = Vec::new();
    let (mut heard, mut right) = (String::new(), 0u64);
    for done in 0..=simulation.interactions {
        if done == 0 || simulation.eval_at.contains(&done) {
            let retained =
                if simulation.retained.is_empty() { None } else { Some(measure(&assistant, &simulation.retained)?) };
            points.push(SimulationPoint {
                interactions: done,
                accuracy: measure(&assistant, &simulation.held_out)?,
                retained_accuracy: retained,
                online_accuracy: if done == 0 { 0.0 } else { right as f64 / done as f64 },
            });
        }
        if done == simulation.interactions {
            break;
        }
        let intended = user.speak(&mut heard);
        let answer = assistant.answer(&heard)?;
        right += u64::from(answer.intent == intended);
        let (feedback, corrected) = user.judge(intended, answer.intent);
        assistant.feedback(&answer, feedback, corrected)?;
    }
    Ok(points)
}

/// The setting of the new-domain benchmark: the checkpoint in `dir` with
/// fresh outputs for the intents of `domains`, and a session where the user
/// speaks those domains (training split), measured on their test split and
/// on the model's original intents.
pub fn new_domain_session<B: AutodiffBackend>(
    dir: &Path,
    domains: &[Domain],
    seed: u64,
    device: &B::Device,
) -> Result<(IntentModel<B>, Simulation), AssistantError> {
    let new_intents: Vec<String> = domains.iter().flat_map(|d| d.intents().map(str::to_owned)).collect();
    let model = IntentModel::<B>::load(dir, &new_intents, seed, device)?;
    let simulation = Simulation::new(&model, None, None, domains, seed)?;
    Ok((model, simulation))
}
