"""application/x-parquet as a training reader of the runtime (registers the content type and its aliases)."""

import tempfile

from common.readers import Piece, Reader

from .data import PARQUET, Layout, parquet_from_stream


class ParquetReader(Reader):
    """Label first, then (with weights) the weight column, then the features; pyarrow."""

    content_type = PARQUET
    aliases = ("parquet", "application/parquet")

    def read(self, stream, source, options):
        with tempfile.TemporaryDirectory(prefix="algobox-parquet-") as workdir:
            first = 0
            for chunk in parquet_from_stream(stream, str(source), Layout(weights=options.weights), workdir,
                                             "Pipe"):
                yield Piece(chunk.features, chunk.labels, chunk.weights, first)
                first += len(chunk)
