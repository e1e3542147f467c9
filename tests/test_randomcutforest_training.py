"""Random Cut Forest training through the real ``algobox randomcutforest train`` subprocess."""

import re

import numpy as np
import pytest
import scipy.sparse as sp

import sdk
from common import ndarray
from containers.randomcutforest.model import RandomCutForestModel
from bodies import csv_bytes
from emulator import Job, free_port

RECORDIO = "application/x-recordio-protobuf"
SHARDED = {"S3DistributionType": "ShardedByS3Key"}


def metric(output, name):
    found = re.search(rf"#quality_metric: host=algo-1, test {name} <loss>=(\S+)", output)
    return float(found.group(1)) if found else None


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(3000, 4)).astype(np.float32)
    test = rng.normal(size=(600, 4)).astype(np.float32)
    labels = np.zeros(600, np.float32)
    test[:8] += 9
    labels[:8] = 1
    return train, test, labels


def test_csv_file_mode_with_labelled_test(job, data):
    train, test, labels = data
    job.add_file("train", "part-0.csv", csv_bytes(train[:1500]))
    job.add_file("train", "part-1.csv", csv_bytes(train[1500:]))
    job.add_file("test", "test.csv", csv_bytes(np.column_stack([labels, test])))
    job.write_config({"feature_dim": 4, "num_trees": 50, "num_samples_per_tree": 64},
                     {"train": {"ContentType": "text/csv", **SHARDED},
                      "test": {"ContentType": "text/csv;label_size=1"}})
    result = job.train("randomcutforest")
    assert result.returncode == 0, result.output
    assert result.model_files == ["model_algo-1"]
    assert "Reservoir: 3000 of 3000 rows read by this host" in result.output
    assert "Built 50 trees of 64 points each" in result.output
    assert metric(result.output, "f1") == 1.0  # the 8 planted anomalies, and only they, beyond 3 sigma
    assert metric(result.output, "accuracy") == 1.0
    assert metric(result.output, "recall_normal") == 1.0
    assert "#test_score (algo-1) : ('f1', 1)" in result.output
    model = RandomCutForestModel.load(result.model_dir)
    assert (model.num_trees, model.feature_dim) == (50, 4)
    scores = model.predict(test)["score"]
    assert scores[:8].min() > 2 * np.median(scores[8:])


