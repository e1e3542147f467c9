"""XGBoost training through the real ``algobox xgboost train`` on an emulated platform: every input format in
File and Pipe mode gives the model ``xgboost.train`` gives on the same rows; metric lines; early stopping;
checkpoints and resuming; SIGTERM; two hosts; hyperparameter errors."""

import gzip
import io
import json
import re
import signal

import numpy as np
import pytest
import scipy.sparse as sp
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_digits

from common import protobuf, recordio
from common.spec import load_spec
from containers.xgboost.model import XGBoostModel
from emulator import Job, free_port

PARAMS = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "eval_metric": "auc,logloss", "seed": 1}


@pytest.fixture(scope="module")
def cancer():
    x, y = load_breast_cancer(return_X_y=True)
    return x.astype(np.float32), y.astype(np.float32)


def csv_bytes(*columns):
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack(columns), delimiter=",", fmt="%.9g")
    return buffer.getvalue().encode()


def libsvm_bytes(x, y, weights=None, base=0, sparse=False):
    """Every value is written (an explicit 0 is a value); ``sparse`` leaves zeros out (absent = missing)."""
    lines = []
    for i, row in enumerate(x):
        head = f"{y[i]:g}" + (f":{weights[i]:g}" if weights is not None else "")
        lines.append(head + "".join(f" {j + base}:{v:.9g}" for j, v in enumerate(row)
                                    if v == v and (v != 0 or not sparse)))
    return ("\n".join(lines) + "\n").encode()


def recordio_bytes(x, y):
    return b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(x, y))


def parquet_bytes(x, y):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"label": y, **{f"f{j}": x[:, j] for j in range(x.shape[1])}})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def reference(x, y, params, rounds, weights=None):
    """What a user gets from the library directly on the same rows."""
    library = {k: v for k, v in params.items() if k not in ("eval_metric", "num_round")}
    return xgb.train(library, xgb.QuantileDMatrix(x, label=y, weight=weights, missing=np.nan), rounds)


def served(result):
    return XGBoostModel.load(result.model_dir)


def train_job(job, data, content_type, hp, mode="File", name="data", validation=None, env=None):
    if mode == "File":
        job.add_file("train", name, data)
    else:
        job.add_pipe("train", [data])
    channels = {"train": {"TrainingInputMode": mode, **({"ContentType": content_type} if content_type else {})}}
    if validation is not None:
        job.add_file("validation", "validation", validation)
        channels["validation"] = {"ContentType": content_type} if content_type else {}
    job.write_config(hp, channels)
    result = job.train("xgboost", env=env)
    assert result.returncode == 0, result.output[-4000:]
    assert result.model_files == ["xgboost-model"]
    return result


@pytest.mark.parametrize("fmt,mode", [("csv", "File"), ("csv", "Pipe"), ("libsvm", "File"), ("libsvm", "Pipe"),
                                      ("recordio", "Pipe"), ("parquet", "File"), ("parquet", "Pipe")])
def test_every_format_and_mode_equals_xgboost_train(job, cancer, fmt, mode):
    x, y = cancer
    make, content_type = {
        "csv": (lambda: csv_bytes(y, x), "text/csv"),
        "libsvm": (lambda: libsvm_bytes(x, y, base=1), None),  # the default content type; one-based indices
        "recordio": (lambda: recordio_bytes(x, y), "application/x-recordio-protobuf"),
        "parquet": (lambda: parquet_bytes(x, y), "application/x-parquet"),
    }[fmt]
    data = make()
    result = train_job(job, data, content_type, {**PARAMS, "num_round": 10}, mode)
    model = served(result)
    expected = reference(x, y, PARAMS, 10).predict(xgb.DMatrix(x))
    np.testing.assert_allclose(model.raw_predict(x), expected, atol=1e-6)
    assert model.booster.num_boosted_rounds() == 10
    lines = [line for line in result.output.splitlines() if "]\ttrain-auc:" in line]
    assert len(lines) == 10
    assert model.booster.attr("algobox_libsvm_one_based") == ("1" if fmt == "libsvm" else None)


