"""WordSimilarity-353: Spearman's rho between the model's cosine similarities and the human scores.

``wordsim353.json`` (bundled: the pairs of the copy gensim ships as ``gensim/test/test_data/wordsim353.tsv``, as
JSON so that the package data rule of pyproject.toml installs it into the image) is the guide's
WS-353 set: 353 pairs, all 353 in one file (the guide's "WS-353 datasets"; its relatedness/similarity subsets are
not shipped, so ``mean_rho`` is the rho of the whole set). Pairs with a word outside the vocabulary are left out
and counted as ``not_found``, as gensim's ``evaluate_word_pairs`` does (``dummy4unknown=False``).
"""

import json
from pathlib import Path

import numpy as np

DATASET = Path(__file__).with_name("wordsim353.json")
NAME = "EN-WS-353-ALL.txt"


def pairs(path=DATASET):
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    return [(first.lower(), second.lower(), float(score)) for first, second, score in document["pairs"]]


def evaluate(vector_of, known):
    """``{"EN-WS-353-ALL.txt": {"spearmans_rho", "not_found", "total_pairs"}, "mean_rho"}``; rho is None when
    fewer than 3 pairs are in the vocabulary. ``vector_of(word)`` gives a vector, ``known(word)`` says in-vocab."""
    from scipy.stats import spearmanr  # here: scipy.stats is a large import, needed only by the end of a job

    data = pairs()
    model, human, missing = [], [], 0
    for first, second, score in data:
        if not (known(first) and known(second)):
            missing += 1
            continue
        a, b = np.asarray(vector_of(first), np.float64), np.asarray(vector_of(second), np.float64)
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        model.append(float(a @ b / norm) if norm > 0 else 0.0)
        human.append(score)
    rho = float(spearmanr(model, human).statistic) if len(model) >= 3 else None
    if rho is not None and not np.isfinite(rho):
        rho = None
    return {NAME: {"spearmans_rho": rho, "not_found": missing, "total_pairs": len(data)}, "mean_rho": rho}


def write(results, path):
    Path(path).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
