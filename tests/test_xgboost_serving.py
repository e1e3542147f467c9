"""XGBoost serving through the real ``algobox xgboost serve`` (gunicorn, HTTP): every request and response
type, missing values, SAGEMAKER_INFERENCE_OUTPUT, SHAP contributions, and the model files of SageMaker's
0.90 / 1.2 (pickles) and 1.7 (legacy binary) images."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_iris

from common import protobuf, recordio
from common.spec import load_spec
from common.serving.protocol import invoke
from containers.xgboost.model import XGBoostModel
from emulator import serve

FIXTURES = Path(__file__).parent / "fixtures" / "xgboost"


def write_model(root, booster):
    (root / "model").mkdir(parents=True, exist_ok=True)
    (root / "model" / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    return root


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return x.astype(np.float32), y.astype(np.float32)


@pytest.fixture(scope="module")
def binary(cancer):
    x, y = cancer
    return xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(x, y), 10)


@pytest.fixture(scope="module")
def binary_root(tmp_path_factory, binary):
    return write_model(tmp_path_factory.mktemp("binary"), binary)


def csv_body(x):
    buffer = io.StringIO()
    np.savetxt(buffer, x, delimiter=",", fmt="%.9g")
    return buffer.getvalue().encode()


def test_every_request_type_answers_like_the_library(binary_root, binary, cancer):
    x, _ = cancer
    rows = x[:20]
    expected = binary.predict(xgb.DMatrix(rows))
    libsvm_labelled = "\n".join("1 " + " ".join(f"{j + 1}:{v:.9g}" for j, v in enumerate(r)) for r in rows)
    libsvm_zero = "\n".join(" ".join(f"{j}:{v:.9g}" for j, v in enumerate(r)) for r in rows)
    libsvm_qid = "\n".join(f"1 qid:{i // 5} " + " ".join(f"{j + 1}:{v:.9g}" for j, v in enumerate(r))
                           for i, r in enumerate(rows))  # a ranking file's rows: the query id is ignored
    bodies = {
        "text/csv": csv_body(rows),
        "text/libsvm": libsvm_labelled.encode(),   # with labels, one-based (shifted, as the open container)
        "text/x-libsvm": libsvm_zero.encode(),     # without labels, zero-based
        "application/x-libsvm": libsvm_qid.encode(),  # with labels and qid:, one-based
        "application/x-recordio-protobuf": b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(rows)),
        "application/json": json.dumps({"instances": rows.tolist()}).encode(),
        "application/jsonlines": "\n".join(json.dumps({"features": r}) for r in rows.tolist()).encode(),
    }
    with serve("xgboost", binary_root) as server:
        for content_type, body in bodies.items():
            response = server.post(body, content_type)  # no Accept: text/csv, one prediction per line
            assert response.status_code == 200, (content_type, response.text)
            assert response.headers["Content-Type"].startswith("text/csv")
            got = np.array([float(v) for v in response.text.split("\n")])
            np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=content_type)
        document = server.post(bodies["text/csv"], "text/csv", "application/json").json()
        np.testing.assert_allclose([p["score"] for p in document["predictions"]], expected, atol=1e-6)
        lines = server.post(bodies["text/csv"], "text/csv", "application/jsonlines").text.split("\n")
        np.testing.assert_allclose([json.loads(line)["score"] for line in lines], expected, atol=1e-6)
        body = server.post(bodies["text/csv"], "text/csv", "application/x-recordio-protobuf").content
        features, _ = protobuf.decode_batch(list(recordio.iter_records(io.BytesIO(body))))
        np.testing.assert_allclose(features[:, 0], expected, atol=1e-6)
        # client errors are 4xx with a reason, and the server keeps serving
        assert server.post(b"1,2,3", "text/csv").status_code == 400
        assert server.post(b"1 2:x", "text/libsvm").status_code == 400
        assert server.post(b"{}", "application/json", "text/html").status_code in (400, 406)
        assert server.post(bodies["text/csv"], "text/csv", "text/html").status_code == 406
        assert server.post(b"a,b", "application/x-unknown").status_code == 415
        assert server.post(bodies["text/csv"], "text/csv").status_code == 200


def test_missing_values_in_requests(binary_root, binary, cancer):
    x, _ = cancer
    rows = x[:5].copy()
    rows[0, 3] = np.nan
    rows[2, :10] = np.nan
    expected = binary.predict(xgb.DMatrix(rows, missing=np.nan))
    csv = csv_body(rows).replace(b"nan", b"")  # empty fields
    with serve("xgboost", binary_root) as server:
        response = server.post(csv, "text/csv", "application/json")
        assert response.status_code == 200, response.text
        np.testing.assert_allclose([p["score"] for p in response.json()["predictions"]], expected, atol=1e-6)
        nulls = json.dumps({"instances": [[None if v != v else float(v) for v in r] for r in rows]})
        response = server.post(nulls.encode(), "application/json", "application/json")
        assert response.status_code == 200, response.text
        np.testing.assert_allclose([p["score"] for p in response.json()["predictions"]], expected, atol=1e-6)
        assert server.post(csv_body(rows).replace(b"nan", b"inf"), "text/csv").status_code == 400


def test_shap_contributions_behind_an_accept_parameter(binary_root, binary, cancer):
    x, _ = cancer
    rows = x[:4]
    shap = binary.predict(xgb.DMatrix(rows), pred_contribs=True)
    with serve("xgboost", binary_root) as server:
        response = server.post(csv_body(rows), "text/csv", "application/json;contributions=true")
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        np.testing.assert_allclose([p["contributions"] for p in predictions], shap, atol=1e-5)
        margin = binary.predict(xgb.DMatrix(rows), output_margin=True)
        np.testing.assert_allclose(np.sum(shap, axis=1), margin, atol=1e-4)  # SHAP adds up to the margin
        lines = server.post(csv_body(rows), "text/csv", "text/csv;contributions=true").text.split("\n")
        assert len(lines[0].split(",")) == 1 + rows.shape[1] + 1
        plain = server.post(csv_body(rows), "text/csv", "application/json").json()["predictions"][0]
        assert list(plain) == ["score"]


def test_multiclass_probabilities_and_selectable_outputs(tmp_path):
    x, y = load_iris(return_X_y=True)
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, xgb.DMatrix(x, y), 5)
    root = write_model(tmp_path, booster)
    probabilities = booster.predict(xgb.DMatrix(x[:6]))
    body = csv_body(x[:6])
    with serve("xgboost", root) as server:
        lines = server.post(body, "text/csv").text.split("\n")
        np.testing.assert_allclose([[float(v) for v in line.split(",")] for line in lines], probabilities, atol=1e-6)
        scores = [p["score"] for p in server.post(body, "text/csv", "application/json").json()["predictions"]]
        np.testing.assert_allclose(scores, probabilities, atol=1e-6)
    env = {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability,probabilities,labels,predicted_score"}
    with serve("xgboost", root, env=env) as server:
        predictions = server.post(body, "text/csv", "application/json").json()["predictions"]
        assert [p["predicted_label"] for p in predictions] == probabilities.argmax(axis=1).tolist()
        np.testing.assert_allclose([p["probability"] for p in predictions], probabilities.max(axis=1), atol=1e-6)
        np.testing.assert_allclose([p["probabilities"] for p in predictions], probabilities, atol=1e-6)
        assert predictions[0]["labels"] == [0, 1, 2]
        assert predictions[0]["predicted_score"] is None  # a regression key: the open container's NaN
        line = server.post(body, "text/csv", "text/csv").text.split("\n")[0]
        assert line.startswith(f"{probabilities[0].argmax()},") and '"[0, 1, 2]"' in line
        body = server.post(body, "text/csv", "application/x-recordio-protobuf").content
        assert len(list(recordio.iter_records(io.BytesIO(body)))) == 6


def test_selectable_binary_outputs_in_process(binary_root, binary, cancer, monkeypatch):
    x, _ = cancer
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label, probabilities,raw_score")
    model = XGBoostModel.load(binary_root / "model")
    spec = load_spec("xgboost")
    p = binary.predict(xgb.DMatrix(x[:3]))
    document = json.loads(invoke(model, spec, csv_body(x[:3]), "text/csv", "application/json").body)
    first = document["predictions"][0]
    assert first["predicted_label"] == int(p[0] > 0.5)
    np.testing.assert_allclose(first["probabilities"], [1 - p[0], p[0]], atol=1e-6)
    np.testing.assert_allclose(first["raw_score"], p[0], atol=1e-6)
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label,probabilty")
    with pytest.raises(Exception, match="unknown output"):
        XGBoostModel.load(binary_root / "model")


@pytest.mark.parametrize("folder", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_models_of_sagemakers_older_images_load_and_predict(tmp_path, folder):
    """0.90-x and 1.2-x images pickled the Booster; 1.3-1 ... 1.7-1 wrote 1.x's legacy binary. Today's library
    reads neither; their predictions here equal those release's own (recorded when the fixtures were made)."""
    shutil.copytree(FIXTURES / folder, tmp_path / "model")
    x = np.loadtxt(FIXTURES / "data.csv", delimiter=",")
    expected = np.loadtxt(FIXTURES / folder / "expected.csv", delimiter=",").reshape(len(x), -1)
    model = XGBoostModel.load(tmp_path / "model")
    assert model.source_format == ("pickle" if folder.startswith("pickle") else "legacy binary")
    got = model.raw_predict(x.astype(np.float32)).reshape(len(x), -1)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_an_old_pickle_through_http_with_nan(tmp_path):
    shutil.copytree(FIXTURES / "pickle-0.90-binary-logistic", tmp_path / "model")
    x = np.loadtxt(FIXTURES / "data.csv", delimiter=",")[:10]
    expected = np.loadtxt(FIXTURES / "pickle-0.90-binary-logistic" / "expected.csv", delimiter=",")[:10]
    with serve("xgboost", tmp_path) as server:
        response = server.post(csv_body(x).replace(b"nan", b""), "text/csv")
        assert response.status_code == 200, response.text
        np.testing.assert_allclose([float(v) for v in response.text.split("\n")], expected, atol=1e-6)


def test_unpickling_is_restricted_to_the_booster(tmp_path):
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "xgboost-model").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(Exception, match="may not reference"):
        XGBoostModel.load(tmp_path / "model")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("orjson_installed", [True, False])
def test_csv_scores_are_each_values_repr(orjson_installed, monkeypatch):
    from common.serving.codecs import layout
    from containers.xgboost import codecs

    if not orjson_installed:
        monkeypatch.setattr(layout, "orjson", None)
    rng = np.random.default_rng(5)
    edge = [0.0, -0.0, 1e-4, 9.99e-5, 1e-5, 1.5e-7, 0.5, 1.0, 123456.789, 1e16, 9.9e15, -1.2e20, np.nan, np.inf,
            -np.inf, 5e-324]
    values = np.concatenate([edge, rng.random(500), rng.random(300) * 1e-6]).astype(np.float32)
    scores = {"score": values}
    body = b"".join(codecs.format_csv(scores))
    assert body.decode().split("\n") == [repr(float(v)) for v in values.astype(np.float64)]