def test_csv_weights_and_missing_values_gzip(job, cancer):
    x, y = cancer
    x = x.copy()
    rng = np.random.default_rng(0)
    x[rng.random(x.shape) < 0.1] = np.nan
    weights = rng.uniform(0.5, 2, len(y)).astype(np.float32)
    text = csv_bytes(y, weights, x).replace(b"nan", b"")  # empty fields are missing values
    job.add_file("train", "part.csv.gz", gzip.compress(text))
    job.write_config({**PARAMS, "num_round": 8, "csv_weights": 1},
                     {"train": {"ContentType": "text/csv", "CompressionType": "Gzip"}})
    result = job.train("xgboost")
    assert result.returncode == 0, result.output[-3000:]
    expected = reference(x, y, PARAMS, 8, weights).predict(xgb.DMatrix(x, missing=np.nan))
    np.testing.assert_allclose(served(result).raw_predict(x), expected, atol=1e-6)
    unweighted = reference(x, y, PARAMS, 8).predict(xgb.DMatrix(x, missing=np.nan))
    assert np.abs(unweighted - expected).max() > 1e-3  # the weights mattered


def test_libsvm_weights_zero_based_sparse(job):
    rng = np.random.default_rng(1)
    dense = rng.random((300, 20)).astype(np.float32)
    dense[dense < 0.6] = 0
    y = (dense[:, 0] + dense[:, 3] > 0.5).astype(np.float32)
    weights = rng.uniform(0.5, 2, 300).astype(np.float32)
    data = libsvm_bytes(dense, y, weights, base=0, sparse=True)
    result = train_job(job, data, "text/libsvm", {**PARAMS, "num_round": 6})
    matrix = sp.csr_matrix(dense)
    model = served(result)
    expected = xgb.train({k: v for k, v in PARAMS.items() if k != "eval_metric"},
                         xgb.QuantileDMatrix(matrix, label=y, weight=weights), 6).predict(xgb.DMatrix(matrix))
    np.testing.assert_allclose(model.raw_predict(matrix), expected, atol=1e-6)
    assert model.booster.attr("algobox_libsvm_one_based") == "0"
    assert "libsvm indices are zero-based" in result.output


def test_metric_lines_match_the_builtin_regexes_and_early_stopping_keeps_the_best(job, cancer):
    x, y = cancer
    spec = load_spec("xgboost")
    regexes = {m.name: m.regex for m in spec.metrics}
    assert regexes["validation:auc"] == r".*\[[0-9]+\].*#011validation-auc:(\S+)"
    order = np.random.default_rng(2).permutation(len(y))
    train, valid = order[:300], order[300:]
    hp = {**PARAMS, "eta": 0.9, "max_depth": 6, "num_round": 200, "early_stopping_rounds": 3,
          "eval_metric": "error,logloss"}
    result = train_job(job, csv_bytes(y[train], x[train]), "text/csv", hp,
                       validation=csv_bytes(y[valid], x[valid]))
    cloudwatch = [line.replace("\t", "#011") for line in result.output.splitlines()]
    values = [float(m.group(1)) for line in cloudwatch if (m := re.match(regexes["validation:logloss"], line))]
    assert 3 < len(values) < 200  # stopped early
    model = served(result)
    best = int(model.booster.attr("best_iteration"))
    assert best == int(np.argmin(values)) and len(values) == best + 1 + 3
    assert model.iteration_range == (0, best + 1)
    np.testing.assert_allclose(model.raw_predict(x[valid]), model.booster.predict(
        xgb.DMatrix(x[valid]), iteration_range=(0, best + 1)), atol=1e-7)
    assert not np.allclose(model.booster.predict(xgb.DMatrix(x[valid])), model.raw_predict(x[valid]))


def test_checkpoints_every_round_and_a_restarted_job_resumes(job, tmp_path, cancer):
    x, y = cancer
    (job.root / "checkpoints").mkdir()
    first = train_job(job, csv_bytes(y, x), "text/csv", {**PARAMS, "num_round": 7})
    names = sorted((job.root / "checkpoints").iterdir(), key=lambda p: int(p.suffix[1:]))
    assert [p.name for p in names] == [f"xgboost-checkpoint.{i}" for i in range(2, 7)]  # the newest five
    assert "Resuming" not in first.output
    # the platform restarts the job (spot interruption) with a longer num_round: it boosts only what is left
    job.write_config({**PARAMS, "num_round": 10}, {"train": {"ContentType": "text/csv"}})
    second = job.train("xgboost")
    assert second.returncode == 0, second.output[-3000:]
    assert "Resuming from checkpoint" in second.output and "7 of 10 rounds done" in second.output
    assert len([line for line in second.output.splitlines() if "]\ttrain-auc:" in line]) == 3
    np.testing.assert_allclose(served(second).raw_predict(x), reference(x, y, PARAMS, 10).predict(xgb.DMatrix(x)),
                               atol=1e-6)


