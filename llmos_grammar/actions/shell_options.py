"""Commands an allow-list never admits, and options of listed commands that run programs.

`REFUSED` names commands that run other commands (from their arguments, their input
or files they read) or change how bash finds commands: they are refused even when a
policy lists them. `OPTIONS` holds, for commands commonly allowed, a check of their
arguments that refuses the options known to run a program (`find -exec`, `sort
--compress-program`, `sed`'s `e`, `awk`'s `system()` ...). A listed command outside
both tables has its arguments unchecked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llmos_grammar.actions.shell_awk import awk_args
from llmos_grammar.actions.shell_sed import sed_args
from llmos_grammar.actions.shell_words import Word

ArgCheck = Callable[[Sequence[Word]], str | None]

_RUNS = "runs the command given in its arguments"
_CODE = "is a shell or interpreter: it runs code from its arguments or its input"
_BASH = "changes how bash finds or runs commands"
_NAMES = "assigns variables by name, and bash evaluates array subscripts there (a[$(cmd)])"
_CONFIG = "runs programs named in its options or in configuration files an action can write"
_ESCAPE = "has commands that start a shell (shell escapes)"


def _group(reason: str, names: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), reason)


REFUSED: dict[str, str] = {
    **_group(
        _RUNS,
        "eval exec source . command builtin env xargs sudo doas su runuser pkexec nohup"
        " timeout nice ionice chroot setsid stdbuf taskset chrt prlimit setpriv unshare"
        " nsenter capsh flock watch strace ltrace gdb valgrind time parallel script"
        " run-parts at batch systemd-run busybox toybox fakeroot firejail bwrap tmux screen"
        " jobs setarch linux32 linux64 sg newgrp numactl",
    ),
    **_group(
        _CODE,
        "sh bash dash zsh ksh mksh yash csh tcsh fish rbash python python2 python3 perl"
        " ruby node nodejs php lua luajit tclsh wish expect Rscript julia guile dc sqlite3 m4",
    ),
    **_group(_BASH, "trap enable hash set shopt alias bind complete compgen compopt fc history"),
    **_group(_NAMES, "declare typeset local readonly export let read mapfile readarray getopts"),
    "unset": _NAMES,
    "wait": _NAMES,  # wait -p NAME
    **_group(_CONFIG, "git make cmake ssh scp sftp man patch gcc g++ cc c++ clang"),
    **_group(_ESCAPE, "less more most pg pager vi vim view vimdiff rvim ex nvim emacs nano ed red"),
}


def _long_prefix(value: str, names: tuple[str, ...]) -> str | None:
    """The dangerous long option `value` (`--name[=x]`, any unambiguous prefix) stands for."""
    given = value[2:].partition("=")[0]
    return next((n for n in names if given and n.startswith(given)), None)


def option_safe(word: Word) -> bool:
    """Whether a word that expands at run time still cannot become an option."""
    return word.leading is not None and word.leading != "-" and not word.splits


def _dynamic(command: str, word: Word) -> str:
    return (
        f"argument {word.raw!r} of {command} expands at run time and could become an option"
        " that runs a program; write it out (a path can start with ./)"
    )


def options(
    command: str,
    shorts: str = "",
    longs: tuple[str, ...] = (),
    exact: tuple[str, ...] = (),
    old_style: bool = False,
    remote: bool = False,
) -> ArgCheck:
    """A check refusing short option letters, long options (and prefixes) and exact words."""

    def check(args: Sequence[Word]) -> str | None:
        local = any(w.value == "--force-local" for w in args)
        for index, word in enumerate(args):
            value = word.value
            if value is None:
                if not option_safe(word) or (old_style and index == 0):
                    return _dynamic(command, word)
                if remote and not (word.leading == "/" or word.raw.startswith(("./", "../"))):
                    return f"{command} argument {word.raw!r} could name a remote host (a:b)"
                continue
            long = _long_prefix(value, longs) if value.startswith("--") else None
            bad = f"--{long}" if long else None
            cluster = value[1:] if value.startswith("-") and not value.startswith("--") else ""
            if old_style and index == 0 and not value.startswith("-"):
                cluster = value
            bad = bad or (value if value in exact else None)
            bad = bad or next((f"-{c}" for c in cluster if c in shorts), None)
            if bad is None and remote and ":" in value and not local:
                return f"{command} {value!r} names a remote host, which runs a remote shell"
            if bad is not None:
                return f"{command} option {bad} runs a program"
        return None

    return check


def _printf(args: Sequence[Word]) -> str | None:
    if not args:
        return None
    first = args[0]
    if first.value is None:
        return None if option_safe(first) else _dynamic("printf", first)
    if first.value.startswith("-") and first.value != "--" and "v" in first.value:
        return f"printf {first.value} {_NAMES}"
    return None


def _test(args: Sequence[Word]) -> str | None:
    """`test -v NAME` / `-R NAME` evaluate a subscript in NAME; refuse one that could hold one."""
    for op, name in zip(args, args[1:], strict=False):
        if (op.value is None or op.value in ("-v", "-R")) and (
            name.value is None or "[" in name.value
        ):
            return f"test {op.raw} {name.raw}: -v and -R evaluate array subscripts (a[$(cmd)])"
    return None


_TAR_LONGS = (
    "to-command",
    "use-compress-program",
    "checkpoint-action",
    "info-script",
    "new-volume-script",
    "rsh-command",
    "rmt-command",
    "files-from",
)

OPTIONS: dict[str, ArgCheck] = {
    "find": options("find", exact=("-exec", "-execdir", "-ok", "-okdir")),
    "sort": options("sort", longs=("compress-program",)),
    "tar": options("tar", "IFT", _TAR_LONGS, old_style=True, remote=True),
    "zip": options("zip", "T", ("unzip-command", "test")),
    "rsync": options("rsync", "e", ("rsh", "rsync-path"), remote=True),
    "split": options("split", longs=("filter",)),
    "sdiff": options("sdiff", longs=("diff-program",)),
    "diff3": options("diff3", longs=("diff-program",)),
    "install": options("install", longs=("strip-program",)),
    "rg": options("rg", longs=("pre",)),
    "wget": options("wget", "e", ("use-askpass", "execute")),
    "sed": sed_args,
    "awk": awk_args,
    "gawk": awk_args,
    "mawk": awk_args,
    "nawk": awk_args,
    "printf": _printf,
    "test": _test,
    "[": _test,
}
