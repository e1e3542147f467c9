"""Linear Learner numerics, in-process: losses, the batched models, calibration, shuffling, autos, MXNet files."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import HyperparameterError
from common.spec import load_spec
from containers.linear_learner import calibration, losses
from containers.linear_learner.linear import ParallelModels
from containers.linear_learner.model import LinearModel
from containers.linear_learner.settings import resolve
from containers.linear_learner.shuffle import ShuffleBuffer
from containers.linear_learner.trainer import Trainer

FIXTURES = Path(__file__).parent / "fixtures" / "linear_learner"
PARAMS = {"margin": 0.7, "quantile": 0.3, "loss_insensitivity": 0.2, "huber_delta": 0.5}


def settings(**hp):
    schema = load_spec("linear-learner").hyperparameters
    raw = {k: str(v) for k, v in hp.items()}
    tuning = raw.pop("_tuning_objective_metric", None) is not None
    return resolve(schema.parse(raw), tuning=tuning)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_loss_gradients_match_autograd(name):
    torch.manual_seed(0)
    k = 4 if name == "softmax_loss" else 1
    s = torch.randn(16, 3, k, dtype=torch.float64, requires_grad=True)
    if name == "softmax_loss":
        y = torch.randint(0, 4, (16,))
    elif name in ("logistic", "hinge_loss"):
        y = torch.randint(0, 2, (16, 1, 1)).double()
    else:
        y = torch.randn(16, 1, 1, dtype=torch.float64)
    loss, grad = losses.LOSSES[name](s, y, PARAMS)
    assert loss.shape == (16, 3, 1)
    (auto,) = torch.autograd.grad(loss.sum(), s)
    torch.testing.assert_close(grad, auto)


def test_loss_values():
    s, y = torch.tensor([[[2.0]]]), torch.tensor([[[0.5]]])
    assert float(losses.squared(s, y, PARAMS)[0]) == pytest.approx(2.25)
    assert float(losses.absolute(s, y, PARAMS)[0]) == pytest.approx(1.5)
    assert float(losses.eps_absolute(s, y, PARAMS)[0]) == pytest.approx(1.3)
    assert float(losses.eps_squared(s, y, PARAMS)[0]) == pytest.approx(1.69)
    assert float(losses.huber(s, y, PARAMS)[0]) == pytest.approx(0.5 * (1.5 - 0.25))
    assert float(losses.quantile(s, y, PARAMS)[0]) == pytest.approx(0.7 * 1.5)  # over-prediction costs 1-q
    assert float(losses.hinge(torch.tensor([[[0.2]]]), torch.tensor([[[1.0]]]), PARAMS)[0]) == pytest.approx(0.5)
    assert float(losses.logistic(torch.tensor([[[0.0]]]), torch.tensor([[[1.0]]]), PARAMS)[0]) == \
        pytest.approx(np.log(2))


def test_one_batched_step_equals_each_model_alone():
    """M models in one (D, M*K) tensor take the step each would take alone (sgd, per-model lr/wd/l1)."""
    s = settings(predictor_type="multiclass_classifier", num_classes=3, optimizer="sgd", use_lr_scheduler="false",
                 num_models=4, learning_rate=0.1, wd=0.01, l1=0.0)
    s.learning_rates, s.wds, s.l1s = (0.1, 0.2, 0.05, 0.3), (0.0, 0.01, 0.1, 0.0), (0.0, 0.0, 0.0, 0.02)
    d = 5
    models = ParallelModels(s, d, torch.device("cpu"), seed=3)
    x = torch.randn(8, d)
    y = torch.randint(0, 3, (8,))
    w = torch.ones(8)
    before_w, before_b = models.W.clone(), models.b.clone()
    models.step(x, y, w)
    for i in range(4):
        cols = slice(3 * i, 3 * i + 3)
        wi = before_w[:, cols].clone().requires_grad_(True)
        bi = before_b[cols].clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(x @ wi + bi, y)
        gw, gb = torch.autograd.grad(loss, (wi, bi))
        expected = wi - s.learning_rates[i] * (gw + s.wds[i] * wi + s.l1s[i] * torch.sign(wi))
        if s.l1s[i]:  # an l1 step that crosses zero stops at zero
            expected = torch.where(torch.sign(expected) != torch.sign(wi), torch.zeros_like(wi), expected)
        expected_b = bi - s.learning_rates[i] * s.bias_lr_mult * gb
        torch.testing.assert_close(models.W[:, cols], expected.detach())
        torch.testing.assert_close(models.b[cols], expected_b.detach())


def test_cross_validation_copies_each_step_on_their_rows_only():
    """With folds, copy 0 of the models steps on every row and copy g on the rows outside fold g - 1, as each would
    alone (adam, weighted rows)."""
    s = settings(predictor_type="binary_classifier", num_models=2)
    d, n = 4, 30
    many = ParallelModels(s, d, torch.device("cpu"), seed=1, groups=3)
    x, y = torch.randn(n, d), torch.randint(0, 2, (n, 1, 1)).float()
    folds, w = torch.arange(n) % 2, torch.rand(n) + 0.5
    start = many.P.clone()
    many.step(x, y, w, folds)
    for group in range(3):
        rows = torch.ones(n, dtype=torch.bool) if group == 0 else folds != group - 1
        alone = ParallelModels(s, d, torch.device("cpu"))
        alone.P.copy_(start[:, 2 * group:2 * group + 2])
        alone.step(x[rows], y[rows], w[rows])
        torch.testing.assert_close(many.P[:, 2 * group:2 * group + 2], alone.P)


def test_logistic_and_softmax_gradient_only_forms_equal_the_pairs():
    s = torch.randn(6, 3, 1)
    y = torch.randint(0, 2, (6, 1, 1)).float()
    torch.testing.assert_close(losses.logistic_gradient(s, y, PARAMS), losses.logistic(s, y, PARAMS)[1])
    s, y = torch.randn(6, 3, 4), torch.randint(0, 4, (6,))
    torch.testing.assert_close(losses.softmax_gradient(s, y, PARAMS), losses.softmax(s, y, PARAMS)[1])


def test_scores_are_one_matmul_for_all_models():
    s = settings(predictor_type="binary_classifier", num_models=6)
    models = ParallelModels(s, 7, torch.device("cpu"))
    assert models.W.shape == (7, 6)
    x = torch.randn(4, 7)
    out = models.scores(x)
    assert out.shape == (4, 6, 1)
    torch.testing.assert_close(out[:, 2, 0], x @ models.W[:, 2] + models.b[2])


def brute_force(scores, labels, criterion, target=0.8, beta=1.0):
    best = -np.inf
    for t in np.concatenate([[np.inf], np.unique(scores), [-np.inf]]):
        predicted = scores >= t
        tp = float((predicted & labels).sum())
        fp = float((predicted & ~labels).sum())
        fn = float((~predicted & labels).sum())
        tn = len(labels) - tp - fp - fn
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn)
        value = {"accuracy": (tp + tn) / len(labels),
                 "f_beta": (1 + beta ** 2) * tp / (beta ** 2 * (tp + fn) + tp + fp),
                 "precision_at_target_recall": precision if recall >= target else -1,
                 "recall_at_target_precision": recall if precision >= target and tp + fp else -1}[criterion]
        best = max(best, value)
    return best


@pytest.mark.parametrize("criterion", calibration.CRITERIA)
def test_calibration_finds_the_best_threshold_of_every_model(criterion):
    rng = np.random.default_rng(1)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=(300, 3)) + labels[:, None] * np.array([0.5, 1.5, 3.0]), 1)  # ties
    thresholds, values = calibration.calibrate(torch.tensor(scores), torch.tensor(labels, dtype=torch.float64),
                                               torch.ones(300), criterion, target_precision=0.8,
                                               target_recall=0.8)
    for m in range(3):
        assert float(values[m]) == pytest.approx(brute_force(scores[:, m], labels, criterion))
        predicted = scores[:, m] > float(thresholds[m])  # the threshold reproduces the value
        tp = (predicted & labels).sum()
        if criterion == "accuracy":
            assert (predicted == labels).mean() == pytest.approx(float(values[m]))
        elif criterion == "f_beta":
            assert 2 * tp / (labels.sum() + predicted.sum()) == pytest.approx(float(values[m]))


def test_shuffle_buffer_mixes_sorted_labels_and_keeps_every_row():
    buffer = ShuffleBuffer(batch_size=50, capacity=400, seed=0)
    labels = np.repeat([0.0, 1.0], 500).astype(np.float32)
    features = np.arange(1000, dtype=np.float32).reshape(-1, 1)
    out = []
    for start in range(0, 1000, 100):
        out += list(buffer.add(features[start:start + 100], labels[start:start + 100], np.ones(100, np.float32)))
    out += list(buffer.flush())
    seen = np.concatenate([b[0][:, 0] for b in out])
    assert sorted(seen.tolist()) == list(range(1000))
    assert all(len(b[1]) == 50 for b in out[:-1])
    order = np.argsort(seen)
    assert not np.array_equal(order, np.arange(1000))


def test_auto_resolves_to_32_models_varying_learning_rate_wd_and_l1():
    s = settings(predictor_type="binary_classifier")
    assert s.num_models == 32
    assert len(set(s.learning_rates)) == 4 and len(set(s.wds)) == 4 and len(set(s.l1s)) == 2
    assert len(set(zip(s.learning_rates, s.wds, s.l1s))) == 32
    assert (s.optimizer, s.momentum, s.beta_1, s.beta_2, s.bias_lr_mult, s.bias_wd_mult) == \
        ("adam", 0.0, 0.9, 0.999, 10.0, 0.0)
    assert (s.lr_scheduler_step, s.lr_scheduler_factor, s.lr_scheduler_minimum_lr) == (100, 0.99, 1e-5)
    assert s.num_calibration_samples == 10_000_000 and s.loss == "logistic"
    fixed = settings(predictor_type="regressor", learning_rate=0.05, wd=0.001, l1=0.0)
    assert (fixed.learning_rates[0], fixed.wds[0], fixed.l1s[0]) == (0.05, 0.001, 0.0)
    assert fixed.loss == "squared_loss" and fixed.normalize_label and fixed.unbias_label


def test_tuning_job_trains_one_model():
    s = settings(predictor_type="binary_classifier", num_models=8, _tuning_objective_metric="test:roc_auc_score")
    assert s.num_models == 1 and s.tuning


def test_sdk_and_guide_names_and_bad_combinations():
    assert settings(predictor_type="binary_classifier", positive_example_weight_mult="balanced"
                    ).positive_example_weight == "balanced"
    assert settings(predictor_type="binary_classifier", positive_example_weight=3).positive_example_weight == 3
    assert settings(predictor_type="binary_classifier",
                    binary_classifier_model_selection_criteria="f1").selection == "f_beta"
    with pytest.raises(HyperparameterError, match="loss='squared_loss' for predictor_type=binary_classifier"):
        settings(predictor_type="binary_classifier", loss="squared_loss")
    with pytest.raises(HyperparameterError, match="num_classes"):
        settings(predictor_type="multiclass_classifier")


def blocks_of(x, y, size=100):
    return lambda epoch: iter([(x[i:i + size], y[i:i + size], None) for i in range(0, len(x), size)])


def test_balanced_positive_weight_is_negatives_over_positives():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 3)).astype(np.float32)
    y = (rng.random(1000) < 0.1).astype(np.float32)
    trainer = Trainer(settings(predictor_type="binary_classifier", positive_example_weight_mult="balanced",
                               epochs=1, num_models=2))
    trainer.fit(blocks_of(x, y))
    assert trainer.class_weights[1] == pytest.approx((y == 0).sum() / (y == 1).sum(), rel=1e-6)


def test_quantile_loss_puts_the_asked_share_below():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0]) + rng.normal(size=4000)).astype(np.float32)
    trainer = Trainer(settings(predictor_type="regressor", loss="quantile_loss", quantile=0.9, epochs=10,
                               num_models=4, mini_batch_size=100))
    model = trainer.fit(blocks_of(x, y))
    share = float((y < model.raw_scores(x)[:, 0]).mean())
    assert share == pytest.approx(0.9, abs=0.03)


@pytest.mark.parametrize("name", ["binary", "multiclass", "regressor"])
def test_mxnet_gives_our_raw_scores(name):
    """Fixtures: MXNet 1.9.1's SymbolBlock.imports on our model_algo-1 (scripts/make_linear_learner_fixtures.py)."""
    folder = FIXTURES / name
    expected = json.loads((folder / "expected.json").read_text())
    model = LinearModel.load(folder)
    inputs = np.array(expected["inputs"], np.float32)
    np.testing.assert_allclose(model.raw_scores(inputs), np.array(expected["mxnet_raw_scores"]), rtol=1e-5,
                               atol=1e-6)
    with zipfile.ZipFile(folder / "model_algo-1") as archive:
        assert sorted(archive.namelist()) == ["additional-params.json", "manifest.json", "mx-mod-0000.params",
                                              "mx-mod-symbol.json"]