def test_sigterm_saves_the_model_so_far(job):
    rng = np.random.default_rng(3)
    x = rng.random((20000, 20)).astype(np.float32)
    y = (x[:, 0] + rng.normal(0, 0.3, 20000) > 0.5).astype(np.float32)
    job.add_file("train", "data.csv", csv_bytes(y, x))
    job.write_config({**PARAMS, "num_round": 100000, "max_depth": 8}, {"train": {"ContentType": "text/csv"}})
    process = job.start_train("xgboost")
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "]\ttrain-auc:" in line and line.split("[")[-1].startswith("3]"):
            break
    process.send_signal(signal.SIGTERM)
    result = job.result(process)
    output = "".join(seen) + result.output
    assert result.returncode == 0, output[-3000:]
    rounds = served(result).booster.num_boosted_rounds()
    assert 4 <= rounds < 100000
    assert f"the model of {rounds} rounds will be saved" in output


def test_two_hosts_equal_one_host(tmp_path):
    """Two real processes in xgboost's collective, each reading half of the rows; the model equals one host's."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 40, size=(4000, 8)).astype(np.float32)  # fewer values than bins: exact cuts everywhere
    y = (x[:, 0] + x[:, 1] + rng.normal(0, 5, 4000) > 40).astype(np.float32)
    data = csv_bytes(y, x)
    hp = {**PARAMS, "num_round": 8, "max_depth": 4}
    env = {"ALGOBOX_HOST_ADDRESSES": json.dumps({"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}),
           "ALGOBOX_DIST_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    jobs, processes = [], []
    for host in ("algo-1", "algo-2"):
        job = Job(tmp_path / host)
        job.add_file("train", "data.csv", data)
        job.write_config(hp, {"train": {"ContentType": "text/csv"}}, hosts=("algo-1", "algo-2"), current_host=host)
        jobs.append(job)
        processes.append(job.start_train("xgboost", env))
    results = [job.result(p, timeout=300) for job, p in zip(jobs, processes)]
    for result in results:
        assert result.returncode == 0, result.output[-3000:]
    assert results[0].model_files == ["xgboost-model"] and results[1].model_files == []
    assert "Joining xgboost's collective of 2 hosts as rank 1" in results[1].output
    # the second host leaves after the first has saved (local mode stops all containers when one exits)
    assert "Waiting for algo-1 to write the model" in results[1].output
    assert "Channel train: 2000 rows" in results[0].output and "Channel train: 2000 rows" in results[1].output
    single = Job(tmp_path / "single")
    one = train_job(single, data, "text/csv", hp)
    np.testing.assert_allclose(served(results[0]).raw_predict(x), served(one).raw_predict(x), atol=1e-5)


def test_multiclass_softprob_with_removed_names_mapped(job):
    x, y = load_digits(return_X_y=True)
    x, y = x[:600].astype(np.float32), y[:600].astype(np.float32)
    hp = {"objective": "multi:softprob", "num_class": 10, "num_round": 4, "max_depth": 3, "silent": 1,
          "lambda_bias": 0.1, "sketch_eps": 0.03, "tree_method": "hist", "eval_metric": "mlogloss,merror"}
    result = train_job(job, csv_bytes(y, x), "text/csv", hp)
    for notice in ("silent was removed", "lambda_bias was removed", "sketch_eps was removed"):
        assert notice in result.output
    model = served(result)
    probabilities = model.raw_predict(x)
    assert probabilities.shape == (600, 10)
    expected = reference(x, y, {k: v for k, v in hp.items() if k not in ("silent", "lambda_bias", "sketch_eps")},
                         4).predict(xgb.DMatrix(x))
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_reg_linear_and_monotone_constraints_by_index(job):
    rng = np.random.default_rng(5)
    x = rng.random((500, 6)).astype(np.float32)
    y = (3 * x[:, 2] - 2 * x[:, 4] + rng.normal(0, 0.1, 500)).astype(np.float32)
    hp = {"objective": "reg:linear", "num_round": 10, "monotone_constraints": '{"2": 1, "4": -1}'}
    result = train_job(job, csv_bytes(y, x), "text/csv", hp)
    assert "reg:linear was renamed reg:squarederror" in result.output
    assert "'monotone_constraints': '(0,0,1,0,-1,0)'" in result.output
    grid = np.tile(x[:1], (50, 1))
    grid[:, 2] = np.linspace(0, 1, 50)
    assert np.all(np.diff(served(result).raw_predict(grid)) >= 0)


@pytest.mark.parametrize("hp,message", [
    ({"updater": "grow_nothing"}, "Invalid hyperparameter updater='grow_nothing'"),
    ({"eval_metric": "auc", "objective": "reg:squarederror"}, "auc applies to classification"),
    ({"objective": "multi:softmax"}, "Missing hyperparameter num_class"),
    ({"eval_metric": "bogus_metric"}, "Invalid hyperparameter eval_metric='bogus_metric'"),
    ({"max_depth": "-1"}, "Invalid hyperparameter max_depth='-1'"),
    ({"interaction_constraints": "[[0, 1], [x]]"}, "Invalid hyperparameter interaction_constraints"),
    ({"device": "cuda"}, "device=cuda"),
    ({"early_stopping_rounds": 3}, "early stopping watches the validation channel"),
])
def test_bad_hyperparameters_are_client_errors_naming_them(job, hp, message):
    job.add_file("train", "data.csv", b"1,0.5,0.25\n0,0.1,0.2\n")
    job.write_config({"num_round": 3, **hp}, {"train": {"ContentType": "text/csv"}})
    result = job.train("xgboost")
    if hp.get("device") == "cuda" and xgb.build_info().get("USE_CUDA"):
        pytest.skip("this xgboost has CUDA")  # the GPU image accepts device=cuda
    assert result.returncode == 1, result.output[-2000:]
    first = result.failure.splitlines()[0]
    assert first.startswith("ClientError: ") and message in first, first
    assert "Stack trace" not in first and "/workspace/" not in first


@pytest.mark.parametrize("data,message", [
    (b"1 1:0.5\n0 2:x\n", "libsvm token '2:x' is not <index>:<value> (file"),
    (b"1:2 1:0.5\n0:1 1:1\n1 1:2\n", "some libsvm lines give a weight (label:weight) and others do not (file"),
    (b"1 qid:3 1:0.5\n0 qid:x 1:2\n", "libsvm query id 'x' is not a whole number in [0, 9223372036854775807] "
                                        "(file"),
])
def test_bad_libsvm_names_the_line(job, data, message):
    job.add_file("train", "bad.libsvm", data)
    job.write_config({"num_round": 2}, {"train": {}})
    result = job.train("xgboost")
    assert result.returncode == 1
    assert message in result.failure.splitlines()[0], result.failure


def test_libsvm_query_ids_are_ignored_without_a_ranking_objective(job, cancer):
    """A ranking file (``qid:``) trains a binary model as the library does with it: the query ids unused."""
    x, y = cancer
    plain = libsvm_bytes(x, y).decode().splitlines()
    data = "".join(f"{line.split(' ', 1)[0]} qid:{i // 10} {line.split(' ', 1)[1]}\n" for i, line in enumerate(plain))
    result = train_job(job, data.encode(), "text/libsvm", {**PARAMS, "num_round": 3})
    assert result.returncode == 0, result.output[-3000:]
    assert "libsvm qid: tokens ignored (query groups are for rank:* objectives)" in result.output
    expected = reference(x, y, PARAMS, 3).predict(xgb.DMatrix(x))
    np.testing.assert_allclose(served(result).raw_predict(x), expected, atol=1e-6)


@pytest.mark.parametrize("fmt,mode", [("csv", "File"), ("csv", "Pipe"), ("libsvm", "File"), ("libsvm", "Pipe")])
def test_a_last_line_without_its_newline_is_read(job, cancer, fmt, mode):
    x, y = cancer
    data = (csv_bytes(y, x) if fmt == "csv" else libsvm_bytes(x, y)).rstrip(b"\n")
    result = train_job(job, data, "text/csv" if fmt == "csv" else "text/libsvm", {**PARAMS, "num_round": 3}, mode)
    assert f"Channel train: {len(y)} rows" in result.output
    expected = reference(x, y, PARAMS, 3).predict(xgb.DMatrix(x))
    np.testing.assert_allclose(served(result).raw_predict(x), expected, atol=1e-6)


def test_the_shared_line_splitter_keeps_lines_whole_and_counts_them():
    """common's splitter, as xgboost calls it (a block size, the last line ended)."""
    from common.csv_reader import line_blocks

    text = b"".join(b"%d,%s\n" % (i, b"x" * (i % 7)) for i in range(200)) + b"1," + b"y" * 100
    blocks = list(line_blocks(io.BytesIO(text), 64, terminate=True))
    assert b"".join(b for b, _ in blocks) == text + b"\n"
    assert all(b.endswith(b"\n") for b, _ in blocks)
    before = 0
    for block, lines_before in blocks:
        assert lines_before == before
        before += block.count(b"\n")
    assert blocks[-1][0] == b"1," + b"y" * 100 + b"\n"  # longer than a block: a block of its own
    assert list(line_blocks(io.BytesIO(b"a\nb"), 64))[-1] == (b"b", 1)  # as before for the other readers


