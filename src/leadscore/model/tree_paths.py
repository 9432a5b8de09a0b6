"""Exact TreeSHAP values of a LightGBM model at a small multiple of a prediction's cost.

LightGBM's `pred_contrib` runs path-dependent TreeSHAP for every row and every tree: its cost grows with
the leaves times the square of the depth, 30 to 200 times a prediction on lead-scoring models. Yet a
tree's TreeSHAP values for a row depend on the row only through the direction it takes at each of the
tree's splits (the algorithm reads a feature value nowhere else: a split on a feature in the coalition
follows the row, any other split averages both children by their training counts). Rows that take the same
directions at every split of a tree therefore get exactly the same values from that tree.

So, per tree, the rows are grouped by their directions, LightGBM's own `pred_contrib` is asked for the
tree's values (`start_iteration=t, num_iteration=1`) of one row per group, and every row takes its group's
values. The sum over the trees is LightGBM's TreeSHAP, to float rounding (the same per-tree values, added
in the same order); a test checks it against `pred_contrib` on the whole model, with missing values,
zeros, unseen categories and values on the thresholds.

The directions are found from the split points in `Booster.dump_model()`:
- a numeric feature's value is placed once among all the thresholds any tree uses for it (`searchsorted`);
  a tree's directions for it follow from that place alone (`value <= threshold` goes left). Missing values
  and zeros, which LightGBM may route by a split's missing-value rule rather than by the threshold, each
  form a group of their own, so that rule never needs to be known here;
- a categorical feature's code is grouped by the set of the tree's category lists it belongs to; missing
  codes and codes above every listed one form groups of their own.
A group of its own is always safe (at worst one more representative row); only putting rows of different
directions together would be wrong, and it happens nowhere above.

Cost per tree: a few integer operations per row and feature the tree splits on, and TreeSHAP for one row
per group (there are at most as many groups as combinations of directions, usually far fewer than rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

# Up to this many possible combinations of directions a tree's groups are numbered through a table (linear
# time); beyond it, by sorting.
_DENSE_CODES = 1 << 22
# LightGBM reads a value this close to 0 as 0 (its kZeroThreshold, a float32 1e-35), and a split may route 0
# as missing: such values get a group of their own.
_ZERO = float(np.float32(1e-35))


@dataclass(frozen=True)
class _FeatureBins:
    """Where a feature's values fall among the split points of every tree (one integer per row)."""

    categorical: bool
    cuts: np.ndarray  # numeric: every threshold of any tree, sorted; categorical: unused

    @property
    def size(self) -> int:
        """How many bins: numeric intervals + missing + zero; categorical codes + above + missing."""
        return len(self.cuts) + 3

    def bins(self, values: np.ndarray) -> np.ndarray:
        n_cuts = len(self.cuts)
        if self.categorical:
            # cuts holds 0..K-1, the codes named by some split: K is "a code above those", K+1 missing.
            codes = np.where(np.isnan(values), -1, values).astype(np.int64)
            out = np.where((codes >= 0) & (codes < n_cuts), codes, n_cuts)
            out[codes < 0] = n_cuts + 1
            return out
        out = np.searchsorted(self.cuts, values, side="left")  # x <= cuts[k] exactly when out <= k
        out[np.abs(values) <= _ZERO] = n_cuts + 2
        out[np.isnan(values)] = n_cuts + 1
        return out


@dataclass(frozen=True)
class _TreeGroups:
    """One tree: the features it splits on and, for each, the group of every bin."""

    features: np.ndarray  # feature positions
    group_of_bin: tuple[np.ndarray, ...]  # per feature: bin -> group number 0..groups-1
    groups: tuple[int, ...]  # per feature: how many groups


