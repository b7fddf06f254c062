"""Fits the erf polynomials used by latebird's vectorised GELU (crates/core/src/models/kernels).

    python scripts/fit_erf.py

Least squares on Chebyshev nodes, in float64, of
  * erf(x) / x as a polynomial in x^2 on [0, 1], and
  * erfc(x) * exp(x^2) as a polynomial in x on [1, 4] (erf(x) rounds to 1 in f32 beyond 4),
then evaluates both in float32 (Horner, as the kernel does) and prints the coefficients as
Rust constants with the largest absolute error against math.erf.
"""

from __future__ import annotations

import math

import numpy as np


def nodes(lo: float, hi: float, n: int = 4000) -> np.ndarray:
    k = np.arange(n)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos((2 * k + 1) * np.pi / (2 * n))


def horner32(coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    c = coefficients.astype(np.float32)
    acc = np.full_like(x, c[-1])
    for value in c[-2::-1]:
        acc = (acc * x + value).astype(np.float32)
    return acc


def main() -> None:
    x = nodes(0.0, 1.0)
    small = np.polynomial.polynomial.polyfit(x * x, [math.erf(v) / v for v in x], 6)
    x = nodes(1.0, 4.0)
    large = np.polynomial.polynomial.polyfit(x, [math.erfc(v) * math.exp(v * v) for v in x], 10)

    xs = np.linspace(1e-6, 1.0, 100001).astype(np.float32)
    err_small = np.abs(xs * horner32(small, xs * xs) - [math.erf(float(v)) for v in xs]).max()
    xs = np.linspace(1.0, 4.0, 100001).astype(np.float32)
    tail = horner32(large, xs) * np.exp(-(xs * xs)).astype(np.float32)
    err_large = np.abs((1 - tail).astype(np.float32) - [math.erf(float(v)) for v in xs]).max()

    for name, c in (("ERF_SMALL", small), ("ERFC_SCALED", large)):
        values = ", ".join(repr(float(np.float32(v))) for v in c)
        print(f"const {name}: [f32; {len(c)}] = [{values}];")
    print(f"// max |error|: {err_small:.2e} on [0, 1], {err_large:.2e} on [1, 4]")


if __name__ == "__main__":
    main()
