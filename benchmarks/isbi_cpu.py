"""Train the cephres bundle on ISBI 2015 on the CPU within a time budget, then evaluate on Test1 and Test2.

    python benchmarks/isbi_cpu.py [--minutes 60] [--spatial-size 160 200] [--workdir DIR] [--overlay FILE ...]
    python benchmarks/isbi_cpu.py --two-stage [--minutes 60] [--global-fraction 0.5] [--single-stage-json FILE]

What it measures: the paper's workflow (bundles/cephres/configs/train.json, unchanged apart from the overrides
printed below: on a CPU budget of tens of epochs, Adam at 1e-3 replaces the paper's RMSprop at 1e-4, which needs
hundreds) trained on the 150 ISBI 2015 training images (130 to train, 020-150's last 20 to select the model;
Test1 is never seen before evaluation), at a reduced input size so that the CPU budget buys several epochs, then
evaluated against the averaged senior/junior ground truth, the reference of published results. Errors are in mm
on the source images (0.1 mm/pixel). Each run writes ``<workdir>/results.json``.

``--two-stage`` (issue 10) trains the global stage (train.json) and then the local stage (train.json +
local_train.json) inside the one ``--minutes`` budget, caching included: the global stage gets
``--global-fraction`` of it and the local stage whatever wall time is left. It evaluates both with
two_stage_evaluate.json and prints one table with three rows per test set: the global stage alone (the coarse
points of the same run), the two-stage result, and the single-stage mode given the same total budget, read from
the ``results.json`` of a separate run without ``--two-stage`` (``--single-stage-json``; run it with the same
``--minutes`` and its own ``--workdir``).

Inference time: end-to-end per image (raw 1935x2400 JPEG -> landmarks in mm written to JSON/CSV, model loading
excluded) through inference.json (+ two_stage_inference.json), on ``--threads`` threads in the main process,
median over ``--time-images`` Test1 images (the first, warm-up image excluded).

``--prior`` (issue 10, the prior-conditioned variant) trains and evaluates the local stage with local_prior.json: the
local network also sees one Gaussian channel per landmark at the coarse points (simulated in training, the global
stage's at evaluation); its models go to ``models/local_prior``. ``--local-only`` keeps the workdir's trained global
model (``models/model.pt``, e.g. copied from an earlier ``--two-stage`` run) and gives the whole ``--minutes`` to the
local stage, so that a variant of the local stage is compared with the plain one on the same coarse points and the
same local budget.

``--recentre N`` gives the two-stage evaluation N extra local passes, each re-cropped around the previous pass's
points (``local#recentre``).

``--set ID=VALUE ...`` overrides bundle config ids in every workflow of the run (e.g. ``--set local#prior_jitter=2.4``).

``--overlay FILE ...`` adds bundle overlays (e.g. fixed_size.json for the paper's resize, scanner_augmentation.json) after
train.json in every workflow of the run. ``--max-images N`` cuts every section to N images (smoke tests only).

The ISBI folder comes from ``$MONAI_CEPH_ISBI_DIR`` (default ``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from ignite.engine import Events

from monai.bundle import ConfigWorkflow

from monai_ceph.data import build_datalist, isbi_dir, write_datalist

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "cephres" / "configs"
PUBLISHED = {"test1": "FARNet 1.12 / 88.0", "test2": "FARNet 1.42 / 77.0"}
SECTIONS = ("test1", "test2")
LOCAL = ["local_train.json"]
TWO_STAGE_EVALUATE = ["local_train.json", "evaluate.json", "two_stage_evaluate.json"]
TWO_STAGE_INFERENCE = ["local_train.json", "inference.json", "two_stage_inference.json"]


def config_override(text: str) -> tuple[str, object]:
    """``"local#prior_jitter=2.4"`` -> ``("local#prior_jitter", 2.4)``; a value that is not JSON stays a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected ID=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def make_datalist(workdir: Path, num_val: int, max_images: int | None = None) -> Path:
    """Training images split into train/validation by id; Test1 and Test2 kept aside; averaged ground truth."""
    datalist = build_datalist(isbi_dir(), fmt="isbi2015", ground_truth="average")
    train = sorted(datalist["training"], key=lambda i: i["id"])
    split = {
        "training": train[:-num_val],
        "validation": train[-num_val:],
        "test1": datalist["validation"],
        "test2": datalist["test"],
    }
    if max_images is not None:
        split = {k: v[:max_images] for k, v in split.items()}
    return write_datalist(split, workdir / "datalist.json")


