"""The math of :mod:`fastsig._math`, emitted as explicit 16-lane LLVM vector code.

Why: the kernels look up 2**(j/16) (float32) or 2**(j/8) (float64) in a
table. In a scalar loop, LLVM's loop vectorizer turns that lookup into a
gather (or gives up: float64 then ran 5x slower), which costs more than
the rest of the kernel; as vector code, the table is one register and the
lookup one permute (``vpermps``, ``vpermpd`` on AVX-512; with AVX2 two
``vpermps`` and a blend per register). And the lanes outside the vector
pass's range (float32 |x| > 64, in float64 arithmetic; float64 |x| > 600)
would otherwise go one by one through the scalar code. So the CPU array
loops run the very Python functions of :mod:`fastsig._math` once more,
with their primitives (``fma``, ``mul``, ``select``, ``f32``, ``lookup``,
``types.float64``, ...) rebound to the ones here, on :class:`Lanes` values
that emit IR as they are combined: one source for the math, the scalar
code (CUDA, the tests' reference) and the vector code giving the same
bits (the tests check it).

Only the operations those functions use are implemented; every one is a
plain IEEE operation (no fast-math flags, so LLVM fuses nothing) but the
reciprocal estimate (``vrcp14ps``/``vrcp14pd``, emitted only for targets
with AVX-512, as _math's scalar ``reciprocal`` emits ``vrcp14ss`` /
``vrcp14sd``), and the IR is otherwise generic but for the permutes of the
lookup (AVX-512 or AVX2, else extracts): it is valid on any CPU. With
256-bit vectors LLVM splits each operation in two (float32) or four
(float64), so the kernels take fewer vectors per step there
(_kernels._BLOCKS_BY_REGISTERS).
"""

from __future__ import annotations

from types import FunctionType
from typing import Callable

from llvmlite import ir
from numba.core import cgutils

from . import _math

#: Elements per vector.
LANES = 16
_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_FLOATS = ir.VectorType(_F32, LANES)
_INTS = ir.VectorType(_I32, LANES)
_DOUBLES = ir.VectorType(ir.DoubleType(), LANES)
_INT64S = ir.VectorType(ir.IntType(64), LANES)
_BYTE_POINTER = ir.IntType(8).as_pointer()


def _declare(builder: ir.IRBuilder, name: str, return_type: ir.Type, argument_types: list) -> ir.Function:
    """The LLVM intrinsic ``name`` in the module being built."""
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(return_type, argument_types), name)


class Lanes:
    """A float32, float64, int32 or int64 value in each of 16 lanes of one
    or more vectors (blocks): vector values in the IR being built.

    Every operation is emitted for each block in turn, so that the blocks'
    instructions come interleaved: each block's chain of dependent
    operations is long (an exp, a quotient and its correction), and
    independent work next to it keeps the CPU's schedulers from filling
    with instructions that wait.
    """

    __slots__ = ("builder", "values")

    def __init__(self, builder: ir.IRBuilder, values: tuple) -> None:
        self.builder = builder
        self.values = values

    @property
    def vector_type(self) -> ir.VectorType:
        return self.values[0].type

    @property
    def is_float(self) -> bool:
        return self.vector_type in (_FLOATS, _DOUBLES)

    def _lift(self, other: "Lanes | float | int") -> tuple:
        """``other`` per block, as vectors of this one's type (Python numbers are splatted)."""
        if isinstance(other, Lanes):
            return other.values
        constant = ir.Constant(self.vector_type, [float(other) if self.is_float else int(other)] * LANES)
        return (constant,) * len(self.values)

    def _map(self, operation: Callable, *others) -> "Lanes":
        """``operation(self, *others)`` per block."""
        columns = [self._lift(other) for other in others]
        return Lanes(self.builder, tuple(operation(value, *(c[b] for c in columns)) for b, value in enumerate(self.values)))

    def _arithmetic(self, float_operation: str, int_operation: str, other) -> "Lanes":
        return self._map(getattr(self.builder, float_operation if self.is_float else int_operation), other)

    def __add__(self, other):
        return self._arithmetic("fadd", "add", other)

    def __radd__(self, other):
        return self._constant(other) + self

    def __sub__(self, other):
        return self._arithmetic("fsub", "sub", other)

    def __rsub__(self, other):
        return self._constant(other) - self

    def __mul__(self, other):
        return self._arithmetic("fmul", "mul", other)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self._map(self.builder.fdiv, other)

    def __rtruediv__(self, other):
        return self._constant(other) / self

    def __neg__(self):
        return self._map(self.builder.fneg if self.is_float else self.builder.neg)

    def __abs__(self):
        fabs = _declare(self.builder, f"llvm.fabs.{_suffix(self.vector_type)}", self.vector_type, [self.vector_type])
        return self._map(lambda v: self.builder.call(fabs, [v]))

    def __lt__(self, other):
        return self._map(lambda a, b: self.builder.fcmp_ordered("<", a, b), other)

    def __le__(self, other):
        return self._map(lambda a, b: self.builder.fcmp_ordered("<=", a, b), other)

    def __ge__(self, other):
        return self._map(lambda a, b: self.builder.fcmp_ordered(">=", a, b), other)

    def __gt__(self, other):
        return self._map(lambda a, b: self.builder.fcmp_ordered(">", a, b), other)

    def __and__(self, other):
        return self._map(self.builder.and_, other)

    def __or__(self, other):
        return self._map(self.builder.or_, other)

    def __rshift__(self, other):
        return self._map(self.builder.ashr, other)

    def __lshift__(self, other):
        return self._map(self.builder.shl, other)

    def _constant(self, value: float | int) -> "Lanes":
        return Lanes(self.builder, self._lift(value))


