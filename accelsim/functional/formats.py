"""The formats of one prepared network: how every blob and every layer's weights, bias and thresholds are rounded.

`Formats.choose` turns a `NumberFormat` (the run settings) and the calibration ranges into per-blob and per-layer
formats; the forward pass asks it to round blobs (`blob`), weights (`weights`), biases (`bias`) and predictive
thresholds (`threshold`, which live on the format's accumulator). `format_bits` is the format's cost summary for the
timing and energy models (bits stored per weight and activation, the MAC's kind and operand widths). See
docs/formats.md for every format and the sources' rules.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from accelsim.errors import ConfigError
from accelsim.functional.fixedpoint import fractional_length, quantize
from accelsim.functional.minifloat import exponent_bits_for, quantize_minifloat
from accelsim.functional.numberformat import FIXED_GRID_ACTIVATIONS, SHIFT_FORMATS, NumberFormat
from accelsim.functional.ops import OutputGrid
from accelsim.functional.rounding import image_keys, name_key, row_uniforms, stochastic_fixed
from accelsim.functional.shifts import (
    default_top_exponent,
    exponent_count,
    exponent_range,
    layer_top_exponent,
    legal_magnitudes,
    quantize_power_of_two,
    quantize_to_set,
)

log = logging.getLogger(__name__)

ACC_BITS = 62  # the wide accumulator's code width: bias and thresholds are rounded onto it without saturating

MacKind = Literal["multiply", "shift", "shift_add", "float_multiply", "float32"]


def quantize_truncated(x: np.ndarray, fl: int, bits: int, lsbs: int) -> np.ndarray:
    """Round to nearest onto the `bits`-wide grid 2**-fl, then drop the `lsbs` low bits of each two's complement word
    (shift right, then left: towards -inf), as S0 truncates its weight words (docs/formats.md B.10). float64 result."""
    return quantize(quantize(x, fl, bits, "nearest"), fl - lsbs, bits - lsbs, "floor")


@dataclass(frozen=True)
class LayerWeights:
    """How one layer's weights were put onto the format."""

    fl: int | None  # every weight is an integer multiple of 2**-fl (fixed-point and shift formats); None otherwise
    exponents: tuple[int, int] | None = None  # shift formats: (lowest, top) exponent of the layer's range


