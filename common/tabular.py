"""What the tabular family shares (k-means, PCA, Linear Learner, FM, k-NN, RCF, NTM, LDA, IP Insights):
standard channels and content types, request/response types, and the ``model_algo-1`` file.
"""

from . import contenttypes as ct
from . import ndarray
from .channels import ChannelSpec
from .errors import ClientError

TRAINING_TYPES = (ct.RECORDIO_PROTOBUF, ct.CSV)
REQUEST_TYPES = (ct.CSV, ct.JSON, ct.JSONLINES, ct.RECORDIO_PROTOBUF)
RESPONSE_TYPES = (ct.JSON, ct.JSONLINES, ct.RECORDIO_PROTOBUF)
MODEL_FILE = "model_algo-1"


def channels(*, validation=False, test=True, types=TRAINING_TYPES, label_size=0, train_distributions=None,
             test_distributions=None, missing_values=False):
    """``train`` (required), and optional ``validation`` / ``test`` channels over the same content types.

    ``label_size=1`` for supervised algorithms: CSV's first column is the label, as the guide says."""
    common = {"label_size": label_size, "missing_values": missing_values}
    declared = [ChannelSpec("train", types, required=True, description="training data", **common,
                            **({"distributions": train_distributions} if train_distributions else {}))]
    if validation:
        declared.append(ChannelSpec("validation", types, description="validation data", **common))
    if test:
        declared.append(ChannelSpec("test", types, description="test data, scored after training", **common,
                                    **({"distributions": test_distributions} if test_distributions else {})))
    return tuple(declared)


def load_model_file(model_dir, what, names=None, optional=()):
    """The NDArray file ``model_algo-1``: a list of arrays, or (with ``names``) a dict holding those names."""
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise ClientError(f"No {what} model at {path}")
    arrays = ndarray.load(path)
    if names is not None:
        if not isinstance(arrays, dict) or not all(name in arrays for name in names if name not in optional):
            found = sorted(arrays) if isinstance(arrays, dict) else f"an unnamed list of {len(arrays)} arrays"
            wanted = ", ".join(repr(n) for n in names[:-1]) + f" and {names[-1]!r}" if len(names) > 1 else repr(names[0])
            raise ClientError(f"{path} is not a {what} model: expected arrays named {wanted}, found {found}")
    return arrays


def encode_rows(features, labels=None, content_type=ct.CSV):
    """Rows (and labels) written in a training content type: CSV (label first), recordIO-protobuf (the SDK's
    layout), libsvm (one-based indices). For samples, fixtures and tools that prepare channels."""
    import io

    import numpy as np
    import scipy.sparse as sp

    from . import protobuf, recordio

    if content_type == ct.RECORDIO_PROTOBUF:
        payloads = (protobuf.encode_sparse(sp.csr_matrix(features), labels) if sp.issparse(features)
                    else protobuf.encode_dense(np.asarray(features, np.float32), labels))
        return b"".join(recordio.encode_record(p) for p in payloads)
    dense = features.toarray() if sp.issparse(features) else np.asarray(features)
    if content_type == ct.CSV:
        table = dense if labels is None else np.column_stack([np.asarray(labels).reshape(len(dense), -1), dense])
        out = io.StringIO()
        np.savetxt(out, table, delimiter=",", fmt="%.9g")
        return out.getvalue().encode()
    if content_type == ct.LIBSVM:
        lines = []
        for i, row in enumerate(dense):
            label = f"{float(labels[i]):.9g}" if labels is not None else "0"
            lines.append(" ".join([label] + [f"{j + 1}:{v:.9g}" for j, v in enumerate(row) if v != 0]))
        return ("\n".join(lines) + "\n").encode()
    raise ValueError(f"no row encoding for {content_type}")


def encode_request(features, content_type):
    """Rows as a request body of a tabular request type (JSON in the ``instances``/``features`` form)."""
    import json

    import numpy as np

    from . import protobuf, recordio

    features = np.asarray(features, np.float32)
    if content_type == ct.CSV:
        return encode_rows(features, None, ct.CSV)
    if content_type == ct.JSON:
        return json.dumps({"instances": [{"features": row} for row in features.tolist()]}).encode()
    if content_type == ct.JSONLINES:
        return "\n".join(json.dumps({"features": row}) for row in features.tolist()).encode()
    if content_type == ct.RECORDIO_PROTOBUF:
        return b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(features))
    if content_type == ct.LIBSVM:
        return encode_rows(features, None, ct.LIBSVM)
    raise ValueError(f"no request encoding for {content_type}")
