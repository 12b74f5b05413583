"""The shell allow-list agrees with bash: a line it allows runs only listed commands.

The differential test runs each line through bash exactly as the handler does
(`shell_argv`, the line on stdin) with every builtin except `read` and `eval`
disabled, so that each command bash runs is looked up on PATH: real programs
(find, sed, awk, ...) are reached through wrappers that log their name, and any
other name is logged by `command_not_found_handle`. Whenever the check allows a
line, every logged name must be on the list.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos_grammar.actions import run_action
from llmos_grammar.actions.shell import check_commands, shell_argv
from llmos_grammar.actions.shell_options import OPTIONS, REFUSED
from llmos_grammar.actions.shell_words import Refused, resolve
from llmos_grammar.grammar import accepts
from llmos_grammar.ir import ActionPolicy, GrammarState
from llmos_grammar.spec.loader import load, load_policy

ROOT = Path(__file__).resolve().parent.parent
BASH = shutil.which("bash") or "/bin/bash"
PRINTF = shutil.which("printf") or "/usr/bin/printf"  # a program: the builtin is disabled
ALLOWED = (
    "ls", "cat", "echo", "printf", "grep", "wc", "sort", "head",
    "find", "sed", "awk", "test", "[", "true",
)  # fmt: skip
REAL = ("ls", "cat", "grep", "wc", "sort", "head", "find", "sed", "awk")
KEEP = {"read", "eval"}  # the builtins shell_argv needs to read and run the line

# (line, verdict): "ok" the check allows it; "no" it refuses it; "bypass" it refuses
# it and bash, run anyway, does run a command that is not on the list.
LINES: list[tuple[str, str]] = [
    # the three bypasses of the issue
    ("ls #\nid", "bypass"),
    ("x='$(id)'; echo ${x@P}", "bypass"),
    ("find . -maxdepth 0 -exec id \\;", "bypass"),
    # newlines, comments, separators
    ("ls\nid", "bypass"),
    ("ls;\tid", "bypass"),
    ("ls & id", "bypass"),
    ("ls |& id", "bypass"),
    ("ls &&\nid", "bypass"),
    ("ls \\\n&& id", "bypass"),
    ("\\\nid", "bypass"),
    ("ls\r\nid", "bypass"),
    ("ls;;id", "no"),
    ("ls \\", "no"),
    ("echo '${'x", "no"),
    ("echo hi # ; id", "ok"),
    ("ls # comment $(id)", "ok"),
    ("echo a#b; id", "bypass"),
    ("ls a#$(id)", "bypass"),
    ("echo 'a #' ; ls", "ok"),
    ("echo ok\nls\n", "ok"),
    ("ls \\\nid", "ok"),
    # quoting of the command word
    ("\\ls", "ok"),
    ("l\\s", "ok"),
    ("l\\\ns", "ok"),
    ("'ls'", "ok"),
    ('"l"s', "ok"),
    ("$'\\x6c\\x73'", "ok"),
    ("$'\\x69\\x64'", "bypass"),
    ("$'\\151\\144'", "bypass"),
    ('$"ls"', "ok"),
    ('"" ls', "no"),
    ("echo $'\\''; id", "bypass"),
    ("echo $'a\\' b'; id", "bypass"),
    ("echo 'a\\'; id", "bypass"),
    ('echo "a\\"; id"', "ok"),
    ("ls 'a'\\''b'", "ok"),
    ("ls $'\\n'id", "ok"),
    # command words that expand
    ("${IFS}id", "bypass"),
    ("ls${IFS}-la", "no"),
    ("x=id; $x", "bypass"),
    ('x=ls; "$x"', "no"),
    ("/???/?d", "no"),
    ("{id,}", "bypass"),
    ("{ls,-la}", "no"),
    ("~/id", "no"),
    # compound commands
    ("{ ls; id; }", "bypass"),
    ("(ls; id)", "bypass"),
    ("( (ls) )", "ok"),
    ("if ls; then id; fi", "bypass"),
    ("for i in 1; do id; done", "bypass"),
    ("for i in a b; do echo $i; done", "ok"),
    ("for x in $(id); do ls; done", "bypass"),
    ("case x in x) id;; esac", "bypass"),
    ("select x in a; do id; done", "no"),
    ("time id", "bypass"),
    ("! id", "bypass"),
    ("! ls", "ok"),
    ("ls || ! cat a.txt", "ok"),
    ("coproc id", "bypass"),
    ("function f { id; }; f", "bypass"),
    ("f() { id; }; f", "bypass"),
    ("ls() { id; }; ls", "bypass"),
    ("[[ -n $(id) ]]", "bypass"),
    ("x='a[$(id)]'; ((x))", "bypass"),
    ("((ls))", "no"),
    # builtins that run or redefine commands
    ("alias ls=id; ls", "bypass"),
    ("command -p id", "bypass"),
    ("eval id", "bypass"),
    ("exec id", "bypass"),
    ("trap id EXIT", "bypass"),
    ("source /dev/null", "bypass"),
    ("hash -p /usr/bin/id ls; ls", "bypass"),
    ("true && ls", "ok"),
    # substitutions and expansions
    ("echo $(id)", "bypass"),
    ("echo `id`", "bypass"),
    ('echo "$(id)"', "bypass"),
    ('echo $"$(id)"', "bypass"),
    ("x=$(id)", "bypass"),
    ("a[$(id)]=1", "bypass"),
    ("cat <(id)", "bypass"),
    ("ls>(id)", "bypass"),
    ("echo hi > >(id)", "bypass"),
    ("echo ${x:-$(id)}", "bypass"),
    ("echo ${!x}", "no"),
    ("echo ${x/a/b}", "no"),
    ("echo ${#x}", "no"),
    ("x='a[$(id)]'; echo $((x))", "bypass"),
    ("echo $((1+2))", "no"),
    ("ls '$(id)'", "ok"),
    ('ls "\\$(id)"', "ok"),
    ("ls \\$(id)", "no"),
    ('echo $x ${x} "$x" $? $1', "ok"),
    ("ls ${IFS}", "ok"),
    ("x=1; ls", "ok"),
    ("x='ls'; y=$x; echo $y", "ok"),
    ("echo {a,b} */ ~ ~root", "ok"),
    # here-documents and here-strings
    ("cat <<EOF\n$(id)\nEOF", "bypass"),
    ("cat <<'EOF'\nls\nEOF\nid", "bypass"),
    ("cat <<< $(id)", "bypass"),
    ('cat <<< "hi"', "ok"),
    # assignments and redirections
    ("a=b ls", "ok"),
    (">out ls", "ok"),
    ("ls 2>&1 | cat", "ok"),
    ("ls 2>&- <&- >&-", "ok"),
    ("PATH=. ls", "no"),
    ("IFS=x; ls", "no"),
    ("BASH_CMDS[ls]=/usr/bin/id; ls", "no"),
    ("ls {x}>f", "no"),
    # options of listed commands that run programs
    ("find . -name x -o -exec id {} +", "bypass"),
    ("find . -maxdepth 0 -execdir id \\;", "bypass"),
    ("find . -name '*.txt'", "ok"),
    ("x=exec; find . -maxdepth 0 -$\\\nx id \\;", "bypass"),
    ("x=exec; find . -maxdepth 0 -\\\n$x id \\;", "bypass"),
    ("sed 's/x/id/e' a.txt", "bypass"),
    ("sed '1e id' a.txt", "bypass"),
    ("sed -n 's/x/y/p' a.txt", "ok"),
    ("sed 's/x/y/w out;e id' a.txt", "ok"),
    ("awk 'BEGIN{system(\"id\")}'", "bypass"),
    ("awk 'BEGIN{print | \"id\"}'", "bypass"),
    ("awk '{print $1}' a.txt", "ok"),
    ("test -v 'a[$(id)]'", "no"),
    ("[ -f a.txt ] && cat a.txt", "ok"),
    ("sort -k1 a.txt | head -n 1", "ok"),
    # a command reading stdin cannot swallow part of the line: it gets /dev/null
    ("head -n 1\necho '\nid\n'", "ok"),
    ("cat\necho done", "ok"),
]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with stubs, the prelude that disables builtins, and a working directory."""
    root = tmp_path_factory.mktemp("shell-diff")
    stubs = root / "bin"
    stubs.mkdir()
    for name in REAL:
        path = shutil.which(name)
        if path is not None:
            _script(stubs / name, f'printf \'%s\\n\' {name} >> "$STUB_LOG"\nexec {path} "$@"\n')
    _script(stubs / "id", "printf '%s\\n' id >> \"$STUB_LOG\"\n")
    builtins = subprocess.run([BASH, "-c", "compgen -b"], capture_output=True, text=True)
    names = sorted(set(builtins.stdout.split()) - KEEP)
    (root / "prelude.sh").write_text(
        f'command_not_found_handle() {{ {PRINTF} \'%s\\n\' "$1" >> "$STUB_LOG"; }}\n'
        f"enable -n {' '.join(names)}\n"
    )
    (root / "work").mkdir()
    (root / "work" / "a.txt").write_text("x 1\n")
    yield root


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def ran(bench: Path, line: str) -> list[str]:
    """The names of the commands bash ran for `line` (builtins included)."""
    log = bench / "log"
    log.write_text("")
    env = {
        "PATH": str(bench / "bin"),
        "STUB_LOG": str(log),
        "BASH_ENV": str(bench / "prelude.sh"),
        "HOME": str(bench / "work"),
        "LC_ALL": "C",
    }
    subprocess.run(
        shell_argv(),
        input=line.encode(),
        cwd=bench / "work",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # read to its end: every process started (`&`, coproc) is done
        timeout=20,
    )
    return log.read_text().split()


