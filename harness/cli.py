"""``python -m harness sweep=NAME [overrides]``: compose the config with Hydra, validate, run.

The DictConfig stops here: it is resolved to a plain dict and validated into a
typed SweepConfig before anything starts. Exit codes:

    0  every run of the sweep, as stored now, completed (whatever its checks found:
       failures are results)
    1  some stored runs of the sweep did not complete (error, crashed, timeout), in this
       invocation or an earlier one; their rows are stored (sweep.rerun=incomplete redoes them)
    2  bad command line or configuration; nothing was started or written
    3  Ray could not be started or joined, or its actors could not start
    4  a result file could not be written (disk full, read-only, ...); runs stored before
       it are intact, rerun to resume
  130  interrupted (Ctrl-C); finished runs are stored, rerun to resume
  143  terminated (SIGTERM: timeout, a batch scheduler, ray job stop); finished runs are
       stored, rerun to resume
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import axes
from harness.overrides import UsageError, split, unparsable
from harness.suggest import did_you_mean

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_CLUSTER, EXIT_STORE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 4, 130, 143

# every axis of the table (harness.axes), wrapped under the usage's second column
_AXES = f"\n{' ' * 31}".join(textwrap.wrap(", ".join(axes.NAMES[:-1]) + f" or {axes.NAMES[-1]})", 48))
USAGE = f"""usage: python -m harness [sweep] sweep=NAME [KEY=VALUE ...] [--dry-run] [--cfg] [--config-dir DIR]
       python -m harness report RESULTS_DIR [--fresh DIR] [--outcome CHECK] [...]   (python -m harness.report)
       python -m harness replay RESULTS_DIR run_id=ID[,ID...] | worst=cell [check=NAME] [--trace] [target=...]
       python -m harness compare BEFORE AFTER [--fail-on worse] [--margin M] [--out DIR]
                                       two sweeps compared per cell and check, paired by seed
       python -m harness compact RESULTS_DIR        rewrite a sweep's part files as a few large ones
       python -m harness list [--config-dir DIR]    sweeps, scenarios, their parameters and checks
       python -m harness up [--actors N] [--idle-minutes M] | down | up --status
                                       keep Ray and its actors (TensorFlow imported) warm between sweeps
       python -m harness --version

