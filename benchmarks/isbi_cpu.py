"""Train the cephres bundle on ISBI 2015 on the CPU within a time budget, then evaluate on Test1 and Test2.

    python benchmarks/isbi_cpu.py [--minutes 60] [--spatial-size 160 200] [--workdir DIR]

What it measures: the paper's workflow (bundles/cephres/configs/train.json, unchanged apart from the overrides
printed below: on a CPU budget of tens of epochs, Adam at 1e-3 replaces the paper's RMSprop at 1e-4, which needs
hundreds) trained on the 150 ISBI 2015 training images (130 to train, 020-150's last 20 to select the model;
Test1 is never seen before evaluation), at a reduced input size so that the CPU budget buys several epochs, then
evaluated against the averaged senior/junior ground truth, the reference of published results. Errors are in mm
on the source images (0.1 mm/pixel). Prints one table: ours vs the best published figures.

The ISBI folder comes from ``$MONAI_CEPH_ISBI_DIR`` (default ``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from monai.bundle import ConfigWorkflow

from monai_ceph.data import build_datalist, isbi_dir, write_datalist

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "cephres" / "configs"
PUBLISHED = {"test1": "FARNet 1.12 / 88.0", "test2": "FARNet 1.42 / 77.0"}


def make_datalist(workdir: Path, num_val: int) -> Path:
    """Training images split into train/validation by id; Test1 and Test2 kept aside; averaged ground truth."""
    datalist = build_datalist(isbi_dir(), fmt="isbi2015", ground_truth="average")
    train = sorted(datalist["training"], key=lambda i: i["id"])
    split = {
        "training": train[:-num_val],
        "validation": train[-num_val:],
        "test1": datalist["validation"],
        "test2": datalist["test"],
    }
    return write_datalist(split, workdir / "datalist.json")


def run(config_files, run_id: str, **overrides):
    workflow = ConfigWorkflow(config_file=[str(CONFIGS / f) for f in config_files], run_id=run_id, **overrides)
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget, caching included")
    parser.add_argument("--spatial-size", type=int, nargs=2, default=(160, 200), help="model input (W, H)")
    parser.add_argument("--optimizer", default="torch.optim.Adam", help="the paper's is torch.optim.RMSprop")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--num-val", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "isbi_cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--evaluate-only", action="store_true", help="evaluate the workdir's models/model.pt")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    datalist = make_datalist(args.workdir, args.num_val)
    common = {
        "bundle_root": str(args.workdir),
        "datalist_file": str(datalist),
        "spatial_size": list(args.spatial_size),
        "num_workers": 1,
    }
    train_overrides = {
        **common,
        "max_epochs": 1000,
        "optimizer#_target_": args.optimizer,
        "learning_rate": args.learning_rate,
        "optimizer#weight_decay": args.weight_decay,
        "lr_scheduler#patience": 3,
        "time_limit": int(args.minutes * 60),  # switches on train.json's TimeLimit handler
    }
    if args.evaluate_only:
        trained_line = f"{args.workdir / 'models' / 'model.pt'} (trained earlier)"
    else:
        print("training overrides:", json.dumps(train_overrides, indent=1))
        start = time.perf_counter()
        trained = run(["train.json"], "training", **train_overrides)
        minutes = (time.perf_counter() - start) / 60
        epochs = trained.parser.get_parsed_content("train#trainer").state.epoch
        best = trained.parser.get_parsed_content("validate#evaluator").state.best_metric
        trained_line = f"trained {minutes:.1f} min ({epochs} epochs, best validation MRE {best:.2f} mm)"

    rows = []
    for section in ("test1", "test2"):
        run(["train.json", "evaluate.json"], "evaluating", **common, eval_section=section, save_overlays=False)
        summary = json.loads((args.workdir / "eval" / section / "radial_error_summary.json").read_text())
        rows.append((section, summary))

    W, H = args.spatial_size
    print()
    print(f"ISBI 2015, CephRes-MHNet {trained_line}, {platform.machine()} CPU x{args.threads} threads, "
          f"input {H}x{W} (HxW), averaged ground truth")
    print("| set | images | MRE ± SD (mm) | SDR 2.0 | 2.5 | 3.0 | 4.0 mm (%) | published MRE / SDR@2 |")
    print("|---|---|---|---|---|---|---|---|")
    for section, s in rows:
        sdr = s["sdr_percent"]
        print(f"| {section} | {s['n_images']} | {s['mre_mm']:.2f} ± {s['sd_mm']:.2f} | {sdr['2.0']:.1f} | "
              f"{sdr['2.5']:.1f} | {sdr['3.0']:.1f} | {sdr['4.0']:.1f} | {PUBLISHED[section]} |")


if __name__ == "__main__":
    main()
