"""The contract's schemas (kept in tests/contract in our own words) as validators."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

SCHEMA = json.loads((Path(__file__).parent / "contract" / "zap_runs.schema.json").read_text())
_FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]},
                                           format_checker=_FORMATS)


PAGE = validator("page_body")
ERROR = validator("error_body")
DOCUMENTED = set(SCHEMA["x-documented-responses"])
STATUSES = set(SCHEMA["x-statuses"])
