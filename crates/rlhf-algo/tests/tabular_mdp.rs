//! Tabular Q-learning and SARSA against values computed independently by
//! dynamic programming on a small stochastic MDP.

use rlhf_algo::tabular::{IdentityDiscretizer, QTable, TabularConfig, TabularMethod};
use rlhf_env::rng::{EnvRng, seeded_rng, uniform_f64};
use rlhf_env::{Discrete, Env, EnvError, Step};

const N: usize = 5;
const SLIP: f64 = 0.2;
const GAMMA: f64 = 0.9;

/// A slippery chain: start in the middle; action 1 moves right, 0 left, but
/// with probability SLIP the move goes the other way. The left end pays 0.5,
/// the right end 1.0, and both end the episode.
struct Chain {
    state: usize,
    rng: EnvRng,
    states: Discrete,
    actions: Discrete,
}

fn reward_of(state: usize) -> f64 {
    match state {
        0 => 0.5,
        s if s == N - 1 => 1.0,
        _ => 0.0,
    }
}

fn terminal(state: usize) -> bool {
    state == 0 || state == N - 1
}

impl Env for Chain {
    type Obs = usize;
    type Action = usize;
    type Info = ();
    type ObsSpace = Discrete;
    type ActionSpace = Discrete;
    fn id(&self) -> &str {
        "Chain"
    }
    fn observation_space(&self) -> &Discrete {
        &self.states
    }
    fn action_space(&self) -> &Discrete {
        &self.actions
    }
    fn reset(&mut self, seed: Option<u64>) -> (usize, ()) {
        if let Some(seed) = seed {
            self.rng = seeded_rng(seed);
        }
        self.state = N / 2;
        (self.state, ())
    }
    fn step(&mut self, action: usize) -> Result<Step<usize>, EnvError> {
        let right = (action == 1) != (uniform_f64(&mut self.rng, 0.0, 1.0) < SLIP);
        self.state = if right { self.state + 1 } else { self.state - 1 };
        Ok(Step {
            obs: self.state,
            reward: reward_of(self.state),
            terminated: terminal(self.state),
            truncated: false,
            info: (),
        })
    }
}

fn chain() -> Chain {
    Chain { state: N / 2, rng: seeded_rng(0), states: Discrete::new(N).unwrap(), actions: Discrete::new(2).unwrap() }
}

/// Expected one-step backup of (s, a) given next-state values `v`.
fn backup(s: usize, a: usize, v: &[f64]) -> f64 {
    let (intended, other) = if a == 1 { (s + 1, s - 1) } else { (s - 1, s + 1) };
    [(intended, 1.0 - SLIP), (other, SLIP)]
        .iter()
        .map(|&(next, p)| p * (reward_of(next) + if terminal(next) { 0.0 } else { GAMMA * v[next] }))
        .sum()
}

/// Q* by value iteration.
fn optimal_q() -> Vec<[f64; 2]> {
    let mut v = vec![0.0; N];
    for _ in 0..1_000 {
        v = (0..N).map(|s| if terminal(s) { 0.0 } else { backup(s, 0, &v).max(backup(s, 1, &v)) }).collect();
    }
    (0..N).map(|s| if terminal(s) { [0.0; 2] } else { [backup(s, 0, &v), backup(s, 1, &v)] }).collect()
}

/// The fixed point SARSA converges to with constant ε: Q of the ε-greedy
/// policy with respect to itself.
fn epsilon_greedy_q(epsilon: f64) -> Vec<[f64; 2]> {
    let mut q = vec![[0.0; 2]; N];
    for _ in 0..1_000 {
        let v: Vec<f64> = q
            .iter()
            .map(|row| {
                let greedy = if row[1] > row[0] { 1 } else { 0 };
                (1.0 - epsilon) * row[greedy] + epsilon * 0.5 * (row[0] + row[1])
            })
            .collect();
        q = (0..N).map(|s| if terminal(s) { [0.0; 2] } else { [backup(s, 0, &v), backup(s, 1, &v)] }).collect();
    }
    q
}

