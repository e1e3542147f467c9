"""k-NN training through the real ``algobox knn train`` subprocess on an emulated platform."""

import re

import numpy as np
import pytest
import scipy.sparse as sp
from sagemaker.amazon.knn import KNN
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

import sdk
from common.spec import load_spec
from containers.knn.model import KNNModel
from bodies import csv_bytes
from emulator import Job, free_port

RECORDIO = "application/x-recordio-protobuf"
BASE = {"feature_dim": 64, "k": 5, "predictor_type": "classifier", "sample_size": 5000, "mini_batch_size": 256}


def score_of(output, name):
    found = re.findall(rf"#test_score \(algo-1\) : \('{name}', (\S+)\)", output)
    assert len(found) == 1, output
    return float(found[0])


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.float32)


def test_csv_file_mode_flat_matches_sklearn(job, digits):
    x, y = digits
    job.add_file("train", "train.csv", csv_bytes(y[:1300], x[:1300]))
    job.add_file("test", "test.csv", csv_bytes(y[1300:], x[1300:]))
    job.write_config(sdk.estimator_hyperparameters(KNN, 64, 256, k=5, sample_size=5000, predictor_type="classifier"),
                     {"train": {"ContentType": "text/csv; label_size=1"},
                      "test": {"ContentType": "text/csv; label_size=1"}})
    result = job.train("knn")
    assert result.returncode == 0, result.output
    assert result.model_files == ["model_algo-1", "model_algo-1.json", "model_algo-1.labels"]
    reference = KNeighborsClassifier(5, algorithm="brute").fit(x[:1300], y[:1300])
    expected = reference.score(x[1300:], y[1300:])
    assert score_of(result.output, "accuracy") == pytest.approx(expected, abs=2 / 497)  # at most 2 boundary ties
    assert re.search(r"test mini-batch 2: 241 records, accuracy", result.output)
    definitions = {d["Name"]: d["Regex"] for d in load_spec("knn").metric("test:accuracy").definitions()}
    assert float(re.search(definitions["test:accuracy"], result.output).group(1)) == score_of(result.output, "accuracy")
    model = KNNModel.load(result.model_dir)
    assert model.index.ntotal == 1300 and (model.k, model.predictor_type) == (5, "classifier")
    agree = (model.predict(x[1300:])["predicted_label"] == reference.predict(x[1300:])).mean()
    assert agree >= 0.995


