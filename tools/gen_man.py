#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""gen_man.py TEMPLATE OUTPUT NAFTIKOD VERSION: fill naftikod(8) from its template, with the
serve options taken from the binary's own option table (`naftikod serve --options-markdown`)."""
import datetime
import os
import re
import subprocess
import sys


def troff(text):
    """Escape text for a troff body line."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return text if not text.startswith((".", "'")) else "\\&" + text


def main():
    template, output, binary, version = sys.argv[1:5]
    table = subprocess.run([binary, "serve", "--options-markdown"], check=True,
                           capture_output=True, text=True).stdout
    lines = []
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", row.strip()[1:-1])]
        flag, env, key, default, meaning = (cells + [""] * 5)[:5]
        flag = flag.strip("`")
        name, _, arg = flag.partition(" ")
        lines.append(".TP")
        lines.append("\\fB%s\\fR%s" % (troff(name), " \\fI%s\\fR" % troff(arg) if arg else ""))
        extra = []
        if env and env != "-":
            extra.append("env " + env.strip("`"))
        if key and key != "-":
            extra.append("config " + key.replace("`", ""))
        extra.append("default " + default.replace("`", ""))
        lines.append(troff(re.sub(r"`", "", meaning)) + " (" + "; ".join(extra) + ").")
    if not lines:
        sys.exit("gen_man.py: no options from %s serve --options-markdown" % binary)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None
    date = (datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc) if epoch
            else datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%d")
    with open(template, encoding="utf-8") as f:
        page = f.read()
    page = (page.replace("@SERVE_OPTIONS@", "\n".join(lines)).replace("@VERSION@", version)
            .replace("@DATE@", date))
    with open(output + ".tmp", "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(output + ".tmp", output)


main()
