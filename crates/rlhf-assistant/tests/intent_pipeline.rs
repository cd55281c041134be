//! A fast, small version of the assistant's pipeline: each stage must beat
//! chance by a wide margin, and intent models must save and load exactly.

use std::ops::ControlFlow;
use std::sync::Arc;

use rlhf_algo::callbacks::every;
use rlhf_algo::dqn::Dqn;
use rlhf_assistant::AsrNoise;
use rlhf_assistant::IntentFeatures;
use rlhf_assistant::pipeline::{
    IntentModelSpec, classifier_of, domain_corpora, intent_env, learn_from_rewards, load_intent_model, new_network,
    save_intent_model, shared_outputs,
};
use rlhf_assistant::{PipelineConfig, PretrainConfig, pretrain};
use rlhf_model::backend::{AutodiffCpu, CpuBackend, cpu_device};
use rlhf_model::text::FeaturizerConfig;

fn small_config() -> PipelineConfig {
    PipelineConfig {
        featurizer: FeaturizerConfig { dim: 1024, ..Default::default() },
        net_arch: vec![64],
        pretrain: PretrainConfig { steps: 150, ..Default::default() },
        ..Default::default()
    }
}

#[test]
fn pretrain_then_rewards_then_finetune_each_beat_chance_widely() {
    let config = small_config();
    let device = cpu_device();
    let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap();
    let (source_train, source_test) = domain_corpora(&config.source_domains).unwrap();
    let (target_train, target_test) = domain_corpora(&config.target_domains).unwrap();
    let (n_source, n_target) = (source_train.labels().len(), target_train.labels().len());
    assert_eq!((n_source, n_target), (17, 7));
    let source_tests = source_test.utterances(2, 0);
    let target_tests = target_test.utterances(2, 0);
    let noise = AsrNoise::new(config.noise);
    let accuracy = |network: &rlhf_model::QNetwork<AutodiffCpu>, labels: &[String], tests| {
        let spec = IntentModelSpec::new(labels.to_vec(), &featurizer);
        classifier_of(network, &spec).unwrap().evaluate(tests, noise, 1).unwrap().accuracy
    };

    let network = new_network::<AutodiffCpu>(&config, &featurizer, n_source, &device, 0);
    let before = accuracy(&network, source_train.labels(), &source_tests);
    let network = pretrain(network, &source_train, &featurizer, &config.pretrain, |_, _| {}).unwrap();
    let pretrained = accuracy(&network, source_train.labels(), &source_tests);
    // Chance is 1/17 ≈ 0.06.
    assert!(before < 0.2 && pretrained > 0.45, "before {before}, after pretraining {pretrained}");

    let source_labels = source_train.labels().to_vec();
    let mut env = intent_env(Arc::new(source_train), &featurizer, config.noise).unwrap();
    let dqn = config.bandit_dqn(1000, config.rl_learning_rate, true, 0);
    let agent = learn_from_rewards(network, &mut env, dqn, &mut []).unwrap();
    assert_eq!(agent.num_timesteps(), 1000);
    let after_rl = accuracy(&agent.online(), &source_labels, &source_tests);
    assert!(after_rl > pretrained - 0.1, "rewards undid pretraining: {pretrained} → {after_rl}");

    let keep = shared_outputs(&source_labels, target_train.labels());
    assert!(keep.iter().all(Option::is_none), "the default domains share no intent");
    let start = agent.online().with_actions(&keep, 1).unwrap();
    let target_labels = target_train.labels().to_vec();
    let mut env = intent_env(Arc::new(target_train), &featurizer, config.noise).unwrap();
    let dqn = config.bandit_dqn(1200, 1e-3, true, 0);
    let mut probes = Vec::new();
    let mut probe = every(400, |step, _: &Dqn<AutodiffCpu>| {
        probes.push(step);
        Ok(ControlFlow::Continue(()))
    });
    let agent = learn_from_rewards(start, &mut env, dqn, &mut [&mut probe]).unwrap();
    assert_eq!(probes, vec![400, 800, 1200]);
    let finetuned = accuracy(&agent.online(), &target_labels, &target_tests);
    // Chance is 1/7 ≈ 0.14.
    eprintln!("pretrained {pretrained:.3}, after rewards {after_rl:.3}, fine-tuned {finetuned:.3}");
    assert!(finetuned > 0.5, "fine-tuned accuracy {finetuned}");
}

#[test]
fn intent_models_save_and_load_exactly_and_refuse_damage() {
    let config = small_config();
    let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap();
    let network = new_network::<AutodiffCpu>(&config, &featurizer, 3, &cpu_device(), 4);
    let spec = IntentModelSpec::new(vec!["a".into(), "b".into(), "c".into()], &featurizer);
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path().join("model");
    save_intent_model(&dir, &network, &spec, 7, "flex".into(), serde_json::json!({})).unwrap();
    let (loaded, loaded_spec, meta) = load_intent_model::<CpuBackend>(&dir, &cpu_device()).unwrap();
    assert_eq!((loaded_spec, meta.step), (spec.clone(), 7));
    let (mut a, mut b) = (classifier_of(&network, &spec).unwrap(), classifier_of(&loaded, &spec).unwrap());
    for text in ["打开灯", "call mom", ""] {
        assert_eq!(a.q_values(text).unwrap(), b.q_values(text).unwrap());
    }
    // A spec whose labels disagree with the network is refused when saving;
    // a spec file changed after saving is refused when loading, naming it.
    let wrong = IntentModelSpec { labels: vec!["a".into()], ..spec };
    let err = save_intent_model(&dir, &network, &wrong, 7, "flex".into(), serde_json::json!({})).unwrap_err();
    assert!(err.to_string().contains("1 labels for 3"), "{err}");
    let spec_path = dir.join("intent.json");
    let text = std::fs::read_to_string(&spec_path).unwrap().replace("\"c\"", "\"d\"");
    std::fs::write(&spec_path, text).unwrap();
    let err = load_intent_model::<CpuBackend>(&dir, &cpu_device()).unwrap_err().to_string();
    assert!(err.contains("intent.json"), "{err}");
}