def test_the_lines_cover_the_required_tricks() -> None:
    assert len(LINES) >= 43 and len({line for line, _ in LINES}) == len(LINES)
    assert {"ok", "no", "bypass"} == {verdict for _, verdict in LINES}


@pytest.mark.parametrize(("line", "verdict"), LINES, ids=[repr(line) for line, _ in LINES])
def test_check_agrees_with_bash(bench: Path, line: str, verdict: str) -> None:
    reason = check_commands(line, ALLOWED)
    assert (reason is None) == (verdict == "ok"), reason
    names = ran(bench, line)
    if reason is None:
        outside = [n for n in names if n not in ALLOWED]
        assert not outside, f"allowed {line!r}, but bash ran {outside}"
    if verdict == "bypass":
        assert set(names) - set(ALLOWED), f"{line!r} is no bypass: bash ran only {names}"


def test_the_bench_logs_builtins_and_programs(bench: Path) -> None:
    assert sorted(ran(bench, "echo hi; ls; id | cat")) == ["cat", "echo", "id", "ls"]


# One dangerous and one harmless use per row of shell_options.OPTIONS.
ROWS: dict[str, tuple[str, str]] = {
    "find": ("find . -okdir id ;", "find . -type f -name '*.txt'"),
    "sort": ("sort --compress-prog=sh -S 1 a.txt", "sort -k 2 -n a.txt"),
    "tar": ("tar -cf x.tar -I id a.txt", "tar -czf x.tar.gz a.txt"),
    "zip": ("zip -TT 'id' x.zip a.txt", "zip -r x.zip a.txt"),
    "rsync": ("rsync -ae 'id' a.txt b:", "rsync -a a.txt b.txt"),
    "split": ("split --filter=id a.txt", "split -l 10 a.txt part."),
    "sdiff": ("sdiff --diff-program=id a b", "sdiff a b"),
    "diff3": ("diff3 --diff-program=id a b c", "diff3 a b c"),
    "install": ("install -s --strip-program=id a b", "install -m 644 a b"),
    "rg": ("rg --pre id x", "rg -n x a.txt"),
    "wget": ("wget --use-askpass=id http://127.0.0.1/", "wget -q -O out http://127.0.0.1/"),
    "sed": ("sed -n -e p -e '1e id' a.txt", "sed -E 's/(a|b)+/x/g;/^$/d' a.txt"),
    "awk": ("awk -f prog.awk a.txt", "awk -F: -v n=1 '$1 == n || /x/ {print $2}' a.txt"),
    "gawk": ("gawk '@load \"x\"; BEGIN{}'", "gawk 'BEGIN{print 1}'"),
    "mawk": ("mawk -W exec prog", "mawk '{n++} END{print n}' a.txt"),
    "nawk": ("nawk 'BEGIN{\"id\" | getline x}'", "nawk 'NR==1' a.txt"),
    "printf": ("printf -v PATH x", "printf '%s\\n' \"$x\""),
    "test": ('test -v "$x"', "test -f a.txt"),
    "[": ('[ "$a" "$b" ]', '[ "$x" = y ]'),
}


