"""Submit a sweep to a running Ray cluster as a batch job (``ray job submit``).

    python scripts/submit.py [--address http://127.0.0.1:8265] [--no-wait] [--working-dir DIR] \\
        sweep=smoke [overrides ...]

The sweep's driver (``python -m harness ...``) then runs on the cluster's head node and its
actors on every node; the job outlives this command with ``--no-wait`` (follow it with
``ray job logs -f JOB_ID``, stop it with ``ray job stop JOB_ID``).

What this adds to a bare ``ray job submit -- python -m harness ...``:

* ``ray.address=auto`` unless given: the job's driver joins the cluster it runs on
  (``ray.address=null`` would start a separate embedded Ray on the head node);
* ``store.root`` made absolute (default ``./results``): a job runs in a directory of the
  head node that is not the one you submit from. The path is on the *head node*;
* ``RAY_AUTH_MODE=token`` for the client when unset and a token is at hand (``RAY_AUTH_TOKEN``,
  ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``): a cluster with token authentication
  (what ``ray start`` turns on when a token exists) rejects job clients without it.

The harness (and the code of your own scenarios) must be importable on every node: install
it there, or ship a directory with ``--working-dir`` (Ray uploads it for the job).
Exit code: 0 the job succeeded (every run completed); 1 it failed (some run did not complete,
bad input, Ray unavailable: the sweep's own exit code is in ``ray job logs JOB_ID``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path


def token_available() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


def job_command(overrides: list[str], cwd: Path) -> list[str]:
    """``python -m harness ...`` for the job: ray.address=auto and an absolute store.root."""
    args = list(overrides)
    if not any(a.startswith("ray.address=") for a in args):
        args.append("ray.address=auto")
    roots = [i for i, a in enumerate(args) if a.startswith("store.root=")]
    if not roots:
        args.append(f"store.root={cwd / 'results'}")
    for i in roots:
        root = Path(args[i].split("=", 1)[1]).expanduser()
        args[i] = f"store.root={root if root.is_absolute() else (cwd / root)}"
    return ["python", "-m", "harness", *args]


def main(argv: list[str] | None = None) -> int:
    usage = "%(prog)s [--address URL] [--no-wait] [--working-dir DIR] sweep=NAME [KEY=VALUE ...]"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], usage=usage)
    p.add_argument("--address", default=os.environ.get("RAY_API_SERVER_ADDRESS") or "http://127.0.0.1:8265",
                   help="the cluster's dashboard (job API) URL (default $RAY_API_SERVER_ADDRESS or "
                        "http://127.0.0.1:8265)")
    p.add_argument("--no-wait", action="store_true", help="return once the job is submitted")
    p.add_argument("--working-dir", help="a directory Ray uploads and runs the job in")
    p.add_argument("--submission-id", help="a job id of your choice (default: Ray's)")
    p.add_argument("--dry-run", action="store_true", help="print the ray job submit command, run nothing")
    a, overrides = p.parse_known_args(argv)
    bad = [o for o in overrides if "=" not in o or o.startswith("-")]
    if bad or not any(o.startswith("sweep=") for o in overrides):
        p.error(f"give sweep=NAME and KEY=VALUE overrides (got {' '.join(bad) or 'no sweep='})")
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", a.address]
    if a.no_wait:
        cmd.append("--no-wait")
    if a.working_dir:
        cmd += ["--working-dir", a.working_dir]
    if a.submission_id:
        cmd += ["--submission-id", a.submission_id]
    cmd += ["--", *job_command(overrides, Path.cwd())]
    env = dict(os.environ)
    if "RAY_AUTH_MODE" not in env and token_available():
        env["RAY_AUTH_MODE"] = "token"
    if a.dry_run:
        auth = [f"RAY_AUTH_MODE={env['RAY_AUTH_MODE']}"] if "RAY_AUTH_MODE" in env else []
        print(shlex.join([*auth, "ray", *cmd[3:]]))
        return 0
    return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
