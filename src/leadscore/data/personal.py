"""Which columns hold personal data: declared ones plus those whose names look personal.

Personal columns are removed before anything else touches the data, so they can never become
features, reach MLflow (params, artifacts, input examples) or appear in logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PERSONAL_NAME = re.compile(
    r"(^|[_\W])(first_?name|last_?name|full_?name|surname|name|e_?mail|email_address|phone|mobile|"
    r"telephone|address|street|postcode|zip_?code|birth_?date|date_of_birth|ssn|ip_address)($|[_\W])",
    re.IGNORECASE,
)


def personal_columns(columns: Iterable[str], declared: Iterable[str]) -> list[str]:
    """The declared personal columns present, plus columns whose names look like personal data."""
    columns = [str(c) for c in columns]
    declared = set(declared)
    return [c for c in columns if c in declared or _PERSONAL_NAME.search(c)]
