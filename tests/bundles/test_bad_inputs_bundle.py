"""Bundle cases of the bad-input catalogue (issue 14): each asserts the exception, that its message names the
file and the fault, and that nothing already written was lost."""

import json
from pathlib import Path

import pytest
import torch

from monai.bundle import ConfigWorkflow

SMALL = {"spatial_size": [64, 64], "batch_size": 2, "num_workers": 0, "save_overlays": False}


def files(bundles_dir, *overlays):
    configs = bundles_dir / "cephres" / "configs"
    return [str(configs / "train.json")] + [str(configs / f"{name}.json") for name in overlays]


def messages(exc):
    """The messages of an exception and of everything it was raised from (MONAI wraps config errors)."""
    texts = []
    while exc is not None:
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


@pytest.fixture(scope="module")
def trained(bundles_dir, phantom_datalist, tmp_path_factory):
    """One epoch of training on the phantoms at 64 x 64 in a temporary bundle root."""
    root = tmp_path_factory.mktemp("bad_inputs") / "run"
    wf = ConfigWorkflow(config_file=files(bundles_dir), workflow_type="train", bundle_root=str(root),
                        datalist_file=str(phantom_datalist), max_epochs=1, **SMALL)  # fmt: skip
    wf.initialize()
    wf.run()
    wf.finalize()
    return root


@pytest.mark.parametrize("overlay", ["evaluate", "inference"])
def test_size_mismatch_is_refused_naming_both(trained, bundles_dir, phantom_datalist, overlay):
    models = trained / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    wf = ConfigWorkflow(config_file=files(bundles_dir, overlay), workflow_type="eval", bundle_root=str(trained),
                        datalist_file=str(phantom_datalist), **{**SMALL, "spatial_size": [32, 48]})  # fmt: skip
    with pytest.raises(Exception) as failure:
        wf.initialize()
    text = messages(failure.value)
    assert f"{models / 'model.json'}: the model was trained with spatial_size [64, 64] (this run: [32, 48])" in text
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before


@pytest.mark.parametrize("section", ["validation", "training"])
def test_empty_section_stops_training_before_it_starts(trained, bundles_dir, phantom_datalist, section):
    datalist = json.loads(phantom_datalist.read_text())
    datalist[section] = []
    bad = phantom_datalist.parent / f"empty_{section}.json"  # next to the images (relative paths)
    bad.write_text(json.dumps(datalist))
    models = trained / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    wf = ConfigWorkflow(config_file=files(bundles_dir), workflow_type="train", bundle_root=str(trained),
                        datalist_file=str(bad), max_epochs=2, **SMALL)  # fmt: skip
    wf.initialize()
    with pytest.raises(Exception) as failure:
        wf.run()
    text = messages(failure.value)
    assert f"{bad}: datalist section {section!r} is empty, and this run needs its items" in text, text
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before  # the earlier run's files are intact


def test_resume_keeps_the_best_model(trained, bundles_dir, phantom_datalist):
    """A resume whose validations cannot beat the restored best metric leaves model.pt as it was."""
    models = trained / "models"
    checkpoint = models / "checkpoint_epoch=1.pt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert state["validator"]["best_metric_epoch"] == 1 and state["validator"]["best_metric"] > 0
    state["validator"]["best_metric"] = 1e-6  # an unbeatable best
    state["validator"]["saved"] = [(-1e-6, name) for _, name in state["validator"]["saved"]]
    torch.save(state, checkpoint)
    best = (models / "model.pt").read_bytes()
    wf = ConfigWorkflow(config_file=files(bundles_dir), workflow_type="train", bundle_root=str(trained),
                        datalist_file=str(phantom_datalist), max_epochs=2, **SMALL)  # fmt: skip
    wf.initialize()
    wf.run()
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    assert (evaluator.state.best_metric, evaluator.state.best_metric_epoch) == (1e-6, 1)
    assert (models / "model.pt").read_bytes() == best
    assert sorted(p.name for p in models.glob("checkpoint_epoch=*.pt")) == ["checkpoint_epoch=2.pt"]
    wf.finalize()


