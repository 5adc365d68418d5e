"""Part discovery against ground-truth parts, as SCOPS (Hung et al., 2019) and Choudhury et al.
(2021) score it: NMI and ARI between predicted part ids and true part labels, plus the mean IoU
of predicted parts matched one-to-one to true parts (Hungarian). Pure numpy/scipy on flat
integer label arrays (one entry per scored patch, pooled over images)."""
from typing import Dict

import numpy as np
from scipy.optimize import linear_sum_assignment


def contingency(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(M,) true labels, (M,) predicted ids (non-negative ints) -> (T, P) co-occurrence counts
    over the labels that occur (empty rows/columns dropped)."""
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(truth: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mutual information, MI / ((H(truth) + H(pred)) / 2) (the arithmetic mean, as
    scikit-learn's default); 1 when one labelling determines the other, ~0 when independent.
    Two single-cluster labellings score 1."""
    table = contingency(truth, pred)
    n = table.sum()
    h_t, h_p = _entropy(table.sum(1)), _entropy(table.sum(0))
    if h_t == 0 and h_p == 0:
        return 1.0
    joint = table[table > 0] / n
    outer = np.outer(table.sum(1), table.sum(0))[table > 0] / n ** 2
    mi = float((joint * np.log(joint / outer)).sum())
    return mi / ((h_t + h_p) / 2)


def ari(truth: np.ndarray, pred: np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie, 1985): pair-counting agreement corrected for
    chance; 1 for identical partitions, ~0 for random ones (can be negative)."""
    table = contingency(truth, pred)
    n = table.sum()

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index = pairs(table)
    rows, cols = pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    top = (rows + cols) / 2
    if top == expected:
        return 1.0
    return float((index - expected) / (top - expected))


def matched_miou(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the true parts of the IoU with the predicted part assigned to each by a
    one-to-one Hungarian matching that maximises the total IoU; a true part left without a
    predicted one (fewer predicted than true parts) scores 0."""
    table = contingency(truth, pred).astype(np.float64)
    union = table.sum(1, keepdims=True) + table.sum(0, keepdims=True) - table
    iou = table / union
    rows, cols = linear_sum_assignment(-iou)
    return float(iou[rows, cols].sum() / table.shape[0])


def part_scores(truth: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """dict(nmi, ari, miou) of two flat labellings of the same patches."""
    truth, pred = np.asarray(truth).ravel(), np.asarray(pred).ravel()
    if truth.shape != pred.shape or truth.size < 2:
        raise ValueError(f'need two labellings of the same >= 2 patches, got {truth.shape} and '
                         f'{pred.shape}')
    return dict(nmi=nmi(truth, pred), ari=ari(truth, pred), miou=matched_miou(truth, pred))
