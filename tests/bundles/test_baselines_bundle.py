"""The baseline bundle variants (bundles/cephres/configs/baselines/*.json) over the shared cephres workflow.

Every overlay must build its registry network, keep its models apart from cephres' and from the other variants,
give an input size the network accepts, and run one training iteration and one evaluation end to end through
MONAI's own ``ConfigWorkflow`` on tiny phantoms.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.utils import set_determinism

from monai_ceph.data import write_phantom_dataset
from monai_ceph.networks.nets.baselines import BASELINES, INPUT_DIVISOR, get_baseline
from monai_ceph.transforms.spatial.array import MODEL_SPATIAL_SIZE

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "cephres" / "configs"
TRAIN, EVALUATE = str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")
NAMES = sorted(BASELINES)
#: what an overlay sets: its name (naming its models/eval folders), the network and the divisor of its input size
OVERLAY_KEYS = {"variant", "network_def#_target_", "input_divisor"}
SLOW = {"afpf_net", "hrnet_w48_sr"}  # about 5 s and 20 s on one core here, the others 2-4 s
SIZE = [64, 64]  # the smallest size every baseline accepts (divisible by 32)
SECTION = 2  # images per section: one training iteration at batch size 2, one evaluation batch


def overlay(name: str) -> str:
    return str(CONFIGS / "baselines" / f"{name}.json")


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """Six 64x80 phantoms, two per section, and a preprocessing cache shared by all variants (same transforms)."""
    root = tmp_path_factory.mktemp("baseline_phantoms")
    datalist = write_phantom_dataset(root / "data", num_images=3 * SECTION, spatial_size=(64, 80), fractions=(1, 1, 1))
    sections = json.loads(Path(datalist).read_text())
    assert [len(sections[k]) for k in ("training", "validation", "test")] == [SECTION] * 3
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small inputs on a loaded 2-core machine: one thread is fastest
    yield {"datalist_file": str(datalist), "cache_dir": str(root / "cache")}, [item["id"] for item in sections["test"]]
    torch.set_num_threads(threads)
    set_determinism(seed=None)  # the workflows seeded the global generators


def test_every_baseline_has_an_overlay():
    assert sorted(p.stem for p in (CONFIGS / "baselines").glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_overlay_is_small_and_builds_the_registry_network(name):
    config = json.loads(Path(overlay(name)).read_text())
    assert set(config) == OVERLAY_KEYS, f"{name}.json sets {set(config) ^ OVERLAY_KEYS}: keep the workflow shared"
    assert config["variant"] == name and config["input_divisor"] == INPUT_DIVISOR[name]

    parser = ConfigParser()
    parser.read_config([TRAIN, overlay(name)])
    parser["bundle_root"] = "/bundle"
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    reference = get_baseline(name, in_channels=1, out_channels=19)
    assert type(net) is type(reference)
    assert n_params(net) == n_params(reference)
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    # its own folders, never cephres' ("/bundle/models") or another variant's
    assert parser.get_parsed_content("ckpt_dir") == f"/bundle/models/{name}"
    assert parser.get_parsed_content("output_dir") == f"/bundle/eval/{name}"

    # input sizes: the embedded demo (no data given) and real data (a datalist given)
    divisor = INPUT_DIVISOR[name]
    demo_size = parser.get_parsed_content("spatial_size")
    assert len(demo_size) == 2 and all(s % divisor == 0 for s in demo_size), (name, demo_size, divisor)
    assert demo_size == [96, 120 if divisor == 8 else 128]  # the cephres demo size, rounded up to the divisor
    parser["datalist_file"] = "/data/datalist.json"
    assert parser.get_parsed_content("spatial_size", lazy=False) == list(MODEL_SPATIAL_SIZE)
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 1, *demo_size)).shape == (1, 19, *demo_size)


def _workflow(config_file: list[str], workflow_type: str, run_id: str, bundle_root: Path, phantoms: dict, **override):
    return ConfigWorkflow(
        config_file=config_file,
        workflow_type=workflow_type,
        run_id=run_id,
        logging_file=False,  # logging.conf would reconfigure (and disable) the loggers of the whole test session
        bundle_root=str(bundle_root),
        spatial_size=SIZE,
        batch_size=SECTION,
        num_workers=0,
        max_epochs=1,
        **phantoms,
        **override,
    )


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NAMES])
def test_train_then_evaluate_through_the_bundle(name, phantoms, tmp_path):
    bundle_root = tmp_path / "bundle"
    phantoms, test_ids = phantoms

    train = _workflow([TRAIN, overlay(name)], "train", "training", bundle_root, phantoms)
    train.initialize()
    train.run()
    trainer = train.parser.get_parsed_content("train#trainer")
    assert (trainer.state.epoch, trainer.state.iteration) == (1, 1)
    assert math.isfinite(float(trainer.state.output[0]["loss"]))
    trained = {k: v.detach().clone() for k, v in train.parser.get_parsed_content("network").state_dict().items()}
    train.finalize()

    # the validation's best-metric checkpoint: the trained weights, as a plain state dict of the registry network
    ckpt = bundle_root / "models" / name / "model.pt"
    assert ckpt.is_file()
    assert not (bundle_root / "models" / "model.pt").exists()  # cephres' own checkpoint path stays untouched
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    get_baseline(name, in_channels=1, out_channels=19).load_state_dict(state)  # strict: every key, every shape
    assert state.keys() == trained.keys()
    assert all(torch.equal(state[k], trained[k]) for k in trained)

    evaluate = _workflow(
        [TRAIN, EVALUATE, overlay(name)], "eval", "evaluating", bundle_root, phantoms, ckpt_path=str(ckpt)
    )
    evaluate.initialize()
    evaluate.run()
    evaluator = evaluate.parser.get_parsed_content("validate#evaluator")
    loaded = evaluate.parser.get_parsed_content("network").state_dict()
    assert all(torch.equal(loaded[k].cpu(), trained[k]) for k in trained)  # it evaluated the checkpoint
    evaluate.finalize()

    report = bundle_root / "eval" / name / "test" / "radial_error_summary.json"
    summary = json.loads(report.read_text())
    assert summary["n_images"] == SECTION
    assert summary["n_landmarks"] == 19 and summary["n_valid"] == 19 * SECTION
    assert math.isfinite(summary["mre_mm"]) and summary["mre_mm"] > 0
    # the report and the evaluator's own key metric are two computations of the same errors
    assert summary["mre_mm"] == pytest.approx(evaluator.state.metrics["val_mre"], rel=1e-5)
    written = bundle_root / "eval" / name / "test" / "landmarks"
    assert sorted(p.name for p in written.iterdir()) == sorted(f"{i}.{e}" for i in test_ids for e in ("csv", "json"))
