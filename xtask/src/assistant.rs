//! `cargo xtask assistant`: talk to an intent model, tell it when it is
//! wrong, and watch it learn (or let a simulated user do it, `--simulate`);
//! `cargo xtask finetune --feedback LOG`: learn from a feedback log offline.
//!
//! The loop reads lines from stdin (a terminal or a pipe alike). An
//! utterance gets an answer; the next line is the feedback: `y` or an empty
//! line (right), `n` (wrong), `= label` (wrong, the right one is `label`;
//! any unique prefix of a label will do). Lines starting with `:` are
//! commands (`:help`). Every feedback is on disk (fsynced) before the next
//! prompt.

use std::io::{BufRead, IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use rlhf_algo::stats::{Estimate, OverSeeds};
use rlhf_assistant::assistant::{Answer, Assistant, AssistantMode};
use rlhf_assistant::dialog::{CLARIFY_DIR, ClarifyPolicy};
use rlhf_assistant::feedback::{Feedback, FeedbackLog, LogContents, read_log};
use rlhf_assistant::finetune::{FinetuneOptions, builtin_held_out, finetune_from_log};
use rlhf_assistant::model::{DEFAULT_MODEL_DIR, IntentModel};
use rlhf_assistant::online::OnlineConfig;
use rlhf_assistant::pipeline::{IntentModelSpec, pretrain_domains, save_intent_model};
use rlhf_assistant::simulate::{Simulation, SimulationPoint, new_domain_session, simulate};
use rlhf_assistant::{Domain, IntentCorpus, PipelineConfig};
use rlhf_bench::table::seeds_cell;
use serde::Serialize;

use crate::task::{BackendJob, Device};
use crate::train::{read_config, write_atomically};

/// Arguments of `cargo xtask assistant`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AssistantArgs {
    /// Checkpoint directory of an intent model; by default the all-intent
    /// assistant model `cargo xtask pipeline` trains.
    #[arg(long, default_value = DEFAULT_MODEL_DIR)]
    pub checkpoint: PathBuf,
    /// Where feedback is appended (JSON lines); by default `feedback.jsonl`
    /// beside the checkpoint. With `--simulate`, nothing is logged unless given.
    #[arg(long)]
    pub feedback_log: Option<PathBuf>,
    /// Only log feedback; do not learn from it.
    #[arg(long)]
    pub no_update: bool,
    /// Learn from a correction only that the answer was wrong, not which
    /// intent was right (the comparison for hindsight relabeling).
    #[arg(long)]
    pub no_relabel: bool,
    /// Every reply as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Never ask to say it again: always act on the best intent, even when
    /// the clarify policy saved beside the model would ask.
    #[arg(long)]
    pub no_clarify: bool,
    /// Where `:save` writes the updated model (by default `<checkpoint>-online`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Intents the model does not have yet, comma-separated: new outputs,
    /// learned from corrections.
    #[arg(long, value_delimiter = ',')]
    pub add_intents: Vec<String>,
    /// TOML file over the online-learning defaults (learning_rate,
    /// updates_per_feedback, replay_capacity, feedback_batch, rehearsal_batch, ...).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Labelled utterances replayed during updates (JSONL or CSV); by default
    /// the built-in training split of the model's built-in intents.
    #[arg(long)]
    pub rehearsal: Option<PathBuf>,
    /// Seed of the replay and rehearsal draws (and of the simulated user).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace the person with a scripted user.
    #[arg(long)]
    pub simulate: bool,
    /// The simulated user's utterances (JSONL or CSV); default: `--domains`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Built-in domains the simulated user speaks (training split), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "navigation")]
    pub domains: Vec<Domain>,
    /// Held-out utterances to measure the simulation on; default: the
    /// built-in test split of `--domains` (or `--data` itself).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Utterances the simulated user says.
    #[arg(long, default_value_t = 500)]
    pub interactions: u64,
    /// Share of the simulated user's answers that are wrong or missing.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Recogniser noise on the simulated user's utterances and the held-out set.
    #[arg(long, default_value_t = 0.1)]
    pub noise: f64,
    /// After how many interactions to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,500")]
    pub eval_at: Vec<u64>,
    /// Backend: `cpu` (flex), `ndarray`, or `wgpu` (needs the feature).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
}

/// The log's default place: `feedback.jsonl` beside the checkpoint directory.
fn default_log_path(checkpoint: &Path) -> PathBuf {
    checkpoint.parent().unwrap_or(Path::new(".")).join("feedback.jsonl")
}

/// `<checkpoint>-online`, beside it.
fn default_out(checkpoint: &Path) -> PathBuf {
    let name = checkpoint.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    checkpoint.with_file_name(format!("{name}-online"))
}

