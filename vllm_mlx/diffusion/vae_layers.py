"""Building blocks of the causal Wan VAE, channel-last: tensors are ``(B, T, H, W, C)``.

Contract:
- ``CausalConv3d`` pads only in the past along time (``2 * pad_t`` frames), zero-pads
  space symmetrically. Given a ``CausalCache`` it prepends the frames it saw last instead of
  zeros and remembers the newest ``2 * pad_t`` input frames, so feeding a clip chunk by
  chunk gives exactly the output of one pass over the whole clip.
- ``Resample`` (``upsample2d/3d``, ``downsample2d/3d``) follows Diffusers' ``WanResample``:
  temporal upsampling skips the very first frame (1 latent frame -> 1 frame, every later one
  -> 2) and temporal downsampling keeps the first frame and applies a stride-2 valid
  convolution over the clip (1 + 2k frames -> 1 + k).
- Parameter names equal Diffusers' (``norm1.gamma``, ``conv1.weight``, ``resample.1.weight``,
  ``time_conv.weight``, ``to_qkv.weight`` ...); weights are stored MLX-style (channel-last:
  conv3d ``(O, T, H, W, I)``, conv2d ``(O, H, W, I)``, gamma ``(C,)``).
"""

from __future__ import annotations

from ._mlx import mx, nn
from .ops import attention

CACHE_FRAMES = 2


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class CausalCache:
    """Causal context carried between the chunks of one encode or decode call."""

    def __init__(self) -> None:
        self._store: dict[int, object] = {}

    def get(self, layer: nn.Module) -> object | None:
        return self._store.get(id(layer))

    def put(self, layer: nn.Module, value: object) -> None:
        self._store[id(layer)] = value

    def arrays(self) -> list[mx.array]:
        """The cached tensors (to evaluate together with a chunk's output)."""
        return [v for v in self._store.values() if isinstance(v, mx.array)]


def conv2d_frames(x: mx.array, weight: mx.array, stride: int = 1, padding: int = 0) -> mx.array:
    """``(N, H, W, C)`` convolution; 1x1 kernels become a matrix product."""
    if weight.shape[1] == 1 and weight.shape[2] == 1 and stride == 1 and padding == 0:
        return x @ weight.reshape(weight.shape[0], -1).T
    return mx.conv2d(x, weight, stride=stride, padding=padding)


class CausalConv3d(nn.Module):
    """3D convolution, causal in time (``torch`` weight ``(O, I, T, H, W)`` in Diffusers)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        super().__init__()
        kt, kh, kw = _triple(kernel_size)
        self.weight = mx.zeros((out_channels, kt, kh, kw, in_channels))
        self.bias = mx.zeros((out_channels,))
        self._stride = _triple(stride)
        pt, ph, pw = _triple(padding)
        if ph != pw or self._stride[1] != self._stride[2]:
            raise ValueError("only square spatial padding / stride are supported")
        self._time_pad, self._pad = 2 * pt, ph

    def _context(self, x: mx.array, cache: CausalCache | None) -> mx.array:
        if self._time_pad == 0:
            return x
        prev = cache.get(self) if cache is not None else None
        ctx = x if prev is None else mx.concatenate([prev, x], axis=1)  # type: ignore[list-item]
        missing = self._time_pad - (ctx.shape[1] - x.shape[1])
        if missing > 0:
            zeros = mx.zeros((x.shape[0], missing, *x.shape[2:]), dtype=x.dtype)
            ctx = mx.concatenate([zeros, ctx], axis=1)
        if cache is not None:
            cache.put(self, ctx[:, -self._time_pad :])
        return ctx

    def __call__(self, x: mx.array, cache: CausalCache | None = None) -> mx.array:
        ctx = self._context(x, cache)
        b, t_in, h, w, c = ctx.shape
        kt = self.weight.shape[1]
        st, ss = self._stride[0], self._stride[1]
        t_out = (t_in - kt) // st + 1
        if t_out <= 0:
            return mx.zeros((b, 0, h, w, self.weight.shape[0]), dtype=x.dtype)

        def tap(k: int) -> mx.array:
            frames = ctx[:, k : k + st * (t_out - 1) + 1 : st].reshape(b * t_out, h, w, c)
            return conv2d_frames(frames, self.weight[:, k], stride=ss, padding=self._pad)

        out = tap(0)
        for k in range(1, kt):
            out = out + tap(k)
        out = out + self.bias
        return out.reshape(b, t_out, *out.shape[1:])


class Conv2d(nn.Module):
    """Per-frame 2D convolution (``torch`` weight ``(O, I, H, W)``)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.weight = mx.zeros((cout, kernel, kernel, cin))
        self.bias = mx.zeros((cout,))
        self._stride, self._pad = stride, padding

    def __call__(self, x: mx.array) -> mx.array:
        return conv2d_frames(x, self.weight, self._stride, self._pad) + self.bias


