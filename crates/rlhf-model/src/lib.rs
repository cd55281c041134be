//! The model layer: Q-networks written in burn and generic over its
//! `Backend`, text featurisation for the voice-assistant environments, and
//! checkpoints.
//!
//! Architecture invariant: this crate depends on `rlhf-env` (for spaces and
//! environment metadata) and on burn, never on `rlhf-algo` or above.
//!
//! It is empty until the Q-network issue (#4) fills it; nothing here pretends
//! to work before then.
