//! Policies for [`DialogEnv`]: when to ask the user to rephrase.
//!
//! A learned dialogue policy is DQN's greedy policy over `n + 1` actions
//! (every intent, then *clarify*). To tell whether its clarifying is worth
//! anything, it is compared with two fixed rules that use the *same*
//! network's intent Q-values and differ only in when they clarify: never, or
//! always once (clarify on the first turn, answer on the second).

use crate::DialogEnv;
use rlhf_model::text::TextFeaturizer;
use rlhf_model::{HostQNetwork, argmax};
use serde::Serialize;

use crate::AssistantError;
use rlhf_algo::evaluate;

/// When a dialogue policy asks for a rephrasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClarifyRule {
    /// Whatever the network's largest Q-value says, *clarify* included.
    Learned,
    /// Answer at once with the best intent.
    Never,
    /// Clarify on the first turn, then answer with the best intent.
    Once,
}

/// Mean return and more of a policy on a dialogue environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialogReport {
    /// The rule played.
    pub rule: ClarifyRule,
    /// Mean undiscounted return per episode.
    pub mean_return: f64,
    /// Share of episodes that ended with the right intent.
    pub accuracy: f64,
    /// Mean actions per episode (clarifications plus the answer).
    pub mean_length: f64,
}

/// Plays `episodes` episodes of `env` (first reset seeded with `seed`) with
/// `network` (which reads the dialogue observation and scores every intent
/// and then *clarify*) under `rule`.
pub fn play_dialog<F: TextFeaturizer>(
    network: &HostQNetwork,
    env: &mut DialogEnv<F>,
    rule: ClarifyRule,
    episodes: usize,
    seed: u64,
) -> Result<DialogReport, AssistantError> {
    let mut network = network.clone();
    let clarify = env.clarify_action();
    let turns = env.max_turns();
    let mut failure = None;
    let mut act = |obs: &Vec<f32>| {
        let q = match network.q_values(obs) {
            Ok(q) => q,
            Err(e) => {
                failure.get_or_insert(e);
                return 0;
            }
        };
        // The observation ends with the one-hot turn number.
        let first_turn = obs.len() >= turns && obs[obs.len() - turns] == 1.0;
        let best_intent = argmax(&q[..clarify]);
        match rule {
            ClarifyRule::Learned => argmax(q),
            ClarifyRule::Never => best_intent,
            ClarifyRule::Once if first_turn && turns > 1 => clarify,
            ClarifyRule::Once => best_intent,
        }
    };
    let report = evaluate(env, &mut act, episodes, seed)?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(DialogReport {
        rule,
        mean_return: report.mean_return,
        accuracy: report.success_rate.unwrap_or(0.0),
        mean_length: report.lengths.iter().sum::<usize>() as f64 / report.lengths.len().max(1) as f64,
    })
}
