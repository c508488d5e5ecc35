"""Cephalometric analysis agreement on ISBI 2015 Test1 and Test2: per measurement, the senior vs the junior
annotator (the inter-observer ceiling) and, given a model's predictions, the model vs the averaged ground truth.

    python benchmarks/analysis.py [--predictions DIR] [--json OUT.json]

What it measures: every measurement of ``monai_ceph.analysis`` that the 19 ISBI landmarks determine, on the
source images (0.1 mm/pixel): MAE of the value (deg / mm / ratio / %), and the accuracy (%) and Cohen's kappa of
the classes the two sides imply (the ISBI 2015 challenge's classes for its eight measures, norm +- 1 SD for the
textbook ones). The junior annotation is ``2 * average - senior`` (the average CSV is integer-rounded, so the
junior points are exact to +-1 px). ``--predictions`` is a folder of the bundle's landmark JSONs
(``<id>.json`` as ``monai_ceph.handlers.LandmarkWriter`` writes them, e.g. ``eval/test/landmarks`` of an
evaluation run);
images missing there are left out of the model columns and counted. The challenge's best entries reached about
77-79 % classification accuracy on the skeletal measures (Wang et al., Medical Image Analysis 31, 2016).

The ISBI folder comes from ``$MONAI_CEPH_ISBI_DIR`` (default ``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from monai_ceph.analysis import agreement, determinable_measurements, get_measurement, measure
from monai_ceph.data import isbi_dir, load_isbi2015, landmarks_from_json

SPLITS = ("test1", "test2")


def read_predictions(folder: Path, landmark_set: str = "isbi2015") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{id: (landmarks (N, 2) source pixels, spacing (2,))}`` from the LandmarkWriter JSONs of ``folder``."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if "landmarks" not in record or "spacing" not in record:
            continue  # not a landmark file (e.g. a summary)
        if record.get("landmark_set") not in (None, landmark_set):
            raise ValueError(f"{path}: landmark set {record['landmark_set']!r}, expected {landmark_set!r}.")
        rows = record["landmarks"]
        points = landmarks_from_json([None if r["x"] is None or r["y"] is None else [r["x"], r["y"]] for r in rows])
        out[str(record.get("id", path.stem))] = (points, np.asarray(record["spacing"], dtype=np.float64))
    if not out:
        raise FileNotFoundError(f"no landmark JSON files in {folder}.")
    return out


def ground_truths(root: Path) -> dict[str, dict[str, dict]]:
    """Per split, ``{id: {"senior", "junior", "average", "spacing"}}``."""
    senior = {r.id: r for r in load_isbi2015(root, "senior")}
    average = {r.id: r for r in load_isbi2015(root, "average")}
    out: dict[str, dict[str, dict]] = {s: {} for s in SPLITS}
    for image_id, s in senior.items():
        if s.split in out:
            avg = average[image_id].landmarks
            junior = 2 * avg - s.landmarks
            out[s.split][image_id] = {"senior": s.landmarks, "junior": junior, "average": avg, "spacing": s.spacing}
    return out


def evaluate(root: Path, predictions: Path | None) -> dict:
    names = list(determinable_measurements("isbi2015"))
    preds = read_predictions(predictions) if predictions is not None else None
    results = {}
    for split, cases in ground_truths(root).items():
        ids = sorted(cases)
        m = {who: [measure(cases[i][who], cases[i]["spacing"]) for i in ids] for who in ("senior", "junior", "average")}
        entry = {"n_images": len(ids), "senior_vs_junior": agreement(m["junior"], m["senior"], names)}
        if preds is not None:
            found = [i for i in ids if i in preds]
            pm = [measure(preds[i][0], preds[i][1]) for i in found]
            gm = [m["average"][ids.index(i)] for i in found]
            entry.update(n_predicted=len(found), model_vs_average=agreement(pm, gm, names))
        results[split] = entry
    return results


def _cell(entry: dict | None, unit_width: int = 6) -> str:
    if entry is None:
        return " " * 22
    f = lambda v, p: "–" if v is None else f"{v:.{p}f}"  # noqa: E731
    mae = f(entry["mae"], 3 if entry["unit"] == "ratio" else 2)
    return f"{mae:>{unit_width}} {f(entry.get('accuracy'), 1):>6} {f(entry.get('kappa'), 2):>6}"


def print_table(results: dict) -> None:
    model = any("model_vs_average" in r for r in results.values())
    head = "senior vs junior (MAE acc% kappa)" + ("  |  model vs average" if model else "")
    print("Cephalometric agreement on ISBI 2015 (source images, 0.1 mm/px); CPU, numpy")
    for split, r in results.items():
        extra = f", model predictions for {r['n_predicted']}" if model else ""
        print(f"\n{split}: {r['n_images']} images{extra}")
        print(f"{'measure':12s} {'unit':5s} {head}")
        for name, sj in r["senior_vs_junior"].items():
            line = f"{name:12s} {get_measurement(name).unit:5s} {_cell(sj)}"
            if model:
                line += f"  |  {_cell(r['model_vs_average'][name])}"
            print(line)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=Path, default=None, help="folder of the bundle's landmark JSONs")
    parser.add_argument("--dataset-dir", type=Path, default=None, help="default: $MONAI_CEPH_ISBI_DIR")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    root = args.dataset_dir or isbi_dir()
    results = evaluate(root, args.predictions)
    print_table(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
