"""XGBoost ranking (``rank:*`` with query groups) and survival (``survival:aft`` with label bounds) through the
real ``algobox xgboost train`` and ``serve``: the model equals ``xgboost.train`` on the same rows, the metric
lines carry ndcg/map/aft-nloglik, early stopping follows each metric's direction, bad layouts are named."""

import io
import re

import numpy as np
import pytest
import requests
import xgboost as xgb

from common import protobuf, recordio
from common.spec import load_spec
from containers.xgboost.model import XGBoostModel
from emulator import serve


def csv_bytes(*columns, blank_inf=False):
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack(columns), delimiter=",", fmt="%.9g")
    text = buffer.getvalue()
    if blank_inf:  # an empty upper bound is right-censored
        text = re.sub(r"(?<=,)inf(?=,)", "", text)
    return text.encode()


def parquet_bytes(*columns):
    import pyarrow as pa
    import pyarrow.parquet as pq

    matrix = np.column_stack(columns).astype(np.float32)
    buffer = io.BytesIO()
    pq.write_table(pa.table({f"c{j}": matrix[:, j] for j in range(matrix.shape[1])}), buffer)
    return buffer.getvalue()


def ranking_rows(queries=40, seed=0):
    """Queries of 3-12 documents, relevance 0-3 from the features; rows of a query together, query ids not
    sorted (they are runs, as the library's CLI groups are)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 13, queries)
    ids = rng.permutation(1000)[:queries]
    qid = np.repeat(ids, sizes)
    x = rng.normal(size=(qid.size, 5)).astype(np.float32)
    score = x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] + rng.normal(scale=0.3, size=qid.size)
    y = np.clip(np.round(score + 1.5), 0, 3).astype(np.float32)
    return x, y, qid, sizes


def aft_rows(n=400, seed=0):
    """Survival times exp(x w + noise); a third right-censored (upper bound inf), a few interval-censored."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    time = np.exp(0.8 * x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.3, size=n) + 2).astype(np.float32)
    lower, upper = time.copy(), time.copy()
    censored = rng.random(n) < 0.33
    upper[censored] = np.inf
    interval = ~censored & (rng.random(n) < 0.1)
    lower[interval] *= 0.8
    return x, lower, upper


def train(job, data, content_type, hp, mode="File", validation=None, csv_weights=None):
    if mode == "File":
        job.add_file("train", "data", data)
    else:
        job.add_pipe("train", [data])
    channels = {"train": {"TrainingInputMode": mode, "ContentType": content_type}}
    if validation is not None:
        job.add_file("validation", "validation", validation)
        channels["validation"] = {"ContentType": content_type}
    job.write_config({k: str(v) for k, v in hp.items()}, channels)
    return job.train("xgboost")


def booster(result):
    return XGBoostModel.load(result.model_dir).booster


RANK = {"objective": "rank:ndcg", "max_depth": 3, "eta": 0.3, "seed": 1}


@pytest.mark.parametrize("fmt,mode", [("csv", "File"), ("csv", "Pipe"), ("parquet", "File")])
def test_ranking_with_a_query_id_column_equals_xgboost_train(job, fmt, mode):
    x, y, qid, sizes = ranking_rows()
    y = (y >= 2).astype(np.float32)  # map needs binary relevance
    data = csv_bytes(y, qid, x) if fmt == "csv" else parquet_bytes(y, qid, x)
    content_type = "text/csv" if fmt == "csv" else "application/x-parquet"
    result = train(job, data, content_type, {**RANK, "num_round": 8, "eval_metric": "ndcg@5,map@3"}, mode)
    assert result.returncode == 0, result.output[-4000:]
    reference = xgb.train(RANK, xgb.QuantileDMatrix(x, label=y, group=sizes), 8)
    np.testing.assert_allclose(booster(result).predict(xgb.DMatrix(x)), reference.predict(xgb.DMatrix(x)),
                               atol=1e-6)
    assert f"{len(sizes)} query groups" in result.output
    lines = [line for line in result.output.splitlines() if re.search(r"\[\d+\]\ttrain-ndcg@5:\S+\ttrain-map@3:", line)]
    assert len(lines) == 8


