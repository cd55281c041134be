//! `cargo xtask pipeline`, `eval-intents` and `predict`: the voice assistant.

use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rlhf_algo::AlgoError;
use rlhf_algo::callbacks::{ProgressCallback, every};
use rlhf_algo::dqn::Dqn;
use rlhf_algo::stats::{self, Estimate, OverSeeds};
use rlhf_assistant::dialog::{ClarifyRule, DialogReport, play_dialog};
use rlhf_assistant::model::{DEFAULT_MODEL_DIR, IntentModel};
use rlhf_assistant::pipeline::{
    IntentModelSpec, classifier_of, domain_corpora, intent_env, learn_from_rewards, new_network, save_intent_model,
    shared_outputs,
};
use rlhf_assistant::{AsrNoise, DialogEnv, IntentCorpus, IntentRewards, Language, Split, Utterance};
use rlhf_assistant::{ClassificationReport, IntentClassifier, PipelineConfig, pretrain};
use rlhf_bench::table::{estimate_cell, seeds_cell};
use rlhf_model::QNetwork;
use rlhf_model::text::HashedNgrams;
use serde::Serialize;

use crate::task::{BackendJob, Device};
use crate::train::read_config;

/// Arguments of `cargo xtask pipeline`.
#[derive(Debug, Args)]
pub(crate) struct PipelineArgs {
    /// TOML file overriding the built-in pipeline settings (any subset of fields).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder (created; files of an earlier run there are replaced).
    #[arg(long, default_value = "runs/pipeline")]
    out: PathBuf,
    /// Seed (overrides the config's).
    #[arg(long)]
    seed: Option<u64>,
    /// Seeds of the stages (the config's seed and the next ones): each
    /// stage's accuracy is reported over them; the first seed's models are saved.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Seeds of the transfer comparison (fine-tuning against training from scratch); 0 skips it.
    #[arg(long, default_value_t = 5)]
    transfer_seeds: u64,
    /// Interactions of each transfer run.
    #[arg(long, default_value_t = 4000)]
    transfer_steps: u64,
    /// Interactions between two test evaluations of a transfer run.
    #[arg(long, default_value_t = 250)]
    transfer_every: u64,
    /// Backend: `cpu` (flex), `ndarray`, or `wgpu` (needs the feature).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

/// Test accuracy to reach in the transfer comparison.
const TRANSFER_TARGET: f64 = 0.9;

/// What `pipeline` measured, written to `report.json`.
#[derive(Debug, Serialize)]
struct PipelineReport {
    config: PipelineConfig,
    source_labels: Vec<String>,
    target_labels: Vec<String>,
    /// Each stage's test accuracy over the seeds.
    stage_accuracy: Vec<StageOverSeeds>,
    /// The first seed's stages (its models are saved): evaluation on the test split.
    stages: Vec<StageReport>,
    /// The source network after the RL stage on the same test utterances
    /// without recogniser noise: what the unseen phrasings alone cost.
    source_noise_free: LanguageAccuracy,
    /// The same network on its training phrasings, slots and noise drawn
    /// afresh, at the pipeline's noise: the split's cost, by difference.
    source_seen_phrasings: LanguageAccuracy,
    transfer: Option<TransferReport>,
    /// Per noise rate: the learned dialogue policy against the fixed rules.
    dialog: Vec<DialogComparison>,
}

#[derive(Debug, Serialize)]
struct DialogComparison {
    noise: f64,
    policies: Vec<DialogReport>,
}

#[derive(Debug, Serialize)]
struct StageReport {
    stage: &'static str,
    domains: &'static str,
    interactions: u64,
    accuracy_zh: f64,
    accuracy_en: f64,
    report: ClassificationReport,
}

#[derive(Debug, Serialize)]
struct LanguageAccuracy {
    accuracy: f64,
    accuracy_zh: f64,
    accuracy_en: f64,
}

#[derive(Debug, Serialize)]
struct TransferReport {
    target_accuracy: f64,
    seeds: u64,
    /// Interactions of each run.
    budget: u64,
    /// Per seed: interactions until test accuracy first reached the target (None: never).
    finetune_steps_to_target: Vec<Option<u64>>,
    scratch_steps_to_target: Vec<Option<u64>>,
    /// Interactions to the target over seeds; a seed that never reached it counts the budget.
    finetune_to_target: OverSeeds,
    scratch_to_target: OverSeeds,
    /// The probability that a fine-tuned run reaches the target in fewer
    /// interactions than one from scratch (ties, such as both never, count half).
    finetune_improvement: Option<Estimate>,
    /// Test accuracy against interactions, IQM over seeds.
    finetune_curve: Vec<(u64, Estimate)>,
    scratch_curve: Vec<(u64, Estimate)>,
}

/// The test utterances of `test`, fixed by `seed`: the Chinese ones first, then the English.
struct TestSet {
    utterances: Vec<Utterance>,
    chinese: usize,
}

impl TestSet {
    fn new(test: &IntentCorpus, per_phrase: usize, seed: u64) -> anyhow::Result<Self> {
        let mut utterances = test.language(Language::Zh)?.utterances(per_phrase, seed);
        let chinese = utterances.len();
        utterances.extend(test.language(Language::En)?.utterances(per_phrase, seed ^ 1));
        Ok(Self { utterances, chinese })
    }

