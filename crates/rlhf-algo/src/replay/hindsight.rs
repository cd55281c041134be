//! Hindsight experience replay (Andrychowicz et al. 2017): an episode-aware
//! replay buffer that relabels goals when it samples.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rand::Rng;
use rlhf_env::GoalReward;
use rlhf_env::rng::uniform_index;
use serde::{Deserialize, Serialize};

use super::ReplayBatch;
use super::buffer::{ByteReader, stored_action};
use crate::error::AlgoError;

/// Which achieved goal replaces the desired one of a relabeled transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoalStrategy {
    /// A goal achieved at the same step or later in the episode (the paper's best).
    Future,
    /// The goal achieved at the episode's last step.
    Final,
    /// A goal achieved at any step of the episode.
    Episode,
}

/// How hindsight replay relabels: `n_sampled_goal = k` hindsight goals per
/// real one, so a fraction k/(k+1) of every sampled batch is relabeled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HerConfig {
    /// Where hindsight goals come from.
    pub strategy: GoalStrategy,
    /// Hindsight goals per real goal (`k`; Stable-Baselines3's `n_sampled_goal`).
    pub n_sampled_goal: usize,
}

impl HerConfig {
    /// Transitions of a batch of `batch_size` that get a hindsight goal: ⌊batch·k/(k+1)⌋.
    pub fn relabeled(&self, batch_size: usize) -> usize {
        let k = self.n_sampled_goal as u128;
        (batch_size as u128 * k / (k + 1)) as usize
    }
}

impl FromStr for HerConfig {
    type Err = AlgoError;

    /// Parses `strategy[:k]`, e.g. `future:4` or `final` (k = 4 when omitted).
    fn from_str(text: &str) -> Result<Self, AlgoError> {
        let bad = |reason: String| AlgoError::InvalidConfig { field: "her", reason };
        let (name, k) = text.split_once(':').unwrap_or((text, "4"));
        let strategy = match name.trim().to_ascii_lowercase().as_str() {
            "future" => GoalStrategy::Future,
            "final" => GoalStrategy::Final,
            "episode" => GoalStrategy::Episode,
            other => return Err(bad(format!("unknown goal strategy `{other}`; use future, final or episode"))),
        };
        let n_sampled_goal =
            k.trim().parse().map_err(|_| bad(format!("`{text}`: k after `:` must be a whole number, got `{k}`")))?;
        Ok(Self { strategy, n_sampled_goal })
    }
}

impl fmt::Display for HerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.strategy {
            GoalStrategy::Future => "future",
            GoalStrategy::Final => "final",
            GoalStrategy::Episode => "episode",
        };
        write!(f, "{name}:{}", self.n_sampled_goal)
    }
}

