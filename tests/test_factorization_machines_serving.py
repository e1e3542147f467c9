"""Factorization Machines serving through real HTTP: ``algobox factorization-machines serve`` under gunicorn, the
SDK's serializers as the client, models of known parameters (ours, and one MXNet wrote with row_sparse params)."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import sdk
from common import protobuf, recordio
from containers.factorization_machines.model import FMModel
from emulator import serve

ALG = "factorization-machines"
FIXTURES = Path(__file__).parent / "fixtures" / "factorization_machines"
D, K = 6, 2
RNG = np.random.default_rng(11)
W0 = np.array([-0.25], np.float32)
W = RNG.normal(0, 0.7, (D, 1)).astype(np.float32)
V = RNG.normal(0, 0.7, (D, K)).astype(np.float32)
ROWS = np.array([[1, 0, 0, 1, 0, 0], [0, 2, 0, 0, 0.5, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1],
                 [0, 0, 3, 0, 0, -1]], np.float32)


def raw(rows=ROWS):
    """The guide's formula, pair by pair."""
    out = W0[0] + rows.astype(np.float64) @ W[:, 0]
    for i in range(D):
        for j in range(i + 1, D):
            out += float(V[i] @ V[j]) * rows[:, i] * rows[:, j]
    return out


def probabilities(rows=ROWS):
    return 1 / (1 + np.exp(-raw(rows)))


def start(root, predictor_type):
    (root / "model").mkdir(parents=True)
    FMModel(W0, W, V, predictor_type).save(root / "model")
    return serve(ALG, root)


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    with start(tmp_path_factory.mktemp("binary"), "binary_classifier") as running:
        yield running


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    with start(tmp_path_factory.mktemp("regressor"), "regressor") as running:
        yield running


def assert_binary(predictions, rows=ROWS):
    assert [list(p) for p in predictions] == [["score", "predicted_label"]] * len(rows)
    p = probabilities(rows)
    np.testing.assert_allclose([x["score"] for x in predictions], p, rtol=1e-5)
    assert [x["predicted_label"] for x in predictions] == [int(v >= 0.5) for v in p]  # 0 or 1 (JSON 0.0 / 1.0)


def sparse_instance(row):
    keys = [i for i, v in enumerate(row) if v]
    return {"data": {"features": {"keys": keys, "shape": [D], "values": [float(row[i]) for i in keys]}}}


@pytest.mark.parametrize("document", [
    {"instances": [{"features": row} for row in ROWS.tolist()]},
    {"instances": [{"data": {"features": {"values": row}}} for row in ROWS.tolist()]},
    {"instances": [sparse_instance(row) for row in ROWS.tolist()]},
])
def test_json_forms_answer_score_and_label(binary, document):
    response = binary.post(json.dumps(document), "application/json")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert list(response.json()) == ["predictions"]
    assert_binary(response.json()["predictions"])


def test_csv_and_libsvm_requests(binary):
    csv = "\n".join(",".join(f"{v:g}" for v in row) for row in ROWS)
    response = binary.post(csv, "text/csv", accept="application/json")
    assert response.status_code == 200, response.text
    assert_binary(response.json()["predictions"])
    libsvm = "\n".join("0 " + " ".join(f"{i}:{v:g}" for i, v in enumerate(row) if v) for row in ROWS)
    response = binary.post(libsvm, "text/libsvm", accept="application/jsonlines")
    assert response.status_code == 200, response.text
    assert_binary([json.loads(line) for line in response.text.splitlines()])


def test_jsonlines_in_and_out(binary):
    lines = [json.dumps({"features": row}) for row in ROWS.tolist()]
    response = binary.post("\n".join(lines), "application/jsonlines", accept="application/jsonlines")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/jsonlines"
    out = response.text.splitlines()
    assert len(out) == len(ROWS) and json.loads(out[0]).keys() == {"score", "predicted_label"}
    assert_binary([json.loads(line) for line in out])


@pytest.mark.parametrize("sparse", [False, True])
def test_sdk_record_serializer_in_recordio_label_out(binary, sparse):
    body = sdk.sparse_recordio(sp.csr_matrix(ROWS)) if sparse else sdk.RecordSerializer().serialize(ROWS)
    response = binary.post(body, "application/x-recordio-protobuf", accept="application/x-recordio-protobuf")
    assert response.status_code == 200, response.text
    records = sdk.RecordDeserializer().deserialize(io.BytesIO(response.content), response.headers["Content-Type"])
    assert len(records) == len(ROWS) and all(list(r.features) == [] for r in records)
    assert all(sorted(r.label) == ["predicted_label", "score"] for r in records)
    scores = [r.label["score"].float32_tensor.values[0] for r in records]
    labels = [r.label["predicted_label"].float32_tensor.values[0] for r in records]
    np.testing.assert_allclose(scores, probabilities(), rtol=1e-5)
    assert labels == [float(p >= 0.5) for p in probabilities()]


def test_regressor_answers_score_only(regressor):
    response = regressor.post(json.dumps({"instances": [sparse_instance(r) for r in ROWS.tolist()]}),
                              "application/json")
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert all(list(p) == ["score"] for p in predictions)
    np.testing.assert_allclose([p["score"] for p in predictions], raw(), rtol=1e-5, atol=1e-5)
    response = regressor.post(sdk.RecordSerializer().serialize(ROWS), "application/x-recordio-protobuf",
                              accept="application/x-recordio-protobuf")
    records = sdk.records(response.content)
    assert all(list(r.label) == ["score"] for r in records)
    want = FMModel(W0, W, V, "regressor").predict(ROWS)
    assert response.content == b"".join(recordio.encode_record(p) for p in protobuf.encode_outputs(want))


@pytest.mark.parametrize("body,content_type,accept,status,fragment", [
    (b"1,2,3", "text/csv", None, 400, "must have 6 features; got 3"),
    (b"1,0,0,0,0,0", "text/plain", None, 415, "not supported"),
    (b"1,0,0,0,0,0", "text/csv", "text/csv", 406, "not supported"),
    (b"1,0,nan,0,0,0", "text/csv", None, 400, "NaN"),
    (b'{"instances": [{"data": {"features": {"keys": [9], "shape": [6], "values": [1]}}}]}', "application/json",
     None, 400, "a key is outside the shape [6]"),
])
def test_client_errors_keep_serving(binary, body, content_type, accept, status, fragment):
    response = binary.post(body, content_type, accept=accept)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert binary.post(b"1,0,0,1,0,0", "text/csv").status_code == 200


def test_serves_an_mxnet_written_row_sparse_model_tar_gz(tmp_path):
    """model.tar.gz with a model_algo-1 MXNet 1.9.1 wrote (save_checkpoint, row_sparse w1_weight and v, zipped)."""
    name = "mxnet_binary_classifier_row_sparse_model_algo-1"
    want = json.loads((FIXTURES / "expected.json").read_text())["fixtures"][name]
    (tmp_path / "model").mkdir()
    with tarfile.open(tmp_path / "model" / "model.tar.gz", "w:gz") as tar:
        tar.add(FIXTURES / name, arcname="model_algo-1")
    rows = np.array(want["inputs"], np.float32)
    with serve(ALG, tmp_path) as server:
        response = server.post("\n".join(",".join(f"{v:g}" for v in row) for row in rows), "text/csv")
        assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    np.testing.assert_allclose([p["score"] for p in predictions], want["mxnet_predictions"], rtol=1e-5)
    assert [p["predicted_label"] for p in predictions] == [int(p >= 0.5) for p in want["mxnet_predictions"]]
