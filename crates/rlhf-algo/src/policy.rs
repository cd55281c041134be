//! Policies: observation in, action out.

use rlhf_env::Space;
use rlhf_env::rng::{EnvRng, seeded_rng};

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

impl<O, A, F: FnMut(&O) -> A> Policy<O, A> for F {
    fn act(&mut self, obs: &O) -> A {
        self(obs)
    }
}
