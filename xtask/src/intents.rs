//! `cargo xtask pipeline`, `eval-intents` and `predict`: the voice assistant.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use rlhf_algo::stats::OverSeeds;
use rlhf_assistant::IntentFeatures;
use rlhf_assistant::assistant::Clarification;
use rlhf_assistant::dialog::{CLARIFY_DIR, ClarifyPolicy, ClarifySpec};
use rlhf_assistant::model::{DEFAULT_MODEL_DIR, IntentModel};
use rlhf_assistant::pipeline::{IntentModelSpec, classifier_of, domain_corpora, save_intent_model};
use rlhf_assistant::study::{
    AssistantScores, DialogComparison, LanguageAccuracy, OldIntents, StageCorpora, StageOverSeeds, StageReport,
    StageRun, StageTests, TRANSFER_TARGET, TestSet, TransferReport, TransferSettings, assistant_stage, dialog_stage,
    stage_accuracy, stages, transfer,
};
use rlhf_assistant::{
    AsrNoise, ClassificationReport, Cuts, Domain, IntentClassifier, IntentCorpus, Language, PipelineConfig, Split,
    language_accuracy,
};
use rlhf_bench::table::{estimate_cell, seeds_cell};
use rlhf_model::text::HashedNgrams;
use rlhf_model::{HostQNetwork, QNetwork};
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
    /// Train the assistant on your own labelled utterances instead (JSON
    /// lines `{"text": ..., "intent": ...}` or CSV `text,intent`; any label
    /// set; every fifth phrase of each intent is held out for the test
    /// split). The transfer study, which is about the built-in domains, is skipped.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Backend: `cpu` (flex), `ndarray`, or `wgpu` (needs the feature).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

/// What `pipeline` measured, written to `report.json`.
#[derive(Debug, Serialize)]
struct PipelineReport {
    config: PipelineConfig,
    /// The source → target study (absent with `--data`).
    study: Option<StudyReport>,
    assistant: AssistantReport,
    /// Per noise rate: the learned dialogue policy against the fixed rules,
    /// acting with the assistant model's intents.
    dialog: Vec<DialogComparison>,
}

/// The transfer study's results.
#[derive(Debug, Serialize)]
struct StudyReport {
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
}

/// The deployable model's accuracy over seeds.
#[derive(Debug, Serialize)]
struct AssistantReport {
    labels: Vec<String>,
    /// Per seed.
    runs: Vec<AssistantScores>,
    /// Over seeds, at noise 0 and at the pipeline's noise.
    accuracy: Vec<AccuracyOverSeeds>,
    /// Over seeds: the narrow source model and the all-intent model on the source intents.
    old_intents: Option<OldIntentsOverSeeds>,
}

/// Test accuracy at one noise rate, over seeds.
#[derive(Debug, Serialize)]
struct AccuracyOverSeeds {
    noise: f64,
    accuracy: OverSeeds,
    accuracy_zh: OverSeeds,
    accuracy_en: OverSeeds,
}

/// [`OldIntents`] over seeds.
#[derive(Debug, Serialize)]
struct OldIntentsOverSeeds {
    narrow: OverSeeds,
    all_intents: OverSeeds,
}

/// `cargo xtask pipeline`: the transfer study (pretrain → RL → fine-tune →
/// evaluate, against training from scratch), then the deployable all-intent
/// assistant model with its clarify policy.
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
    let featurizer = config.features()?;
    let mut markdown = String::new();
    // The study runs on the built-in domains; a user's own data trains the assistant alone.
    let (study, narrow) = match &args.data {
        Some(_) => (None, None),
        None => {
            let (study, narrow) = run_study::<B>(args, &config, &featurizer, &device, &mut markdown)?;
            (Some(study), Some(narrow))
        }
    };
    let (train, test) = match &args.data {
        Some(path) => IntentCorpus::from_path(path, None)?.split_by_phrasing()?,
        None => domain_corpora(&Domain::ALL)?,
    };
    let (assistant, answerer) =
        run_assistant::<B>(args, &config, &featurizer, &train, &test, narrow.as_ref(), &device, &mut markdown)?;
    let dialog = run_dialog::<B>(args, &config, &featurizer, &train, &test, &answerer, &device, &mut markdown)?;
    crate::train::write_atomically(&args.out.join("report.md"), markdown.as_bytes())?;
    let report = PipelineReport { config, study, assistant, dialog };
    crate::train::write_atomically(&args.out.join("report.json"), &serde_json::to_vec_pretty(&report)?)?;
    println!("wrote {}; the assistant model is {}", args.out.display(), args.out.join("assistant").display());
    Ok(())
}

