"""How reliably does :class:`~monai_ceph.inferers.OrientationInferer` tell which way a radiograph faces?

Each of N ISBI 2015 Test1 images (all upright, profile facing right) is given as it is, mirrored and rotated by
90/180/270 degrees; the global network of a model folder scores every candidate orientation and the table gives
the fraction decided right per given orientation, with the mean score margin of the right candidate over the best
wrong one. Run by hand (CPU is fine with a small model):

    MONAI_CEPH_ISBI_DIR=/path/to/isbi2015 python benchmarks/orientation.py --models MODELS_DIR [-n 20]
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
    args = parser.parse_args()
    isbi = os.environ.get("MONAI_CEPH_ISBI_DIR", "../shared/data/isbi2015")
    with open(os.path.join(isbi, "test1_senior.csv")) as f:
        names = [line.split(",")[0] for line in f.read().splitlines()[1:]][: args.n]
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
    load = LoadImage(reader=RadiographReader(), image_only=True, ensure_channel_first=True)
    right = {n: 0 for n in ORIENTATIONS}
    gaps: dict[str, list[float]] = {n: [] for n in ORIENTATIONS}
    start = time.perf_counter()
    for name in names:
        upright_image = torch.as_tensor(np.asarray(load(os.path.join(isbi, "images", name)), dtype=np.float32))
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
    print(f"model: {args.models or 'released'}; {len(names)} Test1 images; {time.perf_counter() - start:.0f} s")
    print(f"{'given as':<12} {'decided right':>14} {'mean margin':>12} {'min margin':>11}")
    for given in ORIENTATIONS:
        print(f"{given:<12} {right[given]:>9}/{len(names):<4} {np.mean(gaps[given]):>12.3f} {min(gaps[given]):>11.3f}")


if __name__ == "__main__":
    main()
