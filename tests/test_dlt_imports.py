"""zap-runs stands on dlt's public ground: every `dlt` import in pipelines/ is one dlt documents
for users (its API, its configuration and destination extension points, its exceptions). An
import from dlt's storage, normalizer or state internals fails here: find the public way, or
describe the gap in docs/dlt-gaps.md and keep it in a module named for it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pipelines"
DOCS = "https://dlthub.com/docs"

# Each allowed import, and where dlt documents it for users.
ALLOWED = {
    "dlt": f"{DOCS}/general-usage/pipeline (dlt.pipeline, dlt.source, dlt.resource, dlt.config, "
           "dlt.secrets, dlt.destinations)",
    "dlt.sources.DltSource": f"{DOCS}/general-usage/source",
    "dlt.common.configuration.configspec": f"{DOCS}/general-usage/credentials/complex_types",
    "dlt.common.configuration.resolve_configuration":
        f"{DOCS}/general-usage/credentials/advanced",
    "dlt.common.configuration.specs.BaseConfiguration":
        f"{DOCS}/general-usage/credentials/complex_types",
    "dlt.common.configuration.exceptions.ConfigFieldMissingException":
        f"{DOCS}/general-usage/credentials/setup (missing configuration)",
    "dlt.common.configuration.exceptions.ConfigValueCannotBeCoercedException":
        f"{DOCS}/general-usage/credentials/setup (wrong types)",
    "dlt.common.configuration.exceptions.InvalidNativeValue":
        f"{DOCS}/general-usage/credentials/complex_types (native values)",
    "dlt.common.configuration.exceptions.LookupTraces":
        f"{DOCS}/general-usage/credentials/setup (where a value was looked up)",
    "dlt.common.destination.Destination": f"{DOCS}/general-usage/destination (Destination.from_reference)",
    "dlt.common.destination.exceptions.DestinationUndefinedEntity":
        f"{DOCS}/running-in-production/running (destination exceptions)",
    "dlt.common.destination.exceptions.UnknownDestinationModule":
        f"{DOCS}/general-usage/destination",
    "dlt.common.libs.deltalake.get_delta_tables": f"{DOCS}/dlt-ecosystem/destinations/delta-iceberg",
    "dlt.common.pipeline.LoadInfo": f"{DOCS}/running-in-production/running (inspect the load info)",
    "dlt.common.typing.TSecretValue": f"{DOCS}/general-usage/credentials/setup (secret values)",
    "dlt.destinations.exceptions.DatabaseUndefinedRelation":
        f"{DOCS}/dlt-ecosystem/destinations (sql_client errors)",
    "dlt.pipeline.exceptions.PipelineStepFailed":
        f"{DOCS}/running-in-production/running (handle exceptions, failed jobs)",
    "dlt.pipeline.helpers.retry_schema_update": f"{DOCS}/running-in-production/running (retries)",
}


def dlt_imports() -> dict[str, set[str]]:
    """Every dlt name imported in pipelines/ (module, or module.name) -> the files."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dlt":
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.split(".")[0] == "dlt"]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(PACKAGE)))
    return found


def test_every_dlt_import_is_one_dlt_documents():
    found = dlt_imports()
    outside = {name: sorted(files) for name, files in found.items() if name not in ALLOWED}
    assert not outside, f"dlt imports outside the public allow-list: {outside}"
    assert "dlt" in found, "the scan finds the package's imports"


def test_the_allow_list_names_no_import_that_is_gone():
    stale = sorted(set(ALLOWED) - set(dlt_imports()))
    assert not stale, f"allowed but no longer imported (remove them): {stale}"
