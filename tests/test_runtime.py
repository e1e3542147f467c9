"""The shared runtime's seams: CLI, sources, batches, failure file, model directory, imports, log format."""

import io
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import sdk
from common import contenttypes as ct
from common.batches import read_batches
from common.channels import Channel, ChannelSpec
from common.config import ChannelConfig
from common.errors import ChannelError, ClientError, DataError, PlatformError
from common.failure import write_failure
from common.model_dir import resolve_model_dir, safe_extract
from common.paths import MLPaths
from emulator import ALGOBOX, REPO


def channel(name="train", mime=ct.CSV, mode="File", **config):
    spec = ChannelSpec(name, (mime,))
    return Channel(spec, ChannelConfig(name, mime, mode, **config), ct.parse(mime))


def csv(rows):
    return "".join(",".join(str(v) for v in row) + "\n" for row in rows).encode()


def test_cli_lists_algorithms_and_takes_the_algorithm_from_the_environment(job):
    listed = subprocess.run(ALGOBOX + ["list"], capture_output=True, text=True, check=True).stdout.split()
    assert "kmeans" in listed
    job.write_config({"k": "2"}, {"train": {}})
    out = subprocess.run(ALGOBOX + ["train"], capture_output=True, text=True, env=job.env({"ALGOBOX_ALGORITHM": "kmeans"}))
    assert out.returncode == 1
    assert "'feature_dim' is a required property" in (job.root / "output/failure").read_text()


def test_cli_unknown_algorithm():
    out = subprocess.run(ALGOBOX + ["nope", "train"], capture_output=True, text=True)
    assert out.returncode == 2 and "Unknown algorithm 'nope'" in out.stderr