def test_reads_a_checkpoint_mxnet_wrote():
    folder = FIXTURES / "mxnet_written"
    expected = json.loads((folder / "expected.json").read_text())
    model = LinearModel.load(folder)
    np.testing.assert_allclose(model.weights.T, expected["weight"])
    np.testing.assert_allclose(model.bias, expected["bias"])
    assert model.predictor_type == "regressor"


def test_shuffle_buffer_reused_across_epochs_and_mixed_sparse_blocks():
    import scipy.sparse as sp

    buffer = ShuffleBuffer(batch_size=30, capacity=200, seed=0)
    for epoch in range(2):
        buffer.reset(epoch)
        seen = []
        for start in range(0, 500, 70):
            block = np.arange(start, min(start + 70, 500), dtype=np.float32).reshape(-1, 1)
            if start == 280:  # a sparse block in the middle of dense ones
                block = sp.csr_matrix(block)
            out = list(buffer.add(block, block[:, 0].toarray().ravel() if sp.issparse(block) else block[:, 0],
                                  np.ones(block.shape[0], np.float32)))
            seen += [np.asarray(b[0].todense() if sp.issparse(b[0]) else b[0]).ravel() for b in out]
        seen += [np.asarray(b[0].todense() if sp.issparse(b[0]) else b[0]).ravel() for b in buffer.flush()]
        assert sorted(np.concatenate(seen).tolist()) == list(range(500))


