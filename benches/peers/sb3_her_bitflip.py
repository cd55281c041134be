"""Stable-Baselines3 peer of `cargo xtask bench her`: DQN with
`HerReplayBuffer` on `BitFlippingEnv`, with our bit-flipping preset's
settings (`DqnConfig::bit_flipping`: one 256-unit layer, lr 1e-3, batch 128,
γ 0.98, target copied every 100 steps, ε 1 → 0.02 over the first 10%,
learning from step 200, `future` with k = 4), one thread. Evaluates 100
greedy episodes every budget/50 steps and stops at the first with success
≥ 0.99, then 100 fresh episodes.

    python benches/peers/sb3_her_bitflip.py --bits 10 --steps 15000 [--seed 0] [--fixed-goal] [--json]

SB3's own `BitFlippingEnv` always asks for the all-ones goal; the hindsight
paper's task, and ours, draws a new goal every episode (different from the
start state). `RandomGoalBitFlipping` is that task; `--fixed-goal` runs SB3's.
"""

import argparse
import json
import time

import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import DQN, HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.envs import BitFlippingEnv


class RandomGoalBitFlipping(BitFlippingEnv):
    """Bit flipping as in the hindsight paper: a uniform goal per episode, never the start state."""

    def reset(self, *, seed=None, options=None):
        _, info = super().reset(seed=seed, options=options)
        self.desired_goal = self._obs_space.sample()
        while np.array_equal(self.desired_goal, self.state):
            self.desired_goal = self._obs_space.sample()
        return self._get_obs(), info


def make_env(n_bits: int, fixed_goal: bool):
    kind = BitFlippingEnv if fixed_goal else RandomGoalBitFlipping
    return kind(n_bits=n_bits, continuous=False, max_steps=n_bits)


def success_rate(model, n_bits: int, episodes: int, seed: int, fixed_goal: bool) -> float:
    env = make_env(n_bits, fixed_goal)
    env.reset(seed=seed)
    successes = 0
    for _ in range(episodes):
        obs, _ = env.reset()
        done, info = False, {}
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        successes += bool(info.get("is_success", False))
    return successes / episodes


class StopWhenSolved(BaseCallback):
    def __init__(self, n_bits: int, every: int, started: float, fixed_goal: bool):
        super().__init__()
        self.n_bits, self.every, self.started, self.fixed_goal = n_bits, every, started, fixed_goal
        self.solved_at, self.solved_seconds = None, None

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every != 0:
            return True
        if success_rate(self.model, self.n_bits, 100, self.num_timesteps, self.fixed_goal) >= 0.99:
            self.solved_at, self.solved_seconds = self.num_timesteps, time.perf_counter() - self.started
            return False
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bits", type=int, default=10)
    parser.add_argument("--steps", type=int, default=15_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed-goal", action="store_true", help="SB3's BitFlippingEnv: the goal is always all ones")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = make_env(args.bits, args.fixed_goal)
    started = time.perf_counter()
    model = DQN(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_rate=1e-3,
        buffer_size=1_000_000,
        learning_starts=200,
        batch_size=128,
        gamma=0.98,
        train_freq=1,
        gradient_steps=1,
        target_update_interval=100,
        exploration_fraction=0.1,
        exploration_final_eps=0.02,
        policy_kwargs=dict(net_arch=[256]),
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    callback = StopWhenSolved(args.bits, max(args.steps // 50, 100), started, args.fixed_goal)
    model.learn(total_timesteps=args.steps, callback=callback)
    wall = time.perf_counter() - started
    result = {
        "stable_baselines3": stable_baselines3.__version__,
        "bits": args.bits,
        "fixed_goal": args.fixed_goal,
        "budget": args.steps,
        "seed": args.seed,
        "steps": model.num_timesteps,
        "solved_at_step": callback.solved_at,
        "seconds_to_solve": callback.solved_seconds,
        "wall_seconds": wall,
        "final_success_rate": success_rate(model, args.bits, 100, 1_000_000 + args.seed, args.fixed_goal),
    }
    print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    main()
