"""The DSL builtins that round a value into a narrow type (`to_f16(x)`, `to_e4m3fn_sat(x)`, `to_i4(x)`, ...).

The result is in the narrow type's carrier (float32, or int8/uint8 for the 4- and 2-bit integers); the semantics are
woodpecker.ir.formats' (ONNX's reference Cast). The rounding is integer arithmetic on the bits of the source float,
not a float cast through the narrow type: it is the same on every target (TVM's LLVM backend has no float8 or
float4, and its bfloat16 legalization turns a NaN near the top of the mantissa into an infinity), and the kernels
are compiled with fast-math flags, under which float compares with NaN or inf may fold away. Float arithmetic is
used only on finite values (the subnormal range's rounding), and only where it is exact.
"""

from __future__ import annotations

from woodpecker.ir.formats import E8M0, E8M0_ROUND_MODES, FLOAT_FORMATS, INT_FORMATS, FloatFormat, IntFormat


def builtin_name(type_name: str, saturate: bool = True, round_mode: str = "up") -> str:
    """The DSL builtin that rounds into `type_name` (saturate applies to the float8 types, round_mode to e8m0)."""
    if type_name == E8M0:
        return f"to_e8m0_{round_mode}" + ("_sat" if saturate else "")
    if type_name in INT_FORMATS:
        return "to_" + INT_FORMATS[type_name].short
    fmt = FLOAT_FORMATS[type_name]
    return "to_" + fmt.short + ("_sat" if saturate and fmt.saturable else "")


def _builtins() -> dict[str, tuple[str, bool, str]]:
    out = {}
    for name, fmt in FLOAT_FORMATS.items():
        for sat in ((False, True) if fmt.saturable else (False,)):
            out[builtin_name(name, sat)] = (name, sat, "up")
    for name in INT_FORMATS:
        out[builtin_name(name)] = (name, False, "up")
    for mode in E8M0_ROUND_MODES:
        for sat in (False, True):
            out[builtin_name(E8M0, sat, mode)] = (E8M0, sat, mode)
    return out


# builtin name -> (narrow type, saturate, round_mode)
NARROW_BUILTINS: dict[str, tuple[str, bool, str]] = _builtins()


def lower_narrow(func: str, x, dtype: str):
    """The TIR expression of builtin `func` applied to x (a TIR expression of numpy dtype `dtype`)."""
    type_name, saturate, round_mode = NARROW_BUILTINS[func]
    if type_name in INT_FORMATS:
        return _to_int(x, dtype, INT_FORMATS[type_name])
    if type_name == E8M0:
        return _to_e8m0(x if dtype == "float32" else x.astype("float32"), saturate, round_mode)
    if not dtype.startswith("float"):
        x, dtype = x.astype("float64"), "float64"  # exact for integers below 2**53: one rounding, as ml_dtypes
    return _to_float(x, dtype, FLOAT_FORMATS[type_name], saturate)


class _Bits:
    """The IEEE layout of the source float: float32, or float64 (rounded in float64: a float64 -> float32 -> narrow
    path would round twice)."""

    def __init__(self, dtype: str) -> None:
        self.width = 64 if dtype == "float64" else 32
        self.mant = 52 if self.width == 64 else 23
        self.bias = 1023 if self.width == 64 else 127
        self.float = dtype
        self.uint = f"uint{self.width}"

    def const(self, v: int):
        from tvm import tirx

        return tirx.const(v, self.uint)

    def of(self, value: float) -> int:
        """The bits of a finite positive value that is exact in this float type."""
        import struct

        if self.width == 64:
            return struct.unpack("<Q", struct.pack("<d", value))[0]
        return struct.unpack("<I", struct.pack("<f", value))[0]


