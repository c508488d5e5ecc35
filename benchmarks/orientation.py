"""How reliably does :class:`~monai_ceph.inferers.OrientationInferer` tell which way a radiograph faces?

Each of N ISBI 2015 Test1 images (all upright, profile facing right) is given as it is, mirrored and rotated by
90/180/270 degrees; the global network of a model folder scores every candidate orientation and the table gives
the fraction decided right per given orientation, with the mean score margin of the right candidate over the best
wrong one. With ``--agreement`` it also runs the detector (the whole pipeline the models folder supports) on
each image and its mirror and gives the distance between the original's landmarks and the mirror's mapped back
(``x -> W - 1 - x``), in mm. Run by hand (CPU is fine with a small model):

    MONAI_CEPH_ISBI_DIR=/path/to/isbi2015 python benchmarks/orientation.py --models MODELS_DIR [-n 20] [--agreement]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from monai.data import MetaTensor, list_data_collate
from monai.transforms import LoadImage

from monai_ceph import LandmarkDetector
from monai_ceph.data import RadiographReader
from monai_ceph.inferers.orientation import ORIENTATIONS, OrientationInferer, from_upright


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="a models folder (model.pt, model.json); default: released")
    parser.add_argument("-n", type=int, default=20, help="Test1 images (the first n of test1_senior.csv)")
    parser.add_argument("--margin", type=float, default=0.0)
    parser.add_argument("--agreement", action="store_true", help="also: original vs mirrored through the detector")
    parser.add_argument("--no-decision", action="store_true", help="skip the decision table")
    args = parser.parse_args()
    isbi = os.environ.get("MONAI_CEPH_ISBI_DIR", "../shared/data/isbi2015")
    with open(os.path.join(isbi, "test1_senior.csv")) as f:
        names = [line.split(",")[0] for line in f.read().splitlines()[1:]][: args.n]
    load = LoadImage(reader=RadiographReader(), image_only=True, ensure_channel_first=True)
    images = {n: torch.as_tensor(np.asarray(load(os.path.join(isbi, "images", n)), dtype=np.float32)) for n in names}
    if args.agreement:
        agreement(args.models, images)
    if not args.no_decision:
        decisions(args, images)


def agreement(models: str | None, images: dict) -> None:
    det = LandmarkDetector.from_pretrained(device="cpu") if models is None else LandmarkDetector.from_bundle(
        models_dir=models, device="cpu"
    )
    dist, decided = [], []
    start = time.perf_counter()
    for name, image in images.items():
        original, mirrored = det([image.numpy(), image.flip(1).numpy()], spacing=0.1)
        back = mirrored.landmarks.copy()
        back[:, 0] = image.shape[1] - 1 - back[:, 0]
        dist.append(np.linalg.norm((original.landmarks - back) * 0.1, axis=1))
        decided.append((original.orientation, mirrored.orientation))
    d = np.stack(dist)
    right = sum(o == "as given" and m == "mirrored" for o, m in decided)
    print(f"agreement, {det.pipeline} ({models or 'released'}), {len(images)} Test1 images and their mirrors, "
          f"{time.perf_counter() - start:.0f} s")
    print(f"  both orientations decided right: {right}/{len(images)}")
    print(f"  |original - mirrored mapped back| mm: mean {d.mean():.3f}, median {np.median(d):.3f}, "
          f"95th pct {np.percentile(d, 95):.3f}, max {d.max():.3f}")
    ok = [i for i, (o, m) in enumerate(decided) if o == "as given" and m == "mirrored"]
    if ok:
        print(f"  over the {len(ok)} decided right: mean {d[ok].mean():.3f} mm, max {d[ok].max():.3f} mm")


def decisions(args, images: dict) -> None:
    kwargs = {"two_stage": False, "shape_refine": False, "device": "cpu"}
    det = (
        LandmarkDetector.from_pretrained(**kwargs)
        if args.models is None
        else LandmarkDetector.from_bundle(models_dir=args.models, **kwargs)
    )
    network = det.evaluator.network.eval()
    codec = det.parser.get_parsed_content("codec")
    inferer = OrientationInferer(codec=codec, orientations=list(ORIENTATIONS), margin=args.margin)
    prep = det._array_preprocessing()
    right = {n: 0 for n in ORIENTATIONS}
    gaps: dict[str, list[float]] = {n: [] for n in ORIENTATIONS}
    start = time.perf_counter()
    for name, upright_image in images.items():
        for given in ORIENTATIONS:
            image = from_upright(upright_image, given)  # (C, x, y)
            meta = {"filename_or_obj": f"{name} {given}", "spatial_shape": np.asarray(image.shape[1:])}
            item = prep({"image": MetaTensor(image.clone(), meta=meta), "spacing": [0.1, 0.1], "id": name})
            batch = list_data_collate([item])["image"]
            with torch.no_grad():
                decided, score, _ = inferer.decide(batch, network)
            s = score[0]
            truth = inferer.orientations.index(given)
            right[given] += decided[0] == given
            gaps[given].append(float(s[truth] - torch.cat([s[:truth], s[truth + 1 :]]).max()))
    n = len(images)
    print(f"decision, global network of {args.models or 'released'}; {n} Test1 images; "
          f"{time.perf_counter() - start:.0f} s")
    print(f"{'given as':<12} {'decided right':>14} {'mean margin':>12} {'min margin':>11}")
    for given in ORIENTATIONS:
        print(f"{given:<12} {right[given]:>9}/{n:<4} {np.mean(gaps[given]):>12.3f} {min(gaps[given]):>11.3f}")


if __name__ == "__main__":
    main()
