"""Heatmap codec benchmark: round-trip error and encode/decode time, ours vs MONAI's GenerateHeatmap.

Round trip: random sub-pixel landmarks (away from the border) are encoded with sigma = 2 px at the model size
576 x 736 and decoded again; the error is the Euclidean distance in pixels. Timing: one sample of 19 landmarks
(the ISBI set), encode and decode separately, median of several runs.

    python benchmarks/codec.py [--points 200] [--repeats 20] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from monai.transforms import GenerateHeatmap

from monai_ceph.transforms import MODEL_SPATIAL_SIZE, GaussianHeatmapCodec

SIGMA = 2.0
MARGIN = 12.0  # > 4 sigma from the border
NUM_LANDMARKS = 19


def random_points(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    size = torch.tensor(MODEL_SPATIAL_SIZE, dtype=torch.float64)
    return MARGIN + torch.rand(n, 2, generator=g, dtype=torch.float64) * (size - 1 - 2 * MARGIN)


def median_ms(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[1:])


def round_trip(points: torch.Tensor, encode, codec: GaussianHeatmapCodec, logits: bool = False) -> tuple[float, float]:
    """Max and mean error (px) of ``codec.decode(encode(points))``, 19 points per heatmap stack."""
    errors = []
    for chunk in points.split(NUM_LANDMARKS):
        heatmap = encode(chunk)
        if logits:
            heatmap = torch.logit(heatmap.double().clamp(1e-12, 1 - 1e-12))
        decoded, _ = codec.decode(heatmap, logits=logits)
        errors.append(torch.linalg.vector_norm(decoded.double().cpu() - chunk.cpu(), dim=-1))
    e = torch.cat(errors)
    return e.max().item(), e.mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    points = random_points(args.points).to(device)
    size = MODEL_SPATIAL_SIZE

    dark = GaussianHeatmapCodec(sigma=SIGMA)
    variants = {
        "ours, DARK": (dark, False),
        "ours, DARK on logits": (dark, True),
        "ours, DARK + blur": (GaussianHeatmapCodec(sigma=SIGMA, blur=True), False),
        "ours, local centroid": (GaussianHeatmapCodec(sigma=SIGMA, decode_method="centroid"), False),
        "ours, argmax only": (GaussianHeatmapCodec(sigma=SIGMA, decode_method="argmax"), False),
    }
    monai = GenerateHeatmap(sigma=SIGMA, spatial_shape=size)

    def monai_encode(p):
        return torch.as_tensor(monai(p.cpu().float())).to(device)

    rows = []
    one = points[:NUM_LANDMARKS]
    for name, (codec, logits) in variants.items():
        heatmap = codec.encode(one, size)
        decode_input = torch.logit(heatmap.clamp(1e-7, 1 - 1e-7)) if logits else heatmap
        err_max, err_mean = round_trip(points, lambda p, c=codec: c.encode(p, size), codec, logits)
        t_enc = median_ms(lambda c=codec: c.encode(one, size), args.repeats, device)
        t_dec = median_ms(lambda c=codec, h=decode_input, lg=logits: c.decode(h, logits=lg), args.repeats, device)
        rows.append((name, err_max, err_mean, t_enc, t_dec))
    err_max, err_mean = round_trip(points, monai_encode, dark)
    t_enc = median_ms(lambda: monai_encode(one), args.repeats, device)
    rows.append(("MONAI GenerateHeatmap + our DARK", err_max, err_mean, t_enc, float("nan")))

    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"Heatmap codec, sigma = {SIGMA:g} px, {NUM_LANDMARKS} landmarks at {size[0]} x {size[1]} (MONAI order), "
          f"{args.points} random sub-pixel points, device {device} (threads: {threads})")
    header = f"{'encoder / decoder':34s} {'max err px':>10s} {'mean err px':>11s} {'encode ms':>10s} {'decode ms':>10s}"
    print(header)
    print("-" * len(header))
    for name, e_max, e_mean, t_e, t_d in rows:
        print(f"{name:34s} {e_max:10.5f} {e_mean:11.5f} {t_e:10.2f} {t_d:10.2f}")


if __name__ == "__main__":
    main()
