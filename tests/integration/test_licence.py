# SPDX-License-Identifier: LGPL-2.1-or-later
"""Licence and provenance: LICENSE is the licence meson.build declares, every source file starts
with its SPDX line (scripts/spdx-check, which the lead re-runs with --fix after merges), and NEWS
has the notes of the version meson.build builds."""

import re
import subprocess

from busenv import REPO


def test_every_source_file_has_the_spdx_line():
    res = subprocess.run([str(REPO / "scripts" / "spdx-check")], capture_output=True, text=True)
    assert res.returncode == 0, "run scripts/spdx-check --fix:\n" + res.stdout + res.stderr


def test_spdx_check_finds_a_file_without_it(tmp_path):
    """The check can fail: a copy of the repo's script in a scratch git repository with one bare file."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "spdx-check").write_text((REPO / "scripts" / "spdx-check").read_text())
    (tmp_path / "a.c").write_text("/* a.c: nothing. */\nint a;\n")
    (tmp_path / "b.sh").write_text("#!/bin/sh\n# SPDX-License-Identifier: LGPL-2.1-or-later\ntrue\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    check = ["/usr/bin/python3", str(tmp_path / "scripts" / "spdx-check")]
    res = subprocess.run(check, capture_output=True, text=True)
    assert res.returncode == 1 and res.stdout.startswith("a.c:"), res.stdout + res.stderr
    assert subprocess.run(check + ["--fix"]).returncode == 0
    assert (tmp_path / "a.c").read_text() == \
        "/* SPDX-License-Identifier: LGPL-2.1-or-later */\n/* a.c: nothing. */\nint a;\n"
    assert subprocess.run(check).returncode == 0


def test_license_and_news_match_meson():
    meson = (REPO / "meson.build").read_text()
    assert "license : 'LGPL-2.1-or-later'" in meson
    licence = (REPO / "LICENSE").read_text()
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in licence and "Version 2.1, February 1999" in licence
    version = re.search(r"version : '([^']+)'", meson).group(1)
    assert (REPO / "NEWS").read_text().startswith(f"guestnetd {version} ")
