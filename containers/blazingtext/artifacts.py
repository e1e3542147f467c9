"""Word2Vec artifacts: ``vectors.txt`` in the word2vec text format (gensim's ``load_word2vec_format``)."""

import numpy as np


def write_vectors_txt(path, words, vectors):
    """A header ``<words> <dim>``, then ``word v1 v2 ...`` per line, in vocabulary order."""
    vectors = np.asarray(vectors, dtype=np.float32)
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"{len(words)} {vectors.shape[1]}\n")
        row_format = " ".join(["%.6g"] * vectors.shape[1])
        for word, row in zip(words, vectors):
            out.write(word + " " + row_format % tuple(row.tolist()) + "\n")


def word_vector(model, word):
    """fastText's word vector: the mean of the input rows of the word and its character n-grams (zeros for an
    unknown word without subwords). Computed here from the rows, as upstream fastText defines it: the
    fasttext-community binding's ``get_word_vector`` scales every vector to unit length."""
    _, ids = model.get_subwords(word)
    if len(ids) == 0:
        return np.zeros(model.get_dimension(), np.float32)
    return np.mean([model.get_input_vector(int(i)) for i in ids], axis=0, dtype=np.float64).astype(np.float32)


def word_vectors(model, words):
    """The vectors of the model's own words, in order (one row each)."""
    if not words:
        return np.zeros((0, model.get_dimension()), np.float32)
    args = model.f.getArgs()
    if args.maxn == 0:  # no subwords: each word's vector is its input row
        ids = np.array([model.get_word_id(w) for w in words])
        return np.stack([model.get_input_vector(int(i)) for i in ids]).astype(np.float32)
    return np.stack([word_vector(model, w) for w in words])
