"""Adapting the released model to a new site: fine-tuning on a few of its annotated images, against the released
model alone and a model trained from scratch on the same images.

    python benchmarks/finetune_site.py [--out runs/finetune_site] [--sites all contrast] [--sizes 5 10 20]
        [--num-images 60] [--test-from 20] [--minutes 10] [--max-epochs 30] [--threads 2]

What it measures: the sites of ``benchmarks/shifted_isbi.py`` (ISBI 2015 Test1 as other scanners would image it:
``all`` is every shift at once), each given its own annotation convention as well: a fixed per-landmark offset of
1-3 mm in a fixed random direction (seeded by the site), added to its ground truth, as a site's doctors place
porion, subnasale or menton their own way. For each site and each ``--sizes`` n: the first n images of the site
fine-tune both stages of the released model (``--finetune_from pretrained``, Adam at 1e-4, at most ``--minutes``
of wall time for both stages together, half each, and ``--max-epochs`` per stage), and the same n images train a
model from scratch with the same budget; the site's images from ``--test-from`` on (never used for training) are
the test set of every row. Errors are mm on the site's images against the site's (offset) ground truth, through
``LandmarkDetector`` (global stage, local stage, shape refinement, calibrated uncertainty, as a user runs it).

Prints one table: site, images, row (released / fine-tuned / from scratch), MRE +- SD, SDR@2 mm, wall time. The goal
(issue 23): with 10 images and at most 10 minutes on 2 cores, the site's MRE within 10 % of the released model's
clean-ISBI MRE (its MODEL_CARD.md; ``--sites clean`` gives it on the same test images).

The ISBI folder comes from ``$MONAI_CEPH_ISBI_DIR`` (default ``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shifted_isbi import make_shifted  # noqa: E402

from monai.bundle import ConfigWorkflow  # noqa: E402

from monai_ceph import LandmarkDetector  # noqa: E402
from monai_ceph.data import build_datalist, isbi_dir, write_datalist  # noqa: E402
from monai_ceph.data.locations import default_bundle_dir  # noqa: E402

OFFSET_MM = (1.0, 3.0)  # the size range of a site's per-landmark annotation offset


def site_convention(items: list[dict], site: str) -> list[dict]:
    """The items with the site's fixed per-landmark offset (1-3 mm, a seeded direction per landmark) added to their
    ground truth, in each item's own pixels."""
    rng = np.random.default_rng(list(site.encode()))
    k = len(items[0]["landmarks"])
    angle, size = rng.uniform(0, 2 * np.pi, k), rng.uniform(*OFFSET_MM, k)
    offset_mm = np.stack([size * np.cos(angle), size * np.sin(angle)], axis=-1)
    out = []
    for item in items:
        points = np.asarray([[np.nan, np.nan] if p is None else p for p in item["landmarks"]], dtype=np.float64)
        moved = points + offset_mm / np.asarray(item["spacing"], dtype=np.float64)
        out.append({**item, "landmarks": [None if np.isnan(p).any() else [float(v) for v in p] for p in moved]})
    return out


def errors_mm(det: LandmarkDetector, items: list[dict]) -> np.ndarray:
    """Radial errors (mm) of every landmark of ``items`` (each detected at its own spacing)."""
    out = []
    for item in items:
        r = det(item["image"], spacing=item["spacing"])
        out.append(np.linalg.norm((r.landmarks - np.asarray(item["landmarks"], dtype=np.float64)) * r.spacing, axis=1))
    return np.concatenate(out)


