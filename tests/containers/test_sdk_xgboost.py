"""A user's unchanged SageMaker Python SDK code for the XGBoost built-in (algorithm mode) against our image.

The SDK has no first-party class for XGBoost's algorithm mode: users write the generic
`sagemaker.estimator.Estimator` with `sagemaker.image_uris.retrieve("xgboost", region, "1.7-1")`, set the
built-in's hyperparameters, fit `TrainingInput` channels of CSV (label first), deploy with a
`CSVSerializer`, and run batch transform over CSV. This module does exactly that in local mode over podman,
with our image tagged as the URI the SDK retrieves (the route of test_sdk_images.py, whose local session it
shares), and checks what the user sees: the validation metric as the image's own MetricDefinitions regex reads
the log as CloudWatch shows it (tabs as #011), two hosts (xgboost's collective) against one, predictions equal
to the trained model's over HTTP and in batch transform.

Skipped unless ALGOBOX_IMAGE_TESTS=1 (scripts/ci-images.sh runs it after building the images).
"""

import io
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from test_sdk_images import REGION, ROLE, Tee, image_name, local_session, metric_definitions  # noqa: F401

pytestmark = pytest.mark.skipif(
    os.environ.get("ALGOBOX_IMAGE_TESTS") != "1" or "xgboost" not in (
        os.environ.get("ALGOBOX_IMAGE_ALGORITHMS", "").split() or ["xgboost"]),
    reason="SDK local-mode image tests run only with ALGOBOX_IMAGE_TESTS=1 (scripts/ci-images.sh), xgboost built",
)

VERSION = "1.7-1"  # the built-in's latest framework version the SDK knows for algorithm mode
HYPERPARAMETERS = {"objective": "binary:logistic", "num_round": 30, "max_depth": 4, "eta": 0.3,
                   "eval_metric": "auc", "tree_method": "hist", "seed": 0}
FEATURES = 8


def make_rows(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] * x[:, 2] + 0.3 * rng.normal(size=n)) > 0).astype(np.float32)
    return x, y


def write_csv(path, *columns):
    np.savetxt(path, np.column_stack(columns), delimiter=",", fmt="%.6g")


