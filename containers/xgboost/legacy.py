"""Models that today's xgboost can no longer read: the 1.x legacy binary and the pickles of SageMaker's 0.72-1.2.

xgboost 3.1 removed the binary model format, and with it the unpickling of old Boosters (their state is that
binary). Both are converted here, in pure Python, to the JSON model document that xgboost 3 loads.

The binary layout (xgboost 0.7x-1.7, little-endian): optional ``binf`` magic; ``LearnerModelParam`` (136 bytes:
base_score f32, num_feature u32, num_class i32, contain_extra_attrs i32, contain_eval_metrics i32, major u32,
minor u32, reserved); objective and booster names (u64 length + bytes); the booster; then the attributes
(u64 count of string pairs), for count:poisson a max_delta_step string, and the metric names. A gbtree is
``GBTreeModelParam`` (160 bytes: num_trees i32, ..., num_output_group i32 at 24), the trees, and tree_info
(i32 per tree); dart adds weight_drop (u64 count + f32). A tree is ``TreeParam`` (148 bytes: num_nodes i32 at
4, num_deleted at 8, num_feature at 16), nodes (parent, left, right i32, sindex u32 whose top bit is
default-left, value f32) and stats (loss_chg, sum_hess, base_weight f32, leaf_child_cnt i32).

Pickles are read with a restricted unpickler that resolves only ``xgboost.core.Booster`` (to a stand-in
that keeps the state), ``bytearray`` and ``_codecs.encode``: nothing else in the file can be called.
"""

import io
import json
import math
import pickle
import struct

import numpy as np

LEARNER_PARAM_BYTES = 136
GBTREE_PARAM_BYTES = 160
GBLINEAR_PARAM_BYTES = 136
TREE_PARAM_BYTES = 148
SERIALISATION_HEADER = b"CONFIG-offset:"
NODE = np.dtype([("parent", "<i4"), ("left", "<i4"), ("right", "<i4"), ("sindex", "<u4"), ("value", "<f4")])
STAT = np.dtype([("loss_chg", "<f4"), ("sum_hess", "<f4"), ("base_weight", "<f4"), ("leaf_child_cnt", "<i4")])


class LegacyFormatError(ValueError):
    """The bytes are not a model this module understands."""


class _Reader:
    def __init__(self, buffer):
        self.buffer = memoryview(buffer)
        self.offset = 0

    def take(self, size):
        if self.offset + size > len(self.buffer):
            raise LegacyFormatError(f"model ends early: needed {size} bytes at offset {self.offset}")
        part = self.buffer[self.offset:self.offset + size]
        self.offset += size
        return part

    def unpack(self, fmt, size=None):
        size = struct.calcsize(fmt) if size is None else size
        return struct.unpack_from(fmt, self.take(size))

    def u64(self):
        return self.unpack("<Q")[0]

    def string(self):
        length = self.u64()
        if length > len(self.buffer):
            raise LegacyFormatError(f"string of {length} bytes at offset {self.offset - 8}")
        return bytes(self.take(length)).decode("utf-8", "replace")

    def array(self, dtype, count):
        dtype = np.dtype(dtype)
        return np.frombuffer(self.take(dtype.itemsize * count), dtype=dtype).copy()


def is_legacy_binary(data):
    """Does ``data`` look like a 1.x binary model (or the 0.7x one without the ``binf`` magic)?"""
    head = bytes(data[:1])
    return bytes(data[:4]) == b"binf" or (len(data) > LEARNER_PARAM_BYTES and head not in (b"{", b"["))


def _float_text(value):
    return repr(float(np.float32(value)))


