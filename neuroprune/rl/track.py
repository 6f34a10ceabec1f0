"""A car with distance sensors on a closed ring road, as a Gymnasium environment.

The seed's driving task (an agent that learns to drive a given path) does not fix the road,
the sensors or the reward; they are named constructor options here. The road is a closed
polyline (``points`` vertices of a wobbly ellipse) of half width ``half_width``. The car
drives at a constant ``speed`` and each step turns left, keeps straight or turns right
(``Discrete(3)``). It sees ``rays`` distances to the road's edge, fanned over ``fov``
degrees and scaled to [0, 1] by ``ray_length``. The reward is the progress along the
centreline, 100 per lap (negative when driving backwards); leaving the road ends the episode,
``max_steps`` truncates it. ``reset(seed=...)`` draws the start point and heading noise from
that seed only, so an episode is a function of its seed and actions.

Registered as :data:`TRACK_ID` on import of this module. :class:`TrackVectorEnv` drives many
cars at once in numpy (one per episode of a generation of NEAT genomes): car ``i`` after
``reset(seed=seeds)`` and the same actions is the car of ``TrackEnv`` reset with
``seeds[i]``, to float rounding.
"""

from __future__ import annotations

import numpy as np

import gymnasium as gym
from gymnasium import spaces

TRACK_ID = "neuroprune/Track-v0"


def ring_road(points: int = 64, radius: float = 10.0) -> np.ndarray:
    """Centreline vertices (points, 2) of the closed road: an ellipse with two bends added."""
    t = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    r = radius * (1.0 + 0.15 * np.sin(2 * t) + 0.1 * np.cos(3 * t))
    return np.stack([1.3 * r * np.cos(t), r * np.sin(t)], axis=1)


