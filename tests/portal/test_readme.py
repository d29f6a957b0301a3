"""README's configuration table and the code agree on every environment variable."""

import re

from .conftest import BASE_DIR

SOURCES = [
    *sorted((BASE_DIR / "portal" / "settings").glob("*.py")),
    BASE_DIR / "manage.py",
    BASE_DIR / "scripts" / "run.py",
]
READ_PATTERN = re.compile(
    r"""(?:env_(?:str|bool|int|list)\(|os\.environ\.(?:get|setdefault)\(|os\.environ\[)\s*"([A-Z][A-Z0-9_]+)\""""
)
# Set by tools, not by whoever configures the portal.
NOT_CONFIGURATION = {"PYTEST_XDIST_WORKER"}


def variables_read_by_code() -> set[str]:
    names = set()
    for source in SOURCES:
        names.update(READ_PATTERN.findall(source.read_text()))
    return names - NOT_CONFIGURATION


def variables_in_readme_table() -> set[str]:
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_every_environment_variable_is_documented_in_readme():
    missing = variables_read_by_code() - variables_in_readme_table()

    assert not missing, f"add these to README.md's configuration table: {sorted(missing)}"


def test_readme_documents_no_variable_the_code_does_not_read():
    stale = variables_in_readme_table() - variables_read_by_code()

    assert not stale, f"README.md documents variables nothing reads: {sorted(stale)}"