def test_scaler_folded_into_the_weights_equals_scaling_the_rows():
    """Scores and one step of models given raw rows and the scaler equal those of models given scaled rows."""
    from containers.linear_learner.linear import Scaler

    s = settings(predictor_type="binary_classifier", num_models=4, l1=0.001)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 5)) * [1, 2, 3, 4, 5] + [10, -3, 0, 2, 7]).astype(np.float32)
    y = torch.from_numpy((rng.random(64) < 0.3).astype(np.float32)).view(-1, 1, 1)
    scaler = Scaler(x.mean(0), x.std(0))
    folded_models = ParallelModels(s, 5, torch.device("cpu"), seed=1, scaler=scaler)
    plain = ParallelModels(s, 5, torch.device("cpu"), seed=1)
    scaled = torch.from_numpy(((x - scaler.feature_mean) / scaler.feature_scale).astype(np.float32))
    torch.testing.assert_close(folded_models.scores(torch.from_numpy(x)), plain.scores(scaled), atol=1e-5, rtol=1e-5)
    for _ in range(3):
        folded_models.step(torch.from_numpy(x), y)
        plain.step(scaled, y)
    torch.testing.assert_close(folded_models.P, plain.P, atol=1e-5, rtol=1e-4)


def test_prefetched_hands_back_items_errors_and_stops_when_closed():
    import threading

    from containers.linear_learner.prefetch import prefetched

    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("record 7 is bad")

    stream = prefetched(failing())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="record 7 is bad"):
        next(stream)
    produced, finished = [], threading.Event()

    def endless():
        try:
            while True:
                produced.append(1)
                yield len(produced)
        finally:
            finished.set()

    stream = prefetched(endless(), depth=2)
    assert next(stream) == 1
    stream.close()
    assert finished.wait(5)  # the producer thread closed its generator
    assert len(produced) <= 5


