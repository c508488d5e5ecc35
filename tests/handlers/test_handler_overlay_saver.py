import numpy as np
import pytest
import torch
from ignite.engine import Engine
from PIL import Image

from monai.data import MetaTensor
from monai.transforms import LoadImage
from monai_ceph.handlers import OverlaySaver

W, H = 40, 36  # source image width (x, dim0) and height (y, dim1)


@pytest.fixture
def source_png(tmp_path):
    path = tmp_path / "src" / "017.png"
    path.parent.mkdir()
    Image.fromarray(np.tile(np.linspace(40, 200, W, dtype=np.uint8), (H, 1))).save(path)  # (rows=H, cols=W)
    return str(path)


def colour_near(png, x, y, colour, window=4):
    """Whether a pixel of ``colour`` ("red" / "green") lies within ``window`` of column x, row y."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    patch = rgb[max(0, y - window) : y + window + 1, max(0, x - window) : x + window + 1]
    r, g, b = patch[..., 0], patch[..., 1], patch[..., 2]
    mask = (r > 200) & (g < 100) & (b < 100) if colour == "red" else (g > 200) & (r < 100) & (b < 100)
    return bool(mask.any())


def item_for(source_png, **extra):
    image = LoadImage(image_only=True, ensure_channel_first=True)(source_png)
    assert image.shape == (1, W, H)  # (C, x, y), as the overlay expects
    item = {
        "image": image,
        "pred_landmarks": torch.tensor([[30.0, 5.0], [float("nan"), float("nan")]]),
        "landmarks": torch.tensor([[10.0, 20.0], [20.0, 30.0]]),
    }
    item.update(extra)
    return item


def test_overlay_rereads_source_and_marks_x_y_in_place(tmp_path, source_png):
    saver = OverlaySaver(tmp_path / "out", landmark_set=None)
    path = saver.save(item_for(source_png))
    assert path.endswith("017.png")  # named after the source file, no id in the item
    assert Image.open(path).size == (W, H)
    assert colour_near(path, 30, 5, "red")  # prediction at column x=30, row y=5
    assert not colour_near(path, 5, 30, "red")  # not at the transposed place
    assert colour_near(path, 10, 20, "green") and colour_near(path, 20, 30, "green")
    assert not colour_near(path, 20, 10, "green")


@pytest.mark.parametrize("scale, size", [(0.5, (20, 18)), (2.0, (80, 72))])
def test_overlay_scale_and_names(tmp_path, source_png, scale, size):
    item = item_for(source_png, id="abc")
    item["source"] = item.pop("image")  # source-space image taken from the output, no file re-read
    saver = OverlaySaver(tmp_path, landmark_set=None, show_names=True, scale=scale, source_image_key="source")
    path = saver.save(item)
    assert path.endswith("abc.png") and Image.open(path).size == size
    assert colour_near(path, round(30.5 * scale - 0.5), round(5.5 * scale - 0.5), "red")


def test_overlay_saver_in_evaluator(tmp_path, source_png, make_evaluator, example):
    image = LoadImage(image_only=True, ensure_channel_first=True)(source_png)
    saver = OverlaySaver(tmp_path, landmark_set=None)
    evaluator = make_evaluator(items=example.items(image=image), val_handlers=[saver])
    evaluator.run()
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["000.png", "001.png", "002.png"]
    assert all(Image.open(tmp_path / p).size == (W, H) for p in pngs)
    assert colour_near(tmp_path / "000.png", 10, 10, "green")  # ground truth (10, 10) of image 000


def test_missing_source_image_is_a_clear_error(tmp_path):
    image = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": str(tmp_path / "gone.png")})
    item = {"image": image, "pred_landmarks": torch.zeros(19, 2), "id": "x"}
    engine = Engine(lambda e, b: [item])
    OverlaySaver(tmp_path).attach(engine)
    with pytest.raises(FileNotFoundError, match="gone.png"):
        engine.run([0])
