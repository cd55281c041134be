//! Property tests: whatever the seed, actions or start state, CartPole's
//! observations stay finite and inside the observation space, and seeding
//! fixes the trajectory.

use proptest::prelude::*;
use rlhf_env::{CartPole, CartPoleConfig, Env, Integrator, Space, TimeLimit};

fn run(seed: u64, actions: &[bool]) -> Vec<([f32; 4], f64, bool, bool)> {
    let mut env = CartPole::v1();
    env.reset(Some(seed));
    let mut out = Vec::new();
    for &a in actions {
        let step = env.step(usize::from(a)).unwrap();
        out.push((step.obs, step.reward, step.terminated, step.truncated));
        if step.done() {
            env.reset(None);
        }
    }
    out
}

proptest! {
    #[test]
    fn observations_are_finite_and_in_space(seed in any::<u64>(), actions in prop::collection::vec(any::<bool>(), 1..600)) {
        let mut env = CartPole::v1();
        let (obs, ()) = env.reset(Some(seed));
        prop_assert!(env.observation_space().contains(&obs));
        for a in actions {
            let step = env.step(usize::from(a)).unwrap();
            prop_assert!(step.obs.iter().all(|v| v.is_finite()));
            prop_assert!(env.observation_space().contains(&step.obs), "{:?}", step.obs);
            prop_assert_eq!(step.reward, 1.0);
            if step.done() {
                env.reset(None);
            }
        }
    }

    #[test]
    fn same_seed_same_trajectory(seed in any::<u64>(), actions in prop::collection::vec(any::<bool>(), 1..300)) {
        prop_assert_eq!(run(seed, &actions), run(seed, &actions));
    }

    #[test]
    fn one_step_from_any_plausible_state_is_finite(
        x in -2.4f64..2.4, x_dot in -10.0f64..10.0, theta in -0.21f64..0.21, theta_dot in -10.0f64..10.0,
        push_right in any::<bool>(), semi_implicit in any::<bool>(),
    ) {
        let integrator = if semi_implicit { Integrator::SemiImplicitEuler } else { Integrator::Euler };
        let next = CartPole::dynamics([x, x_dot, theta, theta_dot], push_right, &CartPoleConfig { integrator, ..Default::default() });
        prop_assert!(next.iter().all(|v| v.is_finite()));
        // Terminal exactly when outside the bounds, and in the space until then.
        let mut env = TimeLimit::new(CartPole::default(), 10);
        env.reset(Some(0));
        env.inner_mut().set_state([x, x_dot, theta, theta_dot]);
        let step = env.step(usize::from(push_right)).unwrap();
        prop_assert_eq!(step.terminated, CartPole::is_terminal(&env.inner().state()));
    }
}
