"""Quickstart: from the ISBI 2015 folder to landmarks and measurements on a new radiograph.

    python tutorials/quickstart.py [--dataset-dir ../shared/data/isbi2015] [--out tutorials/output/quickstart]
        [--train 150] [--validation 20] [--test 20] [--spatial-size 288,368] [--max-epochs 15] [--device cpu]

1. **Datalist**: the dataset folder becomes a MONAI datalist (image path, 19 landmarks in source pixels, spacing
   in mm/pixel, per image) with ISBI's standard split, cut to ``--train`` / ``--validation`` / ``--test`` images.
2. **Bundle**: the packaged cephres bundle is written to ``OUT/cephres`` (``monai-ceph bundle DIR``).
3. **Training**: the bundle's own ``train.json`` (MONAI's ``SupervisedTrainer``), best checkpoint by the
   validation MRE, in ``OUT/cephres/models``.
4. **Evaluation**: ``evaluate.json`` on the test section: MRE, SDR and the measurements' agreement, in
   ``OUT/cephres/eval/test``.
5. **Detection** on a new radiograph (the first test image after the test section, never seen in training or
   selection) with the three-line Python API, ``LandmarkDetector``; its errors against the annotation in mm,
   ``OUT/new_image.json`` and an overlay ``OUT/new_image.png``.
6. **Analysis**: the cephalometric measurements and classes of the detected landmarks beside those of the
   annotated ones.

Each step prints the command line that does the same outside Python. The paper's setting is
``--spatial-size 576,736 --max-epochs 100`` with all images (``--train 150 --validation 150 --test 100``);
the defaults are a short CPU run, and ``--train 3 --validation 1 --test 1 --spatial-size 64,80 --max-epochs 1``
is the smoke test (its model is untrained: expect errors of centimetres). The data folder defaults to
``$MONAI_CEPH_ISBI_DIR`` (``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from monai.bundle import ConfigWorkflow

from monai_ceph import LandmarkDetector
from monai_ceph.analysis import classify, measure
from monai_ceph.cli import main as monai_ceph_cli
from monai_ceph.data import build_datalist, isbi_dir, write_datalist


def size(text: str) -> list[int]:
    return [int(s) for s in text.split(",")]


def make_datalist(dataset_dir: Path, out: Path, counts: dict[str, int]) -> tuple[Path, dict]:
    """The standard split cut to ``counts`` images per section, and the first test item left out (the new image)."""
    full = build_datalist(dataset_dir, ground_truth="average")
    datalist = {**full, **{section: full[section][:n] for section, n in counts.items()}}
    if len(full["test"]) <= counts["test"]:
        raise SystemExit(f"{dataset_dir}: {len(full['test'])} test images, --test {counts['test']} leaves none new.")
    for section, n in counts.items():
        if len(datalist[section]) < n:
            raise SystemExit(f"{dataset_dir}: {len(datalist[section])} {section} images, {n} asked for.")
    path = write_datalist(datalist, out / "datalist.json")
    print(f"1. datalist: {path} ({', '.join(f'{n} {s}' for s, n in counts.items())}; ground truth: the two "
          f"annotators' average)\n   same as: monai-ceph datalist {dataset_dir} FULL.json --ground-truth average")
    return path, full["test"][counts["test"]]


def workflow(bundle: Path, configs: list[str], workflow_type: str, args: argparse.Namespace, **override):
    files = [str(bundle / "configs" / c) for c in configs]
    settings = {"bundle_root": str(bundle), "datalist_file": str(args.out / "datalist.json"),
                "spatial_size": args.spatial_size, **override}
    if args.device:
        settings["device"] = f"$torch.device('{args.device}')"
    if args.num_workers is not None:
        settings["num_workers"] = args.num_workers
    wf = ConfigWorkflow(config_file=files, workflow_type=workflow_type, **settings)
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf


def cli_overrides(bundle: Path, args: argparse.Namespace) -> str:
    return (f"--bundle_root {bundle} --datalist_file {args.out / 'datalist.json'} "
            f"--spatial_size \"[{args.spatial_size[0]}, {args.spatial_size[1]}]\"")


def train(bundle: Path, args: argparse.Namespace) -> None:
    print(f"3. training {args.max_epochs} epoch(s) at {args.spatial_size} (MONAI order: x, y)\n   same as: "
          f"python -m monai.bundle run training --config_file {bundle / 'configs' / 'train.json'} "
          f"{cli_overrides(bundle, args)} --max_epochs {args.max_epochs}")
    wf = workflow(bundle, ["train.json"], "train", args, max_epochs=args.max_epochs, batch_size=args.batch_size,
                  resume=False, save_overlays=False)
    best = wf.parser.get_parsed_content("validate#evaluator").state.best_metric
    print(f"   best validation MRE {best:.2f} mm; model: {bundle / 'models' / 'model.pt'}")


def evaluate(bundle: Path, args: argparse.Namespace) -> None:
    configs = f"\"['{bundle / 'configs' / 'train.json'}','{bundle / 'configs' / 'evaluate.json'}']\""
    print(f"4. evaluation on the test section\n   same as: python -m monai.bundle run evaluating --config_file "
          f"{configs} {cli_overrides(bundle, args)}")
    workflow(bundle, ["train.json", "evaluate.json"], "eval", args, eval_section="test")
    results = bundle / "eval" / "test"
    summary = json.loads((results / "radial_error_summary.json").read_text())
    sdr = ", ".join(f"SDR@{t} mm {p:.1f}%" for t, p in summary["sdr_percent"].items())
    print(f"   test MRE {summary['mre_mm']:.2f} mm (SD {summary['sd_mm']:.2f}) over {summary['n_images']} image(s); "
          f"{sdr}\n   report: {results}")


def detect(bundle: Path, item: dict, args: argparse.Namespace):
    print(f"5. detection on a new image, {item['image']}, with the Python API:\n"
          f"     det = LandmarkDetector.from_bundle(\"{bundle}\")\n"
          f"     result = det(\"{item['image']}\", spacing={tuple(item['spacing'])})\n"
          f"   same as: monai-ceph detect {item['image']} --bundle {bundle} --spacing {item['spacing'][0]:g}")
    det = LandmarkDetector.from_bundle(bundle, device=args.device)
    result = det(item["image"], spacing=item["spacing"])
    truth = np.asarray(item["landmarks"], dtype=np.float64)
    error_mm = np.linalg.norm((result.landmarks - truth) * result.spacing, axis=1)
    print(f"   {'landmark':<10}{'x px':>9}{'y px':>9}{'error mm':>10}")
    for abbr, (x, y), e in zip(result.abbreviations, result.landmarks, error_mm):
        print(f"   {abbr:<10}{x:>9.1f}{y:>9.1f}{e:>10.2f}")
    print(f"   mean radial error on the new image: {np.nanmean(error_mm):.2f} mm")
    (args.out / "new_image.json").write_text(json.dumps(result.to_dict(), indent=2))
    import matplotlib

    matplotlib.use("Agg")
    ax = result.plot()
    ax.figure.savefig(args.out / "new_image.png", dpi=120, bbox_inches="tight")
    print(f"   wrote {args.out / 'new_image.json'} and {args.out / 'new_image.png'}")
    return result, truth


def analyse(result, truth: np.ndarray) -> None:
    print("6. analysis: measurements of the detected landmarks (result.measurements) beside the annotated ones\n"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-dir", type=Path, default=None, help="the ISBI 2015 folder (default: "
                        "$MONAI_CEPH_ISBI_DIR, else ../shared/data/isbi2015)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "output" / "quickstart",
                        help="folder for everything the tutorial writes (default: tutorials/output/quickstart)")
    parser.add_argument("--train", type=int, default=150, help="training images (default 150, all)")
    parser.add_argument("--validation", type=int, default=20, help="validation images (model selection; default 20)")
    parser.add_argument("--test", type=int, default=20, help="test images, for the evaluation (default 20)")
    parser.add_argument("--spatial-size", type=size, default=[288, 368],
                        help="model input x,y in pixels (default 288,368: half the paper's 576,736)")
    parser.add_argument("--max-epochs", type=int, default=15, help="training epochs (default 15; the paper: 100)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per training step (default 4)")
    parser.add_argument("--device", default=None, help="cpu, cuda:0, ... (default: CUDA when available)")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: the bundle's, 2)")
    args = parser.parse_args()

    dataset_dir = args.dataset_dir or isbi_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    counts = {"training": args.train, "validation": args.validation, "test": args.test}
    _, new_item = make_datalist(dataset_dir, args.out, counts)
    bundle = args.out / "cephres"
    print("2. bundle: ", end="", flush=True)
    monai_ceph_cli(["bundle", str(bundle), "--force"])
    train(bundle, args)
    evaluate(bundle, args)
    result, truth = detect(bundle, new_item, args)
    analyse(result, truth)
    print(f"\nquickstart done: everything is under {args.out}")


if __name__ == "__main__":
    main()
