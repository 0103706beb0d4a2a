"""What rank 0 tells the other ranks before each scheduler step, and how it gets there.

A :class:`StepInputs` holds everything that makes one scheduler step differ between
processes: the requests admitted since the last step (in admission order, with a group-
wide id each, media included), the ids cancelled since then, and whether the group stops;
plus ``pause``: how long rank 0 will wait before its next message (idle pacing, see
:mod:`.coordinator`).

:class:`StepChannel` broadcasts it with MLX collectives only (no transport of our own):
an ``all_sum`` of two int64 (the payload length and the pause in microseconds; the other
ranks add 0), then, unless the step is empty, an ``all_sum`` of the payload bytes (the
other ranks add zeros). Every rank must call :meth:`StepChannel.send` (rank 0) or
:meth:`StepChannel.receive` (the others) the same number of times, in the same order.

The payload is a pickle read back by an unpickler that only builds the engine's request
types, numpy arrays and PIL images: a rank never runs code named by a message.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine._mlx import mx
from ..engine.types import GenerationRequest

_SAFE_BUILTINS = frozenset({"frozenset", "set", "bytearray", "complex", "slice", "range"})
_SAFE_MODULES = ("numpy", "PIL")
_OWN_TYPES = {"vllm_mlx.engine.types", __name__}


class WireError(ValueError):
    """A step message that cannot be decoded (a version mismatch between ranks, or a bug)."""


@dataclass
class StepInputs:
    admitted: list[tuple[int, GenerationRequest]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    stop: bool = False
    pause: float = 0.0  # seconds until rank 0's next message (sent in the header)

    @property
    def empty(self) -> bool:
        """Nothing for the scheduler: the header alone is sent."""
        return not (self.admitted or self.cancelled or self.stop)


class _StepUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        root = module.split(".", 1)[0]
        if (module in _OWN_TYPES or root in _SAFE_MODULES
                or (module == "builtins" and name in _SAFE_BUILTINS)):
            return super().find_class(module, name)
        raise WireError(f"step message refers to {module}.{name}, which a step never carries")


def encode(inputs: StepInputs) -> bytes:
    return pickle.dumps(inputs, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes) -> StepInputs:
    try:
        inputs = _StepUnpickler(io.BytesIO(data)).load()
    except WireError:
        raise
    except Exception as exc:  # a truncated or foreign payload
        raise WireError(f"cannot decode a step message: {type(exc).__name__}: {exc}") from exc
    if not isinstance(inputs, StepInputs):
        raise WireError(f"a step message holds {type(inputs).__name__}, not StepInputs")
    return inputs


class StepChannel:
    """Broadcast of :class:`StepInputs` from rank 0 over one ``mx.distributed`` group."""

    def __init__(self, group: Any) -> None:
        self.group = group

    def _sum(self, array: mx.array) -> mx.array:
        total = mx.distributed.all_sum(array, group=self.group, stream=mx.cpu)
        mx.eval(total)
        return total

    def send(self, inputs: StepInputs) -> None:
        payload = b"" if inputs.empty else encode(inputs)
        self._sum(mx.array([len(payload), round(inputs.pause * 1e6)], dtype=mx.int64))
        if payload:
            self._sum(mx.array(np.frombuffer(payload, dtype=np.uint8)))

    def receive(self) -> StepInputs:
        size, pause_us = (int(x) for x in np.asarray(self._sum(mx.zeros((2,), mx.int64))))
        inputs = StepInputs()
        if size:
            inputs = decode(np.asarray(self._sum(mx.zeros((size,), mx.uint8))).tobytes())
        inputs.pause = pause_us / 1e6
        return inputs
