# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""
Parameters, forward latency and peak memory of the landmark networks at the model input size.

Every network runs in a fresh process (so a peak belongs to one network), in eval mode under ``torch.no_grad``,
on one image of ``MODEL_SPATIAL_SIZE`` (the paper's 736x576, height x width, in MONAI order), batch 1:

    - latency: median (and min..max) wall time of ``--runs`` forward passes after ``--warmup`` passes;
    - CPU peak: the process's peak resident memory (``resource.getrusage``) above its resident memory once the
      network is built, i.e. what the forward passes add on top of the weights;
    - CUDA peak (``--device cuda``): ``torch.cuda.max_memory_allocated`` above the memory allocated before the
      first forward.

Usage::

    python benchmarks/networks.py                       # all networks, CPU
    python benchmarks/networks.py --only CephRes-MHNet --runs 5 --threads 2
    OMP_WAIT_POLICY=PASSIVE python benchmarks/networks.py --only CephRes-MHNet unet hrnet_w48_sr --runs 1 --warmup 0
    python benchmarks/networks.py --device cuda

The table lists CephRes-MHNet, its ablations and the paper's seven baselines (their registry,
``monai_ceph.networks.nets.baselines.BASELINES``, under the same short names as the bundle overlays in
``bundles/cephres/configs/baselines/``), each with its parameter count in the paper's Table 1 where there is one.

Add a network with one row in ``NETWORKS`` (display name -> zero-argument constructor).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from monai_ceph.networks.nets import CephResMHNet
from monai_ceph.networks.nets.baselines import BASELINES, TABLE1_PARAMS, get_baseline
from monai_ceph.transforms.spatial.array import MODEL_SPATIAL_SIZE

NETWORKS: dict[str, Callable[[], torch.nn.Module]] = {
    "CephRes-MHNet": CephResMHNet,
    "CephRes-Net (1 head)": partial(CephResMHNet, groups=[list(range(19))]),
    "Ceph-MHNet (no residual)": partial(CephResMHNet, residual=False),
    **{name: partial(get_baseline, name, in_channels=1, out_channels=19) for name in BASELINES},
}

#: parameter counts printed in the paper's Table 1 (1 input channel, 19 landmarks; CephRes-MHNet: 4.7M).
PAPER_PARAMS: dict[str, float] = {"CephRes-MHNet": 4.7e6, **TABLE1_PARAMS}


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux ``/proc``), 0 where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _measure(name: str, device: str, runs: int, warmup: int, threads: int | None, queue) -> None:
    try:
        if threads:
            torch.set_num_threads(threads)
        net = NETWORKS[name]().eval().to(device)
        params = sum(p.numel() for p in net.parameters())
        x = torch.rand(1, getattr(net, "in_channels", 1), *MODEL_SPATIAL_SIZE, device=device)
        cuda = device.startswith("cuda")
        rss0 = _rss_bytes()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            cuda0 = torch.cuda.memory_allocated()
        times = []
        with torch.no_grad():
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                y = net(x)
                if cuda:
                    torch.cuda.synchronize()
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
                del y
        peak_cpu = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0  # ru_maxrss is KiB on Linux
        peak_cuda = torch.cuda.max_memory_allocated() - cuda0 if cuda else None
        queue.put({"params": params, "times": times, "peak_cpu": peak_cpu, "peak_cuda": peak_cuda, "error": None})
    except Exception as e:  # reported in the table, the other networks still run
        queue.put({"error": f"{type(e).__name__}: {e}"})


def benchmark(name: str, device: str = "cpu", runs: int = 3, warmup: int = 1, threads: int | None = None) -> dict:
    """Measure one network of ``NETWORKS`` in a fresh (spawned) process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(name, device, runs, warmup, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default: cpu)")
    parser.add_argument("--runs", type=int, default=3, help="timed forward passes (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forward passes first (default: 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help=f"subset of {list(NETWORKS)}")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available.")
    names = args.only or list(NETWORKS)
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown network(s) {unknown}; available: {list(NETWORKS)}")

    if args.device.startswith("cuda"):
        where = torch.cuda.get_device_name(torch.device(args.device))
    else:
        where = f"CPU, {args.threads or torch.get_num_threads()} threads"
    print(
        f"networks at input (1, C, {MODEL_SPATIAL_SIZE[0]}, {MODEL_SPATIAL_SIZE[1]}) (736x576 HxW), eval, no_grad, "
        f"batch 1; {where}; torch {torch.__version__}; median of {args.runs} runs after {args.warmup} warm-up"
    )
    peak_col = "CUDA peak (MiB)" if args.device.startswith("cuda") else "CPU peak (MiB)"
    header = f"{'network':<28} {'params (M)':>10} {'Table 1 (M)':>11} {'latency (s)':>12} {'min..max (s)':>15} "
    header += f"{peak_col:>16}"
    print(header)
    print("-" * len(header))
    for name in names:
        r = benchmark(name, args.device, args.runs, args.warmup, args.threads)
        if r["error"]:
            print(f"{name:<28} failed: {r['error']}")
            continue
        t = r["times"]
        peak = r["peak_cuda"] if args.device.startswith("cuda") else r["peak_cpu"]
        paper = f"{PAPER_PARAMS[name] / 1e6:.2f}" if name in PAPER_PARAMS else "-"
        print(
            f"{name:<28} {r['params'] / 1e6:>10.2f} {paper:>11} {statistics.median(t):>12.3f} "
            f"{f'{min(t):.3f}..{max(t):.3f}':>15} {peak / 2**20:>16.0f}"
        )


if __name__ == "__main__":
    main()