    /// The report on every utterance, and the accuracy in Chinese and in English.
    fn evaluate(
        &self,
        classifier: &mut IntentClassifier,
        noise: f64,
        seed: u64,
    ) -> anyhow::Result<(ClassificationReport, f64, f64)> {
        let predicted = classifier.predict_all(&self.utterances, AsrNoise::new(noise), seed)?;
        let accuracy = |range: std::ops::Range<usize>| {
            let n = range.len().max(1) as f64;
            range.filter(|&i| predicted[i] == self.utterances[i].intent).count() as f64 / n
        };
        let (zh, en) = (accuracy(0..self.chinese), accuracy(self.chinese..self.utterances.len()));
        let pairs = self.utterances.iter().zip(&predicted).map(|(u, &p)| (u.intent, p));
        Ok((ClassificationReport::new(classifier.labels(), pairs), zh, en))
    }
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(&format!("{{bar:30}} {{pos}}/{{len}} {what} {{per_sec}} {{msg}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total).with_style(style)
}

/// `cargo xtask pipeline`: pretrain → RL → fine-tune → evaluate, and the transfer comparison.
pub(crate) fn pipeline(args: &PipelineArgs) -> anyhow::Result<()> {
    args.device.run(PipelineJob { args })
}

/// The pipeline on the backend `--device` names.
struct PipelineJob<'a> {
    args: &'a PipelineArgs,
}

impl BackendJob for PipelineJob<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        run_pipeline::<B>(self.args, device)
    }
}

