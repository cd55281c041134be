"""Stable-Baselines3 peer of `cargo xtask bench cartpole`: DQN on
CartPole-v1 with rl-baselines3-zoo's tuned hyperparameters, one thread,
evaluated the same way (10 greedy episodes every 2,500 steps; stop at the
first mean >= 475; then 100 fresh greedy episodes).

    python benches/peers/sb3_dqn_cartpole.py --seeds 3 [--json]
"""

import argparse
import json
import time

import gymnasium
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback

# rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1.
ZOO = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)
SOLVED = 475.0


def greedy_returns(model, episodes: int, seed: int) -> list:
    env = gymnasium.make("CartPole-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns


class StopWhenSolved(BaseCallback):
    def __init__(self, every: int, started: float):
        super().__init__()
        self.every, self.started = every, started
        self.solved_at, self.solved_seconds = None, None
        self.evaluations = []

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every != 0:
            return True
        mean = float(np.mean(greedy_returns(self.model, 10, 10_000 + self.num_timesteps)))
        self.evaluations.append([self.num_timesteps, mean])
        if mean >= SOLVED:
            self.solved_at, self.solved_seconds = self.num_timesteps, time.perf_counter() - self.started
            return False
        return True


def run(seed: int, steps: int) -> dict:
    started = time.perf_counter()
    model = DQN("MlpPolicy", gymnasium.make("CartPole-v1"), seed=seed, verbose=0, device="cpu", **ZOO)
    callback = StopWhenSolved(2_500, started)
    model.learn(total_timesteps=steps, callback=callback)
    wall = time.perf_counter() - started
    final = greedy_returns(model, 100, 1_000_000 + seed)
    return {
        "seed": seed,
        "solved_at_step": callback.solved_at,
        "seconds_to_solve": callback.solved_seconds,
        "wall_seconds": wall,
        "steps": model.num_timesteps,
        "updates": model._n_updates,
        "final_mean_return": float(np.mean(final)),
        "final_solved": float(np.mean(final)) >= SOLVED,
        "evaluations": callback.evaluations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [run(seed, args.steps) for seed in range(args.seeds)]
    result = {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__, "runs": runs}
    if args.json:
        print(json.dumps(result))
    else:
        for r in runs:
            print(r)


if __name__ == "__main__":
    main()