def test_shuffle_buffer_in_runs_keeps_every_row_and_mixes_sorted_labels():
    """mini_batch_size >= 512: the pool is permuted in runs of 8 slots (cheaper gathers); every row still leaves
    once per epoch and a mini-batch of data sorted by label still holds both labels in about their share."""
    from containers.linear_learner.shuffle import RUN_ROWS, run_rows

    assert run_rows(1000) == RUN_ROWS > 1 and run_rows(32) == 1
    buffer = ShuffleBuffer(batch_size=512, capacity=6000, seed=0)
    n = 10_000
    labels = (np.arange(n) >= n // 2).astype(np.float32)
    features = np.arange(n, dtype=np.float32).reshape(-1, 1)
    for epoch in range(2):  # the second epoch refills the slots the first one freed
        buffer.reset(epoch)
        out = []
        for start in range(0, n, 700):
            out += list(buffer.add(features[start:start + 700], labels[start:start + 700], np.ones(700, np.float32)))
        out += list(buffer.flush())
        seen = np.concatenate([b[0][:, 0] for b in out])
        assert sorted(seen.tolist()) == list(range(n))
        assert all(len(b[1]) == 512 for b in out[:-1])
        batch = out[len(out) // 2]  # a batch from the middle of the epoch mixes rows of both halves
        assert 0.2 < batch[1].mean() < 0.8
        assert np.mean(np.diff(batch[0][:, 0]) == 1) > 0.5  # mostly runs of consecutive rows


@pytest.mark.parametrize("sparse", [False, True])
def test_next_epoch_is_read_ahead_and_every_epoch_holds_every_row_once(sparse):
    """The next epoch's reading starts (in its own thread and pool) once this epoch's rows are all read; with two
    pools alternating, every epoch still yields each training row exactly once, small data (whose later epochs run
    ahead of the consumer) and data larger than the pool alike."""
    import threading

    import scipy.sparse as sp

    from containers.linear_learner.rows import TrainingRows

    for n, mini_batch in ((600, 50), (5000, 100)):
        s = settings(predictor_type="regressor", epochs=4, mini_batch_size=mini_batch, num_models=1)
        ids = np.arange(n, dtype=np.float32).reshape(-1, 1)
        started = []

        def train_blocks(epoch):
            started.append(epoch)
            for i in range(0, n, 128):
                block = sp.csr_matrix(ids[i:i + 128] + 1) if sparse else ids[i:i + 128] + 1
                yield block, ids[i:i + 128, 0], None

        before = set(threading.enumerate())  # other tests' threads (servers, libraries) are not this test's
        rows = TrainingRows(s, split="validation")
        if not sparse:  # odd epochs' pool holds 2,000 rows (epoch 0 makes its own, of the default size)
            rows.buffers = [None, ShuffleBuffer(mini_batch, capacity=2000, seed=1)]
        for epoch in range(s.epochs):
            stream = rows.stream(train_blocks, epoch)
            seen = []
            for features, labels, *_ in stream:
                values = np.asarray(features.todense() if sparse else features)[:, 0] - 1
                np.testing.assert_array_equal(values, labels)
                seen.append(labels)
            assert sorted(np.concatenate(seen).tolist()) == list(range(n))
            if epoch + 1 < s.epochs:
                assert epoch + 1 in started  # already being read when this epoch's last batch was handed over
        rows.close()
        left = [t for t in threading.enumerate() if t not in before]
        for thread in left:
            thread.join(timeout=5)
        assert [t.name for t in left if t.is_alive()] == []  # every reading thread of this test has ended


def test_epochs_read_ahead_stop_when_training_stops_early():
    """Training that stops after its first epoch (early stopping) closes the epochs read ahead: no reading thread is
    left waiting for a pool or a consumer."""
    import threading

    from containers.linear_learner.rows import TrainingRows

    import time

    s = settings(predictor_type="regressor", epochs=6, mini_batch_size=20, num_models=1)
    x = np.arange(300, dtype=np.float32).reshape(-1, 1)
    started = []

    def train_blocks(epoch):
        started.append(epoch)
        yield x, x[:, 0], None

    rows = TrainingRows(s, split="validation")
    assert len(list(rows.stream(train_blocks, 0))) == 15
    for _ in range(100):  # epoch 1 reads ahead and starts epoch 2, which waits for epoch 1's consumer
        if 2 in rows.ahead:
            break
        time.sleep(0.05)
    assert started == [0, 1, 2]
    rows.close()
    time.sleep(0.3)
    assert [t for t in threading.enumerate() if t.name == "prefetch" and t.is_alive()] == []
    assert started == [0, 1, 2]  # no epoch started once training had stopped
