"""The trained k-NN model: the three files the built-in writes, and prediction from them.

model_algo-1             the faiss index (``faiss.write_index``), of the reduced (and padded) points
model_algo-1.labels      one float32 label per indexed point, raw little-endian, in index id order
model_algo-1.json        {"k", "predictor_type", "dimension_reduction": {"type", "seed", "target_dim",
                          "input_dim"} or null, "normalize", "version": "1.0"} plus our own keys
                          "feature_dim", "index_type", "index_metric", "nprobe" and, with a reduction,
                          "dimension_reduction.matrix" (the file below)
model_algo-1.projection  (ours, with a reduction only) the input_dim x target_dim float32 projection matrix

``k``, ``predictor_type`` and ``nprobe`` are read from the JSON at load, so editing them changes the endpoint.
The JSON is read leniently: the guide's own example writes Python's ``False``.
"""

import ast
import json
import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from common.errors import ClientError

from . import index as knn_index
from . import line, projection

log = logging.getLogger(__name__)

MODEL_FILE = "model_algo-1"
LABELS_FILE = MODEL_FILE + ".labels"
META_FILE = MODEL_FILE + ".json"
PROJECTION_FILE = MODEL_FILE + ".projection"
VERSION = "1.0"
PREDICTOR_TYPES = ("classifier", "regressor")


def read_metadata(path):
    """model_algo-1.json as a dict: JSON, or the Python literal the guide's example shows (``False``)."""
    text = path.read_text(encoding="utf-8")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        try:
            meta = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError) as exc:
            raise ClientError(f"{path} is neither JSON nor a Python literal: {exc}") from None
    if not isinstance(meta, dict):
        raise ClientError(f"{path} must hold an object with k and predictor_type; found {type(meta).__name__}")
    return meta


def as_bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


PAIRWISE_VOTE_K = 16  # up to this k, counting equal pairs (k^2 / 2 vectorised comparisons) beats sorting rows


def vote(labels):
    """The most frequent label of each row (n x k); ties go to the smallest label, as scikit-learn's mode."""
    n, k = labels.shape
    if k <= PAIRWISE_VOTE_K:
        return pairwise_vote(labels)
    ordered = np.sort(labels, axis=1)
    starts = np.ones((n, k), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = np.cumsum(starts, axis=1) - 1  # run number of each position within its row
    flat = run + (np.arange(n) * k)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n * k).reshape(n, k)
    values = np.zeros((n, k), dtype=labels.dtype)
    values[np.repeat(np.arange(n), k), run.ravel()] = ordered.ravel()
    return values[np.arange(n), counts.argmax(axis=1)]  # argmax: the first (smallest) of the most frequent


def pairwise_vote(labels):
    """``vote`` for small k, column by column: each position's count of equal labels in its row, then the
    position with the highest count, the smaller label on equal counts (labels are finite: checked at load)."""
    n, k = labels.shape
    columns = [labels[:, j] for j in range(k)]
    counts = [np.ones(n, np.int32) for _ in range(k)]
    for a in range(k):
        for b in range(a + 1, k):
            same = columns[a] == columns[b]
            counts[a] += same
            counts[b] += same
    best, best_count = columns[0].copy(), counts[0]
    for j in range(1, k):
        better = (counts[j] > best_count) | ((counts[j] == best_count) & (columns[j] < best))
        np.copyto(best, columns[j], where=better)
        best_count = np.where(better, counts[j], best_count)
    return best


