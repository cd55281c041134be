//! CartPole-v1: balance a pole on a cart (Barto, Sutton & Anderson, 1983).
//!
//! The dynamics are Gymnasium's `gymnasium/envs/classic_control/cartpole.py`
//! operation for operation: the state is f64, every product and sum is grouped
//! as Python evaluates that file (left to right), and `sin`/`cos` are the C
//! library's, which is what numpy calls for a float64 scalar. Parity is
//! checked by `tests/gymnasium_parity.rs`: trajectories recorded from
//! Gymnasium 1.4 (`scripts/cartpole_parity_fixture.py`) are replayed and every
//! f64 of every state must match bit for bit over 500 steps, for both
//! integrators, including states far outside the termination bounds.

#[cfg(feature = "render")]
mod scene;
#[cfg(feature = "render")]
pub use scene::CartPoleScene;

use crate::env::{Env, EpisodePhase, Snapshot, Step};
use crate::error::EnvError;
use crate::rng::{EnvRng, seeded_rng, uniform_f64};
use crate::spaces::{BoxSpace, Discrete, Space};
use crate::wrappers::TimeLimit;

/// The episode terminates when `|x|` exceeds this (m).
pub const X_THRESHOLD: f64 = 2.4;
/// The episode terminates when `|theta|` exceeds this: 12 degrees, computed as
/// Gymnasium does (`12 * 2 * math.pi / 360`).
pub const THETA_THRESHOLD_RADIANS: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
/// Episode length of CartPole-v1 (applied by [`CartPole::v1`]'s [`TimeLimit`]).
pub const V1_MAX_EPISODE_STEPS: usize = 500;
/// Reset states are uniform in `[-RESET_BOUND, RESET_BOUND]^4`.
pub const RESET_BOUND: f64 = 0.05;

/// How the equations of motion are integrated over one step of `tau` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Integrator {
    /// Explicit Euler: positions advance with the old velocities (Gymnasium's default).
    #[default]
    Euler,
    /// Semi-implicit Euler: velocities first, then positions with the new velocities.
    SemiImplicitEuler,
}

/// Options of [`CartPole`], named as Gymnasium's attributes; the defaults
/// are CartPole-v1's. Changing the physics gives related tasks to fine-tune
/// on (e.g. a longer pole).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CartPoleConfig {
    /// Gravitational acceleration (m/s²), 9.8.
    pub gravity: f64,
    /// Mass of the cart (kg), 1.0.
    pub masscart: f64,
    /// Mass of the pole (kg), 0.1.
    pub masspole: f64,
    /// Half the pole's length (m), 0.5: Gymnasium's `length`.
    pub length: f64,
    /// Magnitude of the force of either action (N), 10.0.
    pub force_mag: f64,
    /// Seconds between state updates, 0.02.
    pub tau: f64,
    /// Integration scheme.
    pub integrator: Integrator,
    /// Gymnasium's `sutton_barto_reward`: 0 per step and -1 on termination,
    /// instead of +1 on every step including the terminating one.
    pub sutton_barto_reward: bool,
}

impl Default for CartPoleConfig {
    fn default() -> Self {
        Self {
            gravity: 9.8,
            masscart: 1.0,
            masspole: 0.1,
            length: 0.5,
            force_mag: 10.0,
            tau: 0.02,
            integrator: Integrator::Euler,
            sutton_barto_reward: false,
        }
    }
}

impl CartPoleConfig {
    /// Checks that every physical quantity is positive and finite.
    pub fn validate(&self) -> Result<(), EnvError> {
        let fields = [
            ("gravity", self.gravity),
            ("masscart", self.masscart),
            ("masspole", self.masspole),
            ("length", self.length),
            ("force_mag", self.force_mag),
            ("tau", self.tau),
        ];
        match fields.into_iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            Some((field, value)) => {
                Err(EnvError::InvalidConfig { field, reason: format!("must be positive and finite, got {value}") })
            }
            None => Ok(()),
        }
    }
}

/// The CartPole environment without a time limit; [`CartPole::v1`] adds it.
///
/// Observation `[x, x_dot, theta, theta_dot]` as f32 (the f64 state rounded);
/// actions `0` (push left) and `1` (push right). The episode terminates when
/// `|x| > 2.4` or `|theta| > 12°` after a step; the reward is 1.0 on every step,
/// the terminating one included.
#[derive(Debug, Clone)]
pub struct CartPole {
    config: CartPoleConfig,
    state: [f64; 4],
    rng: EnvRng,
    phase: EpisodePhase,
    observation_space: BoxSpace,
    action_space: Discrete,
}

