"""CPU training beside a busy neighbour: throughput idle and with one core taken by a spinning process.

    python tests/benchmarks/bench_threads.py [--image-size 96] [--steps 12] [--threads 2,1,auto]

Each setting runs in a fresh child process (OpenMP reads its environment at start-up): a few training
steps of MobileNetV2 + MLP at batch 32, images/s of the timed steps. ``auto`` is what ``liver-mm train``
does by default (:func:`liver_mm.runtime.threads_per_process`: available cores / concurrent jobs, and
``GOMP_SPINCOUNT=1000``, :func:`liver_mm.runtime.bounded_openmp_spin`); ``free`` is ``trainer.num_threads=free`` (also minus the cores busy at start); ``N`` is N threads with torch's default OpenMP waiting; ``N+passive`` adds
``OMP_WAIT_POLICY=PASSIVE``. The neighbour is ``python -c 'while True: pass'`` pinned to
core 0. On a shared machine every figure is noisy: read ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from liver_mm.runtime import OPENMP_SPIN  # noqa: E402  (no torch import)

SPIN = "while True: pass"


@contextmanager
def busy_neighbour(core: int = 0):
    """A CPU-bound process pinned to ``core`` for the duration of the block."""
    proc = subprocess.Popen([sys.executable, "-c", SPIN], preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    try:
        time.sleep(0.5)  # let the scheduler see it (and the load sample of "auto" count it)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def child(threads: str, image_size: int, steps: int) -> float:
    """Images/s of ``steps`` timed training steps (after 2 warm-up steps) in this process."""
    import torch

    from liver_mm.models import build_fusion_model
    from liver_mm.runtime import threads_per_process, tune_malloc

    tune_malloc()
    n = {"auto": threads_per_process(), "free": threads_per_process(busy=None)}.get(threads)
    n = n or int(threads.split("+")[0])
    torch.set_num_threads(n)
    torch.manual_seed(0)
    net = build_fusion_model(image={"name": "mobilenetv2_100"}, tabular={"hidden": [64, 32]}, n_tabular=6)
    net = net.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.rand(32, 1, image_size, image_size).contiguous(memory_format=torch.channels_last)
    t, y = torch.randn(32, 6), (torch.rand(32) > 0.5).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    start = 0.0
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        loss = loss_fn(net(x, t), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    rate = 32 * steps / (time.perf_counter() - start)
    print(json.dumps({"threads": n, "rate": rate}))
    return rate


def measure(threads: str, image_size: int, steps: int) -> tuple[int, float]:
    """(threads used, img/s) of one setting in a fresh process."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("OMP_WAIT_POLICY", None)  # a plain count: libgomp's default waiting
    env.pop("GOMP_SPINCOUNT", None)
    if threads in ("auto", "free"):  # as liver-mm runs (runtime.bounded_openmp_spin)
        env["GOMP_SPINCOUNT"] = OPENMP_SPIN
    if threads.endswith("+passive"):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "--child", threads, "--image-size", str(image_size),
                          "--steps", str(steps)], env=env, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return int(res["threads"]), float(res["rate"])


def compare(settings: list[str], image_size: int, steps: int) -> dict[str, tuple[tuple[int, float], tuple[int, float]]]:
    """setting -> ((threads, idle img/s), (threads, img/s beside the busy neighbour))."""
    out = {}
    for s in settings:
        idle = measure(s, image_size, steps)
        with busy_neighbour(0):
            busy = measure(s, image_size, steps)
        out[s] = (idle, busy)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--threads", default="auto,2,1,2+passive", help="comma-separated settings")
    a = p.parse_args(argv)
    if a.child:
        child(a.child, a.image_size, a.steps)
        return 0
    print(f"\nbusy neighbour (one spinning process pinned to core 0), {a.image_size} px, batch 32, "
          f"{os.cpu_count()} cores; ratio = with neighbour / idle")
    for s, ((n0, idle), (n1, busy)) in compare(a.threads.split(","), a.image_size, a.steps).items():
        print(f"  threads {s:>10}: idle {idle:7.1f} img/s ({n0} thr) | busy {busy:7.1f} img/s ({n1} thr) "
              f"| ratio {busy / idle:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
