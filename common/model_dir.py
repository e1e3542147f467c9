"""The model directory: /opt/ml/model as SageMaker unpacks it, or holding a model.tar.gz to unpack.

Archives are unpacked with bounds: at most MAX_MEMBERS entries and MAX_BYTES in total, regular files and
directories only, no absolute paths or ``..``.
"""

import logging
import tarfile
import tempfile
from pathlib import Path

from .errors import ClientError

log = logging.getLogger(__name__)

MAX_MEMBERS = 10_000
MAX_BYTES = 20 * 1024**3


def safe_extract(archive, destination, max_members=MAX_MEMBERS, max_bytes=MAX_BYTES):
    """Extract a tar(.gz) refusing links, devices, path escapes and archives over the bounds."""
    destination = Path(destination)
    total = 0
    with tarfile.open(archive, "r:*") as tar:
        for count, member in enumerate(tar, start=1):
            if count > max_members:
                raise ClientError(f"{archive} has more than {max_members} entries")
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise ClientError(f"{archive} has an unsafe path {member.name!r}")
            if not (member.isfile() or member.isdir()):
                raise ClientError(f"{archive} has a link or special file {member.name!r}")
            total += member.size
            if total > max_bytes:
                raise ClientError(f"{archive} unpacks to more than {max_bytes} bytes")
            tar.extract(member, destination, filter="data")
    return destination


def resolve_model_dir(model_dir):
    """The directory holding the model files; unpacks a lone model.tar.gz into a temporary directory."""
    model_dir = Path(model_dir)
    archive = model_dir / "model.tar.gz"
    if archive.is_file():
        target = Path(tempfile.mkdtemp(prefix="algobox-model-"))
        log.info("Unpacking %s into %s", archive, target)
        return safe_extract(archive, target)
    return model_dir
