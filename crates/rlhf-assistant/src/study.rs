//! The pipeline's studies, run stage by stage over seeds: the source →
//! target transfer study (pretrain, learn from rewards, fine-tune, against
//! training from scratch), the dialogue policy against fixed rules, and the
//! all-intent assistant model that `cargo xtask pipeline` deploys.
//! `xtask` runs them and writes the reports.

use std::ops::ControlFlow;
use std::sync::Arc;

use crate::features::IntentFeatures;
use burn::tensor::backend::AutodiffBackend;
use rlhf_algo::AlgoError;
use rlhf_algo::callbacks::{ProgressCallback, every, progress_bar as progress};
use rlhf_algo::dqn::Dqn;
use rlhf_algo::stats::{self, Estimate, OverSeeds};
use rlhf_model::{HostQNetwork, QNetwork};
use serde::Serialize;

use crate::dialog::{ClarifyRule, DialogReport, play_dialog};
use crate::pipeline::{IntentModelSpec, classifier_of, intent_env, learn_from_rewards, new_network, shared_outputs};
use crate::{
    AsrNoise, AssistantError, ClassificationReport, DialogEnv, IntentClassifier, IntentCorpus, IntentRewards, Language,
    PipelineConfig, PretrainConfig, Utterance, pretrain,
};

/// Test accuracy to reach in the transfer comparison.
pub const TRANSFER_TARGET: f64 = 0.9;

/// The learned dialogue policy against the fixed rules at one noise rate.
#[derive(Debug, Clone, Serialize)]
pub struct DialogComparison {
    /// Recogniser noise of training and test.
    pub noise: f64,
    /// One report per rule, the learned policy first.
    pub policies: Vec<DialogReport>,
}

/// One stage of one seed, scored on its test set.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// `pretrain`, `rl`, `transfer` or `finetune`.
    pub stage: &'static str,
    /// `source` or `target`.
    pub domains: &'static str,
    /// Environment interactions of the stage.
    pub interactions: u64,
    /// Accuracy on the Chinese test utterances.
    pub accuracy_zh: f64,
    /// Accuracy on the English test utterances.
    pub accuracy_en: f64,
    /// The whole classification report.
    pub report: ClassificationReport,
}

/// Accuracy overall and per language.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LanguageAccuracy {
    /// Over every utterance.
    pub accuracy: f64,
    /// Over the Chinese ones.
    pub accuracy_zh: f64,
    /// Over the English ones.
    pub accuracy_en: f64,
}

/// Fine-tuning from the source network against training from scratch.
#[derive(Debug, Clone, Serialize)]
pub struct TransferReport {
    /// Test accuracy to reach.
    pub target_accuracy: f64,
    /// Seeds of each side.
    pub seeds: u64,
    /// Interactions of each run.
    pub budget: u64,
    /// Per seed: interactions until test accuracy first reached the target (None: never).
    pub finetune_steps_to_target: Vec<Option<u64>>,
    /// The same from scratch.
    pub scratch_steps_to_target: Vec<Option<u64>>,
    /// Interactions to the target over seeds; a seed that never reached it counts the budget.
    pub finetune_to_target: OverSeeds,
    /// The same from scratch.
    pub scratch_to_target: OverSeeds,
    /// The probability that a fine-tuned run reaches the target in fewer
    /// interactions than one from scratch (ties, such as both never, count half).
    pub finetune_improvement: Option<Estimate>,
    /// Test accuracy against interactions, IQM over seeds.
    pub finetune_curve: Vec<(u64, Estimate)>,
    /// The same from scratch.
    pub scratch_curve: Vec<(u64, Estimate)>,
}

/// The test utterances of `test`, fixed by `seed`: the Chinese ones first, then the English.
pub struct TestSet {
    /// The utterances, Chinese first.
    pub utterances: Vec<Utterance>,
    /// How many are Chinese.
    pub chinese: usize,
}

impl TestSet {
    /// `per_phrase` utterances of every phrasing of `test` (a language
    /// without phrasings has none).
    pub fn new(test: &IntentCorpus, per_phrase: usize, seed: u64) -> Result<Self, AssistantError> {
        let of = |language: Language, seed: u64| -> Result<Vec<Utterance>, AssistantError> {
            if !test.phrases().iter().any(|p| p.language == Some(language)) {
                return Ok(Vec::new());
            }
            Ok(test.language(language)?.utterances(per_phrase, seed))
        };
        let mut utterances = of(Language::Zh, seed)?;
        let chinese = utterances.len();
        utterances.extend(of(Language::En, seed ^ 1)?);
        Ok(Self { utterances, chinese })
    }

