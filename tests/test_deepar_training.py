"""DeepAR through the real ``algobox deepar train`` subprocess: metrics, formats, data errors, checkpoints, hosts."""

import gzip
import io
import json
import re

import numpy as np
import pytest

from containers.deepar.forecast import Scores
from emulator import Job, free_port

ALG = "deepar"
JSONL = "application/jsonlines"
PARQUET = "application/x-parquet"
QUANTILES = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9")


def make_series(n=12, length=72, seed=0, cats=True, dynamic=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(length)
        values = 20.0 + 6.0 * (i % 3) + 4.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, length)
        record = {"start": "2021-03-01 00:00:00", "target": [round(float(v), 3) for v in values]}
        if cats:
            record["cat"] = [i % 3]
        if dynamic:
            record["dynamic_feat"] = [[float(v % 24 == 0) for v in t]]
        out.append(record)
    return out


def jsonl(records):
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


def parquet(records):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"start": [np.datetime64(r["start"].replace(" ", "T"), "s").astype(object) for r in records],
               "target": [[float("nan") if v is None else v for v in r["target"]] for r in records]}
    if "cat" in records[0]:
        columns["cat"] = [r["cat"] for r in records]
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, compression="snappy")
    return buffer.getvalue()


def hp(**extra):
    return {"time_freq": "H", "context_length": 12, "prediction_length": 6, "epochs": 2, "mini_batch_size": 32,
            "num_cells": 8, "num_layers": 1, "num_eval_samples": 50, **extra}


def channels(*names, content_type=JSONL):
    return {name: {"ContentType": content_type} for name in names}


def metrics(output):
    return {f"{c}:{m}": float(v) for c, m, v in
            re.findall(r"#quality_metric: host=algo-1, (test|train) (\S+) <loss>=(\S+)", output)}


def test_trains_from_nested_json_gz_and_parquet_and_reports_the_guides_metrics(job):
    records = make_series()
    train = [{**r, "target": r["target"][:-6]} for r in records]
    train[0]["target"][3] = "NaN"
    train[1]["target"][4] = None
    short = {"start": "2021-03-01 00:00:00", "target": [1.0, 2.0], "cat": [0]}
    job.add_file("train", "part-0.json", jsonl(train[:6]))
    job.add_file("train", "nested/deeper/part-1.json.gz", gzip.compress(jsonl(train[6:] + [short])))
    job.add_file("train", "_SUCCESS", b"not data")
    job.add_file("train", ".hidden.json", b"not json at all")
    job.add_file("test", "test.parquet", parquet(records))
    job.write_config(hp(), {**channels("train"), **channels("test", content_type=PARQUET)})
    result = job.train(ALG)
    assert result.returncode == 0, result.output[-3000:]
    assert result.model_files == ["model.json", "model.pt"]
    assert "Skipped 1 train series shorter than 6 points" in result.output and "part-1.json.gz, line 7" in result.output
    assert "Training series: 12 " in result.output and "cardinality [3]" in result.output
    found = metrics(result.output)
    for name in ("test:RMSE", "test:mean_wQuantileLoss", "train:final_loss",
                 *(f"test:wQuantileLoss[{q}]" for q in QUANTILES)):
        assert name in found and np.isfinite(found[name]), (name, result.output[-2000:])
    mean = np.mean([found[f"test:wQuantileLoss[{q}]"] for q in QUANTILES])
    assert found["test:mean_wQuantileLoss"] == pytest.approx(mean, rel=1e-4)
    assert found["test:mean_wQuantileLoss"] < 0.5  # a forecast of zeros scores 1.0


def test_scores_follow_the_guides_formulas():
    truth = np.array([10.0, np.nan, -2.0, 4.0])
    mean = np.array([12.0, 0.0, -1.0, 4.0])
    q = {0.1: np.array([8.0, 0.0, -3.0, 5.0]), 0.9: np.array([13.0, 0.0, 0.0, 3.0])}
    scores = Scores([0.1, 0.9])
    scores.add(truth, mean, q)
    out = scores.results()
    assert out["RMSE"] == pytest.approx(np.sqrt((4 + 1 + 0) / 3))
    denominator = 16.0
    wql_01 = 2 * (0.1 * 2 + 0.1 * 1 + 0.9 * 1) / denominator
    wql_09 = 2 * (0.1 * 3 + 0.1 * 2 + 0.9 * 1) / denominator
    assert out["wQuantileLoss[0.1]"] == pytest.approx(wql_01)
    assert out["wQuantileLoss[0.9]"] == pytest.approx(wql_09)
    assert out["mean_wQuantileLoss"] == pytest.approx((wql_01 + wql_09) / 2)