class TrackEnv(gym.Env):
    """See the module docstring."""

    metadata = {"render_modes": []}

    def __init__(self, rays: int = 5, fov: float = 120.0, ray_length: float = 6.0,
                 half_width: float = 1.5, speed: float = 0.5, turn: float = 0.2,
                 max_steps: int = 400, points: int = 64):
        if rays < 1 or max_steps < 1 or points < 8:
            raise ValueError("TrackEnv needs rays >= 1, max_steps >= 1 and points >= 8")
        self.centre = ring_road(points)
        self.seg_a = self.centre
        self.seg_d = np.roll(self.centre, -1, axis=0) - self.centre
        self.seg_len = np.linalg.norm(self.seg_d, axis=1)
        self.seg_start = np.concatenate([[0.0], np.cumsum(self.seg_len)[:-1]])
        self.length = float(self.seg_len.sum())
        self.angles = np.deg2rad(np.linspace(-fov / 2, fov / 2, rays)) if rays > 1 \
            else np.zeros(1)
        # the road's two edges: the centreline offset along each vertex's normal
        tangent = np.roll(self.centre, -1, 0) - np.roll(self.centre, 1, 0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        edges = np.concatenate([self.centre + half_width * normal,
                                self.centre - half_width * normal])
        ends = np.concatenate([np.roll(edges[:points], -1, 0), np.roll(edges[points:], -1, 0)])
        self.edge_a, self.edge_d = edges, ends - edges
        self.ray_length, self.half_width = ray_length, half_width
        self.speed, self.turn, self.max_steps = speed, turn, max_steps
        self.observation_space = spaces.Box(0.0, 1.0, (rays,), np.float32)
        self.action_space = spaces.Discrete(3)

    def _nearest(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance to the centreline and arc position of the nearest point, for points (..., 2)."""
        q = p[..., None, :] - self.seg_a                       # (..., segments, 2)
        u = np.clip((q * self.seg_d).sum(-1) / self.seg_len ** 2, 0.0, 1.0)
        dist = np.linalg.norm(q - u[..., None] * self.seg_d, axis=-1)
        k = dist.argmin(-1)
        arc = self.seg_start[k] + np.take_along_axis(u, k[..., None], -1)[..., 0] * self.seg_len[k]
        return dist.min(-1), arc

    def _observe(self) -> np.ndarray:
        # each ray against every edge segment: pos + t dir = a + u d, 0 <= u <= 1, t > 0
        heads = self.heading + self.angles                     # (rays,)
        dirs = np.stack([np.cos(heads), np.sin(heads)], -1)    # (rays, 2)
        q = self.edge_a - self.pos                             # (edges, 2)
        d = self.edge_d
        denom = dirs[:, None, 0] * d[None, :, 1] - dirs[:, None, 1] * d[None, :, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (q[None, :, 0] * d[None, :, 1] - q[None, :, 1] * d[None, :, 0]) / denom
            u = (q[None, :, 0] * dirs[:, None, 1] - q[None, :, 1] * dirs[:, None, 0]) / denom
        hit = (t > 0) & (u >= 0) & (u <= 1)
        seen = np.where(hit, t, self.ray_length).min(1).clip(0, self.ray_length)
        return (seen / self.ray_length).astype(np.float32)

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        k = int(self.np_random.integers(len(self.centre)))
        d = self.seg_d[k] / self.seg_len[k]
        self.pos = self.centre[k] + 0.5 * self.seg_d[k]
        self.heading = float(np.arctan2(d[1], d[0]) + self.np_random.uniform(-0.1, 0.1))
        self.arc = float(self._nearest(self.pos)[1])
        self.t = 0
        return self._observe(), {}

    def step(self, action):
        self.heading += (int(action) - 1) * self.turn
        self.pos = self.pos + self.speed * np.array([np.cos(self.heading), np.sin(self.heading)])
        dist, arc = self._nearest(self.pos)
        delta = (float(arc) - self.arc + self.length / 2) % self.length - self.length / 2
        self.arc, self.t = float(arc), self.t + 1
        terminated = bool(dist > self.half_width)
        reward = 100.0 * delta / self.length
        return self._observe(), reward, terminated, self.t >= self.max_steps, {}


class TrackVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` cars on one road, stepped together in numpy. No autoreset: a car whose
    episode ended stays where it ended (reward 0, its end flags kept) until the next
    ``reset``, and only the live cars are computed, so a batch of episodes of different
    lengths costs what its live cars cost."""

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.DISABLED}

    def __init__(self, num_envs: int, **options):
        self.road = TrackEnv(**options)
        self.num_envs = num_envs
        self.single_observation_space = self.road.observation_space
        self.single_action_space = self.road.action_space
        self.observation_space = gym.vector.utils.batch_space(self.road.observation_space,
                                                             num_envs)
        self.action_space = gym.vector.utils.batch_space(self.road.action_space, num_envs)

    def _observe(self, heading: np.ndarray, pos: np.ndarray) -> np.ndarray:
        r = self.road
        heads = heading[:, None] + r.angles                     # (cars, rays)
        dirs = np.stack([np.cos(heads), np.sin(heads)], -1)     # (cars, rays, 2)
        q = r.edge_a[None] - pos[:, None]                       # (cars, edges, 2)
        d = r.edge_d[None, None]                                # (1, 1, edges, 2)
        dx, dy = dirs[..., 0][..., None], dirs[..., 1][..., None]
        denom = dx * d[..., 1] - dy * d[..., 0]
        qx, qy = q[:, None, :, 0], q[:, None, :, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (qx * d[..., 1] - qy * d[..., 0]) / denom
            u = (qx * dy - qy * dx) / denom
        hit = (t > 0) & (u >= 0) & (u <= 1)
        seen = np.where(hit, t, r.ray_length).min(-1).clip(0, r.ray_length)
        return (seen / r.ray_length).astype(np.float32)

    def reset(self, *, seed: int | list[int] | None = None, options=None):
        from gymnasium.utils import seeding
        r = self.road
        seeds = seed if isinstance(seed, (list, tuple)) else [
            None if seed is None else seed + i for i in range(self.num_envs)]
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} seeds, got {len(seeds)}")
        pos, heading = [], []
        for s in seeds:  # each car draws from its own seed, as TrackEnv.reset does
            rng, _ = seeding.np_random(s)
            k = int(rng.integers(len(r.centre)))
            d = r.seg_d[k] / r.seg_len[k]
            pos.append(r.centre[k] + 0.5 * r.seg_d[k])
            heading.append(float(np.arctan2(d[1], d[0]) + rng.uniform(-0.1, 0.1)))
        self.pos, self.heading = np.array(pos), np.array(heading)
        self.arc = r._nearest(self.pos)[1]
        self.t = np.zeros(self.num_envs, dtype=np.int64)
        self.terminated = np.zeros(self.num_envs, dtype=bool)
        self.truncated = np.zeros(self.num_envs, dtype=bool)
        self.obs = self._observe(self.heading, self.pos)
        return self.obs.copy(), {}

    def step(self, actions):
        r = self.road
        i = np.flatnonzero(~(self.terminated | self.truncated))  # the live cars
        heading = self.heading[i] + (np.asarray(actions, dtype=np.int64)[i] - 1) * r.turn
        pos = self.pos[i] + r.speed * np.stack([np.cos(heading), np.sin(heading)], -1)
        dist, arc = r._nearest(pos)
        reward = np.zeros(self.num_envs)
        delta = (arc - self.arc[i] + r.length / 2) % r.length - r.length / 2
        reward[i] = 100.0 * delta / r.length
        self.heading[i], self.pos[i], self.arc[i] = heading, pos, arc
        self.t[i] += 1
        self.terminated[i] = dist > r.half_width
        self.truncated[i] = self.t[i] >= r.max_steps
        self.obs[i] = self._observe(heading, pos)
        return self.obs.copy(), reward, self.terminated.copy(), self.truncated.copy(), {}


if TRACK_ID not in gym.registry:
    gym.register(id=TRACK_ID, entry_point="neuroprune.rl.track:TrackEnv")
