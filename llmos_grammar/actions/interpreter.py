"""How the `python` handler starts the interpreter that runs llmos, isolated and fast.

`site` (the policy key `site:`) picks how much of `site` runs:

- "minimal" (default): `-I -S`, then the interpreter's site-packages folders are
  put on `sys.path` without running `.pth` files (those cost ~10 ms at start
  and as much again at exit here). Installed packages import; editable
  installs that live only in a `.pth` do not. `exit()`/`quit()` exist.
- "full": `-I -`, the interpreter exactly as `python -I` starts it.
- "none": `-I -S`, the standard library only.

The program comes on stdin and runs as `__main__` (file name `<stdin>`); an
uncaught exception prints the usual traceback (without the loader's frames)
and exits 1.
"""

from __future__ import annotations

import site
import sys

from llmos_grammar.ir import ActionPolicy

_LOADER = r"""
def _llmos_main(paths):
    import builtins, sys
    main = sys.modules["__main__"]
    del main.__dict__["_llmos_main"]
    sys.path.extend(paths)
    builtins.exit = builtins.quit = sys.exit
    sys.argv[:] = ["-"]
    code = compile(sys.stdin.buffer.read(), "<stdin>", "exec")
    try:
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        import traceback
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        sys.exit(1)
_llmos_main(PATHS)
"""


def site_paths(policy: ActionPolicy) -> list[str]:
    """Folders put on `sys.path` in "minimal" mode."""
    if policy.site != "minimal":
        return []
    return [p for p in site.getsitepackages() if p not in sys.path[:1]]


def interpreter_argv(policy: ActionPolicy) -> list[str]:
    """`sys.executable -I`, plus `-S` unless the policy asks for the full `site`."""
    argv = [sys.executable, "-I"]
    if policy.site != "full":
        argv.append("-S")
    return argv


def program_argv(policy: ActionPolicy) -> list[str]:
    """The interpreter reading its program from stdin (see the module docstring)."""
    if policy.site == "full":
        return [*interpreter_argv(policy), "-"]
    loader = _LOADER.replace("PATHS", repr(site_paths(policy)))
    return [*interpreter_argv(policy), "-c", loader]
