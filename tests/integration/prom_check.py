#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""prom_check.py: a strict parser of the Prometheus text exposition format 0.0.4.

usage: prom_check.py FILE  (or - for stdin)

Checks, failing (exit 1, one message per problem on stderr) on any violation:
  - every line is a HELP/TYPE comment, another comment, blank, or a sample;
  - metric and label names are valid, label names not reserved (__*), no duplicate label;
  - label values use only the \\\\, \\" and \\n escapes;
  - values are floats (NaN, +Inf, -Inf allowed); an optional timestamp is an integer;
  - every sample belongs to a family with a TYPE line given before its first sample, at most one
    TYPE and one HELP per family, and a family's lines are not interleaved with another's;
  - no duplicate series;
  - counters (and histogram buckets, _count) are non-negative and not NaN;
  - histograms: _bucket samples carry le, per label set the buckets are in increasing le order,
    cumulative (non-decreasing), end with le="+Inf", and +Inf equals _count; _sum and _count
    present.
On success prints a JSON object {"series": {"name{a=\\"x\\",b=\\"y\\"}": value, ...},
"types": {family: type}} (labels sorted by name) on stdout.
"""
import json
import math
import re
import sys

METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

errors = []


def err(lineno, msg):
    errors.append(f"line {lineno}: {msg}")


def parse_float(s):
    if s in ("NaN",):
        return math.nan
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if not re.fullmatch(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)", s):
        raise ValueError(s)
    return float(s)


def parse_sample(line, lineno):
    """Returns (name, labels dict, value) or None."""
    m = METRIC_RE.match(line)
    if not m:
        err(lineno, f"invalid metric name in {line!r}")
        return None
    name = m.group(0)
    i = m.end()
    labels = {}
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            if i < len(line) and line[i] == "}":
                i += 1
                break
            lm = LABEL_RE.match(line, i)
            if not lm:
                err(lineno, f"invalid label name at column {i + 1}")
                return None
            lname = lm.group(0)
            if lname.startswith("__"):
                err(lineno, f"reserved label name {lname}")
            i = lm.end()
            if line[i:i + 2] != '="':
                err(lineno, f"expected =\" after label {lname}")
                return None
            i += 2
            val = []
            while True:
                if i >= len(line):
                    err(lineno, f"unterminated value of label {lname}")
                    return None
                c = line[i]
                if c == "\\":
                    nxt = line[i + 1:i + 2]
                    if nxt == "\\":
                        val.append("\\")
                    elif nxt == '"':
                        val.append('"')
                    elif nxt == "n":
                        val.append("\n")
                    else:
                        err(lineno, f"invalid escape \\{nxt} in label {lname}")
                        return None
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                val.append(c)
                i += 1
            if lname in labels:
                err(lineno, f"duplicate label {lname}")
            labels[lname] = "".join(val)
            if i < len(line) and line[i] == ",":
                i += 1
                continue
            if i < len(line) and line[i] == "}":
                i += 1
                break
            err(lineno, f"expected , or }} after label {lname}")
            return None
    if i >= len(line) or line[i] not in " \t":
        err(lineno, "expected whitespace before the value")
        return None
    rest = line[i:].split()
    if len(rest) not in (1, 2):
        err(lineno, f"expected a value and an optional timestamp, got {rest!r}")
        return None
    try:
        value = parse_float(rest[0])
    except ValueError:
        err(lineno, f"invalid value {rest[0]!r}")
        return None
    if len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1]):
        err(lineno, f"invalid timestamp {rest[1]!r}")
    return name, labels, value


def family_of(name, types):
    """The family a sample name belongs to (histogram/summary suffixes folded)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if types.get(base) in ("histogram", "summary"):
                if suffix == "_bucket" and types[base] != "histogram":
                    continue
                return base
    return name