impl CartPole {
    /// A CartPole with the given options; errors name an invalid field.
    pub fn new(config: CartPoleConfig) -> Result<Self, EnvError> {
        config.validate()?;
        Ok(Self::new_unchecked(config))
    }

    fn new_unchecked(config: CartPoleConfig) -> Self {
        let high = [(X_THRESHOLD * 2.0) as f32, f32::INFINITY, (THETA_THRESHOLD_RADIANS * 2.0) as f32, f32::INFINITY];
        Self {
            config,
            state: [0.0; 4],
            rng: seeded_rng(0),
            phase: EpisodePhase::NotStarted,
            observation_space: BoxSpace::from_valid_bounds(high.map(|h| -h).to_vec(), high.to_vec()),
            action_space: Discrete::new_nonzero(2),
        }
    }

    /// CartPole-v1 as `gymnasium.make("CartPole-v1")` builds it: default
    /// physics in a [`TimeLimit`] of 500 steps.
    pub fn v1() -> TimeLimit<CartPole> {
        TimeLimit::new(CartPole::default(), V1_MAX_EPISODE_STEPS)
    }

    /// The options this environment was built with.
    pub fn config(&self) -> &CartPoleConfig {
        &self.config
    }

    /// The exact f64 state `[x, x_dot, theta, theta_dot]`.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Puts the system in `state` and starts (or continues) an episode from
    /// it, as assigning `env.unwrapped.state` does in Gymnasium. Used to
    /// replay trajectories and to render arbitrary states.
    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = state;
        self.phase = EpisodePhase::Running;
    }

    /// The observation of the current state: each f64 rounded to f32.
    pub fn observation(&self) -> [f32; 4] {
        self.state.map(|v| v as f32)
    }

    /// One step of the equations of motion, without any episode bookkeeping.
    ///
    /// `push_right` selects `+force_mag` (action 1) or `-force_mag` (action 0).
    /// The grouping of every operation follows Gymnasium's `step` (and its
    /// `total_mass = masspole + masscart`, `polemass_length = masspole *
    /// length`); do not "simplify" it, a regrouped product drifts by an ulp.
    pub fn dynamics(state: [f64; 4], push_right: bool, config: &CartPoleConfig) -> [f64; 4] {
        let CartPoleConfig { gravity, masscart, masspole, length, force_mag, tau, integrator, .. } = *config;
        let total_mass = masspole + masscart;
        let polemass_length = masspole * length;
        let [x, x_dot, theta, theta_dot] = state;
        let force = if push_right { force_mag } else { -force_mag };
        let (sintheta, costheta) = theta.sin_cos();
        let temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass;
        let thetaacc = (gravity * sintheta - costheta * temp)
            / (length * (4.0 / 3.0 - masspole * (costheta * costheta) / total_mass));
        let xacc = temp - polemass_length * thetaacc * costheta / total_mass;
        match integrator {
            Integrator::Euler => {
                [x + tau * x_dot, x_dot + tau * xacc, theta + tau * theta_dot, theta_dot + tau * thetaacc]
            }
            Integrator::SemiImplicitEuler => {
                let x_dot = x_dot + tau * xacc;
                let theta_dot = theta_dot + tau * thetaacc;
                [x + tau * x_dot, x_dot, theta + tau * theta_dot, theta_dot]
            }
        }
    }

    /// Whether `state` is outside the allowed region (strict inequalities, as Gymnasium).
    #[allow(clippy::manual_range_contains)] // a NaN state is not terminal, as in Gymnasium; `!contains` would say it is
    pub fn is_terminal(state: &[f64; 4]) -> bool {
        let [x, _, theta, _] = *state;
        x < -X_THRESHOLD || x > X_THRESHOLD || theta < -THETA_THRESHOLD_RADIANS || theta > THETA_THRESHOLD_RADIANS
    }

    /// The state as a few lines of text: a header with the four values, the
    /// pole as a line of characters, the cart on its track.
    pub fn render_ascii(&self) -> String {
        const WIDTH: usize = 49;
        const POLE_ROWS: usize = 6;
        let [x, x_dot, theta, theta_dot] = self.state;
        let mut grid = vec![vec![' '; WIDTH]; POLE_ROWS + 2];
        // Track position of the cart's centre; the track spans ±X_THRESHOLD.
        let fraction = ((x + X_THRESHOLD) / (2.0 * X_THRESHOLD)).clamp(0.0, 1.0);
        let centre = (fraction * (WIDTH - 1) as f64).round() as usize;
        let pole_char = match theta {
            t if t > 0.1 => '/',
            t if t < -0.1 => '\\',
            _ => '|',
        };
        // A character cell is about twice as tall as it is wide.
        for k in 1..=POLE_ROWS {
            let along = k as f64;
            let col = centre as f64 + 2.0 * along * theta.sin();
            let row = POLE_ROWS as f64 - along * theta.cos();
            if (0.0..WIDTH as f64).contains(&col.round()) && (0.0..=POLE_ROWS as f64).contains(&row.round()) {
                grid[row.round() as usize][col.round() as usize] = pole_char;
            }
        }
        let cart_row = POLE_ROWS;
        for offset in -2i64..=2 {
            let col = centre as i64 + offset;
            if (0..WIDTH as i64).contains(&col) {
                grid[cart_row][col as usize] = if offset.abs() == 2 { '[' } else { '#' };
            }
        }
        if let Some(right) = grid[cart_row].get_mut(centre + 2) {
            *right = ']';
        }
        grid[POLE_ROWS + 1] = vec!['='; WIDTH];
        let mut text =
            format!("x={x:+.3} x_dot={x_dot:+.3} theta={:+.2}deg theta_dot={theta_dot:+.3}\n", theta.to_degrees());
        for row in grid {
            text.extend(row);
            text.push('\n');
        }
        text
    }
}