fn run_pipeline<B: AutodiffBackend>(args: &PipelineArgs, device: B::Device) -> anyhow::Result<()> {
    let mut config = read_config(args.config.as_deref(), PipelineConfig::default())?;
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.validate()?;
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let featurizer = HashedNgrams::new(config.featurizer)?;
    let (source_train, source_test) = domain_corpora(&config.source_domains)?;
    let (target_train, target_test) = domain_corpora(&config.target_domains)?;
    let source_labels = source_train.labels().to_vec();
    let target_labels = target_train.labels().to_vec();
    let source_tests = TestSet::new(&source_test, config.eval_per_phrase, config.seed)?;
    let source_seen = TestSet::new(&source_train, config.eval_per_phrase, config.seed.wrapping_add(3))?;
    let target_tests = TestSet::new(&target_test, config.eval_per_phrase, config.seed)?;
    let eval_seed = config.seed.wrapping_add(17);
    let spec_of = |labels: &[String]| IntentModelSpec { labels: labels.to_vec(), featurizer: config.featurizer };
    let source_corpus = Arc::new(source_train);
    let target_corpus = Arc::new(target_train);
    let tests = StageTests { source: &source_tests, target: &target_tests, eval_seed };
    let corpora = StageCorpora { source: &source_corpus, target: &target_corpus };

    // 1–3 on every seed: pretrain, Q-learn from rewards, fine-tune to the target domains.
    let mut runs: Vec<StageRun<B>> = Vec::new();
    for k in 0..args.seeds.max(1) {
        let seed_config = PipelineConfig { seed: config.seed.wrapping_add(k), ..config.clone() };
        let run = stages::<B>(&seed_config, &featurizer, &corpora, &tests, &device)?;
        if k == 0 {
            crate::train::write_atomically(&args.out.join("pretrain_loss.csv"), run.pretrain_losses.as_bytes())?;
        }
        runs.push(run);
    }
    let stage_accuracy = stage_accuracy(&runs);
    for s in &stage_accuracy {
        println!(
            "{:<10} {:<7} over {} seeds: accuracy {} (zh {}, en {})",
            s.stage,
            s.domains,
            s.accuracy.seeds,
            seeds_cell(&s.accuracy, 3),
            seeds_cell(&s.accuracy_zh, 3),
            seeds_cell(&s.accuracy_en, 3)
        );
    }
    // The first seed's models are the pipeline's; its reports are detailed below.
    let StageRun { stages, source_network, target_network, keep, .. } = runs.swap_remove(0);
    let mut source_classifier = classifier_of(&source_network, &spec_of(&source_labels))?;
    let mut score = |what: &str, tests: &TestSet, noise: f64| {
        let (report, accuracy_zh, accuracy_en) = tests.evaluate(&mut source_classifier, noise, eval_seed)?;
        println!(
            "rl         source  {what}: accuracy {:.3} (zh {accuracy_zh:.3}, en {accuracy_en:.3})",
            report.accuracy
        );
        anyhow::Ok(LanguageAccuracy { accuracy: report.accuracy, accuracy_zh, accuracy_en })
    };
    let source_noise_free = score("test phrasings without noise", &source_tests, 0.0)?;
    let source_seen_phrasings = score("training phrasings, fresh draws", &source_seen, config.noise)?;
    let run_config = serde_json::to_value(&config)?;
    let backend = B::name(&device);
    let save = |name: &str, network: &QNetwork<B>, labels: &[String], steps: u64| {
        save_intent_model(&args.out.join(name), network, &spec_of(labels), steps, backend.clone(), run_config.clone())
    };
    save("source", &source_network, &source_labels, config.rl_steps)?;
    save("target", &target_network, &target_labels, config.finetune_steps)?;

    // 4. Reports: per-intent tables, confusion matrices.
    let mut markdown = format!(
        "## accuracy over {} seeds (test split, noise {})\n\n| stage | accuracy | zh | en |\n|---|---|---|---|\n",
        args.seeds.max(1),
        config.noise
    );
    for s in &stage_accuracy {
        markdown.push_str(&format!(
            "| {} ({}) | {} | {} | {} |\n",
            s.stage,
            s.domains,
            seeds_cell(&s.accuracy, 3),
            seeds_cell(&s.accuracy_zh, 3),
            seeds_cell(&s.accuracy_en, 3)
        ));
    }
    markdown.push_str(&format!(
        "\n{}\n\nThe models saved and the tables below are the first seed's.\n\n",
        crate::bench::intervals_note()
    ));
    for stage in &stages {
        markdown.push_str(&format!(
            "## {} ({} domains, {} interactions)\n\naccuracy {:.3} (zh {:.3}, en {:.3}), macro recall {:.3}, macro F1 {:.3}\n\n{}\n",
            stage.stage,
            stage.domains,
            stage.interactions,
            stage.report.accuracy,
            stage.accuracy_zh,
            stage.accuracy_en,
            stage.report.macro_recall,
            stage.report.macro_f1,
            stage.report.table()
        ));
    }
    for (stage, labels) in [("rl", &source_labels), ("finetune", &target_labels)] {
        if let Some(s) = stages.iter().find(|s| s.stage == stage) {
            let path = args.out.join(format!("confusion_{}.png", s.domains));
            let title = format!("{} domains after {stage}: accuracy {:.3}", s.domains, s.report.accuracy);
            rlhf_bench::plot_confusion(&path, &title, labels, &s.report.confusion)?;
            eprintln!(
                "{} test split, confusion (rows true, columns predicted):\n{}",
                s.domains,
                s.report.confusion_text()
            );
        }
    }

    // 5. Transfer: fine-tuning from the source network against training from scratch.
    let transfer = if args.transfer_seeds > 0 {
        let transfer = transfer::<B>(
            &device,
            args,
            &config,
            &featurizer,
            &source_network,
            &keep,
            &target_corpus,
            &target_labels,
            &target_tests,
        )?;
        let points = crate::bench::band_points;
        rlhf_bench::plot_bands(
            &args.out.join("transfer.png"),
            &format!("Target domains, test accuracy, IQM and 95% interval over {} seeds", transfer.seeds),
            ("environment interactions", "test accuracy"),
            0.0..1.02,
            &[
                ("fine-tuned from the source network", &points(&transfer.finetune_curve)),
                ("from scratch", &points(&transfer.scratch_curve)),
            ],
        )?;
        let line = format!(
            "interactions to {TRANSFER_TARGET} test accuracy over {} seeds (IQM [95% interval], a seed that never reached it counting the {} of the budget): fine-tuned {}, from scratch {}; P(fine-tuned reaches it sooner) {}",
            transfer.seeds,
            transfer.budget,
            seeds_cell(&transfer.finetune_to_target, 0),
            seeds_cell(&transfer.scratch_to_target, 0),
            estimate_cell(transfer.finetune_improvement, 2),
        );
        println!("transfer: {line}");
        markdown.push_str(&format!("## transfer\n\n{line}\n"));
        Some(transfer)
    } else {
        None
    };
    // 6. Dialogue: when to ask for a rephrasing, at each noise rate.
    let mut dialog = Vec::new();
    if config.dialog_steps > 0 {
        markdown.push_str("\n## dialogue (source domains)\n\n| noise | policy | mean return | accuracy | actions per episode |\n|---|---|---:|---:|---:|\n");
        for &noise in &config.dialog_noise {
            let comparison = dialog_stage::<B>(&device, &config, &featurizer, &source_corpus, &source_test, noise)?;
            for p in &comparison.policies {
                println!(
                    "dialogue, noise {noise}: {:<8} mean return {:+.3}, accuracy {:.3}, {:.2} actions per episode",
                    format!("{:?}", p.rule),
                    p.mean_return,
                    p.accuracy,
                    p.mean_length
                );
                markdown.push_str(&format!(
                    "| {noise} | {:?} | {:+.3} | {:.3} | {:.2} |\n",
                    p.rule, p.mean_return, p.accuracy, p.mean_length
                ));
            }
            dialog.push(comparison);
        }
    }
    crate::train::write_atomically(&args.out.join("report.md"), markdown.as_bytes())?;
    let report = PipelineReport {
        config,
        source_labels,
        target_labels,
        stage_accuracy,
        stages,
        source_noise_free,
        source_seen_phrasings,
        transfer,
        dialog,
    };
    crate::train::write_atomically(&args.out.join("report.json"), &serde_json::to_vec_pretty(&report)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// The test sets every seed's stages are scored on.
struct StageTests<'a> {
    source: &'a TestSet,
    target: &'a TestSet,
    eval_seed: u64,
}

/// The training corpora of the stages.
struct StageCorpora<'a> {
    source: &'a Arc<IntentCorpus>,
    target: &'a Arc<IntentCorpus>,
}

