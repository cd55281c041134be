//! `cargo xtask bench --quick --no-criterion`: the whole report, small, from
//! the real binary; its JSON has every section and the memory invariant
//! (peak memory is read from `/proc`, so the report is made on Linux only).
#![cfg(target_os = "linux")]

use std::process::Command;

#[test]
fn the_quick_report_has_every_section_and_a_lean_replay_buffer() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--quick", "--no-criterion", "--out"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();

    let provenance = &report["provenance"];
    assert!(provenance["cores"].as_u64().unwrap() >= 1);
    // The burn the build used, as Cargo.lock names it.
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let burn = lock.split("[[package]]").find(|p| p.contains("name = \"burn\"\n")).unwrap();
    let version = burn.lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"');
    assert_eq!(provenance["versions"]["burn"], version);
    assert!(!provenance["commit"].as_str().unwrap().is_empty());

    // Two CartPole seeds, five and ten bits with and without HER (two seeds
    // each), fine-tuning on two seeds, the pipeline's four stages.
    assert_eq!(report["cartpole"]["seeds"], 2);
    assert!(report["cartpole"]["solved"].as_u64().unwrap() >= 1, "{}", report["cartpole"]);
    // Results over seeds are an IQM inside its interval.
    let steps = &report["cartpole"]["steps_to_solve"];
    assert_eq!(steps["seeds"], 2);
    let [low, value, high] = ["low", "value", "high"].map(|k| steps["iqm"][k].as_f64().unwrap());
    assert!(low <= value && value <= high, "{steps}");
    assert!(!report["cartpole"]["curve"].as_array().unwrap().is_empty());
    let her = report["her"]["rows"].as_array().unwrap();
    assert_eq!(her.len(), 4);
    assert!(her.iter().all(|row| row["success"]["seeds"] == 2), "{}", report["her"]);
    assert!(report["her"]["sb3"].is_null(), "no peers without --peers");
    // HER rows are compared with the plain rows of their task.
    assert!(her.iter().filter(|row| !row["her"].is_null()).all(|row| row["improvement_over_plain"].is_object()));
    assert_eq!(report["finetune"]["finetuned"]["seeds"], 2);
    assert_eq!(report["finetune"]["scratch"]["seeds"], 2);
    let study = &report["pipeline"]["study"];
    assert_eq!(study["stages"].as_array().unwrap().len(), 4);
    let stage_accuracy = study["stage_accuracy"].as_array().unwrap();
    assert_eq!(stage_accuracy.len(), 4);
    assert!(stage_accuracy.iter().all(|s| s["accuracy"]["seeds"] == 2), "{stage_accuracy:?}");
    // Without noise the same source test utterances are scored too: far above chance (1/17).
    let noise_free = study["source_noise_free"]["accuracy"].as_f64().unwrap();
    assert!(noise_free > 0.3 && noise_free <= 1.0, "noise-free accuracy {noise_free}");
    // The all-intent assistant model, over the same two seeds: far above chance (1/24) in both languages.
    let assistant = &report["pipeline"]["assistant"];
    assert_eq!(assistant["labels"].as_array().unwrap().len(), 24);
    for row in assistant["accuracy"].as_array().unwrap() {
        for key in ["accuracy", "accuracy_zh", "accuracy_en"] {
            assert_eq!(row[key]["seeds"], 2, "{row}");
            assert!(row[key]["iqm"]["value"].as_f64().unwrap() > 0.4, "{row}");
        }
    }
    let [narrow, all] =
        ["narrow", "all_intents"].map(|key| assistant["old_intents"][key]["iqm"]["value"].as_f64().unwrap());
    assert!(narrow > 0.3 && all > 0.3, "old intents: {narrow} → {all}");
    let scale = report["scale"]["rows"].as_array().unwrap();
    assert!(scale.iter().any(|r| r["measure"] == "train" && r["env_steps_per_second"].as_f64().unwrap() > 0.0));

    // The replay buffer's resident growth is its transitions' bytes and little more.
    let replay = report["memory"].as_array().unwrap().iter().find(|r| r["case"] == "replay").unwrap();
    let growth = replay["replay_rss_growth_bytes"].as_f64().unwrap();
    let bytes = replay["replay_transition_bytes"].as_f64().unwrap();
    // 1,000,000 CartPole transitions of 2 × 4 floats, an action, a reward and two flags.
    assert_eq!(bytes, 1e6 * (2.0 * 4.0 * 4.0 + 4.0 + 4.0 + 1.0 + 1.0));
    assert!(growth >= 0.95 * bytes && growth <= bytes + 4.0 * 1024.0 * 1024.0, "grew {growth} for {bytes}");

    for picture in
        ["cartpole_curves.png", "her_success.png", "her_curves.png", "her_profiles.png", "finetune_curves.png"]
    {
        assert_eq!(&std::fs::read(dir.join(picture)).unwrap()[1..4], b"PNG", "{picture}");
    }

    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for heading in [
        "CartPole-v1, DQN",
        "interquartile mean [95% percentile bootstrap interval",
        "intervals below come from few seeds",
        "bit flipping",
        "Fine-tuning",
        "Voice assistant",
        "without noise",
        "Throughput at scale",
        "Peak resident memory",
    ] {
        assert!(markdown.contains(heading), "no {heading:?} in the report");
    }
}
