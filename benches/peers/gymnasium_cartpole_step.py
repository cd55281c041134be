"""Gymnasium peer of `benches/env_step.rs`: CartPole-v1 steps per second,
driven by the same fixed controller as `rlhf_bench::cartpole_controller`,
resets included.

    python benches/peers/gymnasium_cartpole_step.py [--json]

`make` is `gymnasium.make("CartPole-v1")` with its default wrappers (time
limit, order enforcing, passive checker); `unwrapped` is the bare class;
`vector_N` is Gymnasium's numpy-vectorised CartPole,
`gymnasium.make_vec("CartPole-v1", num_envs=N, vectorization_mode="vector_entry_point")`,
in environment steps (N per call) per second, the same controller computed
on the whole batch.
"""

import argparse
import json
import statistics
import time

import gymnasium
import numpy


def controller(obs) -> int:
    # Same rule as rlhf_bench::cartpole_controller.
    return 1 if obs[2] + 0.5 * obs[3] + 0.01 * obs[0] + 0.1 * obs[1] > 0.0 else 0


def steps_per_second(env, steps: int, repeats: int) -> float:
    obs, _ = env.reset(seed=0)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(controller(obs))
            if terminated or truncated:
                obs, _ = env.reset()
        samples.append(steps / (time.perf_counter() - start))
    return statistics.median(samples)


def vector_steps_per_second(num_envs: int, env_steps: int, repeats: int) -> float:
    env = gymnasium.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=0)
    calls = max(1, env_steps // num_envs)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            push = obs[:, 2] + 0.5 * obs[:, 3] + 0.01 * obs[:, 0] + 0.1 * obs[:, 1] > 0.0
            obs, _, _, _, _ = env.step(push.astype(numpy.int64))
        samples.append(calls * num_envs / (time.perf_counter() - start))
    env.close()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    made = gymnasium.make("CartPole-v1")
    results = {
        "gymnasium": gymnasium.__version__,
        "steps_per_second": {
            "make": steps_per_second(made, 10_000, 15),
            "unwrapped": steps_per_second(made.unwrapped, 10_000, 15),
            **{f"vector_{n}": vector_steps_per_second(n, 400_000, 5) for n in (64, 256, 4096)},
        },
    }
    if args.json:
        print(json.dumps(results))
    else:
        for name, value in results["steps_per_second"].items():
            print(f"{name}: {value / 1e3:.1f} k steps/s")


if __name__ == "__main__":
    main()
