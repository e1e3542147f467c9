"""Training readers for the guide's series files: JSON Lines (``.json``, ``.json.gz``) and Parquet.

A channel's files are told apart by their content, whatever the channel's content type says (the guide picks the
format by the file's extension): Parquet files start with ``PAR1``, gzip is undone by the runtime, the rest are
JSON Lines. Each batch is a list of :class:`Series`; a malformed record is a data error naming file and line.
"""

import io
import os

from common import contenttypes as ct
from common.errors import DataError
from common.readers import Piece, Reader
from common.serving.codecs.json import orjson

from .series import RecordError, parse_record

PARQUET = "application/x-parquet"
PARQUET_MAGIC = b"PAR1"


def _loads(line):
    if orjson is not None:
        return orjson.loads(line)
    import json

    return json.loads(line)


def _error(exc):
    return (exc.__class__.__name__ if not str(exc) else str(exc)).splitlines()[0][:300]


def iter_json_lines(stream, source):
    """``(line number, Series)`` for each non-blank line."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            document = _loads(line)
        except ValueError as exc:
            raise DataError(f"line {number} is not valid JSON: {_error(exc)}", source=source) from None
        try:
            series = parse_record(document)
        except RecordError as exc:
            raise DataError(f"line {number}: {exc}", source=source) from None
        series.where = f"file {source}, line {number}"
        yield number, series


def iter_parquet(data, source):
    """``(row number, Series)`` for each row of a Parquet file (columns start, target, cat, dynamic_feat)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(f"not a readable Parquet file: {_error(exc)}", source=source) from None
    names = [n for n in ("start", "target", "cat", "dynamic_feat") if n in table.column_names]
    missing = {"start", "target"} - set(names)
    if missing:
        raise DataError(f"Parquet file has no column {', '.join(sorted(missing))}; found {table.column_names}",
                        source=source)
    columns = {name: table.column(name).to_pylist() for name in names}
    for index in range(table.num_rows):
        row = {name: columns[name][index] for name in names}
        try:
            series = parse_record(row)
        except RecordError as exc:
            raise DataError(f"row {index + 1}: {exc}", source=source) from None
        series.where = f"file {source}, row {index + 1}"
        yield index + 1, series


class SeriesReader(Reader):
    """Lists of Series, ``options.batch_size`` at a time."""

    def read(self, stream, source, options):
        if os.path.basename(str(source)) == "_SUCCESS":  # Spark's marker file, as the guide says
            return
        head = stream.peek(4)[:4] if hasattr(stream, "peek") else b""
        if head == PARQUET_MAGIC or str(source).endswith(".parquet"):
            records = iter_parquet(stream.read(), source)
        else:
            records = iter_json_lines(stream, source)
        batch, first = [], 1
        for number, series in records:
            if not batch:
                first = number
            batch.append(series)
            if len(batch) >= options.batch_size:
                yield Piece(batch, first_record=first)
                batch = []
        if batch:
            yield Piece(batch, first_record=first)


class JSONLinesSeriesReader(SeriesReader):
    content_type = ct.JSONLINES
    aliases = ("json.gz",)


class JSONSeriesReader(SeriesReader):
    """``application/json`` (the SDK's ``content_type="json"``): the same JSON Lines files."""

    content_type = ct.JSON


class ParquetSeriesReader(SeriesReader):
    content_type = PARQUET
    aliases = ("parquet", "application/parquet")