class TreePathExplainer:
    """Exact TreeSHAP values of a fitted LightGBM booster, computed per group of rows (see the module docstring)."""

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster
        trees = [_splits(info["tree_structure"]) for info in booster.dump_model()["tree_info"]]
        categorical = {feature for tree in trees for feature, _, codes in tree if codes is not None}
        self._bins: dict[int, _FeatureBins] = {}
        for feature in sorted({feature for tree in trees for feature, _, _ in tree}):
            if feature in categorical:
                top = max(max(codes) for tree in trees for f, _, codes in tree if f == feature)
                self._bins[feature] = _FeatureBins(True, np.arange(top + 1, dtype="float64"))
            else:
                cuts = np.unique([t for tree in trees for f, t, _ in tree if f == feature])
                self._bins[feature] = _FeatureBins(False, cuts)
        self._trees = [self._tree_groups(tree) for tree in trees]
        self.n_features = booster.num_feature()

    def _tree_groups(self, splits: list[tuple[int, float | None, frozenset[int] | None]]) -> _TreeGroups:
        features = sorted({feature for feature, _, _ in splits})
        group_of_bin, groups = [], []
        for feature in features:
            bins = self._bins[feature]
            n_cuts = len(bins.cuts)
            if bins.categorical:
                lists = [codes for f, _, codes in splits if f == feature]
                member = np.array([[code in codes for codes in lists] for code in range(n_cuts)], dtype=bool)
                _, ordinary = np.unique(member.reshape(n_cuts, -1), axis=0, return_inverse=True)
            else:
                places = np.unique(np.searchsorted(bins.cuts, [t for f, t, _ in splits if f == feature]))
                # An interval's directions are fixed by how many of this tree's thresholds lie below it.
                ordinary = np.searchsorted(places, np.arange(n_cuts + 1), side="left")
            ordinary = np.asarray(ordinary, dtype=np.int64).ravel()
            top = int(ordinary.max()) + 1 if len(ordinary) else 0
            # The remaining bins (missing, zero, codes above the lists) are groups of their own.
            extra = np.arange(top, top + bins.size - len(ordinary), dtype=np.int64)
            group_of_bin.append(np.concatenate([ordinary, extra]))
            groups.append(top + len(extra))
        return _TreeGroups(np.asarray(features, dtype=np.int64), tuple(group_of_bin), tuple(groups))

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """TreeSHAP values of the rows of `matrix` (LightGBM's numeric input: category codes, NaN missing):
        rows x (features + 1), the last column the base value, as `pred_contrib` returns them."""
        matrix = np.ascontiguousarray(matrix, dtype="float64")
        n = len(matrix)
        # Feature by feature (the transpose of the result): each tree adds a contiguous row per feature it uses.
        out = np.zeros((self.n_features + 1, n))
        if n == 0:
            return out.T
        bins = {feature: spec.bins(matrix[:, feature]) for feature, spec in self._bins.items()}
        for t, tree in enumerate(self._trees):
            slot, representatives = _groups(tree, bins, n)
            values = self.booster.predict(matrix[representatives], pred_contrib=True, start_iteration=t, num_iteration=1,
                                          num_threads=1)
            for feature in tree.features:
                out[feature] += values[:, feature][slot]
            out[-1] += values[0, -1]  # a tree's base value is the same for every row
        return out.T


def frame_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The numeric matrix LightGBM reads from an encoded frame: floats as they are, categoricals as their
    codes (missing: NaN). The frame's categoricals carry the training categories (`FrameEncoder`), so the
    codes are the ones the booster was trained on."""
    columns = []
    for _, values in frame.items():
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy().astype("float64")
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(values.to_numpy(dtype="float64", na_value=np.nan))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def _groups(tree: _TreeGroups, bins: dict[int, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group number (0..k-1) in one tree, and one row of each group."""
    code = np.zeros(n, dtype=np.int64)
    space = 1
    for feature, group_of_bin, groups in zip(tree.features, tree.group_of_bin, tree.groups):
        code = code * groups + group_of_bin[bins[int(feature)]]
        space *= groups
        if space > _DENSE_CODES:
            _, code = np.unique(code, return_inverse=True)
            space = int(code.max()) + 1
    if space <= _DENSE_CODES:
        present = np.zeros(space, dtype=bool)
        present[code] = True
        used = np.flatnonzero(present)
        number = np.empty(space, dtype=np.int64)
        number[used] = np.arange(len(used))
        representative = np.empty(space, dtype=np.int64)
        representative[code] = np.arange(n)  # any row of a group will do: all get the same values
        return number[code], representative[used]
    _, first, slot = np.unique(code, return_index=True, return_inverse=True)
    return slot.ravel(), first


def _splits(node: dict) -> list[tuple[int, float | None, frozenset[int] | None]]:
    """Every split of a dumped tree: (feature, numeric threshold, or the category codes sent left)."""
    if "split_feature" not in node:
        return []
    feature = int(node["split_feature"])
    if node["decision_type"] == "==":
        split = (feature, None, frozenset(int(code) for code in str(node["threshold"]).split("||")))
    else:
        split = (feature, float(node["threshold"]), None)
    return [split, *_splits(node["left_child"]), *_splits(node["right_child"])]
