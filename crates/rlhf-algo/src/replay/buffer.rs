//! The plain replay buffer: a ring of transitions, sampled uniformly.

use rand::Rng;
use rlhf_env::rng::uniform_index;

use crate::error::AlgoError;

/// A fixed-capacity ring buffer of transitions `(s, a, r, s', terminated)`
/// with flat f32 observations; an n-step transition also records its
/// number of steps k (its bootstrap is discounted by γᵏ).
///
/// Only `terminated` is stored: a truncated transition keeps its true next
/// observation and is bootstrapped like any other, which is what separating
/// the two flags is for. Once full, the oldest transition is overwritten.
/// Sampling draws indices uniformly with replacement from a generator the
/// caller owns and fills a [`ReplayBatch`] whose buffers are reused, so the
/// steady state allocates nothing.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    /// Environment steps between `s` and `s'` (1 unless n-step).
    steps: Vec<u8>,
    /// Next slot to write.
    position: usize,
    len: usize,
}

/// A sampled mini-batch, laid out for building tensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayBatch {
    /// `[batch, obs_dim]`, row-major.
    pub obs: Vec<f32>,
    /// `[batch]`.
    pub actions: Vec<i64>,
    /// `[batch]`.
    pub rewards: Vec<f32>,
    /// `[batch, obs_dim]`, row-major.
    pub next_obs: Vec<f32>,
    /// `[batch]`, 1.0 where the next state is terminal.
    pub terminated: Vec<f32>,
    /// `[batch]`, environment steps k from `obs` to `next_obs`: the
    /// bootstrap is discounted by γᵏ and the reward sums k discounted rewards.
    pub steps: Vec<u8>,
}

impl ReplayBatch {
    /// The number of transitions.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Empties every column, keeping their memory for the next batch.
    pub fn clear(&mut self) {
        self.obs.clear();
        self.next_obs.clear();
        self.actions.clear();
        self.rewards.clear();
        self.terminated.clear();
        self.steps.clear();
    }
}

impl ReplayBuffer {
    /// An empty buffer for `capacity` transitions of observations of `obs_dim` floats.
    pub fn new(capacity: usize, obs_dim: usize) -> Result<Self, AlgoError> {
        if capacity == 0 {
            return Err(AlgoError::InvalidConfig { field: "buffer_size", reason: "must be at least 1".into() });
        }
        Ok(Self {
            capacity,
            obs_dim,
            obs: Vec::with_capacity(capacity * obs_dim),
            next_obs: Vec::with_capacity(capacity * obs_dim),
            actions: Vec::with_capacity(capacity),
            rewards: Vec::with_capacity(capacity),
            terminated: Vec::with_capacity(capacity),
            steps: Vec::with_capacity(capacity),
            position: 0,
            len: 0,
        })
    }

    /// Stored transitions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of transitions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Heap bytes reserved for the transitions: per transition two
    /// observations of `obs_dim` `f32`s, a `u32` action, an `f32` reward, a
    /// `bool` and a `u8` step count; nothing else grows with the capacity. Reserved up front but
    /// touched (resident) only as transitions arrive.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        (self.obs.capacity() + self.next_obs.capacity()) * size_of::<f32>()
            + self.actions.capacity() * size_of::<u32>()
            + self.rewards.capacity() * size_of::<f32>()
            + self.terminated.capacity() * size_of::<bool>()
            + self.steps.capacity() * size_of::<u8>()
    }

    /// Stores a one-step transition, overwriting the oldest one when full.
    pub fn push(
        &mut self,
        obs: &[f32],
        action: usize,
        reward: f32,
        next_obs: &[f32],
        terminated: bool,
    ) -> Result<(), AlgoError> {
        self.push_n_step(obs, action, reward, next_obs, terminated, 1)
    }

    /// Stores a transition over `steps` environment steps (`reward` is
    /// their discounted sum), overwriting the oldest one when full.
    pub fn push_n_step(
        &mut self,
        obs: &[f32],
        action: usize,
        reward: f32,
        next_obs: &[f32],
        terminated: bool,
        steps: u8,
    ) -> Result<(), AlgoError> {
        for (what, found) in [("obs", obs.len()), ("next_obs", next_obs.len())] {
            if found != self.obs_dim {
                return Err(AlgoError::ShapeMismatch {
                    what: format!("the transition's {what}"),
                    expected: format!("{} values", self.obs_dim),
                    found: format!("{found} values"),
                });
            }
        }
        let action = stored_action(action)?;
        let d = self.obs_dim;
        if self.len < self.capacity {
            self.obs.extend_from_slice(obs);
            self.next_obs.extend_from_slice(next_obs);
            self.actions.push(action);
            self.rewards.push(reward);
            self.terminated.push(terminated);
            self.steps.push(steps);
            self.len += 1;
        } else {
            let i = self.position;
            self.obs[i * d..(i + 1) * d].copy_from_slice(obs);
            self.next_obs[i * d..(i + 1) * d].copy_from_slice(next_obs);
            self.actions[i] = action;
            self.rewards[i] = reward;
            self.terminated[i] = terminated;
            self.steps[i] = steps;
        }
        self.position = (self.position + 1) % self.capacity;
        Ok(())
    }

    /// Fills `batch` with `batch_size` transitions drawn uniformly (with
    /// replacement). Errors when the buffer is empty.
    pub fn sample_into<R: Rng + ?Sized>(
        &self,
        batch_size: usize,
        rng: &mut R,
        batch: &mut ReplayBatch,
    ) -> Result<(), AlgoError> {
        if self.len == 0 {
            return Err(AlgoError::EmptyReplay { reason: "the buffer is empty" });
        }
        let d = self.obs_dim;
        batch.clear();
        for _ in 0..batch_size {
            let i = uniform_index(rng, self.len);
            batch.obs.extend_from_slice(&self.obs[i * d..(i + 1) * d]);
            batch.next_obs.extend_from_slice(&self.next_obs[i * d..(i + 1) * d]);
            batch.actions.push(i64::from(self.actions[i]));
            batch.rewards.push(self.rewards[i]);
            batch.terminated.push(if self.terminated[i] { 1.0 } else { 0.0 });
            batch.steps.push(self.steps[i]);
        }
        Ok(())
    }
}

