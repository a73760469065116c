#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (never committed).

Seeds come from the repository (the bundled sample, golden test cases, the default pack) and,
when VIGIL_CORPUS names the shared detection corpus, from its real rules and CloudTrail events.
Each seed is one file named by its content's hash, so re-running the script adds nothing twice.
Usage: fuzz/seed.py  (run from anywhere; scripts/fuzz calls it)
"""

import hashlib
import os
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"
CORPUS = os.environ.get("VIGIL_CORPUS")

# A seed larger than this is cut: libFuzzer's default -max_len follows the seeds, and huge
# seeds make every run slow without exploring more.
MAX_SEED = 16 * 1024


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    data = data[:MAX_SEED]
    if not data:
        return
    folder = OUT / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def files(base, pattern):
    base = pathlib.Path(base)
    return sorted(base.rglob(pattern)) if base.is_dir() else []


def event_chunks(path, per_seed=8):
    lines = path.read_bytes().splitlines(keepends=True)
    for at in range(0, len(lines), per_seed):
        yield b"".join(lines[at : at + per_seed])


def main():
    event_files = [ROOT / "examples" / "cloudtrail.ndjson"]
    event_files += files(ROOT / "tests" / "cases", "input.ndjson")
    yaml_rules = files(ROOT / "rules" / "default", "*.yml")
    yaml_rules += files(ROOT / "tests" / "cases" / "sigma", "*.yml")
    yaml_rules += files(ROOT / "tests" / "cases" / "correlation", "*.yml")
    panther_specs = files(ROOT / "tests" / "cases" / "panther", "*.yml")
    toml_rules = files(ROOT / "tests" / "cases" / "elastic", "*.toml")
    toml_rules += files(ROOT / "tests" / "elastic_rules", "*.toml")
    if CORPUS:
        corpus = pathlib.Path(CORPUS)
        event_files += files(corpus / "events", "*.ndjson")
        yaml_rules += files(corpus / "sigma", "*.yml")
        panther_specs += files(corpus / "panther", "*.yml")
        toml_rules += files(corpus / "elastic", "*.toml")
    else:
        print("fuzz/seed.py: VIGIL_CORPUS is not set: seeding from the repository only", file=sys.stderr)

    for path in event_files:
        for chunk in event_chunks(path):
            write("processor", chunk)
        for line in path.read_bytes().splitlines()[:200]:
            write("event", line)

    for path in yaml_rules:
        text = path.read_text(errors="replace")
        write("sigma_yaml", text)
        for match in re.finditer(r"^\s*condition:\s*(.+)$", text, re.M):
            write("sigma_condition", match.group(1).strip().strip("'\""))

    for path in panther_specs:
        text = path.read_text(errors="replace")
        module = re.search(r"^Filename:\s*(\S+)", text, re.M)
        python = ""
        if module:
            py = path.parent / module.group(1)
            if py.is_file():
                python = py.read_text(errors="replace")
                write("python", python)
            # The target writes the module as rule.py next to the spec.
            text = text.replace(module.group(0), "Filename: rule.py")
        write("panther", text + ("\n#--- rule.py\n" + python if python else ""))

    for path in toml_rules:
        text = path.read_text(errors="replace")
        write("elastic_toml", text)
        try:
            rule = tomllib.loads(text).get("rule", {})
        except tomllib.TOMLDecodeError:
            continue
        query = rule.get("query")
        if not isinstance(query, str):
            continue
        language = rule.get("language", "kuery")
        target = {"kuery": "kql", "eql": "eql", "esql": "esql"}.get(language)
        if target:
            write(target, query)

    for target in sorted(p.name for p in OUT.iterdir() if p.is_dir()):
        print(f"{target}: {len(list((OUT / target).iterdir()))} seeds")


if __name__ == "__main__":
    main()