def workflow(config_files, run_id: str, overlays=(), **overrides) -> ConfigWorkflow:
    """``ConfigWorkflow`` of train.json, then ``overlays``, then ``config_files`` (names in the bundle's configs)."""
    files = ["train.json", *overlays, *config_files]
    wf = ConfigWorkflow(config_file=[str(CONFIGS / f) for f in files], run_id=run_id, **overrides)
    wf.initialize()
    return wf


def run(config_files, run_id: str, overlays=(), **overrides) -> ConfigWorkflow:
    wf = workflow(config_files, run_id, overlays, **overrides)
    wf.run()
    wf.finalize()
    return wf


def train(config_files, overlays, overrides: dict, minutes: float, prefix: str = "") -> str:
    """Train for at most ``minutes`` (train.json's TimeLimit handler); returns a line describing the run."""
    overrides = {**overrides, "time_limit": max(1, int(minutes * 60))}
    print(f"training overrides ({' + '.join(['train.json', *overlays, *config_files])}):",
          json.dumps(overrides, indent=1))
    start = time.perf_counter()
    trained = run(config_files, "training", overlays, **overrides)
    spent = (time.perf_counter() - start) / 60
    epochs = trained.parser.get_parsed_content("train#trainer").state.epoch
    best = trained.parser.get_parsed_content("validate#evaluator").state.best_metric
    return f"{prefix}trained {spent:.1f} min ({epochs} epochs, best validation MRE {best:.2f} mm)"


def time_inference(config_files, overlays, common: dict, items: list[dict]) -> dict:
    """Per-image wall time of the inference workflow, from fetching the item (JPEG read) to the written outputs."""
    overrides = {**common, "num_workers": 0, "save_overlays": False, "inference_data": items,
                 "output_dir": str(Path(common["bundle_root"]) / "eval" / "timing")}
    wf = workflow(config_files, "inferring", overlays, **overrides)
    evaluator = wf.parser.get_parsed_content("evaluator")
    starts, times = [], []
    evaluator.add_event_handler(Events.GET_BATCH_STARTED, lambda e: starts.append(time.perf_counter()))
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: times.append(time.perf_counter() - starts[-1]))
    wf.run()
    wf.finalize()
    timed = times[1:] if len(times) > 1 else times
    return {"n_images": len(timed), "median_s": statistics.median(timed), "mean_s": statistics.fmean(timed)}


def evaluate_sections(config_files, overlays, common: dict, summaries: dict[str, str]) -> dict:
    """Run the evaluation workflow per section; ``summaries`` maps a row name to its report file name."""
    rows: dict[str, dict] = {name: {} for name in summaries}
    for section in SECTIONS:
        run(config_files, "evaluating", overlays, **common, eval_section=section, save_overlays=False)
        for name, filename in summaries.items():
            path = Path(common["bundle_root"]) / "eval" / section / f"{filename}_summary.json"
            rows[name][section] = json.loads(path.read_text())
    return rows


def worst(summary: dict, n: int = 3) -> str:
    per = [r for r in summary["per_landmark"] if r["mre_mm"] is not None]
    per.sort(key=lambda r: -r["mre_mm"])
    return ", ".join(f"{r['abbreviation']} {r['mre_mm']:.2f}" for r in per[:n])


