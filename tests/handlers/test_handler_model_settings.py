import json
import warnings

import pytest
from ignite.engine import Engine

from monai_ceph.handlers import ModelSettingsWriter, check_model_settings
from monai_ceph.transforms import GaussianHeatmapCodec


def test_written_at_start_and_checked(tmp_path):
    path = tmp_path / "models" / "model.json"
    engine = Engine(lambda e, b: None)
    ModelSettingsWriter(path, [96, 120], "isbi2015", GaussianHeatmapCodec(sigma=2.0, phi=5.0)).attach(engine)
    engine.run([0])
    written = json.loads(path.read_text())
    assert written["spatial_size"] == [96, 120] and written["landmark_set"] == "isbi2015"
    assert written["codec"]["name"] == "GaussianHeatmapCodec" and written["codec"]["sigma"] == 2.0
    assert check_model_settings(path, (96, 120), "isbi2015", GaussianHeatmapCodec(sigma=2.0, phi=5.0)) == written

    with pytest.raises(ValueError, match=r"model.json: the model was trained with spatial_size \[96, 120\] "
                                         r"\(this run: \[736, 576\]\); landmark_set 'isbi2015' \(this run: 'aariz'\)"):
        check_model_settings(path, (736, 576), "aariz", GaussianHeatmapCodec(sigma=2.0, phi=5.0))
    with pytest.raises(ValueError, match=r"codec .*'sigma': 2.0.*\(this run: .*'sigma': 3.0"):
        check_model_settings(path, (96, 120), "isbi2015", GaussianHeatmapCodec(sigma=3.0, phi=5.0))


def test_older_checkpoint_without_settings_warns(tmp_path):
    with pytest.warns(UserWarning, match=r"model.json not found: the model's training settings cannot be checked"):
        assert check_model_settings(tmp_path / "model.json", (64, 64), "isbi2015", GaussianHeatmapCodec()) is None
    (tmp_path / "model.json").write_text("{truncated")
    with warnings.catch_warnings(), pytest.raises(ValueError, match=r"model.json: cannot read the model's training"):
        check_model_settings(tmp_path / "model.json", (64, 64), "isbi2015", GaussianHeatmapCodec())


def test_input_scaling_is_recorded_and_checked(tmp_path):
    path = tmp_path / "model.json"
    codec = GaussianHeatmapCodec()
    engine = Engine(lambda e, b: None)
    ModelSettingsWriter(path, [64, 64], "isbi2015", codec, input_scaling="fixed size").attach(engine)
    engine.run([0])
    assert json.loads(path.read_text())["input_scaling"] == "fixed size"
    assert check_model_settings(path, (64, 64), "isbi2015", codec, "fixed size")["input_scaling"] == "fixed size"
    with pytest.raises(ValueError, match=r"model.json: the model was trained with input_scaling 'fixed size' "
                                         r"\(this run: 'physical 1.25 mm/px'\).*fixed_size.json"):
        check_model_settings(path, (64, 64), "isbi2015", codec, "physical 1.25 mm/px")
    # a model.json from before the scaling was recorded: the other settings are still checked, the scaling warns
    ModelSettingsWriter(path, [64, 64], "isbi2015", codec)()
    assert "input_scaling" not in json.loads(path.read_text())
    with pytest.warns(UserWarning, match=r"does not record the input scaling .* 'physical 1.25 mm/px'"):
        assert check_model_settings(path, (64, 64), "isbi2015", codec, "physical 1.25 mm/px") is not None


def test_extra_settings_are_recorded_and_checked(tmp_path):
    path = tmp_path / "model.json"
    codec = GaussianHeatmapCodec()
    local = {"local": {"patch_size": 19.2, "spacing": 0.3, "prior_sigma": None}}
    ModelSettingsWriter(path, [64, 64], "isbi2015", codec, extra=local)()
    assert json.loads(path.read_text())["local"] == local["local"]
    assert check_model_settings(path, (64, 64), "isbi2015", codec, extra=local)["local"] == local["local"]
    with pytest.raises(ValueError, match=r"model.json.*local .*'patch_size': 19.2.*this run.*'patch_size': 24.0"):
        check_model_settings(path, (64, 64), "isbi2015", codec, extra={"local": {**local["local"], "patch_size": 24.0}})
    # a model.json written before the entry was recorded: warned, not refused
    ModelSettingsWriter(path, [64, 64], "isbi2015", codec)()
    with pytest.warns(UserWarning, match="does not record 'local'"):
        assert check_model_settings(path, (64, 64), "isbi2015", codec, extra=local) is not None
