//! Policies: observation in, action out.

use rlhf_env::Space;
use rlhf_env::rng::{EnvRng, seeded_rng};
use rlhf_model::HostQNetwork;

use crate::dqn::FlatObs;
use crate::error::AlgoError;

/// Maps observations to actions. `&mut self` lets a policy keep state (an
/// exploration schedule, a generator).
pub trait Policy<O, A> {
    /// The action to take on `obs`.
    fn act(&mut self, obs: &O) -> A;
}

/// Acts uniformly at random over an action space, from its own seeded generator.
#[derive(Debug, Clone)]
pub struct RandomPolicy<S> {
    space: S,
    rng: EnvRng,
}

impl<S> RandomPolicy<S> {
    /// A random policy over `space`, seeded with `seed`.
    pub fn new(space: S, seed: u64) -> Self {
        Self { space, rng: seeded_rng(seed) }
    }
}

impl<O, A, S: Space<A>> Policy<O, A> for RandomPolicy<S> {
    fn act(&mut self, _obs: &O) -> A {
        self.space.sample(&mut self.rng)
    }
}

/// Acts greedily with a Q-network: `argmax_a Q(input(obs), a)`, where the
/// input is the observation's [`FlatObs::write_network_input`] (for goal
/// tasks `[observation, desired_goal]`). It runs on the host copy of the
/// network, which answers one observation in microseconds.
#[derive(Debug)]
pub struct GreedyPolicy {
    network: HostQNetwork,
    input: Vec<f32>,
    error: Option<AlgoError>,
}

impl GreedyPolicy {
    /// The greedy policy of `network`.
    pub fn new(network: HostQNetwork) -> Self {
        Self { network, input: Vec::new(), error: None }
    }

    /// The Q-values of every action on `obs`.
    pub fn q_values(&mut self, obs: &impl FlatObs) -> Result<&[f32], AlgoError> {
        self.input.clear();
        obs.write_network_input(&mut self.input);
        Ok(self.network.q_values(&self.input)?)
    }

    /// The greedy action on `obs`, or an error when it has the wrong size.
    pub fn try_act(&mut self, obs: &impl FlatObs) -> Result<usize, AlgoError> {
        self.input.clear();
        obs.write_network_input(&mut self.input);
        Ok(self.network.greedy_action(&self.input)?)
    }

    /// The first error [`Policy::act`] met (it acts 0 then), taken.
    pub fn take_error(&mut self) -> Option<AlgoError> {
        self.error.take()
    }

    /// The network.
    pub fn network(&self) -> &HostQNetwork {
        &self.network
    }
}

impl<O: FlatObs> Policy<O, usize> for GreedyPolicy {
    /// The greedy action; an observation of the wrong size acts 0 and is
    /// kept for [`GreedyPolicy::take_error`].
    fn act(&mut self, obs: &O) -> usize {
        self.try_act(obs).unwrap_or_else(|e| {
            self.error.get_or_insert(e);
            0
        })
    }
}

impl<O, A, F: FnMut(&O) -> A> Policy<O, A> for F {
    fn act(&mut self, obs: &O) -> A {
        self(obs)
    }
}
