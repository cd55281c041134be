//! The Q-table and its training loop: Q-learning or SARSA with ε-greedy
//! exploration, bootstrapping through truncations but not terminations.

use rand::Rng;
use rlhf_env::rng::{EnvRng, seeded_rng, uniform_f64, uniform_index};
use rlhf_env::{Discrete, Env};
use serde::{Deserialize, Serialize};

use super::discretize::Discretize;
use crate::error::AlgoError;
use crate::schedule::LinearSchedule;

/// Which target the update moves towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TabularMethod {
    /// Off-policy: `r + γ max_a' Q(s', a')`.
    #[default]
    QLearning,
    /// On-policy: `r + γ Q(s', a')` with `a'` the next action taken.
    Sarsa,
}

/// Hyperparameters of tabular learning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TabularConfig {
    /// Update rule.
    pub method: TabularMethod,
    /// Step size α.
    pub learning_rate: f64,
    /// Discount factor γ.
    pub gamma: f64,
    /// ε at the start of training.
    pub exploration_initial_eps: f64,
    /// ε after the decay.
    pub exploration_final_eps: f64,
    /// Fraction of training over which ε decays.
    pub exploration_fraction: f64,
    /// Seed of exploration and of the environment's first reset.
    pub seed: u64,
}

impl Default for TabularConfig {
    fn default() -> Self {
        Self {
            method: TabularMethod::QLearning,
            learning_rate: 0.1,
            gamma: 0.99,
            exploration_initial_eps: 1.0,
            exploration_final_eps: 0.05,
            exploration_fraction: 0.5,
            seed: 0,
        }
    }
}

/// Counts from a [`QTable::learn`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TabularStats {
    /// Environment steps taken.
    pub steps: u64,
    /// Episodes finished.
    pub episodes: u64,
}

/// A table of action values, `n_states × n_actions`, initialised to zero.
#[derive(Debug, Clone, PartialEq)]
pub struct QTable {
    n_states: usize,
    n_actions: usize,
    values: Vec<f64>,
}

impl QTable {
    /// A zero table.
    pub fn new(n_states: usize, n_actions: usize) -> Result<Self, AlgoError> {
        if n_states == 0 || n_actions == 0 {
            return Err(AlgoError::InvalidConfig {
                field: "table",
                reason: format!("needs states and actions, got {n_states} × {n_actions}"),
            });
        }
        Ok(Self { n_states, n_actions, values: vec![0.0; n_states * n_actions] })
    }

    /// `Q(s, a)`.
    pub fn value(&self, state: usize, action: usize) -> f64 {
        self.values[state * self.n_actions + action]
    }

    /// The row `Q(s, ·)`.
    pub fn row(&self, state: usize) -> &[f64] {
        &self.values[state * self.n_actions..(state + 1) * self.n_actions]
    }

    /// `argmax_a Q(s, a)`, the first on ties.
    pub fn greedy(&self, state: usize) -> usize {
        let row = self.row(state);
        (0..row.len()).fold(0, |best, a| if row[a] > row[best] { a } else { best })
    }

    fn epsilon_greedy<R: Rng>(&self, state: usize, epsilon: f64, rng: &mut R) -> usize {
        if uniform_f64(rng, 0.0, 1.0) < epsilon { uniform_index(rng, self.n_actions) } else { self.greedy(state) }
    }

    /// Trains for `steps` environment steps with ε-greedy exploration.
    pub fn learn<E, D>(
        &mut self,
        env: &mut E,
        discretizer: &D,
        config: &TabularConfig,
        steps: u64,
    ) -> Result<TabularStats, AlgoError>
    where
        E: Env<Action = usize, ActionSpace = Discrete>,
        D: Discretize<E::Obs>,
    {
        if discretizer.n_states() != self.n_states || env.action_space().n() != self.n_actions {
            return Err(AlgoError::ShapeMismatch {
                what: "the Q-table (states × actions)".into(),
                expected: format!("{} × {} (the environment's)", discretizer.n_states(), env.action_space().n()),
                found: format!("{} × {}", self.n_states, self.n_actions),
            });
        }
        let schedule = LinearSchedule {
            start: config.exploration_initial_eps,
            end: config.exploration_final_eps,
            fraction: config.exploration_fraction,
        };
        let mut rng: EnvRng = seeded_rng(config.seed);
        let mut stats = TabularStats::default();
        let (obs, _) = env.reset(Some(config.seed));
        let mut state = discretizer.index(&obs);
        let mut action = self.epsilon_greedy(state, schedule.value(0, steps), &mut rng);
        for t in 0..steps {
            let step = env.step(action)?;
            let next_state = discretizer.index(&step.obs);
            let epsilon = schedule.value(t + 1, steps);
            // SARSA needs a' before the update; Q-learning picks it after, from the updated table.
            let sarsa_next =
                (config.method == TabularMethod::Sarsa).then(|| self.epsilon_greedy(next_state, epsilon, &mut rng));
            let bootstrap = if step.terminated {
                0.0
            } else {
                match sarsa_next {
                    Some(next_action) => self.value(next_state, next_action),
                    None => self.value(next_state, self.greedy(next_state)),
                }
            };
            let target = step.reward + config.gamma * bootstrap;
            let q = &mut self.values[state * self.n_actions + action];
            *q += config.learning_rate * (target - *q);
            stats.steps += 1;
            if step.done() {
                stats.episodes += 1;
                let (obs, _) = env.reset(None);
                state = discretizer.index(&obs);
                action = self.epsilon_greedy(state, epsilon, &mut rng);
            } else {
                state = next_state;
                action = match sarsa_next {
                    Some(next_action) => next_action,
                    None => self.epsilon_greedy(next_state, epsilon, &mut rng),
                };
            }
        }
        Ok(stats)
    }
}
