"""`leadscore init` on a CSV whose numbers are written with a decimal comma (`3,5`, `1.234,5`): `data.decimal`."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from helpers import make_snapshot, run_cli

from leadscore.config import DataConfig, load_config

pytestmark = pytest.mark.skipif("decimal" not in DataConfig.model_fields, reason="data.decimal is not in the config yet")


def german(amounts: np.ndarray) -> list[str]:
    """Amounts as a German export writes them: 1.234,56."""
    return [f"{x:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".") for x in amounts]


def export(tmp_path, **columns):
    """A `;`-separated CRM export with the extra text `columns`."""
    frame = make_snapshot(600).assign(**columns)
    path = tmp_path / "export.csv"
    frame.to_csv(path, sep=";", index=False)
    return path


def amounts(n: int = 600) -> np.ndarray:
    return np.random.default_rng(1).gamma(2, 800, n)


def test_numbers_with_a_decimal_comma_set_data_decimal(tmp_path, monkeypatch):
    # Given a ';'-separated export with amounts such as 1.723,05 and shares such as 0,6
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    path = export(tmp_path, umsatz=german(amounts()), anteil=[f"{x:.1f}".replace(".", ",") for x in rng.random(600)])
    # When init writes its config
    code, _, err = run_cli("init", path)
    assert code == 0, err
    # Then the decimal comma is declared, with a comment naming the columns, and the columns are numbers
    text = (tmp_path / "export.yaml").read_text()
    line = next(line for line in text.splitlines() if line.strip().startswith("decimal:"))
    assert "# numbers written with a decimal comma" in line and "umsatz" in line and "anteil" in line
    cfg = load_config(tmp_path / "export.yaml")
    assert cfg.data.decimal == ","
    assert not {"umsatz", "anteil"} & set(cfg.data.categorical_columns + cfg.data.exclude_columns), "numbers, not text"
    # And the config is checked without edits
    code, _, err = run_cli("check", "--config", tmp_path / "export.yaml")
    assert code == 0, err


@pytest.mark.parametrize(("cells", "hint"), [
    ([f"{x:.2f}" for x in amounts()], None),                      # a decimal point: nothing to say
    ([f"{int(x):,}" for x in amounts()], "look like 1,234"),       # 1,234: a decimal comma or a thousands group?
])
def test_no_decimal_comma_is_guessed_without_proof(tmp_path, cells, hint):
    path = export(tmp_path, umsatz=cells)
    code, _, err = run_cli("init", path, "--output", tmp_path / "c.yaml")
    assert code == 0, err
    text = (tmp_path / "c.yaml").read_text()
    assert "decimal" not in yaml.safe_load(text)["data"], "the default decimal point"
    comments = "\n".join(line for line in text.splitlines() if "#" in line)
    assert (hint in comments) if hint else ("decimal" not in comments), "a hint only where a comma is ambiguous"


def test_a_file_with_both_marks_is_pointed_at_not_guessed(tmp_path):
    rng = np.random.default_rng(3)
    path = export(tmp_path, umsatz=german(amounts()), quote=[f"{x:.3f}" for x in rng.random(600)])
    code, _, err = run_cli("init", path, "--output", tmp_path / "c.yaml")
    assert code == 0, err
    text = (tmp_path / "c.yaml").read_text()
    assert "decimal" not in yaml.safe_load(text)["data"]
    assert "decimal comma" in text and "quote" in text, "the comment names both kinds of column"
