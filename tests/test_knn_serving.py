"""k-NN serving through real HTTP: ``algobox knn serve`` under gunicorn, the SDK's codecs as the client."""

import io
import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier

import sdk
from common import protobuf, recordio
from common.spec import load_spec
from containers.knn import checks, knn, projection
from emulator import serve

RECORDIO = "application/x-recordio-protobuf"
K = 4


def hyperparameters(**values):
    raw = {"feature_dim": "64", "k": str(K), "predictor_type": "classifier", "sample_size": "5000", **values}
    return load_spec("knn").hyperparameters.parse({k: str(v) for k, v in raw.items()})


def csv_body(rows):
    buffer = io.StringIO()
    np.savetxt(buffer, rows, delimiter=",", fmt="%.8g")
    return buffer.getvalue().encode()


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.fixture(scope="module")
def queries(digits):
    return digits[0][1500:1520]


@pytest.fixture(scope="module")
def reference(digits):
    x, y = digits
    return KNeighborsClassifier(K, algorithm="brute").fit(x[:1500], y[:1500])


def save_model(root, plan, x, y):
    (root / "model").mkdir()
    matrix = knn.projection_matrix(plan)
    features = x if matrix is None else projection.apply(x, matrix)
    model = knn.build_model(plan, features, y, matrix)
    model.save(root / "model")
    return model


