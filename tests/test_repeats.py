"""Repeated rows answered once (common/repeats.py): the dedup decision, the distinct rows and their inverse bit for
bit, and every response encoder's bytes for a prediction of distinct records with an inverse, byte for byte (and
chunk for chunk) those of the expanded prediction; end to end through ``invoke`` with a model that counts the rows
it is given."""

import numpy as np
import pytest

from common import contenttypes, repeats
from common.model import Prediction
from common.serving.codecs import COMMON, layout
from common.serving.codecs.json import JSONCodec
from common.serving.codecs.rows import NonFiniteOutput
from common.spec import load_spec
from test_hardening_codecs import _per_record, _values

MIMES = ("application/json", "application/jsonlines", "text/csv", "application/x-recordio-protobuf")


# ---------------------------------------------------------------------------------- the decision and the rows

@pytest.mark.parametrize("dims", [1, 2, 3, 5])
def test_distinct_rows_and_inverse_give_back_the_rows_bit_for_bit(dims):
    rng = np.random.default_rng(dims)
    values = np.array([0.0, -0.0, 1.0, np.nan, 1e-45, -3.5], np.float32)
    values[3:4].view(np.uint32)[0] |= 1  # a NaN of another payload than np.nan's
    x = values[rng.integers(0, len(values) if dims < 5 else 3, (5000, dims))]  # 0.0, -0.0, 1.0 at 5 features
    found = repeats.distinct(x)
    assert found is not None
    rows, inverse = found
    assert rows.dtype == np.float32 and rows.flags.c_contiguous and inverse.shape == (5000,)
    assert rows[inverse].tobytes() == x.tobytes()  # -0.0 and 0.0 stay apart, NaNs keep their payloads
    assert len(rows) == len({row.tobytes() for row in x})
    assert len({row.tobytes() for row in rows}) == len(rows)


def test_rows_that_differ_are_answered_as_they_are():
    """786,432 distinct ``d.ddddd`` rows (the most a 6 MB body holds): the sample says no, at next to no cost;
    few rows, sparse, wrong dtypes: no."""
    x = (np.arange(786_432, dtype=np.float64) / 1e5).astype(np.float32)[:, None]
    assert not repeats.worth_it(x) and repeats.distinct(x) is None
    assert repeats.distinct(np.zeros((repeats.MIN_ROWS - 1, 1), np.float32)) is None
    assert repeats.distinct(np.zeros((10_000, 1), np.float64)) is None
    assert repeats.distinct(np.zeros((10_000, 0), np.float32)) is None
    half = np.repeat(np.arange(6000, dtype=np.float32), 2)[:, None]  # each row twice: half distinct, not fewer
    assert repeats.distinct(half) is None


def test_repeats_found_by_the_sample():
    x = np.zeros((3_000_000, 1), np.float32)
    x[::3] = 7
    rows, inverse = repeats.distinct(x)
    assert rows.tolist() == [[0.0], [7.0]] and (rows[inverse] == x).all()


def test_a_hash_collision_answers_the_rows_as_they_are(monkeypatch):
    x = np.arange(30_000, dtype=np.float32).reshape(-1, 3) % 6
    real = repeats.keys

    def colliding(rows):
        return real(rows) if rows.shape[0] <= repeats.SAMPLE + 1 else np.zeros(rows.shape[0], np.uint64)

    monkeypatch.setattr(repeats, "keys", colliding)
    assert repeats.distinct(x) is None


# ---------------------------------------------------------------------------------- the encoders

def _shapes(rng, rows):
    labels = rng.integers(0, 3, rows)
    return {
        "score": {"score": _values(rng, rows)},
        "score + label": {"score": _values(rng, rows), "predicted_label": labels.astype(np.int64)},
        "two floats": {"closest_cluster": labels.astype(np.float32), "distance_to_cluster": _values(rng, rows)},
        "vectors": {"projection": _values(rng, rows, 3)},
        "three": {"predicted_label": labels.astype(np.float32), "distances": _values(rng, rows, 4),
                  "labels": labels[:, None].repeat(4, 1).astype(np.float32)},
        "whole": {"predicted_label": (labels - 1).astype(np.float64), "labels": labels[:, None].astype(np.float32)},
        "-0.0 and 0.0": {"score": np.array([0.0, -0.0, 1.0] * rows, np.float32)[:rows],
                         "labels": np.column_stack([labels, -0.0 * labels]).astype(np.float64)},
        "strings": {"label": [f"c{value}" for value in labels], "score": _values(rng, rows)},
    }


def _expanded(columns, inverse):
    return Prediction(dict(columns), inverse=inverse).expanded().columns