def train(bundle: Path, items: list[dict], args, finetune: bool) -> float:
    """Both stages on ``items`` (training and validation alike) into ``bundle/models``; returns the wall minutes."""
    if bundle.exists():
        shutil.rmtree(bundle)
    for name in ("configs", "docs"):
        shutil.copytree(default_bundle_dir() / name, bundle / name)
    datalist = write_datalist({"training": items, "validation": items}, bundle / "datalist.json")
    settings = {"bundle_root": str(bundle), "datalist_file": str(datalist), "resume": False, "save_overlays": False,
                "max_epochs": args.max_epochs, "time_limit": int(args.minutes * 30), "num_workers": 0}
    if finetune:
        settings.update({"finetune_from": "pretrained", "optimizer#_target_": "torch.optim.Adam",
                         "learning_rate": 1e-4, "optimizer#weight_decay": 0.0})
    else:  # the released model's input size and the benchmark's CPU recipe, from random weights
        released = json.loads((default_bundle_dir() / "pretrained" / "isbi2015" / "model.json").read_text())
        settings.update({"spatial_size": released["spatial_size"], "optimizer#_target_": "torch.optim.Adam",
                         "learning_rate": 1e-3, "optimizer#weight_decay": 0.0})
    start = time.perf_counter()
    for files in (["train.json"], ["train.json", "local_train.json"]):
        wf = ConfigWorkflow(config_file=[str(bundle / "configs" / f) for f in files], workflow_type="train",
                            **settings)
        wf.initialize()
        wf.run()
        wf.finalize()
    return (time.perf_counter() - start) / 60


def row(name: str, errors: np.ndarray, minutes: float | None) -> dict:
    return {"row": name, "mre_mm": float(np.mean(errors)), "sd_mm": float(np.std(errors)),
            "sdr2_percent": float(100 * np.mean(errors <= 2.0)), "minutes": minutes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs") / "finetune_site")
    parser.add_argument("--sites", nargs="+", default=["all"], help="shifted_isbi.py sets (and 'clean')")
    parser.add_argument("--sizes", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--num-images", type=int, default=60, help="Test1 images made into each site")
    parser.add_argument("--test-from", type=int, default=20, help="the site's images from here on are the test set")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall budget of one training, both stages")
    parser.add_argument("--max-epochs", type=int, default=30, help="epochs of each stage at most")
    parser.add_argument("--no-scratch", action="store_true", help="leave out the from-scratch rows")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if max(args.sizes) > args.test_from or args.test_from >= args.num_images:
        parser.error("--sizes must fit before --test-from, and --test-from before --num-images.")
    torch.set_num_threads(args.threads)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    test1 = build_datalist(isbi_dir(), fmt="isbi2015", ground_truth="average")["validation"][: args.num_images]
    shifts = [s for s in args.sites if s != "clean"]
    sets = json.loads(make_shifted(args.out / "sites", test1, shifts).read_text()) if shifts else {"clean": test1}
    released = LandmarkDetector.from_pretrained()
    results = []
    for site in args.sites:
        items = site_convention(sets[site], site)
        test = items[args.test_from:]
        results.append({"site": site, "images": 0, **row("released model", errors_mm(released, test), None)})
        print(results[-1])
        for n in args.sizes:
            for name, finetune in (("fine-tuned", True), ("from scratch", False)):
                if not finetune and args.no_scratch:
                    continue
                bundle = args.out / f"{site}_{n}_{'ft' if finetune else 'scratch'}"
                minutes = train(bundle, items[:n], args, finetune)
                det = LandmarkDetector.from_bundle(bundle)
                results.append({"site": site, "images": n, **row(name, errors_mm(det, test), minutes)})
                print(results[-1])
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "rows": results}, indent=1))
    print(f"\nfine-tuning on a new site, {platform.machine()} CPU x{args.threads} threads; test: each site's images "
          f"{args.test_from}-{args.num_images - 1} against its own ground truth (annotators' average + the site's "
          f"per-landmark offset of {OFFSET_MM[0]:g}-{OFFSET_MM[1]:g} mm)")
    print("| site | images | row | MRE ± SD (mm) | SDR@2 mm (%) | wall min |")
    print("|---|---|---|---|---|---|")
    for r in results:
        minutes = "-" if r["minutes"] is None else f"{r['minutes']:.1f}"
        print(f"| {r['site']} | {r['images']} | {r['row']} | {r['mre_mm']:.2f} ± {r['sd_mm']:.2f} | "
              f"{r['sdr2_percent']:.1f} | {minutes} |")


if __name__ == "__main__":
    main()