def test_every_option_row_has_a_test() -> None:
    assert set(ROWS) == set(OPTIONS)


@pytest.mark.parametrize("command", sorted(ROWS))
def test_option_row(command: str) -> None:
    bad, good = ROWS[command]
    allowed = (command,)
    assert check_commands(good, allowed) is None
    reason = check_commands(bad, allowed)
    assert reason is not None and "cannot follow" not in reason, reason


@pytest.mark.parametrize(
    "line",
    [
        "sort --compress-program=sh x",
        "sort --co=sh x",
        "sort $opt x",
        "sort *.txt",
        "find . $x",
        "find . -e*",
        "tar xIf id a.tar",
        "tar -xf host:a.tar",
        'tar -cf a"$f" x',
        'tar c"$x"f a.tar x',
        'rsync -a x a"$h"',
        "gawk -Dcmds 'BEGIN{}'",
        "wget -e 'use_askpass=id' http://127.0.0.1/",
        "zip -T x.zip a",
        "rsync --rsh=id a b",
        "rsync -a a host:b",
        "sed -f script.sed a",
        "sed --expression='e id' a",
        'sed -e "$x" a',
        'sed "$x" a',
        "sed 's/[/]/w/;e id' a",
        "sed 'sg[g]gpg;e id' a",
        "awk -e 'BEGIN{}'",
        'awk "$prog"',
        "awk --source='BEGIN{}'",
        'awk \'BEGIN{f="system"; @f("id")}\'',
        "awk 'BEGIN{print |& \"id\"}'",
        "printf -vx 1",
        'printf "$fmt" 1',
        "test -R 'a[1]'",
    ],
)
def test_option_tricks_are_refused(line: str) -> None:
    command = line.split()[0]
    assert check_commands(line, (command,)) is not None


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_commands_that_run_commands_are_refused_even_when_listed(name: str) -> None:
    reason = check_commands(f"'{name}' x", (name, "x"))
    assert reason is not None and "even though the policy lists it" in reason


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("\\ls", "ls"),
        ("l\\s", "ls"),
        ("'l's", "ls"),
        ('"l"s', "ls"),
        ("$'\\x6c\\x73'", "ls"),
        ("$'\\154\\163'", "ls"),
        ("$'\\u006cs'", "ls"),
        ("$'\\cJ'", "\n"),
        ('$"ls"', "ls"),
        ('"a\\"b\\$c\\d"', 'a"b$c\\d'),
        ("l\\\ns", "ls"),
        ("{}", "{}"),
        ("[", "["),
        ("a$", "a$"),
    ],
)
def test_words_resolve_to_their_literal_value(raw: str, value: str) -> None:
    assert resolve(raw).value == value


