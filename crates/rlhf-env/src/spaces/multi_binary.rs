//! [`MultiBinary`]: vectors of 0s and 1s (Gymnasium's `MultiBinary`).

use std::fmt;

use rand::Rng;

use super::Space;
use crate::error::EnvError;

/// Vectors of `n` bits, each 0 or 1, as Gymnasium's `MultiBinary(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MultiBinary {
    n: usize,
}

impl MultiBinary {
    /// The space `{0, 1}^n`; `n` must be at least 1.
    pub fn new(n: usize) -> Result<Self, EnvError> {
        if n == 0 {
            return Err(EnvError::InvalidConfig { field: "MultiBinary.n", reason: "must be at least 1".into() });
        }
        Ok(Self { n })
    }

    /// The number of bits.
    pub fn n(&self) -> usize {
        self.n
    }
}

impl Space<Vec<u8>> for MultiBinary {
    fn contains(&self, value: &Vec<u8>) -> bool {
        value.len() == self.n && value.iter().all(|&bit| bit <= 1)
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u8> {
        let mut bits = Vec::with_capacity(self.n);
        while bits.len() < self.n {
            let word = rng.next_u64();
            let take = (self.n - bits.len()).min(64);
            bits.extend((0..take).map(|i| ((word >> i) & 1) as u8));
        }
        bits
    }
}

/// Bits as floats (0.0 or 1.0), the form a network reads (bit-flipping's observations).
impl Space<Vec<f32>> for MultiBinary {
    fn contains(&self, value: &Vec<f32>) -> bool {
        value.len() == self.n && value.iter().all(|&bit| bit == 0.0 || bit == 1.0)
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f32> {
        Space::<Vec<u8>>::sample(self, rng).into_iter().map(f32::from).collect()
    }
}

impl fmt::Display for MultiBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MultiBinary({})", self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng;

    #[test]
    fn contains_checks_length_and_values() {
        let space = MultiBinary::new(3).unwrap();
        assert!(space.contains(&vec![0, 1, 1]));
        assert!(!space.contains(&vec![0, 1]));
        assert!(!space.contains(&vec![0, 2, 1]));
        assert!(space.contains(&vec![0.0f32, 1.0, 1.0]));
        assert!(!space.contains(&vec![0.0f32, 0.5, 1.0]));
    }

    #[test]
    fn samples_are_members_and_bits_are_balanced() {
        let space = MultiBinary::new(100).unwrap();
        let mut rng = seeded_rng(1);
        let mut ones = 0usize;
        for _ in 0..100 {
            let bits: Vec<u8> = space.sample(&mut rng);
            assert!(space.contains(&bits));
            ones += bits.iter().map(|&b| usize::from(b)).sum::<usize>();
        }
        // 10^4 fair bits: sd 50.
        assert!((4_800..5_200).contains(&ones), "{ones}");
    }
}