    /// The report on every utterance, and the accuracy in Chinese and in English.
    pub fn evaluate(
        &self,
        classifier: &mut IntentClassifier,
        noise: f64,
        seed: u64,
    ) -> Result<(ClassificationReport, f64, f64), AssistantError> {
        let predicted = classifier.predict_all(&self.utterances, AsrNoise::new(noise), seed)?;
        // NaN for a language without utterances (a user's file in one language).
        let accuracy = |range: std::ops::Range<usize>| {
            let n = range.len() as f64;
            range.filter(|&i| predicted[i] == self.utterances[i].intent).count() as f64 / n
        };
        let (zh, en) = (accuracy(0..self.chinese), accuracy(self.chinese..self.utterances.len()));
        let pairs = self.utterances.iter().zip(&predicted).map(|(u, &p)| (u.intent, p));
        Ok((ClassificationReport::new(classifier.labels(), pairs), zh, en))
    }
}

/// The test sets every seed's stages are scored on.
pub struct StageTests<'a> {
    /// The source domains' test split.
    pub source: &'a TestSet,
    /// The target domains' test split.
    pub target: &'a TestSet,
    /// Seed of the recogniser noise while scoring.
    pub eval_seed: u64,
}

/// The training corpora of the stages.
pub struct StageCorpora<'a> {
    /// The source domains' training split.
    pub source: &'a Arc<IntentCorpus>,
    /// The target domains' training split.
    pub target: &'a Arc<IntentCorpus>,
}

/// Stages 1–3 of the pipeline on one seed.
pub struct StageRun<B: AutodiffBackend> {
    /// Every stage's scores, in order.
    pub stages: Vec<StageReport>,
    /// `step,loss` rows of pretraining, CSV.
    pub pretrain_losses: String,
    /// The network after the RL stage on the source domains.
    pub source_network: QNetwork<B>,
    /// The network fine-tuned to the target domains.
    pub target_network: QNetwork<B>,
    /// The source output each target output starts from (shared intents).
    pub keep: Vec<Option<usize>>,
}

/// Pretrains on the source domains, Q-learns from their rewards, and
/// fine-tunes to the target domains, scoring every stage on the test sets.
pub fn stages<B: AutodiffBackend>(
    config: &PipelineConfig,
    featurizer: &IntentFeatures,
    corpora: &StageCorpora<'_>,
    tests: &StageTests<'_>,
    device: &B::Device,
) -> Result<StageRun<B>, AssistantError> {
    let (source_labels, target_labels) = (corpora.source.labels(), corpora.target.labels());
    let mut stages = Vec::new();
    let eval_seed = tests.eval_seed;
    let mut record = |stage, domains, interactions, network: &QNetwork<B>, labels: &[String], set: &TestSet| {
        let spec = IntentModelSpec::new(labels.to_vec(), featurizer);
        let mut classifier = classifier_of(network, &spec)?;
        let (report, accuracy_zh, accuracy_en) = set.evaluate(&mut classifier, config.noise, eval_seed)?;
        tracing::info!(
            seed = config.seed,
            "{stage} ({domains}) after {interactions} interactions: accuracy {:.3}, macro F1 {:.3}",
            report.accuracy,
            report.macro_f1
        );
        stages.push(StageReport { stage, domains, interactions, accuracy_zh, accuracy_en, report });
        Ok::<_, AssistantError>(())
    };

    // 1. Pretrain on the source domains' labelled training utterances.
    let (network, pretrain_losses) = pretrain_stage::<B>(config, &config.pretrain, featurizer, corpora.source, device)?;
    record("pretrain", "source", 0, &network, source_labels, tests.source)?;

    // 2. Q-learning from the environment's rewards on the source domains.
    let reinforce =
        |start, corpus, steps, learning_rate| reinforce::<B>(config, featurizer, start, corpus, steps, learning_rate);
    let source_network = reinforce(network, corpora.source, config.rl_steps, config.rl_learning_rate)?;
    record("rl", "source", config.rl_steps, &source_network, source_labels, tests.source)?;

    // 3. Fine-tune to the target domains: new output layer, shared intents kept.
    let keep = shared_outputs(source_labels, target_labels);
    let start = source_network.with_actions(&keep, config.seed.wrapping_add(1))?;
    record("transfer", "target", 0, &start, target_labels, tests.target)?;
    let target_network = reinforce(start, corpora.target, config.finetune_steps, config.finetune_learning_rate)?;
    record("finetune", "target", config.finetune_steps, &target_network, target_labels, tests.target)?;
    Ok(StageRun { stages, pretrain_losses, source_network, target_network, keep })
}

