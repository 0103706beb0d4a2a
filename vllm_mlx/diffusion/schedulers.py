"""Flow-matching samplers: Euler and UniPC multistep (Diffusers semantics, flow sigmas).

Contract: ``make_scheduler(kind, num_steps, flow_shift, config)`` returns a fresh, stateful
sampler for one generation. ``sigmas`` has ``num_steps + 1`` entries, decreasing to 0;
``timesteps[i] = sigmas[i] * num_train_timesteps`` is what the transformer is given at step
``i``; ``step(model_output, i, sample)`` takes the velocity predicted at ``(sample,
sigmas[i])`` and returns the sample at ``sigmas[i + 1]``. Steps must be taken in order.

Sigma shift: ``sigma' = shift * sigma / (1 + (shift - 1) * sigma)``.

- ``euler`` (``FlowMatchEulerDiscreteScheduler``): base sigmas ``linspace(1, s_min, N)`` with
  ``s_min = shift(1 / num_train_timesteps)``, shifted, then a final 0;
  ``x' = x + (sigma_next - sigma) * v``.
- ``unipc`` (``UniPCMultistepScheduler``, ``use_flow_sigmas``, ``predict_x0``, ``bh2``):
  sigmas ``flip(shift(1 - linspace(1, 1/T, N + 1)))[:-1]`` then a final 0; the model output
  is turned into ``x0 = x - sigma * v``; timesteps are truncated to integers (Diffusers casts
  them to int64); each step first applies the UniC corrector (from
  the second step on), then the UniP predictor of order ``min(solver_order, steps taken so
  far + 1)``, lowered to 1 for the last step when ``lower_order_final``.
"""

from __future__ import annotations

import math

import numpy as np

from ._mlx import mx
from .config import SchedulerConfig

SCHEDULERS: tuple[str, ...] = ("unipc", "euler")