def _suffix(vector_type: ir.VectorType) -> str:
    """The type's part of an overloaded intrinsic's name: v16f32 or v16f64."""
    return "v16f32" if vector_type == _FLOATS else "v16f64"


# The primitives of _math, for Lanes. Each has the meaning of the Numba one
# it replaces (see _math).
def _fma(a: Lanes | float, b: Lanes | float, c: Lanes | float) -> Lanes:
    like = next(v for v in (a, b, c) if isinstance(v, Lanes))  # a constant may come first
    fma = _declare(like.builder, f"llvm.fma.{_suffix(like.vector_type)}", like.vector_type, [like.vector_type] * 3)
    a, b, c = (Lanes(like.builder, like._lift(v)) for v in (a, b, c))
    return a._map(lambda x, y, z: like.builder.call(fma, [x, y, z]), b, c)


def _mul(a: Lanes, b: Lanes | float) -> Lanes:
    return a * b


def select(condition: Lanes | bool, if_true: Lanes | float, if_false: Lanes | float) -> Lanes:
    """Per lane, ``if_true`` where ``condition`` holds, else ``if_false``
    (a Python bool, such as _math's full_range, picks one of them whole)."""
    if isinstance(condition, bool):
        return if_true if condition else if_false
    like = next((v for v in (if_true, if_false) if isinstance(v, Lanes)), None)
    if like is None:  # two constants: float lanes
        like = Lanes(condition.builder, (ir.Constant(_FLOATS, [0.0] * LANES),) * len(condition.values))
    values = (like._lift(if_true), like._lift(if_false))
    return condition._map(lambda c, a, b: condition.builder.select(c, a, b), *(Lanes(like.builder, v) for v in values))


def _max(a: Lanes | float, b: Lanes | float) -> Lanes:
    """Per lane, Numba's max(a, b) of two floats: b where b > a, else a (a NaN a stays)."""
    return select(b > a, b, a)


def _per_register(builder: ir.IRBuilder, value: ir.Value, width: int, operate: Callable) -> ir.Value:
    """``operate`` (an intrinsic of ``width`` lanes, one register) on a
    vector of 16 lanes: on each ``width``-lane part and the parts joined
    again (16 float64 lanes are two 512-bit registers, or four 256-bit
    ones), else at once."""
    if width == LANES:
        return operate(value)
    parts = [operate(builder.shuffle_vector(value, value, ir.Constant(ir.VectorType(_I32, width), list(range(at, at + width)))))
             for at in range(0, LANES, width)]
    while len(parts) > 1:  # pairs joined into vectors twice as wide
        parts = [builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, 2 * a.type.count), list(range(2 * a.type.count))))
                 for a, b in zip(parts[::2], parts[1::2])]
    return parts[0]


