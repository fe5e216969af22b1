"""The schema of a checkpoint's state, checked before anything is loaded.

A checkpoint's checksums say that its files are the ones written, not that
they were written by this run: anyone who can write the folder can edit
``state.json`` and recompute them. So a state is checked, before any of it
reaches a network, an optimiser, a buffer or the run folder, against what
the resumed config builds: every key present and no other, every leaf of the
expected type, every tensor and array of the expected shape and exactly the
expected dtype (a float64 or int8 weight is refused, not cast), every counter
in its range. A mismatch is one :class:`StateMismatch` (exit 2) naming the
file, the field, what was expected and what was found.

A schema is a tree of the classes below. Most of it is read off the freshly
built objects (:func:`like`: the same keys, types, shapes and dtypes as the
reference value); the parts whose size varies (replay rows, archives, pools)
and the counters with a range are stated by the caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from clm.core.errors import UserError

#: deepest nesting a state may have (the deepest real one is about 8); deeper is refused before it is walked
MAX_DEPTH = 64


class StateMismatch(UserError):
    """A checkpoint state that does not fit the resumed config: exit 2."""

    def __init__(self, where: str, path: str, expected: str, found: str):
        super().__init__(f"checkpoint {where}: field {path or '(top)'}: expected {expected}, found {found}; the "
                         f"checkpoint was changed or comes from another config: resume from another run, or start "
                         f"a new one", exit_code=2)
        self.where, self.path, self.expected, self.found = where, path, expected, found


class Mismatch(Exception):
    def __init__(self, path: str, expected: str, found: str):
        super().__init__(path)
        self.path, self.expected, self.found = path, expected, found


def describe(v: Any) -> str:
    """A short description of a value for an error message."""
    if isinstance(v, torch.Tensor):
        return f"a tensor of shape {tuple(v.shape)} and dtype {str(v.dtype).replace('torch.', '')}"
    if isinstance(v, np.ndarray):
        return f"an array of shape {v.shape} and dtype {v.dtype}"
    if isinstance(v, dict):
        return f"a mapping of {len(v)} keys"
    if isinstance(v, (list, tuple)):
        return f"a {type(v).__name__} of {len(v)} items"
    text = repr(v)
    return f"{type(v).__name__} {text[:40] + '...' if len(text) > 40 else text}"


class Schema:
    def check(self, v: Any, path: str) -> None:
        raise NotImplementedError


class Anything(Schema):
    """Any plain data (a record kept for the report, such as a saved config)."""

    def check(self, v, path):
        pass


class Int(Schema):
    def __init__(self, lo: int | None = None, hi: int | None = None):
        self.lo, self.hi = lo, hi

    def check(self, v, path):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise Mismatch(path, "an integer", describe(v))
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            raise Mismatch(path, f"an integer in [{self.lo if self.lo is not None else '-inf'}, "
                             f"{self.hi if self.hi is not None else 'inf'}]", describe(v))


class Float(Schema):
    """A number (an int is a float here: JSON keeps 1.0 as 1.0, but configs may hold 0)."""

    def __init__(self, lo: float | None = None, hi: float | None = None, finite: bool = False):
        self.lo, self.hi, self.finite = lo, hi, finite

    def check(self, v, path):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise Mismatch(path, "a number", describe(v))
        if (self.finite and not np.isfinite(v)) or (self.lo is not None and not v >= self.lo) \
                or (self.hi is not None and not v <= self.hi):
            raise Mismatch(path, f"a {'finite ' if self.finite else ''}number in [{self.lo}, {self.hi}]", describe(v))


class Bool(Schema):
    def check(self, v, path):
        if not isinstance(v, (bool, np.bool_)):
            raise Mismatch(path, "true or false", describe(v))


class Str(Schema):
    def __init__(self, choices: tuple[str, ...] | None = None):
        self.choices = choices

    def check(self, v, path):
        if not isinstance(v, str):
            raise Mismatch(path, "a string", describe(v))
        if self.choices is not None and v not in self.choices:
            raise Mismatch(path, f"one of {list(self.choices)}", describe(v))


class Bytes(Schema):
    def check(self, v, path):
        if not isinstance(v, bytes):
            raise Mismatch(path, "bytes", describe(v))


class Const(Schema):
    """Exactly ``value`` (an optimiser's settings: what the resumed config sets)."""

    def __init__(self, value: Any):
        self.value = value

    def check(self, v, path):
        if type(v) is not type(self.value) or v != self.value:
            raise Mismatch(path, f"{self.value!r} (as this config sets it)", describe(v))


class Numeric(Schema):
    """None, a number, or a numeric array (a value an env sets on its first reset)."""

    def check(self, v, path):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
            raise Mismatch(path, "a number of at most 64 bits", describe(v))
        if v is None or (isinstance(v, (int, float, np.number, np.bool_))) or \
                (isinstance(v, np.ndarray) and v.dtype.kind in "biuf"):
            return
        raise Mismatch(path, "a number, a numeric array or null", describe(v))


class PlainData(Schema):
    """Numbers of at most 64 bits, numeric arrays, strings, and mappings and lists of them
    (the keys an env sets on its first reset, which a fresh env does not show)."""

    def check(self, v, path):
        if isinstance(v, dict) and set(v) == {"generator"}:  # an env's NumPy generator (clm.agents.envs.env_state)
            rng_schema(np.random.default_rng()).check(v["generator"], _join(path, "generator"))
        elif isinstance(v, dict):
            for k, x in v.items():
                self.check(x, _join(path, k))
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                self.check(x, f"{path}[{i}]")
        elif not isinstance(v, (str, bytes)):
            Numeric().check(v, path)


class Null(Schema):
    def check(self, v, path):
        if v is not None:
            raise Mismatch(path, "null", describe(v))


class Opt(Schema):
    """``inner`` or None."""

    def __init__(self, inner: Schema):
        self.inner = inner

    def check(self, v, path):
        if v is not None:
            self.inner.check(v, path)


class Arr(Schema):
    """A tensor (``kind="tensor"``) or NumPy array of exactly ``dtype`` and
    ``shape``; a None in ``shape`` is any size, and ``max_rows`` bounds the
    first dimension when it is free; ``values``: (lo, hi), the range of every element."""

    def __init__(self, dtype, shape: tuple, kind: str = "ndarray", max_rows: int | None = None,
                 values: tuple[float, float] | None = None):
        self.dtype, self.shape, self.kind, self.max_rows = dtype, tuple(shape), kind, max_rows
        self.values = values

    def _shape_text(self) -> str:
        dims = ["N" if d is None else str(d) for d in self.shape]
        return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})" + \
            (f" with N <= {self.max_rows}" if self.max_rows is not None else "")

    def check(self, v, path):
        want = f"{'a tensor' if self.kind == 'tensor' else 'an array'} of shape {self._shape_text()} and dtype " \
               f"{str(self.dtype).replace('torch.', '')}"
        typ = torch.Tensor if self.kind == "tensor" else np.ndarray
        if not isinstance(v, typ) or v.dtype != self.dtype or v.ndim != len(self.shape) \
                or any(d is not None and d != s for d, s in zip(self.shape, v.shape)) \
                or (self.max_rows is not None and v.shape and v.shape[0] > self.max_rows):
            raise Mismatch(path, want, describe(v))
        if self.values is not None and v.size and not (self.values[0] <= v.min() and v.max() <= self.values[1]):
            raise Mismatch(path, f"values in [{self.values[0]}, {self.values[1]}]",
                           f"values in [{v.min()}, {v.max()}]")


