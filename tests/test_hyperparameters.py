"""Hyperparameter conversion and validation, through the k-means schema (every kind of value)."""

import pytest

from common.errors import HyperparameterError
from common.spec import load_spec

SCHEMA = load_spec("kmeans").hyperparameters
BASE = {"k": "10", "feature_dim": "784"}


def parse(**extra):
    return SCHEMA.parse({**BASE, **extra})


def test_defaults_and_types():
    hp = parse()
    assert hp["k"] == 10 and hp["feature_dim"] == 784
    assert hp["mini_batch_size"] == 5000
    assert hp["init_method"] == "random"
    assert hp["extra_center_factor"] == "auto"
    assert hp["local_lloyd_tol"] == 0.0001
    assert hp["eval_metrics"] == ["msd"]


def test_typed_values_from_strings():
    hp = parse(extra_center_factor="4", local_lloyd_tol="0.5", eval_metrics='["msd","ssd"]',
               local_lloyd_num_trials="auto", init_method="kmeans++")
    assert hp["extra_center_factor"] == 4
    assert hp["local_lloyd_tol"] == 0.5
    assert hp["eval_metrics"] == ["msd", "ssd"]
    assert hp["local_lloyd_num_trials"] == "auto"
    assert hp["init_method"] == "kmeans++"


def test_sdk_local_mode_json_encoded_strings():
    hp = SCHEMA.parse({"k": '"10"', "feature_dim": '"4"', "init_method": '"kmeans++"'})
    assert hp["k"] == 10 and hp["feature_dim"] == 4 and hp["init_method"] == "kmeans++"


def test_platform_injected_keys_are_accepted():
    hp = parse(_tuning_objective_metric="test:msd", sagemaker_region="us-east-1")
    assert "_tuning_objective_metric" not in hp


def test_sdk_force_dense_is_accepted():
    assert parse(force_dense="True")["force_dense"] == "True"


@pytest.mark.parametrize("name,value,fragment", [
    ("k", "abc", "Invalid hyperparameter k='abc'"),
    ("k", "0", "less than the minimum of 1"),
    ("feature_dim", "1.5", "feature_dim='1.5'"),
    ("mini_batch_size", "-3", "mini_batch_size='-3'"),
    ("init_method", "kmeans", "is not one of ['random', 'kmeans++']"),
    ("extra_center_factor", "0", "extra_center_factor='0'"),
    ("extra_center_factor", "big", "auto or a positive integer"),
    ("local_lloyd_tol", "2", "local_lloyd_tol='2'"),
    ("local_lloyd_tol", "x", "a number in [0, 1]"),
    ("half_life_time_size", "-1", "half_life_time_size='-1'"),
    ("epochs", "two", "epochs='two'"),
    ("eval_metrics", '["mse"]', "eval_metrics"),
    ("eval_metrics", "msd", "eval_metrics='msd'"),
    ("eval_metrics", "[]", "should be non-empty"),
])
def test_bad_values_name_the_hyperparameter_and_what_is_allowed(name, value, fragment):
    with pytest.raises(HyperparameterError) as error:
        parse(**{name: value})
    assert fragment in str(error.value)
    assert "Allowed:" in str(error.value)


def test_unknown_hyperparameter_reads_like_the_builtin():
    with pytest.raises(HyperparameterError) as error:
        parse(mini_batch_siz="10")
    assert "Additional properties are not allowed ('mini_batch_siz' was unexpected)" in str(error.value)


def test_missing_required():
    with pytest.raises(HyperparameterError, match="'k' is a required property"):
        SCHEMA.parse({"feature_dim": "3"})
