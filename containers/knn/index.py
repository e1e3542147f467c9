"""The faiss index: building it from the sample, and searching it a whole request at a time.

faiss.Flat     exact search (one BLAS GEMM per query batch of 20+ rows).
faiss.IVFFlat  nlist k-means cells; a query scans the ``nprobe`` nearest cells.
faiss.IVFPQ    the same cells, the vectors stored as pq_m codes of 8 bits (fewer when the sample has fewer
               than 256 points), L2 only.

COSINE is INNER_PRODUCT over unit-length vectors (the model normalizes points and queries, ``normalize``).
``nprobe`` defaults to ceil(sqrt(nlist)); it is stored in the index file and can be changed in model_algo-1.json.
"""

import logging
import math

import numpy as np

from . import checks

log = logging.getLogger(__name__)

PQ_BITS = 8
IVF_TRAIN_POINTS_PER_LIST = 256  # IVF centroids are trained on at most nlist * 256 sampled points (faiss's cap)


def faiss_module():
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its "Loading faiss with AVX2" lines
    import faiss

    return faiss


def quiet_clustering(parameters):
    """faiss prints a warning to stderr for every k-means with fewer than 39 points per centroid; we log once."""
    parameters.min_points_per_centroid = 1
    parameters.verbose = False


def faiss_metric(metric):
    faiss = faiss_module()
    return faiss.METRIC_L2 if metric == "L2" else faiss.METRIC_INNER_PRODUCT


def default_nprobe(nlist):
    return max(1, min(nlist, math.ceil(math.sqrt(nlist))))


def build(index_type, metric, vectors, nlists=None, pq_m=None, seed=0):
    """A trained faiss index holding ``vectors`` (n x dim float32, already reduced/normalized/padded)."""
    faiss = faiss_module()
    n, dim = vectors.shape
    kind = faiss_metric(metric)
    if index_type == "faiss.Flat":
        index = faiss.IndexFlat(dim, kind)
        index.add(vectors)
        return index
    nlist = checks.auto_nlists(n) if nlists in (None, "auto") else nlists
    if n < nlist:
        log.warning("faiss_index_ivf_nlists=%d exceeds the %d sampled points: using nlist=%d", nlist, n, max(1, n))
        nlist = max(1, n)
    quantizer = faiss.IndexFlat(dim, kind)
    if index_type == "faiss.IVFFlat":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, kind)
    else:
        bits = min(PQ_BITS, max(1, int(math.floor(math.log2(max(n, 2))))))
        if bits < PQ_BITS:
            log.warning("Only %d sampled points: IVFPQ codes use %d bits (2^%d <= %d points) instead of %d",
                        n, bits, bits, n, PQ_BITS)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, bits)
    index.cp.seed = seed
    quiet_clustering(index.cp)
    if index_type == "faiss.IVFPQ":
        quiet_clustering(index.pq.cp)
        index.pq.cp.seed = seed
    if n < 39 * nlist:
        log.info("IVF: %d sampled points for nlist=%d (faiss advises at least 39 per list)", n, nlist)
    index.train(vectors)
    index.add(vectors)
    index.nprobe = default_nprobe(nlist)
    index.own_fields = True  # the index frees its quantizer; Python must not
    quantizer.this.disown()
    log.info("Built %s: nlist=%d, nprobe=%d%s over %d points of dimension %d", index_type, nlist, index.nprobe,
             f", pq_m={pq_m}" if pq_m else "", n, dim)
    return index


def ivf_of(index):
    faiss = faiss_module()
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def search(index, queries, k, nprobe=None):
    """``(distances, ids)`` of the k nearest points (k at most the points in the index), nearest first.

    An IVF search that finds fewer than k points for some rows (their nprobe cells hold too few) searches those
    rows again over every cell, so every row gets k neighbours. The index is never modified (parameters travel
    with each call), so threads may share it.
    """
    faiss = faiss_module()
    k = min(k, index.ntotal)
    ivf = ivf_of(index)
    if ivf is None:
        return index.search(queries, k)
    probes = min(ivf.nlist, max(1, int(nprobe))) if nprobe is not None else ivf.nprobe
    distances, ids = index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=probes))
    short = np.flatnonzero((ids < 0).any(axis=1))
    if short.size and probes < ivf.nlist:
        everything = faiss.SearchParametersIVF(nprobe=ivf.nlist)
        distances[short], ids[short] = index.search(np.ascontiguousarray(queries[short]), k, params=everything)
    return distances, ids


def to_gpu(index):
    """The index on every GPU faiss sees (faiss-gpu in the GPU image), or the index unchanged: faiss-cpu, no GPU,
    ``ALGOBOX_KNN_GPU=0``, or an index faiss cannot move (logged)."""
    import os

    faiss = faiss_module()
    if os.environ.get("ALGOBOX_KNN_GPU", "1") == "0" or not hasattr(faiss, "index_cpu_to_all_gpus"):
        return index
    try:
        if faiss.get_num_gpus() < 1:
            return index
        moved = faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError) as exc:
        log.warning("Searching on the CPU: faiss could not move the index to the GPU (%s)", str(exc).splitlines()[0])
        return index
    log.info("Index moved to %d GPU(s)", faiss.get_num_gpus())
    return moved
