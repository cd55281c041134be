//! `cargo xtask assistant` driven the way a script drives it: the real
//! binary, utterances and feedback on a pipe, one JSON reply per line.

use std::io::Write;
use std::process::{Command, Stdio};

use rlhf_assistant::IntentFeatures;
use rlhf_assistant::PipelineConfig;
use rlhf_assistant::feedback::{Feedback, LogEntry, read_log};
use rlhf_assistant::pipeline::{IntentModelSpec, new_network, save_intent_model};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use tempfile::TempDir;

#[test]
fn a_piped_session_answers_in_json_and_logs_every_feedback() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    let config = PipelineConfig::default();
    let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap();
    let network = new_network::<AutodiffCpu>(&config, &featurizer, 2, &cpu_device(), 0);
    let spec = IntentModelSpec::new(vec!["light_on".into(), "light_off".into()], &featurizer);
    save_intent_model(&dir.join("model"), &network, &spec, 0, "flex".into(), serde_json::json!({})).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["assistant", "--json", "--checkpoint"])
        .arg(dir.join("model"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all("打开灯\n= light_on\nlights off\nn\n:nonsense\n".as_bytes()).unwrap();
    // End of input without :quit.
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let replies: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
        .collect();
    let kinds: Vec<&str> = replies.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["answer", "feedback", "answer", "feedback", "error"]);
    assert_eq!(replies[0]["utterance"], "打开灯");
    assert_eq!(replies[0]["top"].as_array().unwrap().len(), 2);

    // The log sits beside the checkpoint and holds both interactions.
    let contents = read_log(&dir.join("feedback.jsonl")).unwrap();
    let feedback: Vec<Feedback> = contents
        .entries
        .iter()
        .map(|(_, e)| match e {
            LogEntry::Interaction(r) => r.feedback,
            other => panic!("only interactions were logged: {other:?}"),
        })
        .collect();
    assert_eq!(feedback.len(), 2);
    assert!(matches!(feedback[0], Feedback::Right | Feedback::Corrected));
    assert_eq!(feedback[1], Feedback::Wrong);
}