class RMSNorm(nn.Module):
    """``F.normalize(x, dim=channels) * sqrt(C) * gamma`` (Diffusers ``WanRMS_norm``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = mx.ones((dim,))

    def __call__(self, x: mx.array) -> mx.array:
        return mx.fast.rms_norm(x, self.gamma, 1e-12)


class Upsample2x(nn.Module):
    """Nearest-neighbour 2x spatial upsampling of ``(N, H, W, C)``."""

    def __call__(self, x: mx.array) -> mx.array:
        n, h, w, c = x.shape
        x = mx.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c))
        return x.reshape(n, 2 * h, 2 * w, c)


class ZeroPadRightBottom(nn.Module):
    """``nn.ZeroPad2d((0, 1, 0, 1))`` on ``(N, H, W, C)``."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.pad(x, [(0, 0), (0, 1), (0, 1), (0, 0)])


def _frames(fn, x: mx.array) -> mx.array:
    """Apply a per-frame ``(N, H, W, C)`` function to ``(B, T, H, W, C)``."""
    b, t = x.shape[:2]
    y = fn(x.reshape(b * t, *x.shape[2:]))
    return y.reshape(b, t, *y.shape[1:])


class Resample(nn.Module):
    """Spatial (and optionally temporal) up/down sampling (Diffusers ``WanResample``)."""

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode.startswith("upsample"):
            self.resample = [Upsample2x(), Conv2d(dim, dim // 2, 3, padding=1)]
        elif mode.startswith("downsample"):
            self.resample = [ZeroPadRightBottom(), Conv2d(dim, dim, 3, stride=2)]
        else:
            raise ValueError(f"unknown resample mode {mode!r}")
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def _spatial(self, x: mx.array) -> mx.array:
        return _frames(lambda f: self.resample[1](self.resample[0](f)), x)

    def _double_frames(self, x: mx.array, cache: CausalCache | None) -> mx.array:
        y = self.time_conv(x, cache)
        b, t, h, w, c2 = y.shape
        y = y.reshape(b, t, h, w, 2, c2 // 2).transpose(0, 1, 4, 2, 3, 5)
        return y.reshape(b, 2 * t, h, w, c2 // 2)

    def _upsample_time(self, x: mx.array, cache: CausalCache | None) -> mx.array:
        started = cache is not None and cache.get(self) is not None
        if started:
            return self._double_frames(x, cache)
        if cache is not None:
            cache.put(self, True)
        if x.shape[1] == 1:
            return x
        return mx.concatenate([x[:, :1], self._double_frames(x[:, 1:], cache)], axis=1)

    def _downsample_time(self, x: mx.array, cache: CausalCache | None) -> mx.array:
        prev = cache.get(self) if cache is not None else None
        if cache is not None:
            cache.put(self, x[:, -1:])
        if prev is None:
            return mx.concatenate([x[:, :1], self.time_conv(x)], axis=1)
        return self.time_conv(mx.concatenate([prev, x], axis=1))  # type: ignore[list-item]

    def __call__(self, x: mx.array, cache: CausalCache | None = None) -> mx.array:
        if self.mode == "upsample3d":
            x = self._upsample_time(x, cache)
        x = self._spatial(x)
        if self.mode == "downsample3d":
            x = self._downsample_time(x, cache)
        return x


class ResidualBlock(nn.Module):
    """norm -> SiLU -> causal conv, twice, plus a (1x1x1 conv) shortcut."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(in_dim)
        self.conv1 = CausalConv3d(in_dim, out_dim, 3, padding=1)
        self.norm2 = RMSNorm(out_dim)
        self.conv2 = CausalConv3d(out_dim, out_dim, 3, padding=1)
        if in_dim != out_dim:
            self.conv_shortcut = CausalConv3d(in_dim, out_dim, 1)

    def __call__(self, x: mx.array, cache: CausalCache | None = None) -> mx.array:
        h = self.conv_shortcut(x) if "conv_shortcut" in self else x
        x = self.conv1(nn.silu(self.norm1(x)), cache)
        x = self.conv2(nn.silu(self.norm2(x)), cache)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head spatial self-attention inside each frame."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.to_qkv = Conv2d(dim, dim * 3, 1)
        self.proj = Conv2d(dim, dim, 1)

    def _attend(self, f: mx.array) -> mx.array:
        n, h, w, c = f.shape
        qkv = self.to_qkv(self.norm(f)).reshape(n, 1, h * w, 3 * c)
        q, k, v = mx.split(qkv, 3, axis=-1)
        out = attention(q, k, v)
        return self.proj(out.reshape(n, h, w, c))

    def __call__(self, x: mx.array, cache: CausalCache | None = None) -> mx.array:
        return x + _frames(self._attend, x)


class MidBlock(nn.Module):
    """resnet, (attention, resnet) x num_layers."""

    def __init__(self, dim: int, num_layers: int = 1) -> None:
        super().__init__()
        self.resnets = [ResidualBlock(dim, dim) for _ in range(num_layers + 1)]
        self.attentions = [AttentionBlock(dim) for _ in range(num_layers)]

    def __call__(self, x: mx.array, cache: CausalCache | None = None) -> mx.array:
        x = self.resnets[0](x, cache)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            x = resnet(attn(x), cache)
        return x