/// A ring buffer of goal-conditioned transitions that knows their episodes.
///
/// Each pushed transition is a flat row `[observation, achieved_goal,
/// desired_goal]` before and after the action. Only finished episodes
/// (terminated or truncated) are sampled, because `future` and `final` goals
/// need the episode's end. When the ring wraps around onto the oldest stored
/// episode, that whole episode is dropped, so every sampleable transition
/// has its complete episode behind it.
///
/// [`HerBuffer::sample_into`] draws transitions uniformly (with replacement)
/// from the finished episodes; the first ⌊batch·k/(k+1)⌋ get a hindsight
/// goal chosen by the [`GoalStrategy`], with reward and termination
/// recomputed by the environment's [`GoalReward`]. The rows written to the
/// batch are `[observation, goal]`, the network's input. Sampling reuses the
/// batch's buffers, so the steady state allocates nothing.
///
/// ```
/// use std::sync::Arc;
/// use rlhf_algo::replay::{HerBuffer, HerConfig, ReplayBatch};
/// use rlhf_env::SparseGoalReward;
/// use rlhf_env::rng::seeded_rng;
///
/// // Rows are [observation, achieved_goal, desired_goal], here one value each.
/// let her: HerConfig = "future:4".parse()?;
/// let mut buffer = HerBuffer::new(1_000, 1, 1, Some(her), Arc::new(SparseGoalReward))?;
/// // An episode that walks 0 → 1 → 2 and never reaches its goal 9 (reward -1 each step).
/// buffer.push(&[0.0, 0.0, 9.0], 1, -1.0, &[1.0, 1.0, 9.0], false, false)?;
/// buffer.push(&[1.0, 1.0, 9.0], 1, -1.0, &[2.0, 2.0, 9.0], false, true)?; // truncated
/// let mut batch = ReplayBatch::default();
/// buffer.sample_into(100, &mut seeded_rng(0), &mut batch)?;
/// // 80 of the 100 rows are relabeled with a goal the episode reached, and
/// // those that reach it right away get reward 0 and a terminal flag.
/// let reached = (0..80).filter(|&i| batch.rewards[i] == 0.0).count();
/// assert!(reached > 0 && batch.terminated[..80].iter().filter(|&&t| t == 1.0).count() == reached);
/// # Ok::<(), rlhf_algo::AlgoError>(())
/// ```
pub struct HerBuffer {
    capacity: usize,
    obs_dim: usize,
    goal_dim: usize,
    her: Option<HerConfig>,
    reward: Arc<dyn GoalReward>,
    /// n-step returns: steps summed before bootstrapping, and their discount.
    n_steps: usize,
    gamma: f64,
    observations: Vec<f32>,
    next_observations: Vec<f32>,
    /// The goal achieved by each transition's next state.
    achieved: Vec<f32>,
    desired: Vec<f32>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    /// Slot of the first transition of each transition's episode.
    episode_start: Vec<u32>,
    /// Length of each transition's episode once it has ended.
    episode_len: Vec<u32>,
    /// Slots written at least once.
    filled: usize,
    /// Next slot to write.
    position: usize,
    /// Slot of the oldest finished episode's first transition.
    oldest: usize,
    /// Transitions of finished episodes, stored from `oldest` on.
    finished: usize,
    /// Slot where the episode in progress started, and its transitions so far.
    current_start: usize,
    current_len: usize,
}

impl fmt::Debug for HerBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HerBuffer")
            .field("capacity", &self.capacity)
            .field("obs_dim", &self.obs_dim)
            .field("goal_dim", &self.goal_dim)
            .field("her", &self.her)
            .field("finished", &self.finished)
            .field("current_len", &self.current_len)
            .finish_non_exhaustive()
    }
}

impl HerBuffer {
    /// An empty buffer of `capacity` transitions with observations of
    /// `obs_dim` and goals of `goal_dim` values. `her: None` never relabels
    /// (plain replay of goal-conditioned transitions).
    pub fn new(
        capacity: usize,
        obs_dim: usize,
        goal_dim: usize,
        her: Option<HerConfig>,
        reward: Arc<dyn GoalReward>,
    ) -> Result<Self, AlgoError> {
        if capacity == 0 || u32::try_from(capacity).is_err() {
            return Err(AlgoError::InvalidConfig {
                field: "buffer_size",
                reason: format!("must be in 1..=2^32-1, got {capacity}"),
            });
        }
        if goal_dim == 0 {
            return Err(AlgoError::InvalidConfig { field: "goal_dim", reason: "must be at least 1".into() });
        }
        Ok(Self {
            capacity,
            obs_dim,
            goal_dim,
            her,
            reward,
            n_steps: 1,
            gamma: 1.0,
            observations: Vec::new(),
            next_observations: Vec::new(),
            achieved: Vec::new(),
            desired: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            terminated: Vec::new(),
            episode_start: Vec::new(),
            episode_len: Vec::new(),
            filled: 0,
            position: 0,
            oldest: 0,
            finished: 0,
            current_start: 0,
            current_len: 0,
        })
    }

    /// Samples n-step transitions: the rewards of up to `n_steps` steps of
    /// the episode, discounted by `gamma` and recomputed under the
    /// (relabeled) goal, stopping at the first step that reaches it or at
    /// the episode's end; the batch's `steps` say how many were summed.
    pub fn with_n_steps(mut self, n_steps: usize, gamma: f64) -> Result<Self, AlgoError> {
        if !(1..=u8::MAX as usize).contains(&n_steps) {
            return Err(AlgoError::InvalidConfig { field: "n_steps", reason: "must be in 1..=255".into() });
        }
        (self.n_steps, self.gamma) = (n_steps, gamma);
        Ok(self)
    }

