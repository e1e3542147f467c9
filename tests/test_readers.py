"""Runtime v2 seams: training readers (libsvm, CSV options), batches with weights, checkpoints, prepare()."""

import io
import json
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from common import contenttypes as ct
from common import libsvm
from common.batches import read_batches
from common.channels import Channel, ChannelSpec
from common.config import ChannelConfig
from common.errors import DataError, HyperparameterError
from common.paths import MLPaths
from common.readers import ReadOptions, Reader, reader_for, register_reader, registered
from common.spec import load_spec
from common.training import prepare


def channel(content_type, label_size=0, missing=False, mode="File"):
    spec = ChannelSpec("train", (content_type,), required=True, label_size=label_size, missing_values=missing)
    return Channel(spec, ChannelConfig("train", content_type, mode), ct.parse(content_type))


def batches(job, data, content_type, batch_size=2, name="a", **options):
    job.add_file("train", name, data)
    ch = channel(content_type, **{k: v for k, v in options.items() if k in ("label_size", "missing")})
    read = ch.read_options(batch_size, **{k: v for k, v in options.items() if k not in ("label_size", "missing")})
    return list(read_batches(ch, MLPaths(job.root), batch_size, options=read))


# ------------------------------------------------------------------------------------------- libsvm

def test_libsvm_one_based_labels_weights_and_sparse_rows(job):
    data = b"1:0.5 1:1.5 3:2\n0 2:-1\n\n# a comment\n1:2 1:1 2:1 3:1\n"
    out = batches(job, data, ct.LIBSVM, batch_size=10, feature_dim=3)
    [batch] = out
    assert sp.issparse(batch.features) and batch.features.shape == (3, 3)
    np.testing.assert_array_equal(batch.features.toarray(), [[1.5, 0, 2], [0, -1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(batch.labels, [1, 0, 1])
    np.testing.assert_array_equal(batch.weights, [0.5, 1, 2])  # a line without :weight weighs 1


def test_libsvm_zero_based_is_detected_per_file(job):
    out = batches(job, b"1 0:1 2:3\n0 1:2\n", ct.LIBSVM, batch_size=10, feature_dim=3)
    np.testing.assert_array_equal(out[0].features.toarray(), [[1, 0, 3], [0, 2, 0]])
    assert out[0].weights is None


def test_libsvm_qid_tabs_and_batches_across_files(job):
    job.add_file("train", "b", b"1 qid:3 1:5\n")
    out = batches(job, b"0\tqid:1\t1:1\t2:2\n1 qid:1 2:4\n", ct.LIBSVM, batch_size=2, feature_dim=2)
    assert [len(b) for b in out] == [2, 1]
    np.testing.assert_array_equal(out[1].features.toarray(), [[5, 0]])


@pytest.mark.parametrize("data,message", [
    (b"1 1:2\nx 1:2\n", "label 'x' is not a number"),
    (b"1 1:2\n1 1:abc\n", "token '1:abc' is not <index>:<value>"),
    (b"1 1:2\n1 2\n", "token '2' is not <index>:<value>"),
    (b"1 1:2 9:1\n", "outside feature_dim=3"),
    (b"1 1:2\n1 -4:1\n", "index -4 is not a whole number"),
])
def test_libsvm_errors_name_the_file_and_line(job, data, message):
    with pytest.raises(DataError, match=message) as error:
        batches(job, data, ct.LIBSVM, batch_size=10, feature_dim=3)
    assert "file " in str(error.value)


def test_libsvm_index_zero_after_a_one_based_block():
    with pytest.raises(DataError, match="index 0 in a file whose first lines are one-based"):
        libsvm.parse_block(b"1 0:1\n", one_based=True)


# ---------------------------------------------------------------------------------------------- CSV

def test_csv_label_first_by_declaration_and_a_weight_column(job):
    data = b"1,0.5,10,11\n0,2,20,21\n"
    [batch] = batches(job, data, ct.CSV, batch_size=5, label_size=1, weights=True)
    np.testing.assert_array_equal(batch.labels, [1, 0])
    np.testing.assert_array_equal(batch.weights, [0.5, 2])
    np.testing.assert_array_equal(batch.features, [[10, 11], [20, 21]])


def test_csv_missing_values_are_nan_where_declared(job):
    [batch] = batches(job, b"1,,3\n0,nan,6\n1,4,\n", ct.CSV, batch_size=5, label_size=1, missing=True)
    assert np.isnan(batch.features[0, 0]) and np.isnan(batch.features[1, 0]) and np.isnan(batch.features[2, 1])
    assert batch.features[1, 1] == 6


def test_csv_missing_values_still_refuse_ragged_rows(job):
    with pytest.raises(DataError, match="CSV line has 2 columns, expected 3") as error:
        batches(job, b"1,2,3\n4,5\n", ct.CSV, batch_size=5, label_size=1, missing=True)
    assert "record 2" in str(error.value)


def test_csv_empty_field_is_a_data_error_elsewhere(job):
    with pytest.raises(DataError, match="on line 2 is not a number"):
        batches(job, b"1,2,3\n4,,6\n", ct.CSV, batch_size=5, label_size=1)


def test_csv_rows_as_strings_through_the_same_parser(job):
    [batch] = batches(job, b"user1,10.0.0.1\nuser2,192.168.1.7\n", ct.CSV, batch_size=5, strings=True)
    assert batch.features.dtype == object and batch.features.tolist() == [["user1", "10.0.0.1"],
                                                                          ["user2", "192.168.1.7"]]


def test_csv_wide_row_refused_before_parsing(job):
    import time

    row = b",".join([b"1"] * 1_000_000) + b"\n"
    started = time.perf_counter()
    with pytest.raises(DataError, match="CSV line has 1000000 columns, expected 5"):
        batches(job, row, ct.CSV, batch_size=5, label_size=1, feature_dim=4)
    assert time.perf_counter() - started < 1.0  # the field count alone decides (pandas took ~10 s for this)


# ----------------------------------------------------------------------------------------- registry

def test_an_algorithm_registers_its_own_reader_and_aliases(job):
    @register_reader
    class Lines(Reader):
        content_type = "text/x-test-lines"
        aliases = ("testlines",)

        def read(self, stream, source, options):
            from common.readers import Piece

            yield Piece([line.decode() for line in stream.read().splitlines()], None, None, 0)

    assert "text/x-test-lines" in registered() and ct.parse("TestLines").mime == "text/x-test-lines"
    out = batches(job, b"a b\nc\nd e f\n", "text/x-test-lines", batch_size=2)
    assert [b.features for b in out] == [["a b", "c"], ["d e f"]]
    assert reader_for("text/x-test-lines").content_type == "text/x-test-lines"


# ---------------------------------------------------------------------- prepare() and checkpoints

def test_prepare_runs_train_in_process(job):
    job.add_file("train", "a.csv", b"\n".join(b"%d,%d" % (i % 3, i % 5) for i in range(40)))
    job.write_config({"k": 2, "feature_dim": 2, "mini_batch_size": 10}, {"train": {"ContentType": "text/csv"}})
    context = prepare(load_spec("kmeans"), MLPaths(job.root))
    assert context.hyperparameters["k"] == 2 and not context.is_tuning
    load_spec("kmeans").load_train()(context)
    assert (job.root / "model/model_algo-1").is_file()


def test_prepare_runs_checks_at_setup(job):
    job.write_config({"feature_dim": 3, "num_components": 4, "mini_batch_size": 5},
                     {"train": {"ContentType": "text/csv"}})
    (job.root / "input/data/train").mkdir(parents=True)
    with pytest.raises(HyperparameterError, match="must not exceed feature_dim=3"):
        prepare(load_spec("pca"), MLPaths(job.root))


def test_tuning_objective_is_validated_against_the_declared_metrics(job):
    (job.root / "input/data/train").mkdir(parents=True)
    job.write_config({"k": 2, "feature_dim": 2, "_tuning_objective_metric": "test:msd"},
                     {"train": {"ContentType": "text/csv"}})
    assert prepare(load_spec("kmeans"), MLPaths(job.root)).tuning_objective == "test:msd"
    job.write_config({"k": 2, "feature_dim": 2, "_tuning_objective_metric": "validation:accuracy"},
                     {"train": {"ContentType": "text/csv"}})
    with pytest.raises(HyperparameterError, match="Allowed: test:msd, test:ssd"):
        prepare(load_spec("kmeans"), MLPaths(job.root))


def test_checkpoints_follow_checkpointconfig_and_are_written_whole(job, tmp_path):
    (job.root / "input/data/train").mkdir(parents=True)
    job.write_config({"k": 2, "feature_dim": 2}, {"train": {"ContentType": "text/csv"}})
    (job.root / "input/config/checkpointconfig.json").write_text(
        json.dumps({"LocalPath": str(tmp_path / "ckpt"), "S3Uri": "s3://bucket/prefix"}))
    context = prepare(load_spec("kmeans"), MLPaths(job.root))
    checkpoints = context.checkpoints
    assert checkpoints.directory == tmp_path / "ckpt" and checkpoints.latest("state-") is None
    for step in (1, 2, 10):
        checkpoints.save_bytes(f"state-{step}", b"x" * step)
    with pytest.raises(RuntimeError):
        with checkpoints.write("state-11") as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert checkpoints.latest("state-").name == "state-10"  # the interrupted one never appeared
    assert checkpoints.names() == ["state-1", "state-10", "state-2"]


def test_hyperparameters_json_numbers_nan_and_absurd_integers(job):
    spec = load_spec("kmeans")
    assert spec.hyperparameters.parse({"k": 5.0, "feature_dim": 3})["k"] == 5
    for raw, message in (({"k": float("nan"), "feature_dim": 3}, "finite"),
                         ({"k": "1" * 5000, "feature_dim": 3}, "too large"),
                         ({"k": "1e300", "feature_dim": 3}, "k="),
                         ({"k": str(2**70), "feature_dim": 3}, "64-bit")):
        with pytest.raises(HyperparameterError, match=message):
            spec.hyperparameters.parse(raw)


def test_stop_event_ends_a_read_between_batches(job):
    stop = threading.Event()
    job.add_file("train", "a.csv", b"\n".join(b"1,2" for _ in range(100)))
    ch = channel(ct.CSV)
    seen = 0
    for batch in read_batches(ch, MLPaths(job.root), 10, stop=stop, options=ReadOptions(10)):
        seen += len(batch)
        stop.set()
    assert seen == 10


def test_default_checkpoint_dir_is_sagemakers():
    from pathlib import Path

    assert MLPaths(Path("/opt/ml")).default_checkpoint_dir == Path("/opt/ml/checkpoints")