def test_csv_blocks_parsed_ahead_keep_their_order_and_a_stop_comes_after_them():
    from containers.xgboost.data import parsed_ahead

    class Stop(Exception):
        pass

    def blocks():
        for i in range(5):
            yield b"%d\n" % i, i
        raise Stop()  # a stop during a Pipe read, after whole lines

    got = []
    with pytest.raises(Stop):
        for block, lines_before, parsed in parsed_ahead(blocks(), lambda b, n: int(b) * 10, workers=2):
            got.append((lines_before, parsed))
    assert got == [(i, i * 10) for i in range(5)]


def test_pipe_prefetch_gives_the_bytes_in_order_then_the_stream_error():
    from containers.xgboost.data import Prefetched

    class Stop(Exception):
        pass

    class Stream:
        def __init__(self):
            self.parts = [b"a" * 10, b"b" * 5, b"c"]

        def read1(self, size):
            if not self.parts:
                raise Stop()  # a stop during a stalled Pipe read, after the bytes before it
            return self.parts.pop(0)

    stream = Prefetched(Stream())
    assert stream.read1(4) == b"aaaa"
    assert stream.read(9) == b"aaaaaabbb"
    assert stream.read(100) == b"bbc"
    with pytest.raises(Stop):
        stream.read(100)
    ended = Prefetched(io.BufferedReader(io.BytesIO(b"x" * 3000)))
    assert ended.read() == b"x" * 3000 and ended.read1(10) == b""
    ended.close()