def test_common_imports_no_heavy_framework():
    code = ("import sys, common.training, common.serving.app, common.serving.server, common.distributed, "
            "containers.kmeans.spec, containers.kmeans.model; "
            "bad = [m for m in ('torch', 'tensorflow', 'mxnet', 'pandas', 'sklearn') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_batches_have_the_requested_size_across_files(job):
    job.add_file("train", "a.csv", csv(np.arange(14).reshape(7, 2)))
    job.add_file("train", "b/c.csv", csv(np.arange(100, 110).reshape(5, 2)))
    job.add_file("train", ".hidden.csv", b"garbage\n")
    batches = list(read_batches(channel(), MLPaths(job.root), 5))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert np.concatenate([b.features for b in batches])[:, 0].tolist() == [0, 2, 4, 6, 8, 10, 12, 100, 102, 104,
                                                                            106, 108]


def test_shards_are_disjoint_and_cover_the_data(job):
    job.add_file("train", "a.csv", csv(np.arange(40).reshape(20, 2)))
    paths = MLPaths(job.root)
    shares = [list(read_batches(channel(), paths, 3, shard=(r, 2))) for r in (0, 1)]
    seen = [np.concatenate([b.features for b in batches]) for batches in shares]
    both = np.concatenate(seen)[:, 0]
    assert sorted(both.tolist()) == list(range(0, 40, 2))
    assert not set(seen[0][:, 0]) & set(seen[1][:, 0])
    assert [len(b) for b in shares[0]] == [3, 3, 3, 1] and [len(b) for b in shares[1]] == [3, 3, 3, 1]


def test_a_replicated_channel_smaller_than_a_batch_is_shared_by_every_host(job):
    """Three hosts, one file of 5 rows read in batches of 100: each host gets rows (not the first host alone)."""
    job.add_file("train", "a.csv", csv(np.arange(10).reshape(5, 2)))
    paths = MLPaths(job.root)
    seen = [[row[0] for b in read_batches(channel(), paths, 100, shard=(r, 3)) for row in b.features.tolist()]
            for r in range(3)]
    assert seen == [[0], [2, 4], [6, 8]]


def test_labels_from_csv_label_size(job):
    job.add_file("train", "a.csv", csv([[1, 10, 11], [0, 20, 21]]))
    media = ct.parse("text/csv;label_size=1")
    ch = Channel(ChannelSpec("train", (ct.CSV,)), ChannelConfig("train", str(media)), media)
    batch = next(read_batches(ch, MLPaths(job.root), 10))
    assert batch.labels.tolist() == [1, 0] and batch.features.tolist() == [[10, 11], [20, 21]]


def test_recordio_file_with_sdk_labels(job):
    points = np.arange(12, dtype=np.float32).reshape(6, 2)
    job.add_file("train", "x.pbr", sdk.dense_recordio(points, np.arange(6, dtype=np.float32)))
    batch = next(read_batches(channel(mime=ct.RECORDIO_PROTOBUF), MLPaths(job.root), 10, feature_dim=2))
    assert batch.features.tolist() == points.tolist() and batch.labels.tolist() == list(range(6))


def test_pipe_fifo_that_never_appears(job, monkeypatch):
    monkeypatch.setenv("ALGOBOX_PIPE_WAIT_SECONDS", "0.2")
    with pytest.raises(PlatformError, match="did not appear within"):
        list(read_batches(channel(mode="Pipe"), MLPaths(job.root), 10))


def test_pipe_epochs_read_their_own_fifo(job):
    job.add_pipe("train", [csv([[1, 1]] * 3), csv([[2, 2]] * 4)])
    paths = MLPaths(job.root)
    first = list(read_batches(channel(mode="Pipe"), paths, 10, epoch=0))
    second = list(read_batches(channel(mode="Pipe"), paths, 10, epoch=1))
    assert len(first[0]) == 3 and len(second[0]) == 4 and second[0].features[0, 0] == 2


def test_failure_file_puts_category_and_message_first(tmp_path):
    paths = MLPaths(tmp_path)
    try:
        raise DataError("x" * 3000, source="f.csv", record=3)
    except DataError as exc:
        shown = write_failure(paths, exc)
    text = paths.failure_file.read_text()
    assert text.startswith("ClientError: xxx") and len(shown) <= 1024
    assert "Traceback" in text[1024:]


def test_failure_file_for_our_own_bugs(tmp_path):
    paths = MLPaths(tmp_path)
    try:
        {}["missing"]
    except KeyError as exc:
        write_failure(paths, exc)
    assert paths.failure_file.read_text().startswith("AlgorithmError: KeyError: 'missing'")


def tar_with(tmp_path, name, *, link=False, data=b"x"):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


@pytest.mark.parametrize("name,link,message", [
    ("../evil", False, "unsafe path"),
    ("/abs", False, "unsafe path"),
    ("model_algo-1", True, "link or special file"),
])
def test_model_archives_are_extracted_with_bounds(tmp_path, name, link, message):
    archive = tar_with(tmp_path, name, link=link)
    with pytest.raises(ClientError, match=message):
        safe_extract(archive, tmp_path / "out")


def test_model_archive_size_bound(tmp_path):
    archive = tar_with(tmp_path, "big", data=b"0" * 1000)
    with pytest.raises(ClientError, match="unpacks to more than"):
        safe_extract(archive, tmp_path / "out", max_bytes=100)


def test_model_dir_with_a_tarball_is_unpacked(tmp_path):
    tar_with(tmp_path, "model_algo-1", data=b"abc")
    assert (resolve_model_dir(tmp_path) / "model_algo-1").read_bytes() == b"abc"


def test_log_lines_look_like_the_builtin_algorithms(job):
    job.add_file("train", "a.csv", csv(np.random.default_rng(0).normal(size=(20, 2))))
    job.write_config({"k": 2, "feature_dim": 2}, {"train": {"ContentType": "text/csv"}})
    result = job.train("kmeans")
    assert result.returncode == 0
    line = re.compile(r"^\[\d\d/\d\d/\d{4} \d\d:\d\d:\d\d (INFO|WARNING|ERROR) \d+ \S+\.py:\d+\] .+$")
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert all(line.match(l) for l in lines), [l for l in lines if not line.match(l)][:3]
    assert "Final configuration:" in result.output and "Stage streaming took" in result.output
    assert re.search(r"records/s", result.output) and "#metrics {" in result.output


def test_model_archives_unpack_without_tarfile_extract_filter(tmp_path, monkeypatch):
    """Python 3.11.0-3.11.3 (Debian bookworm's 3.11.2 in the images) has no ``filter=``: never rely on it."""
    def no_extract(*args, **kwargs):
        raise TypeError("TarFile.extract() got an unexpected keyword argument 'filter'")

    monkeypatch.setattr(tarfile.TarFile, "extract", no_extract)
    monkeypatch.setattr(tarfile.TarFile, "extractall", no_extract)
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("model_algo-1", b"abc"), ("sub/extra.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = resolve_model_dir(tmp_path)
    assert (out / "model_algo-1").read_bytes() == b"abc" and (out / "sub/extra.json").read_bytes() == b"{}"


@pytest.mark.parametrize("kind", [tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_model_archives_refuse_hard_links_and_devices(tmp_path, kind):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("model_algo-1")
        info.type, info.linkname = kind, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ClientError, match="link or special file"):
        safe_extract(archive, tmp_path / "out")


def test_model_archive_that_is_not_a_tar_is_a_clear_client_error(tmp_path):
    (tmp_path / "model.tar.gz").write_bytes(b"not a tar at all" * 10)
    with pytest.raises(ClientError, match="not a readable tar"):
        resolve_model_dir(tmp_path)
