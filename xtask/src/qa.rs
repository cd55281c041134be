//! `cargo xtask qa`: the question-answering study over seeds (see
//! `rlhf_assistant::qa::study`), its tables, JSON and the fine-tuning plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use anyhow::Context as _;
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Subcommand};
use rlhf_algo::callbacks::progress_bar;
use rlhf_algo::stats::{Estimate, OverSeeds, iqm_interval};
use rlhf_assistant::Language;
use rlhf_assistant::qa::eval::ranker_outcomes;
use rlhf_assistant::qa::study::{
    AtNoise, LexicalScores, QaData, QaSeedReport, QaStudyConfig, lexical, run_seed, work_per_seed,
};
use rlhf_assistant::qa::{
    AnswerIndex, ByLanguage, DEFAULT_QA_MODEL_DIR, Decision, KnowledgeBase, QaFeedback, QaModel, QaScores,
};
use rlhf_bench::table::seeds_cell;
use serde::Serialize;

use crate::task::{BackendJob, Device};
use crate::train::{read_config, write_atomically};

/// Arguments of `cargo xtask qa`.
#[derive(Debug, Args)]
pub(crate) struct QaArgs {
    /// `ask`: answer with a saved model instead of running the study.
    #[command(subcommand)]
    action: Option<QaAction>,
    /// TOML file overriding the built-in study settings (any subset of fields).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder (created; files of an earlier run there are replaced).
    #[arg(long, default_value = "runs/qa")]
    out: PathBuf,
    /// Seeds (0, 1, ...): every learned result is reported over them.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Backend: `cpu` (flex), `ndarray`, or `wgpu` (needs the feature).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
    /// A Python with scikit-learn: its TF-IDF cosine and logistic
    /// regression (`benches/peers/sklearn_qa.py`) rank the same questions,
    /// reported in the same tables.
    #[arg(long)]
    peer_python: Option<PathBuf>,
}

/// What `qa` can do besides the study.
#[derive(Debug, Subcommand)]
enum QaAction {
    /// Answer a question with a saved model; without one, a session on
    /// stdin that learns from your feedback on each answer.
    Ask(AskArgs),
}

/// Arguments of `cargo xtask qa ask`.
#[derive(Debug, Args)]
struct AskArgs {
    /// The question; without it, questions and feedback are read from stdin.
    question: Option<String>,
    /// The model folder (`cargo xtask qa` writes one).
    #[arg(long, default_value = DEFAULT_QA_MODEL_DIR)]
    model: PathBuf,
    /// Answer from your own knowledge base instead: JSON lines `{"id",
    /// "question", "answer", "phrasings"?}` (the model scores answers it
    /// never saw; `:save` then keeps this knowledge base with the model).
    #[arg(long)]
    kb: Option<PathBuf>,
}

/// What `qa` writes to `report.json`.
#[derive(Debug, Serialize)]
struct QaReport {
    config: QaStudyConfig,
    lexical: LexicalScores,
    peers: BTreeMap<String, AtNoise>,
    seeds: Vec<QaSeedReport>,
}

pub(crate) fn qa(args: &QaArgs) -> anyhow::Result<()> {
    match &args.action {
        Some(QaAction::Ask(ask)) => args.device.run(AskJob { args: ask }),
        None => args.device.run(QaJob { args }),
    }
}

struct QaJob<'a> {
    args: &'a QaArgs,
}

impl BackendJob for QaJob<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        run_qa::<B>(self.args, device)
    }
}

