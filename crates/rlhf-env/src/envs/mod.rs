//! The environments themselves.

pub mod bit_flipping;
pub mod cartpole;
pub mod four_rooms;
