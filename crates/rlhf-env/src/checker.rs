//! `check_env`: validates that an environment keeps the [`Env`] contract.

use std::fmt;

use crate::env::Env;
use crate::error::EnvError;
use crate::goal::{GoalEnv, GoalReward};
use crate::rng::seeded_rng;
use crate::spaces::Space;

/// What [`check_env`] exercised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Episodes played to their end.
    pub episodes: usize,
    /// Steps taken in all.
    pub steps: usize,
}

/// A broken promise of the [`Env`] contract, found by [`check_env`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// A sample of a space is not contained in it.
    #[error("{env}: a sample of the {which} space {space} is not in the space: {value}")]
    SampleNotInSpace {
        /// Id of the environment.
        env: String,
        /// `"observation"` or `"action"`.
        which: &'static str,
        /// The space.
        space: String,
        /// The sample.
        value: String,
    },
    /// `reset` or `step` returned an observation outside the observation space.
    #[error("{env}: the observation returned by {during} is not in the observation space {space}: {obs}")]
    ObservationNotInSpace {
        /// Id of the environment.
        env: String,
        /// Which call returned it, e.g. `"reset"` or `"step 12 of episode 0"`.
        during: String,
        /// The observation space.
        space: String,
        /// The observation.
        obs: String,
    },
    /// A reward that is NaN or infinite.
    #[error("{env}: step {step} of episode {episode} returned a non-finite reward {reward}")]
    NonFiniteReward {
        /// Id of the environment.
        env: String,
        /// Episode index.
        episode: usize,
        /// Step index within the episode.
        step: usize,
        /// The reward.
        reward: f64,
    },
    /// The same seed and actions gave a different trajectory.
    #[error("{env}: not deterministic: with seed {seed}, {what} differed at step {step}")]
    NotDeterministic {
        /// Id of the environment.
        env: String,
        /// The seed used.
        seed: u64,
        /// The step where the runs diverged (0 = the reset observation).
        step: usize,
        /// What differed.
        what: String,
    },
    /// An episode that never ended within the step budget.
    #[error("{env}: an episode did not end within {max_steps} steps; wrap the environment in a TimeLimit")]
    EpisodeNeverEnds {
        /// Id of the environment.
        env: String,
        /// The budget.
        max_steps: usize,
    },
    /// A step after the end of an episode was accepted instead of refused.
    #[error("{env}: step() after the episode ended was accepted; it must return EnvError::EpisodeEnded")]
    StepAfterEndAccepted {
        /// Id of the environment.
        env: String,
    },
    /// A goal environment's step disagrees with its own reward function, or
    /// its desired goal changed within an episode.
    #[error("{env}: step {step} of episode {episode} breaks the goal-env contract: {what}")]
    GoalContract {
        /// Id of the environment.
        env: String,
        /// Episode index.
        episode: usize,
        /// Step index within the episode.
        step: usize,
        /// What disagreed.
        what: String,
    },
    /// The environment returned an error during a valid call.
    #[error("{env}: a valid step failed: {source}")]
    StepFailed {
        /// Id of the environment.
        env: String,
        /// The error.
        source: EnvError,
    },
}

/// One episode as recorded for the determinism check: (obs, reward, terminated, truncated) per step.
type Trajectory<O> = Vec<(O, f64, bool, bool)>;

/// An episode played: its trajectory and the actions taken.
type Played<E> = (Trajectory<<E as Env>::Obs>, Vec<<E as Env>::Action>);

/// Checks `env` as Stable-Baselines3's `check_env` does, and more strictly:
///
/// - samples of both spaces lie in their spaces;
/// - `reset` and every `step` return observations in the observation space, and finite rewards;
/// - the same seed and the same actions give the same trajectory, and
///   `reset(None)` after a seeded reset continues the stream deterministically;
/// - a `step` after the episode ended (terminated or truncated) is refused
///   with [`EnvError::EpisodeEnded`].
///
/// It plays `episodes` episodes of at most `max_steps` steps with actions
/// sampled from the action space (seeded by `seed`).
pub fn check_env<E>(env: &mut E, seed: u64, episodes: usize, max_steps: usize) -> Result<CheckReport, CheckError>
where
    E: Env,
    E::Obs: PartialEq,
    E::Action: PartialEq,
{
    let id = env.id().to_owned();
    let mut rng = seeded_rng(seed);
    for _ in 0..100 {
        let action = env.action_space().sample(&mut rng);
        if !env.action_space().contains(&action) {
            return Err(CheckError::SampleNotInSpace {
                env: id,
                which: "action",
                space: env.action_space().to_string(),
                value: format!("{action:?}"),
            });
        }
        let obs = env.observation_space().sample(&mut rng);
        if !env.observation_space().contains(&obs) {
            return Err(CheckError::SampleNotInSpace {
                env: id,
                which: "observation",
                space: env.observation_space().to_string(),
                value: format!("{obs:?}"),
            });
        }
    }

    let mut report = CheckReport { episodes: 0, steps: 0 };
    let mut first_run = Vec::new();
    for episode in 0..episodes {
        let episode_seed = (episode == 0).then_some(seed);
        let (trajectory, actions) = play_episode(env, &id, episode_seed, None, &mut rng, episode, max_steps)?;
        report.episodes += 1;
        report.steps += trajectory.len() - 1;
        if env.step(actions[0].clone()).is_ok() {
            return Err(CheckError::StepAfterEndAccepted { env: id });
        }
        first_run.push((trajectory, actions));
    }

    // Replay: the same seed, then reset(None) for later episodes, and the same actions.
    for (episode, (trajectory, actions)) in first_run.iter().enumerate() {
        let episode_seed = (episode == 0).then_some(seed);
        let (replayed, _) = play_episode(env, &id, episode_seed, Some(actions), &mut rng, episode, max_steps)?;
        if let Some(step) = (0..trajectory.len().max(replayed.len())).find(|&i| trajectory.get(i) != replayed.get(i)) {
            return Err(CheckError::NotDeterministic {
                env: id,
                seed,
                step,
                what: format!("episode {episode}: {:?} then {:?}", trajectory.get(step), replayed.get(step)),
            });
        }
    }
    Ok(report)
}