/// The source networks of the study's seeds, with their labels.
type Narrow<B> = (Vec<QNetwork<B>>, Vec<String>);

/// The source → target study over seeds: saves the first seed's `source`
/// and `target` models and appends its tables to `markdown`.
fn run_study<B: AutodiffBackend>(
    args: &PipelineArgs,
    config: &PipelineConfig,
    featurizer: &IntentFeatures,
    device: &B::Device,
    markdown: &mut String,
) -> anyhow::Result<(StudyReport, Narrow<B>)> {
    let (source_train, source_test) = domain_corpora(&config.source_domains)?;
    let (target_train, target_test) = domain_corpora(&config.target_domains)?;
    let source_labels = source_train.labels().to_vec();
    let target_labels = target_train.labels().to_vec();
    let source_tests = TestSet::new(&source_test, config.eval_per_phrase, config.seed)?;
    let source_seen = TestSet::new(&source_train, config.eval_per_phrase, config.seed.wrapping_add(3))?;
    let target_tests = TestSet::new(&target_test, config.eval_per_phrase, config.seed)?;
    let eval_seed = config.seed.wrapping_add(17);
    let spec_of = |labels: &[String]| IntentModelSpec::new(labels.to_vec(), featurizer);
    let source_corpus = Arc::new(source_train);
    let target_corpus = Arc::new(target_train);
    let tests = StageTests { source: &source_tests, target: &target_tests, eval_seed };
    let corpora = StageCorpora { source: &source_corpus, target: &target_corpus };

    // 1–3 on every seed: pretrain, Q-learn from rewards, fine-tune to the target domains.
    let mut runs: Vec<StageRun<B>> = Vec::new();
    for k in 0..args.seeds.max(1) {
        let seed_config = PipelineConfig { seed: config.seed.wrapping_add(k), ..config.clone() };
        let run = stages::<B>(&seed_config, featurizer, &corpora, &tests, device)?;
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
    let narrow: Vec<QNetwork<B>> = runs.iter().map(|run| run.source_network.clone()).collect();
    // The first seed's models are the study's; its reports are detailed below.
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
    let run_config = serde_json::to_value(config)?;
    let backend = B::name(device);
    let save = |name: &str, network: &QNetwork<B>, labels: &[String], steps: u64| {
        save_intent_model(&args.out.join(name), network, &spec_of(labels), steps, backend.clone(), run_config.clone())
    };
    save("source", &source_network, &source_labels, config.rl_steps)?;
    save("target", &target_network, &target_labels, config.finetune_steps)?;

    // 4. Reports: per-intent tables, confusion matrices.
    markdown.push_str(&format!(
        "## transfer study: accuracy over {} seeds (test split, noise {})\n\n| stage | accuracy | zh | en |\n|---|---|---|---|\n",
        args.seeds.max(1),
        config.noise
    ));
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
        }
    }

    // 5. Transfer: fine-tuning from the source network against training from scratch.
    let transfer = if args.transfer_seeds > 0 {
        let settings =
            TransferSettings { seeds: args.transfer_seeds, steps: args.transfer_steps, every: args.transfer_every };
        let transfer = transfer::<B>(
            device,
            &settings,
            config,
            featurizer,
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
        markdown.push_str(&format!("## transfer\n\n{line}\n\n"));
        Some(transfer)
    } else {
        None
    };
    let study = StudyReport {
        source_labels: source_labels.clone(),
        target_labels,
        stage_accuracy,
        stages,
        source_noise_free,
        source_seen_phrasings,
        transfer,
    };
    Ok((study, (narrow, source_labels)))
}

