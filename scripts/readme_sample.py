#!/usr/bin/env python
"""The README's sample output: what `python -m harness sweep=smoke` prints on a fresh clone.

    python scripts/readme_sample.py            # run the smoke sweep in a temporary directory, print its output
    python scripts/readme_sample.py --readme   # and rewrite the block between the smoke-output markers in README.md
                                               # and docs/report.png (the report in headless chromium, if installed)

The sweep runs as a user would run it (a subprocess, no terminal: the progress bar becomes a
line every few runs, which are left out here), in a fresh temporary results root, so nothing
stored earlier is reused. Timings and the temporary path are the run's own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from markers import write_block

ROOT = Path(__file__).resolve().parents[1]


def sample(screenshot: Path | None = None) -> str:
    """The smoke sweep's output without its progress lines, with the temporary root shown as results/;
    with ``screenshot``, its report's first screen rendered by headless chromium into that PNG (1280x900)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "harness", "sweep=smoke"],  # results/ under tmp, as a user's
                              cwd=tmp, capture_output=True, text=True, env={**os.environ, "COLUMNS": "110"})
        if done.returncode != 0:
            raise SystemExit(f"the smoke sweep exited {done.returncode}: {done.stderr.strip()[-500:]}")
        lines = [ln.rstrip() for ln in done.stdout.splitlines() if not ln.startswith("runs ")]
        if screenshot is not None:
            shoot(Path(tmp) / "results" / "smoke", screenshot)
        return "\n".join(lines).replace(f"{tmp}/", "")


def shoot(results: Path, png: Path) -> None:
    """``python -m harness report RESULTS``, then a headless-chromium screenshot of its first screen as a
    user sees it on a 1280x900 window: the answer per scenario and the next step."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium not found: docs/report.png left as it is (apt-get install -y chromium)", file=sys.stderr)
        return
    report = results.parent / "report"
    cwd = results.parents[1]  # the sweep's directory: the report's commands read as the user's (results/smoke)
    subprocess.run([sys.executable, "-m", "harness", "report", str(results.relative_to(cwd)), "--out", str(report)],
                   check=True, capture_output=True, cwd=cwd)
    raw = results.parent / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--hide-scrollbars", f"--screenshot={raw}",
                    "--window-size=1280,900", f"file://{report / 'index.html'}"], check=True, capture_output=True)
    from PIL import Image

    image = Image.open(raw)
    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=128).save(png, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", action="store_true", help="rewrite the block in README.md")
    args = ap.parse_args()
    text = sample(ROOT / "docs" / "report.png" if args.readme else None)
    print(text)
    if args.readme:
        write_block(ROOT / "README.md", "smoke-output",
                    f"Produced by `python scripts/readme_sample.py --readme` on {time.strftime('%Y-%m-%d')}:\n\n"
                    f"```text\n$ python -m harness sweep=smoke\n{text}\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
