"""benchmarks/finetune_site.py runs end to end: a shifted site with its annotation convention, the released model
alone and fine-tuned on two of the site's images, tested on two others."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))


def test_site_convention_is_a_fixed_offset_per_landmark():
    from finetune_site import OFFSET_MM, site_convention

    items = [{"landmarks": [[100.0, 200.0], None, [5.0, 6.0]], "spacing": [0.1, 0.2]},
             {"landmarks": [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], "spacing": [0.1, 0.2]}]
    moved = site_convention(items, "contrast")
    offsets = [np.subtract(m["landmarks"][i], o["landmarks"][i]) * [0.1, 0.2]
               for m, o in zip(moved, items) for i in (0, 2)]
    np.testing.assert_allclose(offsets[0], offsets[2])  # the same landmark moves the same way on every image
    assert all(OFFSET_MM[0] <= np.linalg.norm(d) <= OFFSET_MM[1] for d in offsets)
    assert moved[0]["landmarks"][1] is None
    assert site_convention(items, "contrast") == moved and site_convention(items, "blur") != moved


def test_finetune_site_benchmark_smoke(isbi_dir, tmp_path):
    cmd = [sys.executable, str(REPO / "benchmarks" / "finetune_site.py"), "--out", str(tmp_path / "out"),
           "--sites", "contrast", "--sizes", "2", "--num-images", "4", "--test-from", "2", "--minutes", "0.3",
           "--max-epochs", "1", "--threads", "1", "--no-scratch"]
    env = {**os.environ, "MONAI_CEPH_ISBI_DIR": str(isbi_dir)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [(r["site"], r["images"], r["row"]) for r in rows] == [("contrast", 0, "released model"),
                                                                   ("contrast", 2, "fine-tuned")]
    assert all(r["mre_mm"] > 0 for r in rows) and rows[1]["minutes"] > 0
    assert "| contrast | 2 | fine-tuned |" in done.stdout
    for stage in ("", "local"):
        assert (tmp_path / "out" / "contrast_2_ft" / "models" / stage / "model.pt").is_file()