/// The deployable model: trained on `train` over every seed, scored on
/// `test`; the first seed's is saved to `<out>/assistant`. Returns the
/// report and the saved model's host network.
#[allow(clippy::too_many_arguments)]
fn run_assistant<B: AutodiffBackend>(
    args: &PipelineArgs,
    config: &PipelineConfig,
    featurizer: &IntentFeatures,
    train: &IntentCorpus,
    test: &IntentCorpus,
    narrow: Option<&Narrow<B>>,
    device: &B::Device,
    markdown: &mut String,
) -> anyhow::Result<(AssistantReport, HostQNetwork)> {
    let labels = train.labels().to_vec();
    let tests = TestSet::new(test, config.eval_per_phrase, config.seed)?;
    let train = Arc::new(train.clone());
    let mut runs = Vec::new();
    let mut saved = None;
    for k in 0..args.seeds.max(1) {
        let seed_config = PipelineConfig { seed: config.seed.wrapping_add(k), ..config.clone() };
        let narrow_k = narrow.and_then(|(networks, labels)| Some((networks.get(k as usize)?, labels.as_slice())));
        let run = assistant_stage::<B>(&seed_config, featurizer, &train, &tests, narrow_k, device)?;
        if k == 0 {
            let spec = IntentModelSpec::new(labels.clone(), featurizer);
            let steps = config.rl_steps;
            let run_config = serde_json::to_value(config)?;
            save_intent_model(&args.out.join("assistant"), &run.network, &spec, steps, B::name(device), run_config)?;
            crate::train::write_atomically(
                &args.out.join("assistant_pretrain_loss.csv"),
                run.pretrain_losses.as_bytes(),
            )?;
            saved = Some(run.network.to_host()?);
        }
        runs.push(run.scores);
    }
    let at_noise = |noise: f64, scores: fn(&AssistantScores) -> &LanguageAccuracy| {
        let over = |value: fn(&LanguageAccuracy) -> f64| {
            OverSeeds::new(&runs.iter().map(|r| value(scores(r))).collect::<Vec<_>>())
        };
        AccuracyOverSeeds {
            noise,
            accuracy: over(|a| a.accuracy),
            accuracy_zh: over(|a| a.accuracy_zh),
            accuracy_en: over(|a| a.accuracy_en),
        }
    };
    let accuracy = vec![at_noise(0.0, |r| &r.noise_free), at_noise(config.noise, |r| &r.noisy)];
    markdown.push_str(&format!(
        "## the assistant model: {} intents, test split, over {} seeds\n\n| noise | accuracy | zh | en |\n|---|---|---|---|\n",
        labels.len(),
        runs.len()
    ));
    for a in &accuracy {
        let row = format!(
            "| {} | {} | {} | {} |",
            a.noise,
            seeds_cell(&a.accuracy, 3),
            seeds_cell(&a.accuracy_zh, 3),
            seeds_cell(&a.accuracy_en, 3)
        );
        println!("assistant model, {} intents: {row}", labels.len());
        markdown.push_str(&row);
        markdown.push('\n');
    }
    let old_intents =
        runs.iter().map(|r| r.old_intents).collect::<Option<Vec<OldIntents>>>().map(|old| OldIntentsOverSeeds {
            narrow: OverSeeds::new(&old.iter().map(|o| o.narrow).collect::<Vec<_>>()),
            all_intents: OverSeeds::new(&old.iter().map(|o| o.all_intents).collect::<Vec<_>>()),
        });
    if let (Some(old), Some((_, narrow_labels))) = (&old_intents, narrow) {
        let line = format!(
            "What adding domains cost the {} source intents (their test utterances, noise {}): the source model {}, the all-intent model {}.",
            narrow_labels.len(),
            config.noise,
            seeds_cell(&old.narrow, 3),
            seeds_cell(&old.all_intents, 3)
        );
        println!("{line}");
        markdown.push_str(&format!("\n{line}\n"));
    }
    markdown.push('\n');
    let report = AssistantReport { labels, runs, accuracy, old_intents };
    Ok((report, saved.context("no seed ran")?))
}

