"""XGBoost hyperparameters in-process: the schema, removed names, the library's validation, declared checks,
the legacy-model converter's refusals, and the libsvm parser's edge cases (fast; the entrypoint tests are in
test_xgboost_training.py)."""

import os
import pickle

import numpy as np
import pytest

from common import libsvm
from common.errors import DataError, HyperparameterError
from common.spec import load_spec
from containers.xgboost import checks, legacy, params

SPEC = load_spec("xgboost")


def settings(**raw):
    hp = SPEC.hyperparameters.parse({"num_round": "5", **{k: str(v) for k, v in raw.items()}})
    checks.check(hp)
    return params.resolve(hp)


def test_removed_names_are_mapped_with_notices():
    s = settings(objective="reg:linear", silent=1, lambda_bias=0.5, tree_method="gpu_hist", predictor="cpu_predictor",
                 sketch_eps=0.1, gpu_id=1)
    assert s.params["objective"] == "reg:squarederror" and s.params["verbosity"] == 0
    assert s.params["tree_method"] == "hist" and s.params["device"] == "cuda:1"
    assert "lambda_bias" not in s.params and "sketch_eps" not in s.params and "predictor" not in s.params
    assert len(s.notices) == 7  # one per removed name


def test_eval_metric_list_and_tuning_metric_last():
    hp = SPEC.hyperparameters.parse({"num_round": "5", "objective": "binary:logistic", "eval_metric": "auc, error"})
    s = params.resolve(hp, "validation:logloss")
    assert s.eval_metrics == ["auc", "error", "logloss"]
    s = params.resolve(hp, "validation:auc")
    assert s.eval_metrics == ["error", "auc"]  # early stopping watches the tuning job's metric
    assert params.direction("auc") == "Maximize" and params.direction("ndcg@5") == "Maximize"
    assert params.direction("error@0.7") == "Minimize"


def test_monotone_constraints_forms():
    assert settings(monotone_constraints="[1, 0,-1]").monotone == "(1,0,-1)"
    s = settings(monotone_constraints='{"3": 1, "0": -1}')
    assert params.expand_monotone(s.monotone, 5) == "(-1,0,0,1,0)"
    with pytest.raises(HyperparameterError, match="not below the 3 features"):
        params.expand_monotone(s.monotone, 3)
    with pytest.raises(HyperparameterError, match="monotone_constraints"):
        settings(monotone_constraints="(1,2)")


@pytest.mark.parametrize("raw,words", [
    ({"objective": "multi:softprob"}, "Missing hyperparameter num_class"),
    ({"num_class": 3}, "applies to multi:softmax and multi:softprob only"),
    ({"eval_metric": "auc"}, "auc applies to classification"),
    ({"objective": "multi:softmax", "num_class": 3, "eval_metric": "error"}, "use merror"),
    ({"eval_metric": "mlogloss"}, "applies to multi:. objectives"),
    ({"rate_drop": 0.1}, "booster=dart only"),
    ({"top_k": 3}, "booster=gblinear only"),
    ({"eval_metric": "aft-nloglik"}, "survival:aft only"),
    ({"subsample": 0}, "subsample"),
    ({"max_bin": 1}, "max_bin"),
    ({"eta": "nan"}, "eta"),
    ({"device": "tpu"}, "device"),
    ({"use_dask_gpu_training": "true"}, "Dask"),
])
def test_declared_checks_and_schema_refuse(raw, words):
    with pytest.raises(HyperparameterError, match=words):
        settings(**raw)


@pytest.mark.parametrize("raw,name", [
    ({"updater": "grow_colmaker,grow_nothing"}, "updater"),
    ({"eval_metric": "rmse,no_such_metric"}, "eval_metric"),
    ({"objective": "reg:tweedie", "tweedie_variance_power": 1.5, "interaction_constraints": "[[0, 1], [-1]]"},
     "interaction_constraints"),
    ({"booster": "gblinear", "updater": "grow_colmaker"}, "updater"),
])
def test_the_library_names_the_value_it_refuses(raw, name):
    with pytest.raises(HyperparameterError) as caught:
        params.validate(settings(**raw))
    message = str(caught.value)
    assert message.startswith(f"Invalid hyperparameter {name}=") or name in message, message
    assert "Stack trace" not in message and "/workspace/" not in message


def test_valid_settings_pass_the_library():
    params.validate(settings(objective="multi:softprob", num_class=4, eval_metric="mlogloss,merror",
                             num_parallel_tree=2, max_cat_to_onehot=4, booster="dart", rate_drop=0.1))
    params.validate(settings(booster="gblinear", feature_selector="shuffle", updater="coord_descent"))


def test_libsvm_parser_edges():
    """common's parser with this image's options (data.py's _parse_strictly)."""
    parsed = libsvm.parse(b"1:2 0:1.5 3:nan # a comment\n0:1 2:-1e-3\n", weights="all", qid="refuse")
    assert parsed.labels.tolist() == [1, 0] and parsed.weights.tolist() == [2, 1]
    assert np.isnan(parsed.values[1]) and parsed.indptr.tolist() == [0, 2, 3]
    with pytest.raises(DataError, match="record 2"):
        libsvm.parse(b"1 1:2\n0 1:2:3\n", source="f", weights="all", qid="refuse")
    with pytest.raises(DataError, match="not a number"):
        libsvm.parse(b"x 1:2\n", source="f", weights="all", qid="refuse")


def test_legacy_converter_refuses_foreign_bytes():
    with pytest.raises(legacy.LegacyFormatError):
        legacy.parse_binary(b"\x00" * 200)
    with pytest.raises(Exception, match="may not reference"):
        legacy.unpickle_state(pickle.dumps(os.system))
    with pytest.raises(DataError, match="weight"):
        libsvm.parse(b"1:2 0:1\n0 1:1\n", weights="all")
