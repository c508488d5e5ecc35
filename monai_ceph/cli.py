"""The ``monai-ceph`` command line: ``detect``, ``analyse``, ``datalist`` and ``bundle``.

Every command prints what it did and where it wrote; a fault of the input ends it with one line
``error: <file or option>: <fault>`` on stderr and exit status 2 (``MONAI_CEPH_TRACEBACK=1`` prints the traceback
before it; see :mod:`monai_ceph.errors`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

UNITS = """\
Units: landmarks are (x, y) = (column, row) in source-image pixels, pixel centres at integers; *_mm columns are
those times the pixel spacing (mm from the image origin); spacing is mm/pixel."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="monai-ceph",
        description="Cephalometric landmark detection on lateral skull radiographs (monai_ceph).",
        epilog="Run `monai-ceph COMMAND --help` for each command's options, units and defaults.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    d = sub.add_parser(
        "detect", formatter_class=fmt, help="detect the landmarks of radiographs with a trained bundle",
        description="Detect the 19 landmarks (and their measurements and classes) of each image with the bundle's "
        "own inference configs, print them as a table and, with --out, write per-image JSON/CSV, overlays and "
        "measurements plus detections.csv / detections.json for all images.\n\n" + UNITS,
    )
    d.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders (DICOM, PNG, JPEG, BMP, TIFF)")
    d.add_argument("--bundle", default=None, metavar="DIR",
                   help="trained bundle folder with configs/ and models/model.pt (default: the released model "
                   "shipped with the package, see --pretrained)")
    d.add_argument("--pretrained", default=None, metavar="NAME",
                   help="the released model to use without --bundle (default: isbi2015, trained on the ISBI 2015 "
                   "training images; its MODEL_CARD.md is in the package's bundle/pretrained/isbi2015)")
    d.add_argument("--spacing", nargs="+", type=float, default=None, metavar="MM",
                   help="mm/pixel of the non-DICOM images, one value or SX SY (DICOM files use their own tags; "
                   "default: none, an error for non-DICOM images)")
    d.add_argument("--out", default=None, metavar="DIR", help="folder for the outputs (default: print only)")
    d.add_argument("--checkpoint", default=None, metavar="PT", help="model weights (default: BUNDLE/models/model.pt)")
    d.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: CUDA when available, else CPU)")

    a = sub.add_parser(
        "analyse", formatter_class=fmt, help="cephalometric measurements and classes of detected landmarks",
        description="Compute the cephalometric measurements (degrees, mm, ratios) and their classes from a "
        "landmark JSON written by `monai-ceph detect --out` (per-image landmarks/<id>.json or detections.json) "
        "or by the bundle's LandmarkWriter.\n\n" + UNITS,
    )
    a.add_argument("landmarks", metavar="LANDMARKS.json", help="a landmark JSON (one image) or a list of them")
    a.add_argument("--out", default=None, metavar="JSON", help="also write the measurements here (default: print only)")

    sub.add_parser("datalist", add_help=False, help="write a MONAI datalist of a dataset folder "
                   "(`monai-ceph datalist --help`; the same as python -m monai_ceph.data.datalist)")

    b = sub.add_parser(
        "bundle", help="write a ready bundle folder (configs, docs, metadata) to edit or train",
        description="Copy the packaged cephres bundle (configs/ with metadata.json, docs/, LICENSE) into DIR, "
        "ready for `python -m monai.bundle run training --config_file DIR/configs/train.json --bundle_root DIR`.",
    )
    b.add_argument("dir", metavar="DIR", help="the new bundle folder")
    b.add_argument("--force", action="store_true", help="overwrite the configs of an existing bundle in DIR")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``monai-ceph`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["datalist"]:
        from monai_ceph.data.datalist.cli import main as datalist_main

        return datalist_main(argv[1:])
    args = _parser().parse_args(argv)
    command = {"detect": _detect, "analyse": _analyse, "bundle": _bundle}[args.command]
    try:
        return command(args)
    except Exception as e:
        from monai_ceph.errors import error_line, input_error, show_traceback

        if isinstance(e, KeyError) and e.args:
            found = ValueError(e.args[0])  # str(KeyError) quotes the message
        elif isinstance(e, (OSError, ValueError)):
            found = e
        else:  # e.g. MONAI's RuntimeError around a checkpoint or config error: its input error, if any
            found = input_error(e)
        if found is None:
            raise
        if show_traceback():  # MONAI_CEPH_TRACEBACK=1
            import traceback

            traceback.print_exc()
        print(error_line(found), file=sys.stderr)
        return 2


def _image_files(inputs: Sequence[str]) -> list[str]:
    from monai_ceph.data import IMAGE_SUFFIXES

    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(str(f) for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder.")
            files.extend(found)
        elif path.is_file():
            files.append(str(path))
        else:
            raise FileNotFoundError(f"{path}: no such image file or folder.")
    return files


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _check_device(device: str | None) -> None:
    """A ``ValueError`` naming ``--device`` unless it is a device this machine has."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"--device {device}: not a torch device ({e}); use e.g. cpu or cuda:0.") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (dev.index or 0) >= count:
            found = f"{count} CUDA device(s)" if count else "no CUDA GPU"
            raise ValueError(f"--device {device}: this machine has {found}; use --device cpu.")


def _detect(args: argparse.Namespace) -> int:
    from monai_ceph.apps import LandmarkDetector
    from monai_ceph.data import SpacingError
    from monai_ceph.data.locations import DEFAULT_PRETRAINED
    from monai_ceph.handlers.provenance import model_description

    files = _image_files(args.images)
    _check_device(args.device)
    spacing = None if args.spacing is None else (args.spacing[0] if len(args.spacing) == 1 else args.spacing)
    if args.bundle is not None and args.pretrained is not None:
        raise ValueError("--bundle and --pretrained: pass one of them (a trained bundle, or a released model).")
    if args.bundle is None and args.checkpoint is None:
        det = LandmarkDetector.from_pretrained(args.pretrained or DEFAULT_PRETRAINED, device=args.device,
                                               output_dir=args.out)
    else:
        det = LandmarkDetector.from_bundle(args.bundle, checkpoint=args.checkpoint, device=args.device,
                                           output_dir=args.out)
    print(f"{model_description(det.model)}; pipeline: {', '.join(det.pipeline)}")
    try:
        results = det(files, spacing=spacing)
    except SpacingError as e:
        raise SpacingError(str(e).replace("pass spacing= (mm/pixel)", "pass --spacing MM (mm/pixel)")) from e
    for r in results:
        print(f"\n{r.id}  ({r.source}, spacing {r.spacing[0]:g} x {r.spacing[1]:g} mm/px)")
        print(f"{'landmark':<10}{'x px':>9}{'y px':>9}{'x mm':>9}{'y mm':>9}{'conf':>7}")
        for lm in r.to_dict()["landmarks"]:
            print(f"{lm['abbreviation']:<10}{_fmt(lm['x']):>9}{_fmt(lm['y']):>9}{_fmt(lm['x_mm']):>9}"
                  f"{_fmt(lm['y_mm']):>9}{_fmt(lm['confidence'], 2):>7}")
        if r.classes:
            print("classes: " + ", ".join(f"{k} {v}" for k, v in r.classes.items()))
        for warning in r.warnings:
            print(f"WARNING: {warning}")
    if args.out is not None:
        out = Path(args.out)
        rows = [r.to_csv_row() for r in results]
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with open(out / "detections.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        (out / "detections.json").write_text(json.dumps([r.to_dict() for r in results], indent=2))
        print(f"\n{len(results)} image(s): wrote {out / 'detections.csv'}, {out / 'detections.json'} and per-image "
              f"landmarks/, overlays/, measurements/, analysis_overlays/ under {out}")
    return 0


def _records(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not a JSON file ({e}).") from e
    records = data if isinstance(data, list) else [data]
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("landmarks"), list):
            raise ValueError(f"{path}: entry {i} has no \"landmarks\" list; pass a landmark JSON of `monai-ceph detect`.")
    return records


def _analyse(args: argparse.Namespace) -> int:
    import numpy as np

    from monai_ceph.analysis import classify
    from monai_ceph.analysis.measure import measure_with_reasons
    from monai_ceph.analysis.writers import measurements_to_json

    path = Path(args.landmarks)
    out = []
    for i, rec in enumerate(_records(path)):
        where = f"{path} entry {rec.get('id', i)}"
        try:
            points = np.array([[np.nan if p.get(k) is None else p[k] for k in ("x", "y")] for p in rec["landmarks"]],
                              dtype=float)
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: landmarks must be rows with \"x\" and \"y\" in pixels ({e}).") from e
        landmark_set = rec.get("landmark_set") or "isbi2015"
        try:
            values, reasons = measure_with_reasons(points, rec.get("spacing"), landmark_set)
        except (KeyError, ValueError) as e:
            raise ValueError(f"{where}: {e.args[0] if e.args else e}") from e
        classes = classify(values)
        print(f"\n{rec.get('id', path.stem)}  ({landmark_set}, spacing {rec.get('spacing')} mm/px)")
        for name, value in values.items():
            print(f"  {name:<24}{_fmt(value, 2):>9}  {classes.get(name, reasons.get(name, ''))}")
        out.append(measurements_to_json(values, classes, reasons=reasons, id=rec.get("id"), landmark_set=landmark_set))
    if args.out is not None:
        Path(args.out).write_text(json.dumps(out if len(out) > 1 else out[0], indent=2))
        print(f"\nwrote {args.out}")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from monai_ceph.apps import default_bundle_dir

    source, target = default_bundle_dir(), Path(args.dir)
    if (target / "configs").exists() and not args.force:
        raise FileExistsError(f"{target / 'configs'}: already exists; pass --force to overwrite its configs.")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("configs", "docs"):
        shutil.copytree(source / name, target / name, dirs_exist_ok=True)
    shutil.copy2(source / "LICENSE", target / "LICENSE")
    print(f"wrote the cephres bundle to {target} (configs/, docs/, LICENSE). Train it with:\n"
          f"  python -m monai.bundle run training --config_file {target / 'configs' / 'train.json'} "
          f"--bundle_root {target} --dataset_dir DATASET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