/// Fails when writing to `out` would replace the checkpoint `input`.
fn refuse_overwrite(input: &Path, out: &Path) -> anyhow::Result<()> {
    let canonical = |p: &Path| {
        // `out` may not exist yet: compare through its parent.
        p.canonicalize().ok().or_else(|| {
            let parent = p.parent().filter(|q| !q.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some(parent.canonicalize().ok()?.join(p.file_name()?))
        })
    };
    let input_path = canonical(input);
    anyhow::ensure!(
        input_path.is_none() || input_path != canonical(out),
        "--out {} is the input checkpoint; write the fine-tuned model somewhere else",
        out.display()
    );
    Ok(())
}

fn warn_torn(path: &Path, contents: &LogContents) {
    if let Some(torn) = &contents.torn {
        tracing::warn!(
            "{}:{}: the last line is torn ({}), probably by a crash while writing; it is ignored",
            path.display(),
            torn.line,
            torn.reason
        );
    }
}

/// Opens the log at `path` for appending, after checking that it was
/// written for `labels` (checked first: opening cuts a torn last line, and a
/// refused log stays as it was).
fn open_log(path: &Path, labels: &[String]) -> anyhow::Result<FeedbackLog> {
    read_log(path)?
        .check_labels(path, labels)
        .context("this log belongs to another model; start a new one with --feedback-log FILE")?;
    let (log, contents) = FeedbackLog::open(path)?;
    warn_torn(path, &contents);
    Ok(log)
}

/// `cargo xtask assistant`.
pub(crate) fn assistant(args: &AssistantArgs) -> anyhow::Result<()> {
    args.device.run(AssistantJob { args })
}

/// `assistant` on the backend `--device` names.
struct AssistantJob<'a> {
    args: &'a AssistantArgs,
}

impl BackendJob for AssistantJob<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.args;
        let model = IntentModel::<B>::load(&args.checkpoint, &args.add_intents, args.seed, &device)?;
        let config = read_config(args.config.as_deref(), OnlineConfig { seed: args.seed, ..OnlineConfig::default() })?;
        let mode = AssistantMode { update: !args.no_update, relabel: !args.no_relabel };
        let rehearsal = model.rehearsal(args.rehearsal.as_deref())?;
        if args.simulate {
            let log = args.feedback_log.as_deref().map(|path| open_log(path, &model.spec.labels)).transpose()?;
            let simulation = Simulation {
                interactions: args.interactions,
                eval_at: args.eval_at.clone(),
                error_rate: args.error_rate,
                noise: args.noise,
                ..Simulation::new(&model, args.data.as_deref(), args.eval.as_deref(), &args.domains, args.seed)?
            };
            for point in simulate(&model, config, rehearsal, mode, &simulation, log)? {
                println!("{}", serde_json::to_string(&point)?);
            }
            return Ok(());
        }
        let (session, mut assistant) = open_session(args, &model, rehearsal, config, mode, &device)?;
        let stdin = std::io::stdin();
        let session = Session { prompt: stdin.is_terminal(), ..session };
        session.run(&mut assistant, stdin.lock(), &mut std::io::stdout().lock())
    }
}

/// The interactive session of `args`: its log opened (a torn last line cut
/// with a warning; a log of another label set refused) and the assistant.
fn open_session<B: AutodiffBackend>(
    args: &AssistantArgs,
    model: &IntentModel<B>,
    rehearsal: Option<IntentCorpus>,
    config: OnlineConfig,
    mode: AssistantMode,
    device: &B::Device,
) -> anyhow::Result<(Session, Assistant<B>)> {
    let log_path = args.feedback_log.clone().unwrap_or_else(|| default_log_path(&args.checkpoint));
    let log = open_log(&log_path, &model.spec.labels)?;
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.checkpoint));
    refuse_overwrite(&args.checkpoint, &out)?;
    let learner = model.learner(rehearsal, config.clone())?;
    let mut assistant = Assistant::new(learner, model.featurizer()?, model.step, mode, Some(log))?;
    if !args.no_clarify
        && let Some(policy) = ClarifyPolicy::load_beside(&args.checkpoint, device)?
    {
        assistant = assistant.with_clarify(policy);
    }
    let backend = B::name(device);
    Ok((Session { json: args.json, prompt: false, out, spec: model.spec.clone(), config, backend }, assistant))
}

/// The interactive loop's settings.
struct Session {
    json: bool,
    /// Print prompts (only to a person at a terminal).
    prompt: bool,
    /// Where `:save` writes.
    out: PathBuf,
    spec: IntentModelSpec,
    config: OnlineConfig,
    /// The backend's name, recorded in saved checkpoints.
    backend: String,
}

const HELP: &str = "Type what you would say to the assistant; it answers with an intent and its confidence \
(the margin between its best and second-best Q-value, 0 to 2), or, when unsure, asks you to say it again \
(--no-clarify turns that off). Then: `y` or an empty line = right, \
`n` = wrong, `= intent` = wrong, it was that intent (a unique prefix is enough). Commands: :help, \
:undo (forget the last feedback), :stats, :save, :quit.";