/// Plays one episode, with `actions` if given, else with sampled ones.
fn play_episode<E, R>(
    env: &mut E,
    id: &str,
    seed: Option<u64>,
    actions: Option<&[E::Action]>,
    rng: &mut R,
    episode: usize,
    max_steps: usize,
) -> Result<Played<E>, CheckError>
where
    E: Env,
    R: rand::Rng + ?Sized,
{
    let (obs, _) = env.reset(seed);
    check_obs(env, id, &obs, || "reset".to_owned())?;
    let mut trajectory = vec![(obs, 0.0, false, false)];
    let mut taken = Vec::new();
    for step_index in 0..max_steps {
        let action = match actions {
            Some(actions) => match actions.get(step_index) {
                Some(action) => action.clone(),
                None => break,
            },
            None => env.action_space().sample(rng),
        };
        let step = env.step(action.clone()).map_err(|source| CheckError::StepFailed { env: id.to_owned(), source })?;
        check_obs(env, id, &step.obs, || format!("step {step_index} of episode {episode}"))?;
        if !step.reward.is_finite() {
            return Err(CheckError::NonFiniteReward {
                env: id.to_owned(),
                episode,
                step: step_index,
                reward: step.reward,
            });
        }
        taken.push(action);
        let done = step.done();
        trajectory.push((step.obs, step.reward, step.terminated, step.truncated));
        if done {
            return Ok((trajectory, taken));
        }
    }
    if actions.is_some() {
        return Ok((trajectory, taken));
    }
    Err(CheckError::EpisodeNeverEnds { env: id.to_owned(), max_steps })
}

fn check_obs<E: Env>(env: &E, id: &str, obs: &E::Obs, during: impl FnOnce() -> String) -> Result<(), CheckError> {
    if env.observation_space().contains(obs) {
        return Ok(());
    }
    Err(CheckError::ObservationNotInSpace {
        env: id.to_owned(),
        during: during(),
        space: env.observation_space().to_string(),
        obs: format!("{obs:?}"),
    })
}

/// What [`check_goal_env`] exercised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalCheckReport {
    /// Episodes played to their end.
    pub episodes: usize,
    /// Steps taken in all.
    pub steps: usize,
    /// Episodes that reached their goal.
    pub successes: usize,
}