class Seq(Schema):
    """A list (or tuple) of any length up to ``max_len``, each item ``item``."""

    def __init__(self, item: Schema, max_len: int | None = None, length: int | None = None, kind: type | None = None):
        self.item, self.max_len, self.length, self.kind = item, max_len, length, kind

    def check(self, v, path):
        if not isinstance(v, self.kind or (list, tuple)):
            raise Mismatch(path, "a list", describe(v))
        if (self.length is not None and len(v) != self.length) or (self.max_len is not None and len(v) > self.max_len):
            raise Mismatch(path, f"a list of {self.length if self.length is not None else f'at most {self.max_len}'} "
                             f"items", describe(v))
        for i, x in enumerate(v):
            self.item.check(x, f"{path}[{i}]")


class Fixed(Schema):
    """A list or tuple of exactly these items (``kind``: exactly a tuple, or a list; None: either)."""

    def __init__(self, items: list[Schema], kind: type | None = None):
        self.items, self.kind = list(items), kind

    def check(self, v, path):
        if not isinstance(v, self.kind or (list, tuple)) or len(v) != len(self.items):
            raise Mismatch(path, f"a {self.kind.__name__ if self.kind else 'list'} of {len(self.items)} items",
                           describe(v))
        for i, (s, x) in enumerate(zip(self.items, v)):
            s.check(x, f"{path}[{i}]")


