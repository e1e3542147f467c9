"""A BlazingText model served: ``model.bin`` (supervised) or ``vectors.bin`` (Word2Vec), any fastText .bin.

The mode comes from the file's own header (fastText's Args), so a model trained by the fastText library serves
too, whatever its file name among these two. A folder holding only ``vectors.txt`` (word2vec text format)
serves its vectors. Unknown words get a vector of zeros, or their subword vector when the model has subwords.
"""

import logging
from pathlib import Path

import numpy as np

from common.errors import ClientError
from common.serving.codecs import CodecError

from .artifacts import word_vector
from .text import Query

log = logging.getLogger(__name__)
FILES = ("model.bin", "vectors.bin")


def load_fasttext(path):
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # its load-time warning about load_model's return type
    try:
        return fasttext.load_model(str(path))
    except (ValueError, RuntimeError, MemoryError) as exc:
        raise ClientError(f"Cannot load the fastText model {path.name}: {exc}") from None


def read_vectors_txt(path):
    words, rows = [], []
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().split()
        if len(header) != 2:
            raise ClientError(f"{path.name}: the first line must be '<words> <dimension>' (word2vec text format)")
        dim = int(header[1])
        for number, line in enumerate(handle, start=2):
            parts = line.rstrip("\n").split(" ")
            if len(parts) != dim + 1:
                raise ClientError(f"{path.name} line {number}: {len(parts) - 1} values, expected {dim}")
            words.append(parts[0])
            rows.append(np.asarray(parts[1:], dtype=np.float32))
    return words, np.stack(rows) if rows else np.zeros((0, dim), np.float32)


class BlazingTextModel:
    """Top-k labels for sentences (supervised) or a vector for each word (Word2Vec)."""

    def __init__(self, fasttext_model=None, words=None, vectors=None):
        self.fasttext = fasttext_model
        self.supervised = fasttext_model is not None and str(fasttext_model.f.getArgs().model).endswith("supervised")
        self.index = {w: i for i, w in enumerate(words)} if words is not None else None
        self.vectors = vectors

    @classmethod
    def load(cls, model_dir):
        model_dir = Path(model_dir)
        for name in FILES:
            if (model_dir / name).is_file():
                model = cls(load_fasttext(model_dir / name))
                log.info("Loaded %s: %s, %d words%s", name, "text classification" if model.supervised else
                         "word vectors", len(model.fasttext.words),
                         f", {len(model.fasttext.labels)} labels" if model.supervised else "")
                return model
        if (model_dir / "vectors.txt").is_file():
            words, vectors = read_vectors_txt(model_dir / "vectors.txt")
            return cls(words=words, vectors=vectors)
        raise ClientError(f"No BlazingText model in {model_dir}: expected model.bin (supervised), vectors.bin or "
                          "vectors.txt (Word2Vec)")

    def warmup_inputs(self):
        return [Query("warm up sentence", 1)]

    def prepare(self, inputs):
        if not all(isinstance(item, Query) for item in inputs):
            raise CodecError("Requests must be JSON or JSON Lines holding words or sentences")
        return inputs

    def predict(self, queries):
        if self.supervised:
            return self.classify(queries)
        return {"vector": [self.vector(q.text).tolist() for q in queries], "word": [q.text for q in queries]}

    def vector(self, word):
        if self.fasttext is not None:
            return word_vector(self.fasttext, word).astype(np.float64)
        row = self.index.get(word)
        return np.zeros(self.vectors.shape[1]) if row is None else self.vectors[row].astype(np.float64)

    def classify(self, queries):
        labels, probs = [None] * len(queries), [None] * len(queries)
        by_k = {}
        for position, query in enumerate(queries):
            by_k.setdefault(query.k, []).append(position)
        for k, positions in by_k.items():
            texts = [" ".join(queries[p].text.split()) for p in positions]  # fastText reads one line at a time
            found, scores = self.fasttext.predict(texts, k=k)
            for p, names, values in zip(positions, found, scores):
                labels[p] = list(names)
                probs[p] = [min(float(v), 1.0) for v in values]
        return {"label": labels, "prob": probs}