def test_recordio_pipe_mode_sparse_train_and_dense_test(job, data):
    train, test, labels = data
    sparse_train = sp.csr_matrix(np.where(np.abs(train) > 1, train, 0))
    job.add_pipe("train", [sdk.sparse_recordio(sparse_train)])
    job.add_pipe("test", [sdk.dense_recordio(test, labels)])
    job.write_config({"feature_dim": 4, "num_trees": 60, "eval_metrics": '["accuracy"]'},
                     {"train": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe", **SHARDED},
                      "test": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"}})
    result = job.train("randomcutforest")
    assert result.returncode == 0, result.output
    assert "Built 60 trees of 256 points each" in result.output
    assert metric(result.output, "f1") is not None and metric(result.output, "accuracy") is not None
    assert metric(result.output, "precision") is None  # only the requested metrics besides test:f1
    forest = RandomCutForestModel.load(result.model_dir).forest
    rows = {tuple(row) for row in sparse_train.toarray()}
    assert all(tuple(point) in rows for point in forest.leaf_points)  # the trees hold training rows
    assert forest.mass[forest.roots].tolist() == [256] * 60


def test_sdk_hyperparameters_are_accepted(job, data):
    from sagemaker import RandomCutForest

    hyperparameters = sdk.estimator_hyperparameters(RandomCutForest, 4, 1000, num_trees=50,
                                                    num_samples_per_tree=32,
                                                    eval_metrics=["accuracy", "precision_recall_fscore"])
    job.add_file("train", "a.pbr", sdk.dense_recordio(data[0][:500]))
    job.write_config(hyperparameters, {"train": {"ContentType": RECORDIO, **SHARDED}})
    result = job.train("randomcutforest")
    assert result.returncode == 0, result.output
    assert "eval_metrics=accuracy,precision_recall_fscore" in result.output


@pytest.mark.parametrize("channels, message", [
    ({"train": {"ContentType": "text/csv", "S3DistributionType": "FullyReplicated"}},
     "Channel 'train' has S3DistributionType FullyReplicated; this algorithm needs ShardedByS3Key"),
    ({"train": {"ContentType": "text/csv", **SHARDED}, "test": {"ContentType": "text/csv", **SHARDED}},
     "Channel 'test' has S3DistributionType ShardedByS3Key; this algorithm needs FullyReplicated"),
    ({"train": {"ContentType": "text/csv", **SHARDED}, "test": {"ContentType": "text/csv;label_size=0"}},
     "Channel 'test' has no labels: use text/csv;label_size=1"),
])
def test_channel_errors_are_client_errors(job, data, channels, message):
    job.add_file("train", "a.csv", csv_bytes(data[0][:200]))
    job.add_file("test", "t.csv", csv_bytes(data[1][:50]))
    job.write_config({"feature_dim": 4, "num_trees": 50}, channels)
    result = job.train("randomcutforest")
    assert result.returncode == 1, result.output
    assert result.failure.splitlines()[0].startswith("ClientError:")
    assert message in result.failure


def test_local_mode_config_without_distribution_trains(job, data):
    """The SDK's local mode writes only TrainingInputMode and ContentType per channel (no S3DistributionType):
    not stated is not FullyReplicated, so the train channel is accepted."""
    import json

    job.add_file("train", "a.csv", csv_bytes(data[0][:500]))
    job.write_config({"feature_dim": 4, "num_trees": 50}, {"train": {}})
    (job.root / "input/config/inputdataconfig.json").write_text(json.dumps(
        {"train": {"TrainingInputMode": "File", "ContentType": "text/csv"}}))
    result = job.train("randomcutforest")
    assert result.returncode == 0, result.output
    assert "Channel train: text/csv, File mode, S3DistributionType not stated" in result.output
    assert result.model_files == ["model_algo-1"]


@pytest.mark.parametrize("hyperparameters, name", [
    ({"feature_dim": 4, "num_trees": 10}, "num_trees"),
    ({"feature_dim": 4, "num_samples_per_tree": 4096}, "num_samples_per_tree"),
    ({"feature_dim": 10001}, "feature_dim"),
    ({"feature_dim": 4, "eval_metrics": '["f2"]'}, "eval_metrics"),
])
def test_bad_hyperparameters_fail_fast(job, data, hyperparameters, name):
    job.add_file("train", "a.csv", csv_bytes(data[0][:50]))
    job.write_config(hyperparameters, {"train": {"ContentType": "text/csv", **SHARDED}})
    result = job.train("randomcutforest")
    assert result.returncode == 1
    assert result.failure.startswith("ClientError:") and name in result.failure.splitlines()[0]


def test_test_labels_must_be_zero_or_one(job, data):
    job.add_file("train", "a.csv", csv_bytes(data[0][:200]))
    job.add_file("test", "t.csv", csv_bytes(np.column_stack([np.full(20, 2.0), data[1][:20]])))
    job.write_config({"feature_dim": 4, "num_trees": 50},
                     {"train": {"ContentType": "text/csv", **SHARDED}, "test": {"ContentType": "text/csv;label_size=1"}})
    result = job.train("randomcutforest")
    assert result.returncode == 1
    assert "labels must be 1 (anomaly) or 0 (normal); found 2 in record 0" in result.failure


def test_two_hosts_each_build_their_share_and_the_first_writes_the_forest(tmp_path, data):
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port())}
    train = data[0]
    shares = {"algo-1": train[:1000], "algo-2": train[1000:] + 100}  # the second host's rows lie far away
    jobs = []
    for host, share in shares.items():
        job = Job(tmp_path / host)
        job.add_file("train", f"{host}.csv", csv_bytes(share))
        job.write_config({"feature_dim": 4, "num_trees": 51, "num_samples_per_tree": 64},
                         {"train": {"ContentType": "text/csv", **SHARDED}}, hosts=tuple(shares), current_host=host)
        jobs.append(job)
    processes = [job.start_train("randomcutforest", env) for job in jobs]
    results = [job.result(p, timeout=180) for job, p in zip(jobs, processes)]
    assert [r.returncode for r in results] == [0, 0], results[0].output + results[1].output
    assert "num_trees=51 (26 on this host)" in results[0].output
    assert "num_trees=51 (25 on this host)" in results[1].output
    assert results[0].model_files == ["model_algo-1"] and results[1].model_files == []
    arrays = ndarray.load(results[0].model_dir / "model_algo-1")
    assert arrays["meta"].tolist() == [1, 4, 51, 64]
    forest = RandomCutForestModel.load(results[0].model_dir).forest
    far = forest.leaf_points[:, 0] > 50
    tree_of_point = np.repeat(np.arange(51), 64)
    assert not far[tree_of_point < 26].any() and far[tree_of_point >= 26].all()  # trees from each host's own shard
