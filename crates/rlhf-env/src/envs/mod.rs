//! The environments themselves.

pub mod cartpole;
