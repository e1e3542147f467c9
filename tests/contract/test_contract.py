"""One conformance suite over every algorithm (scikit-learn's ``parametrize_with_checks``, for containers).

Every folder of ``containers/`` with a spec.py must ship ``sample.py``: ``HYPERPARAMETERS``,
``INVALID_HYPERPARAMETERS`` ([(overrides, words of the message)]), ``training_data(channel, content_type)``
(or ``write_channels(root, content_type, input_mode)`` for non-tabular channels) and ``requests()``
([(content type, body, records)]). The suite then checks the whole container contract through the real
entrypoint (subprocesses, real HTTP): bad hyperparameters exit 1 with the failure file, a missing
required channel, every declared training content type in every declared input mode, SIGTERM, every
request and response type, 415/406/400/413, model.tar.gz, and ``describe``. A throwaway algorithm defined
only in this folder (``mean_predictor``) passes it too, which proves the seams need no change in common/.
Per-algorithm test files keep only their numerics.
"""

import importlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import requests

from common import contenttypes as ct
from common import protobuf, recordio
from common.spec import available, load_spec
from emulator import ALGOBOX, REPO, Job, serve

HERE = Path(__file__).resolve().parent
EXTRA = {"mean_predictor.spec:SPEC": "mean_predictor.sample"}


def _algorithms():
    names = [(name, f"containers.{name.replace('-', '_')}.sample") for name in available()]
    return names + list(EXTRA.items())


ALGORITHMS = _algorithms()
IDS = [name.partition(".")[0] for name, _ in ALGORITHMS]