@dataclass
class Formats:
    """Per-blob and per-layer formats of one network under one NumberFormat (built by `choose`)."""

    nf: NumberFormat
    blob_fl: dict[str, int] = field(default_factory=dict)  # FL of every blob (activations on a fixed-point grid)
    exponent_bits: int | None = None  # minifloat: exponent bits of every value
    fixed_integer_bits: int | None = None  # fixed: the one IL of the net
    layer_weights: dict[str, LayerWeights] = field(default_factory=dict)

    @classmethod
    def choose(cls, nf: NumberFormat, ranges: Mapping[str, float], input_blob: str,
               fixed_integer_bits: int | None = None) -> Formats:
        """Formats from the largest |value| of every blob on the calibration images (`ranges`).

        For `fixed` the IL is `fixed_integer_bits` (the forward pass searches it when the settings give none).
        """
        if not nf.quantised:
            return cls(nf)
        if nf.kind == "minifloat":
            e = nf.exponent_bits
            if e is None:
                e = max((exponent_bits_for(m) for m in ranges.values()), default=1)
                widest = min(nf.weight_bits, nf.activation_bits) - 1
                if e > widest:
                    log.warning("minifloat: eq 6.2 asks for %d exponent bits, the %d-bit format has room for %d; "
                                "using %d (no mantissa bits)", e, widest + 1, widest, widest)
                    e = widest
            return cls(nf, exponent_bits=e)
        if nf.kind == "fixed":
            il = nf.fixed_integer_bits if nf.fixed_integer_bits is not None else fixed_integer_bits
            if il is None:
                raise ConfigError("number_format fixed: no integer length given or searched")
            return cls(nf, blob_fl={b: nf.activation_bits - il for b in ranges}, fixed_integer_bits=il)
        blob_fl = {}
        for blob, m in ranges.items():
            role = "input" if blob == input_blob else "output"
            offset = 0 if role == "input" else nf.output_il_offset
            blob_fl[blob] = fractional_length(m, nf.activation_bits, offset, nf.integer_length_rule, role)
        return cls(nf, blob_fl=blob_fl)

    # -- activations ---------------------------------------------------------------------------------------------
    @property
    def fixed(self) -> bool:
        return self.nf.kind in FIXED_GRID_ACTIVATIONS

    def output_grid(self, blob: str) -> OutputGrid | None:
        """The grid the fused conv epilogue can round `blob` onto (deterministic nearest/floor only), else None."""
        if not self.fixed or self.nf.rounding not in ("nearest", "floor"):
            return None
        return OutputGrid(self.blob_fl[blob], self.nf.activation_bits, self.nf.rounding)

    def blob(self, name: str, x: np.ndarray) -> np.ndarray:
        """`x` (images along the leading axis) rounded onto blob `name`'s format."""
        nf = self.nf
        if not nf.quantised:
            return x
        if nf.kind == "minifloat":
            assert self.exponent_bits is not None
            u = self._blob_uniforms(name, x) if nf.rounding == "stochastic" else None
            return quantize_minifloat(x, self.exponent_bits, nf.activation_bits - 1 - self.exponent_bits,
                                      nf.rounding, u)
        fl = self.blob_fl[name]
        if nf.rounding == "stochastic":
            keys = image_keys(x, name_key(nf.rounding_seed, "blob", name))
            return stochastic_fixed(x, fl, nf.activation_bits, keys)
        if nf.rounding == "truncate":
            return quantize_truncated(x, fl, nf.activation_bits, nf.truncate_lsbs)
        return quantize(x, fl, nf.activation_bits, nf.rounding)

    def _blob_uniforms(self, name: str, x: np.ndarray) -> np.ndarray:
        keys = image_keys(x, name_key(self.nf.rounding_seed, "blob", name))
        return row_uniforms(keys, int(np.prod(x.shape[1:]))).reshape(x.shape)

    # -- weights, bias, thresholds -------------------------------------------------------------------------------
    def weights(self, layer: str, w: np.ndarray) -> tuple[np.ndarray, int | None]:
        """A layer's weights on the format, and their FL (None where they are not on a fixed-point grid)."""
        nf = self.nf
        w = np.asarray(w, dtype=np.float64)
        if not nf.quantised:
            return w, None
        u = None
        if nf.rounding == "stochastic" and nf.kind not in ("dynamic_fixed", "fixed"):
            u = row_uniforms(np.array([name_key(nf.rounding_seed, "weights", layer)]), w.size).reshape(w.shape)
        if nf.kind == "minifloat":
            assert self.exponent_bits is not None
            out = quantize_minifloat(w, self.exponent_bits, nf.weight_bits - 1 - self.exponent_bits, nf.rounding, u)
            self.layer_weights[layer] = LayerWeights(fl=None)
            return out, None
        if nf.kind in SHIFT_FORMATS:
            return self._shift_weights(layer, w, u)
        top = float(np.max(np.abs(w))) if w.size else 0.0
        if nf.kind == "fixed":
            assert self.fixed_integer_bits is not None
            fl = nf.weight_bits - self.fixed_integer_bits
        else:
            fl = fractional_length(top, nf.weight_bits, 0, nf.integer_length_rule, "weights")
        if nf.rounding == "stochastic":
            key = name_key(nf.rounding_seed, "weights", layer)
            out = stochastic_fixed(w.reshape(1, -1), fl, nf.weight_bits, np.array([key])).reshape(w.shape)
        elif nf.rounding == "truncate":
            out = quantize_truncated(w, fl, nf.weight_bits, nf.truncate_lsbs)
        else:
            out = quantize(w, fl, nf.weight_bits, nf.rounding)
        self.layer_weights[layer] = LayerWeights(fl=fl)
        return out, fl

    def _shift_weights(self, layer: str, w: np.ndarray, u: np.ndarray | None) -> tuple[np.ndarray, int | None]:
        nf = self.nf
        zero = nf.shift_underflow == "zero"
        if nf.shift_range == "per_layer":
            top = layer_top_exponent(nf.kind, float(np.max(np.abs(w))) if w.size else 0.0)
        else:
            top = nf.shift_max_exp if nf.shift_max_exp is not None else default_top_exponent(nf.kind)
        low, top = exponent_range(nf.kind, nf.weight_bits, zero, top)
        if nf.kind == "power_of_two":
            out = quantize_power_of_two(w, low, top, nf.rounding, zero, u)
        else:
            out = quantize_to_set(w, legal_magnitudes(nf.kind, low, top, zero), nf.rounding, u)
        fl = _grid_fl(out)
        self.layer_weights[layer] = LayerWeights(fl=fl, exponents=(low, top))
        return out, fl

    def accumulator_fl(self, in_blob: str, fl_w: int | None) -> int | None:
        """FL of the accumulator of a layer reading `in_blob` with weights of FL `fl_w`; None: not a fixed grid."""
        if not self.fixed or fl_w is None:
            return None
        return self.blob_fl[in_blob] + fl_w

    def bias(self, layer: str, b: np.ndarray, in_blob: str, fl_w: int | None) -> np.ndarray:
        """The bias as it initialises the accumulator: at the accumulator's precision on fixed grids (no saturation),
        rounded onto the weights' minifloat in minifloat ("bias added in minifloat", docs/formats.md B.3)."""
        nf = self.nf
        b = np.asarray(b, dtype=np.float64)
        if not nf.quantised:
            return b
        if nf.kind == "minifloat":
            assert self.exponent_bits is not None
            u = None
            if nf.rounding == "stochastic":
                u = row_uniforms(np.array([name_key(nf.rounding_seed, "bias", layer)]), b.size).reshape(b.shape)
            return quantize_minifloat(b, self.exponent_bits, nf.weight_bits - 1 - self.exponent_bits, nf.rounding, u)
        return self._on_accumulator(b, in_blob, fl_w)

    def threshold(self, th: np.ndarray, in_blob: str, fl_w: int | None) -> np.ndarray:
        """Predictive thresholds on the format's accumulator (fixed grids: its grid; minifloat: full precision)."""
        th = np.asarray(th, dtype=np.float64)
        if self.nf.kind == "minifloat" or not self.nf.quantised:
            return th
        return self._on_accumulator(th, in_blob, fl_w)

    def _on_accumulator(self, v: np.ndarray, in_blob: str, fl_w: int | None) -> np.ndarray:
        fl = self.accumulator_fl(in_blob, fl_w)
        if fl is None:
            return v
        return quantize(v, fl, ACC_BITS, "floor" if self.nf.rounding == "floor" else "nearest")

    def describe(self) -> dict[str, object]:
        """What was chosen (for the run's summary): FLs, exponent bits, the fixed IL, shift exponent ranges."""
        nf = self.nf
        out: dict[str, object] = {"number_format": nf.kind}
        if self.blob_fl:
            out["blob_fractional_length"] = dict(self.blob_fl)
        fls = {k: v.fl for k, v in self.layer_weights.items() if v.fl is not None}
        if fls and nf.kind not in SHIFT_FORMATS:
            out["weight_fractional_length"] = fls
        if self.exponent_bits is not None:
            out["exponent_bits"] = self.exponent_bits
            out["mantissa_bits"] = {"weights": nf.weight_bits - 1 - self.exponent_bits,
                                    "activations": nf.activation_bits - 1 - self.exponent_bits}
        if self.fixed_integer_bits is not None:
            out["fixed_integer_bits"] = self.fixed_integer_bits
        shifts = {k: list(v.exponents) for k, v in self.layer_weights.items() if v.exponents is not None}
        if shifts:
            out["weight_exponent_range"] = shifts
        return out


