"""Record Gymnasium CartPole-v1 trajectories as exact f64 bit patterns.

The Rust test `crates/rlhf-env/tests/gymnasium_parity.rs` replays the same
start states and action sequences and demands bit-for-bit equal states.

    python3 -m venv /tmp/gym && /tmp/gym/bin/pip install gymnasium numpy
    /tmp/gym/bin/python scripts/cartpole_parity_fixture.py > crates/rlhf-env/tests/data/cartpole_gymnasium.txt

Termination is ignored on purpose (the unwrapped env keeps integrating), so the
pole swings through large angles and the sin/cos of large arguments are covered.
"""

import math
import struct
import sys
import warnings

import gymnasium as gym
import numpy as np

STEPS = 500


def bits(value: float) -> str:
    return struct.pack(">d", float(value)).hex()


def main() -> None:
    warnings.simplefilter("ignore")
    gym.logger.min_level = 40
    rng = np.random.default_rng(20261123)
    starts = []
    for _ in range(3):  # the reset distribution
        starts.append(rng.uniform(-0.05, 0.05, size=4))
    for _ in range(2):  # wide states: large velocities, angles past the threshold
        starts.append(rng.uniform([-2.4, -3.0, -0.6, -4.0], [2.4, 3.0, 0.6, 4.0]))
    starts.append(np.array([0.0, 0.0, 0.0, 0.0]))

    print(f"# gymnasium {gym.__version__} numpy {np.__version__} python {sys.version.split()[0]}")
    print("# integrator trajectory step action x x_dot theta theta_dot (f64 bits, big-endian hex; step 0 = start)")
    libm_mismatch = 0
    for integrator in ("euler", "semi-implicit"):
        for traj, start in enumerate(starts):
            env = gym.make("CartPole-v1").unwrapped
            env.kinematics_integrator = integrator
            env.reset(seed=traj)
            env.state = np.array(start, dtype=np.float64)
            print(integrator, traj, 0, "-", *(bits(v) for v in env.state))
            for step in range(1, STEPS + 1):
                action = int(rng.integers(0, 2))
                theta = env.state[2]
                if np.cos(theta) != math.cos(theta) or np.sin(theta) != math.sin(theta):
                    libm_mismatch += 1
                env.step(action)
                print(integrator, traj, step, action, *(bits(v) for v in env.state))
    print(f"# numpy sin/cos differed from the C library's on {libm_mismatch} steps", file=sys.stderr)


if __name__ == "__main__":
    main()
