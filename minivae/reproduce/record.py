"""claim.json (one per claim and run of ``python -m minivae.reproduce``), its schema
check, and the claims table of docs/results.md generated from the claim.json files
(between ``<!-- claims:begin -->`` and ``<!-- claims:end -->``; never edited by hand)."""
from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import subprocess
import sys

from .verdict import VERDICTS

SCHEMA = "minivae.reproduce/claim/1"
BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"
REQUIRED = {"schema": str, "id": str, "title": str, "source": str, "paper": dict, "mode": str,
            "seeds": list, "measured": dict, "verdict": dict, "commands": list, "runs": list,
            "figures": list, "notes": list, "versions": dict, "seconds": (int, float), "created": str}


def versions():
    import numpy
    from .. import __version__
    out = {"minivae": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
           "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out["git"] = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    return out


def build(claim, result, *, mode, seeds, commands, runs, notes, seconds, argv):
    v = result["verdict"]
    return {"schema": SCHEMA, "id": claim.id, "title": claim.title, "source": claim.source,
            "paper": {"value": claim.paper, "number": claim.paper_number},
            "mode": mode, "seeds": list(seeds),
            "measured": {"unit": result["unit"], **result["measured"]},
            "verdict": v.to_dict(), "details": result.get("details", {}),
            "commands": commands, "reproduce_command": argv, "runs": runs,
            "figures": result.get("figures", []), "notes": notes,
            "versions": versions(), "seconds": seconds,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def check(doc):
    """Raise ValueError naming the first key of ``doc`` that breaks the claim.json schema."""
    for key, kind in REQUIRED.items():
        if key not in doc:
            raise ValueError(f"claim.json lacks the key {key!r}")
        if not isinstance(doc[key], kind):
            raise ValueError(f"claim.json key {key!r} should be {kind}, not {type(doc[key]).__name__}")
    if doc["schema"] != SCHEMA:
        raise ValueError(f"claim.json schema {doc['schema']!r}, expected {SCHEMA!r}")
    if doc["verdict"].get("verdict") not in VERDICTS:
        raise ValueError(f"claim.json verdict must be one of {VERDICTS}")
    for key in ("tolerance", "why"):
        if not doc["verdict"].get(key):
            raise ValueError(f"claim.json verdict lacks its {key!r}")
    for key in ("n", "mean", "values", "unit"):
        if key not in doc["measured"]:
            raise ValueError(f"claim.json measured lacks {key!r}")
    if not doc["commands"]:
        raise ValueError("claim.json lists no command")
    return doc


def write(doc, folder):
    check(doc)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "claim.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False, default=_default)
    os.replace(tmp, path)
    return path


def _default(o):
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def _fmt(x):
    return "—" if x is None else f"{x:.4g}"


def table(docs):
    """The markdown claims table from claim.json documents (in the registry's order)."""
    lines = ["| claim | source | paper | measured (mean; sd and range over seeds or runs) | verdict | mode, seeds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for d in docs:
        m = d["measured"]
        spread = f" (sd {_fmt(m['sd'])}, {_fmt(m['min'])}–{_fmt(m['max'])})" if m.get("sd") is not None else ""
        cells = [f"`{d['id']}`: {d['title']}", d["source"], d["paper"]["value"],
                 f"{_fmt(m['mean'])} {m['unit']}{spread}",
                 f"**{d['verdict']['verdict']}**: {d['verdict']['why']} [tolerance: {d['verdict']['tolerance']}]",
                 f"{d['mode']}, {len(d['seeds'])}"]
        # a '|' inside a cell (KL(q||p), |x|) would end the cell: escape it
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines).replace("\n\n", "\n")


def load_dir(folder, order):
    docs = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path) as f:
            d = check(json.load(f))
        docs[d["id"]] = d
    return [docs[i] for i in order if i in docs]


def update_results(results_md, docs, *, command):
    """Replace the text between the markers of ``results_md`` (appending a section with
    the markers when they are absent) with the generated table."""
    body = (f"{BEGIN}\n<!-- generated by `{command}` from docs/claims/*.json; do not edit -->\n\n"
            + table(docs) + "\n\nEach row's commands, per-seed values and versions are in "
            "`docs/claims/<id>.json`.\n" + END)
    text = open(results_md).read() if os.path.exists(results_md) else "# Measured results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Claims of the papers (python -m minivae.reproduce)\n\n" + body + "\n"
    with open(results_md, "w") as f:
        f.write(text)
    return results_md


def python_argv():
    return "python -m minivae.reproduce " + " ".join(sys.argv[1:])
