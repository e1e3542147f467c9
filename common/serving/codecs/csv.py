"""text/csv: one record per line, no header; ``label_size`` leading columns are dropped."""

import io

import numpy as np

from ... import csv_reader
from ...contenttypes import CSV
from ...errors import DataError
from . import CodecError, register_decoder


@register_decoder(CSV)
def decode(body, media):
    try:
        label_size = media.int_param("label_size", 0)
    except ValueError as exc:
        raise CodecError(str(exc)) from None
    parts = []
    try:
        for features, _labels in csv_reader.iter_csv_batches(io.BytesIO(body), 100_000, label_size,
                                                              source="request"):
            parts.append(features)
    except DataError as exc:
        raise CodecError(f"Malformed CSV: {exc}") from None
    if not parts:
        raise CodecError("text/csv request holds no rows")
    if len({p.shape[1] for p in parts}) > 1:
        raise CodecError("CSV rows have different numbers of columns")
    return np.concatenate(parts)


def records_encoder(names):
    """Encode the named columns as CSV rows (a column of width k adds k fields)."""

    def encode(columns, media):
        blocks = [np.asarray(columns[n], dtype=np.float64).reshape(len(columns[n]), -1) for n in names]
        out = io.StringIO()
        np.savetxt(out, np.hstack(blocks), delimiter=",", fmt="%.9g")
        return out.getvalue().encode()

    return encode
