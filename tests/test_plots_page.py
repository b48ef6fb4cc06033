"""plots-page/: the page template of `dvc plots`, Vega inlined (plots-page/build_template.py).

Whether the page draws is checked in a browser by tests/stages/test_plots_in_browser.py; these
check what it is made of.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.project import PROJECT

PAGE = PROJECT / "plots-page"


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_template", PAGE / "build_template.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


def test_template_holds_the_pinned_libraries_built_from_the_skeleton():
    builder.check_template()  # raises BuildError naming what is wrong


def test_template_loads_nothing_from_the_network():
    template = builder.TEMPLATE.read_text(encoding="utf-8")
    # DVC fills {scripts} with its CDN tags; without the placeholder it adds none.
    assert "{scripts}" not in template
    assert template.count("{plot_divs}") == 1
    # Outside the pinned libraries (the test above), the page is the skeleton: its own script
    # and the libraries' inline elements, nothing with an address.
    skeleton = builder.SKELETON.read_text(encoding="utf-8")
    assert re.findall(r"<(?:script|link|img|iframe|object|embed)\b[^>]*>", skeleton) == ["<script>"]
    assert "http" not in skeleton and "//" not in skeleton.replace("// ", "")


def test_every_library_keeps_its_licence():
    for library in builder.LIBRARIES:
        text = library.license_file.read_text(encoding="utf-8")
        assert "University of Washington Interactive Data Lab" in text
        assert "Redistribution and use in source and binary forms" in text


def test_dvc_config_points_dvc_plots_at_the_template():
    from dvc.repo import Repo

    with Repo(str(PROJECT)) as repo:
        configured = repo.config["plots"]["html_template"]
        # DVC reads a relative path from .dvc/ (dvc/commands/plots.py).
        assert (Path(repo.dvc_dir) / configured).resolve() == builder.TEMPLATE


def _tarball(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode("utf-8")
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def _pinned_to(library, tarball: Path, script: str):
    return replace(
        library,
        integrity=builder.integrity_of(tarball.read_bytes()),
        sha256=hashlib.sha256(script.encode("utf-8")).hexdigest(),
    )


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path):
    library = builder.LIBRARIES[0]
    fake = _tarball(tmp_path / library.tarball,
                    {f"package/{library.build}": "var vega = {};", "package/LICENSE": "x"})
    with pytest.raises(builder.BuildError, match=r"is not vega@5\.20\.2 as pinned"):
        builder.read_tarball(library, fake)


def test_the_command_refuses_a_wrong_tarball_and_writes_nothing(tmp_path):
    before = builder.TEMPLATE.read_bytes()
    fakes = []
    for library in builder.LIBRARIES:
        fakes.append(_tarball(tmp_path / library.tarball,
                              {f"package/{library.build}": "1;", "package/LICENSE": "x"}))
    result = subprocess.run([sys.executable, str(PAGE / "build_template.py"), *map(str, fakes)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "npm pack vega@5.20.2" in result.stderr and "Traceback" not in result.stderr
    assert builder.TEMPLATE.read_bytes() == before


def test_a_library_that_would_break_the_page_is_refused(tmp_path):
    """A script holding "</script" would end its element early; one holding "{plot_divs}" would
    be rewritten by DVC."""
    for poison in ("x = '</script>';", "x = '{plot_divs}';", "x = '<!--';"):
        library = builder.LIBRARIES[2]
        tarball = _tarball(tmp_path / library.tarball,
                           {f"package/{library.build}": poison, "package/LICENSE": "x"})
        pinned = _pinned_to(library, tarball, poison)
        script, _ = builder.read_tarball(pinned, tarball)
        with pytest.raises(builder.BuildError, match="contains"):
            builder.check_script(pinned, script)


def test_a_tarball_without_the_build_file_is_refused(tmp_path):
    library = builder.LIBRARIES[1]
    tarball = _tarball(tmp_path / library.tarball, {"package/LICENSE": "x"})
    with pytest.raises(builder.BuildError, match="holds no package/build/vega-lite.min.js"):
        builder.read_tarball(_pinned_to(library, tarball, ""), tarball)


def test_a_template_edited_by_hand_is_caught(tmp_path, monkeypatch):
    edited = tmp_path / "template.html"
    edited.write_text(builder.TEMPLATE.read_text(encoding="utf-8").replace(
        "margin: 12px;", "margin: 13px;"), encoding="utf-8")
    monkeypatch.setattr(builder, "TEMPLATE", edited)
    with pytest.raises(builder.BuildError, match="is not built from"):
        builder.check_template()


def test_the_check_command_passes_on_the_committed_template():
    result = subprocess.run([sys.executable, str(PAGE / "build_template.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_an_edit_of_the_skeleton_alone_rebuilds_without_tarballs(tmp_path, monkeypatch):
    """The libraries already in the template are kept (checked against the pins)."""
    skeleton = tmp_path / "skeleton.html"
    skeleton.write_text(builder.SKELETON.read_text(encoding="utf-8").replace(
        "margin: 12px;", "margin: 13px;"), encoding="utf-8")
    template = tmp_path / "template.html"
    template.write_bytes(builder.TEMPLATE.read_bytes())
    monkeypatch.setattr(builder, "SKELETON", skeleton)
    monkeypatch.setattr(builder, "TEMPLATE", template)
    builder.build([])
    builder.check_template()
    assert "margin: 13px;" in template.read_text(encoding="utf-8")


def test_the_pinned_versions_are_those_dvc_render_loads():
    """The specs DVC writes are made for the versions its own page loads from the CDN: an
    upgrade of dvc-render that moves them must move the pins too."""
    from dvc_render.vega import VegaRenderer

    loaded = dict(re.findall(r"cdn\.jsdelivr\.net/npm/([a-z-]+)@([0-9.]+)", VegaRenderer.SCRIPTS))
    assert loaded == {library.package: library.version for library in builder.LIBRARIES}


def test_a_licence_that_is_not_the_package_s_own_is_refused():
    library = builder.LIBRARIES[0]
    text = library.license_file.read_text(encoding="utf-8")
    builder.check_license(library, text)
    with pytest.raises(builder.BuildError, match="the licence of vega has sha256"):
        builder.check_license(library, text.replace("2015-2018", "2015-2019"))
