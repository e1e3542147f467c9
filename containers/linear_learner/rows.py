"""The training channel's rows, epoch by epoch: read, checked, split for selection, shuffled.

numpy only (torch is imported only for the vote of several hosts): ``algobox linear-learner train`` starts the
first epoch's reading and shuffling in a background thread before it imports torch, so the two overlap.
"""

import threading

import numpy as np

from .prefetch import prefetched
from .shuffle import ShuffleBuffer

SAMPLE_MAX_ROWS = 100_000  # rows for selection without validation data (and at most 32 MiB of features)
SAMPLE_MAX_VALUES = 1 << 23
# Selection without a validation channel (README, "Selection without a validation channel"):
FOLDS = 5  # small training data: the models are selected by 5-fold cross-validation ...
FOLDS_MAX_ROWS = 10_000  # ... when the channel has at most this many rows
FOLDS_MAX_VALUES = 1 << 25  # ... and the (FOLDS + 1) copies of the parameters hold at most 32M values (128 MiB)
HOLDOUT_BUCKETS = 10  # larger data: 1 run of rows in 10 (at most the sample's size) is held out for selection ...
HOLDOUT_RUN = 256  # ... runs of 256 consecutive rows: the kept runs reach the shuffle buffer without a copy


class SingleHost:
    rank, world_size, is_master = 0, 1, True

    def all_reduce_sum(self, tensor):
        return tensor

    def barrier(self):
        pass


