"""Factorization Machines numerics, in-process: the O(nnz k) forward and hand-written gradients against the O(d^2)
definition and autograd, the optimizers' update rules, and model_algo-1 against files MXNet 1.9.1 wrote."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from containers.factorization_machines import artifact, fm
from containers.factorization_machines.model import FMModel

FIXTURES = Path(__file__).parent / "fixtures" / "factorization_machines"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["fixtures"]


def hyperparameters(d=12, k=3, predictor_type="binary_classifier", **extra):
    hp = {"feature_dim": d, "num_factors": k, "predictor_type": predictor_type, "epochs": 1, "mini_batch_size": 50}
    for group, (sigma, lr, wd) in {"bias": (0.01, 0.1, 0.01), "linear": (0.01, 0.001, 0.001),
                                   "factors": (0.001, 0.0001, 0.00001)}.items():
        hp.update({f"{group}_init_method": "normal", f"{group}_init_sigma": sigma, f"{group}_lr": lr,
                   f"{group}_wd": wd})
    hp.update(extra)
    return hp


def random_params(d, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return fm.Parameters(torch.randn(1, generator=g), torch.randn(d, 1, generator=g),
                         torch.randn(d, k, generator=g) * 0.5)


def random_csr(n, d, density=0.3, seed=1):
    rng = np.random.default_rng(seed)
    x = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float32)
    x.data = rng.normal(size=x.nnz).astype(np.float32)
    x.data[x.indptr[0]:x.indptr[1]] = 0  # an empty row
    x.eliminate_zeros()
    return x


def brute_force(w0, w, v, x):
    """The guide's definition, pair by pair."""
    x = np.asarray(x, np.float64)
    out = np.full(x.shape[0], float(w0[0])) + x @ w.reshape(-1)
    for i in range(x.shape[1]):
        for j in range(i + 1, x.shape[1]):
            out += float(v[i] @ v[j]) * x[:, i] * x[:, j]
    return out


