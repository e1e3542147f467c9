"""k-NN's responses: ``predicted_label``, plus the neighbours' ``distances`` and ``labels`` when the Accept
header says ``verbose=true`` (any case, spaces allowed: ``application/json; Verbose = True``). Requests are
decoded by the common codecs these extend. A prediction of repeated rows (``Prediction.inverse``) keeps its
inverse through ``selected``: the common encoders format each distinct record once."""

from dataclasses import replace

from common.serving.codecs.json import JSONCodec
from common.serving.codecs.jsonlines import JSONLinesCodec
from common.serving.codecs.recordio import RecordIOProtobufCodec

VERBOSE_COLUMNS = ("distances", "labels")


def selected(prediction, media):
    """The prediction's columns for this Accept media range: all of them only when it says verbose."""
    if media is not None and media.flag("verbose"):
        return prediction
    columns = {name: value for name, value in prediction.columns.items() if name not in VERBOSE_COLUMNS}
    return replace(prediction, columns=columns)


class Selected:
    """Put before a common codec: its bytes for the ``selected`` columns, repeated rows included."""

    repeats = True

    def encode_repeated(self, prediction, media, options):
        return super().encode_repeated(selected(prediction, media), media, options)

    def encode_chunks(self, prediction, media, options):
        return super().encode_chunks(selected(prediction, media), media, options)


class VerboseJSON(Selected, JSONCodec):
    pass


class VerboseJSONLines(Selected, JSONLinesCodec):
    pass


class VerboseRecordIO(Selected, RecordIOProtobufCodec):
    pass
