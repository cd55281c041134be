//! Tabular Q-learning and SARSA over discrete (or discretised) observations.
//!
//! Q-learning (Watkins 1989) updates towards the greedy value of the next state,
//! `Q(s,a) ← Q(s,a) + α [r + γ max_a' Q(s',a') − Q(s,a)]`; SARSA updates
//! towards the value of the action it will actually take next,
//! `Q(s,a) ← Q(s,a) + α [r + γ Q(s',a') − Q(s,a)]` (on-policy). A terminated
//! transition has no bootstrap term; a truncated one keeps it.

mod discretize;
mod learner;

pub use discretize::{BoxDiscretizer, Discretize, IdentityDiscretizer};
pub use learner::{QTable, TabularConfig, TabularMethod, TabularStats};
