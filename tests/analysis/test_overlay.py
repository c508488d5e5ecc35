import numpy as np
import pytest
import torch
from PIL import Image

from monai_ceph.analysis import classify, measure, render_analysis_overlay
from monai_ceph.data import ISBI2015


def _image():
    img = np.zeros((1, 200, 240), dtype=np.float32)
    img[:, 40:160, 60:200] = 1.0  # (C, x, y): a bright skull block
    return img


@pytest.mark.parametrize("as_type", (np.asarray, torch.as_tensor))
def test_overlay_draws_the_tracing_and_the_table(tmp_path, layout, as_type):
    points = layout()
    values = measure(points, 1.0)
    fig = render_analysis_overlay(as_type(_image()), as_type(points), values, classify(values), title="001")
    ax, table_ax = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    for name in ("S-N", "FH", "palatal", "mandibular", "A-B", "N-Pog"):
        assert name in labels
    texts = [t.get_text() for t in ax.texts]
    assert f"SNA {values['SNA']:.1f}°" in texts and any(t.startswith("Ar-Go-Me") for t in texts)
    cells = {c.get_text().get_text() for c in table_ax.tables[0].get_celld().values()}
    assert {"ANB", "class", classify(values)["ANB"], f"{values['ANB']:.1f} °", "[0.65, 0.75]"} <= cells
    path = tmp_path / "tracing.png"
    fig.savefig(path)
    png = np.asarray(Image.open(path).convert("RGB"))
    assert png.shape[1] == 1200 and png.std() > 10


def test_missing_landmarks_leave_their_lines_out(layout):
    points = layout()
    points[ISBI2015.index("Go")] = np.nan
    values = measure(points, 1.0)
    fig = render_analysis_overlay(_image(), points, values, None)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "mandibular" not in labels and "S-N" in labels
    assert not any(t.get_text().startswith("Ar-Go-Me") for t in fig.axes[0].texts)
    with pytest.raises(ValueError, match=r"\(19, 2\)"):
        render_analysis_overlay(_image(), points[:10], values)