@pytest.mark.parametrize("lines, words", [
    (['{"start": "2021-01-01 00:00:00", "target": [1, 2, 3, 4, 5, 6, 7]}', '{"start": "2021-01-01", "target": [1,'],
     "line 2 is not valid JSON"),
    (['{"start": "2021-01-01 00:00:00", "target": [1, 2, 3, 4, 5, 6, 7]}', '{"start": "yesterday", "target": [1]}'],
     "line 2: 'start'"),
    (['{"start": "2021-13-45 00:00:00", "target": [1, 2, 3, 4, 5, 6, 7]}'], "line 1: 'start'"),
    (['{"start": "2021-01-01 00:00:00", "target": [1, "x", 3]}'], "line 1: 'target' holds 'x'"),
    (['{"start": "2021-01-01 00:00:00", "target": [1, 2, 3, 4, 5, 6, 7], "dynamic_feat": [[1, 2]]}'],
     "line 1: 'dynamic_feat' arrays have 2 values; they must have the target's length (7)"),
])
def test_malformed_records_are_data_errors_naming_file_and_line(job, lines, words):
    job.add_file("train", "series.json", ("\n".join(lines) + "\n").encode())
    job.write_config(hp(), channels("train"))
    result = job.train(ALG)
    assert result.returncode == 1, result.output[-2000:]
    first = result.failure.splitlines()[0]
    assert first.startswith("ClientError: ") and words in first and "series.json" in first, first


def test_inconsistent_cat_and_cardinality_are_data_errors(job):
    records = make_series(4)
    records[2]["cat"] = [1, 0]
    job.add_file("train", "series.json", jsonl(records))
    job.write_config(hp(), channels("train"))
    result = job.train(ALG)
    assert result.returncode == 1
    assert "series.json, line 3: 'cat' has 2 values" in result.failure.splitlines()[0]

    records[2]["cat"] = [5]
    job.add_file("train", "series.json", jsonl(records))
    job.write_config(hp(cardinality="[3]"), channels("train"))
    result = job.train(ALG)
    assert result.returncode == 1
    assert "line 3: cat[0]=5 is not below cardinality[0]=3" in result.failure.splitlines()[0]


@pytest.mark.parametrize("overrides, words", [
    ({"time_freq": "5s"}, "time_freq"), ({"time_freq": "0min"}, "time_freq"),
    ({"likelihood": "poisson"}, "likelihood"), ({"num_dynamic_feat": "two"}, "num_dynamic_feat"),
    ({"test_quantiles": "[0.1, 1.5]"}, "test_quantiles"), ({"dropout_rate": "1"}, "dropout_rate"),
    ({"early_stopping_patience": "0"}, "early_stopping_patience"),
])
def test_invalid_hyperparameters_are_named(job, overrides, words):
    job.add_file("train", "series.json", jsonl(make_series(2)))
    job.write_config(hp(**overrides), channels("train"))
    result = job.train(ALG)
    assert result.returncode == 1
    first = result.failure.splitlines()[0]
    assert first.startswith("ClientError: ") and words in first, first


def test_checkpoints_each_epoch_and_a_restarted_job_resumes(job):
    job.add_file("train", "series.json", jsonl(make_series()))
    job.write_config(hp(epochs=2), channels("train"))
    first = job.train(ALG)
    assert first.returncode == 0, first.output[-2000:]
    checkpoints = sorted(p.name for p in (job.root / "checkpoints").iterdir())
    assert checkpoints == ["deepar-epoch-1", "deepar-epoch-2"]
    job.write_config(hp(epochs=3), channels("train"))
    second = job.train(ALG)
    assert second.returncode == 0, second.output[-2000:]
    assert "Resumed from checkpoint" in second.output and "2 epoch(s) done" in second.output
    assert "Epoch[3]" in second.output and "Epoch[1]" not in second.output and "Epoch[2]" not in second.output

    job.write_config(hp(epochs=3, num_cells=9), channels("train"))  # other settings: the checkpoint is not used
    third = job.train(ALG)
    assert third.returncode == 0 and "Ignoring checkpoint" in third.output and "Epoch[1]" in third.output


def test_early_stopping_keeps_the_lowest_loss_model(job):
    job.add_file("train", "series.json", jsonl(make_series(3, length=40)))
    job.write_config(hp(epochs=40, early_stopping_patience=2, learning_rate=0.05), channels("train"))
    result = job.train(ALG)
    assert result.returncode == 0, result.output[-2000:]
    losses = [float(v) for v in re.findall(r"Epoch\[\d+\] train loss=(\S+),", result.output)]
    assert "Early stopping: no lower loss in 2 epochs" in result.output and len(losses) < 40
    assert metrics(result.output)["train:final_loss"] == pytest.approx(min(losses), rel=1e-5)
    best = int(np.argmin(losses)) + 1
    assert f"Keeping the model of epoch {best}" in result.output


def test_two_hosts_train_one_model(tmp_path):
    """Two real processes joined by torch.distributed; gradients averaged every step."""
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port())}
    jobs = []
    for host in ("algo-1", "algo-2"):
        job = Job(tmp_path / host)
        job.add_file("train", "series.json", jsonl(make_series()))
        job.add_file("test", "series.json", jsonl(make_series(seed=1)))
        job.write_config(hp(), channels("train", "test"), hosts=("algo-1", "algo-2"), current_host=host)
        jobs.append(job)
    processes = [job.start_train(ALG, env) for job in jobs]
    results = [job.result(p, timeout=240) for job, p in zip(jobs, processes)]
    assert [r.returncode for r in results] == [0, 0], results[0].output[-2000:] + results[1].output[-2000:]
    assert "(2 host(s))" in results[1].output
    assert results[0].model_files == ["model.json", "model.pt"] and results[1].model_files == []
    assert "test:mean_wQuantileLoss" in metrics(results[0].output)
