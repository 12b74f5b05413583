"""Bad input gives a located error and exit 1: never a traceback or a hang."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmos_grammar.cli.main import main
from llmos_grammar.spec.check import check_file
from tests.specs import SPEC, write

BOMB = "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
BOMB = 'a: &a ["lol"]\n' + BOMB


def check_one(path: Path) -> tuple[int, str]:
    codes = []
    report = check_file(str(path))
    codes = [d for d in report.diagnostics if d.severity == "error"]
    assert codes, "expected an error"
    first = codes[0]
    return first.location.line, first.message


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("llmos: 1\nstates:\n  a: {type: text\n  b: 1\n")
    line, message = check_one(path)
    assert line == 4 and message.startswith("invalid YAML")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"llmos: 1\nname: caf\xe9\n")
    line, message = check_one(path)
    assert line == 2 and "UTF-8" in message
    report = check_file(str(path))
    assert report.diagnostics[0].location.column == 10


def test_exponential_anchors_stop_quickly(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BOMB)
    started = time.perf_counter()
    _, message = check_one(path)
    assert "expands to more than" in message
    assert time.perf_counter() - started < 10  # a hang would take hours


def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("llmos: 1\n" + "# padding\n" * 200_000)
    _, message = check_one(path)
    assert "more than the 1048576 allowed" in message


def test_folder_given_as_spec_policy(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").mkdir()
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    _, message = check_one(path)
    assert "policy" in message


def test_self_including_grammar(tmp_path: Path) -> None:
    (tmp_path / "loop.lark").write_text('%import loop.start\nstart: "x"\n')
    spec = SPEC.replace('regex: "[a-z0-9+*() ]+\\\\n"', "grammar: loop.lark")
    line, _ = check_one(write(tmp_path, spec))
    assert line > 0


def test_cli_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    good = write(tmp_path)
    assert main(["check", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("llmos: 1\nstart: [\n")
    assert main(["check", str(bad)]) == 1
    assert main(["check", str(tmp_path / "missing.yaml")]) == 2
    assert main(["check", "--format", "nope", str(good)]) == 2
    result = subprocess.run(
        [sys.executable, "-m", "llmos_grammar.cli.main", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{bad}:3:1" in result.stdout


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["llmos", "start", "states", "policy", "prompt", "limits", "tests", "model", "sampling"]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    top=st.dictionaries(keys, values, max_size=6),
    state=st.dictionaries(st.text(max_size=6), values),
)
def test_wrong_types_everywhere_never_crash(tmp_path: Path, top: dict, state: dict) -> None:
    data = {"llmos": 1, **top}
    if isinstance(data.get("states"), dict):
        data["states"]["s"] = {"type": "text", **state}
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    checked = check_file(str(path))
    for diagnostic in checked.diagnostics:
        assert diagnostic.location.file == str(path)
        assert diagnostic.message
