"""Shifted ISBI: ISBI 2015 Test1 as other sites would image it, evaluated with trained cephres models.

    python benchmarks/shifted_isbi.py --workdir /work/runs/isbi_cpu [--num-images 150] [--out DIR]
        [--model LABEL=WORKDIR[+overlay.json...]] ... [--no-tta] [--shifts clean spacing ...]

What it measures: a fixed, seeded set of transformations of Test1 (150 images, averaged senior/junior ground truth)
that imitates other scanners and sites, each written as image files with a datalist whose landmarks and pixel
spacing are computed exactly from the transformation (so the ground truth stays the annotators'):

- ``spacing``: resampled to 0.127 mm/pixel (another detector), the spacing kept correct;
- ``fov_crop``: a smaller field of view (78-90 % of the width and height, off-centre, every landmark kept at least
  10 mm inside) at the same pixel spacing;
- ``fov_pad``: a larger field of view (115-130 %, off-centre) with a black empty-detector border;
- ``contrast``: another tone curve: gamma 0.6-0.75 or 1.4-1.7 and a different window (clipped at random low and
  high percentiles);
- ``blur``: a softer detector, Gaussian blur of 0.25-0.4 mm;
- ``noise``: quantum-like Gaussian noise, 2-4 % of the grey range;
- ``jpeg``: JPEG re-export at quality 15-30;
- ``all``: all of the above on each image (``fov_crop`` or ``fov_pad`` alternately), in that order.

Each model configuration is evaluated on ``clean`` (Test1 as stored) and on every shifted set, with and without
test-time augmentation (``configs/tta.json``: scales 0.9/1.0/1.1). Errors are in mm on each shifted image (its
own pixels x its own spacing). A configuration is ``LABEL=WORKDIR`` (a workdir as ``benchmarks/isbi_cpu.py``
writes it: ``models/model.pt``) plus bundle overlays after ``+``, e.g. ``paper=runs/isbi_cpu+fixed_size.json``
for a model trained with the paper's fixed-size resize (the bundle's default input is the physical scale) or
``aug=runs/aug+scanner_augmentation.json`` (the overlay only matters for preprocessing at evaluation; the training
recipe is the workdir's), or ``two=runs/phys+local_train.json+two_stage_evaluate.json`` for the two-stage pipeline
(the workdir's ``models/local/model.pt``). The run refuses a configuration whose input scaling differs from the one the model's
``model.json`` records. Without ``--model`` the ``--workdir`` model is evaluated with the bundle's default input.
``--physical-field-mm`` overrides the physical field (default: the bundle's, 200 x 250 mm). Prints one table.

The ISBI folder comes from ``$MONAI_CEPH_ISBI_DIR`` (default ``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from monai.bundle import ConfigWorkflow
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImage, LoadImaged
from skimage.filters import gaussian

from monai_ceph.data import build_datalist, isbi_dir
from monai_ceph.transforms import LoadLandmarksd, ResizeWithLandmarks, ToGreyscaled
from monai_ceph.transforms.spatial.field_of_view import FieldOfView

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "cephres" / "configs"
SHIFTS = ("spacing", "fov_crop", "fov_pad", "contrast", "blur", "noise", "jpeg", "all")
SITE_SPACING = 0.127  # mm/pixel of the other site's detector
SEED = 2015


def _load(item: dict) -> dict:
    loader = Compose([
        LoadImaged(keys="image", image_only=True, ensure_channel_first=True),
        ToGreyscaled(keys="image"),
        LoadLandmarksd(keys="landmarks", landmark_set="isbi2015"),
    ])
    d = loader(dict(item))
    d["image"] = MetaTensor(d["image"].as_tensor().float() / 255.0, meta=d["image"].meta)
    d["spacing"] = torch.as_tensor(item["spacing"], dtype=torch.float64)
    return d


def _fov_box(rng: np.random.Generator, size, landmarks: np.ndarray, spacing, larger: bool):
    """A field-of-view box (start, end) in pixels; a smaller one keeps every landmark 10 mm inside."""
    size = np.asarray(size, dtype=np.float64)
    fraction = rng.uniform(1.15, 1.30, 2) if larger else rng.uniform(0.78, 0.90, 2)
    side = np.round(size * fraction).astype(int)
    if larger:
        start = np.round(-(side - size) * rng.uniform(0.2, 0.8, 2)).astype(int)
        return start, start + side
    margin = 10.0 / np.asarray(spacing, dtype=np.float64)
    low = np.maximum(0, np.ceil(np.nanmax(landmarks, 0) + margin - side + 1))
    high = np.minimum(size - side, np.floor(np.nanmin(landmarks, 0) - margin))
    side = np.where(low > high, size, side).astype(int)  # the anatomy does not fit: keep that dim whole
    low, high = np.where(low > high, 0, low), np.where(low > high, 0, high)
    start = np.round(rng.uniform(low, high)).astype(int)
    return start, start + side


def _contrast(rng: np.random.Generator, x: torch.Tensor) -> torch.Tensor:
    gamma = rng.uniform(0.6, 0.75) if rng.uniform() < 0.5 else rng.uniform(1.4, 1.7)
    lo, hi = np.quantile(x.numpy().ravel()[::97], [rng.uniform(0.0, 0.05), rng.uniform(0.95, 1.0)])
    return ((x - lo) / max(hi - lo, 1e-6)).clamp(0, 1) ** gamma


def shift_item(d: dict, shifts: tuple[str, ...], rng: np.random.Generator, index: int):
    """Apply ``shifts`` in order; returns (image (1, x, y) in [0, 1], landmarks, spacing, JPEG quality or None)."""
    img, landmarks, spacing = d["image"], d["landmarks"], d["spacing"]
    quality = None
    for shift in shifts:
        if shift == "spacing":
            img, landmarks, spacing = ResizeWithLandmarks(spatial_size=None, pixel_spacing=SITE_SPACING)(
                img, landmarks, spacing
            )
        elif shift in ("fov_crop", "fov_pad", "fov"):
            larger = shift == "fov_pad" or (shift == "fov" and index % 2 == 1)
            start, end = _fov_box(rng, img.shape[1:], landmarks.numpy(), spacing, larger)
            img, landmarks, spacing = FieldOfView(start, end, spatial_size=end - start)(img, landmarks, spacing)
        elif shift == "contrast":
            img = _contrast(rng, img)
        elif shift == "blur":
            sigma = rng.uniform(0.25, 0.4) / np.asarray(spacing, dtype=np.float64)
            blurred = gaussian(torch.as_tensor(img)[0].numpy(), sigma=sigma, mode="nearest", preserve_range=True)
            img = torch.as_tensor(blurred, dtype=torch.float32)[None]
        elif shift == "noise":
            std = rng.uniform(0.02, 0.04)
            noise = torch.as_tensor(rng.standard_normal(tuple(img.shape)), dtype=img.dtype)
            img = (img + std * noise).clamp(0, 1)
        elif shift == "jpeg":
            quality = int(rng.integers(15, 31))
        else:
            raise ValueError(f"unknown shift {shift!r}; choose from {SHIFTS}.")
    return img, landmarks, spacing, quality


def _save(img: torch.Tensor, path: Path, quality: int | None) -> Path:
    """Write a (1, x, y) image in [0, 1] as 8-bit PNG (lossless) or JPEG, in the file's (row = y) order."""
    levels = np.clip(np.rint(torch.as_tensor(img)[0].numpy().T * 255.0), 0, 255).astype(np.uint8)
    if quality is None:
        path = path.with_suffix(".png")
        Image.fromarray(levels).save(path, compress_level=1)
    else:
        path = path.with_suffix(".jpg")
        Image.fromarray(levels).save(path, quality=quality)
    return path


