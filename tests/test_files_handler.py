"""The files handler's own logic, with openat2 and with the O_NOFOLLOW walk that replaces it."""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos_grammar.actions import beneath, files
from llmos_grammar.actions.files import run_files
from llmos_grammar.ir import ActionPolicy
from llmos_grammar.results import ActionResult
from tests.hostile.cases import SECRET
from tests.hostile.cases_files_http import exchange_race, race_folders, race_problem


def _no_openat2(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
    raise OSError(errno.ENOSYS, "Function not implemented")


@pytest.fixture(params=["openat2", "walk"])
def resolver(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, int]]:
    """Each test runs once through openat2 and once through the fallback walk, never both;
    yields the count of calls of each."""
    calls = {"openat2": 0, "walk": 0}
    real_walk = beneath.walk_open
    if request.param == "openat2":
        if not beneath.openat2_works():
            pytest.skip("this kernel has no openat2")

        def spy(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
            calls["openat2"] += resolve == beneath.RESOLVE  # not the probe
            return beneath._syscall_openat2(dirfd, path, flags, mode, resolve)

        monkeypatch.setattr(beneath, "openat2", spy)
    else:
        monkeypatch.setattr(beneath, "openat2", _no_openat2)

    def walk_spy(*args: object, **kwargs: object) -> int:
        calls["walk"] += 1
        return real_walk(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(beneath, "walk_open", walk_spy)
    yield calls
    other = "walk" if request.param == "openat2" else "openat2"
    assert calls[other] == 0, calls


def within(seconds: float, command: str, ap: ActionPolicy) -> ActionResult:
    """`run_files(command, ap)`, failing the test if it has not returned after `seconds`."""
    box: list[ActionResult] = []
    thread = threading.Thread(target=lambda: box.append(run_files(command, ap)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert box, f"{command!r} still blocked after {seconds}s"
    return box[0]


def policy(**values: object) -> ActionPolicy:
    return ActionPolicy(name="files", handler="files", **values)  # type: ignore[arg-type]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """inside/ (allowed: a.txt, sub/b.txt, links), secret outside it."""
    inside = tmp_path / "inside"
    (inside / "sub").mkdir(parents=True)
    (inside / "a.txt").write_text("alpha\n")
    (inside / "sub" / "b.txt").write_text("beta\n")
    (tmp_path / "secret.txt").write_text(SECRET)
    os.symlink(tmp_path, inside / "up")
    os.symlink(tmp_path / "secret.txt", inside / "link")
    os.symlink(inside / "a.txt", inside / "same")  # a link that stays inside
    os.symlink("sub", inside / "rel")
    return tmp_path


def test_list_read_write_append(tree: Path, resolver: dict[str, int]) -> None:
    inside = tree / "inside"
    rw = policy(write=(str(inside),), file_size_mb=1)
    assert run_files("list .", rw).stdout == "a.txt\nlink\nrel\nsame\nsub/\nup\n"
    assert run_files("list sub", rw).stdout == "b.txt\n"
    assert run_files("read sub/b.txt", rw).stdout == "beta\n"
    assert run_files(f"read {inside}/sub//./b.txt", rw).stdout == "beta\n"
    assert run_files("read sub/../a.txt", rw).stdout == "alpha\n"
    assert run_files("write sub/new.txt\nnew\n", rw).ok
    assert (inside / "sub" / "new.txt").read_text() == "new\n"
    assert run_files("append sub/new.txt\nmore", rw).ok
    assert (inside / "sub" / "new.txt").read_text() == "new\nmore"
    assert run_files("write sub/new.txt\nshort", rw).ok
    assert (inside / "sub" / "new.txt").read_text() == "short"
    assert sum(resolver.values()) == 8, resolver  # every command that opened
    assert not run_files("append sub/new.txt\n" + "x" * (1 << 20), rw).ok
    assert (inside / "sub" / "new.txt").read_text() == "short"


@pytest.mark.parametrize(
    "command",
    ["read up/secret.txt", "read link", "read same", "read rel/b.txt", "list up", "list rel"],
)
def test_links_are_never_followed(tree: Path, resolver: dict[str, int], command: str) -> None:
    ap = policy(read=(str(tree / "inside"),))
    result = run_files(command, ap)
    assert not result.ok and SECRET not in result.stdout
    assert "symbolic link" in result.stderr and "outside" in result.stderr, result.stderr


def test_writes_through_links_land_nowhere(tree: Path, resolver: dict[str, int]) -> None:
    inside = tree / "inside"
    ap = policy(write=(str(inside),))
    for command in ["write up/new.txt\nx", "write link\nx", "append same\nx"]:
        assert not run_files(command, ap).ok, command
    assert not (tree / "new.txt").exists()
    assert (tree / "secret.txt").read_text() == SECRET
    assert (inside / "a.txt").read_text() == "alpha\n"


@pytest.mark.parametrize(
    "path", ["../secret.txt", "sub/../../secret.txt", "{tree}/secret.txt", "/etc/passwd", ".."]
)
def test_paths_outside_are_refused(tree: Path, resolver: dict[str, int], path: str) -> None:
    ap = policy(read=(str(tree / "inside"),))
    result = run_files(f"read {path.format(tree=tree)}", ap)
    assert not result.ok and "outside the readable folders" in result.stderr, result.stderr


def test_absolute_paths_pick_their_folder(tmp_path: Path, resolver: dict[str, int]) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    ap = policy(read=(str(first),), write=(str(second),))
    assert run_files(f"write {second}/x.txt\nx", ap).ok
    assert run_files(f"read {second}/x.txt", ap).stdout == "x"
    refused = run_files(f"write {first}/y.txt\ny", ap)
    assert "outside the writable folders" in refused.stderr
    assert not (first / "y.txt").exists()


def test_fifos_sockets_and_devices_are_refused_at_once(
    tmp_path: Path, resolver: dict[str, int]
) -> None:
    os.mkfifo(tmp_path / "pipe")
    ap = policy(write=(str(tmp_path),))
    for command in ["write pipe\nx", "append pipe\nx", "read pipe"]:
        result = within(3, command, ap)
        assert not result.ok and "FIFO" in result.stderr, (command, result.stderr)
    reader = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)  # now a write could open
    try:
        result = within(3, "write pipe\nx", ap)
        assert not result.ok and "FIFO (named pipe)" in result.stderr, result.stderr
        assert os.read(reader, 10) == b""  # nothing was written into it
    finally:
        os.close(reader)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        for command in ["write sock\nx", "read sock"]:
            result = within(3, command, ap)
            assert not result.ok and "socket" in result.stderr, (command, result.stderr)
    for name in ("zero", "null", "tty"):
        result = within(3, f"read {name}", policy(read=("/dev",)))
        assert not result.ok and "device" in result.stderr, result.stderr


def test_hard_linked_files_are_not_written(tmp_path: Path, resolver: dict[str, int]) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "target.txt").write_text("keep")
    os.link(tmp_path / "target.txt", tmp_path / "inside" / "hard.txt")
    ap = policy(write=(str(tmp_path / "inside"),))
    result = run_files("write hard.txt\nchanged", ap)
    assert not result.ok and "hard links" in result.stderr
    assert (tmp_path / "target.txt").read_text() == "keep"
    assert run_files("read hard.txt", ap).stdout == "keep"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("read a.txt\0/etc/passwd", "NUL byte"),
        ("write a\0b\nx", "NUL byte"),
        ("list \0", "NUL byte"),
        ("read", "a path is needed"),
        ("read    ", "a path is needed"),
        ("write \nx", "a path is needed"),
        ("read " + "a/" * 3000, "the limit is 4095"),
        ("read " + "n" * 300, "longer than 255 bytes"),
        ("read \ud800", "not valid text"),
        ("write c.txt\n\ud800", "not valid text"),
        ("read sub", "is a folder"),
        ("list a.txt", "Not a directory"),
        ("read missing.txt", "No such file"),
        ("write nowhere/x.txt\nx", "No such file"),
        ("write .\nx", "Is a directory"),
        ("delete a.txt", "unknown command"),
    ],
)
def test_bad_input_is_a_clear_error(
    tree: Path, resolver: dict[str, int], command: str, message: str
) -> None:
    result = run_files(command, policy(write=(str(tree / "inside"),)))
    assert not result.ok and result.exit_code == 1
    assert result.stderr.startswith("files: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_no_folders_and_missing_folder(tmp_path: Path, resolver: dict[str, int]) -> None:
    assert "no folders" in run_files("read x", policy()).stderr
    assert "no folders" in run_files("write x\ny", policy(read=(str(tmp_path),))).stderr
    gone = policy(read=(str(tmp_path / "gone"),))
    assert "cannot be opened" in run_files("read x", gone).stderr


def test_listing_is_capped(
    tmp_path: Path, resolver: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_LIST", 3)
    for name in "edcba":
        (tmp_path / name).write_text("")
    listed = run_files("list", policy(read=(str(tmp_path),))).stdout
    assert listed == "a\nb\nc\n... (2 more)\n"


def test_walk_refuses_a_link_on_the_way(tree: Path) -> None:
    root = os.open(tree / "inside", os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            beneath.walk_open(root, ["up", "secret.txt"], os.O_RDONLY)
        assert caught.value.errno == errno.ELOOP
        with pytest.raises(ValueError, match="normalized"):
            beneath.open_beneath(root, ["..", "secret.txt"], os.O_RDONLY)
        fd = beneath.walk_open(root, ["sub", "b.txt"], os.O_RDONLY)
        assert os.read(fd, 10) == b"beta\n"
        os.close(fd)
    finally:
        os.close(root)


def test_exchange_race_reads_and_writes_nothing_outside(
    tmp_path: Path, resolver: dict[str, int]
) -> None:
    """Issue case 2: a folder and a link to outside swapped with renameat2(RENAME_EXCHANGE)."""
    allowed, outside = race_folders(str(tmp_path))
    ap = policy(read=(allowed,), write=(allowed,))
    tally = exchange_race(lambda text: run_files(text, ap), allowed, outside, 1.5, 3000)
    if tally is None:
        pytest.skip("no renameat2 in this libc")
    assert race_problem(tally) is None, tally
    # the race was real: both states were seen, and a check-then-open would have lost some
    assert tally.swaps > 100 and tally.inside > 0 and tally.refused > 0, tally
