"""Decision thresholds of binary classifiers, for all models at once, by the selection criterion.

For each model, sort its (raw score, label) pairs once; predicting "positive" for the top k scores gives the
confusion counts of every threshold by cumulative sums. The threshold is the midpoint between the k-th and
(k+1)-th score of the best k (only where those differ); a record is positive when its score > threshold.
"""

import numpy as np
import torch

CRITERIA = ("accuracy", "f_beta", "precision_at_target_recall", "recall_at_target_precision")


def criterion_curves(tp, fp, positives, negatives, criterion, f_beta=1.0, target_precision=0.8,
                     target_recall=0.8):
    """The criterion's value at every cut (k = 0..N predicted positive), higher is better."""
    k = tp + fp
    precision = torch.where(k > 0, tp / k.clamp_min(1e-12), torch.ones_like(tp))
    recall = tp / max(positives, 1e-12)
    if criterion == "accuracy":
        return (tp + negatives - fp) / max(positives + negatives, 1e-12)
    if criterion == "f_beta":
        b2 = f_beta * f_beta
        return (1 + b2) * tp / (b2 * positives + k).clamp_min(1e-12)
    if criterion == "precision_at_target_recall":
        return torch.where(recall >= target_recall - 1e-12, precision, torch.full_like(precision, -1.0))
    if criterion == "recall_at_target_precision":
        return torch.where((precision >= target_precision - 1e-12) & (k > 0), recall, torch.full_like(recall, -1.0))
    raise ValueError(criterion)


def calibrate(scores, labels, weights, criterion, **params):
    """Thresholds (M,) and criterion values (M,) of raw ``scores`` (N, M) against 0/1 ``labels`` (N,).

    Works on the (M, N) transpose so that each model's sort and cumulative sums run over contiguous memory.
    """
    n, m = scores.shape
    columns = scores.t().contiguous()
    if columns.device.type == "cpu":  # numpy's SIMD sort is ~2x torch's on CPU
        order = torch.from_numpy(np.argsort(-columns.numpy(), axis=1))
        s = columns.gather(1, order)
    else:
        s, order = torch.sort(columns, dim=1, descending=True)
    yw = (labels.to(torch.float64) * weights.to(torch.float64))[order]
    w = weights.to(torch.float64)[order]
    zero = torch.zeros(m, 1, dtype=torch.float64, device=scores.device)
    tp = torch.cat([zero, torch.cumsum(yw, 1)], dim=1)
    fp = torch.cat([zero, torch.cumsum(w, 1)], dim=1) - tp
    positives, negatives = float(tp[0, -1]), float(fp[0, -1])
    values = criterion_curves(tp, fp, positives, negatives, criterion, **params)
    # a cut between positions k-1 and k exists only where the scores differ there (k = 0 and N always do)
    if n > 1:
        tied = torch.zeros(m, n + 1, dtype=torch.bool, device=scores.device)
        tied[:, 1:n] = s[:, :-1] <= s[:, 1:]
        values = values.masked_fill(tied, -2.0)
    best_value, best_k = values.max(1)
    s64 = s.to(torch.float64)
    above = torch.cat([s64[:, :1] + 1.0, s64], dim=1)  # the score just above cut k (column k)
    below = torch.cat([s64, s64[:, -1:] - 1.0], dim=1)
    idx = best_k.view(-1, 1)
    thresholds = (above.gather(1, idx) + below.gather(1, idx)).view(-1) / 2
    return thresholds, best_value
