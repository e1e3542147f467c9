"""batch_skipgram: mini-batched skip-gram with negative sampling in PyTorch, data-parallel over hosts.

Each target word's context words (a window of at most ``window_size`` each side, drawn per target as word2vec and
fastText do, at most ``batch_size`` of them, within the line) make its (context, target) pairs, and each pair draws
its own ``negative_samples`` negatives from unigram^0.75, as word2vec's and fastText's skip-gram do. A step batches
the pairs of a few hundred targets (about 2,000 pairs): one gather of the rows, elementwise products for the
scores, and the updates applied with ``index_add_`` (plain SGD with word2vec's linearly decaying rate, no autograd,
no optimizer state). A step sums the updates of every occurrence of a word in it, all computed at the same point:
the number of targets a step takes is sized so that the most frequent word (after subsampling) occurs about
``DUPLICATES`` times in it at most.

Several hosts: each reads its share of ``train`` (FullyReplicated: every world-size-th block of lines), the
vocabulary is counted on every share and merged (``all_gather_bytes``), every host starts from the same vectors,
and every ``SYNC_STEPS`` steps (and at the end of each epoch) the hosts sum their updates since the last round
with one all-reduce per matrix.
"""

import json
import logging
import math
import time
from collections import Counter

import numpy as np

from common import logs
from common.errors import DataError

from . import wordsim
from .artifacts import write_vectors_txt
from .fasttext_bin import write_skipgram

log = logging.getLogger(__name__)
LINES_PER_BATCH = 256  # the unit hosts share a FullyReplicated channel by
MAX_TARGETS_PER_STEP = 1024
MIN_TARGETS_PER_STEP = 32
DUPLICATES = 16  # about how many updates of the most frequent word one step may sum
SYNC_STEPS = 64
NEGATIVE_POWER = 0.75
MIN_RATE = 1e-4
SEED = 7
# One thread a host: a step is a few ~1M-element ops, where a second intra-op thread gains little, and on a shared
# core it costs 10-20x (each op waits for its slowest thread; measured 8-11 ms against 100-175 ms a step at load 8).
TORCH_THREADS = 1


class Vocabulary:
    """Words with at least min_count occurrences, most frequent first (ties by word), and their counts."""

    def __init__(self, counts, min_count):
        kept = sorted(((c, w) for w, c in counts.items() if c >= min_count), key=lambda cw: (-cw[0], cw[1]))
        self.words = [w for _, w in kept]
        self.counts = np.asarray([c for c, _ in kept], dtype=np.int64)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)


def read_share(context):
    """This host's lines, each a list of tokens."""
    lines = []
    progress = logs.Progress("train")
    for batch in context.batches("train", LINES_PER_BATCH):
        lines.extend(line.split() for line in batch.features)
        progress.update(len(batch))
    progress.done()
    return lines


def global_counts(lines, cluster):
    counts = Counter(token for line in lines for token in line)
    if cluster.world_size == 1:
        return counts
    merged = Counter()
    for part in cluster.all_gather_bytes(json.dumps(counts).encode("utf-8")):
        merged.update(json.loads(part.decode("utf-8")))
    return merged


def encode(lines, vocabulary):
    """Token ids (words below min_count dropped) and each token's line number, as int64 arrays."""
    index = vocabulary.index
    ids, line_of = [], []
    for number, line in enumerate(lines):
        kept = [index[t] for t in line if t in index]
        ids.extend(kept)
        line_of.extend([number] * len(kept))
    return np.asarray(ids, dtype=np.int64), np.asarray(line_of, dtype=np.int64)


def targets_per_step(counts, t, contexts):
    kept = counts * keep_probability(counts, t)
    peak = float(kept.max() / kept.sum())
    return int(min(MAX_TARGETS_PER_STEP, max(MIN_TARGETS_PER_STEP, DUPLICATES / (contexts * peak))))


def keep_probability(counts, t):
    """fastText's subsampling: a word of frequency f is kept with probability sqrt(t / f) + t / f (at most 1)."""
    frequency = counts / counts.sum()
    return np.minimum(1.0, np.sqrt(t / frequency) + t / frequency)