def make_shifted(out: Path, items: list[dict], shifts) -> Path:
    """Write the shifted sets under ``out`` and a datalist with one section per set (``clean`` = Test1)."""
    key = hashlib.sha1(json.dumps([SEED, SITE_SPACING], sort_keys=True).encode()).hexdigest()
    datalist_file, key_file = out / "datalist.json", out / "datalist.key"
    if datalist_file.is_file() and key_file.is_file() and key_file.read_text() == key:
        written = json.loads(datalist_file.read_text())
        index = {item["id"]: i for i, item in enumerate(written["clean"])}
        if set(shifts) <= set(written) and all(
            item["id"] in index and written["clean"][index[item["id"]]] == item for item in items
        ):
            if len(items) == len(written["clean"]):
                return datalist_file
            subset = {k: [v[index[item["id"]]] for item in items] for k, v in written.items()}  # a prefix of Test1: the same seeds
            subset_file = out / f"datalist_{len(items)}.json"
            subset_file.write_text(json.dumps(subset))
            return subset_file
    datalist: dict = {"clean": items}
    plan = {s: (("spacing", "fov", "contrast", "blur", "noise", "jpeg") if s == "all" else (s,)) for s in shifts}
    for shift in shifts:
        (out / shift).mkdir(parents=True, exist_ok=True)
        datalist[shift] = []
    for i, item in enumerate(items):
        d = _load(item)
        for j, shift in enumerate(shifts):
            rng = np.random.default_rng([SEED, i, j])
            img, landmarks, spacing, quality = shift_item(d, plan[shift], rng, i)
            path = _save(img, out / shift / item["id"], quality)
            if i == 0 and j == 0:  # the files load back in the bundle's (x, y) order
                back = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
                assert tuple(back.shape[1:]) == tuple(img.shape[1:]), (back.shape, img.shape)
            points = [[float(v) for v in p] if np.isfinite(p).all() else None for p in landmarks.tolist()]
            datalist[shift].append({
                **{k: v for k, v in item.items() if k not in ("image", "landmarks", "spacing")},
                "image": str(path), "landmarks": points, "spacing": [float(s) for s in spacing],
            })
        print(f"shifted {i + 1}/{len(items)}", end="\r", flush=True)
    datalist_file.write_text(json.dumps(datalist))
    key_file.write_text(key)
    return datalist_file


