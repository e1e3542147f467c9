"""The built images speak the SageMaker container contract: train, failures, serve, SIGTERM.

Skipped unless ALGOBOX_IMAGE_TESTS=1 (scripts/ci-images.sh builds the CPU images, then sets it).
The images must exist already (scripts/build-images.sh); these tests only run them.

Environment:
  CONTAINER_ENGINE           podman or docker (default: podman when installed, else docker)
  ALGOBOX_IMAGE_ALGORITHMS   "kmeans pca" (default: every containers/<alg>/ that has a sample in SAMPLES)
  ALGOBOX_IMAGE_VARIANT      cpu (default) or gpu
  ALGOBOX_IMAGE_VERSION      tag version (default: pyproject.toml's), ALGOBOX_IMAGE_PREFIX (default algobox-)
Run with -s to see the image sizes, the time from `run ... serve` to the first healthy /ping, and the
time `stop` took.
"""

import json
import os
import random
import shutil
import subprocess
import time
import zlib
from dataclasses import dataclass, field

import pytest
import requests

from image_tags import ROOT, VARIANT, algorithm_fixture, free_port, image_name

pytestmark = pytest.mark.skipif(
    os.environ.get("ALGOBOX_IMAGE_TESTS") != "1",
    reason="container image tests run only with ALGOBOX_IMAGE_TESTS=1 (scripts/ci-images.sh)",
)

ENGINE = os.environ.get("CONTAINER_ENGINE") or ("podman" if shutil.which("podman") else "docker")
PING_DEADLINE_S = 30
STOP_DEADLINE_S = 30
TRAIN_TIMEOUT_S = 600
GB = 1_000_000_000


# ---- per-algorithm samples: a job that trains, jobs that must fail, a request and its expected answer ----

def _clustered_csv(rows_per_cluster, centers, seed=0):
    rng = random.Random(seed)
    rows = [",".join(f"{x + rng.gauss(0, 0.5):.4f}" for x in center)
            for center in centers for _ in range(rows_per_cluster)]
    return "\n".join(rows) + "\n"


def _labelled_csv(rows_per_cluster, centers, seed=0):
    """Label (the cluster's index, 0/1 for two clusters) first, as supervised algorithms read CSV."""
    rng = random.Random(seed)
    rows = [",".join([str(label)] + [f"{x + rng.gauss(0, 0.5):.4f}" for x in center])
            for label, center in enumerate(centers) for _ in range(rows_per_cluster)]
    rng.shuffle(rows)
    return "\n".join(rows) + "\n"


