"""Plain-language reasons: the strongest fields of each lead, as text filled with the lead's own values.

A template is a Python format string with these placeholders:
- `{field}`: the field's readable name ("Company size");
- `{value}`: the lead's value of the field (for an activity signal: its count);
- `{count}`, `{days_since}`, `{decayed}`: an activity signal's three values.
A field combined from several columns (`reasons.combine`) has no single value: only `{field}`.
Besides the usual format specs (`{value:.1f}`), three specs read numbers as words:
- `{days_since:ago}`: "today", "yesterday", "3 days ago", "5 weeks ago", "4 months ago", "2 years ago";
- `{value:days}`: the same without "ago" ("less than a day", "1 day", "3 days", ...);
- `{count:times}`: "once", "twice", "3 times".
A missing value reads "unknown"; a template's `values` words replace raw values ("999" -> "never").
Numbers without a spec show as integers when whole, else with three significant digits.

Raw codes read as words where no template was written for them (`readable_code`): a value that is one
token of letters and digits joined by `_`, or by two or more `-` (`abm_2025q3`, `paid-social-q3`), shows
with spaces ("Campaign: abm 2025q3"); a single hyphen is kept ("1-10", "mid-market"). Field names read
the same way, capitalised ("lead_source" -> "Lead source"). A field's own template (`reasons.templates`)
overrides the fallback: its `{value}` is the raw value, or its `values` word. The JSON `value` is always
the raw value.

Every text ends with its points in brackets, rounded to one decimal: "Requested a demo 3 days ago
(+18.3)", "Company size: 201+ (+5)" (a whole number without ".0"). The JSON `points` of the same reason
is that same number (18.3, 5): what a reader sees in the text is what a program reads from the JSON.
The exact contributions are what `LeadScorer.explain` returns. Fields whose points round to 0.0 are
not reasons. A text longer than the configured limit is cut at the end of its words part with "…", so
the points always show.

Text is built for a whole batch at once: each template is filled once per distinct value (not once
per lead) and the pieces are joined with Arrow's vectorised string kernels, because explanations
sit on the scoring path and must not cost more than the contributions they explain.
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

PLACEHOLDERS = ("field", "value", "count", "days_since", "decayed")
SIGNAL_PARTS = ("count", "days_since", "decayed")
COLUMN, SIGNAL, COMBINED = "column", "signal", "combined"  # the kinds of reason field
REASONS_COLUMN = "reasons"
ELLIPSIS = "…"

DEFAULT_TEXTS = {
    "column": ("{field}: {value}", "{field}: {value}", "{field} unknown"),
    "signal": ("{field}: {count:times}, most recently {days_since:ago}",) * 2 + ("{field}: none so far",),
    "combined": ("{field}",) * 3,
}
_POSITIVE, _NEGATIVE, _MISSING = 0, 1, 2


@dataclass(frozen=True)
class Templates:
    """The texts of one field: when it raises the score, lowers it, or its value is missing."""

    positive: str
    negative: str
    missing: str
    words: dict[str, str] = field(default_factory=dict)

    def by_variant(self) -> tuple[str, str, str]:
        return self.positive, self.negative, self.missing


@dataclass(frozen=True)
class ReasonField:
    """One reason: a feature column, an activity signal whose three columns count as one, or columns
    combined by the config."""

    name: str
    dimension: str
    columns: tuple[str, ...]
    templates: Templates
    kind: str = COLUMN

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The value placeholders its templates may use (besides `{field}`)."""
        return {COLUMN: ("value",), SIGNAL: ("value", *SIGNAL_PARTS), COMBINED: ()}[self.kind]

    @property
    def label(self) -> str:
        """A readable name: `company_size` -> "Company size", `emp.var.rate` -> "Emp var rate"."""
        text = readable_code(self.name.replace(".", "_")).strip()
        return text[:1].upper() + text[1:]

    def column_of(self, placeholder: str) -> str:
        """The feature column that holds a placeholder's value."""
        if self.kind != SIGNAL:
            return self.columns[0]
        part = "count" if placeholder == "value" else placeholder
        return f"{self.name}_{part}"