fn assert_table_close(table: &QTable, expected: &[[f64; 2]], tolerance: f64) {
    for (s, row) in expected.iter().enumerate().take(N - 1).skip(1) {
        for (a, &want) in row.iter().enumerate() {
            let found = table.value(s, a);
            assert!((found - want).abs() < tolerance, "Q({s},{a}) = {found:.4}, expected {want:.4}");
        }
    }
}

#[test]
fn q_learning_converges_to_value_iteration() {
    let expected = optimal_q();
    // Sanity of the hand-built MDP: moving right is optimal in the middle.
    assert!(expected[2][1] > expected[2][0]);
    let config = TabularConfig {
        method: TabularMethod::QLearning,
        learning_rate: 0.01,
        gamma: GAMMA,
        // Off-policy: a uniformly random behaviour policy still learns Q*.
        exploration_initial_eps: 1.0,
        exploration_final_eps: 1.0,
        seed: 4,
        ..TabularConfig::default()
    };
    let mut table = QTable::new(N, 2).unwrap();
    let stats = table.learn(&mut chain(), &IdentityDiscretizer { n_states: N }, &config, 300_000).unwrap();
    assert!(stats.episodes > 10_000);
    assert_table_close(&table, &expected, 0.03);
    assert_eq!((1..N - 1).map(|s| table.greedy(s)).collect::<Vec<_>>(), vec![1; N - 2]);
}

#[test]
fn sarsa_converges_to_the_epsilon_greedy_fixed_point() {
    let epsilon = 0.3;
    let expected = epsilon_greedy_q(epsilon);
    // On-policy values are below the optimal ones: exploration costs.
    assert!(expected[2][1] < optimal_q()[2][1] - 0.01);
    let config = TabularConfig {
        method: TabularMethod::Sarsa,
        learning_rate: 0.01,
        gamma: GAMMA,
        exploration_initial_eps: epsilon,
        exploration_final_eps: epsilon,
        seed: 5,
        ..TabularConfig::default()
    };
    let mut table = QTable::new(N, 2).unwrap();
    table.learn(&mut chain(), &IdentityDiscretizer { n_states: N }, &config, 300_000).unwrap();
    assert_table_close(&table, &expected, 0.03);
}

#[test]
fn a_table_of_the_wrong_size_is_an_error() {
    let mut table = QTable::new(3, 2).unwrap();
    let err =
        table.learn(&mut chain(), &IdentityDiscretizer { n_states: N }, &TabularConfig::default(), 10).unwrap_err();
    assert!(matches!(err, rlhf_algo::AlgoError::ShapeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("expected 5 × 2 (the environment's), found 3 × 2"), "{err}");
}

#[test]
fn q_learning_balances_a_discretised_cartpole() {
    use rlhf_algo::evaluate;
    use rlhf_algo::tabular::BoxDiscretizer;
    use rlhf_env::CartPole;

    // Position and velocity ignored (one bin), angle and angular velocity binned.
    let bins =
        BoxDiscretizer::new(vec![1, 1, 6, 12], vec![-2.4, -3.0, -0.21, -3.5], vec![2.4, 3.0, 0.21, 3.5]).unwrap();
    let config = TabularConfig {
        learning_rate: 0.1,
        gamma: 0.99,
        exploration_fraction: 0.5,
        seed: 0,
        ..TabularConfig::default()
    };
    let mut table = QTable::new(72, 2).unwrap();
    table.learn(&mut CartPole::v1(), &bins, &config, 200_000).unwrap();
    let mut greedy = |obs: &[f32; 4]| table.greedy(rlhf_algo::tabular::Discretize::index(&bins, obs));
    let report = evaluate(&mut CartPole::v1(), &mut greedy, 20, 99).unwrap();
    // A random policy averages about 22.
    assert!(report.mean_return > 150.0, "{}", report.mean_return);
}