def evaluate(label: str, workdir: Path, overlays, tta: bool, section: str, args, datalist: Path) -> dict:
    run_root = args.out / "runs" / label
    files = ["train.json", "evaluate.json", *overlays] + (["tta.json"] if tta else [])
    overrides = {
        "bundle_root": str(run_root),
        "ckpt_path": str(workdir / "models" / "model.pt"),
        "output_dir": str(run_root / ("eval_tta" if tta else "eval")),
        "datalist_file": str(datalist),
        "spatial_size": list(args.spatial_size),
        "eval_section": section,
        "save_overlays": False,
        "num_workers": args.num_workers,
    }
    if args.physical_field_mm is not None and "fixed_size.json" not in overlays:
        overrides["physical_field_mm"] = list(args.physical_field_mm)
    if "local_train.json" in overlays:  # the two-stage pipeline: the workdir's local model beside its global one
        overrides["local#ckpt_path"] = str(workdir / "models" / "local" / "model.pt")
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in files], run_id="evaluating", **overrides
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return json.loads((Path(overrides["output_dir"]) / section / "radial_error_summary.json").read_text())


def parse_model(spec: str) -> tuple[str, Path, list[str]]:
    label, _, rest = spec.partition("=")
    if not rest:
        raise SystemExit(f"--model {spec!r}: expected LABEL=WORKDIR[+overlay.json...].")
    workdir, *overlays = rest.split("+")
    model = Path(workdir) / "models" / "model.pt"
    if not model.is_file():
        raise SystemExit(f"--model {spec!r}: no trained model at {model}.")
    for o in overlays:
        if not (CONFIGS / o).is_file():
            raise SystemExit(f"--model {spec!r}: no overlay {CONFIGS / o}.")
    return label, Path(workdir), overlays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "isbi_cpu", help="default model")
    parser.add_argument("--model", action="append", default=None, help="LABEL=WORKDIR[+overlay.json...]")
    parser.add_argument("--spatial-size", type=int, nargs=2, default=(160, 200), help="the models' input (W, H)")
    parser.add_argument("--physical-field-mm", type=float, nargs=2, default=None,
                        help="field of the physical-scale input, mm (default: the bundle's, 200 x 250)")
    parser.add_argument("--num-images", type=int, default=150, help="first N of Test1")
    parser.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=SHIFTS)
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--report", action="store_true", help="print the table of the evaluations done so far")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "shifted_isbi")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = [parse_model(m) for m in args.model] if args.model else [parse_model(f"model={args.workdir}")]

    test1 = sorted(build_datalist(isbi_dir(), fmt="isbi2015", ground_truth="average")["validation"],
                   key=lambda i: i["id"])[: args.num_images]
    start = time.perf_counter()
    datalist = make_shifted(args.out / "shifted", test1, tuple(args.shifts))
    print(f"\nshifted sets ready in {(time.perf_counter() - start) / 60:.1f} min: {datalist}")

    sections = ["clean", *args.shifts]
    results = args.out / "results.jsonl"  # one line per evaluation: a rerun resumes, --report prints what is there
    done = {}
    if results.is_file():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            done[(r["label"], r["model"], r["mtime"], r["tta"], r["section"], r["n"])] = r["summary"]
    rows = []
    for tta in (False,) if args.no_tta else (False, True):
        for label, workdir, overlays in models:
            model = workdir / "models" / "model.pt"
            for section in sections:
                key = (label, str(model), model.stat().st_mtime, tta, section, len(test1))
                if key not in done and not args.report:
                    t0 = time.perf_counter()
                    done[key] = evaluate(label, workdir, overlays, tta, section, args, datalist)
                    with results.open("a") as f:
                        f.write(json.dumps(dict(zip(("label", "model", "mtime", "tta", "section", "n"), key),
                                                summary=done[key])) + "\n")
                    print(f"{label} tta={tta} {section}: MRE {done[key]['mre_mm']:.2f} mm "
                          f"({time.perf_counter() - t0:.0f} s)")
                if key in done:
                    rows.append((label, tta, section, done[key]))
    print_table(rows, args, len(test1))


