"""Quickstart: the released model on a new radiograph, its cephalometric analysis, and adapting it to a clinic.

    python tutorials/quickstart.py [--dataset-dir ../shared/data/isbi2015] [--out tutorials/output/quickstart]
        [--finetune 10] [--heldout 10] [--max-epochs 10] [--learning-rate 1e-4] [--device cpu]

1. **Detection** on a new radiograph (an ISBI 2015 Test1 image, never seen in training or model selection) with the
   three-line Python API and the released model shipped with the package (``LandmarkDetector.from_pretrained()``:
   global stage, local stage, shape refinement, calibrated uncertainty); its errors against the annotation in mm,
   ``OUT/new_image.json`` and an overlay ``OUT/new_image.png``.
2. **Analysis**: the cephalometric measurements and classes of the detected landmarks beside those of the
   annotated ones.
3. **Adapting to a clinic**: ``--finetune`` annotated images of "your clinic" (ISBI Test2, whose annotations follow
   other habits than the training images') fine-tune both stages of the released model for ``--max-epochs`` each
   with the bundle's own training (``--finetune_from pretrained``), written to ``OUT/cephres``; then the released
   and the fine-tuned model detect ``--heldout`` other images of the clinic, and their mean radial errors are
   printed side by side.

Each step prints the command line that does the same outside Python. With the defaults the tutorial takes about
5 minutes on 2 CPU cores (``README.md`` gives the measured time). Training a model from scratch is the bundle's
``training`` command (see README, "Train, evaluate and infer on real data"; the released model's own recipe and time
are in its MODEL_CARD.md). The data folder defaults to ``$MONAI_CEPH_ISBI_DIR`` (``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from monai.bundle import ConfigWorkflow

from monai_ceph import LandmarkDetector
from monai_ceph.analysis import classify, measure
from monai_ceph.cli import main as monai_ceph_cli
from monai_ceph.data import build_datalist, isbi_dir, write_datalist


def mre(results, items: list[dict]) -> float:
    """Mean radial error (mm) of detector results against the items' annotations."""
    errors = [np.linalg.norm((r.landmarks - np.asarray(d["landmarks"])) * r.spacing, axis=1)
              for r, d in zip(results, items)]
    return float(np.nanmean(np.concatenate(errors)))


def detect(item: dict, args: argparse.Namespace):
    print(f"1. detection on a new image, {item['image']}, with the released model and the Python API:\n"
          f"     det = LandmarkDetector.from_pretrained()\n"
          f"     result = det(\"{item['image']}\", spacing={tuple(item['spacing'])})\n"
          f"   same as: monai-ceph detect {item['image']} --spacing {item['spacing'][0]:g}")
    det = LandmarkDetector.from_pretrained(device=args.device)
    result = det(item["image"], spacing=item["spacing"])
    print(f"   {result.to_dict()['model']['name']} {result.model['version']}; pipeline: {', '.join(result.pipeline)}")
    truth = np.asarray(item["landmarks"], dtype=np.float64)
    error_mm = np.linalg.norm((result.landmarks - truth) * result.spacing, axis=1)
    print(f"   {'landmark':<10}{'x px':>9}{'y px':>9}{'sigma mm':>10}{'error mm':>10}")
    for abbr, (x, y), s, e in zip(result.abbreviations, result.landmarks, result.sigma_mm, error_mm):
        print(f"   {abbr:<10}{x:>9.1f}{y:>9.1f}{s:>10.2f}{e:>10.2f}")
    print(f"   mean radial error on the new image: {np.nanmean(error_mm):.2f} mm")
    for warning in result.warnings:
        print(f"   WARNING: {warning}")
    (args.out / "new_image.json").write_text(json.dumps(result.to_dict(), indent=2))
    import matplotlib

    matplotlib.use("Agg")
    ax = result.plot()
    ax.figure.savefig(args.out / "new_image.png", dpi=120, bbox_inches="tight")
    print(f"   wrote {args.out / 'new_image.json'} and {args.out / 'new_image.png'}")
    return result, truth


def analyse(result, truth: np.ndarray) -> None:
    print("2. analysis: measurements of the detected landmarks (result.measurements) beside the annotated ones\n"
          f"   same as: monai-ceph analyse {result.id}.json (a landmark JSON of `monai-ceph detect --out`)")
    expected = measure(truth, result.spacing, result.landmark_set)
    expected_classes = classify(expected)
    print(f"   {'measurement':<14}{'detected':>10}{'annotated':>11}  {'class (detected / annotated)'}")
    undetermined = []
    for name, value in result.measurements.items():
        if np.isnan(value) and np.isnan(expected.get(name, np.nan)):
            undetermined.append(name)
            continue
        classes = f"{result.classes.get(name, '-')} / {expected_classes[name]}" if name in expected_classes else ""
        print(f"   {name:<14}{value:>10.2f}{expected.get(name, np.nan):>11.2f}  {classes}")
    if undetermined:
        print(f"   not determinable from the {len(result.landmarks)} landmarks of {result.landmark_set}: "
              + ", ".join(undetermined))