def _to_float(x, dtype: str, fmt: FloatFormat, saturate: bool):
    from tvm import tirx

    b = _Bits(dtype)
    u = tirx.reinterpret(b.uint, x)
    one = b.const(1)
    top = b.const(b.width - 1)
    sign = (u >> top) << top  # shifts, not masks: a uint64 mask constant above 2**63 is not an IntImm
    mag = (u << one) >> one
    inf_bits = b.const(((1 << (b.width - b.mant - 1)) - 1) << b.mant)
    is_nan = mag > inf_bits
    # round to nearest even at bit s: add half an ulp less one, plus the ulp bit, then drop the bits below s
    s = b.mant - fmt.mantissa_bits
    shift = b.const(s)
    bumped = mag + b.const((1 << (s - 1)) - 1) + ((mag >> shift) & one)
    rounded = (bumped >> shift) << shift
    if fmt.min_normal_exp > 1 - b.bias:
        # below the format's smallest normal the quantum is fixed: scale it to 1, round to an integer, scale back
        # (powers of two: exact; `mag` is finite where this arm is taken)
        quantum_exp = fmt.min_normal_exp - fmt.mantissa_bits
        a = tirx.reinterpret(b.float, mag)
        q = tirx.nearbyint(a * tirx.const(2.0 ** -quantum_exp, b.float)) * tirx.const(2.0 ** quantum_exp, b.float)
        small = mag < b.const(b.of(2.0 ** fmt.min_normal_exp))
        rounded = tirx.Select(small, tirx.reinterpret(b.uint, q), rounded)
    max_bits = b.const(b.of(fmt.max_finite))
    if (saturate and fmt.saturable) or not (fmt.has_inf or fmt.has_nan):
        over = max_bits  # float4e2m1 has neither inf nor NaN: ml_dtypes clamps
    elif fmt.has_inf:
        over = inf_bits
    else:
        over = inf_bits | b.const(1 << (b.mant - 1))  # NaN
    out = tirx.Select(rounded > max_bits, over, rounded)
    if fmt.unsigned_zero:
        sign = tirx.Select(out == b.const(0), b.const(0), sign)
    if fmt.has_nan:
        out = tirx.Select(is_nan, inf_bits | b.const(1 << (b.mant - 1)), out)
    else:
        # no NaN in the format: ml_dtypes gives a zero of the opposite sign (a positive NaN becomes -0)
        sign = tirx.Select(is_nan, (sign ^ (one << top)), sign)
        out = tirx.Select(is_nan, b.const(0), out)
    value = tirx.reinterpret(b.float, sign | out)
    return value if dtype == "float32" else value.astype("float32")  # exact: every result is a float32 value


def _to_int(x, dtype: str, fmt: IntFormat):
    """ml_dtypes' conversion: a float truncates towards zero and gives 0 when that is out of range (NaN and inf
    too); an integer wraps (keeps its low bits)."""
    from tvm import tirx

    target = "int8" if fmt.signed else "uint8"
    if dtype.startswith("float"):
        b = _Bits(dtype)
        u = tirx.reinterpret(b.uint, x)
        one = b.const(1)
        finite = ((u << one) >> one) < b.const(((1 << (b.width - b.mant - 1)) - 1) << b.mant)
        xf = tirx.reinterpret(b.float, tirx.Select(finite, u, b.const(0)))  # no NaN or inf reaches a float op
        t = tirx.trunc(xf)
        ok = tirx.all(t >= tirx.const(float(fmt.low), dtype), t <= tirx.const(float(fmt.high), dtype))
        return tirx.Select(ok, t, tirx.const(0.0, dtype)).astype(target)
    v = x.astype("int32")
    free = tirx.const(32 - fmt.bits, "int32")
    if fmt.signed:
        return ((v << free) >> free).astype(target)  # arithmetic shift: sign-extends the low bits
    return (v & tirx.const((1 << fmt.bits) - 1, "int32")).astype(target)


def _to_e8m0(x, saturate: bool, round_mode: str):
    """onnx.numpy_helper.to_float8e8m0, bit for bit: the sign is dropped, the exponent field rounded by the
    fraction bits ("up": any fraction; "nearest": the guard bit with round/sticky/lsb; "down": never), NaN and
    inf become NaN; the result 2^(E-127) is a float32 (E = 0 is the subnormal 2^-127)."""
    from tvm import tirx

    u = tirx.reinterpret("uint32", x)

    def c(v: int):
        return tirx.const(v, "uint32")

    e = (u >> c(23)) & c(0xFF)
    special = e == c(0xFF)
    if round_mode == "up":
        inc = (u & c(0x7FFFFF)) != c(0)
    elif round_mode == "nearest":
        g = (u & c(0x400000)) != c(0)
        rest = tirx.any((u & c(0x200000)) != c(0), (u & c(0x1FFFFF)) != c(0), e > c(0))
        inc = tirx.all(g, rest)
    else:
        inc = None
    if inc is not None and saturate:
        inc = tirx.all(inc, e != c(0xFE))
    if inc is not None:
        e = e + tirx.Select(tirx.all(inc, tirx.Not(special)), c(1), c(0))
    bits = tirx.Select(e >= c(0xFF), c(0x7FC00000), tirx.Select(e == c(0), c(0x00400000), e << c(23)))
    return tirx.reinterpret("float32", bits)

