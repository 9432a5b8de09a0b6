"""Failing parts: a full disk, a folder the job may not write, a model that cannot be loaded.

Each failure is real: the scoring job runs as its own process under a file size limit, or as a user
without write permission; the model files are damaged or record other versions.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import subprocess
import sys
from importlib.metadata import version as package_version
from pathlib import Path

import pytest
from helpers import (
    CHAMPION,
    champion_store,
    cli,
    leads_to_score,
    run_cli,
    temporary_files,
)
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from leadscore import __version__

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 24, 1, 2, 3  # from <linux/prctl.h>, <linux/capability.h>


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The session's champion model as a local folder (`leadscore export`)."""
    with champion_store(tmp_path_factory) as folder:
        assert cli("export", "--model", CHAMPION, "--out", folder / "models") == 0
        (bundle,) = (folder / "models").iterdir()
        return bundle


def score_in_process_of_its_own(model: Path, leads: Path, output: Path, **popen) -> subprocess.CompletedProcess:
    """`leadscore score` as a separate process, as a scheduler runs it."""
    argv = [sys.executable, "-m", "leadscore.cli", "score", "--model", str(model), "--input", str(leads),
            "--output", str(output), "--no-reasons"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **popen)


def publish_previous_output(model: Path, folder: Path) -> tuple[Path, Path, bytes]:
    """Score once successfully: the input file, the published output and its bytes."""
    leads = folder / "leads.csv"
    leads_to_score(2000, seed=51).to_csv(leads, index=False)
    output = folder / "scores.csv"
    code, _, err = run_cli("score", "--model", model, "--input", leads, "--output", output, "--no-reasons")
    assert code == 0, err
    return leads, output, output.read_bytes()


@pytest.mark.slow
def test_a_full_disk_fails_clearly_and_keeps_the_previous_output(exported, tmp_path):
    # Given a published output, and a job whose files may not grow beyond 16 KiB (as on a full disk)
    leads, output, previous = publish_previous_output(exported, tmp_path)
    limit = 16 * 1024
    assert len(previous) > limit, "the new output must need more room than the limit allows"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes then fail

    # When the job runs
    job = score_in_process_of_its_own(exported, leads, output, preexec_fn=small_files)

    # Then it stops with the output exit code and says which file and why, and leaves everything as it was
    assert job.returncode == 6, job.stderr[-3000:]
    assert "cannot write" in job.stderr and str(output) in job.stderr and "File too large" in job.stderr, job.stderr
    assert "free space" in job.stderr and "Traceback" not in job.stderr, job.stderr
    assert output.read_bytes() == previous, "the previous output is untouched"
    assert not temporary_files(tmp_path), "no partial file is left behind"