/// An action index as the buffers store it (u32, half the memory of usize).
pub(super) fn stored_action(action: usize) -> Result<u32, AlgoError> {
    u32::try_from(action).map_err(|_| AlgoError::Unsupported {
        what: format!("action {action}"),
        reason: "actions are stored as u32".into(),
    })
}

const MAGIC: &[u8; 8] = b"RLHFRB02";

impl ReplayBuffer {
    /// The buffer as bytes: a magic tag, capacity, observation size, length
    /// and write position (u64), then each column, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let d = self.obs_dim;
        let mut out = Vec::with_capacity(40 + self.len * (8 * d + 10));
        out.extend_from_slice(MAGIC);
        for n in [self.capacity, self.obs_dim, self.len, self.position] {
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
        self.obs.iter().chain(&self.next_obs).for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        self.actions.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        self.rewards.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out.extend(self.terminated.iter().map(|&t| u8::from(t)));
        out.extend_from_slice(&self.steps);
        out
    }

    /// Reads [`ReplayBuffer::to_bytes`]'s format; errors say what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut reader = ByteReader { bytes, at: 0 };
        match reader.take(8)? {
            magic if magic == MAGIC => {}
            b"RLHFRB01" => {
                return Err("a replay buffer of an older version (without n-step counts): start a new run".into());
            }
            _ => return Err("not a replay buffer file (bad magic)".into()),
        }
        let mut header = [0usize; 4];
        for slot in &mut header {
            *slot = usize::try_from(reader.u64()?).map_err(|_| "header value too large".to_string())?;
        }
        let [capacity, obs_dim, len, position] = header;
        if capacity == 0 || len > capacity || position >= capacity || (len < capacity && position != len) {
            return Err(format!("inconsistent header: capacity {capacity}, len {len}, position {position}"));
        }
        let floats = len.checked_mul(obs_dim).ok_or("header value too large")?;
        let expected = 40 + floats * 8 + len * 10;
        if bytes.len() != expected {
            return Err(format!("{} bytes, the header implies {expected} (truncated?)", bytes.len()));
        }
        let mut f32s =
            |n: usize| -> Result<Vec<f32>, String> { (0..n).map(|_| reader.u32().map(f32::from_bits)).collect() };
        let obs = f32s(floats)?;
        let next_obs = f32s(floats)?;
        let actions = (0..len).map(|_| reader.u32()).collect::<Result<Vec<_>, _>>()?;
        let rewards = (0..len).map(|_| reader.u32().map(f32::from_bits)).collect::<Result<Vec<_>, _>>()?;
        let terminated = reader.take(len)?.iter().map(|&b| b != 0).collect();
        let steps = reader.take(len)?.to_vec();
        let mut buffer = Self { capacity, obs_dim, obs, next_obs, actions, rewards, terminated, steps, position, len };
        buffer.reserve_capacity();
        Ok(buffer)
    }

    fn reserve_capacity(&mut self) {
        let missing = self.capacity - self.len;
        self.obs.reserve_exact(missing * self.obs_dim);
        self.next_obs.reserve_exact(missing * self.obs_dim);
        self.actions.reserve_exact(missing);
        self.rewards.reserve_exact(missing);
        self.terminated.reserve_exact(missing);
        self.steps.reserve_exact(missing);
    }

    /// The observation size.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }
}

