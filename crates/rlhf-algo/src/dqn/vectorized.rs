//! Collection from many environments at once ([`Dqn::learn_vec`]): the
//! large-batch regime where one batched forward pass chooses the actions of
//! hundreds or thousands of environments, on the CPU or the GPU.

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use rlhf_env::rng::{uniform_f64, uniform_index};
use rlhf_env::{Env, EpisodeOutcome, VecEnv};

use super::agent::{Dqn, TrainEvent};
use super::store::{FlatObs, ReplayStore, write_row};
use crate::error::AlgoError;

impl<B: AutodiffBackend> Dqn<B> {
    /// Trains for `vec_steps` steps of `envs`, each one environment step of
    /// every environment (Stable-Baselines3's `n_envs`).
    ///
    /// The semantics follow Stable-Baselines3's vectorised DQN: the
    /// environment-step counter (exploration schedule, `learning_starts`,
    /// `target_update_interval`) advances by `envs.num_envs()` per vector
    /// step; `train_freq` counts the vector steps of this call, each burst `gradient_steps`
    /// gradient steps. Actions come from one batched forward pass of the
    /// online network on the backend. A finished episode's transition
    /// bootstraps from its true last observation (`final_obs`).
    ///
    /// Every call starts fresh episodes (`envs` is reset with the config's
    /// seed plus the steps so far); episodes in progress are not part of a
    /// checkpoint. Needs plain replay: hindsight relabeling reads whole
    /// episodes in order, which interleaved environments do not give.
    pub fn learn_vec<E>(
        &mut self,
        envs: &mut VecEnv<E>,
        vec_steps: u64,
        mut observer: impl FnMut(&TrainEvent),
    ) -> Result<(), AlgoError>
    where
        E: Env<Action = usize> + Send,
        E::Obs: FlatObs + Send,
        E::Info: EpisodeOutcome + Send,
    {
        if !matches!(self.replay, ReplayStore::Transitions(_)) {
            return Err(AlgoError::InvalidConfig {
                field: "her",
                reason: "collection from several environments needs plain replay".into(),
            });
        }
        let n = envs.num_envs();
        let dim = self.replay.row_dim();
        let schedule = self.config.exploration_schedule();
        let mut acting = self.online.valid();
        let mut rows = vec![0.0f32; n * dim];
        let (mut row, mut next_row) = (Vec::with_capacity(dim), Vec::with_capacity(dim));
        let mut actions = vec![0usize; n];
        let mut returns = vec![0.0f64; n];
        let mut lengths = vec![0usize; n];

        let seed = self.config.seed.wrapping_add(self.num_timesteps);
        for (i, slot) in envs.reset(Some(seed)).iter().enumerate() {
            write_row(&slot.obs, &mut row, dim)?;
            rows[i * dim..(i + 1) * dim].copy_from_slice(&row);
        }
        for vec_step in 1..=vec_steps {
            // Act: one forward pass for every environment that exploits.
            let epsilon = schedule.value(self.num_timesteps, self.config.total_timesteps);
            let warming_up = self.num_timesteps < self.config.learning_starts;
            let mut exploit = false;
            for action in actions.iter_mut() {
                *action = if warming_up || uniform_f64(&mut self.rng, 0.0, 1.0) < epsilon {
                    uniform_index(&mut self.rng, self.n_actions)
                } else {
                    exploit = true;
                    usize::MAX // greedy: filled in from the forward pass below
                };
            }
            if exploit {
                // burn's `TensorData` owns its values, hence the copy of the rows.
                let input =
                    Tensor::<B::InnerBackend, 2>::from_data(TensorData::new(rows.clone(), [n, dim]), &self.device);
                let greedy = acting.forward(input).argmax(1).into_data();
                for (action, best) in actions.iter_mut().zip(greedy.iter::<i64>()) {
                    if *action == usize::MAX {
                        *action = usize::try_from(best).unwrap_or(0);
                    }
                }
            }

            // Step every environment and store its transition.
            let slots = envs.step(&actions)?;
            let steps_after = self.num_timesteps + n as u64;
            for (i, slot) in slots.iter().enumerate() {
                let done = slot.done();
                let last = if done { slot.final_obs.as_ref().unwrap_or(&slot.obs) } else { &slot.obs };
                write_row(last, &mut next_row, dim)?;
                let obs_row = &mut rows[i * dim..(i + 1) * dim];
                self.replay.push(obs_row, actions[i], slot.reward as f32, &next_row, slot.terminated, done)?;
                returns[i] += slot.reward;
                lengths[i] += 1;
                if done {
                    let success = slot.final_info.as_ref().unwrap_or(&slot.info).is_success();
                    observer(&TrainEvent::Episode {
                        step: steps_after,
                        episode_return: returns[i],
                        length: lengths[i],
                        epsilon,
                        success,
                    });
                    (returns[i], lengths[i]) = (0.0, 0);
                    write_row(&slot.obs, &mut row, dim)?;
                    obs_row.copy_from_slice(&row);
                } else {
                    obs_row.copy_from_slice(&next_row);
                }
            }
            let before = self.num_timesteps;
            self.num_timesteps = steps_after;

            // Learn, and move the target network when an interval was crossed.
            if self.num_timesteps > self.config.learning_starts && vec_step.is_multiple_of(self.config.train_freq) {
                let event = self.train_burst()?;
                acting = self.online.valid();
                observer(&event);
            }
            let interval = self.config.target_update_interval;
            if before / interval != self.num_timesteps / interval {
                self.update_target();
            }
        }
        self.acting = self.online.to_host()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dqn::DqnConfig;
    use crate::evaluation::evaluate;
    use crate::policy::RandomPolicy;
    use rlhf_env::{BitFlipping, CartPole};
    use rlhf_model::backend::{AutodiffCpu, cpu_device};

    fn config(total_timesteps: u64) -> DqnConfig {
        DqnConfig {
            seed: 4,
            total_timesteps,
            learning_rate: 1e-3,
            buffer_size: 20_000,
            learning_starts: 480,
            batch_size: 64,
            train_freq: 2,
            gradient_steps: 3,
            target_update_interval: 250,
            exploration_fraction: 0.3,
            exploration_final_eps: 0.05,
            ..DqnConfig::default()
        }
    }

    fn cartpoles(n: usize, threaded: bool) -> VecEnv<rlhf_env::TimeLimit<CartPole>> {
        VecEnv::from_fn(n, |_| CartPole::v1()).unwrap().with_threads(threaded)
    }

    #[test]
    fn counters_follow_stable_baselines3s_vectorised_schedule() {
        let mut agent = Dqn::<AutodiffCpu>::for_env(config(10_000), &CartPole::v1(), cpu_device()).unwrap();
        let (mut episodes, mut bursts) = (0, 0);
        agent
            .learn_vec(&mut cartpoles(8, false), 100, |event| match event {
                TrainEvent::Episode { .. } => episodes += 1,
                TrainEvent::Train { .. } => bursts += 1,
                TrainEvent::Eval { .. } => {}
            })
            .unwrap();
        assert_eq!(agent.num_timesteps(), 800);
        // Updates start once more than 480 steps were taken (vector step 61,
        // 488 steps) and come every second vector step: 62, 64, ..., 100.
        assert_eq!(bursts, 20);
        assert_eq!(agent.gradient_updates(), 60);
        // 800 random-ish CartPole steps end dozens of episodes.
        assert!(episodes > 10, "{episodes} episodes");
    }

    #[test]
    fn threads_do_not_change_the_run() {
        let run = |threaded| {
            let mut agent = Dqn::<AutodiffCpu>::for_env(config(4_000), &CartPole::v1(), cpu_device()).unwrap();
            let mut events = Vec::new();
            agent.learn_vec(&mut cartpoles(16, threaded), 250, |e| events.push(e.clone())).unwrap();
            (events, agent.greedy_policy().q_values(&[0.01, 0.2, -0.03, 0.1]).unwrap().to_vec())
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn one_environment_is_the_single_environment_loop() {
        let total = 3_000;
        let mut vectorised = Dqn::<AutodiffCpu>::for_env(config(total), &CartPole::v1(), cpu_device()).unwrap();
        let mut single = Dqn::<AutodiffCpu>::for_env(config(total), &CartPole::v1(), cpu_device()).unwrap();
        let (mut events_vec, mut events_single) = (Vec::new(), Vec::new());
        vectorised.learn_vec(&mut cartpoles(1, false), total, |e| events_vec.push(e.clone())).unwrap();
        single.learn(&mut CartPole::v1(), total, None, |e| events_single.push(e.clone())).unwrap();
        assert_eq!(events_vec, events_single);
        let obs = [0.01, 0.2, -0.03, 0.1];
        assert_eq!(vectorised.greedy_policy().q_values(&obs).unwrap(), single.greedy_policy().q_values(&obs).unwrap());
    }

    #[test]
    fn many_environments_learn_cartpole() {
        // One gradient step per four environment steps, as the single
        // environment smoke test; seeds 4-6 scored 343, 118 and 149 when
        // this was written (a random policy: about 24).
        let total = 12_000;
        let config = DqnConfig { train_freq: 1, gradient_steps: 2, ..config(total) };
        let mut agent = Dqn::<AutodiffCpu>::for_env(config, &CartPole::v1(), cpu_device()).unwrap();
        agent.learn_vec(&mut cartpoles(8, true), total / 8, |_| {}).unwrap();
        let mut eval_env = CartPole::v1();
        let trained = agent.evaluate(&mut eval_env, 10, 777).unwrap();
        let mut random = RandomPolicy::new(*eval_env.action_space(), 0);
        let baseline = evaluate(&mut eval_env, &mut random, 10, 777).unwrap();
        assert!(
            trained.mean_return >= 4.0 * baseline.mean_return,
            "{} vs {}",
            trained.mean_return,
            baseline.mean_return
        );
    }

    #[test]
    fn hindsight_replay_is_refused() {
        let env = BitFlipping::new(5).unwrap();
        let config = DqnConfig { her: Some("future:4".parse().unwrap()), ..DqnConfig::bit_flipping() };
        let mut agent = Dqn::<AutodiffCpu>::for_goal_env(config, &env, cpu_device()).unwrap();
        let mut envs = VecEnv::from_fn(4, |_| BitFlipping::new(5).unwrap()).unwrap();
        let err = agent.learn_vec(&mut envs, 10, |_| {}).unwrap_err();
        assert!(err.to_string().contains("her"), "{err}");
    }
}
