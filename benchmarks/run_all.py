"""Run every benchmark module (benchmarks/*.py with a `main()`) and write benchmarks/RESULTS.md.

A benchmark's `main(argv: list[str] | None = None)` prints its own progress and returns a list of
result rows (dicts: column → value), one per measured setting; they become a table under the
module's title (its `TITLE`, or the first line of its docstring). `make bench` runs this file;
`.venv/bin/python benchmarks/run_all.py signup_race checkin` runs only the named modules and keeps the
other modules' tables already in RESULTS.md (each marked with the run it came from).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Running this file puts benchmarks/ first on sys.path, where benchmarks/calendar.py would shadow the
# standard library's `calendar` (used by http.cookiejar, email, ...). Modules are imported as
# `benchmarks.<name>` from the project root instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import importlib  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"


def discover() -> list[str]:
    return [p.stem for p in sorted(BENCH_DIR.glob("*.py"))
            if not p.stem.startswith("_") and p.stem != "run_all"]


def markdown_table(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    cell = lambda value: str(value).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def previous_sections() -> dict[str, str]:
    """Sections of the current RESULTS.md by module name (from their `benchmarks/<name>.py` line)."""
    if not RESULTS.exists():
        return {}
    found = {}
    for chunk in RESULTS.read_text(encoding="utf-8").split("\n## ")[1:]:
        match = re.search(r"`benchmarks/(\w+)\.py`", chunk)
        if match:
            found[match.group(1)] = "## " + chunk.rstrip("\n") + "\n"
    return found


def main(only: list[str] | None = None) -> int:
    """Run the benchmarks (all, or the modules named in `only`) and write RESULTS.md."""
    sys.path.insert(0, str(PROJECT_ROOT))
    os.chdir(PROJECT_ROOT)
    sections, failed = [], []
    kept = previous_sections() if only else {}
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    load_at_start = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    for name in discover():
        if only and name not in only:
            if name in kept:
                sections.append(kept[name])
            continue
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except Exception:
            traceback.print_exc()
            failed.append(name)
            sections.append(f"## {name}\n\nFAILED to import:\n\n```\n{traceback.format_exc(limit=5)}```\n")
            continue
        if not callable(getattr(module, "main", None)):
            continue
        title = getattr(module, "TITLE", None) or (module.__doc__ or name).strip().splitlines()[0]
        print(f"=== {name}: {title} ===", flush=True)
        started = time.perf_counter()
        try:
            rows = module.main([])
            body = markdown_table(rows) if rows else "(no results)"
        except Exception:
            traceback.print_exc()
            failed.append(name)
            body = "FAILED:\n\n```\n" + traceback.format_exc(limit=5) + "```"
        took = time.perf_counter() - started
        sections.append(f"## {title}\n\n`benchmarks/{name}.py` ({took:.0f} s, run {stamp})\n\n{body}\n")

    header = (
        "# Benchmark results\n\n"
        f"Written by `make bench` (benchmarks/run_all.py) on {stamp}"
        + (f" (only {', '.join(only)}; other tables kept from earlier runs)" if only else "") + ".\n\n"
        f"- nproc: {len(os.sched_getaffinity(0))}  ({cpu_model()})\n"
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}\n"
        f"- load average when the run started: {load_at_start}\n"
        "- Latencies in milliseconds, measured by the client. The machine may be shared with other work,\n"
        "  so compare numbers from the same run rather than across runs.\n"
    )
    RESULTS.write_text(header + "\n" + "\n".join(sections), encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(PROJECT_ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
