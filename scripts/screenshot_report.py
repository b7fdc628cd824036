"""Render an exported HTML report in headless Chromium (Debian's `chromium` package) to a PNG.

    .venv/bin/python scripts/screenshot_report.py \
        lake/reports/scores/burglary/2014-12-29/burglary_2014-12-29.html docs/report_burglary.png

docs/report_burglary.png was made this way from the demo lake's newest burglary week.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reports.exports import screenshot  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1700)
    args = parser.parse_args()
    print(screenshot(args.html, args.png, width=args.width, height=args.height))


if __name__ == "__main__":
    main()