/// The dialogue policy on the assistant's intents at each noise rate,
/// acting with the assistant model's answers; the policy trained at the
/// pipeline's noise (or the first rate) is saved as the assistant's clarify policy.
#[allow(clippy::too_many_arguments)]
fn run_dialog<B: AutodiffBackend>(
    args: &PipelineArgs,
    config: &PipelineConfig,
    featurizer: &IntentFeatures,
    train: &IntentCorpus,
    test: &IntentCorpus,
    answerer: &HostQNetwork,
    device: &B::Device,
    markdown: &mut String,
) -> anyhow::Result<Vec<DialogComparison>> {
    let mut dialog = Vec::new();
    if config.dialog_steps == 0 {
        return Ok(dialog);
    }
    if featurizer.embedder().is_some() {
        // The clarify network and the answers it is trained beside read n-grams.
        println!("dialogue stage skipped: it reads n-grams, and this run's features include an encoder's");
        return Ok(dialog);
    }
    let featurizer = &HashedNgrams::new(config.featurizer)?;
    let deployed_noise =
        if config.dialog_noise.contains(&config.noise) { config.noise } else { config.dialog_noise[0] };
    let train = Arc::new(train.clone());
    markdown.push_str(&format!(
        "## asking when unsure ({} intents, test split)\n\n| noise | policy | accuracy of acted-on answers | turns that asked | actions per request | mean return |\n|---|---|---:|---:|---:|---:|\n",
        train.labels().len()
    ));
    for &noise in &config.dialog_noise {
        let (comparison, network) = dialog_stage::<B>(device, config, featurizer, &train, test, noise, Some(answerer))?;
        for p in &comparison.policies {
            println!(
                "dialogue, noise {noise}: {:<8} accuracy {:.3}, asked on {:.1}% of turns, {:.2} actions per request",
                format!("{:?}", p.rule),
                p.accuracy,
                100.0 * p.asked,
                p.mean_length
            );
            markdown.push_str(&format!(
                "| {noise} | {:?} | {:.3} | {:.3} | {:.2} | {:+.3} |\n",
                p.rule, p.accuracy, p.asked, p.mean_length, p.mean_return
            ));
        }
        if noise == deployed_noise {
            let spec = ClarifySpec {
                labels: train.labels().to_vec(),
                featurizer: config.featurizer,
                max_turns: config.dialog_max_turns,
            };
            ClarifyPolicy::new(network, spec)?.save(&args.out.join("assistant").join(CLARIFY_DIR), B::name(device))?;
        }
        dialog.push(comparison);
    }
    markdown.push('\n');
    Ok(dialog)
}