@pytest.fixture(scope="module")
def server(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("opt_ml")
    save_model(root, checks.plan(hyperparameters()), digits[0][:1500], digits[1][:1500])
    with serve("knn", root) as running:
        yield running


def assert_labels(predictions, reference, queries):
    assert [p["predicted_label"] for p in predictions] == reference.predict(queries).tolist()


def test_csv_in_json_out_by_default(server, reference, queries):
    response = server.post(csv_body(queries), "text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert list(document) == ["predictions"] and all(list(p) == ["predicted_label"] for p in document["predictions"])
    assert_labels(document["predictions"], reference, queries)


def test_csv_label_size_and_encoding_parameters(server, reference, queries):
    body = csv_body(np.column_stack([np.full(len(queries), 9.0), queries]))
    response = server.post(body, "text/csv; label_size=1; encoding=utf-8", "application/json")
    assert response.status_code == 200, response.text
    assert_labels(response.json()["predictions"], reference, queries)


@pytest.mark.parametrize("form", ["instances", "data", "sparse", "single"])
def test_json_request_forms(server, reference, queries, form):
    if form == "instances":
        document = {"instances": [{"features": row.tolist()} if i % 2 else {"data": {"features": {"values": row.tolist()}}}
                                  for i, row in enumerate(queries)]}
        expected = queries
    elif form == "data":
        document = {"data": {"features": {"values": queries[0].tolist()}}}
        expected = queries[:1]
    elif form == "single":
        document = {"features": queries[3].tolist()}
        expected = queries[3:4]
    else:
        rows = []
        for row in queries:
            keys = np.flatnonzero(row)
            rows.append({"data": {"features": {"keys": keys.tolist(), "shape": [64], "values": row[keys].tolist()}}})
        document = {"instances": rows}
        expected = queries
    response = server.post(json.dumps(document), "application/json")
    assert response.status_code == 200, response.text
    assert_labels(response.json()["predictions"], reference, expected)


def test_jsonlines_batch_transform_in_and_out(server, reference, queries):
    lines = [json.dumps({"features": row.tolist()}) if i % 2 else json.dumps({"data": {"features": {"values": row.tolist()}}})
             for i, row in enumerate(queries)]
    response = server.post("\n".join(lines) + "\n", "application/jsonlines", "application/jsonlines")
    assert response.status_code == 200, response.text
    out = response.text.splitlines()
    assert len(out) == len(queries)
    assert_labels([json.loads(line) for line in out], reference, queries)


@pytest.mark.parametrize("accept", ["application/json; verbose=true", "application/json;Verbose=True",
                                    "application/json ;  VERBOSE = TRUE", "application/jsonlines; verbose=true"])
def test_verbose_adds_ascending_distances_and_neighbour_labels(server, reference, queries, digits, accept):
    response = server.post(csv_body(queries), "text/csv", accept)
    assert response.status_code == 200, response.text
    if "jsonlines" in accept:
        predictions = [json.loads(line) for line in response.text.splitlines()]
    else:
        predictions = response.json()["predictions"]
    assert all(list(p) == ["predicted_label", "distances", "labels"] for p in predictions)
    distances, ids = reference.kneighbors(queries)
    np.testing.assert_allclose([p["distances"] for p in predictions], distances, rtol=1e-5, atol=1e-4)
    assert [p["labels"] for p in predictions] == digits[1][:1500][ids].tolist()
    assert all(p["distances"] == sorted(p["distances"]) for p in predictions)


def test_recordio_dense_and_sparse_in_recordio_out(server, reference, queries):
    for body in (sdk.RecordSerializer().serialize(queries), sdk.sparse_recordio(sp.csr_matrix(queries))):
        response = server.post(body, RECORDIO, RECORDIO)
        assert response.status_code == 200, response.text
        records = sdk.RecordDeserializer().deserialize(io.BytesIO(response.content), RECORDIO)
        assert [list(r.label) for r in records] == [["predicted_label"]] * len(queries)
        labels = [r.label["predicted_label"].float32_tensor.values[0] for r in records]
        assert labels == reference.predict(queries).tolist()


def test_recordio_verbose_and_batch_transform_with_recordio_split(server, reference, queries):
    """A RecordIO-split batch transform sends several whole records per request; each gets one answer."""
    body = b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(queries))
    for accept in ("application/x-recordio-protobuf; verbose=true", "application/jsonlines;verbose=True"):
        response = server.post(body, RECORDIO, accept)
        assert response.status_code == 200, response.text
        distances, _ = reference.kneighbors(queries)
        if accept.startswith(RECORDIO):
            records = sdk.records(response.content)
            assert len(records) == len(queries)
            assert sorted(records[0].label) == ["distances", "labels", "predicted_label"]
            got = [list(r.label["distances"].float32_tensor.values) for r in records]
        else:
            got = [json.loads(line)["distances"] for line in response.text.splitlines()]
        np.testing.assert_allclose(got, distances, rtol=1e-5, atol=1e-4)


def test_client_errors_are_4xx_and_the_server_keeps_serving(server, queries):
    assert server.post(csv_body(queries[:, :10]), "text/csv").status_code == 400
    bad = server.post(csv_body(queries[:2]), "text/csv", "text/html")
    assert bad.status_code == 406
    assert server.post(b"\x00\x01", "application/x-npy").status_code == 415
    assert server.post(b"{not json", "application/json").status_code == 400
    assert server.post(csv_body(queries[:2]), "text/csv").status_code == 200


def test_large_csv_request_is_one_batch(server, digits):
    x, _ = digits
    rows = np.tile(x, (3, 1))[:5000]
    response = server.post(csv_body(rows), "text/csv", "application/json")
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 5000


def test_edited_json_changes_the_endpoint_and_fewer_than_k_points(tmp_path, digits):
    x, y = digits
    save_model(tmp_path, checks.plan(hyperparameters()), x[:3], y[:3])
    meta = json.loads((tmp_path / "model" / "model_algo-1.json").read_text())
    meta["k"], meta["predictor_type"] = 10, "regressor"
    # written as the guide's example is, with Python's False
    (tmp_path / "model" / "model_algo-1.json").write_text(repr(meta))
    with serve("knn", tmp_path) as running:
        response = running.post(csv_body(x[10:14]), "text/csv", "application/json; verbose=true")
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [len(p["labels"]) for p in predictions] == [3] * 4
        assert [p["predicted_label"] for p in predictions] == pytest.approx([y[:3].mean()] * 4)
    assert "The index holds 3 points, fewer than k=10" in running.output


def test_reduced_ivfpq_model_serves_what_it_predicts_in_process(tmp_path, digits):
    x, y = digits
    plan = checks.plan(hyperparameters(index_type="faiss.IVFPQ", faiss_index_pq_m=8, sample_size=1500,
                                       dimension_reduction_type="fjlt", dimension_reduction_target=20))
    model = save_model(tmp_path, plan, x[:1500], y[:1500])
    expected = model.predict(x[1500:])
    with serve("knn", tmp_path) as running:
        response = running.post(csv_body(x[1500:]), "text/csv", "application/json;verbose=true")
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["predicted_label"] for p in predictions] == expected["predicted_label"].tolist()
    np.testing.assert_allclose([p["distances"] for p in predictions], expected["distances"], rtol=1e-5)
    assert np.mean(expected["predicted_label"] == y[1500:]) > 0.85


