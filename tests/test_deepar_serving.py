"""DeepAR served through the real ``algobox deepar serve`` (HTTP): the guide's request/response, batch transform."""

import json

import numpy as np
import pytest

from emulator import Job, serve
from test_deepar_training import hp, jsonl, make_series

ALG = "deepar"
P = 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained with one categorical and one dynamic feature."""
    job = Job(tmp_path_factory.mktemp("deepar-serving") / "opt_ml")
    job.add_file("train", "series.json", jsonl(make_series(dynamic=True)))
    job.write_config(hp(epochs=15, learning_rate=0.01), {"train": {"ContentType": "application/jsonlines"}})
    result = job.train(ALG)
    assert result.returncode == 0, result.output[-3000:]
    return job.root


@pytest.fixture(scope="module")
def server(trained):
    with serve(ALG, trained, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}) as running:
        yield running


def instances(n=3, length=40):
    out = []
    for r in make_series(n, length=length + P, seed=5, dynamic=True):
        out.append({"start": r["start"], "target": r["target"][:length], "cat": r["cat"],
                    "dynamic_feat": r["dynamic_feat"]})
    return out


def test_json_request_answers_the_guides_response(server):
    configuration = {"num_samples": 30, "output_types": ["mean", "quantiles", "samples"], "quantiles": ["0.5", "0.9"]}
    response = server.post(json.dumps({"instances": instances(), "configuration": configuration}), "application/json")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    for forecast in predictions:
        assert set(forecast) == {"mean", "quantiles", "samples"}
        assert set(forecast["quantiles"]) == {"0.5", "0.9"}
        samples = np.asarray(forecast["samples"])
        assert samples.shape == (30, P)
        assert np.allclose(forecast["mean"], samples.mean(axis=0), rtol=1e-4, atol=1e-4)
        assert np.allclose(forecast["quantiles"]["0.9"], np.quantile(samples, 0.9, axis=0), rtol=1e-4, atol=1e-4)
        assert np.all(np.asarray(forecast["quantiles"]["0.9"]) >= np.asarray(forecast["quantiles"]["0.5"]))
        assert 5 < np.mean(forecast["mean"]) < 60  # the series' levels are 20 to 32


def test_without_configuration_the_default_is_mean_and_nine_quantiles(server):
    response = server.post(json.dumps({"instances": instances(1)}), "application/json")
    assert response.status_code == 200, response.text[:500]
    forecast = response.json()["predictions"][0]
    assert set(forecast) == {"mean", "quantiles"}
    assert list(forecast["quantiles"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]


@pytest.mark.parametrize("change, words", [
    (lambda i: i.pop("cat"), "instance 0 has no 'cat'"),
    (lambda i: i.update(cat=[7]), "cat[0]=7 was not seen in training"),
    (lambda i: i.pop("dynamic_feat"), "instance 0 has no 'dynamic_feat'"),
    (lambda i: i.update(dynamic_feat=[i["dynamic_feat"][0][:-1]]), "len(target) + prediction_length (46)"),
    (lambda i: i.update(start="2021-02-30 00:00:00"), "'start'"),
    (lambda i: i.update(target=[1, "a"]), "'target' holds 'a'"),
])
def test_bad_instances_are_400_with_the_reason(server, change, words):
    instance = instances(1)[0]
    change(instance)
    response = server.post(json.dumps({"instances": [instance]}), "application/json")
    assert response.status_code == 400 and words in response.json()["error"], response.text[:300]
    assert server.post(json.dumps({"instances": instances(1)}), "application/json").status_code == 200


@pytest.mark.parametrize("configuration, words", [
    ({"num_samples": 0}, "num_samples"), ({"output_types": ["median"]}, "output_types"),
    ({"quantiles": ["1.5"]}, "quantiles"), ({"samples": 3}, "unknown field"),
])
def test_bad_configuration_is_400(server, configuration, words):
    response = server.post(json.dumps({"instances": instances(1), "configuration": configuration}),
                           "application/json")
    assert response.status_code == 400 and words in response.json()["error"], response.text[:300]


def test_batch_transform_reads_deepar_inference_config(trained):
    config = {"num_samples": 20, "output_types": ["quantiles", "samples"], "quantiles": ["0.2", "0.8"]}
    body = jsonl(instances(4)).rstrip(b"\n")
    with serve(ALG, trained, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1",
                                  "DEEPAR_INFERENCE_CONFIG": json.dumps(config)}) as batch:
        response = batch.post(body, "application/jsonlines", accept="application/jsonlines")
    assert response.status_code == 200, response.text[:300]
    lines = response.content.split(b"\n")
    assert len(lines) == 4 and not response.content.endswith(b"\n")
    for line in lines:
        forecast = json.loads(line)
        assert set(forecast) == {"quantiles", "samples"} and set(forecast["quantiles"]) == {"0.2", "0.8"}
        assert np.asarray(forecast["samples"]).shape == (20, P)


def test_batch_transform_default_configuration(server):
    response = server.post(jsonl(instances(2)), "application/jsonlines", accept="application/jsonlines")
    assert response.status_code == 200, response.text[:300]
    lines = [json.loads(line) for line in response.content.split(b"\n")]
    assert len(lines) == 2 and all(set(f) == {"mean", "quantiles"} and len(f["quantiles"]) == 9 for f in lines)


def test_a_hundred_series_in_one_request(server):
    body = json.dumps({"instances": instances(100),
                       "configuration": {"num_samples": 100, "output_types": ["mean"]}})
    response = server.post(body, "application/json")
    assert response.status_code == 200 and len(response.json()["predictions"]) == 100
