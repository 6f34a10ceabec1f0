"""Activation functions as expression trees: primitives, compilation to torch, formulas.

A tree is DEAP's ``gp.PrimitiveTree`` over one argument ``x``. It is compiled by walking its
nodes into nested Python closures over torch operations (autograd works, nothing is passed to
``eval``), printed as a readable formula (``x * sigmoid(1.7 * x)``), and stored as DEAP's
prefix form (``mul(x, sigmoid(mul(1.7, x)))``), which :func:`parse` reads back safely.
"""

from __future__ import annotations

import math
import re
from typing import Callable

import torch
import torch.nn.functional as F

EPS = 1e-3
Fn = Callable[[torch.Tensor], torch.Tensor]

UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "neg": torch.neg,
    "abs": torch.abs,
    "square": torch.square,
    "exp": lambda a: torch.exp(torch.clamp(a, max=10.0)),          # guarded
    "log": lambda a: torch.log(torch.abs(a) + EPS),                # guarded
    "sin": torch.sin,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "erf": torch.erf,
    "softplus": F.softplus,
    # the primitives of Lapid & Sipper (arXiv 2206.12089) beyond the ones above
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "celu": F.celu,
    "hardshrink": F.hardshrink,
    "softshrink": F.softshrink,
    "hardtanh": F.hardtanh,
    "hardswish": F.hardswish,
    # RReLU's evaluation form: the mean of its random negative slope, (1/8 + 1/3) / 2. Drawing
    # the slope in training would make a network's result depend on its population.
    "rrelu": lambda a: F.leaky_relu(a, (1 / 8 + 1 / 3) / 2),
}
BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "max": torch.maximum,
    "min": torch.minimum,
    "div": lambda a, b: a / (torch.where(b >= 0, 1.0, -1.0) * (torch.abs(b) + EPS)),  # guarded
}
#: the fixed activation functions (strategies ``relu``, ``gelu``, ``silu``) in prefix form
FIXED = {"relu": "relu(x)", "gelu": "mul(x, mul(0.5, add(1.0, erf(mul(0.7071067811865476, x)))))",
         "silu": "mul(x, sigmoid(x))"}
INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
CONSTANTS = (-1.0, -0.5, 0.5, 1.0, 1.5, 2.0)

#: primitive-set name -> (unary names, binary names, constants)
PRIMITIVE_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...]]] = {
    "default": (("neg", "abs", "square", "exp", "log", "sin", "tanh", "sigmoid", "relu", "erf",
                 "softplus"), tuple(BINARY), CONSTANTS),
    # Lapid & Sipper's set: no constants, x is the only terminal
    "paper": (("tanh", "relu", "leaky_relu", "elu", "hardshrink", "celu", "hardtanh",
               "hardswish", "softshrink", "rrelu"), ("max", "min", "add", "sub", "mul"), ()),
}

# A parsed expression: "x", a float, or (name, child, ...)
Expr = object


def parse(text: str) -> Expr:
    """Read DEAP's prefix form (``mul(x, sigmoid(x))``) into a nested tuple, refusing anything
    that is not a known primitive, ``x`` or a number."""
    tokens = re.findall(r"[A-Za-z_][A-Za-z_0-9]*|-?\d+(?:\.\d*)?(?:[eE]-?\d+)?|[(),]", text)
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise ValueError(f"unreadable activation formula: {text!r}")
    pos = 0

    def node():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok in ("x", "ARG0"):
            return "x"
        if re.fullmatch(r"-?\d+(?:\.\d*)?(?:[eE]-?\d+)?", tok):
            return float(tok)
        arity = 1 if tok in UNARY else 2 if tok in BINARY else None
        if arity is None:
            raise ValueError(f"unknown primitive {tok!r} in {text!r}")
        if tokens[pos] != "(":
            raise ValueError(f"expected '(' after {tok} in {text!r}")
        pos += 1
        args = [node()]
        for _ in range(arity - 1):
            if tokens[pos] != ",":
                raise ValueError(f"{tok} takes {arity} arguments in {text!r}")
            pos += 1
            args.append(node())
        if tokens[pos] != ")":
            raise ValueError(f"{tok} takes {arity} argument(s) in {text!r}")
        pos += 1
        return (tok, *args)

    try:
        out = node()
    except IndexError:
        raise ValueError(f"incomplete activation formula: {text!r}") from None
    if pos != len(tokens):
        raise ValueError(f"trailing text in activation formula: {text!r}")
    return out