def test_recordio_pipe_mode_regressor_reports_mse(job, digits):
    x, y = digits
    job.add_pipe("train", [sdk.dense_recordio(x[:1000], y[:1000])])
    job.add_pipe("test", [sdk.dense_recordio(x[1000:1200], y[1000:1200])])
    job.write_config({**BASE, "predictor_type": "regressor", "k": 3},
                     {"train": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"},
                      "test": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"}})
    result = job.train("knn")
    assert result.returncode == 0, result.output
    predicted = KNeighborsRegressor(3, algorithm="brute").fit(x[:1000], y[:1000]).predict(x[1000:1200])
    assert score_of(result.output, "mse") == pytest.approx(np.mean((predicted - y[1000:1200]) ** 2), rel=0.02)


def test_sparse_recordio_with_sign_reduction_and_ivfflat(job, digits):
    x, y = digits
    job.add_file("train", "train.pbr", sdk.sparse_recordio(sp.csr_matrix(x[:1500]), y[:1500]))
    job.add_file("test", "test.pbr", sdk.sparse_recordio(sp.csr_matrix(x[1500:]), y[1500:]))
    job.write_config({**BASE, "dimension_reduction_type": "sign", "dimension_reduction_target": 32,
                      "index_type": "faiss.IVFFlat", "faiss_index_ivf_nlists": "16"},
                     {"train": {"ContentType": RECORDIO}, "test": {"ContentType": RECORDIO}})
    result = job.train("knn")
    assert result.returncode == 0, result.output
    assert result.model_files == ["model_algo-1", "model_algo-1.json", "model_algo-1.labels",
                                  "model_algo-1.projection"]
    assert score_of(result.output, "accuracy") > 0.9
    model = KNNModel.load(result.model_dir)
    assert (model.index.d, model.feature_dim, model.index.nlist) == (32, 64, 16)


def test_ivfpq_pads_and_samples_at_most_sample_size(job, digits):
    x, y = digits
    job.add_file("train", "train.csv", csv_bytes(y, x))
    job.write_config({**BASE, "sample_size": 700, "index_type": "faiss.IVFPQ", "faiss_index_pq_m": 24},
                     {"train": {"ContentType": "text/csv;label_size=1"}})
    result = job.train("knn")
    assert result.returncode == 0, result.output
    assert "Sampled 700 of the 1797 records this host read" in result.output
    assert "padded with 8 zeros to 72 dimensions" in result.output
    model = KNNModel.load(result.model_dir)
    assert (model.index.ntotal, model.index.d, model.index.pq.M) == (700, 72, 24)
    assert model.predict(x[:50])["labels"].shape == (50, 5)


def test_two_hosts_sample_their_shares_and_the_first_builds_the_index(tmp_path, digits):
    x, y = digits
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port())}
    shares = {"algo-1": (x[:900], y[:900] * 0 + 1), "algo-2": (x[900:], y[900:] * 0 + 2)}
    jobs = []
    for host, (features, labels) in shares.items():
        job = Job(tmp_path / host)
        job.add_file("train", f"{host}.pbr", sdk.dense_recordio(features, labels))
        job.write_config({**BASE, "sample_size": 601},
                         {"train": {"ContentType": RECORDIO, "S3DistributionType": "ShardedByS3Key"}},
                         hosts=tuple(shares), current_host=host)
        jobs.append(job)
    processes = [job.start_train("knn", env) for job in jobs]
    results = [job.result(p, timeout=180) for job, p in zip(jobs, processes)]
    assert [r.returncode for r in results] == [0, 0], results[0].output + results[1].output
    assert "this host samples 301 of sample_size=601 over 2 host(s)" in results[0].output
    assert "this host samples 300 of sample_size=601 over 2 host(s)" in results[1].output
    assert "Gathered [301, 300] sampled points from 2 hosts" in results[0].output
    assert results[1].model_files == []
    model = KNNModel.load(results[0].model_dir)
    assert model.index.ntotal == 601
    assert sorted(np.unique(model.labels, return_counts=True)[1].tolist()) == [300, 301]


def test_records_without_labels_are_a_clear_client_error(job, digits):
    x, _ = digits
    job.add_file("train", "train.pbr", sdk.dense_recordio(x[:20]))
    job.write_config(BASE, {"train": {"ContentType": RECORDIO}})
    result = job.train("knn")
    assert result.returncode == 1
    assert result.failure.startswith("ClientError: ")
    assert "k-NN needs a label for every training and test record" in result.failure
    assert "train.pbr" in result.failure.splitlines()[0]


def test_plain_text_csv_takes_the_first_column_as_the_label(job, digits):
    x, y = digits
    job.add_file("train", "train.csv", csv_bytes(y[:300], x[:300]))
    job.write_config({**BASE, "k": 1}, {"train": {"ContentType": "text/csv"}})
    result = job.train("knn")
    assert result.returncode == 0, result.output
    model = KNNModel.load(result.model_dir)
    assert model.labels.tolist() == y[:300].tolist()  # a sample larger than the data keeps it all, in order
    np.testing.assert_array_equal(model.predict(x[:300])["predicted_label"], y[:300])


@pytest.mark.parametrize("values, message", [
    ({"index_type": "faiss.IVFPQ", "index_metric": "COSINE"},
     "index_metric=COSINE is not supported with index_type=faiss.IVFPQ"),
    ({"dimension_reduction_type": "fjlt"}, "requires dimension_reduction_target"),
    ({"dimension_reduction_type": "sign", "dimension_reduction_target": 80}, "must be less than feature_dim=64"),
    ({"faiss_index_pq_m": 5}, "faiss_index_pq_m='5'"),
    ({"index_type": "faiss.HNSW"}, "index_type='faiss.HNSW'"),
    ({"k": 0}, "k='0'"),
])
def test_bad_hyperparameters_fail_before_reading_data(job, digits, values, message):
    x, y = digits
    job.add_file("train", "train.csv", csv_bytes(y[:20], x[:20]))
    job.write_config({**BASE, **values}, {"train": {"ContentType": "text/csv;label_size=1"}})
    result = job.train("knn")
    assert result.returncode == 1, result.output
    assert result.failure.startswith("ClientError: ") and message in result.failure.splitlines()[0]