def shift_sigmas(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """The flow shift ``shift * s / (1 + (shift - 1) * s)`` (elementwise, float64)."""
    s = np.asarray(sigmas, dtype=np.float64)
    return shift * s / (1.0 + (shift - 1.0) * s)


def euler_sigmas(num_steps: int, shift: float, num_train_timesteps: int = 1000) -> np.ndarray:
    sigma_min = float(shift_sigmas(np.array(1.0 / num_train_timesteps), shift))
    base = np.linspace(1.0, sigma_min, num_steps)
    return np.append(shift_sigmas(base, shift), 0.0)


def unipc_sigmas(num_steps: int, shift: float, num_train_timesteps: int = 1000) -> np.ndarray:
    base = 1.0 - np.linspace(1.0, 1.0 / num_train_timesteps, num_steps + 1)
    sigmas = np.flip(shift_sigmas(base, shift))[:-1]
    return np.append(sigmas, 0.0)


def _lambda(sigma: float) -> float:
    """Half log-SNR ``log(alpha) - log(sigma)`` with ``alpha = 1 - sigma``."""
    if sigma <= 0.0:
        return math.inf
    if sigma >= 1.0:
        return -math.inf
    return math.log(1.0 - sigma) - math.log(sigma)


class FlowScheduler:
    """Shared state: the sigma schedule and the training timestep scale."""

    def __init__(self, sigmas: np.ndarray, num_train_timesteps: int) -> None:
        if len(sigmas) < 2:
            raise ValueError("num_inference_steps must be >= 1")
        self.sigmas: list[float] = [float(s) for s in sigmas]
        self.num_train_timesteps = num_train_timesteps

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1

    @property
    def timesteps(self) -> list[float]:
        return [s * self.num_train_timesteps for s in self.sigmas[:-1]]

    def step(self, model_output: mx.array, index: int, sample: mx.array) -> mx.array:
        raise NotImplementedError


class EulerScheduler(FlowScheduler):
    """First-order flow-matching Euler."""

    def step(self, model_output: mx.array, index: int, sample: mx.array) -> mx.array:
        dt = self.sigmas[index + 1] - self.sigmas[index]
        return sample + dt * model_output


def _unipc_coefficients(
    hh: float, b_h: float, order: int, rks: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The UniPC ``R`` matrix and ``b`` vector (``B_h``: ``hh`` for bh1, ``expm1(hh)`` bh2)."""
    h_phi_1 = math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1.0
    factorial = 1.0
    rows, b = [], []
    rk = np.asarray(rks, dtype=np.float64)
    for i in range(1, order + 1):
        rows.append(rk ** (i - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1.0 / factorial
    return np.stack(rows), np.asarray(b)


class UniPCScheduler(FlowScheduler):
    """UniPC multistep (predictor UniP + corrector UniC), x0-prediction, bh2 by default."""

    def __init__(self, sigmas: np.ndarray, config: SchedulerConfig) -> None:
        super().__init__(sigmas, config.num_train_timesteps)
        self._timesteps = [
            float(t) for t in (sigmas[:-1] * self.num_train_timesteps).astype(np.int64)
        ]
        if config.solver_type not in ("bh1", "bh2"):
            raise ValueError(f"unsupported solver_type {config.solver_type!r}")
        self.config = config
        self._x0: list[mx.array] = []  # converted model outputs, newest last
        self._last_sample: mx.array | None = None
        self._order = 0
        self._lower_order_nums = 0

    @property
    def timesteps(self) -> list[float]:
        return self._timesteps

    def _b_h(self, hh: float) -> float:
        return hh if self.config.solver_type == "bh1" else math.expm1(hh)

    def _history(self, index: int, order: int, offset: int) -> tuple[float, list[float], list]:
        """h, the ratios r_k and the differences D_k for the update ending at ``index``."""
        s0 = self.sigmas[index - offset]
        lam_s0 = _lambda(s0)
        h = _lambda(self.sigmas[index - offset + 1]) - lam_s0
        m0 = self._x0[-1]
        rks, d1s = [], []
        for k in range(1, order):
            rk = (_lambda(self.sigmas[index - offset - k]) - lam_s0) / h
            rks.append(rk)
            d1s.append((self._x0[-(k + 1)] - m0) / rk)
        return h, rks, d1s

    def _update(self, x: mx.array, s0: float, st: float, h: float) -> tuple[mx.array, float]:
        """The shared first-order part ``sigma_t/sigma_s0 * x - alpha_t * h_phi_1 * m0``."""
        alpha_t = 1.0 - st
        base = (st / s0) * x - (alpha_t * math.expm1(-h)) * self._x0[-1]
        return base, alpha_t * self._b_h(-h)

    def _predict(self, sample: mx.array, index: int, order: int) -> mx.array:
        h, rks, d1s = self._history(index, order, offset=0)
        s0, st = self.sigmas[index], self.sigmas[index + 1]
        base, scale = self._update(sample, s0, st, h)
        if not d1s:
            return base
        if order == 2:
            rhos = np.array([0.5])
        else:
            r, b = _unipc_coefficients(-h, self._b_h(-h), order, rks + [1.0])
            rhos = np.linalg.solve(r[:-1, :-1], b[:-1])
        res = sum(float(rho) * d for rho, d in zip(rhos, d1s))
        return base - scale * res

    def _correct(self, x0_now: mx.array, sample: mx.array, index: int) -> mx.array:
        order = self._order
        h, rks, d1s = self._history(index, order, offset=1)
        s0, st = self.sigmas[index - 1], self.sigmas[index]
        if self._last_sample is None:  # step() only corrects after a first step
            raise RuntimeError("UniC corrector called before any previous sample")
        base, scale = self._update(self._last_sample, s0, st, h)
        if order == 1:
            rhos = np.array([0.5])
        else:
            r, b = _unipc_coefficients(-h, self._b_h(-h), order, rks + [1.0])
            rhos = np.linalg.solve(r, b)
        res = sum(float(rho) * d for rho, d in zip(rhos[:-1], d1s))
        return base - scale * (res + float(rhos[-1]) * (x0_now - self._x0[-1]))

    def step(self, model_output: mx.array, index: int, sample: mx.array) -> mx.array:
        x0_now = sample - self.sigmas[index] * model_output
        if (
            index > 0
            and self._last_sample is not None
            and (index - 1) not in self.config.disable_corrector
        ):
            sample = self._correct(x0_now, sample, index)
        self._x0 = (self._x0 + [x0_now])[-self.config.solver_order :]
        order = self.config.solver_order
        if self.config.lower_order_final:
            order = min(order, self.num_steps - index)
        self._order = min(order, self._lower_order_nums + 1)
        self._last_sample = sample
        prev = self._predict(sample, index, self._order)
        self._lower_order_nums = min(self._lower_order_nums + 1, self.config.solver_order)
        return prev


def make_scheduler(
    kind: str, num_steps: int, flow_shift: float, config: SchedulerConfig | None = None
) -> FlowScheduler:
    """A fresh sampler of ``kind`` ("unipc" | "euler") for ``num_steps`` steps."""
    config = config or SchedulerConfig()
    if num_steps < 1:
        raise ValueError("num_inference_steps must be >= 1")
    if kind == "euler":
        return EulerScheduler(
            euler_sigmas(num_steps, flow_shift, config.num_train_timesteps),
            config.num_train_timesteps,
        )
    if kind == "unipc":
        sigmas = unipc_sigmas(num_steps, flow_shift, config.num_train_timesteps)
        return UniPCScheduler(sigmas, config)
    raise ValueError(f"unknown scheduler {kind!r}; choose one of {', '.join(SCHEDULERS)}")