impl Session {
    /// Runs the loop until `:quit` or the end of `input`.
    fn run<B: AutodiffBackend>(
        &self,
        assistant: &mut Assistant<B>,
        input: impl BufRead,
        output: &mut impl Write,
    ) -> anyhow::Result<()> {
        let mut pending: Option<Answer> = None;
        self.prompt(output, pending.as_ref())?;
        for line in input.lines() {
            let line = line.context("reading stdin")?;
            let line = line.trim();
            if let Some(command) = line.strip_prefix(':') {
                if !self.command(assistant, command.trim(), output)? {
                    return Ok(());
                }
            } else if let Some(answer) = pending.take() {
                if answer.clarify.is_some() && !is_feedback(line) {
                    // Asked to say it again: this line is the rephrasing.
                    let answer = assistant.rephrased(&answer, line)?;
                    self.reply(assistant, &answer, output)?;
                    pending = Some(answer);
                } else {
                    match parse_feedback(line, assistant.labels()) {
                        Ok((feedback, corrected)) => {
                            let record = assistant.feedback(&answer, feedback, corrected)?;
                            let text = match (&record.corrected_intent, record.feedback) {
                                (Some(c), _) => format!("noted: `{c}`, not `{}`", record.action),
                                (None, Feedback::Wrong) => format!("noted: not `{}`", record.action),
                                _ => format!("noted: `{}`", record.action),
                            };
                            let version = assistant.model_version();
                            self.say(
                                output,
                                "feedback",
                                &text,
                                serde_json::json!({ "record": record, "model_version": version }),
                            )?;
                        }
                        Err(message) => {
                            self.say(output, "error", &message, serde_json::json!({}))?;
                            pending = Some(answer);
                        }
                    }
                }
            } else if !line.is_empty() {
                let answer = assistant.answer(line)?;
                self.reply(assistant, &answer, output)?;
                pending = Some(answer);
            }
            self.prompt(output, pending.as_ref())?;
        }
        Ok(())
    }

    /// The reply to an answer: the intent, or the question when it asks.
    fn reply<B: AutodiffBackend>(
        &self,
        assistant: &Assistant<B>,
        answer: &Answer,
        output: &mut impl Write,
    ) -> anyhow::Result<()> {
        let top = answer.top(assistant.labels(), 3);
        let extra = serde_json::json!({
            "utterance": answer.utterance,
            "intent": answer.label,
            "margin": answer.margin,
            "top": top.iter().map(|(l, q)| serde_json::json!({ "intent": l, "q": q })).collect::<Vec<_>>(),
            "model_version": answer.model_version,
            "turn": answer.turn,
            "clarify": answer.clarify,
        });
        if let Some(clarify) = &answer.clarify {
            return self.say(output, "clarify", &clarify.prompt, extra);
        }
        let text = match top.get(1) {
            Some((second, q)) => format!("{}  (margin {:.2}; next: {second} at {q:+.2})", answer.label, answer.margin),
            None => answer.label.clone(),
        };
        self.say(output, "answer", &text, extra)
    }

    /// Runs a `:command`; `false` to stop.
    fn command<B: AutodiffBackend>(
        &self,
        assistant: &mut Assistant<B>,
        command: &str,
        output: &mut impl Write,
    ) -> anyhow::Result<bool> {
        match command {
            "quit" | "q" | "exit" => return Ok(false),
            "help" | "h" | "?" => self.say(output, "help", HELP, serde_json::json!({}))?,
            "undo" => match assistant.undo()? {
                Some(undone) => {
                    let text = format!(
                        "forgot the last feedback ({:?}); model back to version {}",
                        undone.feedback,
                        assistant.model_version()
                    );
                    self.say(
                        output,
                        "undo",
                        &text,
                        serde_json::json!({ "undone": undone, "model_version": assistant.model_version() }),
                    )?
                }
                None => self.say(output, "error", "nothing to undo", serde_json::json!({}))?,
            },
            "stats" => {
                let stats = assistant.stats();
                let text = format!(
                    "rated answers: {} ({} right, {} wrong, {} corrected; {} undone); model version {}; lessons in replay: {}; log {}",
                    stats.interactions,
                    stats.right,
                    stats.wrong,
                    stats.corrected,
                    stats.undone,
                    assistant.model_version(),
                    assistant.learner().replay_len(),
                    assistant.log().map_or("-".into(), |l| l.path().display().to_string())
                );
                self.say(
                    output,
                    "stats",
                    &text,
                    serde_json::json!({ "stats": stats, "model_version": assistant.model_version() }),
                )?
            }
            "save" => {
                let run_config = serde_json::json!({ "online": self.config, "stats": assistant.stats() });
                save_intent_model(
                    &self.out,
                    assistant.learner().network(),
                    &self.spec,
                    assistant.model_version(),
                    self.backend.clone(),
                    run_config,
                )?;
                if let Some(policy) = assistant.clarify_policy() {
                    policy.save(&self.out.join(CLARIFY_DIR), self.backend.clone())?;
                }
                let text = format!("saved model version {} to {}", assistant.model_version(), self.out.display());
                self.say(
                    output,
                    "saved",
                    &text,
                    serde_json::json!({ "path": self.out, "model_version": assistant.model_version() }),
                )?
            }
            other => self.say(
                output,
                "error",
                &format!("unknown command `:{other}` (:help lists them)"),
                serde_json::json!({}),
            )?,
        }
        Ok(true)
    }