/// Checks the goal-environment contract on `episodes` episodes of random play
/// (seeded by `seed`): every step's reward equals
/// `compute_reward(next.achieved_goal, desired_goal)`, `terminated` equals
/// `compute_terminated` and `info.is_success` agrees with it, the desired goal
/// stays fixed within an episode, and the batched `compute_rewards` equals the
/// single calls. Run [`check_env`] too for the general contract.
pub fn check_goal_env<E: GoalEnv>(env: &mut E, seed: u64, episodes: usize) -> Result<GoalCheckReport, CheckError> {
    let id = env.id().to_owned();
    let reward_fn = env.goal_reward().clone();
    let goal_dim = env.goal_dim();
    let mut rng = seeded_rng(seed);
    let mut report = GoalCheckReport { episodes: 0, steps: 0, successes: 0 };
    let (mut achieved, mut desired, mut rewards) = (Vec::new(), Vec::new(), Vec::new());
    for episode in 0..episodes {
        let (obs, _) = env.reset((episode == 0).then_some(seed));
        let goal = obs.desired_goal;
        for step_index in 0.. {
            let broken = |what: String| CheckError::GoalContract { env: id.clone(), episode, step: step_index, what };
            let action = env.action_space().sample(&mut rng);
            let step = env.step(action).map_err(|source| CheckError::StepFailed { env: id.clone(), source })?;
            let next = &step.obs;
            if next.achieved_goal.len() != goal_dim || next.desired_goal.len() != goal_dim {
                return Err(broken(format!(
                    "goals of {} and {} values, goal_dim is {goal_dim}",
                    next.achieved_goal.len(),
                    next.desired_goal.len()
                )));
            }
            if next.desired_goal != goal {
                return Err(broken(format!("the desired goal changed from {goal:?} to {:?}", next.desired_goal)));
            }
            let expected = reward_fn.compute_reward(&next.achieved_goal, &goal);
            if step.reward != expected {
                return Err(broken(format!("reward {} but compute_reward gives {expected}", step.reward)));
            }
            let reached = reward_fn.compute_terminated(&next.achieved_goal, &goal);
            if step.terminated != reached || step.info.is_success != reached {
                return Err(broken(format!(
                    "terminated {} and is_success {} but compute_terminated gives {reached}",
                    step.terminated, step.info.is_success
                )));
            }
            achieved.extend_from_slice(&next.achieved_goal);
            desired.extend_from_slice(&goal);
            rewards.push(expected as f32);
            report.steps += 1;
            if step.done() {
                report.successes += usize::from(reached);
                break;
            }
        }
        report.episodes += 1;
    }
    let mut batched = vec![0.0; rewards.len()];
    reward_fn.compute_rewards(&achieved, &desired, goal_dim, &mut batched);
    if let Some(i) = (0..rewards.len()).find(|&i| batched[i] != rewards[i]) {
        return Err(CheckError::GoalContract {
            env: id,
            episode: 0,
            step: i,
            what: format!(
                "compute_rewards gives {} for the {i}th transition overall, compute_reward {}",
                batched[i], rewards[i]
            ),
        });
    }
    Ok(report)
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} episodes, {} steps checked", self.episodes, self.steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Step;
    use crate::envs::cartpole::CartPole;
    use crate::spaces::{BoxSpace, Discrete};

    #[test]
    fn cartpole_v1_passes() {
        let report = check_env(&mut CartPole::v1(), 0, 5, 1_000).unwrap();
        assert_eq!(report.episodes, 5);
        assert!(report.steps >= 5);
    }

    #[test]
    fn cartpole_without_time_limit_passes_because_random_play_falls() {
        assert!(check_env(&mut CartPole::default(), 3, 3, 10_000).is_ok());
    }

    /// A deliberately broken environment, one defect at a time.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Defect {
        ObsOutOfSpace,
        Nondeterministic,
        AcceptsStepAfterEnd,
        NanReward,
    }

    struct Broken {
        defect: Defect,
        t: usize,
        calls: usize,
        obs_space: BoxSpace,
        action_space: Discrete,
    }

    impl Broken {
        fn new(defect: Defect) -> Self {
            Self {
                defect,
                t: 0,
                calls: 0,
                obs_space: BoxSpace::uniform(0.0, 1.0, 1).unwrap(),
                action_space: Discrete::new(2).unwrap(),
            }
        }
    }

    impl Env for Broken {
        type Obs = Vec<f32>;
        type Action = usize;
        type Info = ();
        type ObsSpace = BoxSpace;
        type ActionSpace = Discrete;
        fn id(&self) -> &str {
            "Broken"
        }
        fn observation_space(&self) -> &BoxSpace {
            &self.obs_space
        }
        fn action_space(&self) -> &Discrete {
            &self.action_space
        }
        fn reset(&mut self, _seed: Option<u64>) -> (Vec<f32>, ()) {
            self.t = 0;
            self.calls += 1;
            let value = if self.defect == Defect::Nondeterministic { self.calls as f32 / 10.0 } else { 0.0 };
            (vec![value], ())
        }
        fn step(&mut self, _action: usize) -> Result<Step<Vec<f32>>, EnvError> {
            if self.t >= 3 && self.defect != Defect::AcceptsStepAfterEnd {
                return Err(EnvError::EpisodeEnded { env: "Broken".into() });
            }
            self.t += 1;
            let obs = if self.defect == Defect::ObsOutOfSpace && self.t == 2 { 2.0 } else { 0.5 };
            let reward = if self.defect == Defect::NanReward { f64::NAN } else { 1.0 };
            Ok(Step { obs: vec![obs], reward, terminated: self.t >= 3, truncated: false, info: () })
        }
    }

    #[test]
    fn each_defect_is_reported() {
        let check = |defect| check_env(&mut Broken::new(defect), 0, 2, 10).unwrap_err();
        assert!(
            matches!(check(Defect::ObsOutOfSpace), CheckError::ObservationNotInSpace { ref during, .. } if during == "step 1 of episode 0")
        );
        assert!(matches!(check(Defect::Nondeterministic), CheckError::NotDeterministic { step: 0, .. }));
        assert!(matches!(check(Defect::AcceptsStepAfterEnd), CheckError::StepAfterEndAccepted { .. }));
        assert!(matches!(check(Defect::NanReward), CheckError::NonFiniteReward { step: 0, .. }));
    }
}