    /// Maximum number of transitions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Transitions of finished episodes (the ones sampling draws from).
    pub fn len(&self) -> usize {
        self.finished
    }

    /// Whether no finished episode is stored.
    pub fn is_empty(&self) -> bool {
        self.finished == 0
    }

    /// Observation size.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Goal size.
    pub fn goal_dim(&self) -> usize {
        self.goal_dim
    }

    /// Values in a flat row `[observation, achieved_goal, desired_goal]`.
    pub fn row_dim(&self) -> usize {
        self.obs_dim + 2 * self.goal_dim
    }

    /// The relabeling settings.
    pub fn her(&self) -> Option<HerConfig> {
        self.her
    }

    /// Stores a transition between flat rows `[observation, achieved_goal,
    /// desired_goal]`; `episode_end` (terminated or truncated) closes the
    /// episode and makes it sampleable.
    pub fn push(
        &mut self,
        row: &[f32],
        action: usize,
        reward: f32,
        next_row: &[f32],
        terminated: bool,
        episode_end: bool,
    ) -> Result<(), AlgoError> {
        let (o, g) = (self.obs_dim, self.goal_dim);
        for (what, found) in [("obs", row.len()), ("next_obs", next_row.len())] {
            if found != self.row_dim() {
                return Err(AlgoError::ShapeMismatch {
                    what: format!("the transition's {what}"),
                    expected: format!("{o} + 2 x {g} values"),
                    found: format!("{found} values"),
                });
            }
        }
        let action = stored_action(action)?;
        if self.current_len == self.capacity {
            return Err(AlgoError::InvalidConfig {
                field: "buffer_size",
                reason: format!("an episode is longer than the buffer's {} transitions", self.capacity),
            });
        }
        // Writing over the oldest finished episode drops all of it.
        if self.finished > 0 && self.position == self.oldest {
            let dropped = self.episode_len[self.oldest] as usize;
            self.oldest = (self.oldest + dropped) % self.capacity;
            self.finished -= dropped;
        }
        let i = self.position;
        let (observation, desired) = (&row[..o], &row[o + g..]);
        let (next_observation, achieved) = (&next_row[..o], &next_row[o..o + g]);
        if i == self.filled {
            self.observations.extend_from_slice(observation);
            self.next_observations.extend_from_slice(next_observation);
            self.achieved.extend_from_slice(achieved);
            self.desired.extend_from_slice(desired);
            self.actions.push(action);
            self.rewards.push(reward);
            self.terminated.push(terminated);
            self.episode_start.push(0);
            self.episode_len.push(0);
            self.filled += 1;
        } else {
            self.observations[i * o..(i + 1) * o].copy_from_slice(observation);
            self.next_observations[i * o..(i + 1) * o].copy_from_slice(next_observation);
            self.achieved[i * g..(i + 1) * g].copy_from_slice(achieved);
            self.desired[i * g..(i + 1) * g].copy_from_slice(desired);
            self.actions[i] = action;
            self.rewards[i] = reward;
            self.terminated[i] = terminated;
        }
        self.episode_start[i] = self.current_start as u32;
        self.episode_len[i] = 0;
        self.current_len += 1;
        self.position = (i + 1) % self.capacity;
        if episode_end {
            self.end_episode();
        }
        Ok(())
    }

    /// Closes the episode in progress (no-op when it is empty).
    fn end_episode(&mut self) {
        let len = self.current_len;
        if len == 0 {
            return;
        }
        for j in 0..len {
            self.episode_len[(self.current_start + j) % self.capacity] = len as u32;
        }
        if self.finished == 0 {
            self.oldest = self.current_start;
        }
        self.finished += len;
        self.current_start = self.position;
        self.current_len = 0;
    }

