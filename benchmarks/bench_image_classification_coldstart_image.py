"""Cold start of `podman run IMAGE serve` (image-classification-tensorflow, CPU image): the image as built
against the same image with this checkout's common/ and containers/image_classification_tensorflow/ mounted
over its installed copies (no rebuild), interleaved round by round.

    .venv/bin/python benchmarks/bench_image_classification_coldstart_image.py [ROUNDS]

Trains the container-test sample job (tests/containers/test_images.py) once with this checkout's code, then
times each `podman run -d ... serve` to the first 200 from /ping (the platform allows 30 s) and sends one
request.
"""
import os, sys, shutil, subprocess, tempfile, time, requests
from pathlib import Path
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests/containers"))
os.environ["ALGOBOX_IMAGE_TESTS"] = "1"
import test_images as T
IMAGE = "algobox-image-classification-tensorflow:0.1.0-cpu"
SP = "/opt/algobox/lib/python3.11/site-packages"
MOUNTS = ["-v", f"{REPO}/common:{SP}/common:ro", "-v",
          f"{REPO}/containers/image_classification_tensorflow:{SP}/containers/image_classification_tensorflow:ro"]
root = Path(tempfile.mkdtemp(prefix="bench-ictf-image-")) / "opt_ml"
job = T.write_job(root, T.SAMPLES["image_classification_tensorflow"])
r = subprocess.run(["podman", "run", "--rm", *MOUNTS, "-v", f"{job}:/opt/ml", IMAGE, "train"], capture_output=True, text=True)
print("train with this branch's code: exit", r.returncode, [l for l in r.stdout.splitlines() if "input:" in l][:1])
def cold(mounts):
    port = T.free_port(); name = f"ictf-cold-{port}"
    t = time.monotonic()
    subprocess.run(["podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", *mounts, "-v", f"{job}:/opt/ml", IMAGE, "serve"], check=True, capture_output=True)
    took = None
    while time.monotonic() - t < 90:
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                took = time.monotonic() - t; break
        except requests.RequestException: pass
        time.sleep(0.1)
    ok = requests.post(f"http://127.0.0.1:{port}/invocations", data=T.SAMPLES["image_classification_tensorflow"].request[1], headers={"Content-Type": "image/png"}, timeout=30).status_code if took else None
    logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True).stdout
    subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    return took, ok, [l[-110:] for l in logs.splitlines() if "Imported" in l]
res = {"as built (per-worker import)": [], "this branch (preload)": []}
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 2):
    for label, mounts in (("as built (per-worker import)", []), ("this branch (preload)", MOUNTS)):
        took, ok, lines = cold(mounts)
        res[label].append(took); print(label, f"{took}", ok, lines, flush=True)
print(f"load average {os.getloadavg()[0]:.1f}")
for k, v in res.items(): print(k, v)
