"""Content type parsing and channel validation."""

import pytest

from common import contenttypes as ct
from common.channels import ChannelSpec, resolve_channels
from common.config import ChannelConfig
from common.errors import ChannelError

SPECS = (ChannelSpec("train", (ct.RECORDIO_PROTOBUF, ct.CSV), required=True), ChannelSpec("test", (ct.CSV,)))


@pytest.mark.parametrize("raw,mime,params", [
    ("text/csv", "text/csv", {}),
    (" Text/CSV ; Label-Size = 1 ", "text/csv", {"label_size": "1"}),
    ("csv", "text/csv", {}),
    ("text/csv;label_size=0", "text/csv", {"label_size": "0"}),
    ("application/x-recordio-protobuf", ct.RECORDIO_PROTOBUF, {}),
    ("application/json; verbose=true", "application/json", {"verbose": "true"}),
])
def test_parse(raw, mime, params):
    media = ct.parse(raw)
    assert media.mime == mime and media.params == params


def test_accept_ordering_by_quality():
    ranges = ct.parse_accept("application/json;q=0.5, application/jsonlines, */*;q=0.1")
    assert [m.mime for m in ranges] == ["application/jsonlines", "application/json", "*/*"]


def test_verbose_flag():
    assert ct.parse("application/json;verbose").flag("verbose")
    assert not ct.parse("application/json").flag("verbose")


def config(name, content_type=None, mode="File", **kw):
    entry = {"TrainingInputMode": mode, **kw}
    if content_type:
        entry["ContentType"] = content_type
    return ChannelConfig.from_json(name, entry)


def test_default_content_type_is_the_first_declared():
    channels = resolve_channels(SPECS, {"train": config("train")})
    assert channels["train"].media_type.mime == ct.RECORDIO_PROTOBUF


def test_missing_required_channel():
    with pytest.raises(ChannelError, match="Required channel 'train' is missing"):
        resolve_channels(SPECS, {"test": config("test", "text/csv")})


def test_unknown_channel():
    with pytest.raises(ChannelError, match="Unknown channel 'validation'"):
        resolve_channels(SPECS, {"train": config("train"), "validation": config("validation")})


def test_unsupported_content_type():
    with pytest.raises(ChannelError, match="content type 'application/json'.*use one of"):
        resolve_channels(SPECS, {"train": config("train", "application/json")})


def test_bad_compression():
    with pytest.raises(ChannelError, match="CompressionType 'Zip'"):
        resolve_channels(SPECS, {"train": config("train", CompressionType="Zip")})
