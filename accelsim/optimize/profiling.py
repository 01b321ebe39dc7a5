"""Kernel profiling (Algorithm 1's first pass) with a per-kernel proxy instead of a network pass per grid point.

The papers simulate the whole network for every kernel and every (Th, N): thousands of kernels x a grid x the data
set, which is intractable. Here, per layer and per N of the grid, one run of the MAC lanes in exact mode on the
N-speculation weight stream gives every window's MACs when the check does not stop it, its dense value, and its
partial sum after the N speculation MACs (bias included, exactly what the PAU compares with Th). Binning every window
by where that partial sum falls among the kernel's thresholds then gives, for all thresholds at once, the kernel's
exact MAC count and the proxies for its error: the share of the kernel's positive output mass (sum of its post-ReLU
outputs) and of its positive output energy (sum of squares) that the speculation would zero. The images are taken in
chunks, so memory stays flat however many images are profiled: one exact-mode pass gives each kernel's output scale
(the threshold grid is relative to it), then one pass per N bins the windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from accelsim.errors import InternalError
from accelsim.functional.lanes import run_lanes
from accelsim.functional.reorder import ReorderOptions, reorder_layer
from accelsim.nets.graph import Conv
from accelsim.optimize.grid import SearchSettings

_CHUNK_WINDOWS = 1 << 22  # windows (images x kernels x output pixels) per lane run while profiling

Inputs = Callable[[int, int], np.ndarray]  # (start, stop) -> the layer's cached input for those images


@dataclass(frozen=True)
class LayerProfile:
    """ParamK of one layer: the t-th candidate (N, Th, MACs, proxy losses) of every kernel, t = 0 most aggressive.

    Column t is each kernel's cheapest profiled setting whose proxy loss is at most `levels[t]` (ties: less loss,
    then smaller N, so exact mode wins a tie). MACs and masses are totals over the `images` profiled.
    """

    layer: str
    n_spec: np.ndarray  # (F, T) int32, 0 = exact mode
    threshold: np.ndarray  # (F, T) float64, activation units, on the accumulator grid
    op: np.ndarray  # (F, T) int64
    loss: np.ndarray  # (F, T) float64, share of the kernel's positive output mass zeroed
    exact_op: np.ndarray  # (F,) int64: exact-mode MACs of each kernel
    scale: np.ndarray  # (F,) float64: the kernel's output scale (std of its dense pre-ReLU outputs)
    candidates: np.ndarray  # (F,) int32: profiled settings that beat exact mode within levels[0]
    energy: np.ndarray | None = None  # (F, T) float64: share of the kernel's positive output energy zeroed
    pos_mass: np.ndarray | None = None  # (F,) float64: sum of the kernel's positive outputs
    pos_energy: np.ndarray | None = None  # (F,) float64: sum of their squares
    images: int = 0  # images profiled

    def column(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self.n_spec[:, t].copy(), self.threshold[:, t].copy()

    def column_op(self, t: int) -> int:
        """MACs of the layer over the profiled images with every kernel at its t-th candidate (-1: exact mode)."""
        return int(self.exact_op.sum() if t < 0 else self.op[:, t].sum())

    def column_energy(self, t: int) -> float:
        """Positive output energy the layer loses with every kernel at its t-th candidate (0 for exact mode)."""
        if t < 0 or self.energy is None or self.pos_energy is None:
            return 0.0
        return float(np.sum(self.energy[:, t] * self.pos_energy))

    def column_loss(self, t: int) -> float:
        """Share of the layer's positive output mass the t-th candidates zero (0 for exact mode)."""
        if t < 0:
            return 0.0
        w = self.pos_mass if self.pos_mass is not None else np.ones(len(self.loss))
        total = float(w.sum())
        return float(np.sum(self.loss[:, t] * w) / total) if total > 0 else 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() if isinstance(getattr(self, k), np.ndarray) else getattr(self, k)
                for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> LayerProfile:
        def arr(key: str, dtype: type) -> np.ndarray | None:
            return None if d.get(key) is None else np.asarray(d[key], dtype=dtype)

        return cls(
            layer=d["layer"],
            n_spec=np.asarray(d["n_spec"], dtype=np.int32),
            threshold=np.asarray(d["threshold"], dtype=np.float64),
            op=np.asarray(d["op"], dtype=np.int64),
            loss=np.asarray(d["loss"], dtype=np.float64),
            exact_op=np.asarray(d["exact_op"], dtype=np.int64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            candidates=np.asarray(d["candidates"], dtype=np.int32),
            energy=arr("energy", np.float64),
            pos_mass=arr("pos_mass", np.float64),
            pos_energy=arr("pos_energy", np.float64),
            images=int(d.get("images", 0)),
        )


def _thresholds(fractions: np.ndarray, scale: float, unit: float | None) -> np.ndarray:
    th = fractions * scale
    if unit is not None:  # on the accumulator grid, so the forward pass's quantisation leaves them unchanged
        th = np.round(th / unit) * unit
    return th


@numba.njit(cache=True, parallel=True)
def _bin_windows(acc, macs, spec, ths, n_arr, n_img, hw, saved, mass, energy):  # pragma: no cover - compiled
    """Per kernel f and window: j = the number of f's thresholds <= its speculation sum (so thresholds j.. stop it);
    adds to bin j of f the MACs the stop saves (MACs without the check minus N) and the positive output it zeroes
    (value and square). `acc`, `macs`, `spec` are flat (images, F, hw) arrays; `ths` (F, J) ascending."""
    f_count, j_count = ths.shape
    for f in numba.prange(f_count):
        n = n_arr[f]
        for b in range(n_img):
            base = (b * f_count + f) * hw
            for p in range(hw):
                s = spec[base + p]
                j = 0
                while j < j_count and ths[f, j] <= s:
                    j += 1
                saved[f, j] += macs[base + p] - n
                a = acc[base + p]
                if a > 0.0:
                    mass[f, j] += a
                    energy[f, j] += a * a


def profile_layer(
    inputs: Inputs | np.ndarray,
    layer: Conv,
    weights: np.ndarray,
    bias: np.ndarray,
    settings: SearchSettings,
    reorder: ReorderOptions = ReorderOptions(),
    acc_unit: float | None = None,
    terminate_at_zero: bool = False,
    images: int | None = None,
) -> LayerProfile:
    """ParamK of one conv layer from its (cached, fixed-point) input on the profiling images.

    `inputs` is the input array (B, C, H, W) or a function (start, stop) -> that slice of the `images` images.
    """
    if isinstance(inputs, np.ndarray):
        array = inputs
        images = len(array)
        inputs = lambda start, stop: array[start:stop]  # noqa: E731
    assert images is not None
    f_count = layer.out_channels
    _, ho, wo = layer.out_shape([tuple(inputs(0, 1).shape[1:])])
    step = max(1, _CHUNK_WINDOWS // max(1, f_count * ho * wo))

    def chunks():
        for s in range(0, images, step):
            yield inputs(s, min(images, s + step))

    # Pass 1, exact mode: each kernel's MACs, output scale (Chan's merge of per-chunk mean and M2) and positive mass.
    exact_stream = reorder_layer(weights, None, reorder)
    exact_op = np.zeros(f_count, dtype=np.int64)
    count, mean, m2 = 0, np.zeros(f_count), np.zeros(f_count)
    pos_mass, pos_energy = np.zeros(f_count), np.zeros(f_count)
    for x in chunks():
        res = run_lanes(x, layer, exact_stream, bias, "exact", terminate_at_zero=terminate_at_zero)
        acc = res.acc.reshape(len(x), f_count, -1)
        exact_op += res.macs.reshape(len(x), f_count, -1).sum(axis=(0, 2), dtype=np.int64)
        k = acc.shape[0] * acc.shape[2]
        cm = acc.mean(axis=(0, 2))
        cm2 = ((acc - cm[None, :, None]) ** 2).sum(axis=(0, 2))
        delta = cm - mean
        total = count + k
        mean = mean + delta * (k / total)
        m2 = m2 + cm2 + delta**2 * (count * k / total)
        count = total
        pos = np.maximum(acc, 0.0)
        pos_mass += pos.sum(axis=(0, 2))
        pos_energy += (pos * pos).sum(axis=(0, 2))
    scale = np.sqrt(m2 / max(count, 1))
    grand = float(mean.mean()) if f_count else 0.0
    layer_var = (float(m2.sum()) + count * float(((mean - grand) ** 2).sum())) / max(f_count * count, 1)
    layer_scale = math.sqrt(layer_var)
    fallback = layer_scale if layer_scale > 0 else (acc_unit or 1.0)
    scale = np.where(scale > 0, scale, fallback)

    fracs = np.sort(np.asarray(settings.th_fractions, dtype=np.float64))
    ths = np.stack([_thresholds(fracs, float(scale[f]), acc_unit) for f in range(f_count)])
    flat_w = weights.reshape(f_count, -1)
    stored = np.count_nonzero(flat_w, axis=1) if reorder.skip_zero_weights else np.full(f_count, flat_w.shape[1])
    # Every kernel's candidate list starts with exact mode (N = 0, loss 0).
    cand_n = [[0] for _ in range(f_count)]
    cand_th = [[0.0] for _ in range(f_count)]
    cand_op = [[int(v)] for v in exact_op]
    cand_loss = [[0.0] for _ in range(f_count)]
    cand_energy = [[0.0] for _ in range(f_count)]
    j_count = ths.shape[1]
    for n in settings.n_values(layer.kernel_size):
        n_arr = np.minimum(n, stored).astype(np.int64)
        stream = reorder_layer(weights, n_arr, reorder)
        saved = np.zeros((f_count, j_count + 1), dtype=np.int64)
        mass = np.zeros((f_count, j_count + 1))
        energy = np.zeros((f_count, j_count + 1))
        macs_go = np.zeros(f_count, dtype=np.int64)
        for x in chunks():
            res = run_lanes(x, layer, stream, bias, "exact", terminate_at_zero=terminate_at_zero, spec_sums=True)
            hw = res.acc.shape[2] * res.acc.shape[3]
            macs_go += res.macs.reshape(len(x), f_count, hw).sum(axis=(0, 2), dtype=np.int64)
            if res.spec_sums is None:
                raise InternalError("run_lanes(spec_sums=True) returned no partial sums")
            spec = np.where(n_arr[None, :, None, None] > 0, res.spec_sums, np.inf)  # N = 0: never stops
            _bin_windows(res.acc.reshape(-1), res.macs.reshape(-1), np.ascontiguousarray(spec).reshape(-1), ths,
                         n_arr, len(x), hw, saved, mass, energy)
        # threshold j stops the windows of bins 0..j
        op = macs_go[:, None] - np.cumsum(saved, axis=1)[:, :j_count]
        loss = np.where(pos_mass[:, None] > 0,
                        np.cumsum(mass, axis=1)[:, :j_count] / np.maximum(pos_mass, 1e-300)[:, None], 0.0)
        eshare = np.where(pos_energy[:, None] > 0,
                          np.cumsum(energy, axis=1)[:, :j_count] / np.maximum(pos_energy, 1e-300)[:, None], 0.0)
        for f in range(f_count):
            if n_arr[f] == 0:
                continue
            cand_n[f] += [int(n_arr[f])] * j_count
            cand_th[f] += ths[f].tolist()
            cand_op[f] += op[f].tolist()
            cand_loss[f] += loss[f].tolist()
            cand_energy[f] += eshare[f].tolist()
    levels = np.asarray(settings.levels)
    T = len(levels)
    out_n = np.zeros((f_count, T), dtype=np.int32)
    out_th = np.zeros((f_count, T))
    out_op = np.zeros((f_count, T), dtype=np.int64)
    out_loss = np.zeros((f_count, T))
    out_energy = np.zeros((f_count, T))
    count_c = np.zeros(f_count, dtype=np.int32)
    for f in range(f_count):
        n_f, th_f = np.asarray(cand_n[f]), np.asarray(cand_th[f])
        op_f, loss_f, en_f = np.asarray(cand_op[f]), np.asarray(cand_loss[f]), np.asarray(cand_energy[f])
        count_c[f] = int(np.count_nonzero((op_f < exact_op[f]) & (loss_f <= levels[0])))
        rank = np.lexsort((n_f, loss_f, op_f))  # by MACs, then loss, then N (exact first among equals)
        for t, level in enumerate(levels):
            i = rank[np.argmax(loss_f[rank] <= level)]  # exact mode (loss 0) always qualifies
            out_n[f, t], out_th[f, t], out_op[f, t] = n_f[i], th_f[i], op_f[i]
            out_loss[f, t], out_energy[f, t] = loss_f[i], en_f[i]
    out_th[out_n == 0] = 0.0
    return LayerProfile(layer=layer.name, n_spec=out_n, threshold=out_th, op=out_op, loss=out_loss,
                        exact_op=exact_op, scale=scale, candidates=count_c, energy=out_energy, pos_mass=pos_mass,
                        pos_energy=pos_energy, images=int(images))