def _write_phantom_jpeg(png, path, truncate=False):
    from PIL import Image
    import numpy as np

    with Image.open(png) as source:
        pixels = np.asarray(source, dtype=np.float64)
    Image.fromarray((255 * pixels / pixels.max()).astype("uint8")).save(path, quality=95)
    if truncate:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_a_batch_keeps_going_past_bad_files_on_a_read_only_bundle(trained, bundles_dir, phantom_datalist, tmp_path,
                                                                  ):  # fmt: skip
    """Inference on a folder with a truncated JPEG and a non-image: both skipped with one line each naming the file
    and the fault, the good images processed, failed.json beside the outputs, exit status 1; the bundle (configs
    and models) is read-only and the outputs go elsewhere: nothing is written into it (no phantoms)."""
    import shutil
    import stat

    pngs = sorted((phantom_datalist.parent / "images").glob("*.png"))[:2]
    folder = tmp_path / "in"
    folder.mkdir()
    for png in pngs:
        shutil.copy(png, folder / png.name)
    _write_phantom_jpeg(pngs[0], folder / "broken.jpg", truncate=True)
    (folder / "notes.png").write_text("not an image")
    bundle = tmp_path / "bundle"
    shutil.copytree(bundles_dir / "cephres" / "configs", bundle / "configs")
    shutil.copytree(trained / "models", bundle / "models")
    for path in [*bundle.rglob("*"), bundle]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = sorted(p.relative_to(bundle) for p in bundle.rglob("*"))
    out = tmp_path / "out"
    configs = bundle / "configs"
    wf = ConfigWorkflow(config_file=[str(configs / "train.json"), str(configs / "inference.json")],
                        workflow_type="infer", bundle_root=str(bundle), output_dir=str(out), input_dir=str(folder),
                        pixel_spacing=0.1, **SMALL)  # fmt: skip
    try:
        wf.initialize()
        with pytest.raises(SystemExit) as stop:
            wf.run()
    finally:
        for path in [bundle, *bundle.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    results = out / "inference"
    assert str(stop.value) == (f"error: inference: 2 done, 2 failed; outputs in {results}; failures listed in "
                               f"{results / 'failed.json'}")  # fmt: skip
    skipped = wf.parser.get_parsed_content("dataloader").failures  # what the one log line per file says
    assert [(f["id"], f["image"]) for f in skipped] == [("broken", str(folder / "broken.jpg")),
                                                        ("notes", str(folder / "notes.png"))]  # fmt: skip
    assert skipped[0]["error"].startswith("OSError: image file is truncated")
    assert skipped[1]["error"] == f"PIL.UnidentifiedImageError: cannot identify image file '{folder / 'notes.png'}'"
    failed = json.loads((results / "failed.json").read_text())
    assert [(f["id"], f["image"]) for f in failed] == [("broken", str(folder / "broken.jpg")),
                                                       ("notes", str(folder / "notes.png"))]  # fmt: skip
    assert all("Failed to evaluate" not in f["error"] and "\n" not in f["error"] for f in failed)
    assert sorted(p.stem for p in (results / "landmarks").glob("*.json")) == [p.stem for p in pngs]
    assert sorted(p.relative_to(bundle) for p in bundle.rglob("*")) == before  # nothing written into the bundle


def test_a_clean_batch_writes_an_empty_failed_list(trained, bundles_dir, phantom_datalist, tmp_path):
    stale = tmp_path / "out" / "test" / "failed.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('[{"id": "old"}]')
    wf = ConfigWorkflow(config_file=files(bundles_dir, "evaluate"), workflow_type="eval", bundle_root=str(trained),
                        output_dir=str(tmp_path / "out"), datalist_file=str(phantom_datalist), **SMALL)  # fmt: skip
    wf.initialize()
    wf.run()  # no SystemExit
    assert json.loads(stale.read_text()) == []
    summary = wf.parser.get_parsed_content("batch_summary")
    assert (summary.done, summary.failures) == (2, [])


def test_files_whose_header_is_bad_or_too_large_are_skipped(trained, bundles_dir, phantom_datalist, tmp_path,
                                                            write_dicom):  # fmt: skip
    """Inference on a folder with a text file named .dcm, one with a zero PixelSpacing, a DICOM cut inside its
    header and an 8000 x 8000 PNG: listing the folder (which reads each DICOM's header for the spacing) does not
    stop on them, each is skipped with one line naming it and the fault (the PNG refused from its header, before
    decoding), the good PNG and DICOM are processed; exit status 1."""
    import shutil
    from pathlib import Path

    import numpy as np
    from PIL import Image

    png = sorted((phantom_datalist.parent / "images").glob("*.png"))[0]
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(png, folder / png.name)
    with Image.open(png) as source:
        pixels = np.asarray(source)
    good = write_dicom(folder / "good.dcm", pixels, PixelSpacing=[0.2, 0.2])
    (folder / "text.dcm").write_text("not a DICOM file")
    (folder / "cut.dcm").write_bytes(good.read_bytes()[:200])
    write_dicom(folder / "zero.dcm", pixels, PixelSpacing=[0.0, 0.1])
    Image.new("L", (8000, 8000)).save(folder / "huge.png")
    out = tmp_path / "out"
    wf = ConfigWorkflow(config_file=files(bundles_dir, "inference"), workflow_type="infer", bundle_root=str(trained),
                        output_dir=str(out), input_dir=str(folder), pixel_spacing=0.1, **SMALL)  # fmt: skip
    wf.initialize()
    with pytest.raises(SystemExit) as stop:
        wf.run()
    results = out / "inference"
    assert str(stop.value) == (f"error: inference: 2 done, 4 failed; outputs in {results}; failures listed in "
                               f"{results / 'failed.json'}")  # fmt: skip
    failed = json.loads((results / "failed.json").read_text())
    assert [(f["id"], Path(f["image"]).name) for f in failed] == [
        ("cut", "cut.dcm"), ("huge", "huge.png"), ("text", "text.dcm"), ("zero", "zero.dcm")
    ]  # fmt: skip
    assert all(f["image"] == str(folder / Path(f["image"]).name) for f in failed)
    reasons = {f["id"]: f["error"] for f in failed}
    assert reasons["text"].startswith("not a DICOM file (File is missing DICOM File Meta Information header")
    assert reasons["zero"] == (f"{folder / 'zero.dcm'} PixelSpacing: pixel spacing ('0.1', '0.0') must be finite "
                               "and > 0 mm/pixel.")  # fmt: skip
    # pydicom reads what there is of a cut header: the spacing is the given one, and loading its pixels fails
    assert reasons["cut"] == f"dicom data: {folder / 'cut.dcm'} does not have pixel_array."
    assert reasons["huge"] == ("image of spatial size (8000, 8000) has 64000000 pixels, more than the 36000000 "
                               "accepted (max_pixels); refused before decoding, resize it before use.")  # fmt: skip
    assert sorted(p.stem for p in (results / "landmarks").glob("*.json")) == ["good", png.stem]
    np.testing.assert_allclose(json.loads((results / "landmarks" / "good.json").read_text())["spacing"], [0.2, 0.2])


# ------------------------------------------- issue 24: `python -m monai.bundle run` ends an input error in one line

REPO = Path(__file__).resolve().parents[2]


def _bundle_run(run_id, overlay, trained, *args, env=None):
    """``python -m monai.bundle run <run_id>`` of the repository's configs on the trained bundle root, in a
    subprocess; returns ``(exit status, stderr lines)``."""
    import os
    import subprocess
    import sys

    configs = REPO / "bundles" / "cephres" / "configs"
    files = f"['{configs / 'train.json'}','{configs / f'{overlay}.json'}']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", files, "--bundle_root", str(trained),
           "--spatial_size", "[64,64]", "--num_workers", "0", "--save_overlays", "False", *args]  # fmt: skip
    full_env = {k: v for k, v in os.environ.items() if k != "MONAI_CEPH_TRACEBACK"}
    full_env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                    OMP_NUM_THREADS="1", **(env or {}))  # this checkout's package  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr.strip().splitlines()