# One token of letters and digits joined by `_` or `-`, with at least one letter.
_CODE = re.compile(r"[A-Za-z0-9]+(?:[_-]+[A-Za-z0-9]+)+")


def readable_code(text: str) -> str:
    """A raw code as words: `abm_2025q3` -> "abm 2025q3", `paid-social-q3` -> "paid social q3".

    A text is a code when it is one token of letters and digits joined by `_` (any number) or by two or
    more `-`, with a letter in it. A single hyphen is left alone, as it joins words ("mid-market") or
    numbers ("1-10"), and so are dates and numbers. Underscores elsewhere read as spaces too
    ("New York_office" -> "New York office"): no prose uses them."""
    if _CODE.fullmatch(text) and any(c.isalpha() for c in text) and ("_" in text or text.count("-") >= 2):
        return " ".join(part for part in re.split(r"[_-]+", text) if part)
    return " ".join(text.replace("_", " ").split()) if "_" in text else text


def template_placeholders(template: str) -> list[tuple[str, str]]:
    """The (name, format spec) of every placeholder in a template; raises ValueError on bad syntax."""
    return [(name, spec or "") for _, name, spec, _ in string.Formatter().parse(template) if name is not None]


def check_template(template: str, *, placeholders: tuple[str, ...], where: str) -> None:
    """Raise ValueError naming `where` when a template uses more than `{field}` and `placeholders`."""
    allowed = {"field", *placeholders}
    try:
        used = template_placeholders(template)
    except ValueError as exc:
        raise ValueError(f"{where}: {template!r} is not a valid template ({exc})") from None
    unknown = sorted({name for name, _ in used} - allowed)
    if unknown:
        raise ValueError(f"{where}: {template!r} uses {unknown}; this field offers {sorted(allowed)}")
    sample = {"field": "Field", "value": 3.0, "count": 3.0, "days_since": 3.0, "decayed": 3.0}
    try:
        render(template, sample)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {template!r} cannot format a number ({exc})") from None


@dataclass
class ReasonWriter:
    """Selects each lead's strongest reasons and writes them as JSON and as short text columns.

    Per lead, the `top_k` fields with the most positive points and the `top_k` with the most negative
    points are selected and ordered by the size of their points. `reasons` holds all of them as a JSON
    list of {field, dimension, value, points, text}; `reason_1` ... `reason_k` hold the texts of the
    first `top_k` (missing when a lead has fewer reasons).
    """

    fields: list[ReasonField]
    top_k: int
    max_chars: int

    @property
    def output_columns(self) -> list[str]:
        return [REASONS_COLUMN, *(f"reason_{i}" for i in range(1, self.top_k + 1))]

    def write(self, frame: pd.DataFrame, points: np.ndarray) -> pd.DataFrame:
        """Reason columns for `frame` (raw feature values) given each field's points (rows x fields)."""
        n = len(frame)
        fields_grid, points_grid, valid = select_reasons(points, self.top_k)
        rows, slots = np.nonzero(valid)
        chosen, chosen_points = fields_grid[valid], points_grid[valid]
        texts = _Texts()
        body_ids = np.empty(len(rows), dtype=np.int64)
        value_parts, value_positions = [], []
        for index in np.unique(chosen):
            at = np.flatnonzero(chosen == index)
            spec = self.fields[index]
            values = _field_values(frame, spec, rows[at])
            body_ids[at] = _fill_templates(spec, values, chosen_points[at], texts)
            value_parts.append(_value_json(spec, values))
            value_positions.append(at)
        suffix, suffix_ids, suffix_length = _points_suffixes(chosen_points)
        body_ids = texts.fit(body_ids, self.max_chars - suffix_length)
        plain, escaped = texts.arrays()

        body = plain.take(pa.array(body_ids))
        text = pc.binary_join_element_wise(body, suffix.take(pa.array(suffix_ids)), "")
        fragment = pc.binary_join_element_wise(
            _field_prefixes(self.fields).take(pa.array(chosen)),
            _in_pair_order(value_parts, value_positions, len(rows)),
            ',"points":', pc.cast(pa.array(shown_points(chosen_points)), pa.string()),
            ',"text":"', escaped.take(pa.array(body_ids)), suffix.take(pa.array(suffix_ids)), '"}', "",
        )
        grid = np.full(valid.shape, -1, dtype=np.int64)
        grid[rows, slots] = np.arange(len(rows))
        columns = {REASONS_COLUMN: _json_lists(fragment, grid)}
        for i in range(self.top_k):
            columns[f"reason_{i + 1}"] = _text_column(_take(text, grid[:, i]))
        return pd.DataFrame(columns, index=pd.RangeIndex(n))


