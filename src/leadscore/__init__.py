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

See `leadscore.api` for the details and `leadscore.cli` for the same as commands.
"""

import warnings
from importlib import import_module
from importlib.metadata import version

__version__ = version("leadscore")

__all__ = ["LeadScoreClassifier", "__version__", "explain", "generate", "load_model", "promote", "score", "train"]

# Where each public name lives; imported on first access (PEP 562).
_PUBLIC = {
    "LeadScoreClassifier": "leadscore.estimator",
    "train": "leadscore.api",
    "score": "leadscore.api",
    "explain": "leadscore.api",
    "load_model": "leadscore.api",
    "promote": "leadscore.api",
    "generate": "leadscore.api",
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
