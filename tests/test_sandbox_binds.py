"""Policy folders are opened for bubblewrap without following any symbolic link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmos_grammar.sandbox.binds import BindRefused, open_nofollow


def test_a_plain_folder_and_file_open_as_themselves(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "app.db").write_text("x")
    real = os.path.realpath(tmp_path)
    for path, is_dir in ((f"{real}/data", True), (f"{real}/data/app.db", False)):
        fd = open_nofollow(path)
        try:
            mode = os.fstat(fd).st_mode
            assert stat.S_ISDIR(mode) if is_dir else stat.S_ISREG(mode)
            assert os.fstat(fd).st_ino == os.stat(path).st_ino
        finally:
            os.close(fd)


@pytest.mark.parametrize("where", ["last", "middle"])
def test_a_link_anywhere_on_the_way_is_refused(tmp_path: Path, where: str) -> None:
    real = Path(os.path.realpath(tmp_path))
    (real / "elsewhere" / "inner").mkdir(parents=True)
    (real / "data").symlink_to(real / "elsewhere")
    path = f"{real}/data" if where == "last" else f"{real}/data/inner"
    with pytest.raises(BindRefused) as refused:
        open_nofollow(path)
    assert path in str(refused.value) and "symbolic link" in str(refused.value)


@pytest.mark.parametrize("path", ["relative/dir", "/tmp/../etc"])
def test_only_plain_absolute_paths(path: str) -> None:
    with pytest.raises(BindRefused, match="plain absolute path"):
        open_nofollow(path)
