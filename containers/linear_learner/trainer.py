"""The method of the guide: scaler pass over a sample, all models trained at once, selection, calibration.

Data comes as callables ``epoch -> iterator of (features, labels, weights or None)`` blocks (numpy/scipy), so
the same code runs under ``algobox linear-learner train`` and in-process (benchmarks).
"""

import itertools
import json
import logging
import time

import numpy as np
import scipy.sparse as sp
import torch

from common import logs

from . import calibration
from .linear import Batcher, ParallelModels, Scaler, folded
from .losses import LOSSES
from .model import LinearModel
from .rows import (FOLDS, FOLDS_MAX_ROWS, HOLDOUT_BUCKETS, HOLDOUT_RUN, SAMPLE_MAX_ROWS, SAMPLE_MAX_VALUES,
                   SingleHost, TrainingRows, initial_split)

log = logging.getLogger(__name__)

LOSS_EVERY = 4  # the training loss logged per epoch is that of every 4th mini-batch (the others: gradients alone)
EVALUATE_ROWS = 1 << 15  # rows per matmul when the training sample is scored
CALIBRATION_MAX_VALUES = 1 << 26  # (rows x models) scores kept for calibration: at most 256 MiB


def _stack(parts):
    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
    return np.concatenate(parts)


class Trainer:
    """Trains ``settings.num_models`` models and returns the selected one as a LinearModel."""

    def __init__(self, settings, device=None, cluster=None, seed=0, stop=None, sync="gradients", rows=None):
        """``rows``: the TrainingRows of the train channel when its first epoch was started already."""
        self.s = settings
        self.device = torch.device(device or "cpu")
        self.cluster = cluster or SingleHost()
        self.rows = rows or TrainingRows(settings, cluster=self.cluster, seed=seed, stop=stop, device=self.device)
        self.seed = seed
        self.stop = stop
        self.sync = sync  # "average": per-epoch model averaging across hosts; "gradients": all-reduce per batch
        self.multiclass = settings.predictor_type == "multiclass_classifier"
        self.binary = settings.predictor_type == "binary_classifier"
        self.scaler = None
        self.models = None
        self.batcher = None
        self.class_weights = None  # multiclass: (C,) ; binary: (2,) negative/positive weight
        self.train_sample = []  # split "sample": raw blocks of the first rows (restacked after epoch 0)
        self.holdout = []  # split "holdout": the held-out rows, restacked after epoch 0
        self.fold_data = []  # split "folds": every training row with its fold, restacked after epoch 0
        self.history = []  # per epoch: {"epoch", "train_loss", "metric", ...}
        self.best = None  # per-model best (value, epoch, W cols, b cols, threshold)
        self.stopped_early_at = None
        self.rows_trained = 0

    @property
    def split(self):
        """Where models are selected and calibrated (TrainingRows.split): "validation", "folds", "holdout" or
        "sample"."""
        return self.rows.split

    def _check_labels(self, labels, where="train"):
        self.rows.check_labels(labels, where)

    # -- sample and scaler -----------------------------------------------------------------------

    def _weights(self, labels, given):
        """Per-row training weights: the data's own weights times the class/positive weights; None when every
        row weighs 1 (no weights in the data, no class weights)."""
        n = len(labels)
        if self.class_weights is None and given is None:
            return None
        y = np.asarray(labels).reshape(n, -1)[:, 0]
        w = np.ones(n, np.float32) if given is None else np.asarray(given, np.float32).reshape(n)
        if self.class_weights is not None:
            w = w * self.class_weights[y.astype(np.int64)]
        return w

    def _fit_scaler(self, sample, d):
        s = self.s
        features = _stack([b[0] for b in sample])
        labels = np.concatenate([np.asarray(b[1]).reshape(len(b[1]), -1)[:, 0] for b in sample])
        sparse = sp.issparse(features)
        moments = torch.from_numpy(Scaler.moments(features, labels))
        y = labels.astype(np.int64) if not s.predictor_type == "regressor" else None
        counts = np.bincount(y, minlength=max(s.num_classes, 2))[:max(s.num_classes, 2)] if y is not None else None
        if counts is not None:
            moments = torch.cat([moments, torch.from_numpy(counts.astype(np.float64))])
        moments = self.cluster.all_reduce_sum(moments.clone()).numpy()
        shift = s.unbias_data if s.unbias_data != "auto" else not sparse
        self.scaler = Scaler.from_moments(moments, d, shift_features=bool(shift), scale_features=s.normalize_data,
                                          shift_label=s.unbias_label, scale_label=s.normalize_label)
        if counts is not None:
            counts = moments[-len(counts):]
            if self.binary:
                weight = s.positive_example_weight
                if weight == "balanced":
                    weight = counts[0] / counts[1] if counts[1] > 0 else 1.0
                    log.info("positive_example_weight=balanced: %.6g (%d negative / %d positive in the sample)",
                             weight, counts[0], counts[1])
                if float(weight) != 1.0:
                    self.class_weights = np.array([1.0, float(weight)], np.float32)
            elif s.balance_multiclass_weights:
                total = counts.sum()
                self.class_weights = np.where(counts > 0, total / (len(counts) * np.maximum(counts, 1)), 1.0
                                              ).astype(np.float32)
                log.info("balance_multiclass_weights: class weights %s", np.round(self.class_weights, 4).tolist())
        log.info("Scaling model computed with parameters: %s", json.dumps({
            "mean_weight": _summary(self.scaler.feature_mean), "stdev_weight": _summary(self.scaler.feature_scale),
            "mean_label": self.scaler.label_mean, "stdev_label": self.scaler.label_scale,
            "rows": int(moments[0]), "shift_features": bool(shift)}))

    # -- passes ----------------------------------------------------------------------------------

    def _start(self, first_blocks, d):
        """Scaler sample (and the training sample for selection), then the models."""
        self._fit_scaler(first_blocks, d)
        self.batcher = Batcher(self.scaler, self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(self.s, d))
            torch.set_flush_denormal(True)  # adam's second moments decay into denormals, 100x slower on x86
        groups = FOLDS + 1 if self.split == "folds" else 1
        self.models = ParallelModels(self.s, d, self.device, seed=self.seed, scaler=self.scaler, groups=groups)
        if self.s.predictor_type == "regressor":
            self.models.set_label_scale(self.scaler.label_scale)
        log.info("Training %d models at once: %s", self.s.num_models, json.dumps(
            [self.s.model_hyperparameters(i) for i in range(min(self.s.num_models, 4))])
            + (" ..." if self.s.num_models > 4 else ""))
        if self.split == "folds":
            log.info("No validation channel and at most %d training rows: the models are selected (and thresholds "
                     "calibrated) by %d-fold cross-validation; %d copies of them train at once, one on every row "
                     "(the model kept), %d each without one fold (out-of-fold scores)", FOLDS_MAX_ROWS, FOLDS,
                     FOLDS + 1, FOLDS)
        elif self.split == "holdout":
            log.info("No validation channel: 1 run of %d training rows in %d (at most %d rows) is held out of "
                     "training; the models are selected (and thresholds calibrated) on those rows", HOLDOUT_RUN,
                     HOLDOUT_BUCKETS, self.rows.holdout_cap)

    def _train_step(self, features, labels, weights, folds=None, with_loss=True):
        x = self.batcher.features(features)
        y = self.batcher.labels(labels, self.multiclass)
        w = self._weights(labels, weights if self.rows.weighted else None)  # the buffer's weights are ones otherwise
        w = None if w is None else torch.from_numpy(w).to(self.device)
        f = None if folds is None else torch.from_numpy(folds.astype(np.int64)).to(self.device)
        if self.sync == "gradients" and self.cluster.world_size > 1:
            return self.models.gradients(x, y, w, f, with_loss)
        return self.models.step(x, y, w, f, with_loss)

    def _epoch(self, epoch, stream, d):
        """One pass; returns the per-model mean training loss (of every LOSS_EVERY-th mini-batch)."""
        progress = logs.Progress(f"train epoch {epoch}")
        loss_sum = torch.zeros(self.models.m, dtype=torch.float64, device=self.device)
        weight_sum = 0.0
        gradient_sync = self.sync == "gradients" and self.cluster.world_size > 1
        stream = iter(stream)
        for index in itertools.count():
            batch = next(stream, None)
            with_loss = index % LOSS_EVERY == 0
            if gradient_sync:
                batch = self._synced_step(batch, with_loss)
                if batch is None:
                    break
                loss, total, n = batch
            else:
                if batch is None:
                    break
                features, labels, weights, *folds = batch
                loss, total = self._train_step(features, labels, weights, *folds, with_loss=with_loss)
                n = len(labels)
            if loss is not None:
                loss_sum += loss
                weight_sum += total
            self.rows_trained += n
            progress.update(n)
        records = progress.done()
        elapsed = max(time.perf_counter() - progress.start, 1e-9)
        log.info("#throughput_metric: host=algo-%d, train throughput=%.1f records/second",
                 self.cluster.rank + 1, records / elapsed)
        if not gradient_sync and self.cluster.world_size > 1:
            self._average()
        weight_sum = torch.as_tensor(weight_sum, dtype=torch.float64, device=self.device).clamp_min(1e-12)
        return (loss_sum / weight_sum)[:self.s.num_models].cpu().numpy()  # the models kept (group 0)

    def _synced_step(self, batch, with_loss=True):
        """Gradient all-reduce: every host steps together; a host without data adds zeros until all are done."""
        m = self.models
        if batch is not None:  # weighted sums: the hosts' sums are added, then divided by the total weight
            features, labels, weights, *folds = batch
            grad, loss, total = self._train_step(features, labels, weights, *folds, with_loss=with_loss)
            n = len(labels)
        else:
            grad = torch.zeros_like(m.P)
            loss, n = (torch.zeros(m.m, device=self.device) if with_loss else None), 0
            total = torch.zeros(m.m, device=self.device) if self.split == "folds" else 0.0
        totals = torch.as_tensor(total, dtype=grad.dtype, device=self.device).reshape(-1)  # (1,) or per model
        active = torch.tensor([1.0 if batch is not None else 0.0], dtype=grad.dtype, device=self.device)
        packed = torch.cat([grad.reshape(-1), totals, active])
        self.cluster.all_reduce_sum(packed)
        if float(packed[-1]) == 0:
            return None
        totals_all = packed[grad.numel():-1]
        m.apply(m.normalise(packed[:grad.numel()].view_as(m.P),
                            totals_all if self.split == "folds" else float(totals_all[0])))
        return loss, total, n

    def _average(self):
        world = float(self.cluster.world_size)
        for tensor in self.models.tensors():
            self.cluster.all_reduce_sum(tensor)
            tensor.div_(world)

    # -- evaluation and selection ----------------------------------------------------------------

    def _evaluate(self, blocks, P=None):
        """Per-model mean loss (scaled units), and the calibration sample's raw scores/labels/weights, of the
        models' parameters ``P`` (None: the current ones). Blocks with folds (cross-validation): each row is
        scored by the copy of each model that did not train on it."""
        m, models = self.models, self.s.num_models
        loss_sum = torch.zeros(models, dtype=torch.float64, device=self.device)
        total = 0.0
        keep_rows = min(self.s.num_calibration_samples, max(CALIBRATION_MAX_VALUES // max(models, 1), 1))
        kept_scores, kept_labels, kept_weights, kept = [], [], [], 0
        with torch.no_grad():
            for features, labels, weights, *folds in blocks:
                if labels is None:
                    raise_data("validation: records have no labels")
                self._check_labels(labels, "validation")
                x = self.batcher.features(features)
                y = self.batcher.labels(labels, self.multiclass)
                w = self._weights(labels, weights)
                w = torch.ones(len(y)) if w is None else torch.from_numpy(w)
                w = w.to(self.device)
                scores = m.scores(x, P)
                loss, _ = m.loss_fn(scores, y, m.params)
                loss, raw = loss.sum(2), scores[:, :, 0]
                if folds:  # out of fold: group g + 1 did not train on fold g
                    group = torch.from_numpy(folds[0].astype(np.int64) + 1).to(self.device).view(-1, 1, 1)
                    pick = lambda t: t.reshape(len(y), m.groups, models).gather(
                        1, group.expand(-1, 1, models)).view(len(y), models)
                    loss, raw = pick(loss), pick(raw)
                loss_sum += (w @ loss).to(torch.float64)
                total += float(w.sum())
                if self.binary and kept < keep_rows:
                    take = min(keep_rows - kept, scores.shape[0])
                    kept_scores.append(raw[:take])
                    kept_labels.append(y[:take].view(-1))
                    kept_weights.append(w[:take])
                    kept += take
        mean_loss = (loss_sum / max(total, 1e-12)).cpu()
        if not self.binary:
            return mean_loss, None
        return mean_loss, (torch.cat(kept_scores), torch.cat(kept_labels), torch.cat(kept_weights))

    def _selection_values(self, mean_loss, sample):
        """Per-model (value to maximise, raw threshold)."""
        m = self.s.num_models
        default = torch.zeros(m, dtype=torch.float64)
        if not self.binary or self.s.selection == "loss_function" or sample is None:
            return -mean_loss.to(torch.float64), default
        scores, labels, weights = sample
        thresholds, values = calibration.calibrate(
            scores, labels, weights, self.s.selection, f_beta=self.s.f_beta,
            target_precision=self.s.target_precision, target_recall=self.s.target_recall)
        return values.cpu(), thresholds.cpu()

    def _consider(self, epoch, values, thresholds, mean_loss):
        """Keep each model's best epoch (weights, threshold); True when the best value improved enough."""
        m = self.models
        if self.best is None:
            self.best = {"value": torch.full((self.s.num_models,), -float("inf"), dtype=torch.float64),
                         "epoch": torch.zeros(self.s.num_models, dtype=torch.long), "P": m.P.clone(),
                         "threshold": thresholds.clone(), "loss": mean_loss.clone()}
        improved = values > self.best["value"]
        if improved.any():  # every copy of an improved model (cross-validation: all its groups)
            cols = improved.repeat_interleave(m.k).repeat(m.groups).to(self.device)
            self.best["P"][:, cols] = m.P[:, cols]
            self.best["value"] = torch.where(improved, values, self.best["value"])
            self.best["epoch"] = torch.where(improved, torch.full_like(self.best["epoch"], epoch), self.best["epoch"])
            self.best["threshold"] = torch.where(improved, thresholds, self.best["threshold"])
            self.best["loss"] = torch.where(improved, mean_loss, self.best["loss"])

    def _broadcast(self, tensor):
        """The master's values on every host (others add zeros)."""
        if self.cluster.world_size == 1:
            return tensor
        t = tensor.to(torch.float64).clone() if self.cluster.is_master else torch.zeros_like(tensor, dtype=torch.float64)
        return self.cluster.all_reduce_sum(t.to(self.device)).cpu().to(tensor.dtype)

    # -- the whole method ------------------------------------------------------------------------

    def fit(self, train_blocks, validation_blocks=None, feature_dim=None, first_epoch=None):
        """``first_epoch``: epoch 0's stream of ``self.rows`` when it was started already (``start_rows``)."""
        s = self.s
        if first_epoch is None:
            self.rows.split = initial_split(s, validation_blocks is not None)
            first_epoch = self.rows.stream(train_blocks, 0)
        stream = first_epoch
        first, rows = [], 0
        for batch in stream:  # the first shuffled batches: scaler sample (and they are trained on below)
            first.append(batch)
            rows += len(batch[1])
            if rows >= s.num_point_for_scaler:
                break
        if not first:
            raise_data("train: no records were read")
        d = first[0][0].shape[1]
        if feature_dim is not None and feature_dim != d:
            raise_data(f"train: records have {d} features, but feature_dim={feature_dim}")
        self._start(first, d)
        has_validation = validation_blocks is not None
        sample_rows = min(s.num_calibration_samples, SAMPLE_MAX_ROWS, max(SAMPLE_MAX_VALUES // d, 1))
        best_metric, since_best = None, 0
        factor = _loss_unit_factor(s.loss, self.scaler.label_scale)
        for epoch in range(s.epochs):
            if epoch == 0:
                stream0 = _chain(first, stream)
                if self.split == "sample":
                    stream0 = self._keep_sample(stream0, sample_rows)
                epoch_stream = stream0
            else:
                epoch_stream = self.rows.stream(train_blocks, epoch)
            train_loss = self._epoch(epoch, epoch_stream, d)
            if epoch == 0 and not has_validation:
                self.train_sample = _restack(self.train_sample, EVALUATE_ROWS)
                self.holdout = _restack(self.rows.holdout, EVALUATE_ROWS)
                self.fold_data = _restack(self.rows.fold_data, EVALUATE_ROWS)
                self.rows.holdout, self.rows.fold_data = [], []
                if self.split in ("holdout", "folds"):
                    log.info("Selection rows: %d %s", sum(len(b[1]) for b in self._selection_blocks(None)),
                             "held out" if self.split == "holdout" else "(every training row, out of fold)")
            if self.stop is not None and self.stop.is_set():
                log.warning("Stopping at epoch %d: the job was asked to stop", epoch)
                break
            values = thresholds = mean_loss = None
            if self.cluster.is_master:  # without validation: snapshots by the sample's loss, calibration at the end
                mean_loss, sample = self._evaluate(self._selection_blocks(validation_blocks, epoch))
                values, thresholds = self._selection_values(mean_loss, sample if has_validation else None)
            if self.cluster.world_size > 1:
                m = s.num_models
                zeros = torch.zeros(m, dtype=torch.float64)
                packed = self._broadcast(torch.cat([values if values is not None else zeros,
                                                    thresholds if thresholds is not None else zeros,
                                                    mean_loss.to(torch.float64) if mean_loss is not None else zeros]))
                values, thresholds, mean_loss = packed[:m], packed[m:2 * m], packed[2 * m:]
            self._consider(epoch, values, thresholds, mean_loss)
            best_model = int(torch.argmax(values))
            where = {"validation": "validation", "holdout": "held-out", "folds": "out-of-fold"}.get(self.split, "train")
            metric_value = float(values[best_model]) if has_validation else float(-mean_loss.min())
            self.history.append({"epoch": epoch, "train_loss": float(train_loss.min() * factor),
                                 "loss": float(mean_loss.min() * factor), "metric": metric_value})
            logs.metrics_json({"train_loss": {"min": float(train_loss.min() * factor),
                                              "max": float(train_loss.max() * factor)}})
            log.info("#quality_metric: host=algo-1, epoch=%d, train objective_loss <loss>=%.6g",
                     epoch, float(train_loss.min() * factor))
            if has_validation:
                log.info("#quality_metric: host=algo-1, epoch=%d, validation objective_loss <loss>=%.6g",
                         epoch, float(mean_loss.min() * factor))
            criteria = "sampled_" + s.selection if has_validation and self.binary and \
                s.selection != "loss_function" else "loss"
            log.info("#early_stopping_criteria_metric: host=algo-1, epoch=%d, criteria=%s, value=%.6g",
                     epoch, criteria, metric_value if criteria != "loss" else -metric_value * factor)
            if best_metric is None or metric_value - best_metric > s.early_stopping_tolerance * abs(best_metric):
                if best_metric is not None:
                    log.info("Epoch %d: %s improved. Updating best model", epoch, criteria)
                best_metric, since_best = metric_value, 0
            else:
                since_best += 1
                if since_best >= s.early_stopping_patience:
                    self.stopped_early_at = epoch
                    log.info("Early stopping at epoch %d: %s has not improved by more than %g (relative) for %d "
                             "epochs", epoch, where + " " + criteria, s.early_stopping_tolerance, since_best)
                    break
        self.rows.close()  # a next epoch started ahead when training stopped early
        if not has_validation and self.binary and s.selection != "loss_function" and self.cluster.is_master \
                and self.best is not None:
            self._calibrate_snapshots()
        return self._final_model()

    def _calibrate_snapshots(self):
        """Without validation: thresholds and selection values of every model's best snapshot on the training
        sample, once, after training."""
        mean_loss, sample = self._evaluate(self._selection_blocks(None), self.best["P"])
        values, thresholds = self._selection_values(mean_loss, sample)
        self.best["value"], self.best["threshold"], self.best["loss"] = values, thresholds, mean_loss

    def _selection_blocks(self, validation_blocks, epoch=0):
        if self.split == "validation":
            return validation_blocks(epoch)
        return iter({"folds": self.fold_data, "holdout": self.holdout}.get(self.split, self.train_sample))

    def _keep_sample(self, stream, limit):
        kept = 0
        for batch in stream:
            if kept < limit:
                take = min(limit - kept, len(batch[1]))
                self.train_sample.append(tuple(part[:take] for part in batch))
                kept += take
            yield batch

    def _final_model(self):
        s = self.s
        if self.best is None:  # stopped before the first evaluation: the models as they are
            values = torch.zeros(s.num_models, dtype=torch.float64)
            self._consider(0, values, torch.zeros(s.num_models, dtype=torch.float64),
                           torch.zeros(s.num_models, dtype=torch.float64))
        values = self.best["value"]
        tied = values >= values.max() - 1e-12  # ties (common for accuracy on small samples): the lowest loss wins
        loss = torch.where(tied, self.best["loss"].to(torch.float64), torch.full_like(values, float("inf")))
        best = int(torch.argmin(loss))
        k, d = self.models.k, self.models.d
        cols = slice(best * k, (best + 1) * k)
        w = self.best["P"][:d, cols].cpu().numpy()
        b = self.best["P"][d, cols].cpu().numpy() if s.use_bias else np.zeros(k, np.float32)
        weights, bias = folded(w, b, self.scaler, s.use_bias)
        threshold = None
        if self.binary:
            raw = float(self.best["threshold"][best]) if s.selection != "loss_function" else 0.0
            threshold = 1.0 / (1.0 + np.exp(-raw)) if s.loss == "logistic" else raw
        chosen = s.model_hyperparameters(best)
        log.info("Best model found for hyperparameters: %s", json.dumps(chosen, sort_keys=True))
        log.info("Selected model %d of %d (best epoch %d, %s %.6g)%s", best, s.num_models,
                 int(self.best["epoch"][best]), "selection value", float(self.best["value"][best]),
                 f", threshold {threshold:.6g}" if threshold is not None else "")
        extra = {"num_classes": s.num_classes if self.multiclass else (2 if self.binary else None),
                 "selected_model": best, "num_models": s.num_models, "selected_hyperparameters": chosen,
                 "binary_classifier_model_selection_criteria": s.selection if self.binary else None,
                 "use_bias": s.use_bias}
        return LinearModel(weights, bias, s.predictor_type, s.loss, threshold, self.scaler.to_dict(), extra)

    def objective(self):
        """Per-row loss of raw scores in label units, for the final metrics."""
        fn = LOSSES[self.s.loss]
        params = {"margin": self.s.margin, "quantile": self.s.quantile,
                  "loss_insensitivity": self.s.loss_insensitivity, "huber_delta": self.s.huber_delta}
        multiclass = self.multiclass

        def loss(raw, y):
            s = torch.from_numpy(np.ascontiguousarray(raw, np.float32)).view(raw.shape[0], 1, -1)
            t = torch.from_numpy(y).long() if multiclass else torch.from_numpy(y.astype(np.float32)).view(-1, 1, 1)
            return fn(s, t, params)[0].sum(2)[:, 0].numpy()

        return loss


def cpu_threads(settings, feature_dim, cores=None):
    """One thread unless a mini-batch's matmul is big (16M multiply-adds): OpenMP's spin-waits cost more than
    they save below that (30x slower with 2 threads on a busy 2-core machine, measured); all cores above."""
    import os

    cores = cores or len(os.sched_getaffinity(0))
    work = settings.mini_batch_size * settings.num_models * settings.outputs * feature_dim
    return 1 if work < (1 << 24) else cores


def _loss_unit_factor(loss, scale):
    if loss in ("squared_loss", "eps_insensitive_squared_loss", "huber_loss"):
        return scale * scale
    if loss in ("absolute_loss", "eps_insensitive_absolute_loss", "quantile_loss"):
        return scale
    return 1.0


def _chain(first, rest):
    yield from first
    yield from rest


def _restack(batches, rows):
    """The same rows in blocks of up to ``rows`` (fewer, larger matmuls when the sample is scored)."""
    out, parts, count = [], [], 0
    for batch in batches:
        parts.append(batch)
        count += len(batch[1])
        if count >= rows:
            out.append(tuple(_stack(list(p)) for p in zip(*parts)))
            parts, count = [], 0
    if parts:
        out.append(tuple(_stack(list(p)) for p in zip(*parts)))
    return out


def _summary(values):
    values = np.asarray(values)
    return {"min": float(values.min()), "max": float(values.max())} if values.size else {}


def raise_data(message):
    from common.errors import DataError

    raise DataError(message)
