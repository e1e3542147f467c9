"""Random Cut Forest serving through real HTTP: ``algobox randomcutforest serve`` under gunicorn."""

import io
import json
import tarfile

import numpy as np
import pytest
import scipy.sparse as sp

import sdk
from containers.randomcutforest import forest as F
from containers.randomcutforest.model import RandomCutForestModel
from emulator import serve

RECORDIO = "application/x-recordio-protobuf"
POINTS = np.array([[0, 0, 0, 0], [0.5, -0.2, 0, 1], [8, 8, 0, -8], [0, 0, 3, 0]], dtype=np.float32)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 4)).astype(np.float32)
    forest = F.build_forest(F.split_sample(x, 50, 64, rng), rng)
    return RandomCutForestModel(forest, 64)


@pytest.fixture(scope="module")
def server(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("opt_ml")
    (root / "model").mkdir()
    model.save(root / "model")
    with serve("randomcutforest", root) as running:
        yield running


def assert_scores(values, model, points=POINTS):
    np.testing.assert_allclose(values, model.predict(points)["score"], rtol=1e-6)


def test_csv_in_json_scores_out_by_default(server, model):
    response = server.post("\n".join(",".join(str(v) for v in row) for row in POINTS), "text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert list(document) == ["scores"] and all(list(row) == ["score"] for row in document["scores"])
    values = [row["score"] for row in document["scores"]]
    assert_scores(values, model)
    assert values[2] > 2 * values[0]  # the far point is the anomaly


@pytest.mark.parametrize("document", [
    {"instances": [{"features": row} for row in POINTS.tolist()]},
    {"instances": [{"data": {"features": {"values": row}}} for row in POINTS.tolist()]},
    {"instances": [{"data": {"features": {"keys": [i for i, v in enumerate(row) if v], "shape": [4],
                                          "values": [v for v in row if v]}}} for row in POINTS.tolist()]},
])
def test_json_forms(server, model, document):
    response = server.post(json.dumps(document), "application/json", accept="application/json")
    assert response.status_code == 200, response.text
    assert_scores([row["score"] for row in response.json()["scores"]], model)


def test_jsonlines_in_and_out(server, model):
    lines = [json.dumps({"features": row}) for row in POINTS.tolist()]
    response = server.post("\n".join(lines) + "\n", "application/jsonlines", accept="application/jsonlines")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/jsonlines"
    out = [json.loads(line) for line in response.text.splitlines()]
    assert all(list(row) == ["score"] for row in out)
    assert_scores([row["score"] for row in out], model)


def test_sdk_predictor_serializers_give_label_score(server, model):
    body = sdk.RecordSerializer().serialize(POINTS)
    response = server.post(body, RECORDIO, accept=RECORDIO)
    assert response.status_code == 200
    records = sdk.RecordDeserializer().deserialize(io.BytesIO(response.content), response.headers["Content-Type"])
    assert len(records) == 4 and all(list(r.features) == [] for r in records)
    assert all(list(r.label) == ["score"] for r in records)
    assert_scores([r.label["score"].float32_tensor.values[0] for r in records], model)


def test_sparse_recordio_request(server, model):
    response = server.post(sdk.sparse_recordio(sp.csr_matrix(POINTS)), RECORDIO, accept="application/jsonlines")
    assert response.status_code == 200
    assert_scores([json.loads(line)["score"] for line in response.text.splitlines()], model)


def test_five_megabyte_csv_request(server, model):
    rows = np.random.default_rng(1).normal(size=(135_000, 4)).astype(np.float32)
    buffer = io.StringIO()
    np.savetxt(buffer, rows, delimiter=",", fmt="%.6f")
    body = buffer.getvalue().encode()
    assert len(body) > 5_000_000
    response = server.post(body, "text/csv", accept="application/jsonlines")
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert len(lines) == rows.shape[0]
    assert_scores([json.loads(line)["score"] for line in lines[-100:]], model, rows[-100:])


@pytest.mark.parametrize("body,content_type,accept,status,fragment", [
    (b"1,2,3", "text/csv", None, 400, "must have 4 features; got 3"),
    (b"1,2,3,4", "text/plain", None, 415, "not supported"),
    (b"1,2,3,4", "text/csv", "text/csv", 406, "not supported"),
    (b"1,2,nan,4", "text/csv", None, 400, "NaN"),
])
def test_client_errors_keep_the_server_serving(server, body, content_type, accept, status, fragment):
    response = server.post(body, content_type, accept=accept)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert server.post(b"1,0,0,1", "text/csv").status_code == 200


def test_serves_a_model_tar_gz(tmp_path, model):
    (tmp_path / "build").mkdir()
    model.save(tmp_path / "build")
    (tmp_path / "model").mkdir()
    with tarfile.open(tmp_path / "model" / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "build" / "model_algo-1", arcname="model_algo-1")
    with serve("randomcutforest", tmp_path) as server:
        response = server.post(b"8,8,0,-8", "text/csv")
        assert response.status_code == 200, response.text
        assert_scores([response.json()["scores"][0]["score"]], model, POINTS[2:3])


def test_concurrent_requests_are_answered_under_numbas_workqueue_threading_layer(tmp_path, model):
    # a slim image has neither libgomp nor tbb, so numba runs its workqueue layer, which aborts the process when
    # two threads launch a parallel kernel at once; a worker's threads answer requests concurrently
    from concurrent.futures import ThreadPoolExecutor

    (tmp_path / "model").mkdir()
    model.save(tmp_path / "model")
    rows = np.random.default_rng(5).normal(size=(10_000, 4)).astype(np.float32)
    body = "\n".join(",".join(f"{v:.4f}" for v in row) for row in rows).encode()
    with serve("randomcutforest", tmp_path, env={"NUMBA_THREADING_LAYER": "workqueue"}) as running:
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: running.post(body, "text/csv"), range(12)))
        assert [r.status_code for r in responses] == [200] * 12
        expected = model.predict(np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.float32))["score"]
        for response in responses:
            np.testing.assert_allclose([s["score"] for s in response.json()["scores"]], expected, rtol=1e-6)