/// Reads little-endian values from a byte slice, erroring at its end.
pub(super) struct ByteReader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> ByteReader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or("unexpected end of data")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    pub(super) fn u64(&mut self) -> Result<u64, String> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    pub(super) fn u32(&mut self) -> Result<u32, String> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rlhf_env::rng::seeded_rng;

    #[test]
    fn heap_bytes_are_the_transitions_bytes() {
        // CartPole: 2 × 4 floats × 4 bytes + 4 (action) + 4 (reward) + 1 (flag) + 1 (steps) = 42 bytes.
        let buffer = ReplayBuffer::new(1_000_000, 4).unwrap();
        assert_eq!(buffer.heap_bytes(), 42_000_000);
        assert_eq!(ReplayBuffer::new(10, 3).unwrap().heap_bytes(), 10 * (2 * 3 * 4 + 10));
    }

    fn filled(capacity: usize, pushes: usize) -> ReplayBuffer {
        let mut buffer = ReplayBuffer::new(capacity, 2).unwrap();
        for k in 0..pushes {
            let v = k as f32;
            buffer.push(&[v, -v], k % 3, v * 10.0, &[v + 0.5, 0.0], k.is_multiple_of(5)).unwrap();
        }
        buffer
    }

    #[test]
    fn wraps_around_keeping_the_newest_transitions() {
        let buffer = filled(4, 10);
        assert_eq!(buffer.len(), 4);
        // Pushes 6..=9 survive; slot k % 4 holds push k.
        let mut rewards = buffer.rewards.clone();
        rewards.sort_by(f32::total_cmp);
        assert_eq!(rewards, vec![60.0, 70.0, 80.0, 90.0]);
        assert_eq!(&buffer.obs[2 * 2..3 * 2], &[6.0, -6.0]);
        assert_eq!(buffer.position, 2);
    }

    #[test]
    fn samples_are_consistent_transitions_and_cover_the_buffer() {
        let buffer = filled(8, 20);
        let mut rng = seeded_rng(0);
        let mut batch = ReplayBatch::default();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            buffer.sample_into(16, &mut rng, &mut batch).unwrap();
            assert_eq!(batch.len(), 16);
            for j in 0..16 {
                let v = batch.obs[2 * j];
                // Each field belongs to the same push k = v.
                assert_eq!(batch.obs[2 * j + 1], -v);
                assert_eq!(batch.rewards[j], v * 10.0);
                assert_eq!(batch.next_obs[2 * j], v + 0.5);
                assert_eq!(batch.actions[j], (v as i64) % 3);
                assert_eq!(batch.terminated[j], if (v as usize).is_multiple_of(5) { 1.0 } else { 0.0 });
                seen.insert(v as usize);
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), (12..20).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_batches() {
        let buffer = filled(32, 40);
        let draw = |seed| {
            let mut batch = ReplayBatch::default();
            buffer.sample_into(8, &mut seeded_rng(seed), &mut batch).unwrap();
            batch
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn bytes_round_trip_full_and_partial_buffers_and_reject_damage() {
        for pushes in [3, 10] {
            let buffer = filled(4, pushes);
            let bytes = buffer.to_bytes();
            let restored = ReplayBuffer::from_bytes(&bytes).unwrap();
            assert_eq!(restored.to_bytes(), bytes);
            let (mut a, mut b) = (ReplayBatch::default(), ReplayBatch::default());
            buffer.sample_into(8, &mut seeded_rng(1), &mut a).unwrap();
            restored.sample_into(8, &mut seeded_rng(1), &mut b).unwrap();
            assert_eq!(a, b);
        }
        let bytes = filled(4, 10).to_bytes();
        assert!(ReplayBuffer::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err().contains("truncated"));
        assert!(ReplayBuffer::from_bytes(b"RLHFRB02").unwrap_err().contains("end of data"));
        assert!(ReplayBuffer::from_bytes(b"RLHFRB01").unwrap_err().contains("older version"));
        let mut zero_capacity = bytes.clone();
        zero_capacity[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert!(ReplayBuffer::from_bytes(&zero_capacity).unwrap_err().contains("inconsistent header"));
        assert!(ReplayBuffer::from_bytes(&[0u8; 64]).unwrap_err().contains("bad magic"));
    }

    #[test]
    fn misuse_is_an_error() {
        assert!(ReplayBuffer::new(0, 2).is_err());
        let mut buffer = ReplayBuffer::new(2, 2).unwrap();
        let mut batch = ReplayBatch::default();
        assert!(buffer.sample_into(1, &mut seeded_rng(0), &mut batch).is_err());
        let err = buffer.push(&[1.0], 0, 0.0, &[1.0, 2.0], false).unwrap_err();
        assert!(err.to_string().contains("obs: expected 2 values, found 1"), "{err}");
    }
}