def key(name, labels):
    inner = ",".join(
        f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        for k, v in sorted(labels.items())
    )
    return f"{name}{{{inner}}}" if labels else name


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    if text and not text.endswith("\n"):
        err(text.count("\n") + 1, "the last line does not end with a newline")
    types, helps = {}, set()
    seen_sample = set()  # families that already had a sample
    started = set()  # families whose block of lines began
    current = None
    series = {}
    hist = {}  # (family, labels without le) -> {"buckets": [(le, v)], "sum", "count"}
    for lineno, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else
                                  text.split("\n"), 1):
        if line.strip() == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                fam = parts[2]
                if not METRIC_RE.fullmatch(fam):
                    err(lineno, f"invalid metric name {fam!r} in {parts[1]}")
                    continue
                if current != fam:
                    if fam in started:
                        err(lineno, f"lines of {fam} are not grouped together")
                    started.add(fam)
                    current = fam
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        err(lineno, f"invalid TYPE line {line!r}")
                        continue
                    if fam in types:
                        err(lineno, f"second TYPE for {fam}")
                    if fam in seen_sample:
                        err(lineno, f"TYPE for {fam} after its first sample")
                    types[fam] = parts[3]
                else:
                    if fam in helps:
                        err(lineno, f"second HELP for {fam}")
                    helps.add(fam)
                    doc = parts[3] if len(parts) == 4 else ""
                    if re.search(r"\\[^\\n]", doc.replace("\\\\", "")):
                        err(lineno, f"invalid escape in HELP of {fam}")
            continue
        s = parse_sample(line, lineno)
        if s is None:
            continue
        name, labels, value = s
        fam = family_of(name, types)
        if fam not in types:
            err(lineno, f"sample {name} has no TYPE line before it")
            continue
        if fam != current:
            if fam in started:
                err(lineno, f"lines of {fam} are not grouped together")
            started.add(fam)
            current = fam
        seen_sample.add(fam)
        k = key(name, labels)
        if k in series:
            err(lineno, f"duplicate series {k}")
        series[k] = value
        t = types[fam]
        if t == "counter" and (math.isnan(value) or value < 0):
            err(lineno, f"counter {k} is negative or NaN")
        if t == "histogram":
            base_labels = {a: b for a, b in labels.items() if a != "le"}
            h = hist.setdefault((fam, key(fam, base_labels)),
                                {"buckets": [], "sum": None, "count": None})
            if name == fam + "_bucket":
                if "le" not in labels:
                    err(lineno, f"bucket {k} without le")
                    continue
                try:
                    le = parse_float(labels["le"])
                except ValueError:
                    err(lineno, f"invalid le {labels['le']!r}")
                    continue
                if math.isnan(value) or value < 0:
                    err(lineno, f"bucket {k} is negative or NaN")
                h["buckets"].append((le, value, lineno))
            elif name == fam + "_sum":
                h["sum"] = value
            elif name == fam + "_count":
                if math.isnan(value) or value < 0:
                    err(lineno, f"{k} is negative or NaN")
                h["count"] = value
            else:
                err(lineno, f"sample {name} does not belong to histogram {fam}")
    for (fam, hk), h in hist.items():
        b = h["buckets"]
        if not b:
            err(0, f"histogram {hk} has no buckets")
            continue
        for (le1, v1, _), (le2, v2, ln) in zip(b, b[1:]):
            if not le2 > le1:
                err(ln, f"histogram {hk}: le {le2} not above {le1}")
            if v2 < v1:
                err(ln, f"histogram {hk}: bucket le={le2} ({v2}) below le={le1} ({v1}): "
                        "not cumulative")
        if b[-1][0] != math.inf:
            err(b[-1][2], f"histogram {hk}: last bucket is not le=\"+Inf\"")
        if h["count"] is None or h["sum"] is None:
            err(0, f"histogram {hk}: _sum or _count missing")
        elif b[-1][1] != h["count"]:
            err(b[-1][2], f"histogram {hk}: +Inf bucket {b[-1][1]} != _count {h['count']}")
    if errors:
        for e in errors:
            print(f"prom_check: {e}", file=sys.stderr)
        return 1
    out = {k: (None if math.isnan(v) else v if math.isfinite(v) else str(v))
           for k, v in series.items()}
    json.dump({"series": out, "types": types}, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