Runs every run of a sweep on Ray and stores the finished runs as Parquet part files under
<store.root>/<sweep.name>/. Runs already stored are skipped (rerun to resume).

  sweep=NAME                   a file of conf/sweep/ (or of --config-dir DIR/sweep/)
  sweep.precision=[fp16,bf16]  set an axis ({_AXES}
  sweep.learning_rate=[1e-3,1e-2]  the optimizer's learning rate swept (default null:
                               the scenario's own)
  scenarios.loss_bound.bound=0.5   set a scenario parameter
  adaptive=width               add seeds per cell until each check's failure-rate interval
                               is at most adaptive.width wide (default 0.2)
  adaptive=bound               add seeds per cell until a bound with a guaranteed false-alarm
                               rate adaptive.target (default 0.01) can be given
  ray.address=auto             join a running cluster (default: the warm pool if one is up,
                               else embedded local Ray; ray.warm=false ignores the pool)
  store.root=/data/results     where results go (default: results)
  store.flush_runs=256 store.flush_seconds=2
                               finished runs are written together, a part file per 256 runs or
                               2 s after the first of them (kill -9 of the driver loses at most those)
  sweep.seed=range(0,50)       Hydra's sweep forms work as lists: range(a,b), 0,1,2
  --dry-run, -n                print how many runs the command would start, and its grid; run nothing
  --cfg                        print the composed config and exit
  --config-dir DIR             also look for sweep/ and scenario/ configs in DIR

exit codes: 0 all stored runs completed, 1 some stored runs errored/crashed/timed out,
            2 bad input (nothing written), 3 Ray unavailable, 4 cannot write results,
            130 interrupted (Ctrl-C), 143 terminated (SIGTERM)
"""


def _options(group: str, config_dir: str | None) -> str:
    from harness.listing import config_files

    return ", ".join(config_files(group, config_dir))


def _known_keys() -> list[str]:
    from harness.config import SWEEP_KEYS, AdaptiveConfig, RayConfig, StoreConfig

    return [*(f"sweep.{k}" for k in SWEEP_KEYS), *(f"ray.{k}" for k in RayConfig.__dataclass_fields__),
            *(f"adaptive.{k}" for k in AdaptiveConfig.__dataclass_fields__),
            *(f"store.{k}" for k in StoreConfig.__dataclass_fields__)]


KNOWN_KEYS: list[str] = []


def _hydra_message(exc: Exception, config_dir: str | None = None) -> str:
    """One line naming the key and the value from a Hydra/OmegaConf composition error."""
    from harness.config import AXES

    KNOWN_KEYS[:] = KNOWN_KEYS or _known_keys()
    typed = _typed_value_message(exc)
    if typed:
        return typed
    text = str(exc)
    m = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if m:
        options = _options(m.group(1), config_dir)
        return (f"{m.group(1)}: unknown {m.group(1)} {m.group(2)!r} (available: {options})"
                + did_you_mean(m.group(2), options.split(", ")))
    m = re.search(r"You must specify '([^']+)'", text)
    if m:
        return (f"{m.group(1)}: none selected; choose one with {m.group(1)}=NAME "
                f"(available: {_options(m.group(1), config_dir)})")
    m = re.search(r"Could not override '([^']+)'", text) or re.search(r"Could not append to config\. An item is "
                                                                       r"already at '([^']+)'", text)
    if m:
        key = m.group(1)
        leaf = key.rsplit(".", 1)[-1]
        if "." not in key and leaf in AXES:
            return f"{key}: not a top-level key; axes are set as sweep.{leaf}=[...] (e.g. sweep.{leaf}=[VALUE])"
        if key in KNOWN_KEYS:  # e.g. adaptive.target under adaptive=width, whose file does not set it
            return f"{key}: not set by the selected config files; add it with +{key}=VALUE"
        if key.startswith("scenarios."):
            return _scenario_key_message(key, config_dir)
        return (f"{key}: unknown config key (keys live under sweep., scenarios., adaptive., ray. and store.)"
                + did_you_mean(key, KNOWN_KEYS))
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return first


def _typed_value_message(exc: BaseException) -> str | None:
    """A value of the wrong type for a typed group (harness.schema), in the validators' words."""
    from omegaconf.errors import ValidationError

    from harness.config import explain

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ValidationError):
        cause = cause.__cause__ or cause.__context__
    key = getattr(cause, "full_key", None)
    if not key:
        return None
    value = getattr(cause, "value", None)
    return explain(key, value) or f"{key}: {value!r} is not a value of its type"


def _scenario_key_message(key: str, config_dir: str | None) -> str:
    """An override of a scenario key its config file does not have: a parameter the file leaves at
    its default, or a sweep of one (``_axes_``), is added with a leading +; a misspelt parameter gets
    the scenario's parameters and a did-you-mean."""
    import yaml

    from harness.listing import config_files

    parts = key.split(".")
    name = parts[1] if len(parts) > 1 else ""
    if len(parts) >= 4 and parts[2] == "_axes_":
        return (f"{key}: not in the config yet: sweep a parameter with a leading +, "
                f"+{key}=[VALUE,...] (a list of values)")
    path = config_files("scenario", config_dir).get(name)
    body = yaml.safe_load(path.read_text()) if path is not None else _inline_scenario(name, config_dir)
    if not isinstance(body, dict) or len(parts) != 3:
        return (f"{key}: unknown config key (scenario keys are scenarios.NAME.PARAM; scenarios: "
                f"{', '.join(config_files('scenario', config_dir))}, and those sweep files define)")
    known = [k for k in body if not k.startswith("_")]
    try:
        from harness.scenarios.base import constructor_parameters, load_class

        params = constructor_parameters(load_class(body.get("_target_", "")))
    except Exception:  # the class does not load: the file's own keys are what is known
        params = None
    param = parts[2]
    if params is None or param in params or (params == ["**"]):
        return (f"{key}: not set in the config of scenario {name}; add it with a leading +: +{key}=VALUE"
                if params is not None else f"{key}: not in the config of scenario {name}; add it with +{key}=VALUE")
    return (f"{key}: {param!r} is not a parameter of scenario {name} (parameters: {', '.join(params) or 'none'})"
            + did_you_mean(param, [*params, *known]))


