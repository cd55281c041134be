"""PyTorch peer of `benches/dqn_update.rs`: one DQN gradient step and one
batch-1 greedy action, on one thread, timed the same way (median of many).

The step mirrors rlhf's `Dqn::gradient_step` and Stable-Baselines3's
`DQN.train`: batch 64 from a filled buffer, Q(s, a) of the online network,
target r + γ (1 − terminated) max_a' Q_target(s', a') without gradients,
Huber loss (or MSE), backward, gradient-norm clipping at 10, Adam step.

    python benches/peers/torch_dqn_update.py [--json]
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn


def mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def median_seconds(fn, repeats: int, inner: int) -> float:
    """Median over `repeats` timings of `inner` calls, per call."""
    for _ in range(inner):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def gradient_step_seconds(hidden: int, loss_kind: str, clip: bool) -> float:
    torch.manual_seed(0)
    online, target = mlp(hidden), mlp(hidden)
    target.load_state_dict(online.state_dict())
    optimizer = torch.optim.Adam(online.parameters(), lr=1e-4)
    buffer = 5_000
    obs = torch.randn(buffer, 4)
    next_obs = torch.randn(buffer, 4)
    actions = torch.randint(0, 2, (buffer, 1))
    rewards = torch.ones(buffer)
    terminated = (torch.rand(buffer) < 0.05).float()
    loss_fn = nn.SmoothL1Loss() if loss_kind == "huber" else nn.MSELoss()

    def step():
        idx = torch.randint(0, buffer, (64,))
        with torch.no_grad():
            next_q = target(next_obs[idx]).max(dim=1).values
            y = rewards[idx] + 0.99 * (1.0 - terminated[idx]) * next_q
        q = online(obs[idx]).gather(1, actions[idx]).squeeze(1)
        loss = loss_fn(q, y)
        optimizer.zero_grad()
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(online.parameters(), 10.0)
        optimizer.step()
        return loss.item()

    return median_seconds(step, repeats=30, inner=50)


def greedy_action_seconds(hidden: int) -> float:
    torch.manual_seed(0)
    net = mlp(hidden)
    obs = [0.01, -0.2, 0.03, 0.4]

    def act():
        with torch.no_grad():
            return int(net(torch.tensor([obs], dtype=torch.float32)).argmax(dim=1).item())

    return median_seconds(act, repeats=30, inner=500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {
        "torch": torch.__version__,
        "gradient_step_us": {
            "64x64_huber_clip": 1e6 * gradient_step_seconds(64, "huber", True),
            "64x64_mse": 1e6 * gradient_step_seconds(64, "mse", False),
            "256x256_huber_clip": 1e6 * gradient_step_seconds(256, "huber", True),
        },
        "greedy_action_us": {
            "64x64": 1e6 * greedy_action_seconds(64),
            "256x256": 1e6 * greedy_action_seconds(256),
        },
    }
    if args.json:
        print(json.dumps(results))
    else:
        for group in ("gradient_step_us", "greedy_action_us"):
            for name, value in results[group].items():
                print(f"{group[:-3]} {name}: {value:.1f} µs")


if __name__ == "__main__":
    main()
