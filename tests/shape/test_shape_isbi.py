"""The shape model on the real ISBI 2015 annotations (averaged ground truth, 0.1 mm/pixel)."""

import json

import numpy as np
import pytest

from monai_ceph.data import ISBI2015, ISBI2015_SPACING, read_isbi_csv
from monai_ceph.shape import ShapeModel
from monai_ceph.shape.__main__ import main

ME = ISBI2015.index("Me")


@pytest.fixture(scope="module")
def isbi_shapes(isbi_dir):
    """Training (001-150) and Test1 (151-300) shapes in mm."""
    points = read_isbi_csv(isbi_dir / "average_senior_junior.csv")
    mm = {k: v * np.asarray(ISBI2015_SPACING) for k, v in points.items()}
    train = np.stack([mm[f"{i:03d}"] for i in range(1, 151)])
    test = np.stack([mm[f"{i:03d}"] for i in range(151, 301)])
    return train, test


@pytest.fixture(scope="module")
def isbi_model(isbi_shapes):
    return ShapeModel.fit(isbi_shapes[0], landmark_set="isbi2015")


def test_menton_moved_20mm_is_implausible(isbi_shapes, isbi_model):
    _, test = isbi_shapes
    clean = [isbi_model.plausibility(s) for s in test[:20]]
    moved = []
    for s in test[:20]:
        shape = s.copy()
        shape[ME, 1] += 20.0  # 20 mm down
        moved.append(isbi_model.plausibility(shape))
    for c, m in zip(clean, moved):
        assert int(np.argmax(m.landmark_distance)) == ME and m.outliers()[ME]
        assert m.distance > c.distance + 5
        assert not c.outliers()[ME]
    # where the other points put Menton: near the truth, not at the moved point
    errors = [np.linalg.norm(m.expected[ME] - s[ME]) for m, s in zip(moved, test[:20])]
    assert np.mean(errors) < 5.0
    # the per-point residuals of real test shapes follow roughly chi^2(2): few beyond its 99 % radius
    share = np.mean([c.outliers().mean() for c in clean])
    assert share < 0.1


def test_refit_from_the_other_points_on_test1(isbi_shapes, isbi_model):
    _, test = isbi_shapes
    errors = []
    for s in test[:30]:
        for j in (ME, ISBI2015.index("A"), ISBI2015.index("Go")):
            others = [i for i in range(19) if i != j]
            out = isbi_model.refit(s, others)
            np.testing.assert_array_equal(out[others], s[others])
            errors.append(np.linalg.norm(out[j] - s[j]))
    # a landmark predicted from the 18 others alone, on unseen shapes (the mean shape would miss by ~5-10 mm)
    assert np.mean(errors) < 4.0
    isbi_model.check_landmark_set("isbi2015")
    with pytest.raises(ValueError, match="built from the 'isbi2015' landmark set, not 'aariz'"):
        isbi_model.check_landmark_set("aariz")
    with pytest.raises(ValueError, match="fixed landmark 'XX'.*not in the isbi2015 landmark set"):
        isbi_model.refit(test[0], ["Me", "XX"])
    by_name = isbi_model.refit(test[0], ["S", "N", "Me"], sigma=np.full(19, 2.0))
    np.testing.assert_array_equal(by_name, isbi_model.refit(test[0], [0, 1, ME], sigma=np.full(19, 2.0)))


def test_command_builds_the_model_from_a_datalist(tmp_path, isbi_dir, isbi_shapes, isbi_model, capsys):
    points = read_isbi_csv(isbi_dir / "average_senior_junior.csv")
    items = [{"image": str(isbi_dir / "images" / f"{i:03d}.jpg"), "landmarks": points[f"{i:03d}"].tolist(),
              "spacing": list(ISBI2015_SPACING), "id": f"{i:03d}", "landmark_set": "isbi2015"} for i in range(1, 151)]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": items, "validation": items[:2]}))
    out = tmp_path / "models" / "shape_model.json"
    assert main([str(datalist), str(out)]) == 0
    assert "num_shapes=150" in capsys.readouterr().out
    model = ShapeModel.load(out)
    assert model.landmark_set == "isbi2015"
    np.testing.assert_allclose(model.mean, isbi_model.mean, atol=1e-9)
    assert main([str(datalist), str(tmp_path / "x.json"), "--section", "validation"]) == 1
    assert "needs at least 2*K = 38 training shapes" in capsys.readouterr().err