def _tree_json(reader, index):
    _roots, num_nodes, num_deleted, _depth, num_feature, _leaf_vector = reader.unpack("<6i", TREE_PARAM_BYTES)
    if num_nodes < 1 or num_nodes > 1 << 30:
        raise LegacyFormatError(f"tree {index} has {num_nodes} nodes")
    nodes = reader.array(NODE, num_nodes)
    stats = reader.array(STAT, num_nodes)
    return {
        "base_weights": stats["base_weight"].tolist(),
        "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
        "default_left": (nodes["sindex"] >> 31).astype(int).tolist(),
        "id": index,
        "left_children": nodes["left"].tolist(),
        "loss_changes": stats["loss_chg"].tolist(),
        "parents": (nodes["parent"].astype(np.int64) & 0x7FFFFFFF).tolist(),
        "right_children": nodes["right"].tolist(),
        "split_conditions": nodes["value"].tolist(),
        "split_indices": (nodes["sindex"] & 0x7FFFFFFF).astype(int).tolist(),
        "split_type": [0] * num_nodes,
        "sum_hessian": stats["sum_hess"].tolist(),
        "tree_param": {"num_deleted": str(num_deleted), "num_feature": str(num_feature),
                       "num_nodes": str(num_nodes), "size_leaf_vector": "1"},
    }


def _gbtree_json(reader, num_class):
    num_trees, _roots, _features, _pad, _pbuffer, num_groups, _leaf_vector = reader.unpack(
        "<iiiiqii", GBTREE_PARAM_BYTES)
    if num_trees < 0 or num_trees > 1 << 24:
        raise LegacyFormatError(f"gbtree claims {num_trees} trees")
    trees = [_tree_json(reader, i) for i in range(num_trees)]
    tree_info = reader.array("<i4", num_trees).tolist() if num_trees else []
    groups = max(num_groups, num_class, 1)  # 1.x keeps num_output_group at 1 and the classes in the learner
    iterations = num_trees // groups
    return {
        "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": str(num_trees)},
        "iteration_indptr": [i * groups for i in range(iterations + 1)],
        "tree_info": tree_info,
        "trees": trees,
    }, groups


def _pred_transform(objective, margin):
    """Before 1.0 the binary kept base_score as a margin; 1.0+ keeps what the user gave (the 1.x loader's rule)."""
    if objective in ("binary:logistic", "reg:logistic"):
        return 1.0 / (1.0 + math.exp(-margin))
    if objective in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"):
        return math.exp(margin)
    return margin


def parse_binary(data):
    """A 1.x (or 0.7x-0.9x) binary model as ``(model_json_dict, attributes, objective)``."""
    reader = _Reader(data)
    if bytes(data[:4]) == b"binf":
        reader.take(4)
    base_score, num_feature, num_class, extra_attrs, eval_metrics, major, minor = reader.unpack(
        "<fIiiiII", LEARNER_PARAM_BYTES)
    objective = reader.string()
    booster_name = reader.string()
    if objective == "reg:linear":
        objective = "reg:squarederror"
    if booster_name in ("gbtree", "dart"):
        model, groups = _gbtree_json(reader, num_class)
        if booster_name == "dart":
            count = reader.u64()
            model = {"gbtree": {"model": model, "name": "gbtree"}, "name": "dart",
                     "weight_drop": reader.array("<f4", count).tolist()}
        else:
            model = {"model": model, "name": "gbtree"}
    elif booster_name == "gblinear":
        _features, groups = reader.unpack("<Ii", GBLINEAR_PARAM_BYTES)
        count = reader.u64()
        model = {"model": {"boosted_rounds": 0, "weights": reader.array("<f4", count).tolist()}, "name": "gblinear"}
        groups = max(groups, 1)
    else:
        raise LegacyFormatError(f"unknown booster {booster_name!r} (objective {objective!r})")
    attributes = {}
    if extra_attrs:
        for _ in range(reader.u64()):
            key, value = reader.string(), reader.string()
            if key != "objective":  # 1.x's copy of its configuration, not a user attribute
                attributes[key] = value
    if major < 1 and not objective.startswith("multi:"):
        base_score = _pred_transform(objective, base_score)
    num_class = max(num_class, 0)
    scores = [base_score] * (num_class if num_class > 1 else 1)
    learner = {
        "attributes": attributes,
        "feature_names": [], "feature_types": [],
        "gradient_booster": model,
        "learner_model_param": {
            "base_score": "[" + ",".join(_float_text(s) for s in scores) + "]",
            "boost_from_average": "0", "num_class": str(num_class), "num_feature": str(num_feature),
            "num_target": "1",
        },
        "objective": _objective_json(objective, num_class),
    }
    return {"learner": learner, "version": [1, 7, 6] if major >= 1 else [0, 90, 0]}, attributes, objective