# The 512-bit reciprocal estimates, and how many lanes each takes.
_RCP14 = {_FLOATS: ("llvm.x86.avx512.rcp14.ps.512", LANES), _DOUBLES: ("llvm.x86.avx512.rcp14.pd.512", LANES // 2)}


def _reciprocal(d: Lanes) -> Lanes:
    """_math.reciprocal per lane: vrcp14ps/vrcp14pd and a Newton step where
    the CPU has AVX-512, else the division."""
    if not _math.cpu_has_avx512():
        return 1.0 / d
    builder = d.builder
    name, width = _RCP14[d.vector_type]
    part = ir.VectorType(d.vector_type.element, width)
    rcp14 = _declare(builder, name, part, [part, part, ir.IntType(width)])
    arguments = [ir.Constant(part, [0.0] * width), ir.Constant(ir.IntType(width), -1)]  # passthrough, all lanes

    def estimate(v: ir.Value) -> ir.Value:
        return _per_register(builder, v, width, lambda half: builder.call(rcp14, [half, *arguments]))

    return d._map(lambda v: _math.newton_reciprocal(builder, v, estimate(v)))


def _f32(value: float) -> float:
    return value  # a Python float, splatted as float32 where it meets Lanes


def _bitcast(vector_type: ir.VectorType) -> Callable[[Lanes], Lanes]:
    return lambda value: value._map(lambda v: value.builder.bitcast(v, vector_type))


class _Types:
    """Stands in for numba.types in the functions run on Lanes:
    ``types.float64(v)`` and ``types.float32(v)`` convert each lane (exact,
    and rounded to nearest, as the scalar conversions)."""

    @staticmethod
    def float64(value: Lanes) -> Lanes:
        return value._map(lambda v: value.builder.fpext(v, _DOUBLES))

    @staticmethod
    def float32(value: Lanes) -> Lanes:
        return value._map(lambda v: value.builder.fptrunc(v, _FLOATS))


# The 512-bit permutes by the indices' type: (intrinsic, table, indices).
_PERMUTE = {
    _INTS: ("llvm.x86.avx512.permvar.sf.512", ir.VectorType(_F32, LANES), _INTS),
    _INT64S: ("llvm.x86.avx512.permvar.df.512", ir.VectorType(ir.DoubleType(), LANES // 2), ir.VectorType(ir.IntType(64), LANES // 2)),
}
# AVX2's one permute across a register by variable indices (vpermps): 8
# float32 by the low 3 bits of 8 int32.
_EIGHT_FLOATS = ir.VectorType(_F32, 8)
_EIGHT_INTS = ir.VectorType(_I32, 8)


def _lookup(table: tuple, index: Lanes) -> Lanes:
    """``table[index mod len(table)]`` per lane, for a table of 16 float32
    (int32 indices) or 8 float64 (int64 indices): one permute per register
    (vpermps, vpermpd), which reads only the index's low bits, so the
    ``& (len - 1)`` of _math's lookup costs nothing where the CPU has
    AVX-512; with AVX2, permutes of 8 float32 (below); elsewhere the mask,
    then 16 extracts from a constant vector."""
    builder = index.builder
    element_type = _F32 if index.vector_type == _INTS else ir.DoubleType()
    constant = ir.Constant(ir.VectorType(element_type, len(table)), [float(v) for v in table])

    if _math.cpu_has_avx512():
        name, table_type, indices_type = _PERMUTE[index.vector_type]
        permute = _declare(builder, name, table_type, [table_type, indices_type])

        def lookup(indices):
            return _per_register(builder, indices, table_type.count, lambda half: builder.call(permute, [constant, half]))

        return index._map(lookup)

    if _math.cpu_has_avx2():
        return _lookup_avx2(table, index)

    mask = ir.Constant(index.vector_type, [len(table) - 1] * LANES)

    def lookup(indices):
        indices = builder.and_(indices, mask)
        result = ir.Constant(ir.VectorType(element_type, LANES), ir.Undefined)
        for lane in range(LANES):
            position = ir.Constant(_I32, lane)
            entry = builder.extract_element(constant, builder.extract_element(indices, position))
            result = builder.insert_element(result, entry, position)
        return result

    return index._map(lookup)


def _lookup_avx2(table: tuple, index: Lanes) -> Lanes:
    """_lookup with AVX2's vpermps, which permutes 8 float32 by 8 int32: the
    table is two registers of 32 bytes (8 float32, or 4 float64 read as 8
    float32 halves), both permuted, and the index bit above the 3
    (float32) or 2 (float64) low ones picks one of the two (a select,
    vblendvps). For float64, the int64 index i becomes the int32 pair
    (2 i, 2 i + 1), whose low 3 bits pick the halves of double i mod 4.
    (The extracts below took 3.5x the time of float32 σ, Zen 3.)"""
    builder = index.builder
    double = index.vector_type == _INT64S
    per_register = 4 if double else 8  # entries of the table in 32 bytes
    assert len(table) == 2 * per_register, "a table of two registers"
    element_type = ir.DoubleType() if double else _F32
    part_type = ir.VectorType(element_type, per_register)
    registers = [builder.bitcast(ir.Constant(part_type, [float(v) for v in table[at:at + per_register]]), _EIGHT_FLOATS)
                 for at in (0, per_register)]
    permute = _declare(builder, "llvm.x86.avx2.permps", _EIGHT_FLOATS, [_EIGHT_FLOATS, _EIGHT_INTS])
    int32_pairs = ir.VectorType(_I32, 2 * LANES)

    def pair_indices(indices):  # (2 i, 2 i + 1) per int64 lane: the low word of 2 i twice, | (0, 1)
        twice = builder.bitcast(builder.add(indices, indices), int32_pairs)
        low_words = builder.shuffle_vector(twice, twice, ir.Constant(int32_pairs, [w & ~1 for w in range(2 * LANES)]))
        return builder.bitcast(builder.or_(low_words, ir.Constant(int32_pairs, [w & 1 for w in range(2 * LANES)])),
                               index.vector_type)

    def permuted(register):  # the permute of one table register by a part of 8 int32 of the indices
        def by(indices_part):
            result = builder.call(permute, [register, builder.bitcast(indices_part, _EIGHT_INTS)])
            return builder.bitcast(result, part_type)
        return by

    def lookup(indices):
        words = pair_indices(indices) if double else indices
        low, high = (_per_register(builder, words, per_register, permuted(register)) for register in registers)
        upper = builder.icmp_unsigned("!=", builder.and_(indices, ir.Constant(index.vector_type, [per_register] * LANES)),
                                      ir.Constant(index.vector_type, [0] * LANES))
        return builder.select(upper, high, low)

    return index._map(lookup)


_PRIMITIVES = {
    "fma": _fma, "mul": _mul, "reciprocal": _reciprocal, "select": select, "max": _max, "f32": _f32, "types": _Types,
    "bits32": _bitcast(_INTS), "from_bits32": _bitcast(_FLOATS), "lookup": _lookup,
    "_float64_to_int64_bits": _bitcast(_INT64S), "_int64_bits_to_float64": _bitcast(_DOUBLES),
}

# One rebound namespace per module: every function of the module found in
# it is rebound too, so a function runs its helpers (_math's _pow2, ...) on
# Lanes as well.
_NAMESPACES: dict[str, dict] = {}


def _python_function(value) -> FunctionType | None:
    """The Python function of an njit dispatcher or a plain function, else None."""
    function = getattr(value, "py_func", value)
    return function if isinstance(function, FunctionType) else None


def for_lanes(function) -> Callable:
    """A copy of a ``_math`` function (an njit dispatcher or a plain function)
    whose primitives are the ones above, to be called with Lanes."""
    py_func = _python_function(function)
    module = py_func.__module__
    if module not in _NAMESPACES:
        namespace = _NAMESPACES[module] = dict(py_func.__globals__)
        for name, value in py_func.__globals__.items():
            helper = _python_function(value)
            if helper is not None and helper.__module__ == module:
                namespace[name] = FunctionType(helper.__code__, namespace, helper.__name__, helper.__defaults__)
        namespace.update(_PRIMITIVES)
    rebound = _NAMESPACES[module].get(py_func.__name__)
    if getattr(rebound, "__code__", None) is not py_func.__code__:  # not a module-level function
        rebound = FunctionType(py_func.__code__, _NAMESPACES[module], py_func.__name__, py_func.__defaults__)
    return rebound


def _vector_at(builder: ir.IRBuilder, pointer: ir.Value, block: int) -> tuple[ir.Value, ir.VectorType, int]:
    """(block ``block``'s vector pointer from ``pointer`` on, its vector type,
    the element size) for a float* or double*."""
    vector_type = _FLOATS if pointer.type.pointee == _F32 else _DOUBLES
    at = builder.bitcast(builder.gep(pointer, [ir.Constant(_I32, block * LANES)]), vector_type.as_pointer())
    return at, vector_type, 4 if vector_type == _FLOATS else 8


def load(builder: ir.IRBuilder, pointer: ir.Value, blocks: int) -> Lanes:
    """``blocks`` vectors of 16 float32 or float64 from ``pointer`` on (any alignment)."""
    values = []
    for b in range(blocks):
        at, _, size = _vector_at(builder, pointer, b)
        values.append(builder.load(at, align=size))
    return Lanes(builder, tuple(values))


def prefetch(builder: ir.IRBuilder, pointer: ir.Value, ahead: int, size: int) -> None:
    """Ask for the cache lines of the ``size`` bytes ``ahead`` bytes after
    ``pointer`` (a float* or double*), to be read (a hint: it never faults,
    past the end of the array either). A read hint: as fast in place as a
    write hint (measured), and it takes no line in exclusive state that the
    loop only reads."""
    prefetch_intrinsic = _declare(builder, "llvm.prefetch.p0", ir.VoidType(), [_BYTE_POINTER, _I32, _I32, _I32])
    start = builder.bitcast(pointer, _BYTE_POINTER)
    for offset in range(ahead, ahead + size, 64):
        # (address, 0 = read, locality 3 = keep in every cache level, 1 = data cache)
        builder.call(prefetch_intrinsic, [builder.gep(start, [ir.Constant(_I32, offset)]), ir.Constant(_I32, 0),
                                          ir.Constant(_I32, 3), ir.Constant(_I32, 1)])


def store(value: Lanes, pointer: ir.Value) -> None:
    """Store every lane of ``value`` from ``pointer`` on (any alignment)."""
    for b, vector in enumerate(value.values):
        at, _, size = _vector_at(value.builder, pointer, b)
        value.builder.store(vector, at, align=size)


def store_where(value: Lanes, pointer: ir.Value, mask: Lanes) -> None:
    """Store the lanes of ``value`` where ``mask`` is true, from ``pointer`` on."""
    builder = value.builder
    for b, (vector, lanes) in enumerate(zip(value.values, mask.values)):
        at, vector_type, size = _vector_at(builder, pointer, b)
        masked_store = _declare(builder, f"llvm.masked.store.{_suffix(vector_type)}.p0", ir.VoidType(),
                                [vector_type, at.type, _I32, lanes.type])
        builder.call(masked_store, [vector, at, ir.Constant(_I32, size), lanes])


def store_streaming(value: Lanes, pointer: ir.Value) -> None:
    """Store every lane of ``value`` from ``pointer`` on (64-byte aligned)
    with non-temporal stores: straight to memory, without first reading
    the lines into the cache."""
    builder = value.builder
    hint = builder.module.add_metadata([ir.Constant(_I32, 1)])
    for b, vector in enumerate(value.values):
        at, _, _ = _vector_at(builder, pointer, b)
        builder.store(vector, at, align=64).set_metadata("nontemporal", hint)


def mask_bits(mask: Lanes) -> ir.Value:
    """A mask of up to 4 blocks as an i64, bit 16 b + i set for lane i of block b."""
    builder = mask.builder
    bits = ir.Constant(ir.IntType(64), 0)
    for b, lanes in enumerate(mask.values):
        block = builder.zext(builder.bitcast(lanes, ir.IntType(LANES)), ir.IntType(64))
        bits = builder.or_(bits, builder.shl(block, ir.Constant(ir.IntType(64), b * LANES)))
    return bits


def vector_bits(mask: Lanes) -> ir.Value:
    """An i64 with bit b set where block b of ``mask`` has a lane set (up to 64 blocks)."""
    builder = mask.builder
    bits = ir.Constant(ir.IntType(64), 0)
    for b, lanes in enumerate(mask.values):
        any_lane = builder.icmp_unsigned("!=", builder.bitcast(lanes, ir.IntType(LANES)), ir.Constant(ir.IntType(LANES), 0))
        bits = builder.or_(bits, builder.shl(builder.zext(any_lane, ir.IntType(64)), ir.Constant(ir.IntType(64), b)))
    return bits


def invert(mask: Lanes) -> Lanes:
    """The lanes where ``mask`` is false."""
    return mask._map(lambda v: mask.builder.xor(v, ir.Constant(v.type, [1] * LANES)))
