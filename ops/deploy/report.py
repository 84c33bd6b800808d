"""Smoke results as files a CI pipeline reads: JUnit XML and JSON. Pure functions."""

import json
import xml.etree.ElementTree as ET


def is_report(path):
    """A file one of these functions wrote (so a later run may replace it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return (head.lstrip().startswith(b"<?xml") and b"<testsuite" in head) or (
        head.lstrip().startswith(b"{") and b'"target"' in head and b'"checks"' in head)


def to_json(results, target):
    failed = [r for r in results if not r.ok]
    return json.dumps({
        "target": target, "passed": len(results) - len(failed), "failed": len(failed),
        "ok": not failed,
        "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail,
                    "seconds": round(r.seconds, 3)} for r in results],
    }, indent=2) + "\n"


def to_junit(results, target):
    """One <testcase> per check; a failure's message says what was expected and what came back."""
    failed = [r for r in results if not r.ok]
    suite = ET.Element("testsuite", {
        "name": "flask-ops smoke", "tests": str(len(results)), "failures": str(len(failed)),
        "errors": "0", "skipped": "0", "time": f"{sum(r.seconds for r in results):.3f}",
    })
    ET.SubElement(ET.SubElement(suite, "properties"), "property",
                  {"name": "target", "value": target})
    for r in results:
        case = ET.SubElement(suite, "testcase", {
            "classname": "flask_ops.smoke", "name": r.name, "time": f"{r.seconds:.3f}"})
        if r.ok:
            ET.SubElement(case, "system-out").text = r.detail
        else:
            failure = ET.SubElement(case, "failure", {"message": r.detail[:500],
                                                      "type": "SmokeCheckFailed"})
            failure.text = r.detail
    suites = ET.Element("testsuites", {"tests": str(len(results)),
                                       "failures": str(len(failed))})
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
