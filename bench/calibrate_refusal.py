"""Fit the answer / refuse model (rag/answering/relevance.py) and report its curve.

For every question of the fit sets (bench/answer_sets.py: SciFact claims, SQuAD questions on some
articles with adversarial and out-of-corpus ones, the default article's dev questions and
off-topic questions) it computes the decision's features through rag's own pipeline, fits a
logistic regression (scikit-learn) on standardised features, each set weighing equally and,
within a set, answerable and unanswerable weighing equally, and prints:

- the coefficients to paste into relevance.py;
- leave-one-set-out balanced accuracy (fitted on the other sets, checked on the one left out);
- the curve: share answered / refused on every fit and held-out set at several operating points;
- the naive baseline's cosine threshold (best balanced accuracy on the fit sets), which
  answer_bench.py reads from ``calibration.json``.

    RAG_THREADS=1 HF_HUB_OFFLINE=1 python bench/calibrate_refusal.py [--fit-second]

``--fit-second`` also fits on the second paraphrase set (the experiment bench/README.md reports;
the shipped model is fitted without it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answer_sets import WORK, Case, build_indexes, fit_sets, held_out_sets  # noqa: E402

from rag import load_settings  # noqa: E402
from rag.answering import judge  # noqa: E402
from rag.answering.relevance import Features  # noqa: E402
from rag.retriever import get_retriever  # noqa: E402

OPERATING_POINTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
FEATURE_NAMES = list(Features.__dataclass_fields__)


def case_features(case: Case, settings) -> tuple[list[float] | None, float]:
    """(features or None when nothing was retrieved, best sentence cosine) of one question."""
    retriever = get_retriever(case.index, settings)
    judgement = judge(case.question, retriever, settings, retriever.snapshot(), history=case.history)
    if judgement.features is None:
        return None, -1.0
    return judgement.features.vector(), judgement.evidence[0].cosine


def weights(labels: np.ndarray, set_ids: np.ndarray) -> np.ndarray:
    """Each set weighs 1, split equally between its answerable and unanswerable questions."""
    w = np.zeros(len(labels))
    for s in np.unique(set_ids):
        for label in (0, 1):
            mask = (set_ids == s) & (labels == label)
            if mask.any():
                w[mask] = 1.0 / mask.sum()
        if not ((set_ids == s) & (labels == 0)).any() or not ((set_ids == s) & (labels == 1)).any():
            w[set_ids == s] *= 2.0
    return w


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y, sample_weight=w)
    return mean, scale, model


def predict(x: np.ndarray, fitted) -> np.ndarray:
    mean, scale, model = fitted
    return model.predict_proba((x - mean) / scale)[:, 1]


def balanced(p: np.ndarray, y: np.ndarray, threshold: float) -> float:
    parts = []
    if (y == 1).any():
        parts.append(float((p[y == 1] >= threshold).mean()))
    if (y == 0).any():
        parts.append(float((p[y == 0] < threshold).mean()))
    return sum(parts) / len(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-second", action="store_true", help="fit on the second paraphrase set too")
    args = parser.parse_args()
    settings = load_settings()
    indexes = build_indexes(settings)
    print(f"threads={settings.threads} load average={'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    sets = {**{f"fit: {k}": v for k, v in fit_sets(indexes).items()},
            **{f"held-out: {k}": v for k, v in held_out_sets(indexes).items()}}
    rows = {}
    for name, cases in sets.items():
        found = [(case_features(c, settings), c) for c in cases]
        kept = [(f, cos, c) for (f, cos), c in found if f is not None]
        rows[name] = (np.array([f for f, _, _ in kept]), np.array([cos for _, cos, _ in kept]),
                      np.array([int(c.answerable) for _, _, c in kept]), len(found) - len(kept),
                      np.array([c.kind in ("absent", "off-topic") for _, _, c in kept]))
        print(f"{name}: {len(cases)} questions", flush=True)

    fit_names = [n for n in rows if n.startswith("fit: ") or (args.fit_second and "second" in n)]
    x = np.vstack([rows[n][0] for n in fit_names])
    y = np.concatenate([rows[n][2] for n in fit_names])
    set_ids = np.concatenate([[i] * len(rows[n][2]) for i, n in enumerate(fit_names)])
    w = weights(y, set_ids)
    fitted = fit(x, y, w)
    mean, scale, model = fitted
    print("\nFEATURE_MEANS =", tuple(round(float(v), 4) for v in mean))
    print("FEATURE_SCALES =", tuple(round(float(v), 4) for v in scale))
    print("COEFFICIENTS =", tuple(round(float(v), 4) for v in model.coef_[0]))
    print("INTERCEPT =", round(float(model.intercept_[0]), 4))
    for name, coef in zip(FEATURE_NAMES, model.coef_[0]):
        print(f"  {name:>20}: {coef:+.3f} per standard deviation")

    print("\nLeave one fit set out (fitted on the others, balanced accuracy at 0.5 on the one left out):")
    for i, name in enumerate(fit_names):
        mask = set_ids != i
        partial = fit(x[mask], y[mask], weights(y[mask], set_ids[mask]))
        print(f"  {name}: {balanced(predict(rows[name][0], partial), rows[name][2], 0.5):.3f}")

    # Naive baseline: the best sentence's cosine alone, threshold of best balanced accuracy.
    cosines = np.concatenate([rows[n][1] for n in fit_names])
    candidates = np.unique(np.round(cosines, 3))
    def weighted_balance(t: float) -> float:
        return float(np.mean([balanced(rows[n][1], rows[n][2], t) for n in fit_names]))
    naive_threshold = float(max(candidates, key=weighted_balance))
    print(f"\nnaive baseline (best sentence cosine) threshold {naive_threshold:.3f}")

    print("\nCurve: answerable answered / unanswerable refused, by operating point (min_relevance)")
    print("set".ljust(44) + "".join(f"{t:>14}" for t in OPERATING_POINTS))
    for name, (features, _, labels, _, _) in rows.items():
        p = predict(features, fitted)
        cells = []
        for t in OPERATING_POINTS:
            answered = f"{(p[labels == 1] >= t).mean():.2f}" if (labels == 1).any() else "  - "
            refused = f"{(p[labels == 0] < t).mean():.2f}" if (labels == 0).any() else "  - "
            cells.append(f"{answered}/{refused}".rjust(14))
        print(name[:43].ljust(44) + "".join(cells))
    fine = [round(0.3 + 0.025 * i, 3) for i in range(13)]
    print("\nMean balanced accuracy over the fit sets, and out-of-corpus refused on them (min 0.95):")
    for t in fine:
        accuracy = np.mean([balanced(predict(rows[n][0], fitted), rows[n][2], t) for n in fit_names])
        outside = np.concatenate([predict(rows[n][0], fitted)[rows[n][4]] for n in fit_names])
        print(f"  {t:.3f}: {accuracy:.3f}  out-of-corpus refused {(outside < t).mean():.3f}")
    if not args.fit_second:  # the baseline answer_bench.py runs is fitted on the fit sets only
        (WORK / "calibration.json").write_text(json.dumps({"naive_cosine_threshold": naive_threshold}))


if __name__ == "__main__":
    main()