    /// One reply: a line of text, or with `--json` one JSON object with
    /// `type`, `text` and the `extra` fields.
    fn say(&self, output: &mut impl Write, kind: &str, text: &str, extra: serde_json::Value) -> anyhow::Result<()> {
        if self.json {
            let mut object = serde_json::Map::new();
            object.insert("type".into(), kind.into());
            object.insert("text".into(), text.into());
            if let serde_json::Value::Object(fields) = extra {
                object.extend(fields);
            }
            writeln!(output, "{}", serde_json::Value::Object(object))?;
        } else {
            writeln!(output, "{text}")?;
        }
        output.flush()?;
        Ok(())
    }

    fn prompt(&self, output: &mut impl Write, pending: Option<&Answer>) -> anyhow::Result<()> {
        if self.prompt && !self.json {
            let text = match pending {
                Some(answer) if answer.clarify.is_some() => "say it again (or y/n/= intent): ",
                Some(_) => "right? [Y/n/= intent] ",
                None => "> ",
            };
            write!(output, "{text}")?;
            output.flush()?;
        }
        Ok(())
    }
}

/// Whether `line` is feedback (y, n, an empty line, `= intent`) rather than words to the assistant.
fn is_feedback(line: &str) -> bool {
    matches!(line.to_lowercase().as_str(), "" | "y" | "yes" | "n" | "no") || line.starts_with('=')
}

/// Reads a feedback line: (feedback, corrected intent), or a message saying what is wrong.
fn parse_feedback(line: &str, labels: &[String]) -> Result<(Feedback, Option<usize>), String> {
    match line.to_lowercase().as_str() {
        "" | "y" | "yes" => return Ok((Feedback::Right, None)),
        "n" | "no" => return Ok((Feedback::Wrong, None)),
        _ => {}
    }
    let Some(name) = line.strip_prefix('=') else {
        return Err(format!("`{line}`: answer y, n, `= intent`, or press enter to accept (:help)"));
    };
    match_label(name.trim(), labels).map(|i| (Feedback::Corrected, Some(i)))
}

/// The label `name` names: itself, or the only label it is a prefix of.
fn match_label(name: &str, labels: &[String]) -> Result<usize, String> {
    if name.is_empty() {
        return Err("`=` needs an intent, e.g. `= light_on`".into());
    }
    if let Some(i) = labels.iter().position(|l| l == name) {
        return Ok(i);
    }
    let matches: Vec<usize> = (0..labels.len()).filter(|&i| labels[i].starts_with(name)).collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("unknown intent `{name}`; the intents are: {}", labels.join(", "))),
        many => {
            let names: Vec<&str> = many.iter().map(|&i| labels[i].as_str()).collect();
            Err(format!("`{name}` could be {}; type more of it", names.join(" or ")))
        }
    }
}

/// Arguments of `cargo xtask finetune`.
#[derive(Debug, Args)]
pub(crate) struct FinetuneArgs {
    /// Checkpoint directory of the intent model to start from.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The feedback: a JSON-lines log (written by `cargo xtask assistant`
    /// or `feedback export`), or a server's store (`sqlite://PATH`, `postgres://...`).
    #[arg(long)]
    feedback: PathBuf,
    /// Where the fine-tuned model goes (never the input checkpoint).
    #[arg(long)]
    out: PathBuf,
    /// Held-out labelled utterances (JSONL or CSV); default: the built-in
    /// test split of the model's intents.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Gradient steps; default: `updates_per_feedback` per lesson.
    #[arg(long)]
    steps: Option<usize>,
    /// Learn from corrections only that the answer was wrong.
    #[arg(long)]
    no_relabel: bool,
    /// TOML file over the online-learning defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Labelled utterances replayed during updates; default: the built-in training split.
    #[arg(long)]
    rehearsal: Option<PathBuf>,
    /// Recogniser noise on the held-out set.
    #[arg(long, default_value_t = 0.1)]
    noise: f64,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend: `cpu` (flex), `ndarray`, or `wgpu` (needs the feature).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

/// `cargo xtask finetune --feedback`.
pub(crate) fn finetune(args: &FinetuneArgs) -> anyhow::Result<()> {
    args.device.run(FinetuneJob { args })
}

/// `finetune` on the backend `--device` names.
struct FinetuneJob<'a> {
    args: &'a FinetuneArgs,
}