def libsvm_ranking_bytes(y, qid, x, weights=None, comment=False):
    """``label[:weight] qid:<n> 0:v 1:v ...`` per row (zero-based, every value written, %.9g: float32 exact);
    ``comment``: a comment on the first line (common's parser reads that block, not the library's)."""
    lines = []
    for i in range(len(y)):
        label = f"{y[i]:g}" if weights is None else f"{y[i]:g}:{weights[i]:.9g}"
        features = " ".join(f"{j}:{v:.9g}" for j, v in enumerate(x[i]))
        lines.append(f"{label} qid:{qid[i]} {features}" + (" # first query" if comment and i == 0 else ""))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("parser,mode", [("library", "File"), ("library", "Pipe"), ("common", "File")])
def test_ranking_from_libsvm_qid_equals_xgboost_train(job, tmp_path, parser, mode):
    """libsvm ``qid:`` gives the query groups, through the library's parser (a plain file) and common's (a block
    with a comment), with per-query weights (``label:weight``); the model equals ``xgboost.train`` on the
    library's own reading of the same file (its libsvm loader takes qid too; the weights set per group) and on
    the arrays with ``qid``."""
    x, y, qid, sizes = ranking_rows(50)
    group_weights = np.random.default_rng(5).uniform(0.5, 2, len(sizes)).astype(np.float32)
    weights = np.repeat(group_weights, sizes)
    data = libsvm_ranking_bytes(y, qid, x, weights, comment=parser == "common")
    hp = {**RANK, "objective": "rank:pairwise", "num_round": 8, "eval_metric": "ndcg@5"}
    result = train(job, data, "text/libsvm", hp, mode)
    assert result.returncode == 0, result.output[-4000:]
    assert f"{len(sizes)} query groups" in result.output and "weighted per group" in result.output
    got = booster(result).predict(xgb.DMatrix(x))
    params = {k: v for k, v in hp.items() if k != "num_round"}
    runs = np.repeat(np.arange(len(sizes)), sizes)  # the library's qid= wants them ascending: the same runs
    by_qid = xgb.train(params, xgb.QuantileDMatrix(x, label=y, qid=runs, weight=group_weights), 8)
    np.testing.assert_allclose(got, by_qid.predict(xgb.DMatrix(x)), atol=1e-6)
    path = tmp_path / "same.libsvm"
    path.write_bytes(libsvm_ranking_bytes(y, qid, x))  # the library's loader refuses a weight per row with qid
    library = xgb.DMatrix(f"{path}?format=libsvm", silent=True)
    assert (np.diff(library.get_uint_info("group_ptr")) == sizes).all()
    library.set_weight(group_weights)
    np.testing.assert_allclose(got, xgb.train(params, library, 8).predict(xgb.DMatrix(x)), atol=1e-6)
    unweighted = xgb.train(params, xgb.QuantileDMatrix(x, label=y, qid=runs), 8).predict(xgb.DMatrix(x))
    assert np.abs(unweighted - got).max() > 1e-3  # the weights count


@pytest.mark.parametrize("data,message,line", [
    (b"1 qid:1 0:1\n0 0:2\n2 qid:2 0:3\n", "some libsvm lines give a query id (qid:) and others do not", 2),
    (b"1 qid:1 0:1\n0 qid:1 qid:2 0:2\n", "more than one qid:", 2),
    (b"1 qid:1 0:1\n0 qid:1.5 0:2\n", "libsvm query id '1.5' is not a whole number", 2),
    (b"1 qid:1 0:1\n0 qid:2 0:2\n1 qid:1 0:2\n", "the rows of query id 1 are not together", None),
    (b"1 0:1\n0 0:2\n", "ranking objectives need a query id on every libsvm line", 1),
])
def test_bad_libsvm_query_ids_are_client_errors_naming_the_line(job, data, message, line):
    result = train(job, data, "text/libsvm", {**RANK, "num_round": 2})
    assert result.returncode == 1, result.output[-3000:]
    first = result.failure.splitlines()[0]
    assert first.startswith("ClientError") and message in first, result.failure
    if line is not None:
        assert f"record {line})" in first, first


