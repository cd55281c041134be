//! [`Discrete`]: the integers `0..n` (Gymnasium's `Discrete`).

use std::fmt;

use rand::Rng;

use super::Space;
use crate::error::EnvError;
use crate::rng::uniform_index;

/// The integers `0..n`, as Gymnasium's `Discrete(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Discrete {
    n: usize,
}

impl Discrete {
    /// The space `{0, 1, ..., n - 1}`; `n` must be at least 1.
    pub fn new(n: usize) -> Result<Self, EnvError> {
        if n == 0 {
            return Err(EnvError::InvalidConfig { field: "Discrete.n", reason: "must be at least 1".into() });
        }
        Ok(Self { n })
    }

    /// `Discrete(n)` for an `n` the caller knows to be at least 1.
    pub(crate) const fn new_nonzero(n: usize) -> Self {
        assert!(n > 0);
        Self { n }
    }

    /// The number of elements.
    pub fn n(&self) -> usize {
        self.n
    }
}

impl Space<usize> for Discrete {
    fn contains(&self, value: &usize) -> bool {
        *value < self.n
    }

    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        uniform_index(rng, self.n)
    }
}

impl fmt::Display for Discrete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Discrete({})", self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng;

    #[test]
    fn contains_exactly_zero_to_n_minus_one() {
        let space = Discrete::new(3).unwrap();
        assert!([0, 1, 2].iter().all(|a| space.contains(a)));
        assert!(!space.contains(&3));
        assert_eq!(space.to_string(), "Discrete(3)");
    }

    #[test]
    fn samples_every_element() {
        let space = Discrete::new(4).unwrap();
        let mut rng = seeded_rng(0);
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[space.sample(&mut rng)] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn empty_space_is_an_error() {
        assert!(matches!(Discrete::new(0), Err(EnvError::InvalidConfig { field: "Discrete.n", .. })));
    }
}