@pytest.mark.parametrize("distinct,records", [(1, 0), (1, 1), (2, 1), (3, 2), (7, 2500), (300, 2500)])
def test_encoders_write_the_expanded_bytes_chunk_for_chunk(monkeypatch, distinct, records):
    """common's JSON (head and tail), JSON Lines, CSV and recordIO encoders, given the distinct records' columns
    and the inverse, write the bytes (and the chunks) they write for the expanded columns, which are the
    per-record encoders' bytes."""
    monkeypatch.setattr(layout, "CHUNK_ROWS", 1000)
    rng = np.random.default_rng(distinct * 7 + records)
    spec = load_spec("kmeans")
    for shape, columns in _shapes(rng, distinct).items():
        inverse = rng.integers(0, distinct, records)
        full = _expanded(columns, inverse)
        for mime in MIMES:
            if mime == "application/x-recordio-protobuf" and (shape == "strings" or not records):
                continue  # no tensor of strings; no request holds no records (encode_outputs refuses none)
            codec = COMMON.find(mime)
            media = contenttypes.parse(mime)
            repeated = list(codec.chunks(Prediction(dict(columns), inverse=inverse), media, spec.encode_options()))
            expanded = list(codec.chunks(Prediction(dict(full)), media, spec.encode_options()))
            assert repeated == expanded, (shape, mime)
            if records:
                assert b"".join(repeated) == _per_record(spec, mime, full), (shape, mime)
            assert codec.encode(Prediction(dict(columns), inverse=inverse), media,
                                spec.encode_options()) == b"".join(expanded)


def test_a_non_finite_value_is_reported_for_the_first_record_that_holds_it():
    columns = {"score": np.array([1.0, np.nan, 2.0], np.float32)}
    inverse = np.array([0, 2, 0, 1, 1, 2])
    spec = load_spec("kmeans")
    for mime in MIMES:
        with pytest.raises(NonFiniteOutput, match="for record 3 is not finite"):
            COMMON.find(mime).chunks(Prediction(dict(columns), inverse=inverse), contenttypes.parse(mime),
                                     spec.encode_options())


def test_an_encoder_that_does_not_declare_repeats_gets_the_expanded_columns():
    seen = []

    class Own(JSONCodec):  # an algorithm's encoder: overrides encode_chunks, declares nothing
        def encode_chunks(self, prediction, media, options):
            seen.append(prediction)
            return super().encode_chunks(prediction, media, options)

    columns = {"score": np.array([1.5, 2.5], np.float32)}
    inverse = np.array([1, 0, 1])
    body = b"".join(Own().chunks(Prediction(columns, inverse=inverse), contenttypes.parse("application/json"),
                                 load_spec("kmeans").encode_options()))
    assert body == b'{"predictions":[{"score":2.5},{"score":1.5},{"score":2.5}]}'
    assert seen[0].inverse is None and seen[0].columns["score"].tolist() == [2.5, 1.5, 2.5]


@pytest.mark.parametrize("accept", ["application/json; verbose=true", "application/jsonlines; verbose=true",
                                    "application/x-recordio-protobuf; verbose=true", "application/json",
                                    "text/csv"])
def test_knn_verbose_encoders_take_repeats(monkeypatch, accept):
    """k-NN's verbose codecs wrap common's and keep the inverse (the distinct records are formatted once)."""
    monkeypatch.setattr(layout, "CHUNK_ROWS", 100)
    spec = load_spec("knn")
    media = contenttypes.parse(accept)
    codec = spec.codecs_registry().find(media.mime)
    assert codec.repeats
    rng = np.random.default_rng(3)
    columns = {"predicted_label": np.array([0.0, 1.0, 1.0], np.float32),
               "distances": _values(rng, 3, 4), "labels": rng.integers(0, 2, (3, 4)).astype(np.float32)}
    inverse = rng.integers(0, 3, 1234)
    calls = []
    original = layout.repeated_stream

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(layout, "repeated_stream", counted)
    repeated = b"".join(codec.chunks(Prediction(dict(columns), inverse=inverse), media, spec.encode_options()))
    assert calls  # the fast path, not the expansion
    assert repeated == b"".join(codec.chunks(Prediction(_expanded(columns, inverse)), media, spec.encode_options()))


# ---------------------------------------------------------------------------------- through invoke

class Counting:
    """A model of one feature whose answer for a row is a function of it alone; it records the rows it is given."""

    feature_dim = 1
    distinct_rows = True

    def __init__(self):
        self.given = []

    def predict(self, features):
        self.given.append(features.shape[0])
        x = features[:, 0].astype(np.float64)
        return {"score": x * 0.5 - 1.0, "sign": np.signbit(features[:, 0]).astype(np.int64)}


@pytest.mark.parametrize("accept", MIMES)
def test_invoke_predicts_the_distinct_rows_once_and_answers_every_row(accept):
    from common.serving.protocol import invoke
    from common.spec import AlgorithmSpec

    spec = AlgorithmSpec(name="counting", channels=(), train_entry="none", model_class="none",
                         request_types=("text/csv",), response_types=MIMES)
    body = b"0\n-0\n3\n1e-5\n" * 3000
    model, plain = Counting(), Counting()
    plain.distinct_rows = False
    answer = invoke(model, spec, body, "text/csv", accept).body
    assert model.given == [4]
    assert answer == invoke(plain, spec, body, "text/csv", accept).body
    assert plain.given == [12000]