@pytest.fixture(scope="module")
def xgboost_uri(local_session):  # noqa: F811 - the shared local session
    """Our image tagged as the URI the user's code retrieves."""
    from sagemaker import image_uris

    ours = image_name("xgboost")
    if subprocess.run(["podman", "image", "exists", ours]).returncode != 0:
        pytest.fail(f"image {ours} not found: build it with scripts/build-images.sh xgboost")
    uri = image_uris.retrieve("xgboost", REGION, VERSION)
    subprocess.run(["podman", "tag", ours, uri], check=True)
    yield uri
    subprocess.run(["podman", "untag", uri, uri], capture_output=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data-xgboost")
    sets = {}
    for channel, n, seed in (("train", 4000, 1), ("validation", 1000, 2)):
        x, y = make_rows(n, seed)
        (folder / channel).mkdir()
        write_csv(folder / channel / f"{channel}.csv", y, x)
        sets[channel] = (x, y)
    x, _ = make_rows(3000, 3)
    (folder / "batch").mkdir()
    np.savetxt(folder / "batch" / "part-0.csv", x, delimiter=",", fmt="%.6g")
    np.savetxt(folder / "batch" / "part-1.csv", x[:7], delimiter=",", fmt="%.6g")
    return {"folder": folder, "sets": sets, "batch": x}


def estimator_for(uri, session, output, instance_count):
    from sagemaker.estimator import Estimator

    estimator = Estimator(image_uri=uri, role=ROLE, instance_count=instance_count, instance_type="local",
                          sagemaker_session=session, output_path=f"file://{output}")
    estimator.set_hyperparameters(**HYPERPARAMETERS)
    return estimator


def fit(estimator, folder):
    from sagemaker.inputs import TrainingInput

    channels = {name: TrainingInput(f"file://{folder / name}/", content_type="text/csv")
                for name in ("train", "validation")}
    tee = Tee(sys.stdout)
    saved, sys.stdout = sys.stdout, tee
    started = time.monotonic()
    try:
        estimator.fit(channels)
    finally:
        sys.stdout = saved
    print(f"\n[sdk] xgboost fit on {estimator.instance_count} host(s): {time.monotonic() - started:.1f} s")
    return tee.text()


def validation_auc(log):
    """validation:auc per round, as the image's MetricDefinitions regex reads the log in CloudWatch (#011 tabs)."""
    regex = metric_definitions("xgboost")["validation:auc"]
    cloudwatch = [line.replace("\t", "#011") for line in log.splitlines()]
    values = [float(m.group(1)) for line in cloudwatch if (m := re.match(regex, line))]
    assert values, f"no validation:auc (regex {regex}) in the training log:\n{log[-3000:]}"
    return values


def model_booster(estimator, tmp_path):
    """The trained model as a user opens model.tar.gz: xgboost-model, loaded by the xgboost library."""
    import xgboost as xgb

    with tarfile.open(estimator.model_data[len("file://"):]) as archive:
        names = archive.getnames()
        assert "xgboost-model" in names, names
        archive.extract("xgboost-model", tmp_path, filter="data")
    booster = xgb.Booster()
    booster.load_model(str(tmp_path / "xgboost-model"))
    return booster


@pytest.fixture(scope="module")
def trained(xgboost_uri, local_session, data, tmp_path_factory):  # noqa: F811
    estimator = estimator_for(xgboost_uri, local_session, tmp_path_factory.mktemp("fit1-xgboost"), 1)
    log = fit(estimator, data["folder"])
    return estimator, validation_auc(log), model_booster(estimator, tmp_path_factory.mktemp("model-xgboost"))


def test_fit_logs_the_validation_metric_every_round(trained, data):
    estimator, auc, booster = trained
    assert len(auc) == HYPERPARAMETERS["num_round"]
    assert auc[-1] > 0.9, auc
    x, y = data["sets"]["validation"]
    from sklearn.metrics import roc_auc_score

    import xgboost as xgb

    assert abs(roc_auc_score(y, booster.predict(xgb.DMatrix(x))) - auc[-1]) < 1e-4


def test_fit_two_hosts_matches_one_host(trained, xgboost_uri, local_session, data, tmp_path):  # noqa: F811
    _, one_host, _ = trained
    estimator = estimator_for(xgboost_uri, local_session, tmp_path, 2)
    log = fit(estimator, data["folder"])
    hosts = set(re.findall(r"^(algo-\d+-\w+)\s+\|", log, re.M))  # the shim prefixes each container's lines
    assert len(hosts) == 2, f"log lines of {sorted(hosts)}, expected two hosts"
    two_hosts = validation_auc(log)
    print(f"[sdk] xgboost validation auc: 1 host {one_host[-1]:.6f}, 2 hosts {two_hosts[-1]:.6f}")
    assert len(two_hosts) == len(one_host)
    assert abs(two_hosts[-1] - one_host[-1]) <= 0.01, (one_host[-1], two_hosts[-1])


def test_deploy_predict_with_the_csv_serializer(trained, data):
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.serializers import CSVSerializer

    import xgboost as xgb

    estimator, _, booster = trained
    x = data["batch"][:25]
    predictor = estimator.deploy(1, "local", serializer=CSVSerializer(), deserializer=CSVDeserializer())
    try:
        rows = predictor.predict(x)
        scores = np.array([float(value) for row in rows for value in row])
        assert scores.shape == (len(x),), rows
        np.testing.assert_allclose(scores, booster.predict(xgb.DMatrix(x)), rtol=1e-5, atol=1e-6)
    finally:
        predictor.delete_endpoint()


def test_batch_transform_one_line_per_record(trained, data, tmp_path):
    import xgboost as xgb

    estimator, _, booster = trained
    transformer = estimator.transformer(1, "local", strategy="MultiRecord", assemble_with="Line",
                                        accept="text/csv", max_payload=1, output_path=f"file://{tmp_path}/out")
    transformer.transform(f"file://{data['folder'] / 'batch'}/", content_type="text/csv", split_type="Line",
                          logs=False)
    for name, rows in (("part-0.csv", data["batch"]), ("part-1.csv", data["batch"][:7])):
        output = (tmp_path / "out" / f"{name}.out").read_text()
        lines = output.split("\n")
        assert lines[-1] == "", "the assembled output ends with one newline"
        scores = np.array([float(line) for line in lines[:-1]])
        assert scores.shape == (len(rows),), f"{name}: {len(rows)} input lines, {len(scores)} output lines"
        np.testing.assert_allclose(scores, booster.predict(xgb.DMatrix(np.loadtxt(
            io.StringIO((data["folder"] / "batch" / name).read_text()), delimiter=",", ndmin=2))),
            rtol=1e-5, atol=1e-6)
