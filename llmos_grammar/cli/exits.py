"""The exit statuses of every llmos command, in one table."""

from __future__ import annotations

EXIT_OK = 0  # done: the run reached a final state, the check found no error, the action ran
EXIT_ERROR = 1  # errors found by a check; a spec, policy, model or action error; a failed action
EXIT_USAGE = 2  # bad arguments, no such file
EXIT_REFUSED = 3  # the (last) action was refused: not approved, or isolation missing
EXIT_BUDGET = 4  # a token, action or wall-clock budget ran out
EXIT_STOPPED = 5  # the run ended without a result
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_PIPE = 141  # the reader of stdout went away (`llmos ... | head`), as a shell reports SIGPIPE
