"""The documentation stays true to the code: every flag, every check, every link."""

import re
from pathlib import Path

import pytest

from tessera_mpi.suite.options import build_parser
from tessera_mpi.suite.checks import registered

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_suite_flag_is_in_the_cli_reference():
    text = (ROOT / "docs" / "cli.md").read_text()
    flags = [o for action in build_parser({})._actions for o in action.option_strings if o.startswith("--")]
    missing = [f for f in flags if f != "--help" and f"`{f}" not in text]
    assert not missing, f"docs/cli.md does not document {missing}"


def test_every_check_has_a_section():
    text = (ROOT / "docs" / "checks.md").read_text()
    missing = [name for name in registered() if f"## `{name}`" not in text]
    assert not missing, f"docs/checks.md has no section for {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    broken = [link for link in links if "://" not in link and not (doc.parent / link).exists()]
    assert not broken, f"{doc.name} links to missing files {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_paths_named_in_the_docs_exist(doc):
    named = re.findall(r"`((?:tessera_mpi|scripts|tests|docs|examples)/[\w./-]*)`", doc.read_text())
    missing = [p for p in named if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"
