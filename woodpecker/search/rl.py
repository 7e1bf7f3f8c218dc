"""Reinforcement-learning searcher: a PPO agent (stable-baselines3) that walks the knob space, ask/tell.

Why PPO: the action space is discrete and multi-dimensional (one move per knob), rewards arrive in batches from
real measurements, and an on-policy method with clipped updates is stable with the few hundred transitions a
tuning session yields; Chameleon (ICLR 2020) used PPO for the same job.

    state   knob indices (normalized, 12 slots, masked) + operator features (family, log extents, log FLOPs)
            + device features (cores, vector lanes, simulated) + position in the episode
    action  for every knob: previous value, keep, next value  (MultiDiscrete([3] * 12))
    reward  log(cost(previous point) / cost(new point)); -1 for a failed candidate, -0.5 for an invalid move
            (rejected by the space's constraints before any build)
    episode 8 moves starting from the best point found so far (a random valid point with probability 0.2)

The tuning loop calls propose(n) / observe(points, costs); transitions are buffered until their rewards are known
and fed to PPO's rollout buffer in order; the policy trains every `n_steps` transitions. Because the observation
and action layouts are the same for every operator, a policy saved after one task warm-starts the next
(`policy_path`): parameters are stored as an .npz of arrays (no pickle).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from woodpecker.search.base import SearchContext, SearcherBase, register
from woodpecker.space.space import Point, point_key

MAX_KNOBS = 12
# Appended to, never reordered: a saved policy's input layer is tied to these slots (one of another size is not loaded).
FAMILIES = ("conv2d_nchwc", "conv2d", "depthwise_nchwc", "dense", "dense_packed", "batch_matmul", "pool2d",
            "global_pool", "row_reduce", "injective", "conv2d_winograd")
OBS_DIM = 2 * MAX_KNOBS + len(FAMILIES) + 6 + 4 + 1 + 3 + 1
EPISODE = 8
INVALID_REWARD = -0.5
FAILED_REWARD = -1.0


def _dummy_env():
    import gymnasium as gym

    class _Spaces(gym.Env):
        """Only carries the spaces: PPO is driven through its rollout buffer, never through env.step."""

        observation_space = gym.spaces.Box(-5.0, 5.0, (OBS_DIM,), np.float32)
        action_space = gym.spaces.MultiDiscrete([3] * MAX_KNOBS)

        def reset(self, *, seed=None, options=None):
            return np.zeros(OBS_DIM, np.float32), {}

        def step(self, action):  # pragma: no cover - never called
            raise RuntimeError("the RL searcher is driven ask/tell, not through env.step")

    return _Spaces()


@register("rl")
class RLSearcher(SearcherBase):
    name = "rl"

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        import torch
        from stable_baselines3 import PPO
        from stable_baselines3.common.logger import configure
        from stable_baselines3.common.vec_env import DummyVecEnv

        opts = ctx.options
        torch.manual_seed(ctx.seed)
        self.n_steps = int(opts.get("n_steps", 64))
        self.oversample = int(opts.get("oversample", 4))
        self.policy_path = opts.get("policy_path")
        self.model = PPO("MlpPolicy", DummyVecEnv([_dummy_env]), n_steps=self.n_steps, batch_size=32, n_epochs=4,
                         learning_rate=float(opts.get("learning_rate", 3e-4)), gamma=0.9, gae_lambda=0.9,
                         ent_coef=0.01, seed=ctx.seed, device="cpu", verbose=0,
                         policy_kwargs={"net_arch": [64, 64]})
        self.model.set_logger(configure(None, []))
        self.model._current_progress_remaining = 1.0
        if self.policy_path and os.path.exists(self.policy_path):
            self._load_policy(self.policy_path)
        self.costs: dict[str, float] = {point_key(p): c for p, c in ctx.history}
        self.state: Point = dict(self.best[1]) if self.best else dict(self.space.default)
        self.step = 0
        self.trajectory: list[dict] = []  # transitions in order; a transition is complete once it has a reward
        self.trained_steps = 0

    # -- observation -------------------------------------------------------------------------------------------
    def _obs(self, point: Point) -> np.ndarray:
        f = self.ctx.features
        v = np.zeros(OBS_DIM, np.float32)
        for i, knob in enumerate(self.space.knobs[:MAX_KNOBS]):
            n = len(knob.values)
            v[i] = knob.values.index(point[knob.name]) / (n - 1) if n > 1 else 0.0
            v[MAX_KNOBS + i] = 1.0
        base = 2 * MAX_KNOBS
        fam = f.get("family", self.space.family)
        if fam in FAMILIES:
            v[base + FAMILIES.index(fam)] = 1.0
        base += len(FAMILIES)
        for i, e in enumerate(list(f.get("spatial", ()))[:6]):
            v[base + i] = math.log2(max(e, 1)) / 12.0
        base += 6
        for i, e in enumerate(list(f.get("reduction", ()))[:4]):
            v[base + i] = math.log2(max(e, 1)) / 12.0
        base += 4
        v[base] = math.log10(max(f.get("flops", 1), 1)) / 12.0
        v[base + 1] = f.get("cores", 1) / 64.0
        v[base + 2] = f.get("lanes", 8) / 16.0
        v[base + 3] = 1.0 if f.get("simulated") else 0.0
        v[base + 4] = self.step / EPISODE
        return v

    def _move(self, point: Point, action: np.ndarray) -> Point:
        out = dict(point)
        for i, knob in enumerate(self.space.knobs[:MAX_KNOBS]):
            idx = knob.values.index(point[knob.name]) + int(action[i]) - 1
            out[knob.name] = knob.values[min(max(idx, 0), len(knob.values) - 1)]
        return out

    def _act(self, obs: np.ndarray):
        import torch

        with torch.no_grad():
            tensor = self.model.policy.obs_to_tensor(obs[None])[0]
            action, value, log_prob = self.model.policy(tensor)
        return action.cpu().numpy()[0], value, log_prob

    def _end_episode_if_due(self) -> None:
        if self.step < EPISODE:
            return
        self.step = 0
        if self.rng.random() < 0.2 or self.best is None:
            self.state = self.space.random_point(self.rng) or dict(self.space.default)
        else:
            self.state = dict(self.best[1])

    # -- ask/tell ----------------------------------------------------------------------------------------------
    def propose(self, n: int) -> list[Point]:
        out = self.default_first()
        if self.exhausted_trivially:
            return out
        model_ready = self.ctx.cost_model is not None and self.ctx.cost_model.ready
        want = n - len(out)
        candidates: list[tuple[Point, dict]] = []
        limit = want * (self.oversample if model_ready else 1)
        for _ in range(limit * 25):
            if len(candidates) >= limit:
                break
            obs = self._obs(self.state)
            action, value, log_prob = self._act(obs)
            nxt = self._move(self.state, action)
            t = {"obs": obs, "action": action, "value": value, "log_prob": log_prob, "start": self.step == 0,
                 "from": point_key(self.state), "reward": None, "point": None}
            self.trajectory.append(t)
            self.step += 1
            key = point_key(nxt)
            if not self.space.is_valid(nxt):
                t["reward"] = INVALID_REWARD
            elif key in self.costs or key in self.visited:
                t["point"] = key  # known (or pending) point: its reward comes from its cost, no new measurement
                self.state = nxt
            else:
                t["point"] = key
                self.visited.add(key)
                candidates.append((nxt, t))
                self.state = nxt
            self._end_episode_if_due()
        if model_ready and len(candidates) > want:
            chosen = self.rank([c for c, _ in candidates], want)
            chosen_keys = {point_key(p) for p in chosen}
            predicted = self.ctx.cost_model.predict(self.space, [c for c, _ in candidates])
            for (p, _), pred in zip(candidates, predicted):
                k = point_key(p)
                if k not in chosen_keys:
                    # not measured: the cost model stands in for the measurement (a model-based transition)
                    self.visited.discard(k)
                    self.costs.setdefault(k, pred)
            out.extend(chosen)
        else:
            out.extend(p for p, _ in candidates)
        self._flush()
        return self.random_fill(out, n) if len(out) < n and not candidates else out

    def observe(self, points: Sequence[Point], costs: Sequence[float]) -> None:
        super().observe(points, costs)
        for p, c in zip(points, costs):
            self.costs[point_key(p)] = c
        self._flush()

    def _reward(self, t: dict) -> float | None:
        if t["reward"] is not None:
            return t["reward"]
        new = self.costs.get(t["point"])
        if new is None:
            return None  # not measured yet
        if not math.isfinite(new):
            return FAILED_REWARD
        old = self.costs.get(t["from"])
        if old is None or not math.isfinite(old):
            old = self.best[0] if self.best else new
        return float(np.clip(math.log(old / new), -1.0, 1.0))

    def _flush(self) -> None:
        """Move complete transitions, in order, into PPO's rollout buffer; train when it is full."""
        import torch

        buf = self.model.rollout_buffer
        while self.trajectory:
            r = self._reward(self.trajectory[0])
            if r is None:
                return
            t = self.trajectory.pop(0)
            buf.add(t["obs"][None], t["action"][None], np.array([r], np.float32), np.array([t["start"]], np.float32),
                    t["value"], t["log_prob"])
            if buf.full:
                with torch.no_grad():
                    last_value = self.model.policy.predict_values(self.model.policy.obs_to_tensor(self._obs(self.state)[None])[0])
                buf.compute_returns_and_advantage(last_values=last_value, dones=np.array([self.step == 0]))
                self.model.train()
                buf.reset()
                self.trained_steps += self.n_steps
                if self.policy_path:
                    self._save_policy(self.policy_path)

    # -- policy transfer ---------------------------------------------------------------------------------------
    def _save_policy(self, path: str) -> None:
        state = {k: v.detach().cpu().numpy() for k, v in self.model.policy.state_dict().items()}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **state)
        os.replace(tmp, path)

    def _load_policy(self, path: str) -> None:
        import torch

        with np.load(path, allow_pickle=False) as npz:
            state = {k: torch.as_tensor(npz[k]) for k in npz.files}
        current = self.model.policy.state_dict()
        if set(state) == set(current) and all(state[k].shape == current[k].shape for k in state):
            self.model.policy.load_state_dict(state)