def env_for(name):
    return {"PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])} if ":" in name else {}


class Subject:
    """One algorithm under test: its CLI name, spec, sample, and a trained model shared by its checks."""

    def __init__(self, name, sample_module, tmp_factory):
        self.name = name
        self.spec = load_spec(name)
        self.sample = importlib.import_module(sample_module)
        self.tmp_factory = tmp_factory
        self._model = None

    @property
    def train_spec(self):
        return next(c for c in self.spec.channels if c.required)

    def job(self, content_type=None, input_mode="File", channels=None, hyperparameters=None):
        job = Job(self.tmp_factory.mktemp(self.name.partition(".")[0].replace(":", "_")) / "opt_ml")
        content_type = content_type or self.train_spec.content_types[0]
        if hasattr(self.sample, "write_channels"):
            config = self.sample.write_channels(job.root, content_type, input_mode)
        else:
            config = {}
            for spec in self.spec.channels:
                if not (spec.required or spec.name == "test") or (channels is not None and spec.name not in channels):
                    continue
                data = self.sample.training_data(spec.name, content_type if content_type in spec.content_types
                                                 else spec.content_types[0])
                mime = content_type if content_type in spec.content_types else spec.content_types[0]
                mode = input_mode if spec.name == self.train_spec.name else "File"
                if mode == "Pipe":
                    job.add_pipe(spec.name, [data] * 20)
                else:
                    job.add_file(spec.name, "part-0", data)
                config[spec.name] = {"ContentType": mime, "TrainingInputMode": mode}
        if channels is not None:
            config = {k: v for k, v in config.items() if k in channels}
        job.write_config({**self.sample.HYPERPARAMETERS, **(hyperparameters or {})}, config)
        return job

    def train(self, job, timeout=600):
        return job.train(self.name, env=env_for(self.name), timeout=timeout)

    def model(self):
        """The model trained once from the first content type in File mode, shared by the serving checks."""
        if self._model is None:
            job = self.job()
            result = self.train(job)
            assert result.returncode == 0, result.output[-4000:]
            self._model = job.root
        return self._model

    def serve(self, root, env=None):
        return serve(self.name, root, env={**env_for(self.name), **(env or {})}, startup_timeout=120)


@pytest.fixture(scope="module", params=ALGORITHMS, ids=IDS)
def subject(request, tmp_path_factory):
    name, sample = request.param
    return Subject(name, sample, tmp_path_factory)


def test_every_algorithm_ships_a_sample():
    for name in available():
        module = f"containers.{name.replace('-', '_')}.sample"
        sample = importlib.import_module(module)
        assert hasattr(sample, "HYPERPARAMETERS") and hasattr(sample, "requests"), module
        assert hasattr(sample, "training_data") or hasattr(sample, "write_channels"), module


# ------------------------------------------------------------------------------------------- training

def test_invalid_hyperparameters_exit_1_with_the_failure_file(subject):
    for overrides, words in subject.sample.INVALID_HYPERPARAMETERS:
        job = subject.job(hyperparameters=overrides)
        started = time.monotonic()
        result = subject.train(job)
        assert result.returncode == 1, (overrides, result.output[-3000:])
        first = result.failure.splitlines()[0]
        assert first.startswith("ClientError: ") and words in first, (overrides, first)
        assert time.monotonic() - started < 60  # setup fails before any heavy work


def test_unknown_and_nan_hyperparameters_are_client_errors(subject):
    result = subject.train(subject.job(hyperparameters={"no_such_hyperparameter": "1"}))
    assert result.returncode == 1 and "no_such_hyperparameter" in result.failure.splitlines()[0]


def test_tuning_objective_must_be_a_declared_metric(subject):
    result = subject.train(subject.job(hyperparameters={"_tuning_objective_metric": "test:nonsense"}))
    assert result.returncode == 1
    first = result.failure.splitlines()[0]
    assert "_tuning_objective_metric" in first and "test:nonsense" in first


def test_missing_required_channel(subject):
    job = subject.job()
    config = json.loads((job.root / "input/config/inputdataconfig.json").read_text())
    del config[subject.train_spec.name]
    (job.root / "input/config/inputdataconfig.json").write_text(json.dumps(config))
    result = subject.train(job)
    assert result.returncode == 1
    assert f"Required channel '{subject.train_spec.name}'" in result.failure.splitlines()[0]


def test_every_declared_content_type_and_input_mode_trains(subject):
    for content_type in subject.train_spec.content_types:
        for mode in subject.train_spec.input_modes:
            if hasattr(subject.sample, "write_channels") and content_type != subject.train_spec.content_types[0] \
                    and mode != "File":
                continue
            job = subject.job(content_type, mode)
            result = subject.train(job)
            assert result.returncode == 0, (content_type, mode, result.output[-4000:])
            assert result.model_files, (content_type, mode)
            assert "Stage train took" in result.output and "#metrics {" in result.output


def test_sigterm_stops_training_promptly(subject):
    """SIGTERM while the job waits for more data: out well inside the platform's 120 s, and either a model
    saved (exit 0) or a failure file saying why."""
    if "Pipe" in subject.train_spec.input_modes and not hasattr(subject.sample, "write_channels"):
        job = subject.job(channels=[subject.train_spec.name])
        data = subject.sample.training_data(subject.train_spec.name, subject.train_spec.content_types[0])

        def stalled():
            yield data
            time.sleep(60)

        fifo_job_config = json.loads((job.root / "input/config/inputdataconfig.json").read_text())
        fifo_job_config[subject.train_spec.name]["TrainingInputMode"] = "Pipe"
        (job.root / "input/config/inputdataconfig.json").write_text(json.dumps(fifo_job_config))
        for path in (job.root / "input/data" / subject.train_spec.name).glob("*"):
            path.unlink()
        job.add_pipe(subject.train_spec.name, [stalled()])
        wait_for = "Final configuration"
    else:
        job = subject.job()
        wait_for = "Final configuration"
    process = job.start_train(subject.name, env=env_for(subject.name))
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if wait_for in line:
            break
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    result = job.result(process, timeout=60)
    assert time.monotonic() - started < 15, "SIGTERM took too long"
    assert result.returncode == 0 and result.model_files or result.failure, result.output[-3000:]


# -------------------------------------------------------------------------------------------- serving

@pytest.fixture(scope="module")
def server(subject):
    with subject.serve(subject.model()) as running:
        yield running


def _records_in(body, mime, response_key):
    if mime == ct.JSON:
        document = json.loads(body)
        if isinstance(document, dict) and response_key in document:
            return len(document[response_key])
        return len(document) if isinstance(document, list) else 1
    if mime == ct.JSONLINES:
        return len(body.split(b"\n"))
    if mime == ct.RECORDIO_PROTOBUF:
        return len(list(recordio.iter_records(io.BytesIO(body))))
    if mime == ct.CSV:
        return len(body.split(b"\n"))
    raise AssertionError(f"no record counter for {mime}")


def test_every_request_and_response_type(subject, server):
    samples = subject.sample.requests()
    assert {mime for mime, _, _ in samples} == set(subject.spec.request_types)
    for mime, body, records in samples:
        for accept in subject.spec.response_types:
            response = server.post(body, mime, accept=accept)
            assert response.status_code == 200, (mime, accept, response.text[:500])
            assert response.headers["Content-Type"].startswith(accept)
            assert not response.content.endswith(b"\n"), "the platform appends the line break (AssembleWith=Line)"
            assert _records_in(response.content, accept, subject.spec.response_key) == records, (mime, accept)
    mime, body, _ = samples[0]
    default = server.post(body, mime)
    assert default.status_code == 200 and default.headers["Content-Type"].startswith(subject.spec.default_accept)


def test_client_errors_are_4xx_and_the_server_keeps_serving(subject, server):
    mime, body, _ = subject.sample.requests()[0]
    assert server.post(body, "application/x-not-a-type").status_code == 415
    assert server.post(body, mime, accept="application/x-not-a-type").status_code == 406
    for request_type in subject.spec.request_types:
        response = server.post(b"\x00\xff garbage \x01", request_type)
        assert response.status_code == 400, (request_type, response.text[:300])
        assert "error" in response.json()
    assert server.post(b"", mime).status_code == 400
    assert server.post(body, mime).status_code == 200
    assert server.get("/ping").status_code == 200


def test_payload_limit_is_413(subject, tmp_path):
    mime, body, _ = subject.sample.requests()[0]
    with subject.serve(subject.model(), env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
                                             "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}) as limited:
        response = limited.post(body * (2 * 1024 * 1024 // len(body) + 1), mime)
        assert response.status_code == 413
        params = limited.get("/execution-parameters").json()
        assert params["MaxPayloadInMB"] == 1 and params["BatchStrategy"] == "MULTI_RECORD"


def test_serves_a_model_tar_gz(subject, tmp_path):
    """As SageMaker's local mode and some users do: the model folder holds model.tar.gz, unpacked once."""
    root = tmp_path / "opt_ml"
    (root / "model").mkdir(parents=True)
    with tarfile.open(root / "model" / "model.tar.gz", "w:gz") as tar:
        for path in sorted((subject.model() / "model").iterdir()):
            tar.add(path, arcname=path.name)
    mime, body, _ = subject.sample.requests()[0]
    with subject.serve(root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}) as running:
        assert running.post(body, mime).status_code == 200
    assert running.output.count("Unpacking") == 1  # once, in the master, not once per worker


# ------------------------------------------------------------------------------------------- describe

def test_describe_is_a_valid_create_algorithm_request(subject):
    out = subprocess.run(ALGOBOX + [subject.name, "describe", "--image", "123456789012.dkr.ecr.us-east-1."
                                    "amazonaws.com/algobox:1"], capture_output=True, text=True,
                         env={**os.environ, **env_for(subject.name)}, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    request = json.loads(out.stdout)
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(request, model.operation_model("CreateAlgorithm").input_shape)
    assert not report.has_errors(), report.generate_report()
    training = request["TrainingSpecification"]
    names = {m["Name"] for m in training["MetricDefinitions"]}
    assert names == set(subject.spec.metric_names())
    assert {o["MetricName"] for o in training.get("SupportedTuningJobObjectiveMetrics", [])} <= names
    declared = set(subject.spec.hyperparameters.properties)
    assert {h["Name"] for h in training["SupportedHyperParameters"]} == declared
    assert {c["Name"] for c in training["TrainingChannels"]} == {c.name for c in subject.spec.channels}
    assert request["InferenceSpecification"]["SupportedContentTypes"] == list(subject.spec.request_types)
    import re
    for metric in subject.spec.metrics:
        for line, definition in zip(metric.lines(0.125, host="algo-1", epoch=3), metric.definitions()):
            assert re.search(definition["Regex"], line).group(1) == "0.125"


def test_spec_is_complete(subject):
    subject.spec.validate()
    assert subject.spec.description
    code = (f"import sys; from common.spec import load_spec; load_spec({subject.name!r}); "
            "heavy = [m for m in ('torch', 'tensorflow', 'xgboost', 'faiss', 'fasttext') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, **env_for(subject.name)}, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr[-2000:])