/// Stages 1–3 of the pipeline on one seed.
struct StageRun<B: AutodiffBackend> {
    stages: Vec<StageReport>,
    pretrain_losses: String,
    source_network: QNetwork<B>,
    target_network: QNetwork<B>,
    /// The source output each target output starts from (shared intents).
    keep: Vec<Option<usize>>,
}

/// Pretrains on the source domains, Q-learns from their rewards, and
/// fine-tunes to the target domains, scoring every stage on the test sets.
fn stages<B: AutodiffBackend>(
    config: &PipelineConfig,
    featurizer: &HashedNgrams,
    corpora: &StageCorpora<'_>,
    tests: &StageTests<'_>,
    device: &B::Device,
) -> anyhow::Result<StageRun<B>> {
    let (source_labels, target_labels) = (corpora.source.labels(), corpora.target.labels());
    let mut stages = Vec::new();
    let eval_seed = tests.eval_seed;
    let mut record = |stage, domains, interactions, network: &QNetwork<B>, labels: &[String], set: &TestSet| {
        let spec = IntentModelSpec { labels: labels.to_vec(), featurizer: config.featurizer };
        let mut classifier = classifier_of(network, &spec)?;
        let (report, accuracy_zh, accuracy_en) = set.evaluate(&mut classifier, config.noise, eval_seed)?;
        tracing::info!(
            seed = config.seed,
            "{stage} ({domains}) after {interactions} interactions: accuracy {:.3}, macro F1 {:.3}",
            report.accuracy,
            report.macro_f1
        );
        stages.push(StageReport { stage, domains, interactions, accuracy_zh, accuracy_en, report });
        anyhow::Ok(())
    };

    // 1. Pretrain on the source domains' labelled training utterances.
    let pretrain_config = rlhf_assistant::PretrainConfig { seed: config.seed, ..config.pretrain.clone() };
    let bar = progress(pretrain_config.steps as u64, &format!("pretraining steps (seed {})", config.seed));
    let mut pretrain_losses = String::from("step,loss\n");
    let network = new_network::<B>(config, featurizer, source_labels.len(), device, config.seed);
    let network = pretrain(network, corpora.source, featurizer, &pretrain_config, |step, loss| {
        bar.set_position(step as u64);
        pretrain_losses.push_str(&format!("{step},{loss}\n"));
    })?;
    bar.finish_and_clear();
    record("pretrain", "source", 0, &network, source_labels, tests.source)?;

    // 2. Q-learning from the environment's rewards on the source domains.
    let reinforce = |start: QNetwork<B>, corpus: &Arc<IntentCorpus>, steps: u64, learning_rate: f64| {
        if steps == 0 {
            return anyhow::Ok(start);
        }
        let mut env = intent_env(corpus.clone(), featurizer, config.noise)?;
        let dqn = config.bandit_dqn(steps, learning_rate, true, config.seed);
        let bar = progress(steps, "interactions");
        let agent = learn_from_rewards(start, &mut env, dqn, &mut [&mut ProgressCallback::from_bar(bar.clone())])?;
        bar.finish_and_clear();
        Ok(agent.online().clone())
    };
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
#[derive(Debug, Serialize)]
struct StageOverSeeds {
    stage: &'static str,
    domains: &'static str,
    accuracy: OverSeeds,
    accuracy_zh: OverSeeds,
    accuracy_en: OverSeeds,
}

/// Every stage's accuracy over the seeds of `runs`, in stage order.
fn stage_accuracy<B: AutodiffBackend>(runs: &[StageRun<B>]) -> Vec<StageOverSeeds> {
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
/// clarify rules on the test phrasings.
fn dialog_stage<B: AutodiffBackend>(
    device: &B::Device,
    config: &PipelineConfig,
    featurizer: &HashedNgrams,
    train: &Arc<IntentCorpus>,
    test: &IntentCorpus,
    noise: f64,
) -> anyhow::Result<DialogComparison> {
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
        .map(|rule| play_dialog(&policy, &mut test_env, rule, config.dialog_eval_episodes, seed))
        .collect::<Result<_, _>>()?;
    Ok(DialogComparison { noise, policies })
}

#[allow(clippy::too_many_arguments)]
fn transfer<B: AutodiffBackend>(
    device: &B::Device,
    args: &PipelineArgs,
    config: &PipelineConfig,
    featurizer: &HashedNgrams,
    source_network: &QNetwork<B>,
    keep: &[Option<usize>],
    target_corpus: &Arc<IntentCorpus>,
    target_labels: &[String],
    tests: &TestSet,
) -> anyhow::Result<TransferReport> {
    let spec = IntentModelSpec { labels: target_labels.to_vec(), featurizer: config.featurizer };
    let run = |start: QNetwork<B>, pretrained: bool, seed: u64| -> anyhow::Result<Vec<(u64, f64)>> {
        let lr = if pretrained { config.finetune_learning_rate } else { 1e-3 };
        let dqn = config.bandit_dqn(args.transfer_steps, lr, pretrained, seed);
        let mut env = intent_env(target_corpus.clone(), featurizer, config.noise)?;
        let mut curve = Vec::new();
        let mut classifier = classifier_of(&start, &spec)?;
        curve.push((0, classifier.evaluate(&tests.utterances, AsrNoise::new(config.noise), seed)?.accuracy));
        let mut probe = every(args.transfer_every, |step, agent: &Dqn<B>| {
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
    let bar = progress(args.transfer_seeds * 2, "transfer runs");
    let (mut finetune, mut scratch) = (Vec::new(), Vec::new());
    for seed in 0..args.transfer_seeds {
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
    let budget = args.transfer_steps;
    let to_target = |steps: &[Option<u64>]| steps.iter().map(|s| s.unwrap_or(budget) as f64).collect::<Vec<f64>>();
    let negated = |steps: &[Option<u64>]| to_target(steps).iter().map(|s| -s).collect::<Vec<f64>>();
    let grid: Vec<u64> = (0..=budget / args.transfer_every.max(1)).map(|k| k * args.transfer_every).collect();
    Ok(TransferReport {
        target_accuracy: TRANSFER_TARGET,
        seeds: args.transfer_seeds,
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

/// Arguments of `cargo xtask eval-intents`.
#[derive(Debug, Args)]
pub(crate) struct EvalIntentsArgs {
    /// Checkpoint directory of an intent model; by default the all-intent
    /// assistant model `cargo xtask pipeline` trains.
    #[arg(long, default_value = DEFAULT_MODEL_DIR)]
    checkpoint: PathBuf,
    /// Labelled utterances, JSON lines (`{"text": ..., "intent": ...}`) or CSV (`text,intent`);
    /// without it, the built-in test split of the model's intents.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Recogniser noise applied to every utterance.
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Seed of the noise (and of slot values for the built-in split).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also list every misclassified utterance (as heard) on stderr.
    #[arg(long)]
    errors: bool,
    /// Backend the model is loaded on: `cpu` (flex), `ndarray`, or `wgpu`
    /// (needs the feature); answers are computed on the host.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

/// `cargo xtask eval-intents`: accuracy, macro recall and F1 as JSON on stdout, the table on stderr.
pub(crate) fn eval_intents(args: &EvalIntentsArgs) -> anyhow::Result<()> {
    let (mut classifier, spec) = load_classifier(&args.checkpoint, args.device)?;
    let utterances = match &args.data {
        Some(path) => IntentCorpus::from_path(path, Some(&spec.labels))?.utterances(1, args.seed),
        None => IntentCorpus::builtin(Split::Test)?.restrict(&spec.labels)?.utterances(5, args.seed),
    };
    let noise = AsrNoise::new(args.noise);
    let predicted = classifier.predict_all(&utterances, noise, args.seed)?;
    if args.errors {
        // The same noise draws as `predict_all` made, to show what was heard.
        let mut rng = rlhf_env::rng::seeded_rng(args.seed);
        let mut heard = String::new();
        for (utterance, &guess) in utterances.iter().zip(&predicted) {
            noise.apply(&utterance.text, &mut rng, &mut heard);
            if guess != utterance.intent {
                eprintln!("{:<18} → {:<18} {heard}", spec.labels[utterance.intent], spec.labels[guess]);
            }
        }
    }
    let report = ClassificationReport::new(&spec.labels, utterances.iter().zip(predicted).map(|(u, p)| (u.intent, p)));
    eprintln!("{}", report.table());
    let summary = serde_json::json!({
        "accuracy": report.accuracy,
        "macro_recall": report.macro_recall,
        "macro_f1": report.macro_f1,
        "utterances": report.total,
    });
    println!("{summary}");
    Ok(())
}

/// Arguments of `cargo xtask predict`.
#[derive(Debug, Args)]
pub(crate) struct PredictArgs {
    /// Checkpoint directory of an intent model; by default the all-intent
    /// assistant model `cargo xtask pipeline` trains.
    #[arg(long, default_value = DEFAULT_MODEL_DIR)]
    checkpoint: PathBuf,
    /// Backend the model is loaded on: `cpu` (flex), `ndarray`, or `wgpu`
    /// (needs the feature); answers are computed on the host.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
    /// What the user said.
    text: String,
}

/// `cargo xtask predict`: the chosen intent and the top-3 Q-values.
pub(crate) fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let (mut classifier, _) = load_classifier(&args.checkpoint, args.device)?;
    let q = classifier.q_values(&args.text)?.to_vec();
    let mut order: Vec<usize> = (0..q.len()).collect();
    order.sort_by(|&a, &b| q[b].total_cmp(&q[a]));
    let labels = classifier.labels();
    println!("{}", labels[order[0]]);
    for &i in order.iter().take(3) {
        println!("  {:<20} Q = {:+.3}", labels[i], q[i]);
    }
    Ok(())
}

/// The classifier of the intent checkpoint in `dir`, loaded on `device`, and its spec.
fn load_classifier(dir: &Path, device: Device) -> anyhow::Result<(IntentClassifier, IntentModelSpec)> {
    struct Load<'a>(&'a Path);
    impl BackendJob for Load<'_> {
        type Output = (IntentClassifier, IntentModelSpec);

        fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Self::Output> {
            let model = IntentModel::<B>::load(self.0, &[], 0, &device)?;
            Ok((classifier_of(&model.network, &model.spec)?, model.spec))
        }
    }
    device.run(Load(dir))
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;

    /// A small untrained intent model over `labels`, saved to a fresh folder.
    fn saved_model(labels: &[&str]) -> TempDir {
        let config = PipelineConfig::default();
        let featurizer = HashedNgrams::new(config.featurizer).unwrap();
        let network = new_network::<rlhf_model::backend::AutodiffCpu>(
            &config,
            &featurizer,
            labels.len(),
            &rlhf_model::backend::cpu_device(),
            0,
        );
        let tmp = TempDir::with_prefix("rlhf-xtask-intents-").unwrap();
        let spec =
            IntentModelSpec { labels: labels.iter().map(|l| (*l).to_owned()).collect(), featurizer: config.featurizer };
        save_intent_model(&tmp.path().join("model"), &network, &spec, 0, "flex".into(), serde_json::json!({})).unwrap();
        tmp
    }

    #[test]
    fn eval_intents_reads_user_files_and_names_a_bad_line() {
        let tmp = saved_model(&["greet", "leave"]);
        let dir = tmp.path();
        let good = dir.join("good.jsonl");
        fs::write(&good, "{\"text\": \"hello\", \"intent\": \"greet\"}\n{\"text\": \"bye\", \"intent\": \"leave\"}\n")
            .unwrap();
        let args = |data: &Path| EvalIntentsArgs {
            checkpoint: dir.join("model"),
            data: Some(data.to_owned()),
            noise: 0.0,
            seed: 0,
            errors: true,
            device: Device::Cpu,
        };
        eval_intents(&args(&good)).unwrap();
        let bad = dir.join("bad.jsonl");
        fs::write(&bad, "{\"text\": \"hello\", \"intent\": \"greet\"}\n{\"text\": \"fly\", \"intent\": \"soar\"}\n")
            .unwrap();
        let err = format!("{:#}", eval_intents(&args(&bad)).unwrap_err());
        assert!(err.contains("bad.jsonl:2") && err.contains("`soar`"), "{err}");
        let predict_args =
            PredictArgs { checkpoint: dir.join("model"), text: "hello there".into(), device: Device::Cpu };
        predict(&predict_args).unwrap();
        let missing = PredictArgs { checkpoint: dir.join("nothing"), text: "x".into(), device: Device::Cpu };
        let err = format!("{:#}", predict(&missing).unwrap_err());
        assert!(err.contains("nothing") && err.contains("cargo xtask pipeline"), "{err}");
    }
}