# Words whose static value must be what bash makes of them (run as the handler runs a line).
BASH_WORDS = (
    "\\ls", "l\\s", "'l's", "$'\\x6c\\x73'", "$'\\c\\\\'", "$'\\c\\a'", "$'\\c?'", "$'a\\c'",
    "$'\\551'", "$'\\u00e9'", "$'\\x'", "$'\\q'", "$'a\\\nb'", '"c\\\nd"', "'e\\\nf'",
    '"a\\"b\\$c\\d"', '$"ls"', "\\$'x'", '"$"\'x\'', "a$", "[", "{}", "{a}",
    "a\\\n\\\nb", "\\#x", "a#b", "--x=~", "x:~", '"a"=~', "-e\\xec", "'-'exec",
)  # fmt: skip


@pytest.mark.parametrize("raw", BASH_WORDS)
def test_static_words_have_the_value_bash_gives_them(raw: str) -> None:
    word = resolve(raw)
    assert word.value is not None
    line = f"printf '%s\\0' {raw}"
    shown = subprocess.run(shell_argv(), input=line.encode(), capture_output=True, timeout=20)
    assert shown.stdout.split(b"\0")[:-1] == [word.value.encode()], shown


@pytest.mark.parametrize(
    ("raw", "leading", "splits"),
    [("$x", None, True), ('"$x"', None, False), ("a$x", "a", True), ('./"$x"', ".", False),
     ("*.txt", None, False), ("a*", "a", False), ("{a,b}", None, True), ("~/x", None, False),
     ("a=~", "a", False), ("a=b:~/x", "a", False), ("$\\\nx", None, True),
     ("\\\n~", None, False), ("-$\\\nx", "-", True)],
)  # fmt: skip
def test_words_that_expand_have_no_value(raw: str, leading: str | None, splits: bool) -> None:
    word = resolve(raw)
    assert (word.value, word.leading, word.splits) == (None, leading, splits)


