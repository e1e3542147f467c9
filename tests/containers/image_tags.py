"""What both image test modules share: the tags CI gives the images, a free local port, the algorithm fixture.

Imported by test_images.py and test_sdk_images.py, which CI runs in its own venv (pytest, requests and
sagemaker only): standard library and pytest here, nothing else.
"""

import os
import re
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VARIANT = os.environ.get("ALGOBOX_IMAGE_VARIANT", "cpu")
PREFIX = os.environ.get("ALGOBOX_IMAGE_PREFIX", "algobox-")


def project_version():
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    return match.group(1) if match else "0.0.0"


VERSION = os.environ.get("ALGOBOX_IMAGE_VERSION") or project_version()


def image_name(algorithm):
    return f"{PREFIX}{algorithm.replace('_', '-')}:{VERSION}-{VARIANT}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def algorithm_fixture(algorithms):
    """The module-scoped `algorithm` fixture, one parameter per algorithm in `algorithms`."""
    @pytest.fixture(scope="module", params=algorithms)
    def algorithm(request):
        return request.param
    return algorithm
