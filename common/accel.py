"""Device choice and bounded densification into device tensors, for the algorithms written in PyTorch.

torch is imported inside the functions only, so ``common/`` itself never imports it (an XGBoost or a
TensorFlow image has no torch); call these only from an algorithm that depends on torch.
"""

import numpy as np
import scipy.sparse as sp

DENSE_CHUNK_ELEMENTS = 1 << 22  # a sparse block is densified this many values (16 MB of float32) at a time


def pick_device(prefer_gpu=True):
    """``cuda`` when a GPU is visible (and wanted), else ``cpu``."""
    import torch

    return torch.device("cuda") if prefer_gpu and torch.cuda.is_available() else torch.device("cpu")


def dense_tensors(features, device, max_elements=DENSE_CHUNK_ELEMENTS):
    """A batch as float32 tensors on ``device``: a dense array in one piece, a CSR matrix densified a bounded
    number of rows at a time (at least one row), so memory stays near ``max_elements`` values."""
    import torch

    if not sp.issparse(features):
        yield torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(device, non_blocking=True)
        return
    rows = max(1, max_elements // max(1, features.shape[1]))
    for start in range(0, features.shape[0], rows):
        block = features[start:start + rows].toarray().astype(np.float32, copy=False)
        yield torch.from_numpy(block).to(device)


def dense_tensor(features, device, max_elements=DENSE_CHUNK_ELEMENTS):
    """The whole batch as one dense tensor (sparse batches densified in bounded chunks, then joined)."""
    import torch

    parts = list(dense_tensors(features, device, max_elements))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def csr_tensor(features, device):
    """A scipy CSR matrix as a torch sparse CSR float32 tensor on ``device`` (never densified)."""
    import torch

    matrix = features.tocsr()
    return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                   torch.from_numpy(matrix.indices.astype(np.int64)),
                                   torch.from_numpy(matrix.data.astype(np.float32)), size=matrix.shape,
                                   device=device)
