"""Package a trained two-stage ISBI 2015 run as the released model and measure it for its model card.

    python benchmarks/release_pretrained.py --workdir runs/release [--out bundles/cephres/pretrained/isbi2015]

``--workdir`` is the folder of a ``benchmarks/isbi_cpu.py --two-stage`` run (its ``datalist.json``: 130 training
and 20 validation images of ISBI 2015's 150, Test1 and Test2 aside; averaged ground truth; and its trained
``models/`` and ``models/local/``). The script

1. fits the shape model on the training section and the uncertainty calibrations on the validation section (the
   bundle's ``calibrating`` run with ``shape.json``: once single-stage, once two-stage), so Test1 and Test2 are
   never used for training or selection;
2. writes the released folder: the two networks' weights in half precision (``--full-precision``: as trained, for
   when half precision moves a Test1 point by 0.01 mm or more), ``model.json`` (with the ``"model"``
   record ``{"kind": "released", "name", "version"}``), ``local/``, the shape model and both calibrations;
3. evaluates the released folder on Test1 and Test2 through the bundle (``evaluate.json``: both stages, without
   and with shape refinement): coarse, two-stage and shape-refined points, the
   uncertainty figures, and how far the half-precision weights move the points from the full-precision ones
   (``--full-eval``: the workdir's own two-stage evaluation, e.g. ``eval`` of the isbi_cpu run);
4. writes every figure to ``<workdir>/release_figures.json`` and prints one table (the model card's).

The ISBI folder comes from ``$MONAI_CEPH_ISBI_DIR`` (default ``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isbi_cpu import SECTIONS, run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NAME, VERSION = "cephres-isbi2015", "1.0.0"
TWO_STAGE_EVALUATE = ["local_train.json", "evaluate.json", "two_stage_evaluate.json"]


def half_precision(src: Path, dst: Path) -> None:
    """Copy a checkpoint with its floating-point tensors in float16 (loading casts them back to the network's)."""
    state = torch.load(src, map_location="cpu", weights_only=True)

    def half(x):
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            return x.half()
        return {k: half(v) for k, v in x.items()} if isinstance(x, dict) else x

    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(half(state), dst)


def package(models: Path, out: Path, half: bool = True) -> None:
    """The released folder from a run's ``models/`` (see the module docstring); ``half``: float16 weights."""
    if out.exists():
        shutil.rmtree(out)
    for sub in ("", "local"):
        if half:
            half_precision(models / sub / "model.pt", out / sub / "model.pt")
        else:
            (out / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(models / sub / "model.pt", out / sub / "model.pt")
        settings = json.loads((models / sub / "model.json").read_text())
        settings["model"] = {"kind": "released", "name": NAME, "version": VERSION}
        (out / sub / "model.json").write_text(json.dumps(settings, indent=2) + "\n")
    for name in ("shape_model.json", "uncertainty_calibration.json", "local/two_stage_uncertainty_calibration.json"):
        shutil.copy2(models / name, out / name)


def landmark_files(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def max_shift_mm(a: Path, b: Path, key: str = "") -> float:
    """Largest distance (mm) between the same landmark of the same image in two folders of landmark JSONs
    (``key`` ``"unrefined_"`` reads the points before shape refinement)."""
    worst = 0.0
    first, second = landmark_files(a), landmark_files(b)
    for image_id in first.keys() & second.keys():
        for p, q in zip(first[image_id]["landmarks"], second[image_id]["landmarks"]):
            s = np.asarray(first[image_id]["spacing"])
            u = np.array([p[f"{key}x"], p[f"{key}y"]], dtype=float)
            v = np.array([q["x"], q["y"]], dtype=float)
            worst = max(worst, float(np.linalg.norm((u - v) * s)))
    return worst


def regression_mre(folder: Path, ids: list[str]) -> float:
    """MRE (mm) over the landmarks of images ``ids`` in a folder of landmark JSONs written with ground truth."""
    errors = [lm["error_mm"] for i in ids for lm in json.loads((folder / f"{i}.json").read_text())["landmarks"]]
    return float(np.mean([e for e in errors if e is not None]))


def write_regression(work: Path, out: Path, n: int = 10) -> dict:
    """``<out>/regression.json``: the MRE of the first ``n`` Test1 images for the tests that guard the inference
    path (tests/api/test_pretrained.py): the full pipeline (two-stage + shape refinement, what the API and the CLI
    run) and the global stage alone (what a single-stage path runs)."""
    ids = sorted(p.stem for p in (work / "eval_release" / "shape_refined" / "test1" / "landmarks").glob("*.json"))[:n]
    record = {
        "section": "test1", "ground_truth": "average of senior and junior", "images": ids,
        "mre_mm": {
            "full": regression_mre(work / "eval_release" / "shape_refined" / "test1" / "landmarks", ids),
            "global": regression_mre(work / "eval_release" / "shape_refined" / "test1" / "coarse_landmarks", ids),
        },
    }
    (out / "regression.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="a benchmarks/isbi_cpu.py --two-stage run")
    parser.add_argument("--out", type=Path, default=REPO / "bundles" / "cephres" / "pretrained" / "isbi2015")
    parser.add_argument("--full-eval", type=Path, default=None,
                        help="eval folder of the full-precision two-stage evaluation (default <workdir>/eval)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-calibration", action="store_true", help="the workdir's models are calibrated")
    parser.add_argument("--no-orientation", action="store_true",
                        help="evaluate without the orientation check (ISBI films all face right: the same points, "
                        "a fifth of the global passes)")
    parser.add_argument("--full-precision", action="store_true",
                        help="ship the float32 weights (when float16 moves a Test1 point by 0.01 mm or more)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.workdir.resolve()
    models = work / "models"
    trained = json.loads((models / "model.json").read_text())
    common = {"bundle_root": str(work), "datalist_file": str(work / "datalist.json"),
              "spatial_size": trained["spatial_size"], "num_workers": 1}
    start = time.perf_counter()
    if not args.skip_calibration:
        run(["shape.json"], "calibrating", **common)
        run([*TWO_STAGE_EVALUATE, "shape.json"], "calibrating", **common)
    package(models, args.out, half=not args.full_precision)
    released = {**common, "ckpt_dir": str(args.out), "local#ckpt_dir": str(args.out / "local"),
                "output_dir": str(work / "eval_release"), "save_overlays": False,
                **({"orientation": False} if args.no_orientation else {})}
    figures: dict = {"name": NAME, "version": VERSION, "spatial_size": trained["spatial_size"],
                     "local": trained.get("local"), "sections": {}}
    for section in SECTIONS:
        rows = {}
        for refine in (False, True):  # evaluate.json runs both stages (a local model is there), refined or not
            out = work / "eval_release" / ("shape_refined" if refine else "two_stage")
            run(["evaluate.json"], "evaluating", **{**released, "output_dir": str(out)}, shape_refine=refine,
                eval_section=section)
            rows["coarse"] = json.loads((out / section / "coarse_radial_error_summary.json").read_text())
            rows["shape_refined" if refine else "two_stage"] = json.loads(
                (out / section / "radial_error_summary.json").read_text())
        full = (args.full_eval or work / "eval") / section / "landmarks"
        half = work / "eval_release" / "two_stage" / section / "landmarks"
        figures["sections"][section] = {
            "rows": rows,
            "fp16_max_shift_mm": max_shift_mm(full, half) if full.is_dir() else None,
            "landmarks": str(work / "eval_release" / "shape_refined" / section / "landmarks"),
        }
    figures["regression"] = write_regression(work, args.out)
    figures["minutes"] = (time.perf_counter() - start) / 60
    figures["size_mb"] = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 1e6
    (work / "release_figures.json").write_text(json.dumps(figures, indent=1))

    print(f"\n{NAME} {VERSION} in {args.out} ({figures['size_mb']:.1f} MB), input {trained['spatial_size']} (x, y)")
    print("| set | points | MRE ± SD (mm) | SDR 2.0 | 2.5 | 3.0 | 4.0 mm (%) | Spearman rho | 95 % ellipse coverage |")
    print("|---|---|---|---|---|---|---|---|---|")
    for section, block in figures["sections"].items():
        for name, s in block["rows"].items():
            u = s.get("uncertainty") or {}
            rho, cov = u.get("spearman_rho"), u.get("ellipse_coverage_percent")
            sdr = s["sdr_percent"]
            print(f"| {section} | {name} | {s['mre_mm']:.2f} ± {s['sd_mm']:.2f} | {sdr['2.0']:.1f} | {sdr['2.5']:.1f} "
                  f"| {sdr['3.0']:.1f} | {sdr['4.0']:.1f} | {'-' if rho is None else f'{rho:.2f}'} "
                  f"| {'-' if cov is None else f'{cov:.1f}'} |")
        print(f"half-precision weights move the {section} points by at most {block['fp16_max_shift_mm']} mm")
    print(f"regression guard (first 10 Test1 images): {figures['regression']['mre_mm']}")


if __name__ == "__main__":
    main()