class TrainingRows:
    """Shuffled mini-batches ``(features, labels, weights[, folds])`` of the training channel, epoch by epoch, and
    the rows kept for selection without a validation channel (README, "Selection without a validation channel").

    ``split``: "validation" (a validation channel selects), "sample" (one model: the trainer keeps a sample of
    the training rows), or None: decided when the first blocks are read, "folds" (small data: every row with
    its fold, in ``fold_data``) or "holdout" (1 row in HOLDOUT_BUCKETS held out of training, in ``holdout``).
    """

    def __init__(self, settings, split=None, cluster=None, seed=0, stop=None, device="cpu"):
        self.s = settings
        self.split = split
        self.cluster = cluster or SingleHost()
        self.seed = seed
        self.stop = stop
        self.device = device  # for the hosts' vote
        self.holdout = []  # "holdout": the held-out rows (features, labels, weights)
        self.holdout_cap = 0  # "holdout": at most this many rows are held out ...
        self.holdout_rows = 0
        self.holdout_end = None  # ... those before this row index (None: every row of the held-out bucket)
        self.fold_data = []  # "folds": every training row with its fold (features, labels, weights, folds)
        self.weighted = False  # whether any training block carried its own per-record weights
        self.buffers = [None, None]  # the shuffle buffers of even and odd epochs (each pool's memory is reused)
        self.ahead = {}  # epoch -> stream of the next epochs, each started when the one before had read its rows
        self.released = [threading.Event(), threading.Event()]  # whether the even/odd epochs' pools are free
        self.closing = threading.Event()  # set by ``close``
        for event in self.released:
            event.set()

    def check_labels(self, labels, where="train"):
        y = np.asarray(labels).reshape(len(labels), -1)[:, 0]
        if self.s.predictor_type == "binary_classifier" and not ((y == 0) | (y == 1)).all():
            bad = y[(y != 0) & (y != 1)][0]
            raise_data(f"{where}: binary_classifier labels must be 0 or 1; found {bad!r}")
        if self.s.predictor_type == "multiclass_classifier":
            bad = (y < 0) | (y >= self.s.num_classes) | (y != np.round(y))
            if bad.any():
                raise_data(f"{where}: multiclass_classifier labels must be integers 0..{self.s.num_classes - 1} "
                           f"(num_classes={self.s.num_classes}); found {y[bad][0]!r}")
        if not np.isfinite(y).all():
            raise_data(f"{where}: labels must be finite numbers")

    def stream(self, train_blocks, epoch):
        """The epoch's shuffled mini-batches (``train_blocks``: epoch -> the channel's blocks), read, decoded,
        checked and shuffled in a background thread. The next epoch's thread starts (with the other pool) as soon
        as this one has read its last block, so that its reading and its pool's first fill overlap the steps on
        this epoch's last rows instead of making the next epoch's first step wait for them."""
        started = self.ahead.pop(epoch, None)
        return started if started is not None else prefetched(self._shuffle(train_blocks, epoch))

    def close(self):
        """Stop the epochs that were started ahead (the training ended before them)."""
        self.closing.set()  # no epoch starts ahead any more, and none waits for a pool
        for epoch in sorted(self.ahead):
            self.ahead.pop(epoch).close()

    def _shuffle(self, train_blocks, epoch):
        self.released[epoch % 2].clear()  # (the next epoch but one, which waits for it, starts after this line)
        try:
            yield from self._shuffled(train_blocks, epoch)
        finally:  # every row of this epoch has left its pool (or the epoch was abandoned)
            self.released[epoch % 2].set()

    def _shuffled(self, train_blocks, epoch):
        seed = self.seed * 1000 + epoch * 10 + self.cluster.rank
        if self.buffers[epoch % 2] is None or epoch == 0:  # two pools, alternating: see ``stream``
            self.buffers[epoch % 2] = ShuffleBuffer(self.s.mini_batch_size, seed=seed)
        buffer = self.buffers[epoch % 2]
        buffer.reset(seed)
        blocks = iter(train_blocks(epoch))
        if self.split is None:
            blocks = self._choose_split(blocks)
        index = 0  # the rows' index in the channel (the same every epoch): folds and held-out rows follow it
        for features, labels, weights in blocks:
            if labels is None:
                raise_data("train: records have no labels; Linear Learner needs a label per record")
            n = features.shape[0]
            labels = np.asarray(labels, np.float32).reshape(n, -1)[:, 0]
            self.check_labels(labels)
            if weights is None:
                weights = np.ones(n, np.float32)
            else:
                weights = np.asarray(weights, np.float32).reshape(n)
                self.weighted = True
            start, index = index, index + n
            if self.split == "holdout":
                held = self._held(start, n, epoch)
                if held is not None:  # the block's kept runs go to the buffer as views (no copy of them here)
                    if epoch == 0:
                        self.holdout.append((features[held], labels[held], weights[held]))
                    for a, b in _runs(~held):
                        yield from buffer.add(features[a:b], labels[a:b], weights[a:b])
                    continue
            if self.split == "folds":
                folds = _buckets(start, n, FOLDS).astype(np.float32)
                if epoch == 0:
                    self.fold_data.append((features.copy(), labels.copy(), weights.copy(), folds))
                yield from buffer.add(features, labels, weights, folds)
            else:
                yield from buffer.add(features, labels, weights)
            if self.stop is not None and self.stop.is_set():
                return
        if epoch + 1 < self.s.epochs:  # the next epoch's pool is free once the epoch before this one has left it
            free = self.released[(epoch + 1) % 2]
            while not free.wait(0.1):
                if self.closing.is_set() or (self.stop is not None and self.stop.is_set()):
                    return
            if self.closing.is_set():
                return
            self.ahead[epoch + 1] = prefetched(self._shuffle(train_blocks, epoch + 1))
        yield from buffer.flush()

    def _choose_split(self, blocks):
        """Without validation data (and more than one model): cross-validation when the channel is small, else a
        held-out share of its rows. Reads ahead up to FOLDS_MAX_ROWS rows to know."""
        pending, rows, small = [], 0, True
        for block in blocks:
            pending.append(block)
            rows += block[0].shape[0]
            if rows > FOLDS_MAX_ROWS:
                small = False
                break
        d = pending[0][0].shape[1] if pending else 1
        copies = (d + 1) * self.s.num_models * self.s.outputs * (FOLDS + 1)
        folds = small and copies <= FOLDS_MAX_VALUES
        if self.cluster.world_size > 1:  # every host the same way: cross-validation only if every share is small
            # (the training loop waits for this thread's first batch, so no other collective runs meanwhile)
            import torch

            vote = self.cluster.all_reduce_sum(torch.tensor([0.0 if folds else 1.0], device=self.device))
            folds = float(vote[0]) == 0
        self.split = "folds" if folds else "holdout"
        self.holdout_cap = min(self.s.num_calibration_samples, SAMPLE_MAX_ROWS, max(SAMPLE_MAX_VALUES // d, 1))
        yield from pending
        yield from blocks

    def _held(self, start, n, epoch):
        """Which of rows start..start+n-1 are held out (bool mask), or None."""
        first_run = start // HOLDOUT_RUN
        runs = _buckets(first_run, (start + n - 1) // HOLDOUT_RUN - first_run + 1, HOLDOUT_BUCKETS) == 0
        held = runs[np.arange(start, start + n) // HOLDOUT_RUN - first_run]
        if self.holdout_end is not None:
            held &= np.arange(start, start + n) < self.holdout_end
        elif epoch == 0:
            positions = np.flatnonzero(held)
            room = self.holdout_cap - self.holdout_rows
            if len(positions) >= room:  # the sample is full: no row after this one is held out
                held[positions[room:]] = False
                self.holdout_end = start + int(positions[room - 1]) + 1
            self.holdout_rows += min(room, len(positions))
        return held if held.any() else None

def _runs(mask):
    """(start, stop) of the runs of True in a bool mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return zip(edges[::2].tolist(), edges[1::2].tolist())


def _buckets(start, n, count):
    """Buckets 0..count-1 of rows start..start+n-1: a multiplicative hash of the row's index (the same every
    epoch, whatever the shuffle)."""
    index = np.arange(start, start + n, dtype=np.uint64)
    return ((index * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)) % np.uint64(count)


def initial_split(settings, has_validation):
    """TrainingRows.split before the data is read: None when it depends on the training channel's size."""
    if has_validation:
        return "validation"
    if settings.num_models == 1:
        return "sample"  # nothing to select: the threshold is calibrated on the training rows
    return None


def start_rows(settings, train_blocks, has_validation, stop=None):
    """A single host's TrainingRows with its first epoch started (reading, shuffling in a background thread),
    and that epoch's stream: ``Trainer(rows=...).fit(first_epoch=...)`` continues from them."""
    rows = TrainingRows(settings, split=initial_split(settings, has_validation), stop=stop)
    return rows, rows.stream(train_blocks, 0)


def raise_data(message):
    from common.errors import DataError

    raise DataError(message)
