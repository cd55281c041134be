//! Observation and action spaces: the sets an environment's values live in.
//!
//! Like Gymnasium's spaces, each can tell whether it [`contains`](Space::contains)
//! a value and [`sample`](Space::sample) one; unlike them, the RNG is passed in,
//! so sampling is reproducible without global state. A goal-conditioned
//! (`Dict`-like) space is added by the goal-environment layer.

mod boxed;
mod discrete;
mod multi_binary;

pub use boxed::BoxSpace;
pub use discrete::Discrete;
pub use multi_binary::MultiBinary;

use std::fmt;

use rand::Rng;

/// A set of values of type `T`.
pub trait Space<T>: fmt::Debug + fmt::Display + Clone {
    /// Whether `value` is an element of the set.
    fn contains(&self, value: &T) -> bool;

    /// A random element, drawn with `rng`.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> T;
}
