"""BlazingText's conformance sample: the tiny job and requests the contract suite (tests/contract/) runs."""

import json
import random

from common import contenttypes as ct

HYPERPARAMETERS = {"mode": "supervised", "epochs": "5", "min_count": "1", "vector_dim": "10", "buckets": "1000",
                   "learning_rate": "0.5"}
INVALID_HYPERPARAMETERS = [({"mode": "fast"}, "mode"), ({"window_size": "3"}, "window_size"),
                           ({"epochs": "0"}, "epochs")]

TOPICS = {"sports": "ball team goal match score player coach league win",
          "tech": "linux kernel intel chip code software open source desktop",
          "food": "bread cheese soup recipe bake salt oven dinner taste"}


def sentences(n, seed=0, labelled=True):
    rng = random.Random(seed)
    names = sorted(TOPICS)
    out = []
    for _ in range(n):
        topic = rng.choice(names)
        words = [rng.choice(TOPICS[topic].split()) for _ in range(8)]
        out.append((f"__label__{topic} " if labelled else "") + " ".join(words))
    return out


def training_data(channel, content_type):
    return ("\n".join(sentences(300, seed=1 if channel == "validation" else 0)) + "\n").encode()


def requests():
    texts = sentences(3, seed=2, labelled=False)
    return [(ct.JSON, json.dumps({"instances": texts, "configuration": {"k": 2}}).encode(), 3),
            (ct.JSONLINES, "\n".join(json.dumps({"source": t, "k": 2}) for t in texts).encode(), 3)]
