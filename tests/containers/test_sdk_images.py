"""A user's unchanged SageMaker Python SDK local-mode code against the images CI builds.

`sagemaker.KMeans`, `PCA`, `LinearLearner`, `FactorizationMachines`, `KNN` and `RandomCutForest` (the SDK's
own first-party estimator classes, as a user writes them), in local mode over podman: `fit` with train and test channels on 1 and on 2 hosts,
`deploy(1, "local")` + `predict` with the estimator's default predictor (RecordSerializer /
RecordDeserializer), `delete_endpoint`, and a `transformer(..., strategy="MultiRecord",
assemble_with="Line")` batch transform over a CSV folder. The generic `sagemaker.estimator.Estimator
(image_uri=...)` route is covered once.

How a user points the SDK's classes at our image (README.md, "Use with the SageMaker Python SDK"):
`KMeans(image_uri=...)` is ignored by the SDK, so the image is tagged as the URI the SDK asks for,
`sagemaker.image_uris.retrieve(<framework>, region)`. The test does exactly that.

Skipped unless ALGOBOX_IMAGE_TESTS=1 (scripts/ci-images.sh runs it after building the images).
Needs podman, podman-compose and the CNI dnsname plugin (scripts/ci-images.sh installs them).
tests/containers/docker_shim.py is put first on PATH as `docker` (whatever else is installed as
docker), bridging what podman-compose lacks next to Docker Compose.

Test process only: the SDK sleeps 30 s before its first DescribeEndpoint poll after a deploy
(Session.wait_for_endpoint's poll) and 5 s between its /ping checks; both sleeps are shortened to
0.5 s by replacing the `time` module those two SDK modules see. Nothing else of the SDK is changed.

A new algorithm's image joins by one row in CASES.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import image_tags
from image_tags import algorithm_fixture, free_port

pytestmark = pytest.mark.skipif(
    os.environ.get("ALGOBOX_IMAGE_TESTS") != "1",
    reason="SDK local-mode image tests run only with ALGOBOX_IMAGE_TESTS=1 (scripts/ci-images.sh)",
)

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

SHIM = Path(__file__).resolve().parent / "docker_shim.py"
REGION = "us-east-1"
ROLE = "arn:aws:iam::111111111111:role/algobox-local"
SDK_SLEEP_CAP_S = 0.5


def image_name(algorithm):
    return f"localhost/{image_tags.image_name(algorithm)}"


# ---- the table: one row per algorithm ----

@dataclass
class Case:
    estimator: str                 # class name in the `sagemaker` package
    framework: str                 # sagemaker.image_uris.retrieve(framework, ...)
    hyperparameters: dict          # the estimator's keyword arguments
    metric: str                    # the test-channel metric (`test:<metric>`), read with the spec's own regex
    predict_key: str               # a label every record of the default predictor's answer carries
    predict_dim: int               # its length (1 for a scalar)
    jsonlines_key: str             # the key of each JSON Lines transform output line
    labels: str | None = None      # None, "class" (0, 1, 2), "binary" (class 1 or not), "anomaly" (planted)
    mini_batch_size: int = 100
    extra: dict = field(default_factory=dict)


CASES = {
    "kmeans": Case("KMeans", "kmeans", {"k": 3}, "msd", "closest_cluster", 1, "closest_cluster"),
    "pca": Case("PCA", "pca", {"num_components": 2}, "reconstruction_error", "projection", 2, "projection"),
    "linear_learner": Case("LinearLearner", "linear-learner",
                           {"predictor_type": "multiclass_classifier", "num_classes": 3, "epochs": 5},
                           "multiclass_accuracy", "predicted_label", 1, "predicted_label", labels="class"),
    "factorization_machines": Case("FactorizationMachines", "factorization-machines",
                                   {"num_factors": 4, "predictor_type": "binary_classifier", "epochs": 20},
                                   "binary_classification_accuracy", "score", 1, "score", labels="binary"),
    "knn": Case("KNN", "knn", {"k": 5, "sample_size": 3000, "predictor_type": "classifier"},
                "accuracy", "predicted_label", 1, "predicted_label", labels="class"),
    # The SDK fixes RandomCutForest's mini_batch_size at 1000; its local mode writes no S3DistributionType.
    "randomcutforest": Case("RandomCutForest", "randomcutforest", {"num_samples_per_tree": 256, "num_trees": 50},
                            "f1", "score", 1, "score", labels="anomaly", mini_batch_size=1000),
}

ALGORITHMS = [a for a in (os.environ.get("ALGOBOX_IMAGE_ALGORITHMS", "").split() or sorted(CASES))
              if a in CASES]

GENERIC = "kmeans" if "kmeans" in ALGORITHMS else (ALGORITHMS or [None])[0]
FEATURE_DIM = 6
CENTERS = np.array([[0, 0, 0, 0, 0, 0], [6, 6, 0, 0, 6, 6], [0, 8, 8, 0, 8, 0]], dtype=np.float32)


def make_data(n, seed, labels="class"):
    """Points around three centres; labels as the case asks ("anomaly": 2% moved far away, labelled 1)."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(CENTERS), n)
    scale = np.array([1.0, 0.5, 2.0, 0.3, 1.5, 0.8], dtype=np.float32)
    points = CENTERS[which] + rng.normal(0, 1, (n, FEATURE_DIM)).astype(np.float32) * scale
    if labels == "binary":
        which = (which == 1).astype(np.int64)
    elif labels == "anomaly":
        which = np.zeros(n, np.int64)
        planted = rng.choice(n, n // 50, replace=False)
        points[planted] += rng.choice([-1.0, 1.0], (len(planted), FEATURE_DIM)) * 25
        which[planted] = 1
    return points.astype(np.float32), which.astype(np.float32)


# ---- the SDK, in this process, with podman behind `docker` ----

@pytest.fixture(scope="module")
def local_session(tmp_path_factory):
    for tool in ("podman", "podman-compose"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: scripts/ci-images.sh installs it")
    import boto3
    import sagemaker.local.entities
    import sagemaker.session
    from sagemaker.local import LocalSession

    bin_dir = tmp_path_factory.mktemp("shim-bin")
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SHIM}" "$@"\n')
    docker.chmod(0o755)
    saved_env = {key: os.environ.get(key) for key in ("PATH", "CONTAINERS_STORAGE_CONF")}
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{saved_env['PATH']}"
    assert shutil.which("docker") == str(docker), shutil.which("docker")
    if not saved_env["CONTAINERS_STORAGE_CONF"]:
        # The same storage, named by CONTAINERS_STORAGE_CONF: containers that exit on their own then keep
        # their CNI port forwards (podman's exit cleanup does not see the variable), the case the shim's
        # `podman rm` covers. deploy -> delete_endpoint -> transform reuse one serving port.
        store = json.loads(subprocess.run(["podman", "info", "--format", "json"], capture_output=True,
                                          text=True, check=True).stdout)["store"]
        storage_conf = bin_dir / "storage.conf"
        storage_conf.write_text(f'[storage]\ndriver = "{store["graphDriverName"]}"\n'
                                f'graphroot = "{store["graphRoot"]}"\nrunroot = "{store["runRoot"]}"\n')
        os.environ["CONTAINERS_STORAGE_CONF"] = str(storage_conf)

    fast_time = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time)
                                         if not name.startswith("__")})
    fast_time.sleep = lambda seconds: time.sleep(min(seconds, SDK_SLEEP_CAP_S))
    saved_time = sagemaker.session.time, sagemaker.local.entities.time
    sagemaker.session.time = sagemaker.local.entities.time = fast_time

    root = tmp_path_factory.mktemp("sdk-local")
    session = LocalSession(
        boto_session=boto3.Session(region_name=REGION),
        sagemaker_config={"SchemaVersion": "1.0",
                          "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}},
    )
    session.config = {"local": {"local_code": True, "container_root": str(root), "serving_port": free_port()}}
    try:
        yield session
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sagemaker.session.time, sagemaker.local.entities.time = saved_time


algorithm = algorithm_fixture(ALGORITHMS)


@pytest.fixture(scope="module")
def sdk_image(algorithm, local_session):
    """Our image, tagged as the URI the SDK's estimator class asks for (the user's route)."""
    from sagemaker import image_uris

    ours = image_name(algorithm)
    if subprocess.run(["podman", "image", "exists", ours]).returncode != 0:
        pytest.fail(f"image {ours} not found: build it with scripts/build-images.sh {algorithm}")
    uri = image_uris.retrieve(CASES[algorithm].framework, REGION)
    subprocess.run(["podman", "tag", ours, uri], check=True)
    yield uri
    subprocess.run(["podman", "untag", uri, uri], capture_output=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory, algorithm):
    """RecordIO-protobuf train and test channels and a CSV folder, written as a user would with the SDK."""
    from sagemaker.amazon.amazon_estimator import RecordSet
    from sagemaker.amazon.common import write_numpy_to_dense_tensor

    case = CASES[algorithm]
    folder = tmp_path_factory.mktemp(f"data-{algorithm}")
    sets = {}
    for channel, n, seed in (("train", 3000, 1), ("test", 600, 2)):
        features, labels = make_data(n, seed, case.labels)
        (folder / channel).mkdir()
        with open(folder / channel / f"{channel}.rec", "wb") as f:
            write_numpy_to_dense_tensor(f, features, labels if case.labels else None)
        sets[channel] = RecordSet(f"file://{folder / channel}/", num_records=n, feature_dim=FEATURE_DIM,
                                  s3_data_type="S3Prefix", channel=channel, distribution="FullyReplicated")
    csv_features, _ = make_data(20000, 3, case.labels)
    (folder / "batch").mkdir()
    np.savetxt(folder / "batch" / "part-0.csv", csv_features, delimiter=",", fmt="%.5f")
    np.savetxt(folder / "batch" / "part-1.csv", csv_features[:7], delimiter=",", fmt="%.5f")
    return {"records": sets, "folder": folder, "predict": make_data(5, 4, case.labels)[0]}


class Tee(io.TextIOBase):
    """sys.stdout that also keeps what was written (the SDK streams the containers' logs there)."""

    def __init__(self, stream):
        self.stream = stream
        self.buffer_ = io.StringIO()

    def write(self, text):
        self.stream.write(text)
        self.buffer_.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()

    def text(self):
        return self.buffer_.getvalue()


def fit(estimator, records, mini_batch_size):
    tee = Tee(sys.stdout)
    saved, sys.stdout = sys.stdout, tee
    started = time.monotonic()
    try:
        estimator.fit([records["train"], records["test"]], mini_batch_size=mini_batch_size)
    finally:
        sys.stdout = saved
    print(f"\n[sdk] fit on {estimator.instance_count} host(s): {time.monotonic() - started:.1f} s")
    return tee.text()


def metric_definitions(algorithm, _cache={}):
    """The image's own MetricDefinitions (``IMAGE describe``: the CreateAlgorithm request a user registers)."""
    if algorithm not in _cache:
        # podman's own storage configuration, not the fixture's: a container that ends on its own there is
        # cleaned up at once (docker_shim.py's docstring: 20 s later otherwise)
        env = {key: value for key, value in os.environ.items() if key != "CONTAINERS_STORAGE_CONF"}
        out = subprocess.run(["podman", "run", "--rm", image_name(algorithm), "describe"], capture_output=True,
                             text=True, check=True, env=env).stdout
        definitions = json.loads(out)["TrainingSpecification"]["MetricDefinitions"]
        _cache[algorithm] = {d["Name"]: d["Regex"] for d in definitions}
    return _cache[algorithm]


def logged_metrics(log, algorithm):
    """``test:<metric>`` as a training job's MetricDefinitions regex (the image's own) reads it from the log."""
    name = f"test:{CASES[algorithm].metric}"
    regex = metric_definitions(algorithm)[name]
    values = [float(v) for v in re.findall(regex, log)]
    assert values, f"no {name} metric (regex {regex}) in the training log:\n{log[-3000:]}"
    return values


def first_party(algorithm, session, tmp_path, instance_count):
    import sagemaker

    case = CASES[algorithm]
    cls = getattr(sagemaker, case.estimator)
    return cls(role=ROLE, instance_count=instance_count, instance_type="local", sagemaker_session=session,
               output_path=f"file://{tmp_path}/output", data_location="s3://unused-in-local-mode/data/",
               **case.hyperparameters, **case.extra)


@pytest.fixture(scope="module")
def trained(algorithm, sdk_image, local_session, data, tmp_path_factory):
    """fit on 1 host; the estimator and its test metric."""
    estimator = first_party(algorithm, local_session, tmp_path_factory.mktemp(f"fit1-{algorithm}"), 1)
    assert estimator.training_image_uri() == sdk_image
    log = fit(estimator, data["records"], CASES[algorithm].mini_batch_size)
    return estimator, logged_metrics(log, algorithm)


def test_fit_one_host(algorithm, trained):
    estimator, metrics = trained
    assert estimator.model_data.startswith("file://") and estimator.model_data.endswith("model.tar.gz")
    assert Path(estimator.model_data[len("file://"):]).is_file()
    assert all(np.isfinite(metrics))


def test_fit_two_hosts_matches_one_host(algorithm, trained, local_session, data, tmp_path):
    _, one_host = trained
    estimator = first_party(algorithm, local_session, tmp_path, 2)
    log = fit(estimator, data["records"], CASES[algorithm].mini_batch_size)
    two_hosts = logged_metrics(log, algorithm)
    hosts = set(re.findall(r"^(algo-\d+-\w+)\s+\|", log, re.M))  # the shim prefixes each container's lines
    assert len(hosts) == 2, f"log lines of {sorted(hosts)}, expected two hosts"
    assert Path(estimator.model_data[len("file://"):]).is_file()
    print(f"[sdk] {algorithm} test {CASES[algorithm].metric}: 1 host {one_host[0]:.6g}, "
          f"2 hosts {two_hosts[0]:.6g}")
    assert abs(two_hosts[0] - one_host[0]) <= 0.01 * abs(one_host[0]), (one_host, two_hosts)


def test_deploy_predict_delete_endpoint(algorithm, trained, data):
    estimator, _ = trained
    case = CASES[algorithm]
    started = time.monotonic()
    predictor = estimator.deploy(1, "local")
    print(f"\n[sdk] deploy: {time.monotonic() - started:.1f} s")
    try:
        records = predictor.predict(data["predict"])
        assert len(records) == len(data["predict"])
        for record in records:
            values = record.label[case.predict_key].float32_tensor.values
            assert len(values) == case.predict_dim, record
            assert all(np.isfinite(values))
    finally:
        started = time.monotonic()
        predictor.delete_endpoint()
        print(f"[sdk] delete_endpoint: {time.monotonic() - started:.1f} s")
    leftover = subprocess.run(["podman", "ps", "--format", "{{.Names}} {{.Image}}"], capture_output=True,
                              text=True).stdout
    assert estimator.training_image_uri() not in leftover, leftover


def test_batch_transform_one_line_per_record(algorithm, trained, data, tmp_path):
    estimator, _ = trained
    case = CASES[algorithm]
    transformer = estimator.transformer(1, "local", strategy="MultiRecord", assemble_with="Line",
                                        accept="application/jsonlines", max_payload=1,
                                        output_path=f"file://{tmp_path}/transform")
    started = time.monotonic()
    transformer.transform(f"file://{data['folder'] / 'batch'}/", content_type="text/csv", split_type="Line",
                          logs=False)
    print(f"\n[sdk] transform: {time.monotonic() - started:.1f} s")
    for name in ("part-0.csv", "part-1.csv"):
        inputs = (data["folder"] / "batch" / name).read_text().splitlines()
        output = (tmp_path / "transform" / f"{name}.out").read_text()
        lines = output.split("\n")
        assert lines[-1] == "", "the assembled output ends with one newline"
        lines = lines[:-1]
        assert len(lines) == len(inputs), f"{name}: {len(inputs)} input lines, {len(lines)} output lines"
        for line in lines:
            value = json.loads(line)[case.jsonlines_key]
            assert np.size(value) == case.predict_dim, line


def test_generic_estimator_route(algorithm, trained, local_session, data, tmp_path):
    """Estimator(image_uri=<our tag>) with the first-party estimator's hyperparameters trains the same model."""
    from sagemaker.estimator import Estimator

    if algorithm != GENERIC:
        pytest.skip(f"the generic route is covered once, with {GENERIC}")
    first, one_host = trained
    estimator = Estimator(image_uri=image_name(algorithm), role=ROLE, instance_count=1, instance_type="local",
                          sagemaker_session=local_session, output_path=f"file://{tmp_path}/output",
                          hyperparameters=first.hyperparameters())
    tee = Tee(sys.stdout)
    saved, sys.stdout = sys.stdout, tee
    try:
        estimator.fit({"train": data["records"]["train"].records_s3_input(),
                       "test": data["records"]["test"].records_s3_input()})
    finally:
        sys.stdout = saved
    metrics = logged_metrics(tee.text(), algorithm)
    assert abs(metrics[0] - one_host[0]) <= 0.01 * abs(one_host[0]), (one_host, metrics)