def test_libsvm_qid_in_common_parser_is_a_column_or_skipped():
    """common's parser (used by the serving codec and the training readers): qid kept per row, skipped, or
    refused; comments and blank lines do not shift it; a buffer without qid has none."""
    from common import libsvm
    from common.errors import DataError

    text = b"1 qid:3 0:1.5 1:2\n0\tqid:3 0:2 # qid:9\n\n2:0.5 qid:4 1:1\nqid:5 1:3\n"
    kept = libsvm.parse(text, qid="keep", labels="optional")
    assert kept.qid.tolist() == [3, 3, 4, 5] and kept.lines.tolist() == [1, 2, 4, 5]
    skipped = libsvm.parse(text, labels="optional")
    assert skipped.qid is None and (skipped.matrix() != kept.matrix()).nnz == 0
    assert libsvm.parse(b"1 0:1\n", qid="keep").qid is None
    largest = libsvm.parse(b"1 qid:9223372036854775807 0:1\n0 qid:0 0:2", qid="keep")  # no last newline
    assert largest.qid.tolist() == [2**63 - 1, 0]
    for bad, line in ((b"1 qid:9223372036854775808 0:1\n", 1), (b"1 qid:1 0:1\n1 qid: 0:1\n", 2),
                      (b"1 qid:1 0:1\n1 qid:7a 0:1\n", 2), (b"1 qid:-3 0:1\n", 1)):
        with pytest.raises(DataError, match=rf"libsvm query id '.*' is not a whole number .*record {line}\)"):
            libsvm.parse(bad, "f", qid="keep")
    with pytest.raises(DataError, match=r"not supported here \(file f, record 1\)"):
        libsvm.parse(text, "f", qid="refuse")


def test_ranking_weights_are_per_query_and_validation_metrics_stop_early(job):
    x, y, qid, sizes = ranking_rows(60)
    rng = np.random.default_rng(3)
    group_weights = rng.uniform(0.5, 2, len(sizes)).astype(np.float32)
    weights = np.repeat(group_weights, sizes)
    vx, vy, vqid, vsizes = ranking_rows(30, seed=1)
    spec = load_spec("xgboost")
    metric = next(m for m in spec.metrics if m.name == "validation:ndcg")
    assert metric.direction == "Maximize"
    hp = {**RANK, "objective": "rank:pairwise", "eta": 0.9, "max_depth": 6, "num_round": 100,
          "early_stopping_rounds": 3, "eval_metric": "ndcg", "csv_weights": 1}
    result = train(job, csv_bytes(y, weights, qid, x), "text/csv", hp,
                   validation=csv_bytes(vy, np.ones_like(vy), vqid, vx))
    assert result.returncode == 0, result.output[-4000:]
    cloudwatch = [line.replace("\t", "#011") for line in result.output.splitlines()]
    values = [float(m.group(1)) for line in cloudwatch if (m := re.match(metric.regex, line))]
    model = booster(result)
    best = int(model.attr("best_iteration"))
    assert 3 < len(values) < 100 and len(values) == best + 4
    assert values[best] == max(values)  # the highest ndcg, not the lowest
    library = {k: v for k, v in hp.items() if k not in ("num_round", "early_stopping_rounds", "csv_weights")}
    reference = xgb.train(library, xgb.QuantileDMatrix(x, label=y, group=sizes, weight=group_weights), len(values))
    np.testing.assert_allclose(model.predict(xgb.DMatrix(x)), reference.predict(xgb.DMatrix(x)), atol=1e-6)
    unweighted = xgb.train(library, xgb.QuantileDMatrix(x, label=y, group=sizes), len(values))
    assert np.abs(unweighted.predict(xgb.DMatrix(x)) - reference.predict(xgb.DMatrix(x))).max() > 1e-3