def compile_expr(expr: Expr) -> Fn:
    """A torch function of ``x`` for a parsed expression."""
    if expr == "x":
        return lambda x: x
    if isinstance(expr, float):
        c = float(expr)
        return lambda x: torch.full_like(x, c)
    name, *args = expr
    fns = [compile_expr(a) for a in args]
    if name in UNARY:
        op, f = UNARY[name], fns[0]
        return lambda x: op(f(x))
    op2, f, g = BINARY[name], fns[0], fns[1]
    return lambda x: op2(f(x), g(x))


def compile_formula(text: str) -> Fn:
    return compile_expr(parse(text))


def infix(expr: Expr) -> str:
    """Readable form: ``x * sigmoid(1.5 * x)``."""
    if expr == "x":
        return "x"
    if isinstance(expr, float):
        return f"{expr:g}"
    name, *args = expr
    if name in INFIX:
        return f"({infix(args[0])} {INFIX[name]} {infix(args[1])})"
    inner = [infix(a) for a in args]
    if len(inner) == 1 and inner[0].startswith("(") and inner[0].endswith(")"):
        inner[0] = inner[0][1:-1]
    return f"{name}({', '.join(inner)})"


def readable(text: str) -> str:
    s = infix(parse(text))
    return s[1:-1] if s.startswith("(") and s.endswith(")") else s


LINEAR_RANGE = 3.0
MAX_LINEARITY = 0.998


def linearity(fn: Fn) -> float:
    """R^2 of the best affine fit to ``fn`` on [-3, 3], where pre-activations mostly lie: 1.0
    for an affine function (a network of them is a linear model), 0.80 for ReLU, 0.93 for
    tanh, 0.995 for Hardshrink."""
    x = torch.linspace(-LINEAR_RANGE, LINEAR_RANGE, 601, dtype=torch.float64)
    with torch.no_grad():
        y = fn(x).broadcast_to(x.shape).to(torch.float64)
    var = y.var()
    if not bool(torch.isfinite(var)) or float(var) < 1e-12:
        return 1.0  # constant on the range: no more useful than an affine function
    design = torch.stack([x, torch.ones_like(x)], 1)
    fit = design @ torch.linalg.lstsq(design, y[:, None]).solution
    return float(1.0 - (y - fit[:, 0]).var() / var)


def is_well_behaved(fn: Fn, max_grad: float = 1e3,
                    max_linearity: float | None = MAX_LINEARITY) -> bool:
    """Finite values and gradients of bounded size on a probe input, at most linear growth up
    to |x| = 100; constant functions (no gradient at all) are rejected too, and so are affine
    and near-linear ones (:func:`linearity` above ``max_linearity``; ``None`` keeps them)."""
    noise = torch.randn(256, generator=torch.Generator().manual_seed(0))
    probe = torch.cat([torch.linspace(-6, 6, 241), noise * 3])
    probe.requires_grad_(True)
    try:
        y = fn(probe)
        if y.shape != probe.shape or not torch.isfinite(y).all():
            return False
        (g,) = torch.autograd.grad(y.sum(), probe, allow_unused=True)
    except (RuntimeError, ValueError):
        return False
    if g is None or not torch.isfinite(g).all() or g.abs().max() > max_grad:
        return False
    if not bool(g.abs().max() > 1e-6) or not math.isfinite(float(y.detach().abs().max())):
        return False
    # at most linear growth far out: x**2 or exp(x) trains for a few epochs and then diverges
    wide = torch.linspace(-100, 100, 401)
    with torch.no_grad():
        far = fn(wide)
    if not bool(torch.isfinite(far).all() and (far.abs() <= 10 * (1 + wide.abs())).all()):
        return False
    return max_linearity is None or linearity(fn) <= max_linearity
