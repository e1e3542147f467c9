"""fastText's ``.bin`` model file (format version 12, as fastText 0.9 writes and reads it), written from arrays.

batch_skipgram trains in PyTorch; this writes its vectors as a fastText skipgram model, so that
``fasttext.load_model("vectors.bin")`` loads it. Layout: magic and version (int32), the Args (13 int32 fields with
``t`` a double), the Dictionary (sizes, then per entry the word, NUL, count int64, type int8), then the input and
output matrices (a quantization flag, rows and columns as int64, float32 values).
"""

import struct

import numpy as np

MAGIC, VERSION = 793712314, 12
MODEL_SKIPGRAM, LOSS_NS = 2, 2


def write_skipgram(path, words, counts, input_matrix, output_matrix, *, ws, epoch, min_count, neg, t, lr_update=100):
    input_matrix = np.ascontiguousarray(input_matrix, dtype="<f4")
    output_matrix = np.ascontiguousarray(output_matrix, dtype="<f4")
    dim = input_matrix.shape[1]
    with open(path, "wb") as out:
        out.write(struct.pack("<ii", MAGIC, VERSION))
        # dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn, lrUpdateRate, t
        out.write(struct.pack("<12id", dim, ws, epoch, min_count, neg, 1, LOSS_NS, MODEL_SKIPGRAM, 0, 0, 0,
                              lr_update, t))
        out.write(struct.pack("<iiiqq", len(words), len(words), 0, int(np.sum(counts)), -1))
        for word, count in zip(words, counts):
            out.write(word.encode("utf-8") + b"\0" + struct.pack("<qb", int(count), 0))
        for matrix in (input_matrix, output_matrix):
            out.write(struct.pack("<?qq", False, matrix.shape[0], matrix.shape[1]))
            out.write(matrix.tobytes())