AFT = {"objective": "survival:aft", "aft_loss_distribution": "logistic", "aft_loss_distribution_scale": 1.2,
       "max_depth": 3, "eta": 0.3, "seed": 1}


@pytest.mark.parametrize("fmt,mode", [("csv", "File"), ("recordio", "Pipe"), ("parquet", "Pipe")])
def test_survival_aft_with_label_bounds_equals_xgboost_train(job, fmt, mode):
    x, lower, upper = aft_rows()
    if fmt == "csv":
        data, content_type = csv_bytes(lower, upper, x, blank_inf=True), "text/csv"
        assert b",," in data  # right-censored rows have an empty upper bound
    elif fmt == "recordio":
        data = b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(x, np.column_stack([lower, upper])))
        content_type = "application/x-recordio-protobuf"
    else:
        data, content_type = parquet_bytes(lower, upper, x), "application/x-parquet"
    hp = {**AFT, "num_round": 10, "eval_metric": "aft-nloglik,interval-regression-accuracy"}
    vx, vlower, vupper = aft_rows(150, seed=1)
    validation = None
    if fmt == "csv":
        validation = csv_bytes(vlower, vupper, vx, blank_inf=True)
    result = train(job, data, content_type, hp, mode, validation=validation)
    assert result.returncode == 0, result.output[-4000:]
    reference = xgb.train(AFT, xgb.QuantileDMatrix(x, label_lower_bound=lower, label_upper_bound=upper), 10)
    np.testing.assert_allclose(booster(result).predict(xgb.DMatrix(x)), reference.predict(xgb.DMatrix(x)),
                               rtol=1e-6)
    name = "validation" if validation else "train"
    lines = [line for line in result.output.splitlines()
             if re.search(rf"\t{name}-aft-nloglik:\S+\t{name}-interval-regression-accuracy:\S+", line)]
    assert len(lines) == 10
    spec = load_spec("xgboost")
    directions = {m.name: m.direction for m in spec.metrics}
    assert directions["validation:aft-nloglik"] == "Minimize"
    assert directions["validation:interval-regression-accuracy"] == "Maximize"


def test_ranking_and_survival_models_serve_their_scores(job, tmp_path):
    x, y, qid, _ = ranking_rows()
    result = train(job, csv_bytes(y, qid, x), "text/csv", {**RANK, "num_round": 5})
    assert result.returncode == 0, result.output[-4000:]
    expected = booster(result).predict(xgb.DMatrix(x[:20]))
    body = csv_bytes(x[:20])
    with serve("xgboost", job.root, env={"SAGEMAKER_INFERENCE_OUTPUT": "predicted_score"}) as server:
        response = requests.post(server.url + "/invocations", data=body,
                                 headers={"Content-Type": "text/csv", "Accept": "application/json"})
    assert response.status_code == 200, response.text
    scores = [p["predicted_score"] for p in response.json()["predictions"]]
    np.testing.assert_allclose(scores, expected, rtol=1e-5)

    x, lower, upper = aft_rows()
    root = tmp_path / "aft"
    (root / "model").mkdir(parents=True)
    model = xgb.train(AFT, xgb.QuantileDMatrix(x, label_lower_bound=lower, label_upper_bound=upper), 5)
    (root / "model" / "xgboost-model").write_bytes(bytes(model.save_raw("ubj")))
    with serve("xgboost", root) as server:
        response = requests.post(server.url + "/invocations", data=csv_bytes(x[:20]),
                                 headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.loadtxt(io.StringIO(response.text)), model.predict(xgb.DMatrix(x[:20])), rtol=1e-5)