def _grid_fl(v: np.ndarray) -> int | None:
    """The smallest FL with every value an integer multiple of 2**-FL (None when all are 0)."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    a = a[a > 0]
    if a.size == 0:
        return 0
    frac, exp = np.frexp(a)
    mant = np.ldexp(frac, 53).astype(np.int64)  # exact: 53-bit integer mantissas
    low_bit = mant & -mant
    lowest = exp.astype(np.int64) - 53 + np.log2(low_bit.astype(np.float64)).astype(np.int64)
    return int(-lowest.min())


def sums_exact(weights: np.ndarray, bias: np.ndarray, x_fl: int, x_bits: int, w_fl: int | None) -> bool:
    """Whether every partial sum of a layer is exact in float64 for any input on the grid (x_fl, x_bits): then a
    BLAS GEMM gives the stream-order walk's values bit for bit (see lanes._sums_are_exact, its data-driven twin)."""
    if w_fl is None:
        return False
    x_max = math.ldexp(2.0 ** (x_bits - 1), -x_fl)
    w = np.abs(np.asarray(weights, dtype=np.float64)).reshape(len(weights), -1)
    bound = float(np.max(np.abs(bias) + w.sum(axis=1) * x_max, initial=0.0))
    return bound * (1.0 + 1e-9) < math.ldexp(1.0, 52 - (x_fl + w_fl))


