"""The contract's schemas (shipped in pipelines/simulator/contract, in our own words) as validators."""

from __future__ import annotations

import json
from importlib.resources import files

import jsonschema

SCHEMA = json.loads((files("pipelines.simulator") / "contract" / "zap_runs.schema.json")
                    .read_text(encoding="utf-8"))
_FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]},
                                           format_checker=_FORMATS)


PAGE = validator("page_body")
ERROR = validator("error_body")
DOCUMENTED = set(SCHEMA["x-documented-responses"])
STATUSES = set(SCHEMA["x-statuses"])
