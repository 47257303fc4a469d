"""Calendar feeds: /feeds/events.ics with 500 published events (target p95 < 100 ms).

The code lives in benchmarks/_calendar_feed.py. This file is named as the issue asks, but a script run
from benchmarks/ (run_all.py) has this directory on sys.path, where `import calendar` of the standard
library (http.cookiejar, email, ...) would find this file; then it hands out the real module instead.

    .venv/bin/python benchmarks/calendar.py              # SQLite and PostgreSQL
    .venv/bin/python benchmarks/calendar.py SQLite
"""

import sys

if __name__ == "calendar":
    import importlib.util
    import sysconfig
    from pathlib import Path

    _spec = importlib.util.spec_from_file_location("calendar", Path(sysconfig.get_paths()["stdlib"]) / "calendar.py")
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["calendar"] = _module  # the import system returns what is in sys.modules after this runs
    _spec.loader.exec_module(_module)
else:
    from pathlib import Path

    _ROOT = Path(__file__).resolve().parent.parent
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    from benchmarks._calendar_feed import TITLE, main  # noqa: E402,F401

    if __name__ == "__main__":
        main(sys.argv[1:])