def _libsvm_read(data, monkeypatch, split_bytes, tmp_path):
    from containers.xgboost import data as xgb_data

    monkeypatch.setattr(xgb_data, "SPLIT_BYTES", split_bytes)
    indexing = xgb_data.Indexing("train")
    chunks = list(xgb_data._libsvm_chunks(io.BytesIO(data), "train.libsvm", indexing, str(tmp_path)))
    features = sp.vstack([c.features for c in chunks], format="csr")
    weights = None if chunks[0].weights is None else np.concatenate([c.weights for c in chunks])
    return len(chunks), features, np.concatenate([c.labels for c in chunks]), weights, indexing.shift


def test_libsvm_block_parsed_in_pieces_equals_the_block_parsed_whole(cancer, monkeypatch, tmp_path):
    """A large block is parsed in pieces on two threads: the same rows, values and weights as one parse, and the
    block (not its first piece) decides the index base."""
    from common.errors import DataError

    x, y = cancer
    x = x[:200]
    weights = np.linspace(0.5, 2, 200).astype(np.float32)
    one_based = libsvm_bytes(x, y[:200], weights, base=1, sparse=True)
    whole = _libsvm_read(one_based, monkeypatch, 1 << 30, tmp_path)
    pieces = _libsvm_read(one_based, monkeypatch, 1, tmp_path)
    assert (whole[0], pieces[0]) == (1, 2)
    assert whole[4] == pieces[4] == 1  # one-based: shifted down
    assert (whole[1] != pieces[1]).nnz == 0 and whole[1].shape == pieces[1].shape
    np.testing.assert_array_equal(whole[2], pieces[2])
    np.testing.assert_array_equal(whole[3], pieces[3])
    # index 0 only in the block's second half: the block is zero-based, as when parsed whole
    later_zero = libsvm_bytes(x, y[:200], base=1, sparse=True) + b"1 0:1.5\n" * 150
    assert _libsvm_read(later_zero, monkeypatch, 1, tmp_path)[4] == 0
    # weights on the first half's lines only: common's parser names the first line without one
    half = libsvm_bytes(x[:100], y[:100], weights[:100]) + libsvm_bytes(x[100:], y[100:200])
    with pytest.raises(DataError, match="record 101"):
        _libsvm_read(half, monkeypatch, 1, tmp_path)


