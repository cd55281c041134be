//! CartPole parity with Gymnasium, bit for bit.
//!
//! `data/cartpole_gymnasium.txt` was recorded from Gymnasium 1.4.0 (numpy
//! 2.4.6) by `scripts/cartpole_parity_fixture.py`: six start states (reset-like,
//! wide, at rest) with 500 random actions each, for both integrators, stepping
//! on past termination so that large angles are covered. Every f64 of every
//! state must equal Gymnasium's exactly.

use rlhf_env::{CartPole, CartPoleConfig, Env, Integrator};

const FIXTURE: &str = include_str!("data/cartpole_gymnasium.txt");

struct Row {
    integrator: Integrator,
    trajectory: usize,
    step: usize,
    action: Option<usize>,
    state: [f64; 4],
}

fn parse(line_number: usize, line: &str) -> Row {
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 8, "line {line_number}: {line}");
    let integrator = match fields[0] {
        "euler" => Integrator::Euler,
        "semi-implicit" => Integrator::SemiImplicitEuler,
        other => panic!("line {line_number}: unknown integrator {other}"),
    };
    let number = |s: &str| s.parse::<usize>().unwrap_or_else(|e| panic!("line {line_number}: {s}: {e}"));
    let bits =
        |s: &str| f64::from_bits(u64::from_str_radix(s, 16).unwrap_or_else(|e| panic!("line {line_number}: {s}: {e}")));
    Row {
        integrator,
        trajectory: number(fields[1]),
        step: number(fields[2]),
        action: (fields[3] != "-").then(|| number(fields[3])),
        state: [bits(fields[4]), bits(fields[5]), bits(fields[6]), bits(fields[7])],
    }
}

fn rows() -> Vec<Row> {
    FIXTURE.lines().enumerate().filter(|(_, line)| !line.starts_with('#')).map(|(i, line)| parse(i + 1, line)).collect()
}

#[test]
fn dynamics_match_gymnasium_bit_for_bit_over_500_steps() {
    let rows = rows();
    let mut state = [0.0; 4];
    let mut checked = 0;
    let mut trajectories = 0;
    for row in &rows {
        match row.action {
            None => {
                state = row.state;
                trajectories += 1;
            }
            Some(action) => {
                state = CartPole::dynamics(
                    state,
                    action == 1,
                    &CartPoleConfig { integrator: row.integrator, ..Default::default() },
                );
                assert_eq!(
                    state.map(f64::to_bits),
                    row.state.map(f64::to_bits),
                    "{:?} trajectory {} step {}: ours {state:?}, Gymnasium {:?}",
                    row.integrator,
                    row.trajectory,
                    row.step,
                    row.state
                );
                checked += 1;
            }
        }
    }
    assert_eq!((trajectories, checked), (12, 12 * 500));
}

#[test]
fn env_step_matches_gymnasium_until_termination() {
    // The same replay through the Env API: observations are Gymnasium's
    // float32 rounding of its state, and termination comes on the same step.
    let rows = rows();
    let mut env = CartPole::default();
    let mut ended = false;
    let mut terminations = 0;
    for row in &rows {
        match row.action {
            None => {
                env = CartPole::new(CartPoleConfig { integrator: row.integrator, ..Default::default() }).unwrap();
                env.reset(Some(0));
                env.set_state(row.state);
                ended = false;
            }
            Some(_) if ended => {}
            Some(action) => {
                let step = env.step(action).unwrap();
                assert_eq!(env.state().map(f64::to_bits), row.state.map(f64::to_bits));
                assert_eq!(step.obs, row.state.map(|v| v as f32));
                assert_eq!(step.terminated, CartPole::is_terminal(&row.state));
                ended = step.terminated;
                terminations += usize::from(ended);
            }
        }
    }
    assert!(terminations >= 10, "most random-action trajectories fall: {terminations}");
}