    /// Fills `batch` with `batch_size` transitions drawn uniformly from
    /// finished episodes, a fraction k/(k+1) of them relabeled. Errors when no
    /// episode has finished yet.
    pub fn sample_into<R: Rng + ?Sized>(
        &self,
        batch_size: usize,
        rng: &mut R,
        batch: &mut ReplayBatch,
    ) -> Result<(), AlgoError> {
        if self.finished == 0 {
            return Err(AlgoError::EmptyReplay { reason: "no episode has finished yet" });
        }
        let (o, g) = (self.obs_dim, self.goal_dim);
        batch.clear();
        let relabeled = self.her.map_or(0, |her| her.relabeled(batch_size));
        for k in 0..batch_size {
            let i = (self.oldest + uniform_index(rng, self.finished)) % self.capacity;
            let hindsight = match self.her {
                Some(her) if k < relabeled => Some(self.hindsight_slot(i, her.strategy, rng)),
                _ => None,
            };
            let goal = match hindsight {
                Some(j) => &self.achieved[j * g..(j + 1) * g],
                None => &self.desired[i * g..(i + 1) * g],
            };
            let (reward, terminated, last, steps) = self.n_step_return(i, goal, hindsight.is_some());
            batch.obs.extend_from_slice(&self.observations[i * o..(i + 1) * o]);
            batch.obs.extend_from_slice(goal);
            batch.next_obs.extend_from_slice(&self.next_observations[last * o..(last + 1) * o]);
            batch.next_obs.extend_from_slice(goal);
            batch.actions.push(i64::from(self.actions[i]));
            batch.rewards.push(reward as f32);
            batch.terminated.push(if terminated { 1.0 } else { 0.0 });
            batch.steps.push(steps);
        }
        Ok(())
    }

    /// The return of up to `n_steps` steps from slot `i` under `goal` (the
    /// stored rewards for the episode's own goal, recomputed for a hindsight
    /// one): `(return, terminated, slot of the last step, steps summed)`.
    fn n_step_return(&self, i: usize, goal: &[f32], relabeled: bool) -> (f64, bool, usize, u8) {
        let g = self.goal_dim;
        let start = self.episode_start[i] as usize;
        let (len, offset) = (self.episode_len[i] as usize, (i + self.capacity - start) % self.capacity);
        let (mut total, mut discount) = (0.0, 1.0);
        let mut k = 0;
        loop {
            let j = (i + k) % self.capacity;
            let (reward, terminated) = if relabeled {
                let achieved = &self.achieved[j * g..(j + 1) * g];
                (self.reward.compute_reward(achieved, goal), self.reward.compute_terminated(achieved, goal))
            } else {
                (f64::from(self.rewards[j]), self.terminated[j])
            };
            total += discount * reward;
            discount *= self.gamma;
            k += 1;
            if terminated || offset + k == len || k == self.n_steps {
                return (total, terminated, j, k as u8);
            }
        }
    }

    /// The slot whose achieved goal relabels the transition in slot `i`.
    fn hindsight_slot<R: Rng + ?Sized>(&self, i: usize, strategy: GoalStrategy, rng: &mut R) -> usize {
        let start = self.episode_start[i] as usize;
        let len = self.episode_len[i] as usize;
        let offset = (i + self.capacity - start) % self.capacity;
        let chosen = match strategy {
            GoalStrategy::Future => offset + uniform_index(rng, len - offset),
            GoalStrategy::Final => len - 1,
            GoalStrategy::Episode => uniform_index(rng, len),
        };
        (start + chosen) % self.capacity
    }
}

const MAGIC: &[u8; 8] = b"RLHFHB01";
const HEADER_WORDS: usize = 9;