/// The complete state of a [`CartPole`] (see [`Snapshot`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CartPoleState {
    config: CartPoleConfig,
    state: [f64; 4],
    rng: EnvRng,
    phase: EpisodePhase,
}

impl Snapshot for CartPole {
    type State = CartPoleState;

    fn snapshot(&self) -> CartPoleState {
        CartPoleState { config: self.config, state: self.state, rng: self.rng.clone(), phase: self.phase }
    }

    fn restore(&mut self, snapshot: CartPoleState) {
        self.config = snapshot.config;
        self.state = snapshot.state;
        self.rng = snapshot.rng;
        self.phase = snapshot.phase;
    }
}

impl Default for CartPole {
    fn default() -> Self {
        Self::new_unchecked(CartPoleConfig::default())
    }
}

impl Env for CartPole {
    type Obs = [f32; 4];
    type Action = usize;
    type Info = ();
    type ObsSpace = BoxSpace;
    type ActionSpace = Discrete;

    fn id(&self) -> &str {
        "CartPole-v1"
    }

    fn observation_space(&self) -> &BoxSpace {
        &self.observation_space
    }

    fn action_space(&self) -> &Discrete {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> ([f32; 4], ()) {
        if let Some(seed) = seed {
            self.rng = seeded_rng(seed);
        }
        for value in &mut self.state {
            *value = uniform_f64(&mut self.rng, -RESET_BOUND, RESET_BOUND);
        }
        self.phase = EpisodePhase::Running;
        (self.observation(), ())
    }

    fn step(&mut self, action: usize) -> Result<Step<[f32; 4]>, EnvError> {
        if !self.action_space.contains(&action) {
            return Err(EnvError::InvalidAction {
                env: self.id().to_owned(),
                action: format!("{action:?}"),
                space: self.action_space.to_string(),
            });
        }
        self.phase.check_step(self.id())?;
        self.state = Self::dynamics(self.state, action == 1, &self.config);
        let terminated = Self::is_terminal(&self.state);
        if terminated {
            self.phase = EpisodePhase::Ended;
        }
        let reward = match (self.config.sutton_barto_reward, terminated) {
            (false, _) => 1.0,
            (true, false) => 0.0,
            (true, true) => -1.0,
        };
        Ok(Step { obs: self.observation(), reward, terminated, truncated: false, info: () })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    fn assert_close(found: [f64; 4], expected: [f64; 4]) {
        for (f, e) in found.iter().zip(expected) {
            assert!((f - e).abs() < EPS, "found {found:?}, expected {expected:?}");
        }
    }

    #[test]
    fn first_push_from_rest_matches_hand_computation() {
        // From rest, push right: temp = 10/1.1 = 100/11; the denominator is
        // 0.5 (4/3 - 0.1/1.1) = 41/66, so thetaacc = -(100/11)(66/41) = -600/41 and
        // xacc = 100/11 + 0.05 (600/41) / 1.1 = 400/41.
        let v1 = CartPoleConfig::default();
        let euler = CartPole::dynamics([0.0; 4], true, &v1);
        assert_close(euler, [0.0, 0.02 * 400.0 / 41.0, 0.0, -0.02 * 600.0 / 41.0]);
        // Semi-implicit Euler moves the positions with the new velocities.
        let semi =
            CartPole::dynamics([0.0; 4], true, &CartPoleConfig { integrator: Integrator::SemiImplicitEuler, ..v1 });
        assert_close(
            semi,
            [0.02 * 0.02 * 400.0 / 41.0, 0.02 * 400.0 / 41.0, -0.02 * 0.02 * 600.0 / 41.0, -0.02 * 600.0 / 41.0],
        );
        // Pushing left mirrors everything.
        let left = CartPole::dynamics([0.0; 4], false, &v1);
        assert_close(left, euler.map(|v| -v));
    }

    #[test]
    fn tilted_spinning_pole_matches_hand_computation() {
        // theta = 30°, theta_dot = 2, push left: sin = 1/2, cos = √3/2,
        // temp = (-10 + 0.05·4·0.5)/1.1 = -9,
        // thetaacc = (9.8·0.5 + 9·√3/2) / (0.5 (4/3 - 0.1·(3/4)/1.1)) = (4.9 + 4.5√3)·264/167,
        // xacc = -9 - 0.05·thetaacc·(√3/2)/1.1.
        let sqrt3 = 3f64.sqrt();
        let thetaacc = (4.9 + 4.5 * sqrt3) * 264.0 / 167.0;
        let xacc = -9.0 - 0.05 * thetaacc * (sqrt3 / 2.0) / 1.1;
        let theta = std::f64::consts::PI / 6.0;
        let next = CartPole::dynamics([0.5, -1.0, theta, 2.0], false, &CartPoleConfig::default());
        assert_close(next, [0.5 - 0.02, -1.0 + 0.02 * xacc, theta + 0.04, 2.0 + 0.02 * thetaacc]);
    }

    #[test]
    fn termination_is_strictly_beyond_the_thresholds() {
        // With zero velocities Euler keeps positions exactly, so the boundary
        // state after the step is the one we set.
        let mut env = CartPole::default();
        for (x, theta, terminal) in [
            (X_THRESHOLD, 0.0, false),
            (-X_THRESHOLD, 0.0, false),
            (X_THRESHOLD.next_up(), 0.0, true),
            ((-X_THRESHOLD).next_down(), 0.0, true),
            (0.0, THETA_THRESHOLD_RADIANS, false),
            (0.0, -THETA_THRESHOLD_RADIANS, false),
            (0.0, THETA_THRESHOLD_RADIANS.next_up(), true),
            (0.0, (-THETA_THRESHOLD_RADIANS).next_down(), true),
        ] {
            env.set_state([x, 0.0, theta, 0.0]);
            let step = env.step(1).unwrap();
            assert_eq!(env.state()[0], x);
            assert_eq!(env.state()[2], theta);
            assert_eq!(step.terminated, terminal, "x={x} theta={theta}");
            assert_eq!(step.reward, 1.0, "the terminating step is rewarded too");
            assert!(!step.truncated);
        }
    }

    #[test]
    fn a_longer_pole_falls_more_slowly_by_hand() {
        // With theta_dot = 0, temp = force / M does not involve the length, and
        // thetaacc = (g sin - cos temp) / (l (4/3 - m cos² / M)): doubling l
        // halves the angular acceleration.
        let short = CartPoleConfig::default();
        let long = CartPoleConfig { length: 1.0, ..short };
        let state = [0.0, 0.0, 0.1, 0.0];
        let acc = |config: &CartPoleConfig| CartPole::dynamics(state, true, config)[3] / config.tau;
        assert!((acc(&short) / acc(&long) - 2.0).abs() < 1e-12);
        let err = CartPole::new(CartPoleConfig { length: 0.0, ..short }).unwrap_err();
        assert_eq!(err.to_string(), "invalid value for `length`: must be positive and finite, got 0");
    }

    #[test]
    fn twelve_degrees_in_radians() {
        assert!((THETA_THRESHOLD_RADIANS - 0.20943951023931953).abs() < 1e-17);
    }

    #[test]
    fn step_after_termination_or_before_reset_is_an_error() {
        let mut env = CartPole::default();
        assert_eq!(env.step(0), Err(EnvError::NotReset { env: "CartPole-v1".into() }));
        env.set_state([X_THRESHOLD, 1.0, 0.0, 0.0]);
        assert!(env.step(1).unwrap().terminated);
        assert_eq!(env.step(1), Err(EnvError::EpisodeEnded { env: "CartPole-v1".into() }));
        env.reset(None);
        assert!(env.step(1).is_ok());
    }

    #[test]
    fn invalid_action_is_an_error_naming_the_space() {
        let mut env = CartPole::default();
        env.reset(Some(0));
        let err = env.step(2).unwrap_err();
        assert!(err.to_string().contains("action 2 is not in the action space Discrete(2)"), "{err}");
    }

    #[test]
    fn sutton_barto_reward() {
        let mut env = CartPole::new(CartPoleConfig { sutton_barto_reward: true, ..Default::default() }).unwrap();
        env.reset(Some(1));
        assert_eq!(env.step(0).unwrap().reward, 0.0);
        env.set_state([X_THRESHOLD, 1.0, 0.0, 0.0]);
        assert_eq!(env.step(0).unwrap().reward, -1.0);
    }

    #[test]
    fn reset_is_uniform_in_the_reset_box_and_seeded() {
        let mut env = CartPole::default();
        let (first, ()) = env.reset(Some(123));
        assert!(env.state().iter().all(|v| v.abs() <= RESET_BOUND));
        let (again, ()) = env.reset(Some(123));
        assert_eq!(first, again);
        let (other, ()) = env.reset(None);
        assert_ne!(first, other, "reset(None) continues the stream");
    }

    #[test]
    fn seed_stream_is_pinned() {
        // Regression pin: PCG-64 seeded by seed_from_u64 and uniform_f64 are
        // value-stable, so this holds on every machine. If it changes,
        // every recorded seed in the project changes meaning.
        let mut env = CartPole::default();
        let (obs, ()) = env.reset(Some(42));
        assert_eq!(obs.map(f32::to_bits), PINNED_SEED_42);
    }
    const PINNED_SEED_42: [u32; 4] = [3168799355, 3168123211, 1020636347, 993424178];

    #[test]
    fn a_restored_snapshot_continues_identically() {
        let mut env = CartPole::default();
        env.reset(Some(9));
        env.step(1).unwrap();
        let snapshot = env.snapshot();
        let run = |env: &mut CartPole| {
            let mut out = Vec::new();
            for t in 0..300 {
                match env.step(t % 3 % 2) {
                    Ok(step) if step.terminated => out.push(env.reset(None).0),
                    Ok(step) => out.push(step.obs),
                    Err(e) => panic!("{e}"),
                }
            }
            out
        };
        let expected = run(&mut env);
        let mut restored = CartPole::default();
        restored.restore(snapshot);
        assert_eq!(run(&mut restored), expected);
    }

    #[test]
    fn observation_rounds_the_f64_state() {
        let mut env = CartPole::default();
        env.set_state([0.1, -0.2, 0.3, 1.0 / 3.0]);
        assert_eq!(env.observation(), [0.1f32, -0.2, 0.3, 1.0f32 / 3.0]);
    }

    #[test]
    fn ascii_rendering_places_cart_and_pole() {
        let mut env = CartPole::default();
        env.set_state([0.0, 0.0, 0.0, 0.0]);
        let upright = env.render_ascii();
        let lines: Vec<&str> = upright.lines().collect();
        assert!(lines[0].starts_with("x=+0.000"));
        assert_eq!(lines[7].find("[###]"), Some(22), "{upright}");
        assert_eq!(lines[1].find('|'), Some(24), "{upright}");
        env.set_state([2.4, 0.0, 0.2, 0.0]);
        let right = env.render_ascii();
        assert!(right.lines().nth(7).unwrap().trim_end().ends_with("[##"), "{right}");
        assert!(right.contains('/'), "{right}");
    }
}
