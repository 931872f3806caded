"""Time the paired DeLong test at n = 10^4, 10^5, 10^6 cases (``make bench``; not a pytest file).

Prints seconds (best of ``--repeat`` runs) and the ratio to the 1.7 s that R's pROC
``roc.test(method='delong', paired=TRUE)`` takes at n = 10^6. Exits 1 if n = 10^6 takes
more than ``--limit`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from liver_mm.stats import delong_test

PROC_SECONDS_1E6 = 1.7


def _cases(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half malignant; two correlated scores, one rounded to 2 decimals (ties)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int8)
    latent = rng.normal(size=n) + y
    a = np.round(1 / (1 + np.exp(-(latent + rng.normal(0, 1.0, n)))), 2)
    b = 1 / (1 + np.exp(-(1.3 * latent + rng.normal(0, 0.8, n))))
    return y, a, b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=float, default=1.0, help="seconds allowed at n = 10^6")
    args = parser.parse_args(argv)
    print(f"{'n':>9} {'seconds':>9} {'vs pROC 1e6 (1.7 s)':>20} {'AUC a':>7} {'AUC b':>7} {'p':>9}")
    worst = 0.0
    for n in (10**4, 10**5, 10**6):
        y, a, b = _cases(n)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = delong_test(y, a, b)
            times.append(time.perf_counter() - t0)
        best = min(times)
        worst = best if n == 10**6 else worst
        print(f"{n:>9} {best:>9.3f} {best / PROC_SECONDS_1E6:>20.3f} {res.auc_a:>7.4f} {res.auc_b:>7.4f} "
              f"{res.p_value:>9.2g}")
    if worst > args.limit:
        print(f"too slow: {worst:.3f} s at n = 10^6 (limit {args.limit} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