def test_three_million_rows_that_differ_answer_within_the_hardening_bounds(tmp_path_factory):
    """test_hardening_requests' 3,000,000-record k-NN case (a 6 MB CSV body of one-feature rows, k=3 among 200
    points, JSON out) with rows that differ from one another: a 6 MB body holds 3,000,000 rows only at about 2 bytes
    a row, so each row is a random digit, 9% of them negative (19 values), against points spread over
    [-10, 10], so that neighbours and labels change from row to row. The answer equals each value's one-record
    answer, in the body's order, and costs what the identical rows' does: the hardening bounds (under 2 s, or 8
    valid 6 MB CSV requests on a slower machine; under 200 MB of extra worker RSS)."""
    from test_hardening_requests import (LIMIT, REFERENCE_RATIO, SECONDS_BOUND, _start, check_bounds, post_within,
                                         the_worker)

    reference = _start("kmeans", tmp_path_factory.mktemp("reference"))
    reference_s = reference.reference_s
    reference.stop_context.__exit__(None, None, None)
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("varied")
    plan = checks.plan(hyperparameters(feature_dim=1, k=3, sample_size=200))
    points = rng.uniform(-10, 10, (200, 1)).astype(np.float32)
    model = save_model(root, plan, points, rng.integers(0, 4, 200).astype(np.float32))
    values = np.arange(-9, 10)
    rows = 3_000_000
    codes = rng.integers(9, 19, rows)  # values[codes]: 0..9
    negative = rng.random(rows) < 0.09
    codes[negative] = rng.integers(0, 9, negative.sum())  # -9..-1
    text = np.array([b"%d\n" % v for v in values], dtype=object)
    body = b"".join(text[codes])
    assert len(body) <= LIMIT and len(np.unique(codes)) == len(values)
    with serve("knn", root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}) as server:
        server.worker = the_worker(server)
        ones = [server.post(b"%d\n" % v, "text/csv", accept="application/json").content for v in values]
        bound = max(SECONDS_BOUND, REFERENCE_RATIO * reference_s)
        answer, seconds, extra_mb, after_mb = post_within(server, body, "text/csv", "application/json", bound)
    assert answer.status_code == 200, answer.text[:300]
    expected = model.predict(values[:, None].astype(np.float32))["predicted_label"]
    assert [json.loads(one)["predictions"][0]["predicted_label"] for one in ones] == expected.tolist()
    assert len(set(expected.tolist())) > 1
    head = b'{"predictions":['
    assert all(one.startswith(head) and one.endswith(b"]}") for one in ones), ones[0]
    pieces = np.array([one[len(head):-2] for one in ones], dtype=object)
    assert answer.content == head + b",".join(pieces[codes]) + b"]}"
    print(f"3,000,000 varied rows: {len(answer.content) / 1e6:.0f} MB in {seconds:.2f} s (bound {bound:.2f} s), "
          f"+{extra_mb:.0f} MB peak, +{after_mb:.0f} MB after")
    check_bounds("k-NN, 3,000,000 varied rows", seconds, bound, reference_s, extra_mb, after_mb)
