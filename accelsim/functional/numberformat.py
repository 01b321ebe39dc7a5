"""The datapath's number format as run settings (declared once: flags, sweep keys, config.yaml keys, validation).

Only the declaration and its cross-field rules live here; the arithmetic is in fixedpoint.py (fixed-point grids and
integer-length rules), minifloat.py, shifts.py (power-of-two and LightNN weights), rounding.py (seeded stochastic
rounding) and formats.py (each blob's and layer's format, chosen from calibration data). docs/formats.md describes
every format and what the sources say about it.
"""

from __future__ import annotations

from typing import Literal, get_args

from accelsim.settings import Problems, declared, non_default, setting

NumberFormatKind = Literal["dynamic_fixed", "fixed", "minifloat", "power_of_two", "lightnn1", "lightnn2", "float32"]
Rounding = Literal["nearest", "floor", "stochastic", "truncate"]
IntegerLengthRule = Literal["fit", "thesis", "tool"]
ShiftRange = Literal["fixed", "per_layer"]
ShiftUnderflow = Literal["clamp", "zero"]
NUMBER_FORMATS: tuple[str, ...] = get_args(NumberFormatKind)
ROUNDINGS: tuple[str, ...] = get_args(Rounding)
INTEGER_LENGTH_RULES: tuple[str, ...] = get_args(IntegerLengthRule)
SHIFT_FORMATS = ("power_of_two", "lightnn1", "lightnn2")  # weights are shift codes; activations dynamic fixed point
FIXED_POINT_FORMATS = ("dynamic_fixed", "fixed")  # weights and activations on fixed-point grids
# Formats whose activations lie on a per-blob fixed-point grid (blob_fl): the PAU compares integers on it.
FIXED_GRID_ACTIVATIONS = (*FIXED_POINT_FORMATS, *SHIFT_FORMATS)

# Which formats each format-specific setting applies to (a non-default value with another format is an error).
_APPLIES: dict[str, tuple[str, ...]] = {
    "truncate_lsbs": FIXED_POINT_FORMATS,
    "integer_length_rule": ("dynamic_fixed", *SHIFT_FORMATS),
    "output_il_offset": ("dynamic_fixed", *SHIFT_FORMATS),
    "fixed_integer_bits": ("fixed",),
    "exponent_bits": ("minifloat",),
    "shift_max_exp": SHIFT_FORMATS,
    "shift_range": SHIFT_FORMATS,
    "shift_underflow": SHIFT_FORMATS,
}


