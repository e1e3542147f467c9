"""Training and model-loading faults, each the right category naming what is wrong (findings #8-#10,
#13-#17). Algorithm-agnostic (the runtime's sources, config, model dir and server): k-means is run.
"""

import errno
import gzip
import json
import os
import re
import tarfile
import time

import numpy as np
import pytest

import sdk
from common import ndarray
from emulator import Job, serve

HP = {"k": 2, "feature_dim": 5}
RECORDIO = {"train": {"ContentType": "application/x-recordio-protobuf"}}


def points(n=300, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 5)).astype(np.float32)


def first_line(result):
    assert result.failure is not None, result.output
    return result.failure.splitlines()[0]


# --- #10: gzip ---

def _corrupt(data):
    data = bytearray(data)
    data[len(data) // 2:len(data) // 2 + 64] = os.urandom(64)
    return bytes(data)


def _bad_crc(data):
    data = bytearray(data)
    data[-8] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("spoil,compression", [
    (_corrupt, None), (lambda d: d[: len(d) // 2], None), (_bad_crc, None), (None, "Gzip")])
def test_corrupt_gzip_is_a_client_error_naming_the_file(job, spoil, compression):
    raw = sdk.dense_recordio(points(3000))
    data = raw if spoil is None else spoil(gzip.compress(raw))
    path = job.add_file("train", "a.pbr.gz", data)
    channels = {"train": {**RECORDIO["train"], **({"CompressionType": compression} if compression else {})}}
    result = job.write_config(HP, channels).train("kmeans")
    assert result.returncode == 1, result.output
    line = first_line(result)
    assert line.startswith("ClientError: ") and str(path) in line, line


# --- #9, #13: links, bad config values ---

def test_dangling_symlink_is_a_client_error_naming_it(job):
    job.add_file("train", "a.pbr", sdk.dense_recordio(points()))
    os.symlink("/nonexistent/data", job.root / "input/data/train/b.pbr")
    result = job.write_config(HP, RECORDIO).train("kmeans")
    assert result.returncode == 1
    assert re.match(r"ClientError: .*b\.pbr is a link to '/nonexistent/data', which does not exist", first_line(result))


def test_symlink_loop_is_refused_at_once(job):
    job.add_file("train", "a.pbr", sdk.dense_recordio(points()))
    os.symlink(".", job.root / "input/data/train/loop")
    started = time.monotonic()
    result = job.write_config(HP, RECORDIO).train("kmeans")
    assert result.returncode == 1
    assert "a link loop" in first_line(result)
    assert time.monotonic() - started < 60  # it read 40 nested copies for 9.9 s before


@pytest.mark.parametrize("raw,expected", [
    (b'{"k": "\xff\xfe", "feature_dim": "5"}', "ClientError: "),
    (json.dumps({"k": "9" * 5000, "feature_dim": "5"}).encode(), "ClientError: Invalid hyperparameter k="),
    (json.dumps({"k": "1e300", "feature_dim": "5"}).encode(), "ClientError: Invalid hyperparameter k="),
])
def test_bad_hyperparameter_files_are_client_errors(job, raw, expected):
    job.add_file("train", "a.pbr", sdk.dense_recordio(points()))
    job.write_config(None, RECORDIO)
    (job.root / "input/config/hyperparameters.json").write_bytes(raw)
    result = job.train("kmeans")
    assert result.returncode == 1, result.output
    assert first_line(result).startswith(expected), first_line(result)
    assert len(first_line(result)) < 1100


def test_json_number_hyperparameters_are_accepted(job):
    job.add_file("train", "a.pbr", sdk.dense_recordio(points()))
    job.write_config(None, RECORDIO)
    (job.root / "input/config/hyperparameters.json").write_text('{"k": 2.0, "feature_dim": 5}')
    result = job.train("kmeans")
    assert result.returncode == 0, result.output
    assert ndarray.load(job.model_dir / "model_algo-1")[0].shape == (2, 5)


def test_bad_pipe_wait_setting_is_a_client_error(job):
    job.write_config(HP, {"train": {**RECORDIO["train"], "TrainingInputMode": "Pipe"}})
    result = job.train("kmeans", {"ALGOBOX_PIPE_WAIT_SECONDS": "abc"})
    assert result.returncode == 1
    assert "ALGOBOX_PIPE_WAIT_SECONDS='abc' must be a number of seconds" in first_line(result)


# --- #15: an optional channel without its directory fails at setup ---

def test_optional_channel_without_directory_fails_before_training(job):
    job.add_file("train", "a.pbr", sdk.dense_recordio(points()))
    result = job.write_config(HP, {**RECORDIO, "test": RECORDIO["train"]}).train("kmeans")
    assert result.returncode == 1
    assert "Channel 'test' is named in inputdataconfig.json but has no directory" in first_line(result)
    assert result.model_files == []  # it used to train fully, write the model, then fail
    assert "Stage train" not in result.output


# --- #14: a full disk never leaves a truncated model ---

def test_model_write_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        ndarray.save(tmp_path / "model_algo-1", [np.ones((100, 500), np.float32)])
    assert list(tmp_path.iterdir()) == []


# --- #16: models that cannot serve are refused at load ---

@pytest.mark.parametrize("arrays,message", [
    ([np.zeros((0, 5), np.float32)], "expected (k, feature_dim) with k >= 1"),
    ([np.full((2, 5), np.nan, np.float32)], "hold NaN or infinite values"),
    ({"v": np.ones((5, 2), np.float32)}, "a k-means model is one unnamed"),
])
def test_model_that_cannot_serve_is_refused_at_load(tmp_path, arrays, message):
    (tmp_path / "model").mkdir()
    ndarray.save(tmp_path / "model" / "model_algo-1", arrays)
    with pytest.raises(RuntimeError, match=r"server exited with 3") as failed:
        with serve("kmeans", tmp_path, startup_timeout=60):
            pass
    assert message in str(failed.value)
    assert "HaltServer" not in str(failed.value) and "FileNotFoundError" not in str(failed.value)


# --- #8, #17: model.tar.gz unpacked once and removed; a control socket per server ---

def test_model_tar_is_unpacked_once_and_removed_on_stop(tmp_path):
    job_root, scratch = tmp_path / "job", tmp_path / "tmp"
    (job_root / "model").mkdir(parents=True)
    scratch.mkdir()
    ndarray.save(tmp_path / "model_algo-1", [points(4)])
    with tarfile.open(job_root / "model" / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model_algo-1", arcname="model_algo-1")
    with serve("kmeans", job_root, env={"TMPDIR": str(scratch)}) as server:
        assert server.post(b"1,2,3,4,5", "text/csv").status_code == 200
        copies = [p for p in scratch.rglob("model_algo-1")]
        assert len(copies) == 1, copies  # one per worker before
        other_root = tmp_path / "other"
        (other_root / "model").mkdir(parents=True)
        ndarray.save(other_root / "model" / "model_algo-1", [points(4)])
        with serve("kmeans", other_root, env={"TMPDIR": str(scratch)}) as other:
            assert other.post(b"1,2,3,4,5", "text/csv").status_code == 200
        assert server.post(b"1,2,3,4,5", "text/csv").status_code == 200  # the other's stop left us alone
    sockets = re.findall(r"Control socket listening at (\S+)", server.output + other.output)
    assert len(sockets) == 2 and len(set(sockets)) == 2, sockets  # both shared $HOME/.gunicorn before
    assert server.process.returncode == 0
    assert list(scratch.iterdir()) == []  # 2.1 GB stayed behind for a 1 GB model before


# --- #9: an unreadable subdirectory is an error, not silently skipped data ---

def test_unreadable_subdirectory_is_a_client_error(tmp_path, monkeypatch):
    """As root every directory reads, so the permission error is injected where os.walk lists ``sub``."""
    from common.errors import ChannelError
    from common.sources import list_files

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.pbr").write_bytes(b"x")
    (tmp_path / "sub" / "c.pbr").write_bytes(b"x")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("sub"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ChannelError, match=r"Cannot read directory .*sub in the channel: Permission denied"):
        list_files(tmp_path)
