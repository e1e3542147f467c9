"""Evaluation of one model over a channel, streamed, under the guide's metric names and today's.

Declarations (names, log keys, directions) live in ``DECLARED``; the accumulators are numpy only.
"""

import numpy as np

# (metric key as logged, other names it is published under, direction) per predictor type.
DECLARED = {
    "binary_classifier": (
        ("objective_loss", ("objective",), "Minimize"),
        ("binary_classification_accuracy", ("binary_classifier_accuracy",), "Maximize"),
        ("binary_f_beta", (), "Maximize"),
        ("precision", (), "Maximize"),
        ("recall", (), "Maximize"),
        ("roc_auc_score", (), "Maximize"),
        ("binary_classification_cross_entropy", (), "Minimize"),
    ),
    "multiclass_classifier": (
        ("objective_loss", ("objective",), "Minimize"),
        ("multiclass_accuracy", (), "Maximize"),
        ("multiclass_top_k_accuracy", (), "Maximize"),
        ("multiclass_balanced_accuracy", (), "Maximize"),
        ("macro_precision", (), "Maximize"),
        ("macro_recall", (), "Maximize"),
        ("macro_f_beta", (), "Maximize"),
        ("multiclass_log_loss", (), "Minimize"),
        ("dcg", (), "Maximize"),
    ),
    "regressor": (
        ("objective_loss", ("objective",), "Minimize"),
        ("mse", (), "Minimize"),
        ("rmse", (), "Minimize"),
        ("absolute_loss", (), "Minimize"),
        ("r2", (), "Maximize"),
    ),
}
AUC_MAX_ROWS = 10_000_000  # ROC AUC keeps (score, label) pairs; beyond this many rows it uses the first ones


def roc_auc(scores, labels):
    """Area under the ROC curve with ties counted half (the Mann-Whitney statistic)."""
    labels = labels.astype(bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), np.float64)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


class Evaluator:
    """Accumulates one model's predictions against labels, batch by batch."""

    def __init__(self, model, objective, f_beta=1.0, top_k=3):
        self.model = model
        self.objective = objective  # (raw scores, labels) -> per-row loss, in label units
        self.f_beta = f_beta
        self.top_k = top_k
        self.n = 0
        self.loss = 0.0
        self.sq = self.abs = self.y = self.y2 = 0.0
        self.tp = self.fp = self.fn = 0.0
        self.ce = 0.0
        self.scores, self.labels = [], []
        self.kept = 0
        if model.predictor_type == "multiclass_classifier":
            c = model.outputs
            self.class_tp, self.class_pred, self.class_true = np.zeros(c), np.zeros(c), np.zeros(c)
            self.correct = self.top_correct = self.dcg = self.logloss = 0.0

    def add(self, features, labels):
        raw = self.model.raw_scores(features)
        y = np.asarray(labels, np.float64).reshape(len(labels), -1)[:, 0]
        self.n += len(y)
        self.loss += float(self.objective(raw, y).sum())
        kind = self.model.predictor_type
        if kind == "regressor":
            r = raw[:, 0].astype(np.float64) - y
            self.sq += float(r @ r)
            self.abs += float(np.abs(r).sum())
            self.y += float(y.sum())
            self.y2 += float(y @ y)
        elif kind == "binary_classifier":
            out = self.model.outputs_of(raw)
            predicted = out["predicted_label"].astype(bool)
            truth = y > 0.5
            self.tp += float((predicted & truth).sum())
            self.fp += float((predicted & ~truth).sum())
            self.fn += float((~predicted & truth).sum())
            p = np.clip(1.0 / (1.0 + np.exp(-raw[:, 0].astype(np.float64))), 1e-15, 1 - 1e-15)
            self.ce -= float((truth * np.log(p) + (~truth) * np.log(1 - p)).sum())
            if self.kept < AUC_MAX_ROWS:
                take = min(len(y), AUC_MAX_ROWS - self.kept)
                self.scores.append(raw[:take, 0].copy())
                self.labels.append(truth[:take])
                self.kept += take
        else:
            y = y.astype(np.int64)
            raw = raw.astype(np.float64)
            predicted = raw.argmax(1)
            c = raw.shape[1]
            self.correct += float((predicted == y).sum())
            true_score = raw[np.arange(len(y)), y]
            rank = (raw > true_score[:, None]).sum(1)  # 0 = top
            self.top_correct += float((rank < self.top_k).sum())
            self.dcg += float((1.0 / np.log2(rank + 2.0)).sum())
            shifted = raw - raw.max(1, keepdims=True)
            self.logloss -= float((shifted[np.arange(len(y)), y] - np.log(np.exp(shifted).sum(1))).sum())
            self.class_tp += np.bincount(y[predicted == y], minlength=c)[:c]
            self.class_pred += np.bincount(predicted, minlength=c)[:c]
            self.class_true += np.bincount(y, minlength=c)[:c]

    def result(self):
        n = max(self.n, 1)
        out = {"objective_loss": self.loss / n}
        kind = self.model.predictor_type
        if kind == "regressor":
            mse = self.sq / n
            var = self.y2 / n - (self.y / n) ** 2
            out.update(mse=mse, rmse=mse ** 0.5, absolute_loss=self.abs / n, r2=1 - mse / var if var > 0 else 0.0)
        elif kind == "binary_classifier":
            tn = self.n - self.tp - self.fp - self.fn
            precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
            recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
            b2 = self.f_beta ** 2
            denominator = (1 + b2) * self.tp + b2 * self.fn + self.fp
            scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
            labels = np.concatenate(self.labels) if self.labels else np.zeros(0, bool)
            out.update(binary_classification_accuracy=(self.tp + tn) / n,
                       binary_f_beta=(1 + b2) * self.tp / denominator if denominator else 0.0,
                       precision=precision, recall=recall, roc_auc_score=roc_auc(scores, labels),
                       binary_classification_cross_entropy=self.ce / n)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                precision = np.where(self.class_pred > 0, self.class_tp / self.class_pred, 0.0)
                recall = np.where(self.class_true > 0, self.class_tp / self.class_true, 0.0)
                b2 = self.f_beta ** 2
                f = np.where(precision + recall > 0, (1 + b2) * precision * recall / (b2 * precision + recall), 0.0)
            present = self.class_true > 0
            out.update(multiclass_accuracy=self.correct / n, multiclass_top_k_accuracy=self.top_correct / n,
                       multiclass_balanced_accuracy=float(recall[present].mean()) if present.any() else 0.0,
                       macro_precision=float(precision.mean()), macro_recall=float(recall.mean()),
                       macro_f_beta=float(f.mean()), multiclass_log_loss=self.logloss / n, dcg=self.dcg / n)
        return out