def print_table(rows: list[tuple[str, dict]], header: str) -> None:
    print()
    print(header)
    print("| set | row | images | MRE ± SD (mm) | SDR 2.0 | 2.5 | 3.0 | 4.0 mm (%) | worst landmarks (mm) "
          "| inference s/image | published MRE / SDR@2 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for section in SECTIONS:
        for name, result in rows:
            s = result["sections"].get(section)
            if s is None:
                continue
            sdr = s["sdr_percent"]
            t = result.get("inference")
            seconds = f"{t['median_s']:.2f}" if t else "-"
            print(f"| {section} | {name} | {s['n_images']} | {s['mre_mm']:.2f} ± {s['sd_mm']:.2f} | "
                  f"{sdr['2.0']:.1f} | {sdr['2.5']:.1f} | {sdr['3.0']:.1f} | {sdr['4.0']:.1f} | {worst(s)} | "
                  f"{seconds} | {PUBLISHED[section]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="total training budget, caching included")
    parser.add_argument("--spatial-size", type=int, nargs=2, default=(160, 200), help="model input (W, H)")
    parser.add_argument("--optimizer", default="torch.optim.Adam", help="the paper's is torch.optim.RMSprop")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--num-val", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="default runs/isbi_cpu, or runs/isbi_cpu_two_stage with --two-stage")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--evaluate-only", action="store_true", help="evaluate the workdir's trained models")
    parser.add_argument("--overlay", nargs="+", default=[], metavar="FILE",
                        help="bundle overlays (names in bundles/cephres/configs) added after train.json")
    parser.add_argument("--two-stage", action="store_true", help="train and evaluate the global -> local pipeline")
    parser.add_argument("--global-fraction", type=float, default=0.5,
                        help="share of --minutes for the global stage; the local stage gets the rest")
    parser.add_argument("--single-stage-json", type=Path, default=REPO / "runs" / "isbi_cpu" / "results.json",
                        help="results.json of the single-stage run with the same budget (the third row)")
    parser.add_argument("--exploration", action="store_true", help="two-stage: Expansive Exploration")
    parser.add_argument("--recentre", type=int, default=0,
                        help="two-stage: extra local passes, each re-cropped around the previous pass's points")
    parser.add_argument("--prior", action="store_true", help="two-stage: the local stage with coarse-point priors")
    parser.add_argument("--local-only", action="store_true",
                        help="two-stage: keep the workdir's global model; --minutes is the local stage's budget")
    parser.add_argument("--time-images", type=int, default=6, help="Test1 images timed end to end (+1 warm-up)")
    parser.add_argument("--set", nargs="+", default=[], metavar="ID=VALUE", type=config_override,
                        help="bundle config overrides for every workflow of the run (VALUE parsed as JSON if it can be)")
    parser.add_argument("--max-images", type=int, default=None, help="cut every section (smoke tests only)")
    args = parser.parse_args()
    if not 0 < args.global_fraction < 1:
        parser.error(f"--global-fraction must be in (0, 1), got {args.global_fraction}.")
    for name in args.overlay:
        if not (CONFIGS / name).is_file():
            parser.error(f"--overlay {name}: no such file in {CONFIGS}.")
    if args.workdir is None:
        args.workdir = REPO / "runs" / ("isbi_cpu_two_stage" if args.two_stage else "isbi_cpu")

    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    datalist = make_datalist(args.workdir, args.num_val, args.max_images)
    common = {
        "bundle_root": str(args.workdir),
        "datalist_file": str(datalist),
        "spatial_size": list(args.spatial_size),
        "num_workers": 1,
        **{k: v for k, v in args.set if not k.startswith("local#")},
    }
    local_set = {k: v for k, v in args.set if k.startswith("local#")}  # local# exists only with local_train.json
    train_overrides = {
        **common,
        "max_epochs": 1000,
        "optimizer#_target_": args.optimizer,
        "learning_rate": args.learning_rate,
        "optimizer#weight_decay": args.weight_decay,
        "lr_scheduler#patience": 3,
    }
    overlays = list(args.overlay)
    W, H = args.spatial_size
    machine = f"{platform.machine()} CPU x{args.threads} threads, input {H}x{W} (HxW), averaged ground truth"
    test1 = json.loads(datalist.read_text())["test1"]
    timing_items = [{k: item[k] for k in ("image", "spacing", "id")} for item in test1[: args.time_images + 1]]
    extra = f" + {' + '.join(overlays)}" if overlays else ""

    if not args.two_stage:
        trained = "models/model.pt (trained earlier)"
        if not args.evaluate_only:
            trained = train([], overlays, train_overrides, args.minutes)
        sections = evaluate_sections(["evaluate.json"], overlays, common, {"single": "radial_error"})["single"]
        result = {"mode": "single-stage", "trained": trained, "minutes": args.minutes, "overlays": overlays,
                  "sections": sections, "inference": time_inference(["inference.json"], overlays, common, timing_items)}
        (args.workdir / "results.json").write_text(json.dumps(result, indent=1))
        print_table([(f"single-stage{extra}", result)], f"ISBI 2015, CephRes-MHNet {trained}, {machine}")
        return

    # local_prior.json goes right after local_train.json in every two-stage workflow
    local_files, evaluate_files, inference_files = (
        [files[0], "local_prior.json", *files[1:]] if args.prior else files
        for files in (LOCAL, TWO_STAGE_EVALUATE, TWO_STAGE_INFERENCE)
    )
    budget = args.minutes
    if args.evaluate_only:
        trained = "models/model.pt and models/local/model.pt (trained earlier)"
    else:
        start = time.perf_counter()
        if args.local_only:
            if not (args.workdir / "models" / "model.pt").is_file():
                raise SystemExit(f"--local-only: no global model at {args.workdir / 'models' / 'model.pt'}.")
            print(f"budget {budget:.1f} min: the local stage only, on the global model in {args.workdir / 'models'}")
            line_global = "global stage trained earlier (models/model.pt)"
        else:
            global_minutes = budget * args.global_fraction
            print(f"budget {budget:.1f} min: global stage {global_minutes:.1f} min ({args.global_fraction:.0%}), "
                  f"local stage the rest (caching included)")
            line_global = train([], overlays, train_overrides, global_minutes, "global ")
        local_minutes = budget - (time.perf_counter() - start) / 60
        if local_minutes <= 0:
            raise SystemExit(f"the global stage used the whole {budget} min budget; nothing left for the local stage.")
        prefix = "local + prior " if args.prior else "local "
        line_local = train(local_files, overlays, {**train_overrides, **local_set}, local_minutes, prefix)
        trained = f"{line_global}; {line_local}; total {(time.perf_counter() - start) / 60:.1f} min"
    # local# exists only with local_train.json
    two_stage = {**common, "local#exploration": args.exploration, "local#recentre": args.recentre, **local_set}
    rows = evaluate_sections(evaluate_files, overlays, two_stage,
                             {"global": "coarse_radial_error", "two_stage": "radial_error"})
    inference = {"global": time_inference(["inference.json"], overlays, common, timing_items),
                 "two_stage": time_inference(inference_files, overlays, two_stage, timing_items)}
    result = {"mode": "two-stage", "trained": trained, "minutes": budget, "global_fraction": args.global_fraction,
              "overlays": overlays, "exploration": args.exploration, "prior": args.prior, "set": dict(args.set),
              "recentre": args.recentre,
              "rows": {name: {"sections": rows[name], "inference": inference[name]} for name in rows}}
    (args.workdir / "results.json").write_text(json.dumps(result, indent=1))
    table = [(f"global stage alone{extra}", result["rows"]["global"]),
             (f"two-stage{' + exploration' if args.exploration else ''}{' + prior' if args.prior else ''}"
              f"{f' + {args.recentre} re-centred' if args.recentre else ''}{extra}",
              result["rows"]["two_stage"])]
    if args.single_stage_json.is_file():
        single = json.loads(args.single_stage_json.read_text())
        table.append((f"single-stage, {single['minutes']:g} min ({args.single_stage_json})", single))
    else:
        print(f"no single-stage results at {args.single_stage_json}: run this script without --two-stage "
              f"(same --minutes, its own --workdir) for the third row.")
    print_table(table, f"ISBI 2015, two-stage {trained}, {machine}")


if __name__ == "__main__":
    main()
