"""text/libsvm requests: ``[label[:weight]] index:value ...`` per line, as a CSR matrix.

A line may carry a label or not (a first token without ``:`` is a label and dropped). Indices are read
zero- or one-based as in training (a request without index 0 is one-based and shifted down by one).
"""

import numpy as np
import scipy.sparse as sp

from ... import libsvm
from ...contenttypes import LIBSVM
from ...errors import DataError
from . import Codec, CodecError, register_codec


def parse_request(body):
    """A libsvm request's rows as written (``libsvm.parse``, a label optional); malformed or empty is a 400."""
    try:
        parsed = libsvm.parse(body, "request", labels="optional")
    except DataError as exc:
        raise CodecError(f"Malformed libsvm: {exc}") from None
    if not parsed.rows:
        raise CodecError("text/libsvm request holds no rows")
    return parsed


@register_codec
class LibSVMCodec(Codec):
    content_type = LIBSVM
    aliases = ("libsvm", "text/x-libsvm", "application/x-libsvm")

    def decode(self, body, media, hints):
        parsed = parse_request(body)
        try:
            indptr, indices, values, _labels, _weights, _ = libsvm.based(parsed, None, "request")
        except DataError as exc:
            raise CodecError(f"Malformed libsvm: {exc}") from None
        width = int(indices.max()) + 1 if indices.size else 0
        dim = hints.feature_dim if hints.feature_dim is not None else width
        if width > dim:
            raise CodecError(f"libsvm feature index {width - 1} is outside the model's {dim} features")
        matrix = sp.csr_matrix((values, indices.astype(np.int32), indptr), shape=(parsed.rows, dim), dtype=np.float32)
        matrix.sum_duplicates()  # a feature given twice in a row counts once, summed (as training reads it)
        return matrix
