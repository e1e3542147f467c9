"""Small corpora for the BlazingText tests: topic sentences (labelled or not) and WS-353-flavoured text."""

import random

from containers.blazingtext import wordsim

TOPICS = {
    "sports": "ball team goal match score player coach league win stadium referee",
    "tech": "linux kernel intel chip code software open source desktop compiler driver",
    "food": "bread cheese soup recipe bake salt oven dinner taste butter flour",
    "sea": "boat sail ocean wave harbor ship fish tide anchor coast island",
}


def sentences(n, seed=0, labelled=True, length=10):
    rng = random.Random(seed)
    names = sorted(TOPICS)
    lines = []
    for _ in range(n):
        topic = rng.choice(names)
        words = [rng.choice(TOPICS[topic].split()) for _ in range(length)]
        lines.append((f"__label__{topic} " if labelled else "") + " ".join(words))
    return lines


def text(lines):
    return ("\n".join(lines) + "\n").encode()


def wordsim_corpus(seed=0):
    """Lines built from the WS-353 pairs: the two words of a pair rated s each share round(s) lines with the
    pair's own context words, so the more alike people rate them, the more contexts they share (rho well above 0)."""
    rng = random.Random(seed)
    lines = []
    for number, (first, second, score) in enumerate(wordsim.pairs()):
        context = [f"ctx{number}x{i}" for i in range(3)]
        for word in (first, second):
            lines += [" ".join([word, *rng.sample(context, 2)]) for _ in range(round(score))]
    rng.shuffle(lines)
    return lines
