"""What a sweep's embedded Ray starts without, and how it learns sooner that it is up.

``ray.init(address="local")`` starts, besides the GCS and the raylet (with its two agents) that a
sweep needs, three Python processes that a sweep's embedded Ray does not use unless configured to:

- a dashboard head, even without the dashboard: it then loads only Ray's usage-stats module (the
  harness turns usage stats off, RAY_USAGE_STATS_ENABLED=0, unless the user set it), and ray.init
  waits until it has imported and published its address before it starts the raylet;
- the autoscaler's monitor: nothing to scale on one machine;
- a log monitor: it streams the workers' output to the driver, which ``ray.log_to_driver`` (off
  by default) asks for.

Each imports Ray on the cores the rest of the start needs. And ray.init asks the GCS once a second
(``GlobalStateAccessor::GetNode``) whether the raylet has registered, so a registration just after
an ask costs up to a second more. ``lean_start`` (around the ray.init of a sweep's embedded Ray)
starts none of the three that the configuration does not use (``ray.include_dashboard=true`` keeps
the dashboard head and the monitor, usage stats the user turned on the dashboard head,
``ray.log_to_driver=true`` the log monitor) and asks every 20 ms until the raylet is there, then
lets Ray's own call fetch it. Without the monitor, ``ray status`` has no cluster status to show
for a sweep's embedded Ray (``ray.include_dashboard=true`` keeps it; a warm pool has it).
docs/benchmarks.md (figures 4 and 10) has what a cold sweep's start costs with it.

This is Ray's private API (``ray._private.node.Node``, ``ray._private.services.get_node``), reached
only through harness.compat.ray: where it has changed, that part is left to Ray and the start is as
before, said once (``lean_start`` yields what it changed; tests/test_raystart.py checks that every
part applies to the installed Ray). A warm pool
(harness.pool), meant to be inspected with Ray's own tools, starts as Ray starts it.

``init_local`` is the ray.init of every local Ray the harness starts (a sweep's, the warm pool's): its
files are private to the user. Ray puts its sessions (logs, sockets) under a temp directory it makes
world-writable (0777, no sticky bit) and writes the token that gates the cluster to
``~/.ray/auth_token`` with the umask's mode (0644 under the usual 022): with either, another local user could attach
to the Ray and run code as this user. The harness's Ray uses a temp directory inside one only the user
can enter (``$XDG_RUNTIME_DIR`` or ``/tmp``, ``harness-ray-<uid>``, mode 0700, checked to be the
user's own directory and not a symlink; the path is kept short: Ray's sockets live under it and a Unix
socket's path has at most 107 bytes), and a token file of mode 0600 (an existing one is tightened; a
missing one is created empty with that mode, and Ray writes its token into it). A user's own
``RAY_TMPDIR``, ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` are left as they are.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from harness.compat import ray as compat_ray

log = logging.getLogger(__name__)

REGISTRATION_POLL_S = 0.02
REGISTRATION_WAIT_S = 10.0  # then Ray's own call and its once-a-second wait take over
SKIPPED = {  # Node method: the process it starts
    "start_api_server": "dashboard head",
    "start_monitor": "autoscaler monitor",
    "start_log_monitor": "log monitor",
}


def _wait_registered(gcs_address: str, node_id: str) -> None:
    """Return once the GCS lists the node ``node_id`` (or after REGISTRATION_WAIT_S, or at once if
    the GCS cannot be asked this way)."""
    table = compat_ray.node_table(gcs_address)
    if table is None:
        return
    try:
        deadline = time.monotonic() + REGISTRATION_WAIT_S
        while time.monotonic() < deadline:
            if table.has(node_id):
                return
            time.sleep(REGISTRATION_POLL_S)
    except Exception:  # the GCS stopped answering: Ray's own wait says what happened
        return
    finally:
        table.close()


@contextmanager
def lean_start(*, dashboard: bool, usage_stats: bool, log_to_driver: bool) -> Iterator[list[str]]:
    """Inside the block, a Ray started by this process (ray.init) starts without the processes the
    configuration does not use and polls for its raylet every REGISTRATION_POLL_S (module doc).
    Yields what it changed, e.g. ["dashboard head", "autoscaler monitor", "log monitor",
    "registration poll"]; Ray is as it was after the block."""
    skip = [] if dashboard or usage_stats else ["start_api_server"]
    skip += [] if dashboard else ["start_monitor"]
    skip += [] if log_to_driver else ["start_log_monitor"]
    with ExitStack() as stack:
        changed = [SKIPPED[name] for name in compat_ray.skip_node_starts(stack, skip)]
        if compat_ray.poll_registration(stack, lambda gcs, node: _wait_registered(gcs, node)):
            changed.append("registration poll")
        yield changed


MAX_ROOT = 40  # Ray's longest socket path adds about 67 bytes to its temp directory's parent: 107 at most


class NotPrivateError(RuntimeError):
    """The directory meant for the harness's Ray is not private to the user (one line)."""