def select_reasons(points: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the top_k most positive and top_k most negative fields, by size of points.

    Returns field indices, points and a validity mask, each rows x 2 top_k; valid entries come
    first in every row, largest |points| first (ties: positive before negative, then field order).
    A field is a reason only when its points show as at least 0.1.
    """
    k = min(top_k, points.shape[1])
    candidates = np.concatenate([
        np.argsort(-points, axis=1, kind="stable")[:, :k],
        np.argsort(points, axis=1, kind="stable")[:, :k],
    ], axis=1)
    chosen = np.take_along_axis(points, candidates, axis=1)
    shown = shown_points(chosen)
    valid = np.concatenate([shown[:, :k] >= 0.1, shown[:, k:] <= -0.1], axis=1)
    order = np.argsort(np.where(valid, -np.abs(chosen), np.inf), axis=1, kind="stable")
    pad = 2 * top_k - 2 * k  # fewer fields than reasons asked for: pad with empty slots
    grids = [np.take_along_axis(a, order, axis=1) for a in (candidates, chosen, valid)]
    if pad:
        grids = [np.pad(g, ((0, 0), (0, pad))) for g in grids]
    return grids[0], grids[1], grids[2].astype(bool)


# ---------------------------------------------------------------------------------------------
# Filling templates
# ---------------------------------------------------------------------------------------------


class _Shown:
    """A value as a template shows it: `str.format` calls `__format__` with the placeholder's spec."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __format__(self, spec: str) -> str:
        value = self.value
        if isinstance(value, str):
            return value
        if value is None or math.isnan(value):
            return "unknown"
        if spec in ("ago", "days"):
            return _days(value, ago=spec == "ago")
        if spec == "times":
            count = int(round(value))
            return {1: "once", 2: "twice"}.get(count, f"{count} times")
        return format(value, spec) if spec else format_number(value)


def render(template: str, values: dict) -> str:
    """Fill a template with one lead's values (strings, floats, or None for missing)."""
    return template.format_map({name: _Shown(value) for name, value in values.items()})


def format_number(value: float) -> str:
    """Whole numbers without decimals, others with three significant digits (large ones rounded)."""
    if value.is_integer():
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


# Durations read in days below two weeks, then weeks below 60 days, months below two years, then years.
_DAY_UNITS = ((14, 1, "day"), (60, 7, "week"), (730, 30, "month"), (math.inf, 365, "year"))


def _days(days: float, *, ago: bool) -> str:
    whole = math.floor(days)
    if whole < 0:
        return format_number(days)
    if whole < 1:
        return "today" if ago else "less than a day"
    if whole < 2 and ago:
        return "yesterday"
    size, name = next((size, name) for below, size, name in _DAY_UNITS if whole < below)
    count = whole // size
    text = f"{count} {name}{'s' if count != 1 else ''}"
    return f"{text} ago" if ago else text


def _day_buckets(days: np.ndarray) -> np.ndarray:
    """Durations reduced to the unit `_days` shows them in: same text, far fewer distinct values."""
    whole = np.floor(days)
    size = np.select([whole < below for below, _, _ in _DAY_UNITS], [size for _, size, _ in _DAY_UNITS])
    return np.where(whole < 0, days, np.floor(whole / size) * size)


def _quantise(values: np.ndarray, specs: set[str]) -> np.ndarray:
    """Values reduced to what their specs show, so that one text serves many leads."""
    if specs <= {"ago", "days"}:
        return _day_buckets(values)
    if specs == {"times"}:
        return np.round(values)
    if specs == {""}:  # as `format_number` shows them: whole, rounded when large, else 3 significant digits
        # log10(0) and the scale of a tiny value (1e-300 needs 1e302) are masked out below: no warning for them.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scale = 10.0 ** (2 - np.floor(np.log10(np.abs(values))))
            significant = np.where(values == 0, 0.0, np.round(values * scale) / scale)
        return np.where(np.abs(values) >= 100, np.round(values), significant)
    return values


def _field_values(frame: pd.DataFrame, spec: ReasonField, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The raw values each placeholder of a field can use, at the given rows."""
    # A combined field's values are its columns' (for the JSON only); the others' are by placeholder.
    names = spec.columns if spec.kind == COMBINED else spec.placeholders
    out = {}
    for name in names:
        column = frame[name if spec.kind == COMBINED else spec.column_of(name)]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            out[name] = column.to_numpy(dtype="float64", na_value=np.nan)[rows]
        else:
            # Categories are compared as text, as the encoder does.
            out[name] = column.astype("string").astype("object").where(column.notna(), None).to_numpy()[rows]
    return out


def _variants(spec: ReasonField, values: dict[str, np.ndarray], points: np.ndarray) -> np.ndarray:
    if spec.kind == COMBINED:
        missing = np.zeros(len(points), dtype=bool)
    elif spec.kind == SIGNAL:
        missing = ~(values["count"] > 0)
    else:
        value = values["value"]
        missing = pd.isna(value) if value.dtype == object else np.isnan(value)
    return np.where(missing, _MISSING, np.where(points > 0, _POSITIVE, _NEGATIVE))


def _fill_templates(spec: ReasonField, values: dict[str, np.ndarray], points: np.ndarray, texts: _Texts) -> np.ndarray:
    """Text ids of a field's reasons: each template filled once per distinct combination of values."""
    variants = _variants(spec, values, points)
    ids = np.empty(len(points), dtype=np.int64)
    words = spec.templates.words
    for variant, template in enumerate(spec.templates.by_variant()):
        at = np.flatnonzero(variants == variant)
        if not len(at):
            continue
        used: dict[str, set[str]] = {}
        for name, format_spec in template_placeholders(template):
            if name != "field":
                used.setdefault(name, set()).add(format_spec)
        label = spec.label
        # A default text shows raw codes as words; a field's own template shows what it was written for.
        fallback = template in DEFAULT_TEXTS[spec.kind]
        columns, codes = [], []
        for name, specs in used.items():
            column = values[name][at]
            if column.dtype != object and not words:
                column = _quantise(column, specs)
            code, uniques = pd.factorize(column, use_na_sentinel=False)
            columns.append((name, np.asarray(uniques, dtype=object)))
            codes.append(code)
        if codes:
            distinct, inverse = np.unique(np.column_stack(codes), axis=0, return_inverse=True)
        else:
            distinct, inverse = np.zeros((1, 0), dtype=np.int64), np.zeros(len(at), dtype=np.int64)
        local = np.empty(len(distinct), dtype=np.int64)
        for row, combination in enumerate(distinct):
            filled = {"field": label}
            for (name, uniques), code in zip(columns, combination):
                filled[name] = _worded(uniques[code], words, readable=fallback)
            local[row] = texts.add(render(template, filled))
        ids[at] = local[inverse.reshape(-1)]
    return ids


def _worded(value, words: dict[str, str], *, readable: bool = False):
    """A value as its template shows it: its `values` word, else (`readable`) a code as words, else itself."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return value
    if words:
        key = value if isinstance(value, str) else format_number(float(value))
        if key in words:
            return words[key]
    return readable_code(value) if readable and isinstance(value, str) else value


class _Texts:
    """Distinct texts of a batch; `fit` cuts the ones too long for their points suffix."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._texts: list[str] = []

    def add(self, text: str) -> int:
        text = " ".join(text.split())  # one line, for a CRM field and for a terminal
        if text not in self._ids:
            self._ids[text] = len(self._texts)
            self._texts.append(text)
        return self._ids[text]

    def fit(self, ids: np.ndarray, room: np.ndarray) -> np.ndarray:
        lengths = np.array([len(t) for t in self._texts], dtype=np.int64)
        over = np.flatnonzero(lengths[ids] > room)
        if not len(over):
            return ids
        ids = ids.copy()
        pairs, inverse = np.unique(np.column_stack([ids[over], room[over]]), axis=0, return_inverse=True)
        cut = [self.add(self._texts[i][: max(1, r - 1)].rstrip() + ELLIPSIS) for i, r in pairs]
        ids[over] = np.asarray(cut, dtype=np.int64)[inverse.reshape(-1)]
        return ids

    def arrays(self) -> tuple[pa.Array, pa.Array]:
        escaped = [json.dumps(t, ensure_ascii=False)[1:-1] for t in self._texts]
        return pa.array(self._texts, type=pa.string()), pa.array(escaped, type=pa.string())


# ---------------------------------------------------------------------------------------------
# Assembling columns
# ---------------------------------------------------------------------------------------------


def shown_points(points: np.ndarray) -> np.ndarray:
    """Points as a reason shows them, in its text and its JSON alike: rounded to one decimal."""
    return np.round(points, 1)


def _points_suffixes(points: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """" (+18.3)" / " (-0.4)" per reason: distinct suffixes, the id of each reason's and its length."""
    distinct, inverse = np.unique(shown_points(points), return_inverse=True)
    # A value already rounded to one decimal, printed with one decimal, is that very value; a whole one
    # reads without ".0" ("+5"), as JSON prints it (5).
    texts = [f" ({f'{v:+.1f}'.removesuffix('.0')})" for v in distinct]
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    inverse = inverse.reshape(-1)
    return pa.array(texts, type=pa.string()), inverse, lengths[inverse]


def _value_json(spec: ReasonField, values: dict[str, np.ndarray]) -> pa.Array:
    """The lead's value as JSON: a number, a string, null, or an object of a signal's or combination's values."""
    if spec.kind == COLUMN:
        return _json_scalars(values["value"])
    parts = []
    for i, name in enumerate(SIGNAL_PARTS if spec.kind == SIGNAL else spec.columns):
        parts += [("{" if i == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":", _json_scalars(values[name])]
    return pc.binary_join_element_wise(*parts, "}", "")


def _json_scalars(values: np.ndarray) -> pa.Array:
    if values.dtype != object:
        # Arrow prints floats in their shortest round-trip form, which is valid JSON.
        return pc.fill_null(pc.cast(pa.array(values, from_pandas=True), pa.string()), "null")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    encoded = [json.dumps(str(u), ensure_ascii=False) for u in uniques] + ["null"]
    return pa.array(encoded, type=pa.string()).take(pa.array(np.where(codes < 0, len(uniques), codes)))


def _field_prefixes(fields: list[ReasonField]) -> pa.Array:
    return pa.array(
        [f'{{"field":{json.dumps(f.name, ensure_ascii=False)},"dimension":{json.dumps(f.dimension)},"value":'
         for f in fields],
        type=pa.string(),
    )


def _in_pair_order(parts: list[pa.Array], positions: list[np.ndarray], m: int) -> pa.Array:
    if not parts:
        return pa.array([], type=pa.string())
    order = np.concatenate(positions)
    inverse = np.empty(m, dtype=np.int64)
    inverse[order] = np.arange(m)
    return pa.concat_arrays([p.cast(pa.string()) for p in parts]).take(pa.array(inverse))


def _take(values: pa.Array, index: np.ndarray) -> pa.Array:
    """values[index], null where index is -1."""
    return values.take(pa.array(np.maximum(index, 0), mask=index < 0))


def _json_lists(fragments: pa.Array, grid: np.ndarray) -> pd.Series:
    # A row's reasons fill its first slots, so "," before every slot after the first (empty when the
    # slot is) gives valid JSON without per-row work.
    pieces = [pc.fill_null(_take(fragments, grid[:, 0]), "")]
    for s in range(1, grid.shape[1]):
        pieces.append(pc.fill_null(pc.binary_join_element_wise(",", _take(fragments, grid[:, s]), ""), ""))
    return _text_column(pc.binary_join_element_wise("[", *pieces, "]", ""))


def _text_column(values: pa.Array) -> pd.Series:
    return pd.Series(pd.array(values, dtype="str"))
