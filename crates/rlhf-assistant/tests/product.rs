//! The assistant as a user meets it: it asks when an utterance is unclear
//! and acts when it is clear, and it learns a new intent from a few
//! corrections without forgetting the old ones.

use std::sync::Arc;

use rlhf_algo::dqn::Dqn;
use rlhf_assistant::IntentFeatures;
use rlhf_assistant::assistant::{Assistant, AssistantMode};
use rlhf_assistant::dialog::{ClarifyPolicy, ClarifySpec};
use rlhf_assistant::feedback::Feedback;
use rlhf_assistant::model::IntentModel;
use rlhf_assistant::online::OnlineConfig;
use rlhf_assistant::pipeline::{IntentModelSpec, new_network};
use rlhf_assistant::{
    AsrNoise, DialogEnv, IntentClassifier, IntentCorpus, IntentRewards, PipelineConfig, PretrainConfig, Split, pretrain,
};
use rlhf_model::backend::{AutodiffCpu, cpu_device};
use rlhf_model::text::FeaturizerConfig;

fn config() -> PipelineConfig {
    PipelineConfig {
        featurizer: FeaturizerConfig { dim: 1024, ..Default::default() },
        net_arch: vec![64],
        pretrain: PretrainConfig { steps: 300, ..Default::default() },
        dialog_steps: 6_000,
        dialog_max_turns: 2,
        ..Default::default()
    }
}

/// The built-in corpus of `intents`, one split.
fn corpus(split: Split, intents: &[&str]) -> IntentCorpus {
    let labels: Vec<String> = intents.iter().map(|s| (*s).to_owned()).collect();
    IntentCorpus::builtin(split).unwrap().restrict(&labels).unwrap()
}

/// A model pretrained on `intents`, as a loaded model with nothing added yet.
fn pretrained(intents: &[&str]) -> IntentModel<AutodiffCpu> {
    let config = config();
    let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap();
    let train = corpus(Split::Train, intents);
    let network = new_network::<AutodiffCpu>(&config, &featurizer, intents.len(), &cpu_device(), 0);
    let network = pretrain(network, &train, &featurizer, &config.pretrain, |_, _| {}).unwrap();
    let labels = train.labels().to_vec();
    let spec = IntentModelSpec::new(labels.clone(), &featurizer);
    IntentModel { network, spec, original_labels: labels, step: 0, features: featurizer }
}

#[test]
fn the_assistant_asks_on_an_unclear_utterance_and_acts_on_a_clear_one() {
    let intents = ["light_on", "light_off", "volume_up", "volume_down"];
    let model = pretrained(&intents);
    let config = config();
    let featurizer = IntentFeatures::ngrams(config.featurizer).unwrap();
    // The clarify policy, learned on the dialogue task at a high noise rate,
    // where asking again pays on garbled and uninformative utterances.
    let mut env = DialogEnv::new(
        Arc::new(corpus(Split::Train, &intents)),
        featurizer.clone(),
        AsrNoise::new(0.3),
        IntentRewards::default(),
        config.dialog_max_turns,
    )
    .unwrap();
    let mut agent = Dqn::<AutodiffCpu>::for_env(config.dialog_dqn(0), &env, cpu_device()).unwrap();
    agent.learn(&mut env, config.dialog_steps, &mut []).unwrap();
    assert_eq!(env.clarify_action(), intents.len());
    let spec = ClarifySpec {
        labels: model.spec.labels.clone(),
        featurizer: config.featurizer,
        max_turns: config.dialog_max_turns,
    };
    let policy = ClarifyPolicy::new(agent.online(), spec).unwrap();

    let learner = model.learner(None, OnlineConfig::default()).unwrap();
    let mode = AssistantMode::default();
    let mut assistant = Assistant::new(learner, featurizer, 0, mode, None).unwrap().with_clarify(policy);

    // A filler says nothing about the intent: the assistant asks, in the
    // utterance's language, between its two best guesses.
    let unclear = assistant.answer("嗯").unwrap();
    let question = unclear.clarify.clone().expect("an unclear utterance is asked about");
    assert!(question.prompt.contains("还是"), "{}", question.prompt);
    assert_ne!(question.options[0], question.options[1]);
    // The rephrasing is heard together with the first words, on the last
    // turn, where the assistant always acts.
    let clear = assistant.rephrased(&unclear, "把客厅的灯打开").unwrap();
    assert_eq!((clear.turn, clear.clarify.is_none()), (2, true));
    assert_eq!(clear.label, "light_on");
    assert!(clear.utterance.starts_with("嗯 "), "{}", clear.utterance);
    // A clear command is acted on at once.
    let direct = assistant.answer("把客厅的灯打开").unwrap();
    assert_eq!((direct.label.as_str(), direct.clarify.is_none()), ("light_on", true));
}

#[test]
fn a_new_intent_is_learned_from_a_few_corrections_and_old_ones_are_kept() {
    let old = ["light_on", "light_off", "ac_on", "ac_off"];
    let mut model = pretrained(&old);
    model.add_intents(&["volume_up".to_owned()], 7).unwrap();
    let labels = model.spec.labels.clone();
    let featurizer = model.featurizer().unwrap();
    let rehearsal = model.rehearsal(None).unwrap();
    let config = OnlineConfig::default();
    let learner = model.learner(rehearsal, config).unwrap();
    let mut assistant = Assistant::new(learner, featurizer.clone(), 0, AssistantMode::default(), None).unwrap();

    let all = [&old[..], &["volume_up"]].concat();
    let held_out = |intents: &[&str]| {
        let test = corpus(Split::Test, intents);
        let outputs: Vec<usize> = test.labels().iter().map(|l| labels.iter().position(|m| m == l).unwrap()).collect();
        let mut utterances = test.utterances(2, 3);
        utterances.iter_mut().for_each(|u| u.intent = outputs[u.intent]);
        utterances
    };
    let (new_tests, old_tests) = (held_out(&["volume_up"]), held_out(&old));
    let accuracy = |assistant: &Assistant<AutodiffCpu>, tests| {
        let host = assistant.learner().host_network().unwrap();
        let mut classifier = IntentClassifier::new(labels.clone(), featurizer.clone(), host).unwrap();
        classifier.evaluate(tests, AsrNoise::new(0.0), 5).unwrap().accuracy
    };
    let old_before = accuracy(&assistant, &old_tests);
    let new_before = accuracy(&assistant, &new_tests);

    // Twenty utterances of the new intent, each corrected (or confirmed) by the user.
    let teach = corpus(Split::Train, &["volume_up"]).utterances(1, 11);
    for utterance in teach.iter().take(20) {
        let answer = assistant.answer(&utterance.text).unwrap();
        let new_output = labels.len() - 1;
        let feedback = if answer.intent == new_output { Feedback::Right } else { Feedback::Corrected };
        assistant.feedback(&answer, feedback, Some(new_output)).unwrap();
    }
    let (new_after, old_after) = (accuracy(&assistant, &new_tests), accuracy(&assistant, &old_tests));
    // Chance among the five intents is 0.2.
    assert!(
        new_after >= 0.5 && new_after > new_before + 0.2,
        "the new intent on phrasings never taught: {new_before} → {new_after}"
    );
    assert!(old_after >= old_before - 0.1, "old intents {old_before} → {old_after}");
    assert_eq!(all.len(), labels.len());
}
