"""leadscore: predictive lead scoring with calibrated probabilities, dimension scores, MQL / SQL cutoffs and
reasons, from one model tracked and registered in MLflow.

The public API (each name is imported on first use, so `import leadscore` stays light and scoring
never loads the training stack):

- `LeadScoreClassifier`: the training pipeline as a scikit-learn estimator on a snapshot DataFrame.
- `train(config)`: train from a config (YAML path, dict or `Config`), log the run, register as challenger.
- `promote(name)`: make the challenger champion when it beats the champion.
- `load_model(uri)`: the scorer of a registered model or a model folder.
- `score(model, data)`: score a DataFrame, or run the batch job on a file or event-log folder.
- `explain(model, data, lead_id)`: a lead's score as base score plus points per field.
- `generate(n_leads, seed)`: a seeded synthetic funnel with its ground truth.
- `read_history(path, lead_ids=None, since=None, until=None)`: the score history the batch job appends to
  (`leadscore score --history`), one row per lead and run (see `leadscore.history`); `lead_history(path, lead_id)`:
  one lead's scores over time, with what changed and why.
- `monitor(history, outcomes, out)`: past scores against the outcomes that followed, with a verdict.
- `funnel(data)`: stage-to-stage conversion per episode from an event log's outcomes.

See `leadscore.api` for the details and `leadscore.cli` for the same as commands.
"""

import os
import warnings
from importlib import import_module
from importlib.metadata import version

# LightGBM and scikit-learn run their threads on OpenMP, whose default wait policy keeps an idle thread
# spinning on its core between parallel regions. LightGBM trains on every core from 100,000 rows
# (`leadscore.training.candidates.lightgbm_threads`), and on a machine shared with other work the spinning
# threads take the cores the working ones wait for: one fit measured on 2 busy cores took 126 s and 49 CPU s
# spinning, 21 s and 5.9 CPU s passive (the same model). LightGBM has no parameter for this; the OpenMP
# runtime reads OMP_WAIT_POLICY once, when it is loaded (by the first import of lightgbm or of scikit-learn's
# compiled parts), so it is set here, before any of them is imported, and only when the user has not set it.
# Worker processes (`leadscore.training.parallel`) inherit it. A program that imports lightgbm or scikit-learn
# before leadscore keeps OpenMP's default: set OMP_WAIT_POLICY=PASSIVE in its environment instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = version("leadscore")

__all__ = ["LeadScoreClassifier", "__version__", "explain", "funnel", "generate", "lead_history", "load_model", "monitor",
           "promote", "read_history", "score", "train"]

# Where each public name lives; imported on first access (PEP 562).
_PUBLIC = {
    "LeadScoreClassifier": "leadscore.estimator",
    "train": "leadscore.api",
    "score": "leadscore.api",
    "explain": "leadscore.api",
    "load_model": "leadscore.api",
    "promote": "leadscore.api",
    "generate": "leadscore.api",
    "read_history": "leadscore.history.store",
    "lead_history": "leadscore.api",
    "monitor": "leadscore.api",
    "funnel": "leadscore.api",
}


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'leadscore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# pandera imports pyspark.pandas whenever PySpark is installed (the spark extra), and PySpark then warns
# on every command that it does not fully support pandas 3. The spark engine moves data through Arrow,
# which works with pandas 3 (tests/test_spark.py checks its scores against the pandas engine).
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