@pytest.mark.parametrize("case,message", [
    ("recordio-rank", "ranking objectives need a query id per row; application/x-recordio-protobuf"),
    ("split-query", "the rows of query id 7 are not together"),
    ("fraction-qid", "query id 1.5 is not a non-negative integer"),
    ("weights-in-query", "every row of a query must carry the same weight"),
    ("aft-libsvm", "survival:aft needs a lower and an upper bound per row"),
    ("aft-bounds", "0 <= lower <= upper"),
    ("aft-label-size", "two label columns"),
])
def test_bad_layouts_are_client_errors_naming_what(job, case, message):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 2, 0], np.float32)
    content_type, hp = "text/csv", {**RANK, "num_round": 2}
    if case == "recordio-rank":
        data = b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(x, y))
        content_type = "application/x-recordio-protobuf"
    elif case == "split-query":
        data = csv_bytes(y, [7, 7, 8, 8, 7, 7], x)
    elif case == "fraction-qid":
        data = csv_bytes(y, [1, 1, 1.5, 2, 2, 2], x)
    elif case == "weights-in-query":
        data = csv_bytes(y, [1, 1, 1, 1, 2, 1], [1, 1, 2, 2, 2, 2], x)  # label, weight, query id
        hp["csv_weights"] = 1
    else:
        hp = {**AFT, "num_round": 2}
        data = csv_bytes([1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7], x)
        if case == "aft-libsvm":
            data, content_type = b"1 0:1\n2 0:2\n", "text/libsvm"
        elif case == "aft-bounds":
            data = csv_bytes([1, 2, 3, 4, 5, 6], [2, 3, 1, 5, 6, 7], x)
        elif case == "aft-label-size":
            content_type = "text/csv;label_size=3"
    result = train(job, data, content_type, hp)
    assert result.returncode == 1, result.output[-3000:]
    assert message in result.failure, result.failure
    if case == "aft-bounds":
        assert "line 3" in result.failure or "record 3" in result.failure, result.failure


def test_query_groups_that_span_chunks_stay_whole(tmp_path):
    """Chunks (the readers' 16 MB blocks) end anywhere; a group cut at a chunk's end must not count as two.
    In-process: 25-row weighted chunks across groups of 3-12 rows give the model of the whole matrix; two
    hosts' slices of a chunk are cut at a group's start."""
    from containers.xgboost.data import Chunk
    from containers.xgboost.matrix import build, spill_channel

    x, y, qid, sizes = ranking_rows(60)
    weights = np.repeat(np.random.default_rng(4).uniform(0.5, 2, len(sizes)), sizes).astype(np.float32)
    chunks = [Chunk(x[i:i + 25], y[i:i + 25], weights[i:i + 25], "part", qid[i:i + 25]) for i in range(0, len(y), 25)]
    spill = spill_channel("train", iter(chunks), directory=tmp_path)
    matrix = build(spill, x.shape[1], quantile=True)
    assert (np.diff(matrix.get_uint_info("group_ptr")) == sizes).all()
    params = {**RANK, "objective": "rank:pairwise"}
    got = xgb.train(params, matrix, 5).predict(xgb.DMatrix(x))
    group_weights = weights[np.r_[0, np.cumsum(sizes)[:-1]]]
    expected = xgb.train(params, xgb.QuantileDMatrix(x, label=y, group=sizes, weight=group_weights), 5)
    np.testing.assert_allclose(got, expected.predict(xgb.DMatrix(x)), atol=1e-6)
    halves = [spill_channel("train", iter(chunks), shard=(rank, 2), directory=tmp_path) for rank in (0, 1)]
    assert sum(h.rows for h in halves) == len(y)
    assert sum(len(h.groups()[0]) for h in halves) <= len(sizes) + len(chunks)  # cut only at chunk ends
