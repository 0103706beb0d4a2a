"""Shared numerical helpers.

Contract: ``attention(q, k, v, max_scores)`` is scaled dot-product attention on ``(B, H, L, D)``
(scale ``D ** -0.5``, no mask) that splits the queries into blocks so that at most
``max_scores`` attention logits exist at once: MLX's CPU path materialises the score matrix,
and a 480p Wan clip has ~32k tokens per frame stack.
"""

from __future__ import annotations

from ._mlx import mx

MAX_SCORES = 2**26  # attention logits materialised at once (256 MiB in float32)


def attention(q: mx.array, k: mx.array, v: mx.array, max_scores: int = MAX_SCORES) -> mx.array:
    """Scaled dot-product attention ``(B, H, L, D)``; queries are processed in blocks so the
    score matrix never holds more than ``max_scores`` elements (MLX's CPU path materialises
    it), which bounds memory for long videos."""
    b, h, n, d = q.shape
    block = max(1, max_scores // max(1, b * h * k.shape[2]))
    if block >= n:
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=d**-0.5)
    parts = [
        mx.fast.scaled_dot_product_attention(q[:, :, i : i + block], k, v, scale=d**-0.5)
        for i in range(0, n, block)
    ]
    return mx.concatenate(parts, axis=2)