impl BackendJob for FinetuneJob<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.args;
        refuse_overwrite(&args.checkpoint, &args.out)?;
        let mut model = IntentModel::<B>::load(&args.checkpoint, &[], args.seed, &device)?;
        let contents = match args.feedback.to_str().filter(|f| crate::serve::is_store_url(f)) {
            Some(url) => crate::serve::read_store_log(url, &model.spec, model.step)?,
            None => read_log(&args.feedback)?,
        };
        warn_torn(&args.feedback, &contents);
        contents.check_labels(&args.feedback, &model.spec.labels)?;
        // The built-in held-out set covers the built-in intents (the added ones come after them).
        let builtin = match &args.eval {
            Some(_) => None,
            None => Some(builtin_held_out(&model.spec.labels, args.seed).context("--eval FILE")?),
        };
        // Intents added through the server become outputs, as the server's learner made them.
        model.add_intents(&contents.added_intents(), args.seed)?;
        let labels = &model.spec.labels;
        let held_out = match (&args.eval, builtin) {
            (Some(path), _) => IntentCorpus::from_path(path, Some(labels))?.utterances(1, args.seed),
            (None, held_out) => held_out.unwrap_or_default(),
        };
        let config = read_config(args.config.as_deref(), OnlineConfig { seed: args.seed, ..OnlineConfig::default() })?;
        let options =
            FinetuneOptions { relabel: !args.no_relabel, steps: args.steps, noise: args.noise, seed: args.seed };
        let rehearsal = model.rehearsal(args.rehearsal.as_deref())?;
        let (learner, report) = finetune_from_log(&model, &contents, &held_out, rehearsal, config.clone(), &options)
            .with_context(|| format!("learning from {}", args.feedback.display()))?;
        eprintln!("| intent | held-out | recall before | after | change |\n|---|---|---|---|---|");
        for c in report.per_intent.iter().filter(|c| c.support > 0) {
            eprintln!(
                "| {} | {} | {:.3} | {:.3} | {:+.3} |",
                c.intent,
                c.support,
                c.recall_before,
                c.recall_after,
                c.recall_after - c.recall_before
            );
        }
        let run_config = serde_json::json!({
            "finetuned_from": args.checkpoint,
            "feedback": args.feedback,
            "options": options,
            "online": config,
        });
        save_intent_model(
            &args.out,
            learner.network(),
            &model.spec,
            model.step + learner.updates(),
            B::name(&device),
            run_config,
        )?;
        write_atomically(&args.out.join("finetune.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
        eprintln!(
            "accuracy {:.3} → {:.3} on {} held-out utterances; model written to {}",
            report.accuracy_before,
            report.accuracy_after,
            held_out.len(),
            args.out.display()
        );
        let mut summary = serde_json::to_value(&report)?;
        if let serde_json::Value::Object(fields) = &mut summary {
            fields.remove("per_intent");
        }
        println!("{summary}");
        Ok(())
    }
}

/// Arguments of `cargo xtask bench feedback`.
#[derive(Debug, Args)]
pub(crate) struct FeedbackBench {
    /// The pretrained intent model to start from; when the folder does not
    /// exist, a model is pretrained on the source domains and saved there.
    #[arg(long, default_value = "runs/pipeline/source")]
    checkpoint: PathBuf,
    /// The new domains the simulated user speaks.
    #[arg(long, value_delimiter = ',', default_value = "navigation")]
    domains: Vec<Domain>,
    /// Error rates of the simulated user's feedback.
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.2")]
    error_rates: Vec<f64>,
    /// After how many interactions to measure.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,500")]
    eval_at: Vec<u64>,
    /// Seeds per setting (0..N).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// TOML file over the online-learning defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Recogniser noise on the user's utterances and the held-out set.
    #[arg(long, default_value_t = 0.1)]
    noise: f64,
    /// Folder for the report.
    #[arg(long, default_value = "runs/bench-feedback")]
    out: PathBuf,
    /// Backend: `cpu` (flex), `ndarray`, or `wgpu` (needs the feature).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

/// One (error rate, relabeling, seed) simulated session.
#[derive(Debug, Serialize)]
struct FeedbackRun {
    error_rate: f64,
    relabel: bool,
    seed: u64,
    points: Vec<SimulationPoint>,
    wall_seconds: f64,
}

/// `cargo xtask bench feedback`: held-out accuracy on a new domain after
/// 50–500 simulated feedback interactions, with and without relabeling
/// corrections, at several feedback error rates.
pub(crate) fn bench_feedback(args: &FeedbackBench) -> anyhow::Result<()> {
    args.device.run(FeedbackBenchJob { args })
}

/// `bench feedback` on the backend `--device` names.
struct FeedbackBenchJob<'a> {
    args: &'a FeedbackBench,
}

impl BackendJob for FeedbackBenchJob<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.args;
        if !args.checkpoint.exists() {
            tracing::info!("{} does not exist: pretraining a source model there", args.checkpoint.display());
            pretrain_source_model::<B>(&args.checkpoint, &device)?;
        }
        let mut runs = Vec::new();
        for &error_rate in &args.error_rates {
            for relabel in [true, false] {
                for seed in 0..args.seeds {
                    let started = std::time::Instant::now();
                    let (model, simulation) = new_domain_session::<B>(&args.checkpoint, &args.domains, seed, &device)?;
                    let simulation = Simulation {
                        interactions: args.eval_at.iter().copied().max().unwrap_or(0),
                        eval_at: args.eval_at.clone(),
                        error_rate,
                        noise: args.noise,
                        ..simulation
                    };
                    let config = read_config(args.config.as_deref(), OnlineConfig { seed, ..OnlineConfig::default() })?;
                    let mode = AssistantMode { update: true, relabel };
                    let points = simulate(&model, config, model.rehearsal(None)?, mode, &simulation, None)?;
                    let wall_seconds = started.elapsed().as_secs_f64();
                    let last = points.last().map_or(0.0, |p| p.accuracy);
                    eprintln!(
                        "error rate {error_rate}, relabel {relabel}, seed {seed}: accuracy {last:.3} ({wall_seconds:.1} s)"
                    );
                    runs.push(FeedbackRun { error_rate, relabel, seed, points, wall_seconds });
                }
            }
        }
        report_feedback(args, &runs)
    }
}