def test_sparse_and_dense_forward_are_the_definition():
    d, k = 9, 4
    params = random_params(d, k)
    x = random_csr(20, d)
    want = brute_force(*params.numpy(), x.toarray())
    np.testing.assert_allclose(fm.predict(params, fm.as_batch(x)).numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fm.predict(params, fm.as_batch(x.toarray())).numpy(), want, rtol=1e-5, atol=1e-5)
    model = FMModel(*params.numpy(), "regressor")
    np.testing.assert_allclose(model.raw_scores(x), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.raw_scores(x.toarray()), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("binary", [True, False])
def test_hand_written_gradients_match_autograd(binary):
    d, k, n = 11, 3, 30
    params = random_params(d, k, seed=4)
    x = random_csr(n, d, seed=5)
    labels = torch.from_numpy((np.random.default_rng(6).random(n) < 0.5).astype(np.float32))
    weights = torch.from_numpy(np.random.default_rng(7).random(n).astype(np.float32))
    loss, sparse = fm.step_gradients(params, fm.as_batch(x), labels, binary, weights)
    _, dense = fm.step_gradients(params, fm.as_batch(x.toarray()), labels, binary, weights)

    leaves = [t.clone().requires_grad_() for t in (params.w0, params.w, params.v)]
    auto = fm.Parameters(*leaves)
    y = fm.forward_dense(auto, torch.from_numpy(x.toarray()))[0]
    want, _ = fm.loss_and_gradient(y, labels, binary, weights)
    want.backward()
    assert float(loss) == pytest.approx(float(want.detach()), rel=1e-5)
    assert sparse.n == n and dense.rows is None
    full_w, full_v = torch.zeros(d, 1), torch.zeros(d, k)
    full_w[sparse.rows], full_v[sparse.rows] = sparse.w, sparse.v
    assert set(sparse.rows.tolist()) == set(np.unique(x.indices).tolist())  # only touched rows
    for got in ((sparse.w0, full_w, full_v), (dense.w0, dense.w, dense.v)):
        for g, leaf in zip(got, leaves):
            np.testing.assert_allclose(g.numpy(), leaf.grad.numpy(), rtol=1e-4, atol=1e-5)


def one_step(kind, **hp_extra):
    d, k = 6, 2
    hp = hyperparameters(d, k, "regressor", linear_lr=0.05, linear_wd=0.1, **hp_extra)
    params = random_params(d, k, seed=2)
    before = params.w.clone()
    opt = fm.Optimizer(params, hp, kind)
    rows = torch.tensor([1, 4])
    grad = torch.tensor([[2.0], [-40.0]])
    opt.groups["linear"].step(params.w, rows, grad, n=4)
    return before, params.w, rows, grad


def test_adam_update_is_mxnets_rule_and_lazy():
    before, after, rows, grad = one_step("adam", clip_gradient=5.0)
    w = before[rows]
    g = (grad / 4 + 0.1 * w).clamp(-5, 5)          # rescale 1/n, wd joins, then clip
    m, v = 0.1 * g, 0.001 * g * g
    lr = 0.05 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(after[rows].numpy(), (w - lr * m / (v.sqrt() + 1e-8)).numpy(), rtol=1e-5)
    untouched = [0, 2, 3, 5]
    assert torch.equal(after[untouched], before[untouched])


def test_adagrad_and_sgd_rules_with_rescale_grad_and_eps():
    before, after, rows, grad = one_step("adagrad", rescale_grad=0.5, eps=1e-3)
    w, g = before[rows], grad * 0.5
    np.testing.assert_allclose(after[rows].numpy(), (w - 0.05 * (g / (g * g + 1e-3).sqrt() + 0.1 * w)).numpy(),
                               rtol=1e-5)
    before, after, rows, grad = one_step("sgd", clip_gradient=1.0)
    w = before[rows]
    np.testing.assert_allclose(after[rows].numpy(), (w - 0.05 * ((grad / 4).clamp(-1, 1) + 0.1 * w)).numpy(),
                               rtol=1e-5)


@pytest.mark.parametrize("method, key, check", [
    ("normal", "sigma", lambda t: 0.05 < float(t.std()) < 0.15),
    ("uniform", "scale", lambda t: float(t.abs().max()) <= 0.1 and float(t.abs().max()) > 0.09),
    ("constant", "value", lambda t: bool((t == 0.1).all())),
])
def test_init_methods(method, key, check):
    hp = hyperparameters(2000, 4, factors_init_method=method, **{f"factors_init_{key}": 0.1})
    assert check(fm.Parameters.initial(hp).v)


def test_training_learns_a_planted_interaction():
    """y = x0 x1 only: a linear model cannot fit it, the FM's pairwise term can."""
    rng = np.random.default_rng(0)
    x = (rng.random((4000, 6)) < 0.5).astype(np.float32)
    y = (x[:, 0] * x[:, 1] * 2 - 0.5).astype(np.float32)
    hp = hyperparameters(6, 2, "regressor", factors_lr=0.05, linear_lr=0.05, bias_lr=0.05, factors_init_sigma=0.1)
    trainer = fm.Trainer(hp)
    batches = [(sp.csr_matrix(x[start:start + 200]), y[start:start + 200]) for start in range(0, 4000, 200)]
    for _ in range(15):
        for features, labels in batches:
            trainer.train_batch(features, labels)
    model = FMModel(*trainer.params.numpy(), "regressor")
    rmse = float(np.sqrt(np.mean((model.raw_scores(x) - y) ** 2)))
    linear = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    linear_rmse = float(np.sqrt(np.mean((np.c_[x, np.ones(len(x))] @ linear - y) ** 2)))
    assert rmse < 0.1 < 0.3 < linear_rmse


# -- model_algo-1 ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in EXPECTED if n.startswith("mxnet_")])
def test_reads_mxnet_written_models_dense_and_row_sparse(name):
    want = EXPECTED[name]
    model = FMModel.load_file(FIXTURES / name)
    assert model.predictor_type == want["predictor_type"]
    np.testing.assert_array_equal(model.v, np.array(want["v"], np.float32))
    np.testing.assert_array_equal(model.w[:, 0], np.array(want["w"], np.float32))
    x = np.array(want["inputs"], np.float32)
    np.testing.assert_allclose(model.predict(x)["score"], want["mxnet_predictions"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(sp.csr_matrix(x))["score"], want["mxnet_predictions"], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("predictor_type", artifact.PREDICTOR_TYPES)
def test_save_writes_the_bytes_mxnet_was_checked_on(predictor_type, tmp_path):
    """scripts/make_fm_fixtures.py opened ours_*_model_algo-1 with Module.load; our writer still makes those bytes."""
    name = f"ours_{predictor_type}_model_algo-1"
    want = EXPECTED[name]
    FMModel(want["w0"], want["w"], want["v"], predictor_type).save(tmp_path)
    assert (tmp_path / "model_algo-1").read_bytes() == (FIXTURES / name).read_bytes()
    loaded = FMModel.load(tmp_path)
    x = np.array(want["inputs"], np.float32)
    np.testing.assert_allclose(loaded.predict(x)["score"], want["mxnet_predictions"], rtol=1e-5, atol=1e-6)


def test_symbol_templates_are_the_ones_mxnet_wrote():
    for predictor_type in artifact.PREDICTOR_TYPES:
        nodes = json.loads(artifact.symbol_json(predictor_type))["nodes"]
        assert {n["name"] for n in nodes} >= {"data", "w0_weight", "w1_weight", "v", "out_label", "out"}


@pytest.mark.parametrize("mutate, message", [
    (lambda z, tmp: tmp.joinpath("x").write_bytes(b"not a zip"), "not a Factorization Machines model"),
    (lambda z, tmp: z.writestr("params", b"\0" * 40) or z.writestr("symbol.json", artifact.symbol_json("regressor")),
     "not a readable MXNet NDArray file"),
    (lambda z, tmp: z.writestr("symbol.json", "{}"), "expected symbol.json and params"),
    (lambda z, tmp: z.writestr("params", b"") or z.writestr("symbol.json", '{"nodes": [{"op": "null"}]}'),
     "cannot tell the predictor type"),
])
def test_unreadable_models_are_client_errors(mutate, message, tmp_path):
    import zipfile

    from common.errors import ClientError

    path = tmp_path / "x"
    if "not a Factorization" in message:
        mutate(None, tmp_path)
    else:
        with zipfile.ZipFile(path, "w") as z:
            mutate(z, tmp_path)
    with pytest.raises(ClientError, match=message):
        artifact.load(path)


@pytest.mark.parametrize("kind", ["sgdw", "adamw"])
def test_decoupled_decay_is_applied_to_every_row_every_step(kind):
    """The lazy catch-up equals decaying all rows by (1 - lr wd) at every step, touched or not."""
    d, lr, wd = 5, 0.1, 0.5
    hp = hyperparameters(d, 2, "regressor", linear_lr=lr, linear_wd=wd)
    params = random_params(d, 2, seed=9)
    eager = params.w.clone()
    opt = fm.Optimizer(params, hp, kind)
    group = opt.groups["linear"]
    for step, rows in enumerate([[0], [0, 1], [0], [3], [0]], start=1):
        rows = torch.tensor(rows)
        before = params.w.clone()
        group.step(params.w, rows, torch.zeros(len(rows), 1), n=1)  # zero gradient: only the decay acts
        eager *= 1 - lr * wd
        np.testing.assert_allclose(params.w[rows].numpy(), eager[rows].numpy(), rtol=1e-5)
        untouched = [i for i in range(d) if i not in rows.tolist()]
        assert torch.equal(params.w[untouched], before[untouched])  # nothing done to them yet
    group.finish(params.w)
    np.testing.assert_allclose(params.w.numpy(), eager.numpy(), rtol=1e-5)


def test_lr_decay_scales_every_group_and_settles_lazy_decay_at_the_old_rate():
    """end_epoch multiplies the rates by lr_decay; sgdw's rows untouched since are first decayed at the old rate."""
    d, lr, wd = 5, 0.1, 0.5
    hp = hyperparameters(d, 2, "regressor", linear_lr=lr, linear_wd=wd, factors_lr=lr, bias_lr=lr, lr_decay=0.5,
                         optimizer="sgdw")
    trainer = fm.Trainer(hp)
    group = trainer.optimizer.groups["linear"]
    eager = trainer.params.w.clone()
    for rate, steps in ((lr, 3), (lr / 2, 2)):
        for _ in range(steps):
            group.step(trainer.params.w, torch.tensor([0]), torch.zeros(1, 1), n=1)
            eager *= 1 - rate * wd
        trainer.end_epoch()
    np.testing.assert_allclose(trainer.params.w.numpy(), eager.numpy(), rtol=1e-5)  # rows 1-4 never touched
    assert {name: g.lr for name, g in trainer.optimizer.groups.items()} == pytest.approx(
        {"bias": lr / 4, "linear": lr / 4, "factors": lr / 4})