/// One stage's test accuracy over the seeds of the pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct StageOverSeeds {
    /// The stage's name.
    pub stage: &'static str,
    /// `source` or `target`.
    pub domains: &'static str,
    /// Accuracy over every test utterance.
    pub accuracy: OverSeeds,
    /// Over the Chinese ones.
    pub accuracy_zh: OverSeeds,
    /// Over the English ones.
    pub accuracy_en: OverSeeds,
}

/// Step 1: a fresh network of `config`'s shape pretrained on `corpus` with `pretrain_config`,
/// and its loss curve as `step,loss` CSV rows.
pub fn pretrain_stage<B: AutodiffBackend>(
    config: &PipelineConfig,
    pretrain_config: &PretrainConfig,
    featurizer: &IntentFeatures,
    corpus: &IntentCorpus,
    device: &B::Device,
) -> Result<(QNetwork<B>, String), AssistantError> {
    let pretrain_config = PretrainConfig { seed: config.seed, ..pretrain_config.clone() };
    let bar = progress(pretrain_config.steps as u64, &format!("pretraining steps (seed {})", config.seed));
    let mut losses = String::from("step,loss\n");
    let network = new_network::<B>(config, featurizer, corpus.labels().len(), device, config.seed);
    let network = pretrain(network, corpus, featurizer, &pretrain_config, |step, loss| {
        bar.set_position(step as u64);
        losses.push_str(&format!("{step},{loss}\n"));
    })?;
    bar.finish_and_clear();
    Ok((network, losses))
}

/// Step 2 (or 3): Q-learning from the rewards of `corpus`'s intent
/// environment for `steps` interactions, starting from `start`.
pub fn reinforce<B: AutodiffBackend>(
    config: &PipelineConfig,
    featurizer: &IntentFeatures,
    start: QNetwork<B>,
    corpus: &Arc<IntentCorpus>,
    steps: u64,
    learning_rate: f64,
) -> Result<QNetwork<B>, AssistantError> {
    if steps == 0 {
        return Ok(start);
    }
    let mut env = intent_env(corpus.clone(), featurizer, config.noise)?;
    let dqn = config.bandit_dqn(steps, learning_rate, true, config.seed);
    let bar = progress(steps, "interactions");
    let agent = learn_from_rewards(start, &mut env, dqn, &mut [&mut ProgressCallback::from_bar(bar.clone())])?;
    bar.finish_and_clear();
    Ok(agent.online())
}

/// Every stage's accuracy over the seeds of `runs`, in stage order.
pub fn stage_accuracy<B: AutodiffBackend>(runs: &[StageRun<B>]) -> Vec<StageOverSeeds> {
    let Some(first) = runs.first() else { return Vec::new() };
    first
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let over = |value: fn(&StageReport) -> f64| {
                OverSeeds::new(&runs.iter().map(|run| value(&run.stages[i])).collect::<Vec<_>>())
            };
            StageOverSeeds {
                stage: stage.stage,
                domains: stage.domains,
                accuracy: over(|s| s.report.accuracy),
                accuracy_zh: over(|s| s.accuracy_zh),
                accuracy_en: over(|s| s.accuracy_en),
            }
        })
        .collect()
}