CSV_CHANNELS = {"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}}
FOUR_D = [(0, 0, 0, 0), (5, 5, 5, 5), (10, 0, 10, 0)]
TWO_4D = [(0, 0, 0, 0), (5, 5, 5, 5)]


def _without(key):
    def mutate(job):
        path = job / "input/config/hyperparameters.json"
        hps = json.loads(path.read_text())
        del hps[key]
        path.write_text(json.dumps(hps))
    return mutate


def _extra_column(job):
    with open(job / "input/data/train/train.csv", "a") as f:
        f.write("1,2,3,4,5\n")


def _extra_labelled_column(job):
    with open(job / "input/data/train/train.csv", "a") as f:
        f.write("1,1,2,3,4,5\n")


def _png(width, height, rgb, seed):
    """An RGB PNG of one colour plus noise, written without an imaging library."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(max(0, min(255, c + rng.randint(-30, 30))) for _ in range(width) for c in rgb)
                    for _ in range(height))

    def chunk(kind, payload):
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


IMAGE_CLASSES = {"blue": (40, 60, 220), "red": (220, 40, 40)}
IMAGE_CHANNELS = {"training": {"ContentType": "application/x-image", "TrainingInputMode": "File"},
                  "model": {"ContentType": "application/x-sagemaker-model", "TrainingInputMode": "File"}}
TF_BACKBONE = ROOT / "tests/fixtures/image_classification_tensorflow/backbone.keras"  # make_backbone.py there


def _image_files():
    files = {f"training/{name}/{i:02d}.png": _png(20, 20, rgb, seed=i) for name, rgb in IMAGE_CLASSES.items()
             for i in range(8)}
    files["model/backbone.keras"] = TF_BACKBONE.read_bytes()
    return files


def _without_channel(name):
    def mutate(job):
        path = job / "input/config/inputdataconfig.json"
        channels = json.loads(path.read_text())
        del channels[name]
        path.write_text(json.dumps(channels))
    return mutate


def _with(key, value):
    def mutate(job):
        path = job / "input/config/hyperparameters.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    return mutate


@dataclass
class Sample:
    hyperparameters: dict
    train_files: dict                      # path under input/data/ -> text (or bytes)
    request: tuple                         # (content type, body)
    check: object                          # function(response JSON) -> None, asserts
    bad_jobs: list = field(default_factory=list)  # (id, mutate(job dir), [substrings of output/failure])
    channels: dict = field(default_factory=lambda: dict(CSV_CHANNELS))
    max_image_bytes: dict = field(default_factory=dict)  # variant -> limit
    model_file: str = "model_algo-1"       # a file training writes under /opt/ml/model


def _check_blazingtext(body):
    assert body[0]["label"] == ["__label__tech"] and 0 < body[0]["prob"][0] <= 1, body


def _blazingtext_train(n=200, seed=0):
    topics = {"tech": "linux kernel intel chip code software", "food": "bread cheese soup recipe bake salt"}
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        topic = rng.choice(sorted(topics))
        lines.append(f"__label__{topic} " + " ".join(rng.choice(topics[topic].split()) for _ in range(6)))
    return "\n".join(lines) + "\n"


def _check_kmeans(body):
    first = body["predictions"][0]
    assert "closest_cluster" in first, body
    assert 0 <= int(first["closest_cluster"]) < 3, body


def _check_pca(body):
    projection = body["projections"][0]["projection"]
    assert len(projection) == 2, body


def _check_randomcutforest(body):
    score = body["scores"][0]["score"]
    assert score > 0, body


def _check_xgboost(body):
    score = body["predictions"][0]["score"]
    assert 0 <= score <= 1, body


def _check_knn(body):
    assert body["predictions"][0]["predicted_label"] in (0.0, 1.0), body


def _check_linear_learner(body):
    first = body["predictions"][0]
    assert 0 <= first["score"] <= 1 and first["predicted_label"] in (0, 1), body


def _check_factorization_machines(body):
    first = body["predictions"][0]
    assert 0 <= first["score"] <= 1 and first["predicted_label"] in (0, 1), body


def _series_jsonl(count=6, length=60):
    """Hourly series with a daily cycle, one categorical feature, as DeepAR's JSON Lines channel holds them."""
    rng = random.Random(3)
    lines = []
    for i in range(count):
        target = [round(10 + 3 * (i % 2) + 2 * ((t % 24) / 12 - 1) ** 2 + rng.gauss(0, 0.3), 3) for t in range(length)]
        lines.append(json.dumps({"start": "2021-03-01 00:00:00", "target": target, "cat": [i % 2]}))
    return "\n".join(lines) + "\n"


def _bad_series_line(job):
    with open(job / "input/data/train/train.json", "a") as f:
        f.write('{"start": "yesterday", "target": [1, 2, 3]}\n')


def _check_deepar(body):
    forecast = body["predictions"][0]
    assert set(forecast) == {"mean", "quantiles"} and len(forecast["mean"]) == 6, body
    assert forecast["quantiles"]["0.9"][0] >= forecast["quantiles"]["0.1"][0], body


def _check_image_classification(body):
    probabilities = body["probabilities"]
    assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-4, body


SAMPLES = {
    "blazingtext": Sample(
        hyperparameters={"mode": "supervised", "epochs": "5", "min_count": "1", "learning_rate": "0.5",
                         "buckets": "1000", "vector_dim": "10"},
        train_files={"train/train.txt": _blazingtext_train()},
        channels={"train": {"ContentType": "text/plain", "TrainingInputMode": "File"}},
        request=("application/json", json.dumps({"instances": ["linux kernel code"]})),
        check=_check_blazingtext,
        bad_jobs=[
            ("missing-mode", _without("mode"), ["mode", "required"]),
            ("word2vec-hyperparameter-in-supervised", _with("window_size", "3"),
             ["window_size", "Word2Vec"]),
        ],
        model_file="model.bin",
    ),
    "kmeans": Sample(
        hyperparameters={"k": "3", "feature_dim": "4", "mini_batch_size": "50"},
        train_files={"train/train.csv": _clustered_csv(50, FOUR_D)},
        request=("text/csv", "1,2,3,4"),
        check=_check_kmeans,
        bad_jobs=[
            ("missing-k", _without("k"), ["k", "required"]),
            ("wrong-column-count", _extra_column, ["columns"]),
        ],
        max_image_bytes={"cpu": 1 * GB},
    ),
    "pca": Sample(
        hyperparameters={"feature_dim": "4", "num_components": "2", "mini_batch_size": "50"},
        train_files={"train/train.csv": _clustered_csv(50, FOUR_D)},
        request=("text/csv", "1,2,3,4"),
        check=_check_pca,
        bad_jobs=[
            ("missing-num_components", _without("num_components"), ["num_components"]),
            ("wrong-column-count", _extra_column, ["columns"]),
        ],
    ),
    "randomcutforest": Sample(
        hyperparameters={"feature_dim": "4", "num_trees": "50", "num_samples_per_tree": "32"},
        train_files={"train/train.csv": _clustered_csv(50, FOUR_D)},
        channels={"train": {"ContentType": "text/csv", "TrainingInputMode": "File",
                            "S3DistributionType": "ShardedByS3Key"}},
        request=("text/csv", "1,2,3,4"),
        check=_check_randomcutforest,
        bad_jobs=[
            ("missing-feature_dim", _without("feature_dim"), ["feature_dim"]),
            ("wrong-column-count", _extra_column, ["columns"]),
        ],
        max_image_bytes={"cpu": int(1.25 * GB)},  # torch (multi-host gather) + numba: 1.13 GB measured
    ),
    "xgboost": Sample(
        hyperparameters={"num_round": "5", "objective": "binary:logistic", "max_depth": "2"},
        train_files={"train/train.csv": _labelled_csv(50, TWO_4D)},
        request=("text/csv", "5,5,5,5"),
        check=_check_xgboost,
        bad_jobs=[
            ("missing-num_round", _without("num_round"), ["num_round"]),
            ("multiclass-without-num_class", _with("objective", "multi:softmax"), ["num_class"]),
        ],
        model_file="xgboost-model",
    ),
    "knn": Sample(
        hyperparameters={"feature_dim": "4", "k": "3", "predictor_type": "classifier", "sample_size": "100"},
        train_files={"train/train.csv": _labelled_csv(50, TWO_4D)},
        request=("text/csv", "5,5,5,5"),
        check=_check_knn,
        bad_jobs=[
            ("missing-k", _without("k"), ["k"]),
            ("wrong-column-count", _extra_labelled_column, ["columns"]),
        ],
    ),
    "linear_learner": Sample(
        hyperparameters={"feature_dim": "4", "predictor_type": "binary_classifier", "epochs": "2",
                         "num_models": "2", "mini_batch_size": "20"},
        train_files={"train/train.csv": _labelled_csv(50, TWO_4D)},
        request=("text/csv", "5,5,5,5"),
        check=_check_linear_learner,
        bad_jobs=[
            ("missing-predictor_type", _without("predictor_type"), ["predictor_type"]),
            ("wrong-column-count", _extra_labelled_column, ["columns"]),
        ],
    ),
    "factorization_machines": Sample(
        hyperparameters={"feature_dim": "4", "num_factors": "2", "predictor_type": "binary_classifier",
                         "epochs": "2", "mini_batch_size": "20"},
        train_files={"train/train.csv": _labelled_csv(50, TWO_4D)},
        request=("text/csv", "5,5,5,5"),
        check=_check_factorization_machines,
        bad_jobs=[
            ("missing-num_factors", _without("num_factors"), ["num_factors"]),
            ("wrong-column-count", _extra_labelled_column, ["columns"]),
        ],
    ),
    "deepar": Sample(
        hyperparameters={"time_freq": "H", "context_length": "12", "prediction_length": "6", "epochs": "2",
                         "num_cells": "8", "num_layers": "1", "mini_batch_size": "16"},
        train_files={"train/train.json": _series_jsonl()},
        channels={"train": {"ContentType": "application/jsonlines", "TrainingInputMode": "File"}},
        request=("application/json", json.dumps({
            "instances": [{"start": "2021-03-01 00:00:00", "target": [10.0 + (t % 24) / 10 for t in range(30)],
                           "cat": [1]}],
            "configuration": {"num_samples": 20, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.9"]}})),
        check=_check_deepar,
        bad_jobs=[
            ("missing-time_freq", _without("time_freq"), ["time_freq"]),
            ("bad-start", _bad_series_line, ["line 7", "'start'"]),
        ],
        model_file="model.pt",
    ),
    "image_classification_tensorflow": Sample(
        hyperparameters={"epochs": "2", "batch_size": "8"},
        train_files=_image_files(),
        request=("image/png", _png(20, 20, IMAGE_CLASSES["red"], seed=99)),
        check=_check_image_classification,
        bad_jobs=[
            ("no-model-channel", _without_channel("model"), ["model channel is required", "pack_backbone.py"]),
            ("bad-optimizer", _with("optimizer", "adamw"), ["optimizer", "adamw"]),
        ],
        channels=IMAGE_CHANNELS,
        model_file="saved_model.pb",
    ),
}


def _algorithms():
    listed = os.environ.get("ALGOBOX_IMAGE_ALGORITHMS", "").split()
    if listed:
        return listed
    return sorted(p.parent.name for p in (ROOT / "containers").glob("*/spec.py")
                  if p.parent.name in SAMPLES)


ALGORITHMS = _algorithms()


def engine(*args, timeout=120, check=False):
    return subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout, check=check)


def sample_for(algorithm):
    if algorithm not in SAMPLES:
        pytest.skip(f"no sample job for {algorithm} in SAMPLES (tests/containers/test_images.py)")
    return SAMPLES[algorithm]


def write_job(root, sample):
    config = root / "input/config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(sample.hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps(sample.channels))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for name, text in sample.train_files.items():
        path = root / "input/data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    return root


def run_train(image, job):
    started = time.monotonic()
    result = engine("run", "--rm", "-v", f"{job}:/opt/ml", image, "train", timeout=TRAIN_TIMEOUT_S)
    print(f"\n[{image}] train: exit {result.returncode} in {time.monotonic() - started:.1f} s")
    return result


algorithm = algorithm_fixture(ALGORITHMS)


@pytest.fixture(scope="module")
def image(algorithm):
    result = engine("image", "inspect", image_name(algorithm))
    if result.returncode != 0:
        pytest.fail(f"image {image_name(algorithm)} not found: build it with "
                    f"scripts/build-images.sh --variant {VARIANT} {algorithm}")
    return image_name(algorithm)


@pytest.fixture(scope="module")
def inspected(image):
    return json.loads(engine("image", "inspect", image, check=True).stdout)[0]


# ---- the image itself ----

def test_image_size(algorithm, image, inspected):
    size = int(inspected["Size"])
    print(f"\n[{image}] size {size / GB:.3f} GB ({size} bytes)")
    limit = SAMPLES[algorithm].max_image_bytes.get(VARIANT) if algorithm in SAMPLES else None
    if limit:
        assert size < limit, f"{image} is {size / GB:.3f} GB, over {limit / GB:.1f} GB"


def test_image_metadata(algorithm, image, inspected):
    config = inspected["Config"]
    assert config["Labels"].get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"
    assert "8080/tcp" in (config.get("ExposedPorts") or {})
    entrypoint = config["Entrypoint"]
    assert entrypoint == ["algobox"], f"exec-form ENTRYPOINT expected, got {entrypoint!r}"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env.get("ALGOBOX_ALGORITHM") == algorithm
    if VARIANT == "gpu":
        assert env.get("NVIDIA_VISIBLE_DEVICES") == "all"
        assert env.get("NVIDIA_DRIVER_CAPABILITIES") == "compute,utility"


def test_image_contents(image):
    """Nothing baked under /opt/ml (and it is writable); no compilers or pip in the final stage."""
    script = ("find /opt/ml -mindepth 1; test -w /opt/ml || echo 'not writable: /opt/ml'; "
              "for c in gcc cc c++ make pip pip3; do command -v $c && echo \"build tool: $c\"; done; true")
    result = engine("run", "--rm", "--entrypoint", "sh", image, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


# ---- train ----

def test_train_writes_model(algorithm, image, tmp_path):
    sample = sample_for(algorithm)
    job = write_job(tmp_path / "opt_ml", sample)
    result = run_train(image, job)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (job / "model" / sample.model_file).is_file(), sorted(p.name for p in (job / "model").glob("*"))
    assert not (job / "output/failure").exists()


def _bad_job_params():
    return [pytest.param(alg, case, id=f"{alg}-{case[0]}")
            for alg in ALGORITHMS if alg in SAMPLES for case in SAMPLES[alg].bad_jobs]


@pytest.mark.parametrize("alg,case", _bad_job_params())
def test_train_failure_is_reported(alg, case, tmp_path):
    image = image_name(alg)
    _, mutate, expected = case
    job = write_job(tmp_path / "opt_ml", SAMPLES[alg])
    mutate(job)
    result = run_train(image, job)
    assert result.returncode != 0, result.stdout[-2000:]
    failure = job / "output/failure"
    assert failure.is_file(), result.stdout[-2000:] + result.stderr[-2000:]
    text = failure.read_text()
    print(f"[{image}] output/failure: {text.splitlines()[0] if text else '(empty)'}")
    for word in expected:
        assert word in text, f"{word!r} not in /opt/ml/output/failure:\n{text[:2000]}"


# ---- serve (one container per algorithm; test_serve_stops_on_sigterm runs last and stops it) ----

@pytest.fixture(scope="module")
def server(algorithm, image, tmp_path_factory):
    sample = sample_for(algorithm)
    job = write_job(tmp_path_factory.mktemp(f"serve-{algorithm}") / "opt_ml", sample)
    trained = run_train(image, job)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    port = free_port()
    name = f"algobox-test-{algorithm.replace('_', '-')}-{os.getpid()}"
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    result = engine("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "-v", f"{job}:/opt/ml",
                    image, "serve")
    assert result.returncode == 0, result.stderr
    healthy_after = None
    while time.monotonic() - started < PING_DEADLINE_S:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                healthy_after = time.monotonic() - started
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    info = {"name": name, "url": url, "healthy_after": healthy_after, "sample": sample, "image": image}
    if healthy_after is not None:
        print(f"\n[{image}] `{ENGINE} run ... serve` -> first healthy /ping: {healthy_after:.2f} s")
    try:
        yield info
    finally:
        if healthy_after is None or os.environ.get("ALGOBOX_IMAGE_TESTS_LOGS"):
            print(engine("logs", name).stdout[-5000:])
        engine("rm", "-f", name)


def test_serve_ping_within_30_s(server):
    if server["healthy_after"] is None:
        logs = engine("logs", server["name"])
        pytest.fail(f"no 200 from /ping within {PING_DEADLINE_S} s\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
    assert server["healthy_after"] < PING_DEADLINE_S


def test_serve_invocations(server):
    content_type, body = server["sample"].request
    response = requests.post(f"{server['url']}/invocations", data=body, timeout=30,
                             headers={"Content-Type": content_type, "Accept": "application/json"})
    assert response.status_code == 200, response.text[:2000]
    server["sample"].check(response.json())


def test_serve_execution_parameters(server):
    response = requests.get(f"{server['url']}/execution-parameters", timeout=10)
    assert response.status_code == 200, response.text[:2000]
    parameters = response.json()
    for key in ("MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB"):
        assert key in parameters, parameters


def test_serve_model_tar_gz_mounted_as_model_dir(algorithm, image, tmp_path):
    """`run -v <dir holding only model.tar.gz>:/opt/ml/model IMAGE serve`, as the SDK's local mode mounts it.

    The unpacking runs on the image's own Python (Debian's 3.11.2, older than the development venv's),
    where `TarFile.extract(filter=...)` does not exist.
    """
    import tarfile

    sample = sample_for(algorithm)
    job = write_job(tmp_path / "opt_ml", sample)
    trained = run_train(image, job)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as archive:
        for path in sorted((job / "model").iterdir()):
            archive.add(path, arcname=path.name)
    version = engine("run", "--rm", "--entrypoint", "python3", image, "--version").stdout.strip()
    print(f"\n[{image}] {version}; serving {model_dir}/model.tar.gz mounted at /opt/ml/model")
    assert version.startswith("Python 3.11"), version
    port = free_port()
    name = f"algobox-test-tgz-{algorithm.replace('_', '-')}-{os.getpid()}"
    result = engine("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
                    "-v", f"{model_dir}:/opt/ml/model", image, "serve")
    assert result.returncode == 0, result.stderr
    try:
        started, healthy = time.monotonic(), False
        while time.monotonic() - started < PING_DEADLINE_S and not healthy:
            try:
                healthy = requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200
            except requests.RequestException:
                time.sleep(0.2)
        logs = engine("logs", name)
        assert healthy, f"no 200 from /ping within {PING_DEADLINE_S} s\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
        content_type, body = sample.request
        response = requests.post(f"http://127.0.0.1:{port}/invocations", data=body, timeout=30,
                                 headers={"Content-Type": content_type, "Accept": "application/json"})
        assert response.status_code == 200, response.text[:2000]
        sample.check(response.json())
    finally:
        engine("rm", "-f", name)


def test_serve_stops_on_sigterm(server):
    started = time.monotonic()
    result = engine("stop", "--time", str(STOP_DEADLINE_S), server["name"], timeout=STOP_DEADLINE_S + 30)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    state = json.loads(engine("inspect", server["name"], check=True).stdout)[0]["State"]
    print(f"\n[{server['image']}] stop (SIGTERM): {took:.2f} s, exit code {state['ExitCode']}")
    assert took < STOP_DEADLINE_S, f"stop took {took:.1f} s: SIGTERM did not end the server"
    assert state["ExitCode"] == 0, f"server exited with {state['ExitCode']} on SIGTERM"
