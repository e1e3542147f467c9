"""Factorization Machines through the real ``algobox factorization-machines train`` and ``export`` subprocesses."""

import re
import signal
import subprocess
import tarfile
import time

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss

import sdk
from containers.factorization_machines.model import FMModel
from containers.factorization_machines.planted import PlantedFM
import bodies
from emulator import ALGOBOX, REPO, Job, free_port

ALG = "factorization-machines"
RECORDIO = "application/x-recordio-protobuf"
FIELDS = (40, 30, 8, 8, 6)
D = sum(FIELDS)


@pytest.fixture(scope="module")
def planted():
    oracle = PlantedFM(FIELDS, k=4, seed=3, factor_scales=(0.6,) * 5, linear_scales=(0.3,) * 5, bias=0.0)
    x, _, y = oracle.rows(5000, seed=1)
    xt, logits, yt = oracle.rows(2000, seed=2)
    return x, y, xt, yt, logits


def hyperparameters(predictor_type="binary_classifier", **extra):
    return {"feature_dim": D, "num_factors": 4, "predictor_type": predictor_type, "epochs": 6,
            "mini_batch_size": 200, "bias_lr": 0.05, "linear_lr": 0.02, "factors_lr": 0.02,
            "factors_init_sigma": 0.05, **extra}


def metric(output, name):
    found = re.findall(rf"#quality_metric: host=algo-1, test {name} <loss>=(\S+)", output)
    assert len(found) == 1, output[-3000:]
    return float(found[0])


def libsvm_bytes(x, y):
    lines = []
    for row in range(x.shape[0]):
        start, end = x.indptr[row], x.indptr[row + 1]
        pairs = " ".join(f"{i + 1}:{v:g}" for i, v in zip(x.indices[start:end], x.data[start:end]))  # one-based
        lines.append(f"{y[row]:g} {pairs}")
    return ("\n".join(lines) + "\n").encode()


def csv_bytes(x, y):
    return bodies.csv_bytes(y, x, fmt="%g")


def test_binary_sparse_recordio_file_mode_metrics_and_model(job, planted):
    x, y, xt, yt, _ = planted
    job.add_file("train", "part-0.pbr", sdk.sparse_recordio(x[:3000], y[:3000]))
    job.add_file("train", "nested/part-1.pbr", sdk.sparse_recordio(x[3000:], y[3000:]))
    job.add_file("test", "test.pbr", sdk.sparse_recordio(xt, yt))
    job.write_config(hyperparameters(), {"train": {"ContentType": RECORDIO}, "test": {"ContentType": RECORDIO}})
    result = job.train(ALG)
    assert result.returncode == 0, result.output
    assert result.failure is None and result.model_files == ["model_algo-1"]
    assert "device=cpu" in result.output and "Epoch 6 of 6" in result.output
    model = FMModel.load(result.model_dir)
    assert model.predictor_type == "binary_classifier" and model.v.shape == (D, 4) and model.w.shape == (D, 1)
    p = model.predict(xt)["score"].astype(np.float64)
    # the logged metrics are scikit-learn's on the saved model's predictions
    assert metric(result.output, "binary_classification_cross_entropy") == pytest.approx(log_loss(yt, p), rel=1e-4)
    assert metric(result.output, "binary_classification_accuracy") == pytest.approx(accuracy_score(yt, p >= 0.5),
                                                                                   abs=1e-6)
    assert metric(result.output, "binary_f_beta") == pytest.approx(f1_score(yt, p >= 0.5), rel=1e-4)
    # and the interactions pay: better than logistic regression on the same one-hot features
    linear = LogisticRegression(C=1.0, max_iter=500).fit(x, y)
    assert log_loss(yt, p) < log_loss(yt, linear.predict_proba(xt)[:, 1]) - 0.02


