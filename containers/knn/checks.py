"""k-NN's cross-hyperparameter rules and what its ``auto`` values resolve to. No torch, no faiss here.

``check(hp)`` raises HyperparameterError for combinations the guide rules out; ``plan(hp)`` turns the validated
hyperparameters into the concrete index to build (reduction target, padded dimension, nlist, pq_m).
"""

import logging
import math
from dataclasses import dataclass

from common.errors import HyperparameterError

log = logging.getLogger(__name__)

PQ_M_VALUES = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)
PQ_MIN_SUBVECTOR_DIMS = 4  # faiss_index_pq_m left unset: the largest allowed divisor with >= 4 dims per code
IVF_INDEXES = ("faiss.IVFFlat", "faiss.IVFPQ")


def check(hp):
    """What the schema cannot say: relations between hyperparameters (HyperparameterError, before any data).
    Valid combinations with no effect are logged (``notes``)."""
    for note in notes(hp):
        log.warning(note)
    d = hp["feature_dim"]
    kind, target = hp.get("dimension_reduction_type"), hp.get("dimension_reduction_target")
    index_type, metric = hp["index_type"], hp["index_metric"]
    if kind is not None and target is None:
        raise HyperparameterError(
            f"Invalid hyperparameters: dimension_reduction_type={kind} requires dimension_reduction_target "
            f"(a positive integer less than feature_dim={d})")
    if kind is not None and target >= d:
        raise HyperparameterError(
            f"Invalid hyperparameter dimension_reduction_target={target}: it must be less than feature_dim={d}")
    if index_type == "faiss.IVFPQ" and metric != "L2":
        raise HyperparameterError(
            f"Invalid hyperparameters: index_metric={metric} is not supported with index_type=faiss.IVFPQ; "
            "use index_metric=L2, or index_type faiss.Flat or faiss.IVFFlat")
    nlists = hp["faiss_index_ivf_nlists"]
    if index_type in IVF_INDEXES and nlists != "auto" and nlists > hp["sample_size"]:
        raise HyperparameterError(
            f"Invalid hyperparameter faiss_index_ivf_nlists={nlists}: it must not exceed sample_size="
            f"{hp['sample_size']} (every list's centroid is trained from the sampled points)")


def notes(hp):
    """Hyperparameters that are valid but have no effect, and limits worth a warning (logged, not raised)."""
    out = []
    if hp.get("dimension_reduction_type") is None and hp.get("dimension_reduction_target") is not None:
        out.append("dimension_reduction_target is ignored without dimension_reduction_type")
    if hp["index_type"] != "faiss.IVFPQ" and hp.get("faiss_index_pq_m") is not None:
        out.append(f"faiss_index_pq_m is ignored with index_type={hp['index_type']} (faiss.IVFPQ only)")
    if hp["index_type"] not in IVF_INDEXES and hp["faiss_index_ivf_nlists"] != "auto":
        out.append(f"faiss_index_ivf_nlists is ignored with index_type={hp['index_type']}")
    if hp["k"] > hp["sample_size"]:
        out.append(f"k={hp['k']} exceeds sample_size={hp['sample_size']}: the index holds fewer than k points, "
                   "so inference answers with every point it has")
    return out


def auto_nlists(points):
    """``faiss_index_ivf_nlists=auto``: sqrt(sample_size), rounded, at least 1, where sample_size is the number of
    points actually sampled (less than the hyperparameter when the data holds fewer rows)."""
    return max(1, int(round(math.sqrt(points))))


def default_pq_m(dim):
    """``faiss_index_pq_m`` unset: the largest allowed m that divides ``dim`` with >= 4 dimensions per sub-vector."""
    fitting = [m for m in PQ_M_VALUES if dim % m == 0 and dim // m >= PQ_MIN_SUBVECTOR_DIMS]
    return max(fitting) if fitting else 1


def round_up(value, multiple):
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class Plan:
    """The index to build. ``reduced_dim`` is the dimension after reduction (feature_dim without one);
    ``index_dim`` is what the index holds (reduced_dim plus zero padding for faiss_index_pq_m)."""

    feature_dim: int
    k: int
    predictor_type: str
    sample_size: int
    reduction: str | None
    reduced_dim: int
    index_dim: int
    index_type: str
    metric: str
    nlists: int | str | None
    pq_m: int | None
    mini_batch_size: int

    @property
    def normalize(self):
        return self.metric == "COSINE"

    def host_sample_size(self, rank, world_size):
        """This host's share of sample_size: sample_size / hosts, the remainder going to the first hosts."""
        return self.sample_size // world_size + (1 if rank < self.sample_size % world_size else 0)


def plan(hp):
    check(hp)
    d = hp["feature_dim"]
    reduction = hp.get("dimension_reduction_type")
    reduced = hp["dimension_reduction_target"] if reduction else d
    index_type = hp["index_type"]
    index_dim = reduced
    pq_m = None
    if index_type == "faiss.IVFPQ":
        pq_m = hp.get("faiss_index_pq_m") or default_pq_m(reduced)
        if reduced % pq_m:
            if reduction:  # the guide: raise dimension_reduction_target to the next multiple of pq_m
                raised = round_up(reduced, pq_m)
                log.info("dimension_reduction_target=%d is not a multiple of faiss_index_pq_m=%d: raised to %d",
                         reduced, pq_m, raised)
                reduced = index_dim = raised
            else:  # the guide: pad the data with zeros up to the next multiple of pq_m
                index_dim = round_up(reduced, pq_m)
                log.info("feature_dim=%d is not a multiple of faiss_index_pq_m=%d: points are padded with %d zeros "
                         "to %d dimensions", d, pq_m, index_dim - d, index_dim)
    nlists = None
    if index_type in IVF_INDEXES:
        nlists = hp["faiss_index_ivf_nlists"]  # "auto" is resolved by index.build, from the points sampled
    return Plan(feature_dim=d, k=hp["k"], predictor_type=hp["predictor_type"], sample_size=hp["sample_size"],
                reduction=reduction, reduced_dim=reduced, index_dim=index_dim, index_type=index_type,
                metric=hp["index_metric"], nlists=nlists, pq_m=pq_m, mini_batch_size=hp["mini_batch_size"])
