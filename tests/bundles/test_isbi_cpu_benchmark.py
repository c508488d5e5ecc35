"""benchmarks/isbi_cpu.py --two-stage runs end to end (its global stage once failed on a local# override)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_two_stage_benchmark_smoke(isbi_dir, tmp_path):
    workdir = tmp_path / "two_stage"
    cmd = [sys.executable, str(REPO / "benchmarks" / "isbi_cpu.py"), "--two-stage", "--minutes", "0.6", "--threads", "1",
           "--max-images", "2", "--time-images", "1", "--spatial-size", "32", "40", "--workdir", str(workdir),
           "--single-stage-json", str(tmp_path / "none.json")]
    env = {**os.environ, "MONAI_CEPH_ISBI_DIR": str(isbi_dir)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((workdir / "results.json").read_text())
    assert result["mode"] == "two-stage" and set(result["rows"]) == {"global", "two_stage"}
    for row in result["rows"].values():
        assert set(row["sections"]) == {"test1", "test2"} and row["inference"]["n_images"] == 1
        assert row["sections"]["test1"]["n_images"] == 2 and row["sections"]["test1"]["mre_mm"] > 0
    assert "| test1 | two-stage |" in done.stdout and "no single-stage results at" in done.stdout
    assert (workdir / "models" / "model.pt").is_file() and (workdir / "models" / "local" / "model.pt").is_file()

    # the prior-conditioned local stage on the same global model, the whole (tiny) budget to the local stage
    prior = cmd[:cmd.index("--minutes")] + ["--prior", "--local-only", "--minutes", "0.3",
                                              "--set", "local#prior_shared_jitter=2.0"] + cmd[cmd.index("--minutes") + 2:]
    global_model = (workdir / "models" / "model.pt").read_bytes()
    done = subprocess.run(prior, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((workdir / "results.json").read_text())
    assert result["prior"] is True and "global stage trained earlier" in result["trained"]
    assert result["set"] == {"local#prior_shared_jitter": 2.0}
    assert (workdir / "models" / "model.pt").read_bytes() == global_model  # not retrained
    assert (workdir / "models" / "local_prior" / "model.pt").is_file()
    assert "| test1 | two-stage + prior |" in done.stdout