def test_regressor_dense_recordio_pipe_mode(job, planted):
    x, _, xt, _, _ = planted
    rng = np.random.default_rng(0)
    oracle = PlantedFM(FIELDS, k=4, seed=4, factor_scales=(0.5,) * 5, linear_scales=(0.5,) * 5)
    target = lambda m: (oracle.logits(np.sort(m.indices.reshape(m.shape[0], -1), axis=1)) +  # noqa: E731
                        rng.normal(0, 0.1, m.shape[0])).astype(np.float32)
    y, yt = target(x), target(xt)
    dense, dense_test = x.toarray(), xt.toarray()
    epochs = 6
    job.add_pipe("train", [sdk.dense_recordio(dense, y)] * epochs)
    job.add_pipe("test", [sdk.dense_recordio(dense_test, yt)])
    job.write_config(hyperparameters("regressor", epochs=epochs, bias_lr=0.1, linear_lr=0.05, factors_lr=0.05),
                     {"train": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"},
                      "test": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"}})
    result = job.train(ALG)
    assert result.returncode == 0, result.output
    model = FMModel.load(result.model_dir)
    assert model.predictor_type == "regressor"
    rmse = float(np.sqrt(np.mean((model.predict(dense_test)["score"] - yt) ** 2)))
    assert metric(result.output, "rmse") == pytest.approx(rmse, rel=1e-4)
    assert rmse < 0.5 * float(np.std(yt))
    assert "test:binary" not in result.output and "binary_classification" not in result.output


@pytest.mark.parametrize("content_type", ["text/libsvm", "text/csv"])
def test_libsvm_and_csv_channels_train_the_same_model_as_recordio(job, planted, content_type, tmp_path):
    """Our extension: sparse users write libsvm, dense users CSV (label first). libsvm gives the model sparse
    recordIO gives, CSV the one dense recordIO gives (dense batches update every row, sparse ones touched rows)."""
    x, y, _, _, _ = planted
    x, y = x[:2000], y[:2000]
    if content_type == "text/libsvm":
        data, recordio = libsvm_bytes(x, y), sdk.sparse_recordio(x, y)
    else:
        data, recordio = csv_bytes(x.toarray(), y), sdk.dense_recordio(x.toarray(), y)
    job.add_file("train", "train.data", data)
    job.write_config(hyperparameters(epochs=2), {"train": {"ContentType": content_type}})
    result = job.train(ALG)
    assert result.returncode == 0, result.output
    reference = Job(tmp_path / "reference")
    reference.add_file("train", "train.pbr", recordio)
    reference.write_config(hyperparameters(epochs=2), {"train": {"ContentType": RECORDIO}})
    expected = reference.train(ALG)
    assert expected.returncode == 0, expected.output
    ours, theirs = FMModel.load(result.model_dir), FMModel.load(expected.model_dir)
    np.testing.assert_allclose(ours.v, theirs.v, atol=1e-6)
    np.testing.assert_allclose(ours.w, theirs.w, atol=1e-6)


def test_diverging_training_is_a_client_error_naming_the_learning_rates(job, planted):
    x, _, _, _, _ = planted
    y = (np.arange(x.shape[0]) % 7).astype(np.float32)
    job.add_file("train", "train.pbr", sdk.sparse_recordio(x * 1e20, y))  # x^2 overflows float32
    job.write_config(hyperparameters("regressor", factors_lr=500, linear_lr=500, bias_lr=500, epochs=3),
                     {"train": {"ContentType": RECORDIO}})
    result = job.train(ALG)
    assert result.returncode == 1, result.output
    first = result.failure.splitlines()[0]
    assert first.startswith("ClientError: Training diverged"), first
    assert "bias_lr=500, linear_lr=500, factors_lr=500" in first and "clip_gradient" in first
    assert result.model_files == []


@pytest.mark.parametrize("hp, message", [
    ({"factors_init_method": "uniform"}, "factors_init_method=uniform needs factors_init_scale"),
    ({"bias_init_method": "constant"}, "bias_init_method=constant needs bias_init_value"),
    ({"predictor_type": "multiclass_classifier"}, "predictor_type"),
    ({"linear_lr": "-1"}, "linear_lr"),
    ({"factors_init_method": "xavier"}, "factors_init_method"),
    ({"lr_decay": 0}, "lr_decay"),
    ({"lr_decay": 1.5}, "lr_decay"),
])
def test_bad_hyperparameters_fail_at_setup(job, planted, hp, message):
    x, y, _, _, _ = planted
    job.add_file("train", "train.pbr", sdk.sparse_recordio(x[:10], y[:10]))
    job.write_config(hyperparameters(**hp), {"train": {"ContentType": RECORDIO}})
    result = job.train(ALG)
    assert result.returncode == 1
    assert result.failure.startswith("ClientError:") and message in result.failure.splitlines()[0]


def test_lr_decay_scales_the_learning_rates_after_each_epoch(tmp_path, planted):
    """With a vanishing lr_decay the epochs after the first change (almost) nothing; with the default they learn."""
    x, y, _, _, _ = planted
    models = {}
    for name, extra in {"one epoch": {"epochs": 1}, "three, decay 1e-9": {"epochs": 3, "lr_decay": 1e-9},
                        "three, default": {"epochs": 3}}.items():
        job = Job(tmp_path / name.replace(" ", "_").replace(",", ""))
        job.add_file("train", "train.pbr", sdk.sparse_recordio(x, y))
        job.write_config(hyperparameters(**extra), {"train": {"ContentType": RECORDIO}})
        result = job.train(ALG)
        assert result.returncode == 0, result.output
        assert f"lr_decay={extra.get('lr_decay', 1):g}" in result.output
        models[name] = FMModel.load(result.model_dir)
    first, decayed, default = models.values()
    np.testing.assert_allclose(decayed.v, first.v, atol=1e-6)
    np.testing.assert_allclose(decayed.w, first.w, atol=1e-6)
    assert np.abs(default.v - first.v).max() > 1e-3


def test_init_methods_reach_the_model(job, planted):
    """constant factors/linear/bias with zero learning rates: the model is exactly the initial values."""
    x, y, _, _, _ = planted
    job.add_file("train", "train.pbr", sdk.sparse_recordio(x[:100], y[:100]))
    job.write_config(hyperparameters(bias_init_method="constant", bias_init_value=0.5, linear_init_method="uniform",
                                     linear_init_scale=0.25, factors_init_method="constant", factors_init_value=-0.125,
                                     bias_lr=0, linear_lr=0, factors_lr=0, bias_wd=0, linear_wd=0, factors_wd=0),
                     {"train": {"ContentType": RECORDIO}})
    result = job.train(ALG)
    assert result.returncode == 0, result.output
    model = FMModel.load(result.model_dir)
    assert model.w0[0] == 0.5 and (model.v == -0.125).all()
    assert 0.2 < np.abs(model.w).max() <= 0.25 and len(np.unique(model.w)) > D // 2


def test_binary_labels_must_be_zero_or_one(job, planted):
    x, y, _, _, _ = planted
    job.add_file("train", "train.pbr", sdk.sparse_recordio(x[:50], np.where(y[:50] > 0, 1, -1).astype(np.float32)))
    job.write_config(hyperparameters(), {"train": {"ContentType": RECORDIO}})
    result = job.train(ALG)
    assert result.returncode == 1
    first = result.failure.splitlines()[0]
    assert "label -1.0 is not 0 or 1" in first and "train.pbr" in first


def test_two_hosts_match_one_host(tmp_path, planted):
    """Two real processes joined by torch.distributed (FullyReplicated: each reads its half of every batch)."""
    x, y, xt, yt, _ = planted
    hp = hyperparameters(epochs=4)
    single = Job(tmp_path / "single")
    single.add_file("train", "train.pbr", sdk.sparse_recordio(x, y))
    single.add_file("test", "test.pbr", sdk.sparse_recordio(xt, yt))
    channels = {"train": {"ContentType": RECORDIO}, "test": {"ContentType": RECORDIO}}
    single.write_config({**hp, "mini_batch_size": 400}, channels)  # the same effective batch as 2 x 200
    one = single.train(ALG)
    assert one.returncode == 0, one.output

    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port())}
    jobs = []
    for host in ("algo-1", "algo-2"):
        job = Job(tmp_path / host)
        job.add_file("train", "train.pbr", sdk.sparse_recordio(x, y))
        job.add_file("test", "test.pbr", sdk.sparse_recordio(xt, yt))
        job.write_config(hp, channels, hosts=("algo-1", "algo-2"), current_host=host)
        jobs.append(job)
    processes = [job.start_train(ALG, env) for job in jobs]
    results = [job.result(p, timeout=240) for job, p in zip(jobs, processes)]
    assert [r.returncode for r in results] == [0, 0], results[0].output + results[1].output
    assert "Host 2 of 2" in results[1].output
    assert results[0].model_files == ["model_algo-1"] and results[1].model_files == []
    for name in ("binary_classification_cross_entropy", "binary_classification_accuracy"):
        assert metric(results[0].output, name) == pytest.approx(metric(one.output, name), rel=0.01)