def private_root() -> Path | None:
    """The directory, mode 0700 and the user's own, inside which the harness's local Ray keeps its
    temp directory; None when the user set RAY_TMPDIR (then Ray's files go where they asked).
    Raises NotPrivateError when the path exists but is a symlink or another user's."""
    if os.environ.get("RAY_TMPDIR") or not hasattr(os, "getuid"):  # the user's choice; Windows: Ray's own
        return None
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    bases = [runtime] if runtime and _owned_dir(runtime, uid) else []
    base = next((b for b in [*bases, "/tmp"] if len(os.path.join(b, f"harness-ray-{uid}")) <= MAX_ROOT), "/tmp")
    root = Path(base) / f"harness-ray-{uid}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = root.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        what = "a symlink" if stat.S_ISLNK(st.st_mode) else (
            "not a directory" if not stat.S_ISDIR(st.st_mode) else f"owned by uid {st.st_uid}")
        raise NotPrivateError(f"{root} is {what}, not a directory private to this user for Ray's files: "
                              f"remove it, or set RAY_TMPDIR to a private directory")
    if stat.S_IMODE(st.st_mode) & 0o077:
        root.chmod(0o700)
    return root


def _owned_dir(path: str, uid: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not stat.S_IMODE(st.st_mode) & 0o077


def private_token() -> None:
    """Make the token file Ray reads and writes for a local cluster (``~/.ray/auth_token``) private to
    the user before Ray starts: tighten an existing one to 0600, or create it empty with mode 0600 for
    Ray to write its token into (Ray opens it for writing, which keeps the mode). Nothing when the
    user gives the token another way (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH) or turned tokens off."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    if os.environ.get("RAY_AUTH_MODE", "token").strip().lower() != "token":
        return
    path = Path.home() / ".ray" / "auth_token"
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        try:
            st = path.stat()
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
                path.chmod(0o600)
        except OSError as exc:
            log.warning("could not make %s private to this user: %s", path, exc)
    except OSError as exc:
        log.warning("could not create %s private to this user: %s", path, exc)


_temp_dir_refused: list[str] = []  # the ray.init argument this Ray did not know (logged once)


def init_local(ray: Any, **kwargs: Any) -> None:
    """ray.init(address="local", **kwargs) of a Ray whose files are private to the user (module doc):
    its temp directory inside private_root(), its token file 0600."""
    root = private_root()
    private_token()
    if root is None:
        ray.init(address="local", **kwargs)
        return
    temp = root / "ray"
    started = False
    if not _temp_dir_refused:
        try:
            # ray.init's documented option for the temp directory (one of its "hidden" keyword arguments)
            ray.init(address="local", _temp_dir=str(temp), **kwargs)
            started = True
        except RuntimeError as exc:
            if "_temp_dir" not in str(exc):  # Ray refuses unknown arguments before it starts anything
                raise
            _temp_dir_refused.append(str(exc))
            log.warning("this Ray does not take _temp_dir (%s): its temp directory is set with RAY_TMPDIR", exc)
    if not started:
        before = os.environ.get("RAY_TMPDIR")
        os.environ["RAY_TMPDIR"] = str(root)  # Ray's temp directory is then root/ray; its processes inherit it
        try:
            ray.init(address="local", **kwargs)
        finally:
            if before is None:
                os.environ.pop("RAY_TMPDIR", None)
            else:
                os.environ["RAY_TMPDIR"] = before
    try:
        temp.chmod(0o700)  # Ray made it 0777; its parent already keeps others out
    except OSError:
        pass
