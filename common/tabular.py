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
