"""The SageMaker Python SDK (last 2.x) as the real client: its encoders and deserializers."""

import io
import os

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from sagemaker.amazon.common import (  # noqa: E402
    RecordDeserializer,
    RecordSerializer,
    read_records,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)


def dense_recordio(array, labels=None):
    buffer = io.BytesIO()
    write_numpy_to_dense_tensor(buffer, array, labels)
    return buffer.getvalue()


def sparse_recordio(matrix, labels=None):
    buffer = io.BytesIO()
    write_spmatrix_to_sparse_tensor(buffer, matrix, labels)
    return buffer.getvalue()


def records(body):
    return read_records(io.BytesIO(body))


__all__ = ["RecordDeserializer", "RecordSerializer", "dense_recordio", "sparse_recordio", "records"]