def _objective_json(objective, num_class):
    """The objective's section of a model document, as today's xgboost writes it for that objective."""
    import xgboost as xgb

    params = {"objective": objective}
    if objective.startswith("multi:"):
        params["num_class"] = max(num_class, 2)
    labels = np.arange(4, dtype=np.float32) % max(num_class, 2) if objective.startswith("multi:") else \
        np.array([0, 1, 0, 1], np.float32)
    dtrain = xgb.DMatrix(np.arange(8, dtype=np.float32).reshape(4, 2), labels + (1 if "gamma" in objective
                                                                                 or "tweedie" in objective
                                                                                 or "poisson" in objective
                                                                                 else 0))
    if objective.startswith("rank:"):
        dtrain.set_group([4])
    if objective == "survival:aft":
        dtrain.set_float_info("label_lower_bound", labels + 1)
        dtrain.set_float_info("label_upper_bound", labels + 2)
    booster = xgb.train(params, dtrain, 0)
    return json.loads(booster.save_raw("json"))["learner"]["objective"]


class _BoosterState:
    """Stands in for ``xgboost.core.Booster`` while unpickling: it keeps the pickled state, runs nothing."""

    def __setstate__(self, state):
        self.state = state


class _RestrictedUnpickler(pickle.Unpickler):
    ALLOWED = {("builtins", "bytearray"): bytearray, ("__builtin__", "bytearray"): bytearray,
               ("_codecs", "encode"): lambda text, encoding="utf-8": text.encode(encoding)}

    def find_class(self, module, name):
        if (module, name) == ("xgboost.core", "Booster"):
            return _BoosterState
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"a pickled xgboost model may not reference {module}.{name}")


def unpickle_state(data):
    """The state dict of a pickled Booster, or raise ``pickle.UnpicklingError``."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # truncated or foreign bytes: any of struct, EOF, key, value errors
        raise pickle.UnpicklingError(f"not a pickled xgboost Booster: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, _BoosterState) or not isinstance(getattr(obj, "state", None), dict):
        raise pickle.UnpicklingError("the pickle does not hold an xgboost Booster")
    return obj.state


def raw_model(handle):
    """The model bytes inside a pickled Booster's ``handle``: binary (0.7x-0.9x), or 1.0-1.2's
    ``CONFIG-offset:`` + i64 length + binary + JSON config, or a JSON document (1.3+)."""
    data = bytes(handle)
    if data.startswith(SERIALISATION_HEADER):
        start = len(SERIALISATION_HEADER) + 8
        (length,) = struct.unpack_from("<q", data, len(SERIALISATION_HEADER))
        return data[start:start + length]
    return data


def booster_from_document(document, attributes=None):
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(document).encode()))
    for key, value in (attributes or {}).items():
        booster.set_attr(**{key: str(value)})
    return booster


def load_binary(data):
    """A Booster of today's xgboost from legacy binary bytes."""
    document, attributes, _objective = parse_binary(data)
    return booster_from_document(document, attributes)


def load_pickle(data):
    """A Booster of today's xgboost from a pickled 0.72-1.2 Booster (restricted unpickling, then conversion)."""
    import xgboost as xgb

    state = unpickle_state(data)
    handle = state.get("handle")
    if handle is None:
        raise LegacyFormatError("the pickled Booster holds no model")
    raw = raw_model(handle)
    if raw[:1] in (b"{", b"["):
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(raw))
        except xgb.core.XGBoostError:  # a 1.3+ memory snapshot: {"Model": ..., "Config": ...}
            snapshot = json.loads(raw)
            booster.load_model(bytearray(json.dumps(snapshot["Model"]).encode()))
    else:
        booster = load_binary(raw)
    extra = {k: state[k] for k in ("best_iteration", "best_ntree_limit", "best_score") if k in state
             and state[k] is not None}
    for key, value in extra.items():
        if booster.attr(key) is None:
            booster.set_attr(**{key: str(value)})
    return booster
