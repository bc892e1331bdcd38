"""JUnit XML of a suite run: one test case per check, in the dialect Jenkins and GitLab read."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

from ..results.reader import plain
from .summary import RunSummary

SUITE_NAME = "tessera_mpi.suite"
PROPERTIES = ("world_size", "final_world_size", "mesh_shape", "mesh_axes", "launcher", "backend",
              "tessera_mpi_version", "git_commit", "slurm_job_id", "slurm_step_id", "slurm_nodelist", "slurm_partition", "slurm_cluster")
"""Root attributes copied into <properties> (those present)."""


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot carry at all (MPI strings sometimes hold NULs)."""


def _clean(text: str) -> str:
    return _NOT_XML.sub("?", text)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def junit_xml(run: RunSummary) -> str:
    """Return the JUnit XML document for `run`.

    failed -> <failure>, error -> <error>, skipped -> <skipped>, each with the check's message
    (its first line as the `message` attribute, all of it as text); the headline goes to
    <system-out>. A --baseline regression is one more test case, `baseline`, that fails. A run
    still going (or ended early) says so in an <error> case named `run`.
    """
    cases = []
    for record in run.checks:
        case = ET.Element("testcase", classname=SUITE_NAME, name=record.name,
                          time=f"{float(record.duration_s):.3f}")
        tag = {"failed": "failure", "error": "error", "skipped": "skipped"}.get(record.status)
        if tag is not None:
            element = ET.SubElement(case, tag, message=_first_line(record.message), type=record.status)
            element.text = record.message
            if record.status == "error" and "traceback" in record.attrs:
                element.text += "\n\n" + str(plain(record.attrs["traceback"]))
        ET.SubElement(case, "system-out").text = record.headline
        cases.append(case)
    if run.baseline is not None:
        case = ET.Element("testcase", classname=SUITE_NAME, name="baseline", time="0")
        if run.baseline_regressions:
            element = ET.SubElement(case, "failure", type="regression",
                                    message=f"{len(run.baseline_regressions)} regression(s) against {run.baseline}")
            element.text = "\n".join(run.baseline_lines)
        ET.SubElement(case, "system-out").text = "\n".join(run.baseline_lines)
        cases.append(case)
    if not run.complete:
        case = ET.Element("testcase", classname=SUITE_NAME, name="run", time=f"{run.elapsed_s:.3f}")
        ET.SubElement(case, "error", type="incomplete",
                      message="the run had not finished when this report was written")
        cases.append(case)
    tag_of = {c: next((e.tag for e in c if e.tag in ("failure", "error", "skipped")), None) for c in cases}
    suite = ET.Element(
        "testsuite", name=SUITE_NAME, tests=str(len(cases)),
        failures=str(sum(t == "failure" for t in tag_of.values())),
        errors=str(sum(t == "error" for t in tag_of.values())),
        skipped=str(sum(t == "skipped" for t in tag_of.values())),
        time=f"{run.elapsed_s:.3f}", timestamp=str(run.attrs.get("created", "")),
        hostname=os.uname().nodename,
    )
    properties = ET.SubElement(suite, "properties")
    for key in PROPERTIES:
        if key in run.attrs:
            value = plain(run.attrs[key])
            text = "x".join(map(str, value)) if key == "mesh_shape" else (
                ",".join(map(str, value)) if isinstance(value, list) else str(value))
            ET.SubElement(properties, "property", name=key, value=text)
    ET.SubElement(properties, "property", name="results_file", value=run.results_file)
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