/// Writes the table, JSON and plot of the feedback benchmark's `runs`.
fn report_feedback(args: &FeedbackBench, runs: &[FeedbackRun]) -> anyhow::Result<()> {
    let table = feedback_table(runs, &args.eval_at)?;
    print!("{table}");
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    write_atomically(&args.out.join("report.md"), table.as_bytes())?;
    write_atomically(&args.out.join("report.json"), serde_json::to_string_pretty(runs)?.as_bytes())?;
    let mut curves = Vec::new();
    for &error_rate in &args.error_rates {
        for relabel in [true, false] {
            let curve: Vec<(f64, Estimate)> = std::iter::once(0)
                .chain(args.eval_at.iter().copied())
                .filter_map(|n| {
                    Some((n as f64, over_seeds_at(runs, error_rate, relabel, n, |p| Some(p.accuracy)).iqm?))
                })
                .collect();
            let name = format!("error {error_rate}, {}", if relabel { "relabeled" } else { "no relabel" });
            curves.push((name, curve));
        }
    }
    let bands: Vec<rlhf_bench::Band<'_>> = curves.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    rlhf_bench::plot_bands(
        &args.out.join("report.png"),
        &format!("Learning a new domain from feedback ({} seeds)", args.seeds),
        ("feedback interactions", "held-out accuracy, IQM and 95% interval"),
        0.0..1.0,
        &bands,
    )?;
    Ok(())
}

/// One setting's `value` at `interactions` over its seeds.
fn over_seeds_at(
    runs: &[FeedbackRun],
    error_rate: f64,
    relabel: bool,
    interactions: u64,
    value: impl Fn(&SimulationPoint) -> Option<f64>,
) -> OverSeeds {
    let values: Vec<f64> = runs
        .iter()
        .filter(|r| r.error_rate == error_rate && r.relabel == relabel)
        .filter_map(|r| r.points.iter().find(|p| p.interactions == interactions).and_then(&value))
        .collect();
    OverSeeds::new(&values)
}

fn feedback_table(runs: &[FeedbackRun], eval_at: &[u64]) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut table = String::from("| feedback error rate | corrections | seeds | start |");
    for n in eval_at {
        write!(table, " after {n} |")?;
    }
    table.push_str(" retained intents, start → end | wall s per run |\n|---|---|---|---|");
    table.push_str(&"---|".repeat(eval_at.len() + 2));
    table.push('\n');
    let mut settings: Vec<(f64, bool)> = runs.iter().map(|r| (r.error_rate, r.relabel)).collect();
    settings.dedup();
    let last = eval_at.iter().copied().max().unwrap_or(0);
    for (error_rate, relabel) in settings {
        let accuracy = |n: u64| seeds_cell(&over_seeds_at(runs, error_rate, relabel, n, |p| Some(p.accuracy)), 3);
        let retained = |n: u64| seeds_cell(&over_seeds_at(runs, error_rate, relabel, n, |p| p.retained_accuracy), 3);
        let walls: Vec<f64> = runs
            .iter()
            .filter(|r| r.error_rate == error_rate && r.relabel == relabel)
            .map(|r| r.wall_seconds)
            .collect();
        write!(
            table,
            "| {error_rate} | {} | {} | {} |",
            if relabel { "relabeled (+1 for the named intent)" } else { "only −1 for the answer" },
            walls.len(),
            accuracy(0)
        )?;
        for &n in eval_at {
            write!(table, " {} |", accuracy(n))?;
        }
        writeln!(table, " {} → {} | {} |", retained(0), retained(last), seeds_cell(&OverSeeds::new(&walls), 1))?;
    }
    writeln!(table, "\n{}", crate::bench::intervals_note())?;
    Ok(table)
}