def _inline_scenario(name: str, config_dir: str | None) -> dict[str, Any] | None:
    """The config of a scenario a sweep file defines itself (``scenarios: {NAME: {_target_: ...}}``)."""
    import yaml

    from harness.listing import config_files

    for path in config_files("sweep", config_dir).values():
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        body = (doc.get("scenarios") or {}).get(name) if isinstance(doc, dict) and \
            isinstance(doc.get("scenarios"), dict) else None
        if isinstance(body, dict) and "_target_" in body:
            return body
    return None


def compose_config(overrides: list[str], config_dir: str | None = None) -> dict[str, Any]:
    """Hydra compose of conf/ with ``overrides``, as a resolved plain dict. With ``config_dir``, its
    files are laid over the shipped ones (``listing.overlay``): a user's ``sweep/circles.yaml`` is the
    sweep ``circles``, not the built-in of that name (Hydra's own search path would give the shipped
    file precedence, silently)."""
    from hydra import compose, initialize_config_dir, initialize_config_module
    from omegaconf import OmegaConf

    from harness.schema import register

    register()
    if config_dir:
        from harness.listing import overlay

        with overlay(config_dir) as merged, initialize_config_dir(config_dir=str(merged), version_base="1.3"):
            try:
                cfg = compose(config_name="config", overrides=overrides)
            except Exception as exc:  # a YAML error names the file the user wrote, not its copy
                _point_back(exc, merged, config_dir)
                raise
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    with initialize_config_module(config_module="harness.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _point_back(exc: BaseException | None, merged: Path, config_dir: str) -> None:
    """Rename the overlay's copies in a YAML error's marks (the exception and its causes) to the
    files they were copied from: the user's, or the shipped ones."""
    from harness.listing import shipped_files

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for mark in (getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)):
            name = getattr(mark, "name", None)
            if isinstance(name, str) and name.startswith(str(merged)):
                rel = Path(name).relative_to(merged)
                user = Path(config_dir) / rel
                mark.name = str(user if user.is_file() else shipped_files().get(str(rel), name))
        exc = exc.__cause__ or exc.__context__


