"""Screenshots of a report as people see it: headless Chromium at desktop and phone widths.

Run:  python benchmarks/screenshot_report.py RESULTS_DIR [--out DIR]

Writes ``report_1300x1000.png`` (the first screen on a desktop: the summary must fit in it),
``report_1300_full.png`` (the whole page) and ``report_390x844.png`` (a phone). Needs Chromium
(``apt-get install -y chromium``); CI needs no browser, this is for people to look at.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def screenshot(browser: str, page: str, out: str, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                        f"--window-size={width},{height}", f"file://{os.path.abspath(page)}"],
                       check=True, capture_output=True, timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a folder with report.html")
    parser.add_argument("--out", default=None, help="where to write the PNGs (default: results)")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no chromium on PATH: apt-get install -y chromium", file=sys.stderr)
        return 1
    page = os.path.join(args.results, "report.html")
    out = args.out or args.results
    for name, (w, h) in {"report_1300x1000.png": (1300, 1000), "report_1300_full.png": (1300, 9000),
                         "report_390x844.png": (390, 844)}.items():
        screenshot(browser, page, os.path.join(out, name), w, h)
        print(os.path.join(out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