class SkipGram:
    """Input vectors ``w`` (the word vectors) and output vectors ``c``, trained by mini-batches of pairs."""

    def __init__(self, vocabulary, hp, total_steps, seed=SEED, hosts=1):
        import torch

        self.torch = torch
        self.dim, self.window, self.negatives = hp["vector_dim"], hp["window_size"], hp["negative_samples"]
        self.contexts = min(2 * self.window, hp["batch_size"])
        self.rate, self.total_steps, self.step = hp["learning_rate"], max(total_steps, 1), 0
        generator = torch.Generator().manual_seed(seed)
        self.w = (torch.rand(len(vocabulary), self.dim, generator=generator) - 0.5) * (2.0 / self.dim)
        self.c = torch.zeros(len(vocabulary), self.dim)
        # (w, c) as of the last round between hosts (the same on every host), when there are several
        self.synced = (self.w.clone(), self.c.clone()) if hosts > 1 else None
        weights = vocabulary.counts.astype(np.float64) ** NEGATIVE_POWER
        self.cdf = np.cumsum(weights / weights.sum())
        self.keep_probability = keep_probability(vocabulary.counts, hp["sampling_threshold"])
        offsets = np.arange(1, self.window + 1)
        self.offsets = np.stack([-offsets, offsets], axis=1).reshape(-1)  # -1, 1, -2, 2, ...: nearest first
        self.label = torch.zeros(1, 1 + self.negatives)  # 1 for the target's own output row, 0 for negatives
        self.label[0, 0] = 1.0
        self.sign = 2.0 * self.label - 1.0

    def learning_rate(self):
        return self.rate * max(MIN_RATE, 1.0 - self.step / self.total_steps)

    def subsample(self, ids, line_of, rng):
        keep = rng.random(ids.shape[0]) < self.keep_probability[ids]
        return ids[keep], line_of[keep]

    def batch(self, targets, ids, line_of, rng):
        """The (context, target) pairs of the target positions, ordered by target: ``(inputs (P,), outputs (P, 1 +
        negatives), owner (P,))``: the context word's id, the target's id then the pair's own negatives, and the
        number of the pair's target within ``targets``."""
        n = ids.shape[0]
        reach = rng.integers(1, self.window + 1, size=targets.shape[0])
        positions = targets[:, None] + self.offsets[None, :]
        inside = (positions >= 0) & (positions < n)
        positions = np.clip(positions, 0, n - 1)
        valid = inside & (np.abs(self.offsets)[None, :] <= reach[:, None]) & \
            (line_of[positions] == line_of[targets][:, None])
        valid &= np.cumsum(valid, axis=1) <= self.contexts
        owner, slot = np.nonzero(valid)
        negatives = np.searchsorted(self.cdf, rng.random((owner.shape[0], self.negatives)))
        negatives = np.minimum(negatives, len(self.cdf) - 1)
        outputs = np.concatenate([ids[targets[owner]][:, None], negatives], axis=1)
        return ids[positions[owner, slot]], outputs, owner

    def update(self, inputs, outputs):
        """One SGD step over P pairs: scores (P, 1 + k), the target's output row first. Elementwise products for the
        scores and outer products, ``bmm`` for the input gradients and ``index_select`` for the rows: the fast ones on
        CPU at these sizes."""
        torch = self.torch
        rate = self.learning_rate()
        pairs = inputs.shape[0]
        rows = torch.from_numpy(inputs)
        out = torch.from_numpy(outputs).reshape(-1)
        w_in = self.w.index_select(0, rows)                                          # (P, d)
        c_out = self.c.index_select(0, out).reshape(pairs, outputs.shape[1], self.dim)  # (P, 1 + k, d)
        scores = (c_out * w_in.unsqueeze(1)).sum(2)                                  # (P, 1 + k)
        loss = -torch.nn.functional.logsigmoid(scores * self.sign).sum()
        g = (self.label - torch.sigmoid(scores)) * rate                              # (P, 1 + k)
        self.w.index_add_(0, rows, torch.bmm(g.unsqueeze(1), c_out).squeeze(1))
        self.c.index_add_(0, out, (g.unsqueeze(2) * w_in.unsqueeze(1)).reshape(-1, self.dim))
        self.step += 1
        return float(loss), pairs


def synchronize(model, cluster, stopping):
    """Give every host the vectors of the last round plus all hosts' updates since then, summed; True when any host
    was asked to stop. Summed, not averaged: most rows a round touches are touched on one host only (the updates are
    sparse), and averaging would halve those updates (the learning rate) for every extra host."""
    torch = model.torch
    flag = cluster.all_reduce_sum(torch.tensor([1.0 if stopping else 0.0]))
    if cluster.world_size > 1:
        for tensor, synced in zip((model.w, model.c), model.synced):
            tensor -= synced  # this host's updates since the last round
            cluster.all_reduce_sum(tensor)
            tensor += synced
            synced.copy_(tensor)
    return float(flag[0]) > 0