class Rec(Schema):
    """A mapping with exactly these keys (``optional`` ones may be absent;
    ``extra``: other string keys are allowed too, with any plain value)."""

    def __init__(self, fields: dict[str, Schema], optional: tuple[str, ...] = (), extra: bool = False):
        self.fields, self.optional, self.extra = dict(fields), set(optional), extra

    def check(self, v, path):
        if not isinstance(v, dict):
            raise Mismatch(path, f"a mapping of {', '.join(self.fields) or 'no keys'}", describe(v))
        for k in v:
            if k not in self.fields and self.extra and isinstance(k, str):
                PlainData().check(v[k], _join(path, k))
            elif k not in self.fields:
                raise Mismatch(_join(path, k), f"no such key (the keys are {', '.join(map(str, self.fields))})",
                           "an extra key")
        for k, s in self.fields.items():
            if k not in v:
                if k in self.optional:
                    continue
                raise Mismatch(_join(path, k), describe_schema(s), "nothing (the key is missing)")
            s.check(v[k], _join(path, k))


class Map(Schema):
    """A mapping of any keys ``key`` to values ``value``, at most ``max_len``."""

    def __init__(self, key: Schema, value: Schema, max_len: int | None = None):
        self.key, self.value, self.max_len = key, value, max_len

    def check(self, v, path):
        if not isinstance(v, dict):
            raise Mismatch(path, "a mapping", describe(v))
        if self.max_len is not None and len(v) > self.max_len:
            raise Mismatch(path, f"at most {self.max_len} keys", describe(v))
        for k, x in v.items():
            self.key.check(k, f"{path} key {k!r}")
            self.value.check(x, _join(path, k))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def describe_schema(s: Schema) -> str:
    try:
        s.check(object(), "")
    except Mismatch as e:
        return e.expected
    return "anything"


class Either(Schema):
    """One of ``options`` (the first one's mismatch is reported)."""

    def __init__(self, *options: Schema):
        self.options = options

    def check(self, v, path):
        first = None
        for s in self.options:
            try:
                s.check(v, path)
                return
            except Mismatch as e:
                first = first or e
        raise first


def like_either(a: Any, b: Any) -> Schema:
    """Values shaped as ``a`` or as ``b``, node by node (an env's state before and after its first reset:
    a key either one holds, each value as either one has it)."""
    if isinstance(a, dict) and isinstance(b, dict) and all(isinstance(k, str) for k in (*a, *b)) \
            and {"generator"} not in (set(a), set(b)):
        keys = {**a, **b}
        return Rec({k: like_either(a[k], b[k]) if k in a and k in b else like(a.get(k, b.get(k))) for k in keys},
                   optional=tuple(k for k in keys if (k in a) != (k in b)))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and type(a) is type(b) and len(a) == len(b):
        return Fixed([like_either(x, y) for x, y in zip(a, b)], type(a))
    sa, sb = like(a), like(b)
    return sa if describe_schema(sa) == describe_schema(sb) and type(sa) is type(sb) else Either(sa, sb)


def like(ref: Any) -> Schema:
    """The schema of values shaped as ``ref``: the same keys, types, lengths,
    shapes and dtypes (numbers of any value)."""
    if isinstance(ref, dict):
        if set(ref) == {"generator"} and isinstance(ref["generator"], dict):  # an env's generator (agents.envs)
            return Rec({"generator": bit_generator_schema(ref["generator"])})
        if isinstance(ref.get("bit_generator"), str) and "state" in ref:  # a NumPy bit generator's state
            return bit_generator_schema(ref)
        if all(isinstance(k, str) for k in ref):
            return Rec({k: like(v) for k, v in ref.items()})
        return Map(Anything(), Anything())
    if isinstance(ref, (list, tuple)):
        return Fixed([like(x) for x in ref], type(ref))
    if isinstance(ref, torch.Tensor):
        return Arr(ref.dtype, tuple(ref.shape), "tensor")
    if isinstance(ref, np.ndarray):
        return Arr(ref.dtype, ref.shape)
    if isinstance(ref, (bool, np.bool_)):
        return Bool()
    if isinstance(ref, (int, np.integer)):
        return Int(-2**63, 2**63 - 1)  # what an int64 holds: a larger one is no count of a run
    if isinstance(ref, (float, np.floating)):
        return Float()
    if isinstance(ref, str):
        return Str()
    if isinstance(ref, bytes):
        return Bytes()
    if ref is None:
        return Null()
    return Anything()


# -- the parts every checkpoint has ------------------------------------------------------------------
def rng_schema(gen: np.random.Generator) -> Schema:
    """A NumPy Generator's ``bit_generator.state``: the same bit generator, words in range."""
    return bit_generator_schema(gen.bit_generator.state)