def as_root_without_permission_override() -> None:
    """Drop the capabilities that let root write anywhere (in the child, before it starts Python).

    Tests often run as root, for whom a folder's permissions mean nothing; without these
    capabilities root is held to them like any user. Linux `prctl(PR_CAPBSET_DROP)`.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.slow
def test_permission_denied_fails_clearly_and_keeps_the_previous_output(exported, tmp_path):
    # Given a published output in a folder the job may read but not write
    leads, output, previous = publish_previous_output(exported, tmp_path)
    tmp_path.chmod(0o555)
    popen = {"preexec_fn": as_root_without_permission_override} if os.geteuid() == 0 else {}

    # When the job runs
    try:
        job = score_in_process_of_its_own(exported, leads, output, **popen)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot take root's file permission override away here: {exc}")
    finally:
        tmp_path.chmod(0o755)

    # Then it stops with the output exit code, names the file and the fix, and changes nothing
    assert job.returncode == 6, job.stderr[-3000:]
    assert "Permission denied" in job.stderr and str(output) in job.stderr, job.stderr
    assert f"let the job create and rename files in {tmp_path}" in job.stderr, job.stderr
    assert output.read_bytes() == previous, "the previous output is untouched"
    assert not temporary_files(tmp_path)


def damaged_copy(exported: Path, folder: Path) -> Path:
    """A copy of the model whose pickled scorer lost its second half (a broken download or disk)."""
    copy = shutil.copytree(exported, folder / "damaged")
    pickled = copy / "python_model.pkl"
    data = pickled.read_bytes()
    pickled.write_bytes(data[: len(data) // 2])
    return copy


def assert_names_what_the_model_needs(err: str) -> None:
    for needed in (f"leadscore {__version__}", f"scikit-learn=={package_version('scikit-learn')}",
                   f"lightgbm=={package_version('lightgbm')}"):
        assert needed in err, f"{needed} missing from: {err}"


@pytest.mark.slow
def test_a_damaged_model_file_fails_clearly_with_what_it_needs(exported, tmp_path, capsys):
    # Given a local copy of a model whose pickle is cut short
    model = damaged_copy(exported, tmp_path)
    leads = tmp_path / "leads.csv"
    leads_to_score(20, seed=52).to_csv(leads, index=False)

    # When it is used to score
    code, _, err = run_cli("score", "--model", model, "--input", leads, "--output", tmp_path / "out.csv")

    # Then the job stops before reading any lead, names the model, and says what it was saved with
    assert code == 5 and f"model {model} could not be loaded" in err, err
    assert_names_what_the_model_needs(err)
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.slow
def test_a_damaged_registered_model_fails_clearly(exported, tracking_store):
    # Given a registry whose version points at damaged model files
    model = damaged_copy(exported, tracking_store)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    client.create_registered_model("damaged")
    client.create_model_version("damaged", source=str(model))
    leads = tracking_store / "leads.csv"
    leads_to_score(20, seed=53).to_csv(leads, index=False)

    # When the registered version is used to score
    code, _, err = run_cli("score", "--model", "models:/damaged/1", "--input", leads, "--output",
                           tracking_store / "out.csv")

    # Then the error names the version and what it needs
    assert code == 5 and "model models:/damaged/1 could not be loaded" in err, err
    assert_names_what_the_model_needs(err)


def with_recorded_versions(exported: Path, folder: Path, leadscore: str | None = None, pins: dict | None = None) -> Path:
    """A copy of the model whose files say it was saved by other versions."""
    copy = shutil.copytree(exported, folder / "other_versions")
    if leadscore:
        model = Model.load(str(copy))
        model.metadata = {**(model.metadata or {}), "leadscore_version": leadscore}
        model.save(str(copy / "MLmodel"))
    for name, pinned in (pins or {}).items():
        lines = [f"{name}=={pinned}" if line.startswith(f"{name}==") else line
                 for line in (copy / "requirements.txt").read_text().splitlines()]
        (copy / "requirements.txt").write_text("\n".join(lines) + "\n")
    return copy


@pytest.mark.slow
def test_a_model_from_another_leadscore_release_is_refused_by_name(exported, tmp_path):
    # Given a model saved by another release line of leadscore
    model = with_recorded_versions(exported, tmp_path, leadscore="7.0.0")
    leads = tmp_path / "leads.csv"
    leads_to_score(20, seed=54).to_csv(leads, index=False)

    # When it is used to score, then it is refused before unpickling, with both versions named
    code, _, err = run_cli("score", "--model", model, "--input", leads, "--output", tmp_path / "out.csv")
    assert code == 5, err
    assert f"saved by leadscore 7.0.0, but leadscore {__version__} is installed" in err, err
    assert "score it with leadscore 7.0.0" in err and "scikit-learn==" in err, err


@pytest.mark.slow
def test_a_model_saved_with_other_package_versions_scores_with_a_warning(exported, tmp_path, caplog):
    # Given a model whose requirements pin another scikit-learn
    model = with_recorded_versions(exported, tmp_path, pins={"scikit-learn": "1.6.0.dev0"})
    leads = tmp_path / "leads.csv"
    leads_to_score(20, seed=55).to_csv(leads, index=False)

    # When it is used to score, then it scores, and the log names the required and the installed version
    code, _, err = run_cli("score", "--model", model, "--input", leads, "--output", tmp_path / "out.csv")
    assert code == 0, err
    assert f"saved with scikit-learn==1.6.0.dev0, installed: {package_version('scikit-learn')}" in caplog.text


def test_exit_codes_are_documented_in_the_readme():
    # Every kind of error has its own exit code, and the README's table lists each of them
    from leadscore.errors import ConfigError, InputError, OutputError, TrackingError

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    codes = {error.exit_code for error in (ConfigError, InputError, TrackingError, OutputError)}
    assert len(codes) == 4 and not codes & {0, 1, 2}, "distinct codes, apart from success, bugs and usage"
    for code in sorted(codes | {0, 1, 2}):
        assert f"\n| {code} | " in readme, f"exit code {code} is not in the README's table"
    with pytest.raises(SystemExit) as usage:
        cli("score", "--no-such-option")
    assert usage.value.code == 2, "bad usage"