# -- costs ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FormatBits:
    """What a format costs the hardware, per value: the timing and energy models' view of a NumberFormat.

    `weight_bits` / `activation_bits` are stored bits (buffers, NoC, DRAM); `mac_kind` and the operand widths drive
    the MAC energy scaling (accelsim.energy.mac_energy_scale, docs/arch_energy.md).
    """

    number_format: str
    weight_bits: int  # bits per stored weight
    activation_bits: int  # bits per stored activation (layer outputs, the input image)
    mac_kind: MacKind
    multiplier_bits: tuple[int, int]  # operand widths into the multiplier (significands for minifloat; 0s: none)
    shift_stages: int = 0  # barrel-shifter stages (log2 of the exponent count) per shift; 0 without shifts
    product_bits: int = 0  # width of one product entering the accumulator
    exponent_bits: int = 0  # minifloat: exponent bits (the exponent adder and the alignment of the accumulator)


def cost_settings(nf: NumberFormat) -> frozenset[str]:
    """The run settings (flat keys) of `nf` that change what it costs the hardware (`format_bits`): stored widths and
    the MAC's kind and widths. A shape-only run honours these and no other format setting."""
    keys = {"number_format", "weight_bits", "activation_bits", "exponent_bits", "shift_underflow"}
    if nf.rounding == "truncate":  # truncated LSBs are not stored
        keys |= {"rounding", "truncate_lsbs"}
    return frozenset(keys)


def format_bits(nf: NumberFormat, exponent_bits: int | None = None) -> FormatBits:
    """The format's bits and MAC kind from its settings (minifloat's exponent bits: given, or as chosen by
    `Formats.choose`; default the settings' value, else 5)."""
    w, a = nf.stored_weight_bits, nf.stored_activation_bits
    if nf.kind == "float32":
        return FormatBits("float32", 32, 32, "float32", (24, 24), product_bits=48, exponent_bits=8)
    if nf.kind in ("dynamic_fixed", "fixed"):
        return FormatBits(nf.kind, w, a, "multiply", (w, a), product_bits=w + a)
    if nf.kind == "minifloat":
        e = exponent_bits if exponent_bits is not None else (nf.exponent_bits or 5)
        mw, ma = w - 1 - e, a - 1 - e
        # A product of two minifloats, accumulated in full precision (B.3), needs a fixed-point accumulator
        # spanning both exponent ranges (Kulisch): 2 * 2^e positions plus the significands.
        span = 2 * 2**e + (mw + 1) + (ma + 1)
        return FormatBits(nf.kind, w, a, "float_multiply", (mw + 1, ma + 1), product_bits=span, exponent_bits=e)
    zero = nf.shift_underflow == "zero"
    n = exponent_count(nf.kind, nf.weight_bits, zero)
    stages = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    span = a + n  # an activation shifted over n exponents
    kind: MacKind = "shift_add" if nf.kind == "lightnn2" else "shift"
    return FormatBits(nf.kind, nf.weight_bits, a, kind, (0, 0), shift_stages=stages, product_bits=span)