def test_six_megabytes_of_rows_that_differ_answer_within_the_hardening_bounds(tmp_path_factory):
    """test_hardening_requests' huge RCF case (a 6 MB CSV body of one-feature rows, its 50 x 64 model, JSON out)
    with rows that differ: repeated rows are scored once each (distinct.py), so the forest's worst request is the
    one with the most distinct rows a 6 MB body holds. Distinct one-feature values need ever more characters
    (10 of one digit, 100 of two, ...), so such a body holds fewer than 1,000,000 of them: here 786,432 rows of
    ``d.ddddd`` in [0, 10) (1,000,000 values; a slice of 262,144 rows holds ~230,000 of them, too many to
    deduplicate: scored as they are, sorted), partly inside the training data's range, mostly outside it. Bounds: test_hardening_requests' (under 2 s, or 8 valid
    6 MB CSV requests on a slower machine; under 200 MB of extra worker RSS)."""
    from test_hardening_requests import (LIMIT, REFERENCE_RATIO, SECONDS_BOUND, _start, check_bounds, post_within,
                                         the_worker, write_model)

    reference = _start("kmeans", tmp_path_factory.mktemp("reference"))
    reference_s = reference.reference_s
    reference.stop_context.__exit__(None, None, None)
    root = tmp_path_factory.mktemp("varied")
    (root / "model").mkdir()
    write_model("randomcutforest", root / "model", 1)
    rows = LIMIT // len(b"1.23456\n")
    values = np.random.default_rng(11).integers(0, 1_000_000, rows) / 100_000
    body = "\n".join(f"{value:.5f}" for value in values).encode() + b"\n"
    assert len(body) <= LIMIT
    with serve("randomcutforest", root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}) as server:
        server.worker = the_worker(server)
        assert server.post(b"1\n", "text/csv").status_code == 200
        bound = max(SECONDS_BOUND, REFERENCE_RATIO * reference_s)
        answer, seconds, extra_mb, after_mb = post_within(server, body, "text/csv", "application/json", bound)
    assert answer.status_code == 200, answer.text[:300]
    scores = np.array([record["score"] for record in json.loads(answer.content)["scores"]], np.float32)
    expected = RandomCutForestModel.load(root / "model").predict(values.astype(np.float32)[:, None])["score"]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    print(f"{rows:,} rows that differ: {len(answer.content) / 1e6:.0f} MB in {seconds:.2f} s (bound {bound:.2f} s), "
          f"+{extra_mb:.0f} MB peak, +{after_mb:.0f} MB after")
    check_bounds(f"RCF, {rows:,} rows that differ", seconds, bound, reference_s, extra_mb, after_mb)
