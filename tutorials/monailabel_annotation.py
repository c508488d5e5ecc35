"""The annotator loop of the MONAI Label app, end to end, on a few real ISBI 2015 radiographs.

    python tutorials/monailabel_annotation.py [--images 3] [--out tutorials/output/monailabel_annotation]
        [--spatial-size W,H] [--max-epochs 1] [--keep-open]

1. A studies folder with ``--images`` ISBI radiographs, an app folder (the package's ``main.py``) and a copy of
   ``bundles/cephres`` are written under ``--out``; the server starts on a free local port.
2. The browser client's address is printed: open it to annotate by hand (``--keep-open`` keeps the server up
   until Ctrl+C). The script then does what the client does, through the same REST calls:
   next image by active learning, ``POST /infer`` (predict), a corrected landmark sent back as ``fixed`` for the
   re-fit, ``PUT /datastore/label`` (save; the server checks the label), ``POST /train`` (a fine-tuning round),
   polling ``GET /train/`` and reading the round's validation MRE from ``/info/``.

The bundle copy has no trained model of its own, so the server predicts with the released ISBI 2015 model (at the
input size it was trained at) and the training round fine-tunes from it into the copy's ``models/``; a round of
one epoch on the CPU takes about a minute. ``--spatial-size W,H`` (with ``--untrained``) starts from random weights
at that size instead. The data folder is ``$MONAI_CEPH_ISBI_DIR``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from monai_ceph.data import isbi_dir

REPO = Path(__file__).resolve().parents[1]
APP_MAIN = REPO / "monai_ceph" / "apps" / "monailabel" / "main.py"
BUNDLE = REPO / "bundles" / "cephres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(out: Path, n_images: int) -> tuple[Path, Path, Path]:
    """``out``/studies (radiographs), ``out``/app (main.py) and ``out``/cephres (the bundle's configs)."""
    studies, app, bundle = out / "studies", out / "app", out / "cephres"
    for folder in (studies, app, bundle):
        shutil.rmtree(folder, ignore_errors=True)
    studies.mkdir(parents=True)
    app.mkdir()
    images = sorted((isbi_dir() / "images").glob("*.jpg"))[:n_images]
    if len(images) < n_images:
        raise SystemExit(f"{isbi_dir() / 'images'}: {len(images)} .jpg images, {n_images} asked for (--images).")
    for image in images:
        shutil.copy(image, studies)
    shutil.copy(APP_MAIN, app)
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("models", "cache", "eval", "data", "runs"))
    return studies, app, bundle


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; see {log}")
        try:
            if requests.get(url + "/info/", timeout=5).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    raise SystemExit(f"the server did not answer within {timeout} s; see {log}")


def annotate(url: str, model: str, max_epochs: int) -> None:
    """One image as the client does it: next, predict, correct (re-fit), save; then a training round."""
    image_id = requests.post(url + "/activelearning/random", json={}, timeout=60).json()["id"]
    print(f"next image (active learning): {image_id}")
    infer = f"{url}/infer/{model}?image={image_id}&output=json"
    result = requests.post(infer, timeout=300).json()
    worst = min(result["landmarks"], key=lambda lm: lm.get("confidence", 1.0))
    print(f"model: {result.get('model_description')}")
    print(f"predicted {len(result['landmarks'])} landmarks; least confident: {worst['abbreviation']} "
          f"({worst.get('confidence', float('nan')):.2f}) at ({worst['x']:.1f}, {worst['y']:.1f}) px")
    # the annotator drags it 30 px right and 20 px down; the client asks for a re-fit with it fixed
    worst_xy = [worst["x"] + 30.0, worst["y"] + 20.0]
    params = {"fixed": {worst["abbreviation"]: worst_xy}, "missing": []}
    refit = requests.post(infer, data={"params": json.dumps(params)}, timeout=300)
    refit.raise_for_status()
    landmarks = [{k: lm[k] for k in ("abbreviation", "name", "x", "y")} for lm in refit.json()["landmarks"]]
    for lm in landmarks:
        if lm["abbreviation"] == worst["abbreviation"]:
            lm["x"], lm["y"] = worst_xy
    label = {"landmark_set": result["landmark_set"], "landmarks": landmarks, "spacing": result["spacing"]}
    saved = requests.put(f"{url}/datastore/label", params={"image": image_id, "tag": "final"}, timeout=60,
                         files={"label": (f"{image_id}.json", json.dumps(label), "application/json")},
                         data={"params": json.dumps({"client_id": "tutorial"})})
    if not saved.ok:
        raise SystemExit(f"the label was refused: {saved.status_code} {saved.text}")
    stored = requests.get(f"{url}/datastore/label", params={"label": image_id, "tag": "final"}, timeout=60).json()
    back = next(lm for lm in stored["landmarks"] if lm["abbreviation"] == worst["abbreviation"])
    print(f"saved label {image_id} (tag final): {worst['abbreviation']} stored at ({back['x']:.1f}, {back['y']:.1f}) px")

    started = requests.post(f"{url}/train/{model}", json={"max_epochs": max_epochs}, timeout=60)
    started.raise_for_status()
    while (status := requests.get(url + "/train/", timeout=60).json()).get("status") in ("SUBMITTED", "RUNNING"):
        time.sleep(2)
    print(f"training round: {status.get('status')}")
    if status.get("status") != "DONE":
        raise SystemExit("the training round failed:\n" + "\n".join(status.get("details", [])[-5:]))
    stats = requests.get(url + "/info/", timeout=60).json()["train_stats"][model]
    print(f"validation MRE after the round: {stats['best_val_mre_mm']:.2f} mm "
          f"({stats.get('epochs', max_epochs)} epoch(s)); the next prediction uses the fine-tuned model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3, help="ISBI radiographs in the studies folder")
    parser.add_argument("--out", type=Path, default=REPO / "tutorials" / "output" / "monailabel_annotation",
                        help="folder the tutorial writes into (git-ignored)")
    parser.add_argument("--spatial-size", default=None,
                        help="model input (width,height), MONAI order (default: the released model's)")
    parser.add_argument("--untrained", action="store_true", help="random weights instead of the released model")
    parser.add_argument("--max-epochs", type=int, default=1, help="epochs of the training round")
    parser.add_argument("--keep-open", action="store_true", help="keep the server running until Ctrl+C")
    args = parser.parse_args()

    out = args.out.resolve()
    studies, app, bundle = prepare(out, args.images)
    port, log = free_port(), out / "server.log"
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies),
           "--conf", "bundle", str(bundle), "--conf", "spacing", "0.1", "--host", "127.0.0.1", "--port", str(port)]
    if args.spatial_size:
        cmd += ["--conf", "spatial_size", args.spatial_size]
    if args.untrained:
        cmd += ["--conf", "pretrained", "none"]
    print(f"starting the server (log: {log})")
    with open(log, "w") as server_log:
        process = subprocess.Popen(cmd, stdout=server_log, stderr=subprocess.STDOUT, cwd=out)
    try:
        wait_until_up(url, process, log)
        print(f"browser client: {url}/client/")
        annotate(url, bundle.name, args.max_epochs)
        if args.keep_open:
            print(f"the server keeps running at {url}/client/; Ctrl+C stops it")
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    print(f"outputs: {out} (studies/labels/final, cephres/models/model.pt, server.log)")


if __name__ == "__main__":
    main()