def _read_libsvm_chunks(data, tmp_path, *, as_file, layout=None):
    """The chunks of one libsvm source, read from a plain file (cut by offsets) or from a stream."""
    from containers.xgboost import data as xgb_data

    indexing = xgb_data.Indexing("train")
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    if as_file:
        path = tmp_path / "train.libsvm"
        path.write_bytes(data)
        stream = open(path, "rb", buffering=1 << 20)
    else:
        stream = io.BytesIO(data)
    with stream:
        chunks = list(xgb_data._libsvm_chunks(stream, "train.libsvm", indexing, str(workdir), layout))
    width = max(c.features.shape[1] for c in chunks)
    features = sp.vstack([sp.csr_matrix((c.features.data, c.features.indices, c.features.indptr),
                                        shape=(len(c), width)) for c in chunks], format="csr")
    weights = None if chunks[0].weights is None else np.concatenate([c.weights for c in chunks])
    qid = None if chunks[0].qid is None else np.concatenate([c.qid for c in chunks])
    return features, np.concatenate([c.labels for c in chunks]), weights, qid, indexing.shift


@pytest.mark.parametrize("sizes", [(64 << 20, 8 << 20, 1 << 20), (700, 1, 7), (3000, 1, 100), (3000, 1 << 30, 1)])
def test_a_plain_file_cut_by_offsets_reads_as_the_stream(cancer, monkeypatch, tmp_path, sizes):
    """File mode cuts a plain file into blocks and pieces by byte offsets (each parse thread reads its own);
    a stream is cut from the parts it is read in. Whatever the sizes, both give the rows, values, weights, query
    ids and index base of the whole text parsed at once, and a bad line is named by its line in the file."""
    from common.errors import DataError
    from containers.xgboost import data as xgb_data

    block, split, part = sizes
    monkeypatch.setattr(xgb_data, "BLOCK_BYTES", block)
    monkeypatch.setattr(xgb_data, "SPLIT_BYTES", split)
    monkeypatch.setattr(xgb_data, "_PART_BYTES", part)
    x, y = cancer
    x, y = x[:120], y[:120]
    weights = np.linspace(0.5, 2, 120).astype(np.float32)
    ranked = "".join(f"{int(y[i])} qid:{i // 7} 0:{x[i, 0]:.6g} 3:{x[i, 3]:.6g}\n" for i in range(120)).encode()
    texts = {
        "one-based, sparse": libsvm_bytes(x, y, base=1, sparse=True),
        "weighted, last line not ended": libsvm_bytes(x, y, weights).rstrip(b"\n"),
        "blank bytes after the last line": libsvm_bytes(x, y) + b"  \n\t ",
        "ranking": ranked,
    }
    for name, text in texts.items():
        layout = xgb_data.Layout(qid=True) if name == "ranking" else None
        whole = xgb_data._parse_libsvm_block(text if text.endswith(b"\n") else text + b"\n", 0, "w", str(tmp_path))
        for as_file in (True, False):
            features, labels, got_weights, qid, shift = _read_libsvm_chunks(text, tmp_path, as_file=as_file,
                                                                            layout=layout)
            expected = whole[0] if name != "one-based, sparse" else sp.csr_matrix(
                (whole[0].data, whole[0].indices - 1, whole[0].indptr), shape=(120, whole[0].shape[1] - 1))
            assert shift == (1 if name == "one-based, sparse" else 0), (name, as_file)
            assert features.shape == expected.shape and (features != expected).nnz == 0, (name, as_file)
            np.testing.assert_array_equal(labels, whole[1])
            if name.startswith("weighted"):
                np.testing.assert_allclose(got_weights, weights, rtol=1e-5)  # written with 6 digits
                np.testing.assert_array_equal(got_weights, whole[2])
            else:
                assert got_weights is None
            if name == "ranking":
                np.testing.assert_array_equal(qid, np.arange(120) // 7)
    lines = libsvm_bytes(x, y).split(b"\n")
    lines[97] = b"1 2:x 3:4"
    for as_file in (True, False):
        with pytest.raises(DataError, match=r"'2:x' is not <index>:<value> \(file train.libsvm, record 98\)"):
            _read_libsvm_chunks(b"\n".join(lines), tmp_path, as_file=as_file)


def test_pieces_parsed_at_once_all_go_through_the_library(monkeypatch, tmp_path):
    """Two parse threads load pieces through the library at once; its loader lists the directory of the file it
    is given, so a piece file another thread deleted meanwhile failed the load, and that piece fell back to
    common's parser (values rounded otherwise than the library's loader rounds them: parity lost, 4x slower).
    Each thread now has a directory of its own: over 2,500 small pieces, none falls back, and every value
    equals the library's own loader on the whole file."""
    from containers.xgboost import data as xgb_data

    monkeypatch.setattr(xgb_data, "BLOCK_BYTES", 250)
    monkeypatch.setattr(xgb_data, "SPLIT_BYTES", 1)
    fallbacks = []
    strictly = xgb_data._parse_strictly
    monkeypatch.setattr(xgb_data, "_parse_strictly", lambda *a: fallbacks.append(a[1]) or strictly(*a))
    rng = np.random.default_rng(5)
    text = "".join(f"{i % 2} " + " ".join(f"{j}:{v:.4f}" for j, v in enumerate(rng.standard_normal(6))) + "\n"
                   for i in range(7000)).encode()
    features, labels, *_ = _read_libsvm_chunks(text, tmp_path, as_file=True)
    assert fallbacks == []
    (tmp_path / "whole.libsvm").write_bytes(text)
    loader = xgb.DMatrix(f"{tmp_path / 'whole.libsvm'}?format=libsvm&indexing_mode=0")
    np.testing.assert_array_equal(features.toarray(), loader.get_data().toarray())
    np.testing.assert_array_equal(labels, loader.get_label())


def test_files_of_a_channel_reach_the_library_as_one_batch_equal_to_xgboost_train(job, cancer):
    """Dense chunks (here one per file) are joined into batches of the dense spill: three weighted CSV files
    give the library one batch, and the model equals xgboost.train on all the rows in one array."""
    x, y = cancer
    weights = np.random.default_rng(3).uniform(0.5, 2, len(y)).astype(np.float32)
    for k, part in enumerate(np.array_split(np.arange(len(y)), 3)):
        job.add_file("train", f"part-{k}.csv", csv_bytes(y[part], weights[part], x[part]))
    job.write_config({**PARAMS, "num_round": 6, "csv_weights": 1}, {"train": {"ContentType": "text/csv"}})
    result = job.train("xgboost")
    assert result.returncode == 0, result.output[-3000:]
    assert "from 3 chunks in 1 batches" in result.output
    expected = reference(x, y, PARAMS, 6, weights).predict(xgb.DMatrix(x))
    np.testing.assert_allclose(served(result).raw_predict(x), expected, atol=1e-6)


def test_dense_and_sparse_recordio_files_keep_their_order(job, cancer):
    """A sparse chunk between dense ones ends the dense batch: the library gets dense, CSR, dense, in file order,
    and the model equals xgboost.train on a QuantileDMatrix of the same three batches."""
    x, y = cancer
    parts = np.array_split(np.arange(len(y)), 3)
    batches = [x[parts[0]], sp.csr_matrix(x[parts[1]]), x[parts[2]]]
    job.add_file("train", "part-0", recordio_bytes(batches[0], y[parts[0]]))
    job.add_file("train", "part-1", b"".join(recordio.encode_record(p)
                                             for p in protobuf.encode_sparse(batches[1], y[parts[1]])))
    job.add_file("train", "part-2", recordio_bytes(batches[2], y[parts[2]]))
    job.write_config({**PARAMS, "num_round": 6}, {"train": {"ContentType": "application/x-recordio-protobuf"}})
    result = job.train("xgboost")
    assert result.returncode == 0, result.output[-3000:]
    assert "from 3 chunks in 3 batches" in result.output

    class Batches(xgb.DataIter):
        def __init__(self):
            super().__init__()
            self.k = 0

        def reset(self):
            self.k = 0

        def next(self, input_data):
            if self.k == 3:
                return False
            input_data(data=batches[self.k], label=y[parts[self.k]])
            self.k += 1
            return True

    library = {k: v for k, v in PARAMS.items() if k != "eval_metric"}
    expected = xgb.train(library, xgb.QuantileDMatrix(Batches(), missing=np.nan), 6).predict(xgb.DMatrix(x))
    np.testing.assert_allclose(served(result).raw_predict(x), expected, atol=1e-6)


def test_fully_populated_sparse_chunks_join_the_dense_batches_with_every_value_kept(tmp_path):
    """libsvm that writes every value gives CSR chunks holding every column in order: they are spilled as dense
    rows (joined into batches as CSV's are) with their zeros kept as values; a channel narrower than the data
    (its last columns never written) comes back as CSR of the data's width, zeros still values."""
    from containers.xgboost.data import Chunk
    from containers.xgboost.matrix import spill_channel

    rng = np.random.default_rng(1)
    full = [rng.standard_normal((rows, 4)).astype(np.float32) for rows in (6, 9)]
    full[0][2, 1] = 0.0  # written as 1:0 -- a value, not a missing one
    shuffled = sp.csr_matrix(full[1])
    shuffled.indices = shuffled.indices.reshape(9, 4)[:, ::-1].ravel().copy()  # every column, not in order
    shuffled.data = shuffled.data.reshape(9, 4)[:, ::-1].ravel().copy()
    chunks = [Chunk(sp.csr_matrix((m.ravel(), np.tile(np.arange(4, dtype=np.int32), len(m)),
                                   np.arange(0, m.size + 1, 4)), shape=m.shape), np.zeros(len(m), np.float32))
              for m in full] + [Chunk(shuffled, np.ones(9, np.float32))]
    spill = spill_channel("train", iter(chunks), directory=str(tmp_path))
    try:
        batches = list(spill.replay(4))
        assert [(len(b), sp.issparse(b.features)) for b in batches] == [(15, False), (9, True)]
        np.testing.assert_array_equal(batches[0].features, np.vstack(full))
        assert batches[0].features[2, 1] == 0.0
        features, *_ = spill.gather(4)
        assert sp.issparse(features) and features.nnz == 24 * 4  # the dense rows' zero stays a stored value
        np.testing.assert_array_equal(features.toarray(), np.vstack(full + [full[1]]))
        narrower = list(spill.replay(6))
        assert [(len(b), sp.issparse(b.features), b.features.shape[1]) for b in narrower] == [(6, True, 6), (9, True, 6),
                                                                                             (9, True, 6)]
        assert narrower[0].features.nnz == 24 and narrower[0].features[2, 1] == 0.0
        np.testing.assert_array_equal(narrower[1].features.toarray()[:, :4], full[1])
    finally:
        spill.delete()


def test_the_spill_replays_every_row_in_order_across_batch_limits(tmp_path):
    """Replayed batches of at most the byte limit (at least one chunk each) hold every row, label and weight of
    the chunks in order; a sparse chunk stands alone."""
    from containers.xgboost.data import Chunk
    from containers.xgboost.matrix import spill_channel

    rng = np.random.default_rng(0)
    sizes = [5, 7, 3, 11, 4, 6]
    chunks = []
    for k, rows in enumerate(sizes):
        features = rng.standard_normal((rows, 4)).astype(np.float32)
        if k == 3:
            features[:, 1] = 0
            features = sp.csr_matrix(features)  # sparse: a chunk of its own (a fully populated one: dense rows)
        elif k % 2:
            features = np.asfortranarray(features)  # a pandas block is column-major
        chunks.append(Chunk(features, rng.random(rows).astype(np.float32), rng.random(rows).astype(np.float32)))
    spill = spill_channel("train", iter(chunks), directory=str(tmp_path))
    try:
        for limit, expected in ((None, [15, 11, 10]), (12 * 4 * 4, [12, 3, 11, 10]), (1, [5, 7, 3, 11, 4, 6])):
            batches = list(spill.replay(4, batch_bytes=limit))
            assert [len(b) for b in batches] == expected
            assert [sp.issparse(b.features) for b in batches].count(True) == 1
            got = np.vstack([b.features.toarray() if sp.issparse(b.features) else b.features for b in batches])
            want = np.vstack([c.features.toarray() if sp.issparse(c.features) else c.features for c in chunks])
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]),
                                          np.concatenate([c.labels for c in chunks]))
            np.testing.assert_array_equal(np.concatenate([b.weights for b in batches]),
                                          np.concatenate([c.weights for c in chunks]))
    finally:
        spill.delete()
    assert not list(tmp_path.iterdir())