def _yaml_message(exc: Exception) -> str:
    """A YAML syntax error on one line: the file, the line and what is wrong."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"{mark.name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else "a config file"
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    opened = f" ({context} opened at line {cmark.line + 1})" if context and cmark is not None and mark is not None \
        and cmark.line != mark.line else ""
    return f"config: {where}: YAML syntax error: {problem}{opened}"


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from harness.warnfmt import one_line_warnings

    one_line_warnings()  # a command's warnings (a skipped part file, ...) are one line each
    if len(argv) >= 3 and argv[0] in ("--config-dir", "-cd") and argv[2] == "list":  # options before the command
        argv = ["list", "--config-dir", argv[1], *argv[3:]]
    command = SUBCOMMANDS.get(argv[0]) if argv else None
    if command is not None:
        return command(argv)
    if argv[:1] == ["sweep"]:  # python -m harness sweep sweep=smoke ...: the same as without the word
        argv = argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE, end="")
        return EXIT_OK
    if "--version" in argv:
        from harness import __version__

        print(f"harness {__version__}")
        return EXIT_OK
    return sweep(argv)


def _replay(argv: list[str]) -> int:  # python -m harness replay results/<sweep> run_id=ID
    from harness.replay import main as replay

    return replay(argv[1:])


def _report(argv: list[str]) -> int:  # python -m harness report results/<sweep> (= python -m harness.report)
    from harness.report import main as report

    return report(argv[1:])


def _list(argv: list[str]) -> int:  # python -m harness list: sweeps, scenarios, their parameters and checks
    from harness.listing import main as listing

    return listing(argv[1:])


def _compare(argv: list[str]) -> int:  # python -m harness compare BEFORE AFTER [--fail-on worse]
    from harness.comparison import main as compare

    return compare(argv[1:])


def _pool(argv: list[str]) -> int:  # the warm pool: python -m harness up [--actors N] / down
    from harness.pool import main as pool

    return pool(argv)


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "replay": _replay, "report": _report, "compare": _compare, "compact": lambda argv: compact_main(argv[1:]), "list": _list,
    "up": _pool, "down": _pool,
}


def sweep(argv: list[str]) -> int:
    """``python -m harness sweep=NAME [overrides]``: validate, run, store; the exit code (see USAGE)."""
    from harness.scenarios.base import counting_interrupts
    from harness.signals import install

    install()  # SIGTERM from here on stops the sweep like Ctrl-C
    with counting_interrupts():  # a KeyboardInterrupt a scenario raises itself is told from Ctrl-C
        checked = _validated(argv)
    if isinstance(checked, int):
        return checked
    cfg, resolved, specs = checked

    from harness.raysession import DispatchError
    from harness.scheduler import TrialError
    from harness.runner import run_sweep
    from harness.store import StoreError

    try:
        outcome = run_sweep(cfg, resolved=resolved, specs=specs, command=argv)
    except TrialError as exc:
        return _fail(f"scenario {exc}")
    except DispatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    except StoreError as exc:
        print(f"error: store: {exc}; runs stored before it are intact, rerun to resume", file=sys.stderr)
        return EXIT_STORE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (signals.Terminated)
        return _interrupted(exc, "finished runs are stored; rerun the same command to resume")
    return EXIT_INCOMPLETE if outcome.stored_incomplete or outcome.missing else EXIT_OK


def _interrupted(exc: KeyboardInterrupt, what: str) -> int:
    """One line and the exit code for Ctrl-C (130) or SIGTERM (143, raised as signals.Terminated)."""
    from harness import signals

    gap = "\n" if sys.stderr.isatty() else ""  # past the ^C the terminal echoed, or a progress bar's line
    if isinstance(exc, signals.Terminated) or signals.received:
        print(f"{gap}terminated (SIGTERM): {what}", file=sys.stderr)
        return EXIT_TERMINATED
    print(f"{gap}interrupted: {what}", file=sys.stderr)
    return EXIT_INTERRUPTED


def _validated(argv: list[str]) -> tuple[Any, dict[str, Any], list[Any]] | int:
    """The sweep's typed config, resolved dict and runs, with the results directory made; or the
    exit code, its one line printed (bad input: 2; --cfg, --dry-run: 0; Ctrl-C, SIGTERM)."""
    import yaml
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    from harness.config import ConfigError, sweep_config_from_dict
    from harness.scenarios.base import ScenarioError
    from harness.store import StoreError

    config_dir = None
    try:
        opts = split(argv)
        config_dir = opts.config_dir
        resolved = compose_config(opts.overrides, config_dir)
        if config_dir:  # a user's file of a shipped name is used, and said so
            from harness.listing import shadowed

            for rel, path in shadowed(config_dir):
                print(f"note: {path} is used in place of the built-in {rel}", file=sys.stderr)
        if opts.show_cfg:
            print(yaml.safe_dump(resolved, sort_keys=False), end="")
            return EXIT_OK
        cfg = sweep_config_from_dict(resolved)
        if opts.dry_run:
            from harness.grid import expand
            from harness.listing import print_plan

            print_plan(cfg, expand(cfg))
            return EXIT_OK
        return cfg, resolved, _preflight(cfg)
    except UsageError as exc:
        return _fail(str(exc))
    except yaml.YAMLError as exc:
        return _fail(_yaml_message(exc))
    except OverrideParseException as exc:
        return _fail(unparsable(exc.override, _first_line(exc.__context__ or exc)))
    except (HydraException, OmegaConfBaseException) as exc:
        if isinstance(exc.__cause__ or exc.__context__, yaml.YAMLError):
            return _fail(_yaml_message(exc.__cause__ or exc.__context__))
        return _fail(_hydra_message(exc, config_dir))
    except ConfigError as exc:
        return _fail(str(exc))
    except ScenarioError as exc:  # grid.expand names the scenario: "NAME: ..."
        return _fail(f"scenario {exc}")
    except StoreError as exc:
        return _fail(f"store.root: {exc}")
    except KeyboardInterrupt as exc:  # the user's Ctrl-C (or SIGTERM) while the config was checked
        return _interrupted(exc, "nothing was started or written")


def _first_line(exc: BaseException) -> str:
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)


def _preflight(cfg: Any) -> list[Any]:
    """runner.preflight (the grid, the scenarios, the results directory made), after the path is
    checked for what mkdir would only report as "File exists" (a dangling symlink), and leaving no
    directory behind when it fails: those it created are removed again (only empty ones)."""
    from harness.runner import preflight
    from harness.store import sweep_dir

    target = sweep_dir(cfg.results_root, cfg.name)
    _refuse_dangling(target)
    missing = [p for p in (target, *target.parents) if not os.path.lexists(p)]  # deepest first
    try:
        return preflight(cfg)
    except BaseException:
        for p in missing:
            try:
                p.rmdir()  # only when empty: never what another process wrote meanwhile
            except FileNotFoundError:
                continue
            except OSError:
                break
        raise


def _refuse_dangling(target: Path) -> None:
    """StoreError (or ConfigError for the sweep's own directory) for a symlink on the way to
    ``target`` that points nowhere (or into a loop): mkdir of it fails with a misleading "File
    exists"."""
    import errno

    from harness.config import ConfigError
    from harness.store import StoreError

    for p in reversed((target, *target.parents)):
        if not p.is_symlink():
            continue
        try:
            os.stat(p)
        except OSError as exc:
            message = (f"{p} is a symlink loop (to {os.readlink(p)}); fix the link or use another path"
                       if exc.errno == errno.ELOOP else
                       f"{p} is a dangling symlink (to {os.readlink(p)}, which does not exist); create its "
                       "target or use another path")
            if p == target:
                raise ConfigError("sweep.name", message) from None
            raise StoreError(message) from None


COMPACT_USAGE = """usage: python -m harness compact RESULTS_DIR

Rewrites the part files of a sweep directory (or of each sweep directory under a root) as a
few large files, one row set per run (its newest). Safe while readers read and a sweep
writes: the new files are renamed into place before the old ones are removed. A sweep does
this itself when it ends with more than store.compact_files part files.

Temporary files that compactions or sweeps killed mid-write left behind (.part-*.tmp of a
process that is gone) are removed first.

exit codes: 0 done, 2 bad path (nothing changed), 4 a file could not be written or removed
            (every run is still stored), 130 interrupted (Ctrl-C; likewise, and its temporary
            file removed), 143 terminated (SIGTERM: handled like Ctrl-C)
"""


def compact_main(argv: list[str]) -> int:
    """``python -m harness compact RESULTS_DIR`` (see COMPACT_USAGE)."""
    from harness.signals import install
    from harness.store import StoreError, part_files

    if not argv or any(a in ("-h", "--help") for a in argv):
        print(COMPACT_USAGE, end="")
        return EXIT_OK if argv else EXIT_USAGE
    options = [a for a in argv if a.startswith("-") or "=" in a]
    if options:
        return _fail(f"{options[0]}: unknown option (usage: python -m harness compact RESULTS_DIR)")
    if len(argv) != 1:
        return _fail(f"give one results directory (got {len(argv)}: {' '.join(argv)})")
    root = Path(argv[0])
    if not root.is_dir():
        return _fail(f"{root}: not a directory")
    dirs = [root] if part_files(root) else [d for d in sorted(root.iterdir()) if d.is_dir() and part_files(d)]
    if not dirs:
        return _fail(f"{root}: no part files (expected a results directory such as results/<sweep>)")
    install()  # SIGTERM (timeout, a scheduler) raises like Ctrl-C: the file being written is removed
    try:
        for d in dirs:
            _compact_one(d)
    except StoreError as exc:
        print(f"error: store: {exc}; every run is still stored", file=sys.stderr)
        return EXIT_STORE
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM
        return _interrupted(exc, "every run is still stored; compact again to finish")
    return EXIT_OK


def _compact_one(d: Path) -> None:
    """Compact one sweep directory and say what it did (warnings first, one a line)."""
    import time
    import warnings

    from harness.store import compact, part_files, remove_stale_temporaries

    t0 = time.perf_counter()
    remove_stale_temporaries(d)  # of a compaction or sweep killed mid-write (kill -9): nothing else would
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = compact(d)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    left = f"; {c.left} part file(s) left as they were (see the warnings)" if c.left else ""
    left += f"; {c.quarantined} unreadable part file(s) moved to {d / '_quarantine'}" if c.quarantined else ""
    if not c.replaced:
        print(f"{d}: nothing to compact ({len(part_files(d))} part file(s)){left}")
    else:
        print(f"compacted {d}: {c.replaced} part files -> {c.written} ({c.runs:,} runs, {c.rows:,} rows) "
              f"in {time.perf_counter() - t0:.1f}s{left}")
