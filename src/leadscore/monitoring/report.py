"""The monitoring report: `monitoring.md` with its plots (`reliability.png`, `bands.png`) and `monitoring.json`.

Each file is written aside and renamed into place (`leadscore.data.io.write_atomically`); the plots first and
the report and JSON last, so a report never names a plot that is not there. Nothing in them names a lead: the
tables hold counts and rates of bands only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from leadscore.data.io import write_atomically
from leadscore.monitoring.run import OVERALL, MonitoringResult
from leadscore.reporting.plots import calibration_figure

_TITLES = {"reliability": "score band (equal numbers of leads; the bins of the ECE)", "cutoff_bands": "cutoff band",
           "grades": "grade (fit letter, engagement digit)"}
REPORT, FIGURES_JSON, RELIABILITY_PNG, BANDS_PNG = "monitoring.md", "monitoring.json", "reliability.png", "bands.png"


def main_group(result: MonitoringResult) -> str:
    """The group the band plot shows: all versions together when there are several, else the one version."""
    return OVERALL if OVERALL in result.groups else next(iter(result.groups))


def reliability_plot(result: MonitoringResult) -> Figure:
    """Reliability diagram of every model version's labelled scores (numbers: leads per bin of the first)."""
    frame = result.labelled.frame
    keys = [k for k in result.groups if k != OVERALL]
    version = frame["model_name"] + " " + frame["model_version"]
    y = {k: frame.loc[version == k, "converted"].to_numpy() for k in keys}
    p = {k: frame.loc[version == k, "p_convert"].to_numpy() for k in keys}
    fig = calibration_figure(y, p)
    fig.axes[0].set_title(f"Calibration of scores issued {_window_text(result)}\n(numbers: leads per bin)", fontsize=10)
    fig.tight_layout()
    return fig


def bands_plot(result: MonitoringResult) -> Figure:
    """Realised conversion (bars, exact interval) against the mean predicted probability (diamonds) per score band,
    and per cutoff band when the scores carry MQL / SQL flags."""
    group = result.groups[main_group(result)].figures
    tables = [("score band (equal numbers of leads)", group.reliability)]
    if group.cutoff_bands is not None:
        tables.append(("cutoff band", group.cutoff_bands))
    fig = Figure(figsize=(6.5 * len(tables), 4.8))
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    for ax, (title, table) in zip(axes, tables):
        x = np.arange(len(table))
        rate = table["realised_rate"].fillna(0).to_numpy()
        errors = np.vstack([rate - table["rate_ci_low"].fillna(0).to_numpy(), table["rate_ci_high"].fillna(0).to_numpy() - rate])
        ax.bar(x, rate, 0.6, yerr=np.clip(errors, 0, None), capsize=3, color="C0", alpha=0.8,
               label=f"realised ({group.confidence:.0%} exact interval)")
        ax.scatter(x, table["predicted_mean"], marker="D", color="C3", zorder=3, label="predicted (mean p_convert)")
        labels = [f"{b.split(': score ')[-1]}\n{n:,} leads" for b, n in zip(table["band"], table["leads"])]
        ax.set_xticks(x, labels, fontsize=7, rotation=45 if len(table) > 4 else 0, ha="right" if len(table) > 4 else "center")
        top = float(np.nanmax([table["rate_ci_high"].max(), table["predicted_mean"].max()]))
        ax.set_ylim(0, min(1.0, top * 1.15 + 0.01))
        ax.set(ylabel="conversion within the horizon", title=f"Realised vs predicted by {title}")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{main_group(result)}: scores issued {_window_text(result)}", fontsize=10)
    fig.tight_layout()
    return fig