/// Pretrains an intent model on the pipeline's source domains (its step 1
/// only, with the default settings) and saves it to `dir`.
fn pretrain_source_model<B: AutodiffBackend>(dir: &Path, device: &B::Device) -> anyhow::Result<()> {
    let config = PipelineConfig::default();
    let (network, spec) = pretrain_domains::<B>(&config, &config.source_domains, device)?;
    let run_config = serde_json::json!({ "pretrain": config.pretrain });
    save_intent_model(dir, &network, &spec, 0, B::name(device), run_config)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rlhf_assistant::IntentFeatures;
    use rlhf_assistant::PipelineConfig;
    use rlhf_assistant::dialog::ClarifySpec;
    use rlhf_assistant::feedback::LogEntry;
    use rlhf_assistant::pipeline::load_intent_model;
    use rlhf_assistant::pipeline::new_network;
    use rlhf_model::backend::{AutodiffCpu, cpu_device};
    use tempfile::TempDir;

    /// A small untrained model over three built-in intents, saved in a fresh folder.
    fn saved_model(name: &str) -> TempDir {
        let tmp = TempDir::with_prefix(format!("rlhf-assistant-{name}-")).unwrap();
        let config = PipelineConfig::default();
        let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap();
        let network = new_network::<AutodiffCpu>(&config, &featurizer, 3, &cpu_device(), 0);
        let labels: Vec<String> = ["light_on", "light_off", "volume_up"].map(String::from).to_vec();
        let spec = IntentModelSpec::new(labels, &featurizer);
        save_intent_model(&tmp.path().join("model"), &network, &spec, 100, "flex".into(), serde_json::json!({}))
            .unwrap();
        tmp
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AssistantArgs,
    }

    fn args(dir: &Path, extra: &[&str]) -> AssistantArgs {
        let checkpoint = dir.join("model");
        let base = ["xtask", "--checkpoint", checkpoint.to_str().unwrap(), "--json"];
        Cli::parse_from(base.iter().chain(extra)).args
    }

    /// Runs a session on `input`; returns its JSON replies.
    fn run(args: &AssistantArgs, input: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let model = IntentModel::<AutodiffCpu>::load(&args.checkpoint, &args.add_intents, 0, &cpu_device())?;
        let config =
            OnlineConfig { updates_per_feedback: 2, rehearsal_batch: 4, feedback_batch: 4, ..OnlineConfig::default() };
        let mode = AssistantMode { update: !args.no_update, relabel: !args.no_relabel };
        let (session, mut assistant) = open_session(args, &model, model.rehearsal(None)?, config, mode, &cpu_device())?;
        let mut output = Vec::new();
        session.run(&mut assistant, input.as_bytes(), &mut output)?;
        Ok(String::from_utf8(output)?.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
    }

    fn kinds(replies: &[serde_json::Value]) -> Vec<&str> {
        replies.iter().map(|r| r["type"].as_str().unwrap()).collect()
    }

    #[test]
    fn feedback_corrections_and_undo_change_the_log_and_the_model() {
        let tmp = saved_model("repl");
        let dir = tmp.path();
        let args = args(dir, &[]);
        let input = "打开灯\ny\n关灯\n= light_of\nturn it up\nmaybe\n= li\n= nothing\nn\n:stats\n:undo\n:bogus\n:save\n:quit\nnever read\n";
        let replies = run(&args, input).unwrap();
        assert_eq!(
            kinds(&replies),
            [
                "answer", "feedback", "answer", "feedback", "answer", "error", "error", "error", "feedback", "stats",
                "undo", "error", "saved"
            ]
        );
        assert!(replies[6]["text"].as_str().unwrap().contains("light_on or light_off"), "{}", replies[6]);
        assert!(replies[7]["text"].as_str().unwrap().contains("unknown intent `nothing`"), "{}", replies[7]);
        // Every feedback was learned from: the model version moves on, and the undo takes it back.
        let versions: Vec<u64> =
            [0, 2, 4, 8, 10].iter().map(|&i| replies[i]["model_version"].as_u64().unwrap()).collect();
        assert_eq!(versions[0], 100, "the checkpoint's step");
        assert!(versions[1] > versions[0] && versions[2] > versions[1] && versions[3] > versions[2], "{versions:?}");
        assert_eq!(versions[4], versions[2], "undo restores the model before the last feedback");
        assert_eq!(replies[9]["stats"]["interactions"], 3);

        let contents = read_log(&dir.join("feedback.jsonl")).unwrap();
        assert_eq!(contents.entries.len(), 4);
        let records: Vec<&rlhf_assistant::feedback::FeedbackRecord> = contents
            .entries
            .iter()
            .filter_map(|(_, e)| match e {
                LogEntry::Interaction(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(records[0].feedback, Feedback::Right);
        assert_eq!(records[0].utterance, "打开灯");
        assert_eq!(records[0].q_values.len(), 3);
        // `= light_of` names light_off: a correction, unless the model had chosen it.
        let second = records[1];
        assert!(
            (second.feedback == Feedback::Corrected && second.corrected_intent.as_deref() == Some("light_off"))
                || (second.feedback == Feedback::Right && second.action == "light_off"),
            "{second:?}"
        );
        assert_eq!(records[2].feedback, Feedback::Wrong);
        let undo = &contents.entries[3].1;
        assert!(matches!(undo, LogEntry::Undo { id: 3, undoes: 2, .. }), "{undo:?}");
        assert_eq!(contents.interactions().len(), 2);

        // `:save` wrote a model that loads, with the session's version as its step.
        let (_, spec, meta) = load_intent_model::<AutodiffCpu>(&dir.join("model-online"), &cpu_device()).unwrap();
        assert_eq!((spec.labels.len(), meta.step), (3, versions[2]));

        // A second session appends after the first; end of input (no :quit) leaves a complete log.
        let replies = run(&args, "volume up please\n\n").unwrap();
        assert_eq!(kinds(&replies), ["answer", "feedback"]);
        let contents = read_log(&dir.join("feedback.jsonl")).unwrap();
        assert_eq!((contents.entries.len(), contents.torn.is_none()), (5, true));
        assert_eq!(contents.entries[4].1.id(), 4);
    }

    #[test]
    fn no_update_only_logs_and_a_torn_log_is_cut_but_another_label_set_refused() {
        let tmp = saved_model("torn");
        let dir = tmp.path();
        let args = args(dir, &["--no-update"]);
        let replies = run(&args, "turn it up\n= volume_up\n").unwrap();
        assert_eq!(replies[1]["model_version"], 100, "--no-update leaves the model as it was");
        let log = dir.join("feedback.jsonl");
        let mut bytes = std::fs::read(&log).unwrap();
        bytes.extend_from_slice(b"{\"kind\": \"interaction\", \"id\": 1, \"utt");
        std::fs::write(&log, &bytes).unwrap();
        run(&args, "lights on\ny\n").unwrap();
        let contents = read_log(&log).unwrap();
        assert_eq!((contents.entries.len(), contents.torn), (2, None));

        // The same log under a model with an extra intent: another label set.
        let grown = AssistantArgs { add_intents: vec!["curtain_open".into()], ..args };
        let err = format!("{:#}", run(&grown, "").unwrap_err());
        assert!(err.contains("feedback.jsonl:1") && err.contains("another label set"), "{err}");
        assert_eq!(read_log(&log).unwrap().entries.len(), 2, "a refused log is left as it was");
    }

    #[test]
    fn finetune_learns_from_a_log_and_refuses_to_overwrite_its_input() {
        let tmp = saved_model("finetune");
        let dir = tmp.path();
        let args = args(dir, &[]);
        let input = "打开灯\n= light_on\n关灯\n= light_off\n调高音量\n= volume_up\n";
        run(&args, &input.repeat(3)).unwrap();
        let finetune_args = |out: PathBuf| FinetuneArgs {
            checkpoint: dir.join("model"),
            feedback: dir.join("feedback.jsonl"),
            out,
            eval: None,
            steps: Some(30),
            no_relabel: false,
            config: None,
            rehearsal: None,
            noise: 0.0,
            seed: 0,
            device: Device::Cpu,
        };
        let err = format!("{:#}", finetune(&finetune_args(dir.join("model"))).unwrap_err());
        assert!(err.contains("is the input checkpoint"), "{err}");
        let err = format!("{:#}", finetune(&finetune_args(dir.join(".").join("model"))).unwrap_err());
        assert!(err.contains("is the input checkpoint"), "{err}");
        finetune(&finetune_args(dir.join("tuned"))).unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("tuned").join("finetune.json")).unwrap()).unwrap();
        assert_eq!((report["interactions"].as_u64(), report["utterances"].as_u64()), (Some(9), Some(3)));
        assert_eq!(report["steps"], 30);
        assert!(report["accuracy_after"].as_f64() > report["accuracy_before"].as_f64(), "{report}");
        load_intent_model::<AutodiffCpu>(&dir.join("tuned"), &cpu_device()).unwrap();
    }

    #[test]
    fn a_clarify_policy_beside_the_model_asks_and_the_rephrasing_is_answered() {
        let tmp = saved_model("clarify");
        let dir = tmp.path();
        // A policy that always prefers to ask: its clarify output is a constant 10.
        let config = PipelineConfig::default();
        let spec = ClarifySpec {
            labels: ["light_on", "light_off", "volume_up"].map(String::from).to_vec(),
            featurizer: config.featurizer,
            max_turns: 2,
        };
        let network = rlhf_model::QNetworkConfig::new(config.featurizer.dim + 2, 4)
            .with_hidden(vec![8])
            .init::<AutodiffCpu>(&cpu_device(), 3)
            .with_output(3, &[0.0; 8], 10.0)
            .unwrap();
        let policy = ClarifyPolicy::new(network, spec).unwrap();
        policy.save(&dir.join("model").join(CLARIFY_DIR), "flex".into()).unwrap();

        let replies = run(&args(dir, &[]), "开灯\n把灯打开\ny\n:save\n").unwrap();
        assert_eq!(kinds(&replies), ["clarify", "answer", "feedback", "saved"]);
        assert!(replies[0]["text"].as_str().unwrap().contains("还是"), "{}", replies[0]);
        assert_eq!((replies[0]["turn"].as_u64(), replies[1]["turn"].as_u64()), (Some(1), Some(2)));
        // Feedback is on everything heard for the request.
        assert_eq!(replies[2]["record"]["utterance"], "开灯 把灯打开");
        // `:save` keeps the policy beside the saved model.
        assert!(dir.join("model-online").join(CLARIFY_DIR).join("clarify.json").exists());

        let replies = run(&args(dir, &["--no-clarify"]), "开灯\ny\n").unwrap();
        assert_eq!(kinds(&replies), ["answer", "feedback"]);
    }

    #[test]
    fn labels_match_by_unique_prefix() {
        let labels: Vec<String> = ["light_on", "light_off", "volume_up"].map(String::from).to_vec();
        assert_eq!(match_label("volume_up", &labels), Ok(2));
        assert_eq!(match_label("vol", &labels), Ok(2));
        assert_eq!(match_label("light_of", &labels), Ok(1));
        assert!(match_label("light", &labels).unwrap_err().contains("light_on or light_off"));
        assert!(match_label("", &labels).is_err());
        assert_eq!(parse_feedback("", &labels), Ok((Feedback::Right, None)));
        assert_eq!(parse_feedback("Y", &labels), Ok((Feedback::Right, None)));
        assert_eq!(parse_feedback("no", &labels), Ok((Feedback::Wrong, None)));
        assert_eq!(parse_feedback("=vol", &labels), Ok((Feedback::Corrected, Some(2))));
        assert!(parse_feedback("perhaps", &labels).is_err());
    }
}
