"""The command line of ``python -m harness``: options, and Hydra habits translated.

A sweep is one Hydra compose, not a Hydra multirun, but people type what Hydra taught them:

* ``sweep.seed=range(0,50)`` and ``sweep.seed=0,1,2`` (Hydra's sweep syntax) mean the lists
  ``[0, ..., 49]`` and ``[0,1,2]`` here: every axis is swept anyway (a range stays the string
  ``range(0,50)`` through Hydra and the config expands it; a sweep file may say it too);
* ``-m`` / ``--multirun`` are accepted and change nothing, for the same reason;
* ``hydra.*`` keys (``hydra.sweep.dir=...``, ``hydra/launcher=ray``) would be silently
  ignored by a compose, so they are refused in one line that says what to use instead.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import RANGE
from harness.suggest import did_you_mean


class UsageError(ValueError):
    pass


@dataclass
class Options:
    overrides: list[str] = field(default_factory=list)
    show_cfg: bool = False
    dry_run: bool = False
    config_dir: str | None = None


def _top_level_commas(value: str) -> bool:
    depth, quote = 0, ""
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            return True
    return False


def translate(override: str) -> str:
    """One override in the harness's form (see the module docstring); UsageError for hydra.*."""
    key, _, value = override.partition("=")
    bare = key.lstrip("+~")
    if bare == "hydra" or bare.startswith(("hydra.", "hydra/")):
        raise UsageError(f"{bare}: Hydra's own settings are not used by harness (results go to "
                         "<store.root>/<sweep.name>/; Ray runs the sweep: see ray.address); remove it")
    if RANGE.match(value.strip()):
        # kept as one string, expanded and checked by the config (harness.config.RANGE): Hydra's parser
        # takes about a millisecond per list element, 100 s for range(0,100000)
        return f"{key}='{value.strip()}'"
    if value and not value.startswith(("[", "{", "'", '"')) and _top_level_commas(value):
        return f"{key}=[{value}]"
    return override


def split(argv: Iterable[str]) -> Options:
    """Options and overrides of ``python -m harness [...]``."""
    out = Options()
    it = iter(argv)
    argv = list(argv)
    it = iter(argv)
    for a in it:
        if a == "--cfg" or a.startswith("--cfg="):  # Hydra's --cfg job|all prints the composed config too
            what = a.split("=", 1)[1] if "=" in a else None
            if what is None and argv[argv.index(a) + 1:argv.index(a) + 2] and \
                    argv[argv.index(a) + 1] in ("job", "all", "hydra"):
                what = next(it)
            if what == "hydra":
                raise UsageError("--cfg hydra: Hydra's own config is not used by harness; --cfg (or --cfg job) "
                                 "prints the composed config")
            if what not in (None, "job", "all"):
                raise UsageError(f"--cfg {what}: --cfg takes job or all (or nothing): it prints the composed config")
            out.show_cfg = True
        elif a in ("--dry-run", "-n"):
            out.dry_run = True
        elif a in ("-m", "--multirun"):
            continue  # every axis is swept anyway
        elif a in ("--config-dir", "-cd") or a.startswith(("--config-dir=", "-cd=")):
            out.config_dir = a.split("=", 1)[1] if "=" in a else next(it, None)
            if not out.config_dir or not Path(out.config_dir).is_dir():
                raise UsageError(f"{a.split('=', 1)[0]}: {out.config_dir!r} is not a directory")
        elif a in ("--config-name", "-cn") or a.startswith(("--config-name=", "-cn=")):
            name = a.split("=", 1)[1] if "=" in a else next(it, "NAME")
            raise UsageError(f"{a.split('=', 1)[0]}: harness composes its own primary config; choose the sweep "
                             f"with sweep={name} (a file of conf/sweep/ or of --config-dir DIR/sweep/)")
        elif a.startswith("-"):
            raise UsageError(f"{a}: unknown option (see python -m harness --help)")
        elif a.startswith("~") and "=" not in a:  # Hydra's deletion of a key
            out.overrides.append(translate(a))
        elif "=" not in a:
            raise UsageError(f"{a}: not KEY=VALUE (e.g. sweep=smoke)")
        else:
            out.overrides.append(translate(a))
    return out


# what Hydra's override grammar reads unquoted in a value: ASCII letters and digits, whitespace
# inside, and these (hydra/grammar/OverrideLexer.g4: ID, UNQUOTED_CHAR, and : , [ ] { } ( ) in their roles)
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_/\-\\+.$%*@?|: ]*")
_KEY = re.compile(r"[~+]{0,2}[A-Za-z0-9_$\-./@:]+")


def hydra_quoted(value: str) -> str:
    """``value`` as one quoted Hydra string (single quotes unless it holds one)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quoted_value(value: str) -> str:
    """The value with what Hydra cannot read unquoted quoted: the whole value, or each element of a list."""
    if value.startswith("[") and value.endswith("]"):
        items = [v.strip() for v in value[1:-1].split(",")]
        return "[" + ",".join(v if _PLAIN_VALUE.fullmatch(v) or v[:1] in "'\"" else hydra_quoted(v)
                              for v in items) + "]"
    return hydra_quoted(value)


def _shell_word(text: str) -> str:
    """``text`` as one shell word, readably: in double quotes unless it holds what they expand."""
    return f'"{text}"' if not re.search(r'["$`\\!]', text) else shlex.quote(text)


def unparsable(override: str, problem: str) -> str:
    """One line for an override Hydra's grammar cannot read (``sweep.name=résumé_日本`` raised
    "LexerNoViableAltException"): the key, the value and how to quote it. Unquoted, Hydra reads only
    ASCII letters, digits and _-+./\\$%*@?: in a value; anything else (é, 日本, an apostrophe, a
    second =) needs quotes, ``key='value'``, which a shell strips unless they are quoted in turn:
    ``"key='value'"``."""
    key, sep, value = override.partition("=")
    if not sep or not _KEY.fullmatch(key):
        return (f"{key}: not a key Hydra can read ({problem}); keys are ASCII letters, digits, _ and -, "
                "joined by dots")
    fixed = f"{key}={_quoted_value(value)}"
    return (f"{key}: Hydra cannot read the value {value} unquoted ({problem}); quote it: {fixed} "
            f"(in a shell: {_shell_word(fixed)})")
