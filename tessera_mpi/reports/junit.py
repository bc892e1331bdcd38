"""JUnit XML of a suite run: one test case per check, in the dialect Jenkins and GitLab read."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

from ..results.reader import plain
from .summary import RunSummary

SUITE_NAME = "tessera_mpi.suite"
PROPERTIES = ("world_size", "final_world_size", "mesh_shape", "mesh_axes", "launcher", "backend", "topology",
              "tessera_mpi_version", "git_commit", "slurm_job_id", "slurm_step_id", "slurm_nodelist", "slurm_partition", "slurm_cluster")
"""Root attributes copied into <properties> (those present)."""


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry at all (MPI strings sometimes hold NULs)."""


def _clean(text: str) -> str:
    return _NOT_XML.sub("?", text)


_TAGS = {"failed": "failure", "error": "error", "skipped": "skipped"}
"""The JUnit element of each non-passing status."""


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _case(name: str, seconds: float, *, tag: str | None = None, kind: str = "", message: str = "",
          text: str = "", out: str | None = None) -> ET.Element:
    """Return one <testcase>, with a <failure>/<error>/<skipped> child when `tag` is given."""
    case = ET.Element("testcase", classname=SUITE_NAME, name=name, time=f"{seconds:.3f}")
    if tag is not None:
        element = ET.SubElement(case, tag, message=message, type=kind)
        element.text = text
    if out is not None:
        ET.SubElement(case, "system-out").text = out
    return case


def _cases(run: RunSummary) -> list[ET.Element]:
    """One test case per check, then `baseline` when compared, then `run` while incomplete."""
    cases = []
    for record in run.checks:
        text = record.message
        if record.status == "error" and "traceback" in record.attrs:
            text += "\n\n" + str(plain(record.attrs["traceback"]))
        failed = [v for v in ("sanity", "performance") if record.attrs.get(v) == "failed"]
        case = _case(record.name, float(record.duration_s), tag=_TAGS.get(record.status),
                     kind=",".join(failed) or record.status, message=_first_line(record.message),
                     text=text, out=record.headline)
        properties = ET.Element("properties")
        for key in ("sanity", "performance", "not_judged", "culprits"):
            value = plain(record.attrs.get(key, ""))
            if value:
                text_value = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                ET.SubElement(properties, "property", name=key, value=text_value)
        if len(properties):
            case.insert(0, properties)
        cases.append(case)
    if run.baseline is not None:
        lines = "\n".join(run.baseline_lines)
        regressed = bool(run.baseline_regressions)
        cases.append(_case("baseline", 0.0, tag="failure" if regressed else None, kind="regression",
                           message=f"{len(run.baseline_regressions)} regression(s) against {run.baseline}",
                           text=lines, out=lines))
    for row in run.selftest:
        caught = row["verdict"] == "caught"
        text = (f"planted {row['planted']}; expected culprit {row['expected']}; planted run {row['status']}, "
                f"culprits named: {row['named']}; clean run {row['clean']}; {row['detail']}")
        cases.append(_case(f"selftest {row['check']}: {row['defect']}", 0.0, tag=None if caught else "failure",
                           kind="selftest", message=f"{row['verdict']}: {row['check']} and {row['defect']}",
                           text=text, out=text))
    if not run.complete:
        cases.append(_case("run", run.elapsed_s, tag="error", kind="incomplete",
                           message="the run had not finished when this report was written"))
    return cases


def _properties(run: RunSummary) -> ET.Element:
    properties = ET.Element("properties")
    for key in PROPERTIES:
        if key in run.attrs:
            value = plain(run.attrs[key])
            text = "x".join(map(str, value)) if key == "mesh_shape" else (
                ",".join(map(str, value)) if isinstance(value, list) else str(value))
            ET.SubElement(properties, "property", name=key, value=text)
    ET.SubElement(properties, "property", name="results_file", value=run.results_file)
    return properties


def junit_xml(run: RunSummary) -> str:
    """Return the JUnit XML document for `run`.

    failed -> <failure>, error -> <error>, skipped -> <skipped>, each with the check's message
    (its first line as the `message` attribute, all of it as text); the headline goes to
    <system-out>. A --baseline regression is one more test case, `baseline`, that fails. A run
    still going (or ended early) says so in an <error> case named `run`.
    """
    cases = _cases(run)
    tag_of = [next((e.tag for e in c if e.tag in _TAGS.values()), None) for c in cases]
    suite = ET.Element(
        "testsuite", name=SUITE_NAME, tests=str(len(cases)),
        failures=str(tag_of.count("failure")), errors=str(tag_of.count("error")),
        skipped=str(tag_of.count("skipped")),
        time=f"{run.elapsed_s:.3f}", timestamp=str(run.attrs.get("created", "")),
        hostname=os.uname().nodename,
    )
    suite.append(_properties(run))
    suite.extend(cases)
    root = ET.Element("testsuites", name="tessera_mpi", tests=suite.get("tests"), failures=suite.get("failures"),
                      errors=suite.get("errors"), skipped=suite.get("skipped"), time=suite.get("time"))
    root.append(suite)
    for element in root.iter():
        if element.text:
            element.text = _clean(element.text)
        for key, value in element.attrib.items():
            element.set(key, _clean(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
