"""Flow samplers against numpy reference formulas written out here (Diffusers semantics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vllm_mlx.diffusion._mlx import mx
from vllm_mlx.diffusion.config import SchedulerConfig
from vllm_mlx.diffusion.schedulers import make_scheduler

T = 1000


def shift(s, k):
    return k * s / (1 + (k - 1) * s)


def toy_velocity(x: np.ndarray, sigma: float) -> np.ndarray:
    """A smooth non-linear stand-in for the transformer."""
    return np.sin(x) * (1.0 + sigma) + 0.3 * x - 0.5


def run(scheduler, x: np.ndarray) -> list[np.ndarray]:
    xs, cur = [x], mx.array(x.astype(np.float32))
    for i, sigma in enumerate(scheduler.sigmas[:-1]):
        v = mx.array(toy_velocity(np.array(cur, dtype=np.float64), sigma).astype(np.float32))
        cur = scheduler.step(v, i, cur)
        xs.append(np.array(cur, dtype=np.float64))
    return xs


@pytest.fixture
def x0() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 3, 4))


@pytest.mark.parametrize("steps,k", [(1, 1.0), (5, 3.0), (8, 5.0)])
def test_sigma_schedules(steps, k):
    unipc = make_scheduler("unipc", steps, k)
    ref = [shift((1 - 1 / T) * (steps - i) / steps, k) for i in range(steps)] + [0.0]
    np.testing.assert_allclose(unipc.sigmas, ref, rtol=1e-12)
    np.testing.assert_array_equal(unipc.timesteps, np.floor(np.array(ref[:-1]) * T + 1e-9))
    euler = make_scheduler("euler", steps, k)
    s_min = shift(1 / T, k)
    base = [1.0] if steps == 1 else [1 + (s_min - 1) * i / (steps - 1) for i in range(steps)]
    np.testing.assert_allclose(euler.sigmas, [shift(b, k) for b in base] + [0.0], rtol=1e-12)
    np.testing.assert_allclose(euler.timesteps, np.array(euler.sigmas[:-1]) * T)


@pytest.mark.parametrize("k", [1.0, 3.0])
def test_euler_matches_reference(x0, k):
    sched = make_scheduler("euler", 6, k)
    got = run(sched, x0)
    x, s = x0.copy(), sched.sigmas
    for i in range(6):
        x = x + (s[i + 1] - s[i]) * toy_velocity(x, s[i])
        np.testing.assert_allclose(got[i + 1], x, rtol=1e-4, atol=1e-5)


def lam(s: float) -> float:
    return math.inf if s == 0 else math.log(1 - s) - math.log(s)


def unip(x, m0, m1, s_prev, s0, st):
    """UniP (bh2, x0-prediction) from s0 to st; order 2 when m1 (x0 at s_prev) is given."""
    h = lam(st) - lam(s0)
    alpha_t, phi = 1 - st, math.expm1(-h)
    out = (st / s0) * x - alpha_t * phi * m0
    if m1 is not None:
        r1 = (lam(s_prev) - lam(s0)) / h
        out = out - alpha_t * phi * 0.5 * (m1 - m0) / r1
    return out


def unic(x_prev, m0, m1, m_t, s_prev, s0, st):
    """UniC (bh2) correcting the step s0 -> st; order 2 when m1 (x0 at s_prev) is given."""
    h = lam(st) - lam(s0)
    hh = -h
    alpha_t, phi = 1 - st, math.expm1(hh)
    out = (st / s0) * x_prev - alpha_t * phi * m0
    if m1 is None:
        return out - alpha_t * phi * 0.5 * (m_t - m0)
    r1 = (lam(s_prev) - lam(s0)) / h
    g1 = phi / hh - 1
    b1, b2 = g1 / phi, 2 * (g1 / hh - 0.5) / phi
    rho0 = (b1 - b2) / (1 - r1)  # solves [[1, 1], [r1, 1]] @ rho = [b1, b2]
    rho1 = b1 - rho0
    return out - alpha_t * phi * (rho0 * (m1 - m0) / r1 + rho1 * (m_t - m0))


def unipc_reference(x: np.ndarray, s: list[float], solver_order: int) -> list[np.ndarray]:
    """Order schedule: 1, 2, ..., 2, 1 (lower_order_final); corrector from step 1 on."""
    n = len(s) - 1
    xs, m_hist, x_prev, orders = [x], [], None, []
    for i in range(n):
        m = x - s[i] * toy_velocity(x, s[i])
        if i > 0:
            m1 = m_hist[-2] if orders[-1] == 2 else None
            x = unic(x_prev, m_hist[-1], m1, m, s[i - 2] if i > 1 else None, s[i - 1], s[i])
        m_hist.append(m)
        order = min(solver_order, n - i, len(m_hist))
        orders.append(order)
        x_prev = x
        x = unip(x, m, m_hist[-2] if order == 2 else None, s[i - 1], s[i], s[i + 1])
        xs.append(x)
    return xs


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("k,steps", [(1.0, 6), (3.0, 6), (5.0, 10)])
def test_unipc_matches_reference(x0, order, k, steps):
    sched = make_scheduler("unipc", steps, k, SchedulerConfig(solver_order=order))
    got = run(sched, x0)
    want = unipc_reference(x0, sched.sigmas, order)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4)


def test_unip_order1_without_corrector_is_euler(x0):
    """For flows, first-order UniP (DDIM in x0 form) is exactly the Euler step."""
    cfg = SchedulerConfig(solver_order=1, disable_corrector=tuple(range(10)))
    unipc = make_scheduler("unipc", 7, 3.0, cfg)
    got = run(unipc, x0)
    x, s = x0.copy(), unipc.sigmas
    for i in range(7):
        x = x + (s[i + 1] - s[i]) * toy_velocity(x, s[i])
        np.testing.assert_allclose(got[i + 1], x, rtol=1e-4, atol=1e-4)


def test_final_step_returns_x0_prediction(x0):
    sched = make_scheduler("unipc", 1, 3.0)
    x = mx.array(x0.astype(np.float32))
    v = mx.array(toy_velocity(x0, sched.sigmas[0]).astype(np.float32))
    out = sched.step(v, 0, x)
    np.testing.assert_allclose(np.array(out), x0 - sched.sigmas[0] * np.array(v), rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="scheduler"):
        make_scheduler("ddim", 4, 3.0)
    with pytest.raises(ValueError, match="num_inference_steps"):
        make_scheduler("euler", 0, 3.0)


@pytest.mark.parametrize(
    "kind,cfg",
    [
        ("euler", None),
        ("unipc", SchedulerConfig(solver_order=1)),
        ("unipc", SchedulerConfig(solver_order=2)),
        ("unipc", SchedulerConfig(solver_order=3)),
        ("unipc", SchedulerConfig(solver_order=2, solver_type="bh1")),
    ],
)
def test_exact_velocity_lands_on_the_data(kind, cfg):
    """With the true flow of one data point, v = (x - x0) / sigma, every sampler is exact."""
    rng = np.random.default_rng(1)
    data, noise = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    sched = make_scheduler(kind, 7, 3.0, cfg)
    x = mx.array((data * (1 - sched.sigmas[0]) + sched.sigmas[0] * noise).astype(np.float32))
    for i, sigma in enumerate(sched.sigmas[:-1]):
        x = sched.step((x - mx.array(data.astype(np.float32))) / sigma, i, x)
    np.testing.assert_allclose(np.array(x), data, atol=1e-4)
