# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""
Per-image time and agreement of CLAHE and non-local means (ours, torch) against scikit-image.

One real ISBI 2015 radiograph (``images/001.jpg`` under ``monai_ceph.data.isbi_dir()``), grey channel, resized
to the model input ``MODEL_SPATIAL_SIZE`` (736x576 height x width, ``(576, 736)`` in MONAI order), float32:

    - ours: ``CLAHE()``, ``NLMDenoise()`` and both in a row on a torch tensor (``--threads`` torch threads,
      default 2), median and min wall time of ``--repeats`` calls after one warm-up call;
    - reference: ``skimage.exposure.equalize_adapthist`` on the channel rescaled to [0, 1] and
      ``skimage.restoration.denoise_nl_means(fast_mode=True, preserve_range=True)`` with the same parameters
      (scikit-image runs these single-threaded), median of the same number of calls;
    - max / mean absolute difference of the outputs (NLM rows: both denoise our CLAHE output; "both": each
      side's whole chain).

Extra NLM rows show what other search windows cost (scikit-image's own defaults included), to judge the
default ``patch_distance``. The CPU may be shared: the 1-minute load average is printed under the table, and
``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` here, because OpenMP threads that spin at each of the many small
parallel regions are very slow when another process holds a core (set it yourself to override).

Usage::

    python benchmarks/intensity.py
    python benchmarks/intensity.py --threads 1 --repeats 20
    python benchmarks/intensity.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when OpenMP starts, i.e. before torch is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.transforms import LoadImage, Resize  # noqa: E402
from skimage.exposure import equalize_adapthist  # noqa: E402
from skimage.restoration import denoise_nl_means  # noqa: E402

from monai_ceph.data import isbi_dir  # noqa: E402
from monai_ceph.transforms.intensity import CLAHE, NLMDenoise  # noqa: E402
from monai_ceph.transforms.spatial.array import MODEL_SPATIAL_SIZE  # noqa: E402

# extra NLM settings: (patch_size, patch_distance, h); the transform's defaults are measured in their own rows
NLM_VARIANTS = [(5, 2, 0.02), (5, 5, 0.02), (7, 11, 0.1)]


def _load_image(device: str) -> torch.Tensor:
    path = isbi_dir() / "images" / "001.jpg"
    if not path.is_file():
        raise SystemExit(f"ISBI image not found: {path} (set MONAI_CEPH_ISBI_DIR)")
    img = LoadImage(image_only=True, ensure_channel_first=True)(path)[:1]
    img = Resize(MODEL_SPATIAL_SIZE, mode="area")(img)
    return img.as_tensor().to(device=device, dtype=torch.float32).contiguous()


def _times(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> tuple[float, float]:
    """(median, min) seconds of ``repeats`` calls after a warm-up call."""
    fn()
    sync()
    spent = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent), min(spent)


def _skimage_clahe(channel: np.ndarray) -> np.ndarray:
    x = channel.astype(np.float64)
    return equalize_adapthist((x - x.min()) / (x.max() - x.min()))


def _skimage_nlm(channel: np.ndarray, nlm: NLMDenoise) -> np.ndarray:
    return denoise_nl_means(
        channel, nlm.patch_size, nlm.patch_distance, nlm.h, fast_mode=True, sigma=nlm.sigma, preserve_range=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device for ours (default: cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per row (default: 10)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    device = f"{args.device} ({args.threads} threads)" if args.device == "cpu" else torch.cuda.get_device_name()

    img = _load_image(args.device)
    channel = img[0].cpu().numpy()
    clahe, nlm = CLAHE(), NLMDenoise()
    ours_clahe = clahe(img)
    ref_clahe = _skimage_clahe(channel)
    our_input = ours_clahe[0].cpu().numpy()

    rows = []  # (what, ours (median, min), reference median, max diff, mean diff)

    def add(what, ours_fn, ref_fn, ours_out, ref_out, repeats=args.repeats):
        ours_t = _times(ours_fn, repeats, sync)
        ref_t = _times(ref_fn, max(1, repeats // 3), lambda: None)
        diff = np.abs(np.asarray(ours_out, dtype=np.float64) - ref_out)
        rows.append((what, ours_t, ref_t[0], diff.max(), diff.mean()))

    add("CLAHE (72x92 kernel, clip 0.01)", lambda: clahe(img), lambda: _skimage_clahe(channel),
        ours_clahe[0].cpu(), ref_clahe)
    add(f"NLM (patch {nlm.patch_size}, distance {nlm.patch_distance}, h {nlm.h})", lambda: nlm(ours_clahe),
        lambda: _skimage_nlm(our_input, nlm), nlm(ours_clahe)[0].cpu(), _skimage_nlm(our_input, nlm))
    add("CLAHE + NLM (defaults)", lambda: nlm(clahe(img)), lambda: _skimage_nlm(_skimage_clahe(channel), nlm),
        nlm(clahe(img))[0].cpu(), _skimage_nlm(ref_clahe, nlm))
    for patch_size, distance, h in NLM_VARIANTS:
        variant = NLMDenoise(patch_size, distance, h)
        add(f"NLM (patch {patch_size}, distance {distance}, h {h})", lambda v=variant: v(ours_clahe),
            lambda v=variant: _skimage_nlm(our_input, v), variant(ours_clahe)[0].cpu(),
            _skimage_nlm(our_input, variant), repeats=max(1, args.repeats // (3 if distance > 5 else 1)))

    header = ("what", "ours [s] median (min)", "scikit-image [s]", "speed-up", "max |diff|", "mean |diff|", "device")
    table = [header] + [
        (what, f"{med:.4f} ({low:.4f})", f"{ref:.4f}", f"{ref / med:.1f}x", f"{dmax:.1e}", f"{dmean:.1e}", device)
        for what, (med, low), ref, dmax, dmean in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    print(f"\nimage: ISBI 001.jpg, grey, resized to {tuple(MODEL_SPATIAL_SIZE)} (MONAI order), float32; "
          f"1-min load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")


if __name__ == "__main__":
    main()