/// Arguments of `cargo xtask eval-intents`.
#[derive(Debug, Args)]
pub(crate) struct EvalIntentsArgs {
    /// Checkpoint directory of an intent model; by default the all-intent
    /// assistant model `cargo xtask pipeline` trains. Given more than once,
    /// the models answer together by the mean of their Q-values (an
    /// ensemble); they must have the same intents in the same order.
    #[arg(long, default_value = DEFAULT_MODEL_DIR)]
    checkpoint: Vec<PathBuf>,
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
    /// Which utterances the noise cuts the tail of: `sometimes` (as a
    /// recogniser does), `never` or `always`: what cut-off commands cost.
    #[arg(long, default_value = "sometimes")]
    cuts: Cuts,
    /// Also list every misclassified utterance on stderr: as said, as heard,
    /// and as read when the model put misheard words back.
    #[arg(long)]
    errors: bool,
    /// Backend the model is loaded on: `cpu` (flex), `ndarray`, or `wgpu`
    /// (needs the feature); answers are computed on the host.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

/// `cargo xtask eval-intents`: accuracy, macro recall and F1 as JSON on stdout, the table on stderr.
pub(crate) fn eval_intents(args: &EvalIntentsArgs) -> anyhow::Result<()> {
    println!("{}", intent_scores(args)?);
    Ok(())
}

/// The scores `eval-intents` prints: accuracy (overall and per language
/// present), macro recall and F1, and the number of utterances.
fn intent_scores(args: &EvalIntentsArgs) -> anyhow::Result<serde_json::Value> {
    let (mut classifiers, mut labels) = (Vec::new(), Vec::new());
    for (k, dir) in args.checkpoint.iter().enumerate() {
        let (classifier, spec, _) = load_classifier(dir, args.device)?;
        if k == 0 {
            labels = spec.labels;
        } else if spec.labels != labels {
            anyhow::bail!(
                "{}: its intents differ from those of {}; an ensemble's models share them",
                dir.display(),
                args.checkpoint[0].display()
            );
        }
        classifiers.push(classifier);
    }
    anyhow::ensure!(!classifiers.is_empty(), "no --checkpoint to evaluate");
    let utterances = match &args.data {
        Some(path) => IntentCorpus::from_path(path, Some(&labels))?.utterances(1, args.seed),
        None => IntentCorpus::builtin(Split::Test)?.restrict(&labels)?.utterances(5, args.seed),
    };
    let noise = AsrNoise::new(args.noise).with_cuts(args.cuts);
    let heard = noise.hear_all(utterances.iter().map(|u| u.text.as_str()), args.seed);
    for classifier in &classifiers {
        classifier.prepare(&heard)?;
    }
    // Summed, which ranks the intents as the mean does.
    let mut summed_q = vec![0.0f32; labels.len()];
    let predicted = heard
        .iter()
        .map(|text| {
            summed_q.fill(0.0);
            for classifier in &mut classifiers {
                summed_q.iter_mut().zip(classifier.q_values(text)?).for_each(|(sum, q)| *sum += q);
            }
            Ok(rlhf_model::argmax(&summed_q))
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    if args.errors {
        for ((utterance, &guess), heard) in utterances.iter().zip(&predicted).zip(&heard) {
            if guess != utterance.intent {
                let read = classifiers[0].heard_as(heard);
                eprint!("{}", miss(&labels[utterance.intent], &labels[guess], &utterance.text, heard, &read));
            }
        }
    }
    let report = ClassificationReport::new(&labels, utterances.iter().zip(&predicted).map(|(u, &p)| (u.intent, p)));
    eprintln!("{}", report.table());
    let mut summary = serde_json::json!({
        "accuracy": report.accuracy,
        "macro_recall": report.macro_recall,
        "macro_f1": report.macro_f1,
        "utterances": report.total,
    });
    for language in [Language::Zh, Language::En] {
        if let Some(accuracy) = language_accuracy(&utterances, &predicted, language) {
            summary[format!("accuracy_{}", language.code())] = accuracy.into();
        }
    }
    Ok(summary)
}

/// One miss of `eval-intents --errors`: the intent meant and the one
/// chosen, what was said, and, where they differ from it, what was heard
/// and what the model read.
fn miss(truth: &str, guess: &str, said: &str, heard: &str, read: &str) -> String {
    let mut lines = format!("{truth:<18} → {guess:<18} said: {said}\n");
    if heard != said {
        lines += &format!("{:<40} heard: {heard}\n", "");
    }
    if read != heard {
        lines += &format!("{:<40} read: {read}\n", "");
    }
    lines
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

/// `cargo xtask predict`: the chosen intent and the top-3 Q-values, and the
/// question the assistant would ask instead when its clarify policy says so.
pub(crate) fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let (mut classifier, _, mut clarify) = load_classifier(&args.checkpoint, args.device)?;
    let q = classifier.q_values(&args.text)?.to_vec();
    let mut order: Vec<usize> = (0..q.len()).collect();
    order.sort_by(|&a, &b| q[b].total_cmp(&q[a]));
    let labels = classifier.labels();
    println!("{}", labels[order[0]]);
    for &i in order.iter().take(3) {
        println!("  {:<20} Q = {:+.3}", labels[i], q[i]);
    }
    if let Some(should_clarify) = clarify.as_mut()
        && order.len() > 1
        && should_clarify(&args.text)?
    {
        let question = Clarification::between(&labels[order[0]], &labels[order[1]], &args.text);
        println!("  unsure: the assistant would ask \"{}\"", question.prompt);
    }
    Ok(())
}

/// Whether the clarify policy would ask on the first hearing of a text.
type ClarifyCheck = Box<dyn FnMut(&str) -> anyhow::Result<bool>>;

/// The classifier of the intent checkpoint in `dir`, loaded on `device`,
/// its spec, and the clarify policy saved beside it, if any.
fn load_classifier(
    dir: &Path,
    device: Device,
) -> anyhow::Result<(IntentClassifier, IntentModelSpec, Option<ClarifyCheck>)> {
    struct Load<'a>(&'a Path);
    impl BackendJob for Load<'_> {
        type Output = (IntentClassifier, IntentModelSpec, Option<ClarifyCheck>);

        fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Self::Output> {
            let model = IntentModel::<B>::load(self.0, &[], 0, &device)?;
            let clarify = ClarifyPolicy::<B>::load_beside(self.0, &device)?
                .map(|mut policy| Box::new(move |text: &str| Ok(policy.should_clarify(text, 1)?)) as ClarifyCheck);
            Ok((classifier_of(&model.network, &model.spec)?, model.spec, clarify))
        }
    }
    device.run(Load(dir))
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;

    #[test]
    fn a_miss_shows_heard_and_read_only_where_they_differ() {
        let pad = " ".repeat(40);
        assert_eq!(
            miss("light_on", "ac_on", "lights on", "lights on", "lights on"),
            format!("{:<18} → {:<18} said: lights on\n", "light_on", "ac_on")
        );
        assert_eq!(
            miss("light_on", "ac_on", "lights on", "lihgts on", "lights on"),
            format!(
                "{:<18} → {:<18} said: lights on\n{pad} heard: lihgts on\n{pad} read: lights on\n",
                "light_on", "ac_on"
            )
        );
        assert!(!miss("a", "b", "x y", "xy", "xy").contains("read:"), "nothing put back, no read line");
    }

    /// A small untrained intent model over `labels`, saved to a fresh folder.
    fn saved_model(labels: &[&str]) -> TempDir {
        let config = PipelineConfig::default();
        let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap();
        let network = rlhf_assistant::pipeline::new_network::<rlhf_model::backend::AutodiffCpu>(
            &config,
            &featurizer,
            labels.len(),
            &rlhf_model::backend::cpu_device(),
            0,
        );
        let tmp = TempDir::with_prefix("rlhf-xtask-intents-").unwrap();
        let spec = IntentModelSpec::new(labels.iter().map(|l| (*l).to_owned()).collect(), &featurizer);
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
            checkpoint: vec![dir.join("model")],
            data: Some(data.to_owned()),
            noise: 0.0,
            seed: 0,
            cuts: Cuts::Sometimes,
            errors: true,
            device: Device::Cpu,
        };
        let scores = intent_scores(&args(&good)).unwrap();
        assert_eq!(scores["utterances"], 2);
        // English only: its own accuracy, no Chinese one; the same two answers.
        assert_eq!(scores["accuracy_en"], scores["accuracy"]);
        assert!(scores.get("accuracy_zh").is_none(), "{scores}");
        eval_intents(&args(&good)).unwrap();
        // A model twice over answers as it does alone; other intents are refused.
        let twice = EvalIntentsArgs { checkpoint: vec![dir.join("model"), dir.join("model")], ..args(&good) };
        assert_eq!(intent_scores(&twice).unwrap(), scores);
        let other = saved_model(&["greet", "stay"]);
        let mixed = EvalIntentsArgs { checkpoint: vec![dir.join("model"), other.path().join("model")], ..args(&good) };
        let err = format!("{:#}", intent_scores(&mixed).unwrap_err());
        assert!(err.contains("intents differ") && err.contains(&other.path().display().to_string()), "{err}");
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

    #[test]
    fn pipeline_with_own_data_trains_an_assistant_and_its_clarify_policy() {
        let tmp = TempDir::with_prefix("rlhf-xtask-own-data-").unwrap();
        let dir = tmp.path();
        let mut lines = String::new();
        for (intent, words) in [
            ("greet", ["hello", "hi there", "good morning", "hey"]),
            ("leave", ["bye", "see you", "good night", "farewell"]),
        ] {
            for (i, w) in words.iter().enumerate() {
                for suffix in ["", " friend", " everyone"] {
                    lines.push_str(&format!("{{\"text\": \"{w}{suffix} {i}\", \"intent\": \"{intent}\"}}\n"));
                }
            }
        }
        let data = dir.join("mine.jsonl");
        fs::write(&data, lines).unwrap();
        let config = dir.join("small.toml");
        fs::write(
            &config,
            "net_arch = [32]\nrl_steps = 200\ndialog_steps = 600\ndialog_eval_episodes = 50\ndialog_noise = [0.1]\n[featurizer]\ndim = 256\n[assistant_pretrain]\nsteps = 100\n",
        )
        .unwrap();
        let args = PipelineArgs {
            config: Some(config),
            out: dir.join("run"),
            seed: None,
            seeds: 2,
            transfer_seeds: 0,
            transfer_steps: 0,
            transfer_every: 1,
            data: Some(data),
            device: Device::Cpu,
        };
        pipeline(&args).unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("run").join("report.json")).unwrap()).unwrap();
        assert!(report["study"].is_null(), "the study is about the built-in domains");
        assert_eq!(report["assistant"]["labels"], serde_json::json!(["greet", "leave"]));
        assert_eq!(report["assistant"]["runs"].as_array().unwrap().len(), 2);
        assert_eq!(report["dialog"].as_array().unwrap().len(), 1);
        let model = dir.join("run").join("assistant");
        let (mut classifier, spec, clarify) = load_classifier(&model, Device::Cpu).unwrap();
        assert_eq!(spec.labels, ["greet", "leave"]);
        assert!(clarify.is_some(), "the clarify policy is saved beside the model");
        classifier.predict("hello friend").unwrap();
    }
}