def normalize_rows(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


class KNNModel:
    """A faiss index, the labels of its points, and how to turn neighbours into a prediction."""

    distinct_rows = True  # a row's neighbours depend on it alone: repeated rows are searched once (common/repeats.py)

    def __init__(self, index, labels, k, predictor_type, feature_dim=None, projection_matrix=None,
                 normalize=False, metric="L2", index_type=None, reduction=None, nprobe=None):
        self.index = index
        self.labels = np.ascontiguousarray(labels, dtype=np.float32).reshape(-1)
        if self.labels.size != index.ntotal:
            raise ClientError(f"{LABELS_FILE} holds {self.labels.size} labels for the {index.ntotal} points of "
                              f"{MODEL_FILE}")
        if not np.isfinite(self.labels).all():
            bad = int(np.flatnonzero(~np.isfinite(self.labels))[0])
            raise ClientError(f"{LABELS_FILE} holds a label that is NaN or infinite (point {bad})")
        self.k = int(k)
        if self.k < 1:
            raise ClientError(f"k={k} in {META_FILE} must be a positive integer")
        if predictor_type not in PREDICTOR_TYPES:
            raise ClientError(f"predictor_type={predictor_type!r} in {META_FILE} must be classifier or regressor")
        self.predictor_type = predictor_type
        self.projection = None if projection_matrix is None else np.ascontiguousarray(projection_matrix, np.float32)
        reduced = index.d if self.projection is None else self.projection.shape[1]
        self.feature_dim = int(feature_dim or (reduced if self.projection is None else self.projection.shape[0]))
        self.reduced_dim = reduced if self.projection is not None else self.feature_dim
        if self.reduced_dim > index.d:
            raise ClientError(f"{MODEL_FILE} holds points of dimension {index.d}, fewer than the "
                              f"{self.reduced_dim} features it is asked to search with")
        self.normalize = bool(normalize)
        self.metric = metric
        self.index_type = index_type
        self.reduction = reduction
        self.nprobe = nprobe
        self.allows_missing = False
        faiss = knn_index.faiss_module()
        self.line = line.LineIndex(index, self._faiss_search) if line.applies(index, faiss) else None
        if index.ntotal < self.k:
            log.warning("The index holds %d points, fewer than k=%d: every answer uses the %d there are",
                        index.ntotal, self.k, index.ntotal)

    @property
    def neighbours(self):
        return min(self.k, self.index.ntotal)

    # ---- files ----

    @classmethod
    def load(cls, model_dir):
        model_dir = Path(model_dir)
        missing = [name for name in (MODEL_FILE, LABELS_FILE, META_FILE) if not (model_dir / name).is_file()]
        if missing:
            raise ClientError(f"No k-NN model in {model_dir}: missing {', '.join(missing)}")
        faiss = knn_index.faiss_module()
        try:
            index = faiss.read_index(str(model_dir / MODEL_FILE))
        except RuntimeError as exc:
            raise ClientError(f"{model_dir / MODEL_FILE} is not a faiss index: {str(exc).splitlines()[0]}") from None
        labels = np.fromfile(model_dir / LABELS_FILE, dtype="<f4")
        index = knn_index.to_gpu(index)
        meta = read_metadata(model_dir / META_FILE)
        if "k" not in meta or "predictor_type" not in meta:
            raise ClientError(f"{model_dir / META_FILE} must give k and predictor_type")
        reduction = meta.get("dimension_reduction") or None
        matrix = None
        if reduction:
            matrix_file = model_dir / str(reduction.get("matrix", PROJECTION_FILE))
            if not matrix_file.is_file():
                raise ClientError(
                    f"{META_FILE} declares dimension_reduction {reduction.get('type')!r} (seed "
                    f"{reduction.get('seed')}) but {matrix_file.name} is missing: the projection matrix cannot be "
                    "regenerated from the seed alone (Amazon's random number generator is not documented)")
            input_dim, target_dim = int(reduction["input_dim"]), int(reduction["target_dim"])
            matrix = np.fromfile(matrix_file, dtype="<f4")
            if matrix.size != input_dim * target_dim:
                raise ClientError(f"{matrix_file.name} holds {matrix.size} values; dimension_reduction says "
                                  f"{input_dim} x {target_dim}")
            matrix = matrix.reshape(input_dim, target_dim)
        normalize = as_bool(meta.get("normalize", False))
        metric = meta.get("index_metric")
        if metric is None:  # a model without our keys: the metric from the index, COSINE if normalized
            inner = index.metric_type == faiss.METRIC_INNER_PRODUCT
            metric = ("COSINE" if normalize else "INNER_PRODUCT") if inner else "L2"
        try:
            k = int(meta["k"])
        except (TypeError, ValueError):
            raise ClientError(f"k={meta['k']!r} in {META_FILE} must be a positive integer") from None
        nprobe = meta.get("nprobe")
        if nprobe is not None:
            try:
                nprobe = int(nprobe)
                if nprobe < 1:
                    raise ValueError
            except (TypeError, ValueError):
                raise ClientError(f"nprobe={meta['nprobe']!r} in {META_FILE} must be a positive integer or null") from None
        model = cls(index, labels, k, str(meta["predictor_type"]).strip().lower(),
                    feature_dim=meta.get("feature_dim"), projection_matrix=matrix,
                    normalize=normalize, metric=metric,
                    index_type=meta.get("index_type"), reduction=reduction, nprobe=nprobe)
        log.info("k-NN model: %d points of dimension %d (%s), k=%d, %s, feature_dim=%d%s%s", index.ntotal, index.d,
                 type(index).__name__, model.k, model.predictor_type, model.feature_dim,
                 f", {reduction['type']} reduction to {model.reduced_dim}" if reduction else "",
                 ", normalized (COSINE)" if model.normalize else "")
        return model

    def metadata(self):
        reduction = None
        if self.projection is not None:
            reduction = {**(self.reduction or {}), "target_dim": int(self.projection.shape[1]),
                         "input_dim": int(self.projection.shape[0]), "matrix": PROJECTION_FILE}
        return {"k": self.k, "predictor_type": self.predictor_type, "dimension_reduction": reduction,
                "normalize": self.normalize, "version": VERSION, "feature_dim": self.feature_dim,
                "index_type": self.index_type, "index_metric": self.metric, "nprobe": self.nprobe}

    def cpu_index(self):
        faiss = knn_index.faiss_module()
        if hasattr(faiss, "index_gpu_to_cpu") and type(self.index).__name__.startswith("Gpu"):
            return faiss.index_gpu_to_cpu(self.index)
        return self.index

    def write_index(self, out):
        """The index as ``faiss.write_index`` writes it, streamed into a binary file object (no in-memory copy:
        faiss.serialize_index would hold the index twice or three times while its buffer grows)."""
        faiss = knn_index.faiss_module()
        writer = faiss.PyCallbackIOWriter(out.write)
        faiss.write_index(self.cpu_index(), writer)
        del writer  # flushes

    def files(self):
        """``{file name: bytes}`` of everything but the index."""
        out = {LABELS_FILE: self.labels.astype("<f4").tobytes()}
        if self.projection is not None:
            out[PROJECTION_FILE] = self.projection.astype("<f4").tobytes()
        out[META_FILE] = (json.dumps(self.metadata(), indent=2) + "\n").encode()
        return out

    def save(self, model_dir, opener=None):
        """Write the files; ``opener(name)`` (the training context's atomic ``model_file``) or plain files."""
        model_dir = Path(model_dir)
        opener = opener or (lambda name: open(model_dir / name, "wb"))
        with opener(MODEL_FILE) as out:
            self.write_index(out)
        for name, data in self.files().items():
            with opener(name) as out:
                out.write(data)

    # ---- inference ----

    def index_rows(self, features):
        """Rows as the index holds them: projected, normalized, zero-padded, C-contiguous float32."""
        if self.projection is not None:
            x = projection.apply(features, self.projection)
        elif sp.issparse(features):
            x = np.ascontiguousarray(features.toarray(), dtype=np.float32)
        else:
            x = np.array(features, dtype=np.float32, order="C") if self.normalize else \
                np.ascontiguousarray(features, dtype=np.float32)
        if self.normalize:
            x = normalize_rows(x)
        if x.shape[1] < self.index.d:
            x = np.hstack([x, np.zeros((x.shape[0], self.index.d - x.shape[1]), np.float32)])
        return x

    def distances(self, raw):
        """faiss's scores as distances, smallest first: Euclidean for L2, -<x, y> for INNER_PRODUCT,
        1 - cosine for COSINE."""
        if self.metric == "L2":
            return np.sqrt(np.maximum(raw, 0, dtype=np.float32))
        if self.metric == "COSINE":
            return 1.0 - raw
        return -raw

    def _faiss_search(self, rows, k):
        return knn_index.search(self.index, rows, k, self.nprobe)

    def search(self, features, k=None):
        """faiss's ``(scores, ids)`` of each row's k nearest points (k at most the points in the index), for at
        most ``line.SLICE_ROWS`` rows (faiss's distances depend on how many rows it searches at once)."""
        rows = self.index_rows(features)
        if self.line is not None:
            return self.line.search(rows, k or self.k)
        return self._faiss_search(rows, k or self.k)

    def neighbours_of(self, features):
        """``(distances, labels)`` of each row's neighbours, nearest first (n x min(k, points))."""
        raw, ids = self.search(features)
        return self.distances(raw), self.labels[ids]

    def predict(self, features):
        """A request is searched in slices of ``line.SLICE_ROWS`` rows, written into columns allocated once (a
        3,000,000-row request holds its columns once, not its slices' and their join)."""
        rows = features.shape[0]
        predicted = np.empty(rows, np.float32)
        distances = np.empty((rows, self.neighbours), np.float32)
        labels = np.empty((rows, self.neighbours), np.float32)
        for start in range(0, rows, line.SLICE_ROWS):
            stop = min(rows, start + line.SLICE_ROWS)
            distances[start:stop], labels[start:stop] = self.neighbours_of(features[start:stop])
            if self.predictor_type == "classifier":
                predicted[start:stop] = vote(labels[start:stop])
            else:
                predicted[start:stop] = labels[start:stop].mean(axis=1, dtype=np.float64)
        return {"predicted_label": predicted, "distances": distances, "labels": labels}