def finetune(clinic: list[dict], heldout: list[dict], args: argparse.Namespace) -> None:
    bundle = args.out / "cephres"
    print(f"3. adapting to a clinic: fine-tune both stages on {len(clinic)} of its annotated images, "
          f"{args.max_epochs} epoch(s) each\n   bundle: ", end="", flush=True)
    monai_ceph_cli(["bundle", str(bundle), "--force"])
    shutil.rmtree(bundle / "models", ignore_errors=True)
    datalist = write_datalist({"training": clinic, "validation": clinic}, args.out / "clinic.json")
    # a short schedule from trained weights: Adam at a tenth of the released model's learning rate (RMSprop's first
    # steps, with its fresh running averages, would throw the trained weights far away)
    tuning = {"finetune_from": "pretrained", "max_epochs": args.max_epochs, "optimizer#_target_": "torch.optim.Adam",
              "learning_rate": args.learning_rate, "optimizer#weight_decay": 0.0}
    settings = {"bundle_root": str(bundle), "datalist_file": str(datalist), "save_overlays": False, "resume": False,
                **tuning}
    if args.device:
        settings["device"] = f"$torch.device('{args.device}')"
    if args.num_workers is not None:
        settings["num_workers"] = args.num_workers
    configs = bundle / "configs"
    start = time.perf_counter()
    for files in (["train.json"], ["train.json", "local_train.json"]):
        names = ",".join(f"'{configs / f}'" for f in files)
        print(f"   python -m monai.bundle run training --config_file \"[{names}]\" --bundle_root {bundle} "
              f"--datalist_file {datalist} " + " ".join(f"--{k} {v}" for k, v in tuning.items()))
        wf = ConfigWorkflow(config_file=[str(configs / f) for f in files], workflow_type="train", **settings)
        wf.initialize()
        wf.run()
        wf.finalize()
    # the fine-tuned models keep the released model's shape model and calibrations (the bundle copies them)
    minutes = (time.perf_counter() - start) / 60
    paths = [d["image"] for d in heldout]
    before = mre(LandmarkDetector.from_pretrained(device=args.device)(paths, spacing=0.1), heldout)
    after = mre(LandmarkDetector.from_bundle(bundle, device=args.device)(paths, spacing=0.1), heldout)
    print(f"   fine-tuned in {minutes:.1f} min; on {len(heldout)} other images of the clinic:\n"
          f"   released model MRE {before:.2f} mm -> fine-tuned MRE {after:.2f} mm ({after - before:+.2f} mm)\n"
          f"   use it: LandmarkDetector.from_bundle(\"{bundle}\") or monai-ceph detect IMAGES --bundle {bundle}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-dir", type=Path, default=None, help="the ISBI 2015 folder (default: "
                        "$MONAI_CEPH_ISBI_DIR, else ../shared/data/isbi2015)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "output" / "quickstart",
                        help="folder for everything the tutorial writes (default: tutorials/output/quickstart)")
    parser.add_argument("--finetune", type=int, default=10, help="the clinic's annotated images to fine-tune on")
    parser.add_argument("--heldout", type=int, default=10, help="other images of the clinic to measure the gain on")
    parser.add_argument("--max-epochs", type=int, default=10, help="fine-tuning epochs of each stage (default 10)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="fine-tuning learning rate (Adam)")
    parser.add_argument("--device", default=None, help="cpu, cuda:0, ... (default: CUDA when available)")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: the bundle's, 2)")
    args = parser.parse_args()

    dataset_dir = args.dataset_dir or isbi_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    full = build_datalist(dataset_dir, ground_truth="average")
    if len(full["test"]) < args.finetune + args.heldout:
        raise SystemExit(f"{dataset_dir}: {len(full['test'])} Test2 images, --finetune + --heldout asks for more.")
    result, truth = detect(full["validation"][0], args)
    analyse(result, truth)
    finetune(full["test"][: args.finetune], full["test"][args.finetune: args.finetune + args.heldout], args)
    print(f"\nquickstart done: everything is under {args.out}")


if __name__ == "__main__":
    main()