def train_epochs(context, model, ids, line_of, hp, cluster, steps_per_epoch, per_step, rng):
    words = pairs = 0
    started = time.perf_counter()
    stopped = False
    for epoch in range(hp["epochs"]):
        kept, kept_lines = model.subsample(ids, line_of, rng)
        order = rng.permutation(kept.shape[0])
        loss_sum = pair_sum = 0.0
        for step in range(steps_per_epoch):
            if step % SYNC_STEPS == 0:  # the pairs of SYNC_STEPS steps at once: numpy's per-call cost, amortized
                block = order[step * per_step:(step + SYNC_STEPS) * per_step]
                inputs, outputs, owner = model.batch(block, kept, kept_lines, rng)
                bounds = np.searchsorted(owner, np.arange(SYNC_STEPS + 1) * per_step)
            first, last = bounds[step % SYNC_STEPS], bounds[step % SYNC_STEPS + 1]
            if last > first:
                loss, count = model.update(inputs[first:last], outputs[first:last])
                loss_sum, pair_sum = loss_sum + loss, pair_sum + count
            else:
                model.step += 1
            if (step + 1) % SYNC_STEPS == 0 or step + 1 == steps_per_epoch:
                if synchronize(model, cluster, context.stop.is_set()):
                    stopped = True
                    break
        words += ids.shape[0]
        pairs += pair_sum
        elapsed = time.perf_counter() - started
        log.info("Epoch %d: loss %.4f per pair, %d pairs, %.0f words/s on this host, rate %.5f", epoch + 1,
                 loss_sum / max(pair_sum, 1.0), int(pair_sum), words / max(elapsed, 1e-9), model.learning_rate())
        if stopped:
            log.warning("Stopped by a signal in epoch %d; saving the vectors trained so far", epoch + 1)
            break
    return words, time.perf_counter() - started


def train(context, hp):
    import torch

    from .train import VECTORS_BIN, VECTORS_TXT, evaluate_and_write

    torch.set_num_threads(TORCH_THREADS)
    with context.cluster("cpu") as cluster:
        with context.timings.stage("read"):
            lines = read_share(context)
            counts = global_counts(lines, cluster)
            vocabulary = Vocabulary(counts, hp["min_count"])
            if not len(vocabulary):
                raise DataError(f"No word occurs min_count={hp['min_count']} times or more in the training data: "
                                "lower min_count or give more text")
            ids, line_of = encode(lines, vocabulary)
            del lines
        rng = np.random.default_rng(SEED + cluster.rank)
        expected = float(np.sum(keep_probability(vocabulary.counts, hp["sampling_threshold"])[ids])) if ids.size else 0.0
        contexts = min(2 * hp["window_size"], hp["batch_size"])
        per_step = targets_per_step(vocabulary.counts, hp["sampling_threshold"], contexts)
        local_steps = math.ceil(expected * 1.01 / per_step) + 1
        steps = int(cluster.all_gather(torch.tensor([local_steps], dtype=torch.int64)).max())
        log.info("batch_skipgram: %d words in the vocabulary, %d tokens on this host (%d hosts), %d steps of %d "
                 "targets an epoch, contexts per target <= %d, negatives %d per pair, sync every %d steps",
                 len(vocabulary), ids.shape[0], cluster.world_size, steps, per_step, contexts, hp["negative_samples"], SYNC_STEPS)
        model = SkipGram(vocabulary, hp, steps * hp["epochs"], hosts=cluster.world_size)
        with context.timings.stage("train_vectors"):
            words, seconds = train_epochs(context, model, ids, line_of, hp, cluster, steps, per_step, rng)
        total = int(cluster.all_reduce_sum(torch.tensor([words], dtype=torch.int64)))
        log.info("Trained on %d words (all hosts) in %.1f s: %.0f words/s", total, seconds, total / max(seconds, 1e-9))
        if cluster.is_master:
            vectors = model.w.numpy()
            with context.timings.stage("save"):
                write_skipgram(context.paths.model_dir / VECTORS_BIN, vocabulary.words, vocabulary.counts, vectors,
                               model.c.numpy(), ws=hp["window_size"], epoch=hp["epochs"], min_count=hp["min_count"],
                               neg=hp["negative_samples"], t=hp["sampling_threshold"])
                write_vectors_txt(context.paths.model_dir / VECTORS_TXT, vocabulary.words, vectors)
            with context.timings.stage("evaluate"):
                evaluate_and_write(context, hp, lambda w: vectors[vocabulary.index[w]], vocabulary.index.__contains__)
        cluster.barrier()
