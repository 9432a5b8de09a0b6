"""Opening a model folder to score with, and saying what it needs when it cannot be used.

A model is pickled Python: unpickling it runs code. leadscore therefore loads models only from the
registry or from a local folder the user names (see ``load_model` below`), and either must
come from a store you trust.

Before anything is unpickled, the model's own record of what it was saved with is read from its text
files: the leadscore version (`MLmodel` metadata) and the pinned packages (`requirements.txt`). A model
saved by another release line of leadscore is refused with both versions named, since its pickled
classes may not match the installed code; other pins that differ from the installed packages are
warned about; and a model that still cannot be unpickled (a corrupted file, a package too old or too
new) fails with the versions it was saved with, so the fix is known without opening the file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import mlflow.pyfunc
import requests
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from packaging.version import InvalidVersion, Version

from leadscore import __version__
from leadscore.errors import ModelLoadError, TrackingError
from leadscore.model.scorer import LeadScorer
from leadscore.registry.store import connect

log = logging.getLogger(__name__)
LEADSCORE_VERSION_KEY = "leadscore_version"  # in the MLmodel metadata and the scorer's metadata
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)")


@dataclass(frozen=True)
class SavedWith:
    """The versions a model was saved with: leadscore's (None when unrecorded) and the pinned packages."""

    leadscore: str | None = None
    pins: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """E.g. `leadscore 0.1.0, scikit-learn==1.7.2, lightgbm==4.6.0`; what to install to load the model."""
        parts = [f"leadscore {self.leadscore or '(version not recorded)'}"]
        parts += [f"{name}=={pinned}" for name, pinned in self.pins.items()]
        return ", ".join(parts)

    def differing_pins(self) -> dict[str, tuple[str, str | None]]:
        """Pinned packages whose installed version differs: {name: (pinned, installed or None)}."""
        return {name: (pinned, installed) for name, pinned in self.pins.items()
                if (installed := _installed(name)) != pinned}


def read_saved_with(folder: Path) -> SavedWith:
    """What the model in `folder` records about its versions, read without unpickling anything."""
    metadata = Model.load(str(folder)).metadata or {}
    requirements = folder / "requirements.txt"
    lines = requirements.read_text().splitlines() if requirements.exists() else []
    pins = dict(match.groups() for line in lines if (match := _PIN.match(line)))
    return SavedWith(metadata.get(LEADSCORE_VERSION_KEY), pins)


def load_scorer_model(folder: Path, label: str) -> mlflow.pyfunc.PyFuncModel:
    """Load the pyfunc model in `folder` (named `label` in messages) and check it wraps a leadscore scorer."""
    try:
        saved = read_saved_with(folder)
    except (MlflowException, OSError, ValueError) as exc:
        raise ModelLoadError(f"{label} is not a readable MLflow model ({exc}). Fix: give a registered model "
                             "(models:/name@alias) or a folder written by `leadscore export`") from exc
    refuse_other_release(saved.leadscore, label, saved)
    for name, (pinned, installed) in saved.differing_pins().items():
        log.warning("model %s was saved with %s==%s, installed: %s; its scores may differ (install %s==%s to match)",
                    label, name, pinned, installed or "not installed", name, pinned)
    try:
        pyfunc = mlflow.pyfunc.load_model(str(folder))
        scorer = getattr(pyfunc.unwrap_python_model(), "scorer", None)
    # Unpickling runs the model's own code: whatever it raises means that this model cannot be loaded here.
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"model {label} could not be loaded ({exc.__class__.__name__}: {str(exc)[:300]}). It needs "
            f"{saved.describe()}; installed: {_installed_summary(saved)}. Fix: install those versions, or restore "
            "the model from the registry if its files were damaged, or train it again"
        ) from exc
    if scorer is None:
        raise ModelLoadError(f"{label} is an MLflow model but not a leadscore model (it has no scorer). "
                             "Fix: give a model registered by `leadscore train`")
    # Models saved before the MLmodel metadata recorded the version carry it only inside the scorer.
    if saved.leadscore is None:
        refuse_other_release(scorer.metadata.get(LEADSCORE_VERSION_KEY), label, saved)
    return pyfunc


def refuse_other_release(saved_version: str | None, label: str, saved: SavedWith) -> None:
    """Fail when a model was saved by another release line of leadscore (major version; minor while 0.x)."""
    if saved_version is None or _release_line(saved_version) == _release_line(__version__):
        return
    raise ModelLoadError(
        f"model {label} was saved by leadscore {saved_version}, but leadscore {__version__} is installed; a "
        f"pickled model loads only in its own release line. Fix: score it with leadscore {saved_version} "
        f"(it needs {saved.describe()}), or train it again with this version"
    )


def _release_line(text: str) -> tuple[int, ...] | str:
    try:
        release = Version(text).release
    except InvalidVersion:
        return text
    return release[:2] if release[0] == 0 else release[:1]


def _installed(name: str) -> str | None:
    try:
        return package_version(name)
    except PackageNotFoundError:
        return None


def _installed_summary(saved: SavedWith) -> str:
    names = [name for name in saved.pins if name in ("scikit-learn", "lightgbm", "mlflow", "pandas", "numpy")]
    return ", ".join([f"leadscore {__version__}", *(f"{name} {_installed(name) or 'not installed'}" for name in names)])


@dataclass(frozen=True)
class LoadedModel:
    """A pyfunc model with the scorer inside it and where it came from."""

    pyfunc: mlflow.pyfunc.PyFuncModel
    scorer: LeadScorer
    name: str
    version: str


def load_model(uri: str) -> LoadedModel:
    """Load a scorer from `models:/name@alias`, `models:/name/version` or a local model folder.

    Registry models are first copied to a temporary folder (a tracking failure), then opened there (a
    model failure, which names the versions the model needs: see `leadscore.registry.loading`).
    """
    name, version = Path(uri).name, "local"
    with tempfile.TemporaryDirectory(prefix="leadscore-model-") as tmp:
        try:
            if uri.startswith("models:/"):
                name, version = resolve_version(connect(), uri)
                # Load the resolved version, not the alias, so that the version reported is the one used.
                uri = f"models:/{name}/{version}"
            folder = Path(uri) if Path(uri).is_dir() else Path(
                mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        except (MlflowException, requests.RequestException, OSError) as exc:
            raise TrackingError(f"cannot load model {uri}: {exc}") from None
        pyfunc = load_scorer_model(folder, uri)
    return LoadedModel(pyfunc, pyfunc.unwrap_python_model().scorer, name, str(version))


def resolve_version(client: MlflowClient, uri: str) -> tuple[str, str]:
    name, _, alias = uri.removeprefix("models:/").partition("@")
    if alias:
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = name.partition("/")
    return name, version


def export_model(uri: str, out_dir: str | Path = "models") -> Path:
    """Copy a registered model to `<out_dir>/<name>-v<version>`, a folder `leadscore score --model` accepts.

    The copy is downloaded beside its target and renamed into place, so a failed export leaves no
    half bundle."""
    try:
        name, version = resolve_version(connect(), uri)
        target = Path(out_dir) / f"{name}-v{version}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(local, target)
    except (MlflowException, requests.RequestException) as exc:
        raise TrackingError(f"cannot export model {uri}: {exc}") from None
    return target
