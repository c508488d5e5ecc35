"""Per-image time and agreement of the anti-aliased resize: MONAI's ``Resize`` against ``ResizeWithLandmarks``.

One real ISBI 2015 radiograph (``images/001.jpg`` under ``monai_ceph.data.isbi_dir()``, 1935 x 2400 at 0.1 mm),
grey channel, float32, resized to the bundle's two working copies: the global stage's 1.25 mm grid and the local
stage's 0.3 mm grid (``target_spacing``). Rows: MONAI ``Resize(mode="bilinear", anti_aliasing=True)`` (a Gaussian
over the whole full-resolution image, then interpolation) and ours (the same operator as two matrix products,
:mod:`monai_ceph.transforms.spatial.separable_resize`, matrices cached after the first call); median and min wall
time of ``--repeats`` calls after one warm-up call on ``--threads`` torch threads, and the largest absolute
difference of the outputs (grey levels 0-255). The CPU may be shared: the 1-minute load average is printed.

Usage::

    python benchmarks/resize.py [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from monai.transforms import LoadImage, Resize

from monai_ceph.data import RadiographReader, isbi_dir
from monai_ceph.transforms import ResizeWithLandmarks, ToGreyscale


def timed(fn, repeats: int) -> tuple[float, float, object]:
    out = fn()  # warm-up (and the matrices' cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = isbi_dir() / "images" / "001.jpg"
    load = LoadImage(reader=RadiographReader(), image_only=True, ensure_channel_first=True)
    image = ToGreyscale()(load(str(path))).as_tensor().float()  # as the bundle loads it: (1, 1935, 2400)
    print(f"{path}: {tuple(image.shape[1:])} px at 0.1 mm, {args.threads} threads, {args.repeats} repeats")
    print("| copy | output | MONAI Resize median / min (s) | ResizeWithLandmarks median / min (s) | max abs diff |")
    print("|---|---|---|---|---|")
    for name, spacing in (("global (1.25 mm)", 1.25), ("local (0.3 mm)", 0.3)):
        ours = ResizeWithLandmarks(spatial_size=None, target_spacing=spacing)
        size = ours.resize_size(image.shape[1:], (0.1, 0.1))
        monai = Resize(size, mode="bilinear", anti_aliasing=True)
        m_med, m_min, expected = timed(lambda: monai(image), args.repeats)
        o_med, o_min, got = timed(lambda: ours(image, None, (0.1, 0.1))[0], args.repeats)
        diff = float((torch.as_tensor(got) - torch.as_tensor(expected)).abs().max())
        print(f"| {name} | {size[0]} x {size[1]} | {m_med:.3f} / {m_min:.3f} | {o_med:.3f} / {o_min:.3f} | {diff:.4f} |")
    print(f"1-minute load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
