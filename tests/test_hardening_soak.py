"""A short run of benchmarks/soak.py in CI: no error for a valid request, no 5xx, no worker restart, no
traceback, worker RSS within 20% of its level after warm-up. Algorithm-agnostic given a model root."""

import importlib.util
from pathlib import Path

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


def load_soak():
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_soak_has_no_failures(tmp_path):
    soak = load_soak()
    report = soak.soak("kmeans", soak.kmeans_model(tmp_path), duration=20, clients=2, warmup=5)
    print(report)
    assert report["latency_ms"]["valid"]["count"] > 100 and report["latency_ms"]["malformed"]["count"] > 10
    assert set(report["by_status"]) >= {"200", "400", "415"}
    assert soak.failures(report, max_rss_growth=0.2) == []