@pytest.mark.parametrize(
    "raw", ["$(id)", "`id`", "${x@P}", "${!x}", "${x:-y}", "$((1))", "$[1]", "<(id)", "'a", '"a']
)
def test_words_bash_would_expand_further_are_refused(raw: str) -> None:
    with pytest.raises(Refused):
        resolve(raw)


def test_the_handler_refuses_before_running_and_reads_the_whole_line() -> None:
    limited = ActionPolicy(name="sh", handler="shell", commands=("ls",), timeout_s=5)
    refused = run_action(limited, "ls #\necho PWNED")
    assert refused.refused is not None and "'echo'" in refused.refused
    assert "PWNED" not in refused.stdout
    plain = ActionPolicy(name="sh", handler="shell", timeout_s=5)
    result = run_action(plain, "cat\necho after\nexit 3\n")
    assert result.exit_code == 3 and result.stdout == "after\n", result


# Ordinary lines for the shipped shell example: its derived grammar produces them, and the
# check must accept them.
ORDINARY = (
    "seq 1 10 | wc -l",
    "factor 391",
    "echo hello | tr a-z A-Z",
    "seq 1 50 | grep 7 | wc -l",
    "seq 100 | grep -c 3",
    "expr 123 \\* 45",
    "expr 1000 - 387",
    "printf '%s\\n' b a c | sort | uniq -c",
    "date +%Y-%m-%d",
    "echo $HOME ${TMPDIR}",
    "seq 1 5 > nums.txt && wc -l < nums.txt",
    "grep -v x nums.txt 2>&1 | head -n 3",
    "echo 'a b' \"c d\" | cut -d ' ' -f2",
    "sort -n -r nums.txt | uniq | tail -1;",
    "echo a=b {} * ~",
)


def test_the_derived_shell_grammar_and_the_check_agree_on_ordinary_lines() -> None:
    machine = load(str(ROOT / "examples" / "shell" / "spec.yaml"))
    state = machine.states["command"]
    assert isinstance(state, GrammarState)
    commands = load_policy(str(ROOT / "policies" / "shell.yaml")).actions["sh"].commands
    assert commands is not None
    examples = [line for test in machine.tests if test.state == "command" for line in test.accept]
    assert examples
    for line in (*examples, *ORDINARY):
        assert accepts(state.constraint, line), line
        assert check_commands(line, commands) is None, line


def test_the_check_is_quick_on_a_long_line() -> None:
    line = " | ".join(["grep -v x"] * 300) + "\n" + "( " * 300 + "grep x" + " )" * 300
    started = time.monotonic()
    assert check_commands(line, ("grep",)) is None
    assert time.monotonic() - started < 5.0
    assert "over" in (check_commands("ls " + "a" * 9000, ("ls",)) or "")