def bit_generator_schema(ref: dict) -> Schema:
    """A bit generator's state shaped as ``ref`` (the same bit generator), its words in range."""
    s = Rec({k: like(v) for k, v in ref.items()})
    s.fields["bit_generator"] = Str((ref["bit_generator"],))
    if "has_uint32" in s.fields:
        s.fields["has_uint32"], s.fields["uinteger"] = Int(0, 1), Int(0, 2**32 - 1)
    inner = s.fields.get("state")
    if isinstance(inner, Rec):
        for k in inner.fields:
            inner.fields[k] = Int(0, 2**128 - 1)
    return s


def global_rng_schema(ref: dict) -> Schema:
    """:func:`clm.core.runtime.rng_state`'s Python, NumPy and torch states."""
    s = like(ref)
    version, words, gauss = ref["python"]
    s.fields["python"] = Fixed([Int(version, version), Seq(Int(0, 2**32 - 1), length=len(words), kind=tuple),
                                Opt(Float())], tuple)
    name, keys, _, _, _ = ref["numpy"]
    s.fields["numpy"] = Fixed([Str((name,)), Arr(keys.dtype, keys.shape), Int(0, len(keys)), Int(0, 1), Float()],
                              tuple)
    if "cuda" in s.fields:
        s.optional.add("cuda")
    return s


def optimizer_schema(opt: torch.optim.Optimizer) -> Schema:
    """A torch optimiser's ``state_dict()``: per-parameter state of each
    parameter's shape and dtype (``step``: a float32 scalar), the same groups."""
    params = [p for g in opt.param_groups for p in g["params"]]
    ref = opt.state_dict()
    groups = like(ref["param_groups"])
    for g, s in zip(ref["param_groups"], groups.items):
        for k, v in g.items():  # lr, betas, eps, ...: as the resumed config sets them
            s.fields[k] = Fixed([Const(x) for x in v]) if isinstance(v, (list, tuple)) else Const(v)
    return Rec({"state": _ParamState(opt, params), "param_groups": groups})


class _ParamState(Schema):
    """Each parameter's optimiser state: the keys a step of this optimiser
    makes (Adam's ``step``, ``exp_avg``, ``exp_avg_sq``), each tensor of its
    parameter's shape and dtype (``step``: a float32 scalar)."""

    def __init__(self, opt: torch.optim.Optimizer, params: list[torch.Tensor]):
        self.opt, self.params, self._keys = opt, params, None

    def keys(self) -> set[str]:
        """The state keys one step of a twin of the optimiser (same class and settings, zero
        tensors of the parameters' shapes) gives a parameter: what torch's loader will read."""
        if self._keys is None:
            twin_params = [torch.zeros_like(p, requires_grad=True) for p in self.params[:1]]
            twin = type(self.opt)(twin_params, **self.opt.defaults)
            for t in twin_params:
                t.grad = torch.zeros_like(t)
            twin.step()
            self._keys = set(next(iter(twin.state_dict()["state"].values()), {}))
        return self._keys

    def check(self, v, path):
        Map(Int(0, len(self.params) - 1), Map(Str(), Anything())).check(v, path)
        for i, entry in v.items():
            p = self.params[i]
            missing = sorted(self.keys() - set(entry))
            if missing:
                raise Mismatch(f"{path}.{i}.{missing[0]}", f"{type(self.opt).__name__}'s state of a parameter",
                               "nothing (the key is missing)")
            for k, x in entry.items():
                want = Arr(torch.float32, (), "tensor") if k == "step" else Arr(p.dtype, tuple(p.shape), "tensor")
                want.check(x, f"{path}.{i}.{k}")


def check_depth(tree: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """Refuse a decoded JSON tree nested deeper than ``limit`` (walked without recursion)."""
    stack = [(tree, 0)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            raise UserError(f"checkpoint {where} is nested deeper than {limit} levels: it was not written by clm; "
                            f"resume from another run", exit_code=2)
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)


def validate(value: Any, schema: Schema, where: str, path: str = "") -> None:
    """Check ``value`` against ``schema``; a mismatch is a :class:`StateMismatch` naming ``where`` and the field."""
    try:
        schema.check(value, path)
    except Mismatch as e:
        raise StateMismatch(where, e.path, e.expected, e.found) from None


def validate_weights(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], where: str,
                     prefix: str = "") -> None:
    """The weights of a checkpoint against the freshly built networks' (``reference``): the same
    names, and each tensor of exactly the reference's shape and dtype."""
    validate(weights, Rec({k: Arr(v.dtype, tuple(v.shape), "tensor") for k, v in reference.items()}),
             f"{where} (weights.safetensors)", prefix.rstrip("."))
