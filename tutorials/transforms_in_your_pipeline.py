"""Use monai_ceph's transforms in your own MONAI pipeline, on one real ISBI 2015 radiograph.

    python tutorials/transforms_in_your_pipeline.py [--image-id 001] [--out PNG]

1. A datalist item (image path, 19 landmarks in source pixels, spacing) goes through a plain MONAI ``Compose``:
   load, grey, landmark checks, resize to the model size carrying the landmarks, CLAHE, non-local means, heatmaps.
2. The heatmaps are decoded again (what a perfect network would give), mapped back to source pixels through
   the affine the resize recorded, and the round-trip error is printed in pixels and mm: it is the exactness
   of the transforms themselves (a few thousandths of a pixel).
3. A picture of the preprocessed image with its landmarks is written, to look at.

The data folder is ``$MONAI_CEPH_ISBI_DIR`` (default ``../shared/data/isbi2015``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from monai.transforms import Compose, LoadImaged, ScaleIntensityd

from monai_ceph.data import ISBI2015, build_datalist, isbi_dir
from monai_ceph.transforms import (
    CLAHEd,
    GaussianHeatmapCodec,
    HeatmapToLandmarksd,
    LandmarksToHeatmapd,
    LandmarksToSourced,
    EnsureLandmarksd,
    NLMDenoised,
    ResizeWithLandmarksd,
    ToGreyscaled,
)


OUTPUT = Path(__file__).resolve().parent / "output" / "transforms_in_your_pipeline"  # git-ignored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-id", default="001")
    parser.add_argument("--out", type=Path, default=OUTPUT / "overlay.png",
                        help="the picture to write (default: tutorials/output/transforms_in_your_pipeline/overlay.png)")
    args = parser.parse_args()

    datalist = build_datalist(isbi_dir(), ground_truth="average")
    item = next(i for section in datalist.values() if isinstance(section, list) for i in section
                if isinstance(i, dict) and i.get("id") == args.image_id)
    source = np.asarray(item["landmarks"], dtype=np.float64)

    codec = GaussianHeatmapCodec(sigma=2.0, phi=5.0)  # one object for encoding and decoding
    preprocess = Compose([
        LoadImaged("image", image_only=True, ensure_channel_first=True),
        ToGreyscaled("image"),
        EnsureLandmarksd("landmarks", landmark_set=ISBI2015),
        ResizeWithLandmarksd("image"),  # 736x576 (HxW); landmarks, spacing and the source affine travel along
        ScaleIntensityd("image"),
        CLAHEd("image"),
        NLMDenoised("image"),
        LandmarksToHeatmapd("landmarks", heatmap_keys="label", codec=codec),
    ])
    sample = preprocess(item)
    print(f"image {tuple(sample['image'].shape)}, heatmaps {tuple(sample['label'].shape)}, "
          f"model spacing {sample['spacing'].tolist()} mm/px")

    # decode the targets as if they were a perfect prediction, then map back to the source radiograph
    sample["pred"] = sample["label"]
    decoded = Compose([
        HeatmapToLandmarksd("pred", codec=codec),
        LandmarksToSourced(keys="pred_landmarks", ref_key="image"),
    ])(sample)
    error_px = np.linalg.norm(decoded["pred_landmarks"].numpy() - source, axis=1)
    print(f"round trip through resize + heatmaps: max {error_px.max():.4f} px, "
          f"mean {error_px.mean() * 0.1:.5f} mm over {len(error_px)} landmarks")

    from PIL import Image, ImageDraw

    grey = (sample["image"][0].T.numpy() * 255).astype(np.uint8)  # (x, y) -> rows y, columns x
    picture = Image.fromarray(grey).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for (x, y), name in zip(sample["landmarks"].tolist(), ISBI2015.abbreviations):
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=(255, 40, 40))
        draw.text((x + 5, y - 5), name, fill=(255, 220, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    print(f"preprocessed image with its landmarks: {args.out}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