fn run_qa<B: AutodiffBackend>(args: &QaArgs, device: B::Device) -> anyhow::Result<()> {
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let config = read_config(args.config.as_deref(), QaStudyConfig::default())?;
    config.validate()?;
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let data = QaData::new(&config)?;
    let lexical = lexical(&data.builtin, &data.builtin_tests);
    let peers = match &args.peer_python {
        Some(python) => sklearn_peer(python, &args.out, &data)?,
        None => BTreeMap::new(),
    };
    let bar = progress_bar(work_per_seed(&config) * args.seeds, "steps");
    let mut seeds = Vec::new();
    for seed in 0..args.seeds {
        bar.set_message(format!("seed {seed}"));
        let (report, network) = run_seed::<B>(&config, &data, seed, &device, &mut || bar.inc(1))?;
        if seed == 0 {
            let model =
                QaModel { network, index: data.extended.clone(), rewards: config.learn.rewards, pair: config.pair() };
            model.save(&args.out.join("model"))?;
        }
        seeds.push(report);
    }
    bar.finish_and_clear();
    let markdown = report_markdown(&config, &lexical, &peers, &seeds);
    print!("{markdown}");
    let band = |curve: fn(&QaSeedReport) -> &rlhf_assistant::qa::study::Curve| curve_band(&seeds, curve);
    rlhf_bench::plot_bands(
        &args.out.join("finetune.png"),
        &format!("Car manual, test top-1 at noise 0.1, IQM and 95% interval over {} seeds", seeds.len()),
        ("interactions with users", "top-1"),
        0.0..1.02,
        &[
            ("fine-tuned from the pretrained pair network", &band(|s| &s.finetune)),
            ("from scratch", &band(|s| &s.scratch)),
        ],
    )?;
    write_atomically(&args.out.join("report.md"), markdown.as_bytes())?;
    let report = QaReport { config, lexical, peers, seeds };
    write_atomically(&args.out.join("report.json"), &serde_json::to_vec_pretty(&report)?)?;
    println!("wrote {}; the answer model is {}", args.out.display(), args.out.join("model").display());
    Ok(())
}

struct AskJob<'a> {
    args: &'a AskArgs,
}

impl BackendJob for AskJob<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let dir = &self.args.model;
        let mut model = QaModel::<B>::load(dir, &device)
            .with_context(|| format!("loading the answer model (`cargo xtask qa` writes {DEFAULT_QA_MODEL_DIR})"))?;
        if let Some(path) = &self.args.kb {
            model = model.with_knowledge_base(KnowledgeBase::from_path(path)?)?;
        }
        match &self.args.question {
            Some(question) => {
                let decision = model.index.decide(&model.network, vec![model.index.retrieve(question)]).remove(0);
                print!("{}", describe(&model.index, question, &decision));
                Ok(())
            }
            None => {
                let stdin = std::io::stdin();
                ask_session(model, dir, stdin.lock(), &mut std::io::stdout().lock())
            }
        }
    }
}

/// The answer in the question's language and the candidates, numbered for feedback.
fn describe(index: &AnswerIndex, question: &str, decision: &Decision) -> String {
    let kb = index.kb();
    let language = Language::of_text(question);
    let ranked = decision.ranked();
    let mut out = String::new();
    match decision.choice() {
        Some(entry) => {
            let (answer, id) = (kb.entries()[entry].answer(language), &kb.entries()[entry].id);
            let q = ranked.iter().find(|&&(e, _)| e == entry).map_or(f32::NAN, |&(_, q)| q);
            let _ = writeln!(out, "{answer}\n  ({id}, Q {q:.2})");
        }
        None => {
            let _ = writeln!(out, "I don't know. (Q of not answering {:.2})", decision.abstain_q);
        }
    }
    for (i, &(entry, q)) in ranked.iter().enumerate().take(5) {
        let _ = writeln!(out, "  {}. {} (Q {q:.2})", i + 1, kb.entries()[entry].id);
    }
    out
}

/// What a feedback line says about an answer: `y` right, `n` wrong, a
/// candidate's number (as listed) "this one", `0` "none of these";
/// anything else is not feedback.
fn parse_feedback(line: &str, ranking: &[usize]) -> Option<QaFeedback> {
    match line.trim() {
        "y" | "yes" | "对" => Some(QaFeedback::Right),
        "n" | "no" | "不对" => Some(QaFeedback::Wrong),
        "0" => Some(QaFeedback::NoneOfThese),
        number => {
            number.parse::<usize>().ok().and_then(|n| ranking.get(n.wrapping_sub(1))).map(|&e| QaFeedback::ThisOne(e))
        }
    }
}