impl HerBuffer {
    /// The buffer as bytes (the reward function and relabeling settings are
    /// not stored: they come from the environment and the config on load).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        let header = [
            self.capacity,
            self.obs_dim,
            self.goal_dim,
            self.filled,
            self.position,
            self.oldest,
            self.finished,
            self.current_start,
            self.current_len,
        ];
        header.iter().for_each(|&n| out.extend_from_slice(&(n as u64).to_le_bytes()));
        for column in [&self.observations, &self.next_observations, &self.achieved, &self.desired, &self.rewards] {
            column.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        for column in [&self.actions, &self.episode_start, &self.episode_len] {
            column.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        out.extend(self.terminated.iter().map(|&t| u8::from(t)));
        out
    }

    /// Reads [`HerBuffer::to_bytes`]'s format; errors say what is wrong.
    pub fn from_bytes(bytes: &[u8], her: Option<HerConfig>, reward: Arc<dyn GoalReward>) -> Result<Self, String> {
        let mut reader = ByteReader { bytes, at: 0 };
        if reader.take(8)? != MAGIC {
            return Err("not a hindsight replay file (bad magic)".into());
        }
        let mut header = [0usize; HEADER_WORDS];
        for slot in &mut header {
            *slot = usize::try_from(reader.u64()?).map_err(|_| "header value too large".to_string())?;
        }
        let [capacity, obs_dim, goal_dim, filled, position, oldest, finished, current_start, current_len] = header;
        let mut buffer =
            Self::new(capacity, obs_dim, goal_dim, her, reward).map_err(|e| format!("inconsistent header: {e}"))?;
        let consistent = filled <= capacity
            && position.max(oldest).max(current_start) < capacity
            && (filled == capacity || position == filled)
            && finished + current_len <= filled
            && (finished == 0 || (oldest + finished) % capacity == current_start)
            && (current_start + current_len) % capacity == position;
        if !consistent {
            return Err(format!(
                "inconsistent header: capacity {capacity}, filled {filled}, position {position}, oldest {oldest}, finished {finished}, current {current_start}+{current_len}"
            ));
        }
        let expected = 8 + 8 * HEADER_WORDS + filled * (4 * (2 * obs_dim + 2 * goal_dim + 1) + 12 + 1);
        if bytes.len() != expected {
            return Err(format!("{} bytes, the header implies {expected} (truncated?)", bytes.len()));
        }
        let mut f32s = |n: usize| (0..n).map(|_| reader.u32().map(f32::from_bits)).collect::<Result<Vec<_>, _>>();
        buffer.observations = f32s(filled * obs_dim)?;
        buffer.next_observations = f32s(filled * obs_dim)?;
        buffer.achieved = f32s(filled * goal_dim)?;
        buffer.desired = f32s(filled * goal_dim)?;
        buffer.rewards = f32s(filled)?;
        let mut u32s = |n: usize| (0..n).map(|_| reader.u32()).collect::<Result<Vec<_>, _>>();
        buffer.actions = u32s(filled)?;
        buffer.episode_start = u32s(filled)?;
        buffer.episode_len = u32s(filled)?;
        buffer.terminated = reader.take(filled)?.iter().map(|&b| b != 0).collect();
        // Every finished transition must point into a whole episode inside the ring.
        for k in 0..finished {
            let i = (oldest + k) % capacity;
            let (start, len) = (buffer.episode_start[i] as usize, buffer.episode_len[i] as usize);
            if start >= filled || len == 0 || len > capacity || (i + capacity - start) % capacity >= len {
                return Err(format!("transition {i} has an inconsistent episode (start {start}, length {len})"));
            }
        }
        buffer.filled = filled;
        buffer.position = position;
        buffer.oldest = oldest;
        buffer.finished = finished;
        buffer.current_start = current_start;
        buffer.current_len = current_len;
        Ok(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlhf_env::SparseGoalReward;
    use rlhf_env::rng::seeded_rng;

    /// How a test episode ends.
    #[derive(Clone, Copy, PartialEq)]
    enum End {
        Terminated,
        Truncated,
        Running,
    }

    /// A one-dimensional walk: the observation and achieved goal are the
    /// position `t` (a global counter, so every transition is identifiable);
    /// the desired goal is -1 (never reached).
    fn push_episode(buffer: &mut HerBuffer, first: usize, len: usize, end: End) {
        for t in first..first + len {
            let (p, q) = (t as f32, (t + 1) as f32);
            let last = t + 1 == first + len;
            let terminated = last && end == End::Terminated;
            buffer.push(&[p, p, -1.0], t % 2, -1.0, &[q, q, -1.0], terminated, last && end != End::Running).unwrap();
        }
    }

    fn buffer(capacity: usize, her: Option<HerConfig>) -> HerBuffer {
        HerBuffer::new(capacity, 1, 1, her, Arc::new(SparseGoalReward)).unwrap()
    }

    fn future(k: usize) -> Option<HerConfig> {
        Some(HerConfig { strategy: GoalStrategy::Future, n_sampled_goal: k })
    }

    /// (position, goal, reward, terminated) of each sampled row.
    fn rows(batch: &ReplayBatch) -> Vec<(f32, f32, f32, f32)> {
        (0..batch.len())
            .map(|k| (batch.obs[2 * k], batch.obs[2 * k + 1], batch.rewards[k], batch.terminated[k]))
            .collect()
    }

    #[test]
    fn parses_and_prints_the_cli_form() {
        let her: HerConfig = "future:4".parse().unwrap();
        assert_eq!(her, HerConfig { strategy: GoalStrategy::Future, n_sampled_goal: 4 });
        assert_eq!("Final".parse::<HerConfig>().unwrap().to_string(), "final:4");
        assert!("later:2".parse::<HerConfig>().unwrap_err().to_string().contains("unknown goal strategy `later`"));
        assert!("episode:x".parse::<HerConfig>().is_err());
        assert_eq!(her.relabeled(256), 204);
        assert_eq!(HerConfig { strategy: GoalStrategy::Final, n_sampled_goal: 0 }.relabeled(256), 0);
    }

    #[test]
    fn only_finished_episodes_are_sampled() {
        let mut buffer = buffer(100, None);
        let mut batch = ReplayBatch::default();
        push_episode(&mut buffer, 0, 3, End::Running);
        assert!(buffer.sample_into(4, &mut seeded_rng(0), &mut batch).is_err(), "nothing has finished");
        push_episode(&mut buffer, 3, 0, End::Running);
        buffer.push(&[3.0, 3.0, -1.0], 0, -1.0, &[4.0, 4.0, -1.0], false, true).unwrap();
        assert_eq!(buffer.len(), 4);
        push_episode(&mut buffer, 10, 5, End::Terminated);
        push_episode(&mut buffer, 20, 2, End::Running); // in progress: never sampled
        buffer.sample_into(500, &mut seeded_rng(1), &mut batch).unwrap();
        let positions: std::collections::BTreeSet<u32> = rows(&batch).iter().map(|r| r.0 as u32).collect();
        assert_eq!(positions.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 10, 11, 12, 13, 14]);
    }

    #[test]
    fn future_goals_come_from_the_same_episode_at_or_after_the_transition() {
        let mut buffer = buffer(1000, future(4));
        for e in 0..10 {
            push_episode(&mut buffer, 100 * e, 7, if e % 2 == 0 { End::Terminated } else { End::Truncated });
        }
        let mut batch = ReplayBatch::default();
        buffer.sample_into(1000, &mut seeded_rng(2), &mut batch).unwrap();
        let rows = rows(&batch);
        let relabeled = 1000 * 4 / 5;
        for (k, &(position, goal, reward, terminated)) in rows.iter().enumerate() {
            if k >= relabeled {
                assert_eq!((goal, reward), (-1.0, -1.0), "real goals are kept");
                continue;
            }
            let episode = (position as usize) / 100;
            let last = (100 * episode + 7) as f32;
            // The goal is a next-state position in [position + 1, end of episode].
            assert!(goal > position && goal <= last, "{position} -> {goal}");
            let reached = goal == position + 1.0;
            assert_eq!(reward, if reached { 0.0 } else { -1.0 });
            assert_eq!(terminated, if reached { 1.0 } else { 0.0 }, "termination is recomputed");
        }
        // The transition's own next state is a possible goal, and so is the episode's end.
        assert!(rows[..relabeled].iter().any(|r| r.1 == r.0 + 1.0));
        assert!(rows[..relabeled].iter().any(|r| r.1 as usize % 100 == 7 && r.0 as usize % 100 < 6));
    }

    #[test]
    fn final_and_episode_strategies() {
        for strategy in [GoalStrategy::Final, GoalStrategy::Episode] {
            let her = HerConfig { strategy, n_sampled_goal: 1_000 };
            let mut buffer = buffer(1000, Some(her));
            for e in 0..5 {
                push_episode(&mut buffer, 100 * e, 6, End::Truncated);
            }
            let mut batch = ReplayBatch::default();
            buffer.sample_into(2000, &mut seeded_rng(3), &mut batch).unwrap();
            let mut earlier_goal = false;
            for (position, goal, _, _) in rows(&batch).into_iter().take(her.relabeled(2000)) {
                let start = (position as usize / 100 * 100) as f32;
                match strategy {
                    GoalStrategy::Final => assert_eq!(goal, start + 6.0),
                    _ => assert!(goal > start && goal <= start + 6.0),
                }
                earlier_goal |= goal <= position;
            }
            assert_eq!(earlier_goal, strategy == GoalStrategy::Episode, "{strategy:?}");
        }
    }

    #[test]
    fn truncated_episodes_relabel_within_themselves_and_keep_bootstrapping() {
        let mut buffer = buffer(64, future(1));
        push_episode(&mut buffer, 0, 4, End::Truncated);
        let mut batch = ReplayBatch::default();
        buffer.sample_into(400, &mut seeded_rng(4), &mut batch).unwrap();
        for (k, (position, goal, reward, terminated)) in rows(&batch).into_iter().enumerate() {
            if k < 200 {
                assert!(goal > position && goal <= 4.0);
                assert_eq!(terminated == 1.0, reward == 0.0);
            } else {
                assert_eq!((goal, reward, terminated), (-1.0, -1.0, 0.0), "a time-out is not a terminal state");
            }
        }
    }

    #[test]
    fn wrapping_mid_episode_drops_the_overwritten_episode_whole() {
        let her = HerConfig { strategy: GoalStrategy::Future, n_sampled_goal: 1_000 };
        let mut buffer = buffer(10, Some(her));
        push_episode(&mut buffer, 0, 4, End::Terminated); // slots 0..4
        push_episode(&mut buffer, 10, 4, End::Terminated); // slots 4..8
        push_episode(&mut buffer, 20, 4, End::Terminated); // slots 8, 9, 0, 1: overwrites episode 0 partly
        assert_eq!(buffer.len(), 8, "episode 0 is gone, episodes 10 and 20 remain");
        let mut batch = ReplayBatch::default();
        buffer.sample_into(2000, &mut seeded_rng(5), &mut batch).unwrap();
        let mut positions = std::collections::BTreeSet::new();
        for (position, goal, _, _) in rows(&batch).into_iter().take(her.relabeled(2000)) {
            let start = (position as usize / 10 * 10) as f32;
            assert!(goal > position && goal <= start + 4.0, "{position} -> {goal}: the goal stays in the episode");
            positions.insert(position as u32);
        }
        assert_eq!(positions.into_iter().collect::<Vec<_>>(), vec![10, 11, 12, 13, 20, 21, 22, 23]);
        // An episode in progress that wraps drops the next old episode when it reaches it.
        push_episode(&mut buffer, 30, 3, End::Truncated); // slots 2, 3, 4: reaches episode 10 at slot 4
        assert_eq!(buffer.len(), 7);
        let mut tiny = self::buffer(3, None);
        for _ in 0..3 {
            tiny.push(&[0.0; 3], 0, 0.0, &[0.0; 3], false, false).unwrap();
        }
        let err = tiny.push(&[0.0; 3], 0, 0.0, &[0.0; 3], false, false).unwrap_err();
        assert!(err.to_string().contains("longer than the buffer"), "{err}");
    }

    #[test]
    fn n_step_returns_are_computed_under_the_relabeled_goal() {
        // One truncated episode over positions 0..6; γ = 0.5, n = 3. Under a
        // hindsight goal g the rewards are −1 until the step that reaches g
        // (reward 0, terminal); under the real goal (never reached) all are −1.
        let her = HerConfig { strategy: GoalStrategy::Future, n_sampled_goal: 1 };
        let mut buffer = buffer(64, Some(her)).with_n_steps(3, 0.5).unwrap();
        push_episode(&mut buffer, 0, 6, End::Truncated);
        let mut batch = ReplayBatch::default();
        buffer.sample_into(2_000, &mut seeded_rng(9), &mut batch).unwrap();
        for k in 0..batch.len() {
            let (position, goal) = (batch.obs[2 * k], batch.obs[2 * k + 1]);
            let (next, steps, reward, terminated) =
                (batch.next_obs[2 * k], batch.steps[k], batch.rewards[k], batch.terminated[k]);
            let (expected_steps, expected_terminal) = if k < 1_000 {
                let to_goal = (goal - position) as u8; // the goal is reached after this many steps
                (to_goal.min(3), to_goal <= 3)
            } else {
                ((6.0 - position).min(3.0) as u8, false) // truncated at position 6: bootstrap
            };
            let minus_ones = if expected_terminal { expected_steps - 1 } else { expected_steps };
            let expected_reward: f32 = (0..minus_ones).map(|j| -(0.5f32.powi(i32::from(j)))).sum();
            assert_eq!(steps, expected_steps, "from {position} to goal {goal}");
            assert_eq!(next, position + f32::from(steps), "bootstraps from the last step's next state");
            assert_eq!(terminated, if expected_terminal { 1.0 } else { 0.0 }, "from {position} to goal {goal}");
            assert_eq!(reward, expected_reward, "from {position} to goal {goal}");
            assert_eq!(batch.next_obs[2 * k + 1], goal, "the goal stays the relabeled one");
        }
        assert!(HerBuffer::new(4, 1, 1, None, Arc::new(SparseGoalReward)).unwrap().with_n_steps(0, 0.9).is_err());
    }

    #[test]
    fn sampling_is_seeded_and_reuses_the_batch_memory() {
        let mut buffer = buffer(500, future(4));
        for e in 0..20 {
            push_episode(&mut buffer, 100 * e, 9, if e % 3 == 0 { End::Terminated } else { End::Truncated });
        }
        let draw = |seed| {
            let mut batch = ReplayBatch::default();
            buffer.sample_into(64, &mut seeded_rng(seed), &mut batch).unwrap();
            batch
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let mut batch = draw(7);
        let pointers = (batch.obs.as_ptr(), batch.next_obs.as_ptr(), batch.rewards.as_ptr());
        for seed in 0..10 {
            buffer.sample_into(64, &mut seeded_rng(seed), &mut batch).unwrap();
        }
        assert_eq!(pointers, (batch.obs.as_ptr(), batch.next_obs.as_ptr(), batch.rewards.as_ptr()));
    }

    #[test]
    fn bytes_round_trip_and_damage_is_reported() {
        let mut buffer = buffer(10, future(2));
        push_episode(&mut buffer, 0, 4, End::Terminated);
        push_episode(&mut buffer, 10, 4, End::Truncated);
        push_episode(&mut buffer, 20, 4, End::Terminated);
        push_episode(&mut buffer, 30, 1, End::Running);
        let bytes = buffer.to_bytes();
        let restored = HerBuffer::from_bytes(&bytes, future(2), Arc::new(SparseGoalReward)).unwrap();
        assert_eq!(restored.to_bytes(), bytes);
        let (mut a, mut b) = (ReplayBatch::default(), ReplayBatch::default());
        buffer.sample_into(32, &mut seeded_rng(1), &mut a).unwrap();
        restored.sample_into(32, &mut seeded_rng(1), &mut b).unwrap();
        assert_eq!(a, b);
        let reward = || Arc::new(SparseGoalReward);
        assert!(HerBuffer::from_bytes(&bytes[..bytes.len() - 1], None, reward()).unwrap_err().contains("truncated"));
        assert!(HerBuffer::from_bytes(&[0u8; 100], None, reward()).unwrap_err().contains("bad magic"));
        let mut bad = bytes.clone();
        bad[8 + 6 * 8..8 + 7 * 8].copy_from_slice(&99u64.to_le_bytes()); // finished > filled
        assert!(HerBuffer::from_bytes(&bad, None, reward()).unwrap_err().contains("inconsistent header"));
    }
}