def _datalist_with(phantom_datalist, name, change):
    datalist = json.loads(phantom_datalist.read_text())
    change(datalist["test"])
    path = phantom_datalist.parent / f"bad_{name}.json"  # next to the images (relative paths)
    path.write_text(json.dumps(datalist))
    return path


def _set(index, key, value):
    def change(section):
        if key == "landmarks" and callable(value):
            section[index][key] = value(section[index][key])
        else:
            section[index][key] = value

    return change


DATALIST_CASES = {
    "missing-image": (_set(0, "image", "images/nothere.png"), "image '{images}/nothere.png'): image file not found."),
    "18-landmarks": (_set(0, "landmarks", lambda p: p[:18]), "18 landmarks, expected 19 (x, y) landmarks"),
    "20-landmarks": (_set(0, "landmarks", lambda p: p + [[1.0, 2.0]]), "20 landmarks, expected 19 (x, y) landmarks"),
    "strings": (_set(0, "landmarks", lambda p: [p[0], ["x", "y"], *p[2:]]), "landmarks[1] x: coordinate 'x' is not a "
                "number."),  # fmt: skip
    "empty-section": (lambda section: section.clear(), "datalist section 'test' is empty, and this run needs its"),
}


@pytest.mark.parametrize("case", list(DATALIST_CASES))
def test_bad_datalist_entry_ends_in_one_line(trained, phantom_datalist, tmp_path, case):
    change, fault = DATALIST_CASES[case]
    bad = _datalist_with(phantom_datalist, case, change)
    status, err = _bundle_run("evaluating", "evaluate", trained, "--datalist_file", str(bad),
                              "--output_dir", str(tmp_path / "out"))  # fmt: skip
    assert status == 1, "\n".join(err[-30:])
    assert err[-1].startswith(f"error: {bad}"), "\n".join(err[-30:])
    assert fault.format(images=phantom_datalist.parent / "images") in err[-1]
    assert not any(line.startswith("Traceback") for line in err) and "Failed to evaluate" not in "\n".join(err)