/// Questions and feedback from `input`: each question is answered; a
/// feedback line after it teaches the model (hindsight relabeling of "this
/// one" and "none of these"); `:save` writes the model back to `dir`.
fn ask_session<B: AutodiffBackend>(
    model: QaModel<B>,
    dir: &std::path::Path,
    input: impl std::io::BufRead,
    output: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let QaModel { network, index, rewards, pair } = model;
    let config = rlhf_assistant::qa::QaLearnConfig { rewards, ..Default::default() };
    let rehearsal = index.kb().questions(rlhf_assistant::Split::Train);
    let mut learner = rlhf_assistant::qa::QaLearner::new(network, config, 0)?.with_rehearsal(rehearsal);
    writeln!(
        output,
        "Ask a question; after an answer: y (right), n (wrong), a number (this one), 0 (none of these). :save keeps what was learned."
    )?;
    let mut last: Option<Decision> = None;
    for line in input.lines() {
        let line = line.context("reading stdin")?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if text == ":save" {
            let model = QaModel { network: learner.network().clone(), index: index.clone(), rewards, pair };
            model.save(dir)?;
            writeln!(output, "saved {}", dir.display())?;
            continue;
        }
        let feedback = last.as_ref().and_then(|decision| Some((decision, parse_feedback(text, &decision.ranking())?)));
        if let Some((decision, feedback)) = feedback {
            let taught = learner.learn(&index, &decision.retrieved, decision.choice(), feedback)?;
            writeln!(output, "learned from {taught} lessons")?;
            last = None;
            continue;
        }
        let decision = index.decide(&learner.valid(), vec![index.retrieve(text)]).remove(0);
        write!(output, "{}", describe(&index, text, &decision))?;
        last = Some(decision);
    }
    Ok(())
}

/// The scikit-learn rankers' scores on the study's built-in test questions.
fn sklearn_peer(
    python: &std::path::Path,
    out: &std::path::Path,
    data: &QaData,
) -> anyhow::Result<BTreeMap<String, AtNoise>> {
    let documents = data.builtin.kb().documents();
    let texts = |heard: &[rlhf_assistant::qa::Heard]| heard.iter().map(|h| h.text.clone()).collect::<Vec<_>>();
    let input = serde_json::json!({
        "documents": documents,
        "train": data.builtin_train.iter().map(|q| (q.text.as_str(), q.entry)).collect::<Vec<_>>(),
        "clean": texts(&data.builtin_tests.clean),
        "noisy": texts(&data.builtin_tests.noisy),
    });
    let input_path = out.join("peer_input.json");
    write_atomically(&input_path, &serde_json::to_vec(&input)?)?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/peers/sklearn_qa.py");
    let output = std::process::Command::new(python)
        .arg(&script)
        .arg(&input_path)
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    let rankings: BTreeMap<String, BTreeMap<String, Vec<Vec<usize>>>> =
        crate::bench::last_json_line(&output, "the scikit-learn peer")?;
    let tests = &data.builtin_tests;
    rankings
        .into_iter()
        .map(|(name, splits)| {
            let mut scores = AtNoise::default();
            for (split, heard, slot) in
                [("clean", &tests.clean, &mut scores.clean), ("noisy", &tests.noisy, &mut scores.noisy)]
            {
                let ranked = splits.get(split).with_context(|| format!("the peer's {name} has no {split} rankings"))?;
                anyhow::ensure!(
                    ranked.len() == heard.len(),
                    "the peer ranked {} of {} questions",
                    ranked.len(),
                    heard.len()
                );
                let mut next = ranked.iter().cloned();
                *slot = ByLanguage::of(&ranker_outcomes(&data.builtin, heard, |_| next.next().unwrap_or_default()));
            }
            Ok((format!("scikit-learn {}", name.replace('_', " ")), scores))
        })
        .collect()
}

/// Each evaluation point of a curve: its IQM over seeds with the interval.
fn curve_band(
    seeds: &[QaSeedReport],
    curve: fn(&QaSeedReport) -> &rlhf_assistant::qa::study::Curve,
) -> Vec<(f64, Estimate)> {
    let points = curve(&seeds[0]).points.len();
    (0..points)
        .filter_map(|i| {
            let x = curve(&seeds[0]).points[i].0 as f64;
            let values: Vec<f64> = seeds.iter().filter_map(|s| curve(s).points.get(i).map(|p| p.1)).collect();
            iqm_interval(&values).map(|e| (x, e))
        })
        .collect()
}

/// A row's cells: top-1 (zh, en), MRR@10, recall@k, abstain rate, abstentions right,
/// answered right; `pick` reads one seed's scores of one language.
fn row_cells(values: &[ByLanguage], decimals: usize) -> Vec<String> {
    let over = |f: &dyn Fn(&ByLanguage) -> Option<f64>| {
        let values: Vec<f64> = values.iter().filter_map(f).collect();
        if values.is_empty() { "-".into() } else { seeds_cell(&OverSeeds::new(&values), decimals) }
    };
    let all = |f: fn(&QaScores) -> Option<f64>| move |s: &ByLanguage| f(&s.all);
    vec![
        over(&|s| Some(s.zh.top1)),
        over(&|s| Some(s.en.top1)),
        over(&all(|s| Some(s.mrr10))),
        over(&all(|s| Some(s.recall))),
        over(&all(|s| Some(s.abstain_rate))),
        over(&all(|s| s.abstain_right)),
        over(&all(|s| s.answered_accuracy)),
    ]
}