def print_table(rows, args, n_images: int) -> None:
    W, H = args.spatial_size
    print()
    field = "the bundle's" if args.physical_field_mm is None else " x ".join(f"{f:g}" for f in args.physical_field_mm)
    print(f"Shifted ISBI 2015 Test1 ({n_images} images, averaged ground truth), input {H}x{W} (HxW), "
          f"{platform.machine()} CPU x{args.threads} threads; physical-scale field {field} mm; TTA scales 0.9/1.0/1.1")
    print("| model | TTA | set | MRE ± SD (mm) | vs clean | SDR 2 mm | SDR 4 mm (%) |")
    print("|---|---|---|---|---|---|---|")
    clean = {(lab, t): s["mre_mm"] for lab, t, sec, s in rows if sec == "clean"}
    for label, tta, section, s in rows:
        sdr = s["sdr_percent"]
        ratio = f"{100 * (s['mre_mm'] / clean[(label, tta)] - 1):+.0f} %" if (label, tta) in clean else "-"
        print(f"| {label} | {'yes' if tta else 'no'} | {section} | {s['mre_mm']:.2f} ± {s['sd_mm']:.2f} | "
              f"{ratio} | {sdr['2.0']:.1f} | {sdr['4.0']:.1f} |")


if __name__ == "__main__":
    main()
