"""k-means serving through real HTTP: ``algobox kmeans serve`` under gunicorn, the SDK as the client."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import requests
import scipy.sparse as sp

import sdk
from common import ndarray
from containers.kmeans.model import KMeansModel
from emulator import serve

FIXTURES = Path(__file__).parent / "fixtures"
CENTROIDS = np.array([[0, 0, 0, 0], [10, 10, 10, 10], [-5, 5, -5, 5]], dtype=np.float32)
POINTS = np.array([[1, 0, 0, 1], [9, 9, 11, 10], [-5, 4, -5, 6], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)


def expected(points=POINTS):
    return KMeansModel(CENTROIDS).predict(points)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("opt_ml")
    (root / "model").mkdir()
    ndarray.save(root / "model" / "model_algo-1", [CENTROIDS])
    with serve("kmeans", root) as running:
        yield running


def assert_predictions(predictions, points=POINTS):
    want = expected(points)
    assert [p["closest_cluster"] for p in predictions] == want["closest_cluster"].tolist()
    assert np.allclose([p["distance_to_cluster"] for p in predictions], want["distance_to_cluster"], rtol=1e-5)


def test_ping_and_execution_parameters(server):
    ping = server.get("/ping")
    assert ping.status_code == 200 and ping.content == b""
    params = server.get("/execution-parameters").json()
    assert params == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_csv_in_json_out_by_default(server):
    body = "\n".join(",".join(str(v) for v in row) for row in POINTS)
    response = server.post(body, "text/csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert isinstance(document["predictions"][0]["closest_cluster"], float)
    assert_predictions(document["predictions"])


@pytest.mark.parametrize("document", [
    {"instances": [{"features": row} for row in POINTS.tolist()]},
    {"instances": [{"data": {"features": {"values": row}}} for row in POINTS.tolist()]},
    {"instances": [{"data": {"features": {"keys": [i for i, v in enumerate(row) if v],
                                          "shape": [4], "values": [v for v in row if v]}}}
                   for row in POINTS.tolist()]},
])
def test_json_forms(server, document):
    response = server.post(json.dumps(document), "application/json", accept="application/json")
    assert response.status_code == 200, response.text
    assert_predictions(response.json()["predictions"])


def test_jsonlines_in_and_out(server):
    lines = [json.dumps({"features": POINTS[0].tolist()}),
             json.dumps({"data": {"features": {"values": POINTS[1].tolist()}}}),
             json.dumps({"data": {"features": {"keys": [0, 1, 2, 3], "shape": [4], "values": POINTS[2].tolist()}}}),
             json.dumps({"features": POINTS[3].tolist()})]
    response = server.post("\n".join(lines) + "\n", "application/jsonlines", accept="application/jsonlines")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/jsonlines"
    out = response.text.splitlines()
    assert len(out) == 4 and not response.text.endswith("\n")  # the platform appends one per response
    assert_predictions([json.loads(line) for line in out])


def test_sdk_record_serializer_and_deserializer(server):
    body = sdk.RecordSerializer().serialize(POINTS)
    response = server.post(body, "application/x-recordio-protobuf", accept="application/x-recordio-protobuf")
    assert response.status_code == 200
    records = sdk.RecordDeserializer().deserialize(io.BytesIO(response.content), response.headers["Content-Type"])
    assert len(records) == 4
    want = expected()
    got_cluster = [r.label["closest_cluster"].float32_tensor.values[0] for r in records]
    got_distance = [r.label["distance_to_cluster"].float32_tensor.values[0] for r in records]
    assert got_cluster == want["closest_cluster"].tolist()
    assert np.allclose(got_distance, want["distance_to_cluster"], rtol=1e-6)
    # byte for byte what the built-in writes: one Record per row, label map of float32 tensors
    from common import protobuf, recordio
    expected_bytes = b"".join(recordio.encode_record(p) for p in protobuf.encode_outputs(want))
    assert response.content == expected_bytes


def test_sparse_recordio_request(server):
    body = sdk.sparse_recordio(sp.csr_matrix(POINTS))
    response = server.post(body, "application/x-recordio-protobuf")
    assert response.status_code == 200
    assert_predictions(response.json()["predictions"])


def test_accept_wildcard_and_verbose_params(server):
    body = "1,0,0,1"
    assert server.post(body, "text/csv", accept="*/*").headers["Content-Type"] == "application/json"
    response = server.post(body, "text/csv", accept="application/jsonlines;q=0.9, application/json;q=0.1")
    assert response.headers["Content-Type"] == "application/jsonlines"


@pytest.mark.parametrize("body,content_type,accept,status,fragment", [
    (b"1,2,3,4", "text/plain", None, 415, "not supported"),
    (b"1,2,3,4", "text/csv", "text/html", 406, "not supported"),
    (b"1,2,3", "text/csv", None, 400, "must have 4 features; got 3"),
    (b"1,2,x,4", "text/csv", None, 400, "Malformed CSV"),
    (b"1,2,nan,4", "text/csv", None, 400, "NaN"),
    (b"", "text/csv", None, 400, "empty"),
    (b'{"instances": [', "application/json", None, 400, "not valid JSON"),
    (b'{"rows": []}', "application/json", None, 400, "needs 'instances'"),
    (b'{"instances": [{"features": [1, 2]}, {"features": [1, 2, 3]}]}', "application/json", None, 400,
     "different feature counts"),
    (b"\xce\xd7\x23\x0a\xff\xff", "application/x-recordio-protobuf", None, 400, "Malformed recordIO"),
])
def test_client_errors_and_server_keeps_serving(server, body, content_type, accept, status, fragment):
    response = server.post(body, content_type, accept=accept)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert server.post(b"1,0,0,1", "text/csv").status_code == 200


def test_payload_over_limit_is_413(server):
    body = b"1,0,0,1\n" * (7 * 1024 * 1024 // 8)
    response = server.post(body, "text/csv")
    assert response.status_code == 413
    assert server.get("/ping").status_code == 200


def test_batch_transform_lines(server):
    """SplitType Line: a mini-batch of many CSV lines, answered as JSON lines assembled by line."""
    rng = np.random.default_rng(0)
    points = rng.normal(scale=6, size=(500, 4)).astype(np.float32)
    body = "\n".join(",".join(f"{v:.6g}" for v in row) for row in points)
    response = server.post(body, "text/csv", accept="application/jsonlines")
    lines = response.text.splitlines()
    assert len(lines) == 500
    assert_predictions([json.loads(line) for line in lines], points.astype(np.float64).round(5).astype(np.float32))


def test_serves_a_sagemaker_model_tar_gz(tmp_path):
    """A model.tar.gz from Amazon SageMaker's kmeans (written by MXNet) serves unchanged."""
    fixture = FIXTURES / "mxnet" / "kmeans_model_algo-1"
    centers = ndarray.load(fixture)[0]
    (tmp_path / "model").mkdir()
    with tarfile.open(tmp_path / "model" / "model.tar.gz", "w:gz") as tar:
        tar.add(fixture, arcname="model_algo-1")
    with serve("kmeans", tmp_path) as server:
        point = centers[1] + 0.01
        response = server.post(",".join(str(v) for v in point), "text/csv")
        assert response.status_code == 200
        assert response.json()["predictions"][0]["closest_cluster"] == 1.0


def test_sigterm_stops_server_within_30_s(tmp_path):
    (tmp_path / "model").mkdir()
    ndarray.save(tmp_path / "model" / "model_algo-1", [CENTROIDS])
    with serve("kmeans", tmp_path) as server:
        assert server.post(b"1,0,0,1", "text/csv").status_code == 200
        seconds = server.stop()
        assert seconds < 30
        assert server.process.returncode == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/ping", timeout=2)