def markdown(result: MonitoringResult) -> str:
    """The report as Markdown: window, accounting of scores, verdict, figures and tables per group."""
    c = result.labelled.counts
    lines = [
        "# Outcome monitoring", "",
        f"Scores issued {_window_text(result)}, outcomes observed up to {result.window['observed_until']} "
        f"(conversion: stage `{result.window['conversion_stage']}` within each model's horizon after the score).", "",
        "## Verdict", "",
    ]
    lines += [f"- **{name}**: {group.verdict.text()}" for name, group in result.groups.items()]
    lines += ["", "## Scores of the window", "",
              "| model | horizon (days) | backtest ROC AUC | scores | labelled | censored (horizon not elapsed) | "
              "lead closed before | lead not in export | repeats of a lead |", "|---|---|---|---|---|---|---|---|---|"]
    for key, counts in result.labelled.counts_by_version.items():
        ref = result.references.get(" ".join(key))
        auc = f"{ref.backtest.roc_auc:.3f}" if ref and ref.backtest else "unknown"
        horizon = f"{ref.horizon_days:g}" if ref else "?"
        lines.append(f"| {' '.join(key)} | {horizon} | {auc} | {counts['window']} | {counts['labelled']} | "
                     f"{counts['censored']} | {counts['closed_before']} | {counts['unknown_lead']} | {counts['repeat']} |")
    if len(result.labelled.counts_by_version) > 1:
        lines.append(f"| all | | | {c['window']} | {c['labelled']} | {c['censored']} | {c['closed_before']} | "
                     f"{c['unknown_lead']} | {c['repeat']} |")
    lines += ["", "Censored scores are left out, never counted as not converted; each lead counts once, with its "
              "earliest score of the window.", "",
              f"![reliability diagram]({RELIABILITY_PNG})", "", f"![realised vs predicted by band]({BANDS_PNG})", ""]
    for name, group in result.groups.items():
        f = group.figures
        level = f"{f.confidence:.0%}"
        auc = "n/a (one class only)" if f.roc_auc is None else f"{f.roc_auc:.3f} (standard error {f.roc_auc_se:.3f})"
        lines += [
            f"## {name}", "",
            "| figure | value |", "|---|---|",
            f"| labelled scores | {f.leads:,} |", f"| conversions | {f.conversions:,} |",
            f"| mean predicted probability | {f.predicted_mean:.4f} |",
            f"| realised conversion rate ({level} exact interval) | {f.realised_rate:.4f} ({f.rate_ci_low:.4f} to {f.rate_ci_high:.4f}) |",
            f"| score test in the large (z, p) | {f.z:.2f}, {f.z_p_value:.3f} |",
            f"| ECE | {f.ece:.4f} |",
            f"| ECE from noise alone (mean; {level} quantile) | {f.ece_noise_mean:.4f}; {f.ece_noise_quantile:.4f} |",
            f"| ROC AUC | {auc} |", "",
        ]
        for title, table in group.figures.tables().items():
            lines += [f"### By {_TITLES[title]}", "", _table_markdown(table), ""]
    return "\n".join(lines)


def write_report(result: MonitoringResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the plots, the Markdown report and the JSON of the figures into `out_dir`; their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, figure in ((RELIABILITY_PNG, reliability_plot(result)), (BANDS_PNG, bands_plot(result))):
        paths[name] = write_atomically(out / name, lambda tmp, fig=figure: fig.savefig(tmp, format="png", dpi=110))
    text = json.dumps(result.to_json(), indent=2, allow_nan=False)
    paths[FIGURES_JSON] = write_atomically(out / FIGURES_JSON, lambda tmp: tmp.write_text(text + "\n"))
    report = markdown(result)
    paths[REPORT] = write_atomically(out / REPORT, lambda tmp: tmp.write_text(report))
    return paths


def _window_text(result: MonitoringResult) -> str:
    w = result.window
    since, until = pd.Timestamp(w["since"]), pd.Timestamp(w["until"])
    if w["issued_days_ago"]:
        return f"on {since.date()} ({w['issued_days_ago']} days before the observation time)"
    if since.date() == until.date():
        return f"on {since.date()}"
    return f"from {since.date()} to {until.date()}"


def _table_markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("predicted_mean", "realised_rate", "rate_ci_low", "rate_ci_high"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    shown["predicted_in_interval"] = shown["predicted_in_interval"].map({True: "yes", False: "**no**", None: ""})
    header = "| " + " | ".join(c.replace("_", " ") for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