@declared
class NumberFormat:
    """How the datapath represents weights and activations (Ristretto's and LightNN's formats, docs/formats.md B.1-B.6).

    `dynamic_fixed` (default): two's complement, one fractional length (FL) per blob and per layer's weights.
    `fixed`: one [IL.FL] format for the whole net. `minifloat`: IEEE-like without denormals, INF or NaN.
    `power_of_two`, `lightnn1`, `lightnn2`: weights are one or two shifts, activations dynamic fixed point.
    `float32`: the unquantised reference. Products go to a wide accumulator in every format (no overflow); the layer
    output is rounded onto the output format once.
    """

    kind: NumberFormatKind = setting(
        default="dynamic_fixed", help="number format: dynamic_fixed (per-layer FL), fixed (one [IL.FL] for the net), "
        "minifloat, power_of_two / lightnn1 / lightnn2 (shift weights), float32 (the unquantised reference)",
        key="number_format", example="minifloat")
    weight_bits: int = setting(
        default=16, help="bits per stored weight (shift formats: sign + exponent code(s))", ge=2, le=24, example=8)
    activation_bits: int = setting(
        default=16, help="bits per activation (layer outputs and the network input)", ge=2, le=24, example=8)
    rounding: Rounding = setting(
        default="nearest", help="rounding onto the format: nearest (ties up), floor (towards -inf; minifloat: mantissa "
        "chopped), stochastic (seeded, unbiased) or truncate (round to nearest, then drop --truncate-lsbs LSBs)",
        example="stochastic")
    truncate_lsbs: int = setting(
        default=0, help="LSBs dropped from every weight and activation word with --rounding truncate (fixed-point "
        "formats; the fixed-point analogue of float bit truncation, docs/formats.md B.10)", ge=0, le=22, example=2,
        needs={"rounding": "truncate"})
    rounding_seed: int = setting(
        default=0, help="seed of stochastic rounding (the same numbers run to run, with any batch size or worker "
        "count)", ge=0, example=3, needs={"rounding": "stochastic"})
    integer_length_rule: IntegerLengthRule = setting(
        default="fit", help="integer length of dynamic fixed point: fit (the smallest with no saturation on the "
        "calibration images), thesis (Ristretto eq 5.2, outputs IL-1) or tool (Ristretto's released code: ceil(log2 "
        "max)+1 for weights, ceil(log2 max) for blobs)", example="tool")
    output_il_offset: int = setting(
        default=0, help="integer bits added to each layer output's integer length, on top of the rule (-1: one "
        "fractional bit more, as Ristretto's IL-1 rule does)", ge=-8, le=8, example=-1)
    fixed_integer_bits: int | None = setting(
        default=None, help="integer bits (sign included) of --number-format fixed, one [IL.FL] for every weight and "
        "output; default: the split that agrees best with the float network on the calibration images (B.1)",
        ge=-16, le=40, example=4, needs={"number_format": "fixed"})
    exponent_bits: int | None = setting(
        default=None, help="exponent bits of --number-format minifloat; default: Ristretto eq 6.2 from the calibration "
        "ranges", ge=1, le=7, example=4, needs={"number_format": "minifloat"})
    shift_max_exp: int | None = setting(
        default=None, help="largest weight exponent of the shift formats (weights +-2^e); default: -1 for power_of_two "
        "(Ristretto's [-8, -1] at 4 bits), 0 for lightnn1/lightnn2 (LightNN's m = 0..7)", ge=-60, le=60, example=0,
        needs={"number_format": "power_of_two", "weight_bits": 4})
    shift_range: ShiftRange = setting(
        default="fixed", help="exponent range of the shift formats: fixed (from --shift-max-exp, as the sources) or "
        "per_layer (the top exponent follows each layer's largest weight, like dynamic fixed point)",
        example="per_layer", needs={"number_format": "lightnn1", "weight_bits": 4})
    shift_underflow: ShiftUnderflow = setting(
        default="clamp", help="shift-format weights below the smallest power: clamp (to +-2^min, as the sources, whose "
        "codes have no zero) or zero (one code pair holds 0, so one exponent fewer)", example="zero",
        needs={"number_format": "power_of_two", "weight_bits": 3})

    def __post_init__(self) -> None:
        changed = non_default(self)
        if self.kind == "float32":
            others = [k for k in changed if k != "number_format"]
            if others:
                raise Problems([f"{', '.join(others)} appl{'ies' if len(others) == 1 else 'y'} to quantised "
                                "formats only; number_format is float32"])
            return
        problems = [f"{key} applies to number_format {' / '.join(kinds)} only; number_format is {self.kind}"
                    for key, kinds in _APPLIES.items() if key in changed and self.kind not in kinds]
        if "rounding_seed" in changed and self.rounding != "stochastic":
            problems.append(f"rounding_seed applies to stochastic rounding only; rounding is {self.rounding}")
        if self.rounding == "truncate":
            if self.kind not in FIXED_POINT_FORMATS:
                problems.append(f"rounding truncate drops LSBs of fixed-point words; number_format {self.kind} "
                                "rounds nearest, floor or stochastic")
            elif self.truncate_lsbs < 1:
                problems.append("rounding truncate needs truncate_lsbs >= 1 (the LSBs each word drops)")
            elif self.truncate_lsbs > min(self.weight_bits, self.activation_bits) - 2:
                problems.append(f"truncate_lsbs = {self.truncate_lsbs} leaves fewer than 2 bits of the "
                                f"{min(self.weight_bits, self.activation_bits)}-bit words")
        elif "truncate_lsbs" in changed and self.kind in FIXED_POINT_FORMATS:
            problems.append(f"truncate_lsbs applies to rounding truncate only; rounding is {self.rounding}")
        if self.kind in SHIFT_FORMATS and self.rounding == "floor":
            problems.append(f"number_format {self.kind} rounds nearest or stochastic (the sources define no floor "
                            "for shift weights)")
        if self.kind == "minifloat" and self.exponent_bits is not None:
            for what, bits in (("weight_bits", self.weight_bits), ("activation_bits", self.activation_bits)):
                if self.exponent_bits > bits - 1:
                    problems.append(f"exponent_bits = {self.exponent_bits} does not fit a {bits}-bit minifloat "
                                    f"({what} = {bits}): sign + exponent need {self.exponent_bits + 1} bits")
        if self.kind == "lightnn2" and self.weight_bits < 3:
            problems.append(f"lightnn2 stores a sign and two exponent fields: weight_bits must be >= 3, got "
                            f"{self.weight_bits}")
        if self.shift_range == "per_layer" and self.shift_max_exp is not None:
            problems.append("shift_max_exp sets a fixed exponent range; shift_range per_layer takes it from each "
                            "layer's weights (give one of them)")
        if problems:
            raise Problems(problems)

    @property
    def is_fixed(self) -> bool:
        """Activations lie on a per-blob fixed-point grid (the PAU compares integers)."""
        return self.kind in FIXED_GRID_ACTIVATIONS

    @property
    def quantised(self) -> bool:
        """Anything but the float32 reference (then the formats are chosen from calibration images)."""
        return self.kind != "float32"

    @property
    def stored_weight_bits(self) -> int:
        """Bits a weight occupies in the buffers (the truncated LSBs are not stored)."""
        return self.weight_bits - (self.truncate_lsbs if self.rounding == "truncate" else 0)

    @property
    def stored_activation_bits(self) -> int:
        """Bits an activation occupies in the buffers."""
        return self.activation_bits - (self.truncate_lsbs if self.rounding == "truncate" else 0)
