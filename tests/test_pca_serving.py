"""PCA serving through real HTTP: ``algobox pca serve`` under gunicorn, the SDK as the client."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import sdk
from common import ndarray, protobuf, recordio
from containers.pca.model import PCAModel
from emulator import serve

FIXTURES = Path(__file__).parent / "fixtures"
V = np.array([[0.6, 0.0], [0.8, 0.0], [0.0, 0.6], [0.0, 0.8]], dtype=np.float32)
S = np.array([2.0, 5.0], dtype=np.float32)
MEAN = np.array([[1.0, -1.0, 0.5, 2.0]], dtype=np.float32)
POINTS = np.array([[1, 0, 0, 1], [9, 9, 11, 10], [-5, 4, -5, 6], [0.5, 0, 0.5, 0]], dtype=np.float32)


def expected(points=POINTS):
    return (points - MEAN) @ V


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("opt_ml")
    (root / "model").mkdir()
    PCAModel(V, S, MEAN).save(root / "model")
    with serve("pca", root) as running:
        yield running


def assert_projections(rows, points=POINTS):
    assert len(rows) == len(points)
    np.testing.assert_allclose([row["projection"] for row in rows], expected(points), rtol=1e-5, atol=1e-5)


def test_csv_in_json_out_by_default(server):
    body = "\n".join(",".join(str(v) for v in row) for row in POINTS)
    response = server.post(body, "text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert list(document) == ["projections"] and list(document["projections"][0]) == ["projection"]
    assert_projections(document["projections"])


@pytest.mark.parametrize("document", [
    {"instances": [{"features": row} for row in POINTS.tolist()]},
    {"instances": [{"data": {"features": {"values": row}}} for row in POINTS.tolist()]},
    {"instances": [{"data": {"features": {"keys": [i for i, v in enumerate(row) if v], "shape": [4],
                                          "values": [v for v in row if v]}}} for row in POINTS.tolist()]},
])
def test_json_forms(server, document):
    response = server.post(json.dumps(document), "application/json", accept="application/json")
    assert response.status_code == 200, response.text
    assert_projections(response.json()["projections"])


def test_jsonlines_in_and_out(server):
    lines = [json.dumps({"features": row}) for row in POINTS.tolist()]
    response = server.post("\n".join(lines) + "\n", "application/jsonlines", accept="application/jsonlines")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/jsonlines"
    out = response.text.splitlines()
    assert not response.text.endswith("\n") and all(list(json.loads(line)) == ["projection"] for line in out)
    assert_projections([json.loads(line) for line in out])


def test_sdk_record_serializer_and_deserializer(server):
    body = sdk.RecordSerializer().serialize(POINTS)
    response = server.post(body, "application/x-recordio-protobuf", accept="application/x-recordio-protobuf")
    assert response.status_code == 200
    records = sdk.RecordDeserializer().deserialize(io.BytesIO(response.content), response.headers["Content-Type"])
    assert len(records) == 4 and all(list(r.features) == [] for r in records)
    got = [list(r.label["projection"].float32_tensor.values) for r in records]
    np.testing.assert_allclose(got, expected(), rtol=1e-6, atol=1e-6)
    want = {"projection": PCAModel(V, S, MEAN).predict(POINTS)["projection"]}
    assert response.content == b"".join(recordio.encode_record(p) for p in protobuf.encode_outputs(want))


def test_sparse_recordio_request(server):
    response = server.post(sdk.sparse_recordio(sp.csr_matrix(POINTS)), "application/x-recordio-protobuf",
                           accept="application/jsonlines")
    assert response.status_code == 200
    assert_projections([json.loads(line) for line in response.text.splitlines()])


@pytest.mark.parametrize("body,content_type,accept,status,fragment", [
    (b"1,2,3", "text/csv", None, 400, "must have 4 features; got 3"),
    (b"1,2,3,4", "text/plain", None, 415, "not supported"),
    (b"1,2,3,4", "text/csv", "text/csv", 406, "not supported"),
    (b"1,2,inf,4", "text/csv", None, 400, "NaN"),
    (b'{"instances": [{"features": [1, 2]}]}', "application/json", None, 400, "must have 4 features; got 2"),
])
def test_client_errors(server, body, content_type, accept, status, fragment):
    response = server.post(body, content_type, accept=accept)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert server.post(b"1,0,0,1", "text/csv").status_code == 200


def test_serves_a_sagemaker_model_tar_gz(tmp_path):
    """A model.tar.gz holding a model_algo-1 written by MXNet's mx.nd.save (v, s, mean) serves unchanged."""
    fixture = FIXTURES / "mxnet" / "pca_model_algo-1"
    arrays = ndarray.load(fixture)
    (tmp_path / "model").mkdir()
    with tarfile.open(tmp_path / "model" / "model.tar.gz", "w:gz") as tar:
        tar.add(fixture, arcname="model_algo-1")
    point = np.array([[2.0, 3.0, -1.0, 0.0, 90.0]], np.float32)
    with serve("pca", tmp_path) as server:
        response = server.post(",".join(str(v) for v in point[0]), "text/csv")
        assert response.status_code == 200, response.text
        got = response.json()["projections"][0]["projection"]
    np.testing.assert_allclose(got, ((point - arrays["mean"]) @ arrays["v"])[0], rtol=1e-6)
