"""text/csv: one record per line, no header; ``label_size`` leading columns are dropped.

A row of the wrong width is refused from its field count before it is parsed (bounded cost per request).
Responses: the chosen columns of each record on one line, without a final newline (AssembleWith=Line).
"""

import io
import re

import numpy as np

from ... import csv_reader
from ...contenttypes import CSV
from ...errors import DataError
from . import Codec, CodecError, layout, register_codec
from .rows import column_list


def _label_size(media):
    try:
        return media.int_param("label_size", 0)
    except ValueError as exc:
        raise CodecError(str(exc)) from None


def decode_csv(body, media, hints, strings=False):
    label_size = _label_size(media)
    columns = label_size + hints.width if hints.width is not None else None
    parts = []
    try:
        for array, _first in csv_reader.iter_csv_blocks(io.BytesIO(body), source="request", columns=columns,
                                                        missing=hints.allows_missing, strings=strings):
            parts.append(array)
    except DataError as exc:
        found = re.match(r"CSV line has (\d+) columns, expected", str(exc))
        if columns is not None and found:
            raise CodecError(f"Each record must have {hints.width} features; got "
                             f"{int(found.group(1)) - label_size}"
                             f"{f' after {label_size} label column(s)' if label_size else ''} ({exc})") from None
        raise CodecError(f"Malformed CSV: {exc}") from None
    if not parts:
        raise CodecError("text/csv request holds no rows")
    array = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if label_size >= array.shape[1]:
        raise CodecError(f"CSV has {array.shape[1]} columns, not more than label_size={label_size}")
    return np.ascontiguousarray(array[:, label_size:])


def format_rows(columns, names):
    """The named columns of every record, comma-separated, one record per line (no final newline)."""
    lists = [column_list(columns[name], name) for name in names]
    lines = []
    for values in zip(*lists):
        fields = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            fields.extend(f"{item:.9g}" if isinstance(item, float) else str(item) for item in items)
        lines.append(",".join(fields))
    return "\n".join(lines).encode()


@register_codec
class CSVCodec(Codec):
    content_type = CSV
    aliases = ("csv", "text/x-csv", "application/csv")

    def decode(self, body, media, hints):
        return decode_csv(body, media, hints)

    repeats = True  # a Prediction with an inverse: each distinct record formatted once

    def encode_repeated(self, prediction, media, options):
        return csv_lines_repeated(prediction.columns, prediction.inverse, csv_names(prediction, options))

    def encode_chunks(self, prediction, media, options):
        return csv_lines(prediction.columns, csv_names(prediction, options))


def csv_names(prediction, options):
    """The columns a line holds: the algorithm's ``csv_columns``, else every column of the prediction."""
    return options.csv_columns or tuple(prediction.columns)


def csv_lines(columns, names):
    """``format_rows`` in chunks: numeric columns formatted a chunk of records at a time (``layout``)."""
    arrays = layout.numeric_columns(columns, names)
    if arrays is None:
        return (format_rows(columns, names),)
    return layout.csv_stream(arrays, names)


def csv_lines_repeated(columns, inverse, names):
    """``csv_lines`` of the records ``inverse`` picks from the columns' distinct records, each line formatted once
    (the same bytes); None where the columns do not allow it (``layout.distinct_arrays``)."""
    arrays = layout.distinct_arrays(columns, list(names))
    if arrays is None:
        return None
    count = len(arrays[names[0]])
    pieces = b"".join(layout.csv_stream(arrays, names)).split(b"\n") if count else []  # no newline in a line
    if len(pieces) != count:
        return None  # pragma: no cover - numbers' lines hold no newline
    pieces.append(b"")
    return layout.repeated_stream(pieces, inverse, b"\n")