/// Trains DQN on the dialogue task at `noise` and plays it against the fixed
/// clarify rules on the test phrasings, acting with `answerer`'s intents
/// when given (the assistant's intent model). Returns the comparison and
/// the trained dialogue network.
pub fn dialog_stage<B: AutodiffBackend>(
    device: &B::Device,
    config: &PipelineConfig,
    featurizer: &rlhf_model::text::HashedNgrams,
    train: &Arc<IntentCorpus>,
    test: &IntentCorpus,
    noise: f64,
    answerer: Option<&HostQNetwork>,
) -> Result<(DialogComparison, QNetwork<B>), AssistantError> {
    let dialog_env = |corpus: Arc<IntentCorpus>| {
        DialogEnv::new(
            corpus,
            featurizer.clone(),
            AsrNoise::new(noise),
            IntentRewards::default(),
            config.dialog_max_turns,
        )
    };
    let mut env = dialog_env(train.clone())?;
    let mut agent = Dqn::<B>::for_env(config.dialog_dqn(config.seed), &env, device.clone())?;
    let bar = progress(config.dialog_steps, &format!("dialogue interactions (noise {noise})"));
    agent.learn(&mut env, config.dialog_steps, &mut [&mut ProgressCallback::from_bar(bar.clone())])?;
    bar.finish_and_clear();
    let policy = agent.greedy_policy().network().clone();
    let mut test_env = dialog_env(Arc::new(test.clone()))?;
    let seed = config.seed.wrapping_add(31);
    let policies = [ClarifyRule::Learned, ClarifyRule::Never, ClarifyRule::Once]
        .into_iter()
        .map(|rule| play_dialog(&policy, answerer, &mut test_env, rule, config.dialog_eval_episodes, seed))
        .collect::<Result<_, _>>()?;
    Ok((DialogComparison { noise, policies }, agent.online()))
}

/// How long the transfer comparison runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TransferSettings {
    /// Seeds of each side.
    pub seeds: u64,
    /// Interactions of each run.
    pub steps: u64,
    /// Interactions between two test evaluations.
    pub every: u64,
}