def _checkpoint(path, kind):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "29-landmarks":
        from monai_ceph.networks.nets import CephResMHNet

        torch.save(CephResMHNet(spatial_dims=2, in_channels=1, out_channels=29).state_dict(), path)
    return path


@pytest.mark.parametrize(
    "kind, fault",
    [
        ("missing", "no such checkpoint file; train the bundle first or give the path of a trained model.pt"),
        ("empty", "an empty file (0 bytes), not a model checkpoint."),
        ("foreign", "not a checkpoint of this CephResMHNet: 273 of its 273 weights missing"),
        ("29-landmarks", "weight(s) of another shape, e.g. 'heads."),
    ],
)
def test_bad_checkpoint_ends_in_one_line(trained, phantom_datalist, tmp_path, kind, fault):
    checkpoint = tmp_path / "model.pt"
    if kind != "missing":
        _checkpoint(checkpoint, kind)
    before = checkpoint.read_bytes() if checkpoint.exists() else None
    status, err = _bundle_run("inferring", "inference", trained, "--ckpt_path", str(checkpoint), "--datalist_file",
                              str(phantom_datalist), "--output_dir", str(tmp_path / "out"))  # fmt: skip
    assert status == 1 and err[-1].startswith(f"error: {checkpoint}: ") and fault in err[-1], "\n".join(err[-30:])
    assert not any(line.startswith("Traceback") for line in err)
    assert (checkpoint.read_bytes() if checkpoint.exists() else None) == before


def test_bad_input_spacing_and_size_end_in_one_line(trained, phantom_datalist, tmp_path):
    images = phantom_datalist.parent / "images"
    first = sorted(images.glob("*.png"))[0]
    status, err = _bundle_run("inferring", "inference", trained, "--input_dir", str(images), "--input_spacing", "-1",
                              "--output_dir", str(tmp_path / "out"))  # fmt: skip
    assert (status, err[-1]) == (1, f"error: {first}: pixel spacing -1 must be finite and > 0 mm/pixel."), err[-30:]
    status, err = _bundle_run("inferring", "inference", trained, "--input_dir", str(images), "--input_spacing", "100",
                              "--output_dir", str(tmp_path / "out"))  # fmt: skip
    assert status == 1 and err[-1].startswith(f"error: {first}: pixel spacing [100.0, 100.0] mm/pixel is outside the "
                                              "range of a radiograph [0.01, 5] mm/pixel"), "\n".join(err[-30:])
    models = trained / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    status, err = _bundle_run("inferring", "inference", trained, "--datalist_file", str(phantom_datalist),
                              "--spatial_size", "[32,48]", "--output_dir", str(tmp_path / "out"))  # fmt: skip
    assert status == 1 and err[-1].startswith(
        f"error: {models / 'model.json'}: the model was trained with spatial_size [64, 64] (this run: [32, 48])"
    ), "\n".join(err[-30:])
    assert not any(line.startswith("Traceback") for line in err)
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before


def test_the_traceback_on_request(trained, phantom_datalist, tmp_path):
    checkpoint = _checkpoint(tmp_path / "model.pt", "empty")
    status, err = _bundle_run("inferring", "inference", trained, "--ckpt_path", str(checkpoint),
                              "--datalist_file", str(phantom_datalist), "--output_dir", str(tmp_path / "out"),
                              env={"MONAI_CEPH_TRACEBACK": "1"})  # fmt: skip
    assert status == 1 and "Traceback (most recent call last):" in err
    assert "RuntimeError: Failed to evaluate ConfigExpression: " in err  # MONAI's wrapper, in full
    assert err[-1] == f"error: {checkpoint}: an empty file (0 bytes), not a model checkpoint."


def test_a_point_outside_its_image_skips_the_entry_in_one_line(trained, phantom_datalist, tmp_path):
    """Evaluation keeps going past an entry whose landmark lies outside its image (the batch's own rule): the last
    stderr line is the batch's one line, and failed.json names the entry, the landmark and the image size."""
    bad = _datalist_with(phantom_datalist, "outside", _set(0, "landmarks", lambda p: [*p[:3], [500.0, 20.0], *p[4:]]))
    out = tmp_path / "out"
    status, err = _bundle_run("evaluating", "evaluate", trained, "--datalist_file", str(bad), "--output_dir", str(out))
    results = out / "test"
    assert (status, err[-1]) == (1, f"error: evaluation: 1 done, 1 failed; outputs in {results}; failures listed in "
                                    f"{results / 'failed.json'}"), "\n".join(err[-30:])  # fmt: skip
    (failed,) = json.loads((results / "failed.json").read_text())
    assert failed["id"] == json.loads(bad.read_text())["test"][0]["id"]
    assert "landmark 3 at [500.0, 20.0] lies outside the image of spatial size (64, 80)" in failed["error"]
    assert not any(line.startswith("Traceback") for line in err)