def test_sigterm_saves_the_model_so_far(job, planted):
    x, y, _, _, _ = planted
    job.add_pipe("train", [sdk.sparse_recordio(x, y)] * 200)
    job.write_config(hyperparameters(epochs=200), {"train": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"}})
    process = job.start_train(ALG)
    deadline = time.monotonic() + 120
    while sum(w.written for w in job.writers) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    result = job.result(process, timeout=60)
    assert result.returncode == 0, result.output
    assert "Stopped by a signal" in result.output and result.model_files == ["model_algo-1"]


def run_export(tmp_path, *args):
    env = Job(tmp_path / "export-job").env()
    return subprocess.run(ALGOBOX + [ALG, "export", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env=env)


def test_export_writes_npy_from_a_model_dir_a_zip_and_a_tarball(tmp_path):
    rng = np.random.default_rng(1)
    model = FMModel(np.array([0.5]), rng.normal(size=(9, 1)), rng.normal(size=(9, 3)), "binary_classifier")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model.save(model_dir)
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(model_dir / "model_algo-1", arcname="model_algo-1")
    for source in (model_dir, model_dir / "model_algo-1", tarball):
        out = tmp_path / f"out-{source.name}"
        done = run_export(tmp_path, source, out)
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in out.iterdir()) == ["V.npy", "model.json", "w.npy", "w0.npy"]
        np.testing.assert_array_equal(np.load(out / "V.npy"), model.v)
        np.testing.assert_array_equal(np.load(out / "w.npy"), model.w[:, 0])
        np.testing.assert_array_equal(np.load(out / "w0.npy"), model.w0)
    bad = run_export(tmp_path, tmp_path / "nothing", tmp_path / "o")
    assert bad.returncode == 1 and "does not exist" in bad.stderr