/// Fine-tunes the source network to the target domains and trains a network
/// from scratch on them, `settings.seeds` times each, probing test accuracy
/// every `settings.every` interactions.
#[allow(clippy::too_many_arguments)]
pub fn transfer<B: AutodiffBackend>(
    device: &B::Device,
    args: &TransferSettings,
    config: &PipelineConfig,
    featurizer: &IntentFeatures,
    source_network: &QNetwork<B>,
    keep: &[Option<usize>],
    target_corpus: &Arc<IntentCorpus>,
    target_labels: &[String],
    tests: &TestSet,
) -> Result<TransferReport, AssistantError> {
    let spec = IntentModelSpec::new(target_labels.to_vec(), featurizer);
    let run = |start: QNetwork<B>, pretrained: bool, seed: u64| -> Result<Vec<(u64, f64)>, AssistantError> {
        let lr = if pretrained { config.finetune_learning_rate } else { 1e-3 };
        let dqn = config.bandit_dqn(args.steps, lr, pretrained, seed);
        let mut env = intent_env(target_corpus.clone(), featurizer, config.noise)?;
        let mut curve = Vec::new();
        let mut classifier = classifier_of(&start, &spec)?;
        curve.push((0, classifier.evaluate(&tests.utterances, AsrNoise::new(config.noise), seed)?.accuracy));
        let mut probe = every(args.every, |step, agent: &Dqn<B>| {
            let network = agent.greedy_policy().network().clone();
            let score = || {
                let mut classifier = IntentClassifier::new(spec.labels.clone(), featurizer.clone(), network)?;
                classifier.evaluate(&tests.utterances, AsrNoise::new(config.noise), seed)
            };
            curve.push((step, score().map_err(|e| AlgoError::Callback(e.into()))?.accuracy));
            Ok(ControlFlow::Continue(()))
        });
        learn_from_rewards(start, &mut env, dqn, &mut [&mut probe])?;
        Ok(curve)
    };
    let bar = progress(args.seeds * 2, "transfer runs");
    let (mut finetune, mut scratch) = (Vec::new(), Vec::new());
    for seed in 0..args.seeds {
        let seed = config.seed.wrapping_add(100 + seed);
        finetune.push(run(source_network.with_actions(keep, seed)?, true, seed)?);
        bar.inc(1);
        scratch.push(run(new_network::<B>(config, featurizer, target_labels.len(), device, seed), false, seed)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let reach = |curves: &[Vec<(u64, f64)>]| -> Vec<Option<u64>> {
        curves.iter().map(|c| c.iter().find(|(_, acc)| *acc >= TRANSFER_TARGET).map(|(s, _)| *s)).collect()
    };
    let (finetune_steps_to_target, scratch_steps_to_target) = (reach(&finetune), reach(&scratch));
    let budget = args.steps;
    let to_target = |steps: &[Option<u64>]| steps.iter().map(|s| s.unwrap_or(budget) as f64).collect::<Vec<f64>>();
    let negated = |steps: &[Option<u64>]| to_target(steps).iter().map(|s| -s).collect::<Vec<f64>>();
    let grid: Vec<u64> = (0..=budget / args.every.max(1)).map(|k| k * args.every).collect();
    Ok(TransferReport {
        target_accuracy: TRANSFER_TARGET,
        seeds: args.seeds,
        budget,
        finetune_to_target: OverSeeds::new(&to_target(&finetune_steps_to_target)),
        scratch_to_target: OverSeeds::new(&to_target(&scratch_steps_to_target)),
        finetune_improvement: stats::probability_of_improvement_interval(
            &negated(&finetune_steps_to_target),
            &negated(&scratch_steps_to_target),
        ),
        finetune_steps_to_target,
        scratch_steps_to_target,
        finetune_curve: stats::curve_interval(&finetune, &grid),
        scratch_curve: stats::curve_interval(&scratch, &grid),
    })
}

/// The deployable assistant model of one seed: pretrained on every domain
/// of its corpus, then Q-learned from their rewards.
pub struct AssistantRun<B: AutodiffBackend> {
    /// The network, an output per label of the corpus.
    pub network: QNetwork<B>,
    /// `step,loss` rows of pretraining, CSV.
    pub pretrain_losses: String,
    /// Its scores on the test set.
    pub scores: AssistantScores,
}

/// How well an assistant model understands its test set.
#[derive(Debug, Clone, Serialize)]
pub struct AssistantScores {
    /// Without recogniser noise.
    pub noise_free: LanguageAccuracy,
    /// At the pipeline's noise.
    pub noisy: LanguageAccuracy,
    /// What adding domains cost the intents a narrower model already knew.
    pub old_intents: Option<OldIntents>,
}

/// Accuracy on the test utterances of the narrower model's intents, at the
/// pipeline's noise: the narrower model, and the all-intent one (which may
/// also answer with any of the added intents).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OldIntents {
    /// The narrower model (source domains only, after its RL stage).
    pub narrow: f64,
    /// The all-intent model.
    pub all_intents: f64,
}

/// Trains the assistant model on `train` (pretraining, then Q-learning from
/// rewards) and scores it on `tests`; `narrow` (a network over a subset of
/// the labels, with those labels) is compared on its own intents.
pub fn assistant_stage<B: AutodiffBackend>(
    config: &PipelineConfig,
    featurizer: &IntentFeatures,
    train: &Arc<IntentCorpus>,
    tests: &TestSet,
    narrow: Option<(&QNetwork<B>, &[String])>,
    device: &B::Device,
) -> Result<AssistantRun<B>, AssistantError> {
    let (network, pretrain_losses) =
        pretrain_stage::<B>(config, &config.assistant_pretrain, featurizer, train, device)?;
    let network = reinforce::<B>(config, featurizer, network, train, config.rl_steps, config.rl_learning_rate)?;
    let labels = train.labels();
    let spec = IntentModelSpec::new(labels.to_vec(), featurizer);
    let mut classifier = classifier_of(&network, &spec)?;
    let eval_seed = config.seed.wrapping_add(17);
    let mut score = |noise: f64| {
        let (report, accuracy_zh, accuracy_en) = tests.evaluate(&mut classifier, noise, eval_seed)?;
        Ok::<_, AssistantError>(LanguageAccuracy { accuracy: report.accuracy, accuracy_zh, accuracy_en })
    };
    let (noise_free, noisy) = (score(0.0)?, score(config.noise)?);
    let old_intents = match narrow {
        Some((narrow_network, narrow_labels)) => {
            // The test utterances of the narrow model's intents, in both label spaces.
            let to_narrow = shared_outputs(narrow_labels, labels);
            let (mut wide, mut small) = (Vec::new(), Vec::new());
            for u in &tests.utterances {
                if let Some(i) = to_narrow[u.intent] {
                    wide.push(u.clone());
                    small.push(Utterance { intent: i, ..u.clone() });
                }
            }
            let narrow_spec = IntentModelSpec::new(narrow_labels.to_vec(), featurizer);
            let noise = AsrNoise::new(config.noise);
            Some(OldIntents {
                narrow: classifier_of(narrow_network, &narrow_spec)?.evaluate(&small, noise, eval_seed)?.accuracy,
                all_intents: classifier.evaluate(&wide, noise, eval_seed)?.accuracy,
            })
        }
        None => None,
    };
    tracing::info!(
        seed = config.seed,
        "assistant model ({} intents): accuracy {:.3} without noise, {:.3} at noise {}",
        labels.len(),
        noise_free.accuracy,
        noisy.accuracy,
        config.noise
    );
    Ok(AssistantRun { network, pretrain_losses, scores: AssistantScores { noise_free, noisy, old_intents } })
}
