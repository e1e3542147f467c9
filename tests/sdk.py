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


def estimator_hyperparameters(estimator_class, feature_dim, mini_batch_size, **kwargs):
    """What an SDK Amazon-algorithm estimator sends as HyperParameters (no AWS session needed)."""
    from unittest import mock

    session = mock.MagicMock()
    session.boto_region_name = "us-east-1"
    session.sagemaker_config = {}
    estimator = estimator_class(role="arn:aws:iam::111111111111:role/algobox", instance_count=1,
                                instance_type="ml.c5.xlarge", sagemaker_session=session, **kwargs)
    estimator.feature_dim = feature_dim
    estimator.mini_batch_size = mini_batch_size
    return estimator.hyperparameters()