fn report_markdown(
    config: &QaStudyConfig,
    lexical: &LexicalScores,
    peers: &BTreeMap<String, AtNoise>,
    seeds: &[QaSeedReport],
) -> String {
    let mut out = String::new();
    let n = seeds.len();
    let _ = writeln!(out, "# Question answering: built-in knowledge base ({} seeds; IQM [95% interval])\n", n);
    let header = "| ranker | top-1 zh | top-1 en | MRR@10 | recall@k | abstains | abstentions right | answered right |\n|---|---|---|---|---|---|---|---|";
    for (noise, pick) in [("0", (|a: &AtNoise| a.clean) as fn(&AtNoise) -> ByLanguage), ("0.1", |a: &AtNoise| a.noisy)]
    {
        let _ = writeln!(out, "## Test phrasings at noise {noise}\n\n{header}");
        let mut rows: Vec<(&str, Vec<ByLanguage>)> = vec![
            ("TF-IDF retriever alone", vec![pick(&lexical.tfidf)]),
            ("BM25 (`bm25` crate)", vec![pick(&lexical.bm25)]),
        ];
        rows.extend(peers.iter().map(|(name, scores)| (name.as_str(), vec![pick(scores)])));
        rows.push(("pair network, pretrained", seeds.iter().map(|s| pick(&s.pretrained)).collect()));
        rows.push(("pair network, after feedback", seeds.iter().map(|s| pick(&s.after_feedback)).collect()));
        for (name, values) in rows {
            let _ = writeln!(out, "| {name} | {} |", row_cells(&values, 3).join(" | "));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Fine-tuning to the car manual (test phrasings, noise 0.1)\n");
    let levels = [config.transfer_target, 0.7];
    let _ = writeln!(
        out,
        "| run | top-1 at 0 interactions | top-1 after {} | interactions to {} top-1 (seeds reaching it) | interactions to {} top-1 (seeds reaching it) |\n|---|---|---|---|---|",
        config.finetune_interactions, levels[0], levels[1]
    );
    for (name, curve) in [
        ("fine-tuned", (|s: &QaSeedReport| &s.finetune) as fn(&QaSeedReport) -> &rlhf_assistant::qa::study::Curve),
        ("from scratch", |s: &QaSeedReport| &s.scratch),
    ] {
        let first: Vec<f64> = seeds.iter().map(|s| curve(s).points[0].1).collect();
        let last: Vec<f64> = seeds.iter().map(|s| curve(s).last.noisy.all.top1).collect();
        // A seed that never reached the level counts the whole budget.
        let budget = config.finetune_interactions as f64;
        let to = |level: f64| {
            let values: Vec<f64> =
                seeds.iter().map(|s| curve(s).interactions_to(level).map_or(budget, |t| t as f64)).collect();
            let reached = seeds.iter().filter(|s| curve(s).interactions_to(level).is_some()).count();
            format!("{} ({reached} of {n})", seeds_cell(&OverSeeds::new(&values), 0))
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            seeds_cell(&OverSeeds::new(&first), 3),
            seeds_cell(&OverSeeds::new(&last), 3),
            to(levels[0]),
            to(levels[1]),
        );
    }
    let kept: Vec<f64> = seeds.iter().map(|s| s.builtin_after_finetune.noisy.all.top1).collect();
    let before: Vec<f64> = seeds.iter().map(|s| s.after_feedback.noisy.all.top1).collect();
    let _ = writeln!(
        out,
        "\nBuilt-in test top-1 at noise 0.1 before fine-tuning {}, after {} (the extended knowledge base's candidates).\n",
        seeds_cell(&OverSeeds::new(&before), 3),
        seeds_cell(&OverSeeds::new(&kept), 3)
    );
    out
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use rlhf_model::backend::{CpuBackend, cpu_device};
    use tempfile::TempDir;

    use super::*;

    #[test]
    fn feedback_lines_name_a_candidate_by_its_number() {
        let ranking = [7, 3, 9];
        assert_eq!(parse_feedback("y", &ranking), Some(QaFeedback::Right));
        assert_eq!(parse_feedback(" n ", &ranking), Some(QaFeedback::Wrong));
        assert_eq!(parse_feedback("2", &ranking), Some(QaFeedback::ThisOne(3)));
        assert_eq!(parse_feedback("0", &ranking), Some(QaFeedback::NoneOfThese));
        assert_eq!(parse_feedback("4", &ranking), None, "no fourth candidate");
        assert_eq!(parse_feedback("how do I open the trunk", &ranking), None, "a question");
    }

    #[test]
    fn qa_writes_its_tables_plot_and_report_over_seeds() {
        let tmp = TempDir::with_prefix("rlhf-xtask-qa-").unwrap();
        let config = tmp.path().join("short.toml");
        fs::write(
            &config,
            "pretrain_steps = 40\nfeedback_interactions = 10\nfinetune_interactions = 10\neval_every = 5\nnoisy_draws = 1\n",
        )
        .unwrap();
        let args = QaArgs {
            action: None,
            config: Some(config),
            out: tmp.path().join("run"),
            seeds: 2,
            device: Device::Cpu,
            peer_python: None,
        };
        qa(&args).unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&fs::read(args.out.join("report.json")).unwrap()).unwrap();
        assert_eq!(report["seeds"].as_array().unwrap().len(), 2);
        assert_eq!(report["config"]["pretrain_steps"], 40);
        let markdown = fs::read_to_string(args.out.join("report.md")).unwrap();
        for row in ["BM25", "TF-IDF", "pair network, after feedback", "from scratch"] {
            assert!(markdown.contains(row), "{row} in\n{markdown}");
        }
        assert!(fs::metadata(args.out.join("finetune.png")).unwrap().len() > 1000);
        // The saved model answers, and a session learns from feedback and saves.
        let dir = args.out.join("model");
        let model = QaModel::<Autodiff<CpuBackend>>::load(&dir, &cpu_device()).unwrap();
        let before =
            model.index.decide(&model.network, vec![model.index.retrieve("how do I open the trunk")]).remove(0);
        let trunk = model.index.kb().entries().iter().position(|e| e.id == "open_trunk").unwrap();
        let number = before.ranking().iter().position(|&e| e == trunk).map_or(0, |i| i + 1);
        let input = format!("how do I open the trunk\n{number}\n:save\n");
        let mut output = Vec::new();
        ask_session(model, &dir, input.as_bytes(), &mut output).unwrap();
        let output = String::from_utf8(output).unwrap();
        assert!(output.contains("learned from") && output.contains("saved"), "{output}");
        QaModel::<Autodiff<CpuBackend>>::load(&dir, &cpu_device()).unwrap();
        // Answering from a user's own file, and a malformed line named.
        let faq = tmp.path().join("faq.jsonl");
        fs::write(
            &faq,
            "{\"id\": \"wifi\", \"question\": \"What is the wifi password?\", \"answer\": \"It is on the router.\"}\n{\"id\": \"bins\", \"question\": \"When are the bins collected?\", \"answer\": \"Tuesday mornings.\"}\n",
        )
        .unwrap();
        let ask = |question: &str, kb: &std::path::Path| {
            let ask = AskArgs { question: Some(question.into()), model: dir.clone(), kb: Some(kb.to_owned()) };
            AskJob { args: &ask }.run::<Autodiff<CpuBackend>>(cpu_device())
        };
        ask("what's the wifi password", &faq).unwrap();
        let mine = QaModel::<Autodiff<CpuBackend>>::load(&dir, &cpu_device())
            .unwrap()
            .with_knowledge_base(KnowledgeBase::from_path(&faq).unwrap())
            .unwrap();
        let decision = mine.index.decide(&mine.network, vec![mine.index.retrieve("when do they collect the bins")]);
        // (This model trained for 40 steps; what is checked is that the user's
        // entries are the candidates and each is scored.)
        assert_eq!(mine.index.kb().entries()[decision[0].retrieved.candidates[0]].id, "bins");
        assert_eq!(decision[0].q.len(), 2);
        fs::write(&faq, "{\"id\": \"wifi\", \"question\": 3}\n").unwrap();
        let error = format!("{:#}", ask("wifi?", &faq).unwrap_err());
        assert!(error.contains("faq.jsonl") && error.contains(":1"), "{error}");
        // A bad value is an error naming the field.
        fs::write(tmp.path().join("bad.toml"), "k = 0\n").unwrap();
        let bad = QaArgs { config: Some(tmp.path().join("bad.toml")), ..args };
        assert!(qa(&bad).unwrap_err().to_string().contains('k'));
    }
}
