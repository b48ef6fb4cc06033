"""Build plots-page/template.html: the page of `dvc plots`, with Vega inlined so it draws offline.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from cdn.jsdelivr.net, so without the
network every chart on it stays an empty frame. This script puts the three libraries, at the
versions DVC's page asks for, inside ``skeleton.html`` and writes ``template.html`` beside it,
with each package's licence under ``licenses/``. ``.dvc/config`` points DVC at the result.

To build it (from the project's root; to move to other versions, first change ``LIBRARIES``:
each version, the tarball's integrity that ``npm view <package>@<version> dist.integrity``
prints, and the build file's sha256)::

    npm pack --pack-destination /tmp vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
    python plots-page/build_template.py /tmp/vega-5.20.2.tgz /tmp/vega-lite-5.2.0.tgz \
        /tmp/vega-embed-6.18.2.tgz

Each tarball is checked against its integrity before anything is read from it, and only the
two files named below are read. After an edit of the skeleton alone, run it without tarballs: it
keeps the libraries template.html holds. Run with ``--check`` to verify that ``template.html``
holds the pinned libraries and the current skeleton (the tests do).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKELETON = HERE / "skeleton.html"
TEMPLATE = HERE / "template.html"
LICENSES = HERE / "licenses"

# Where the skeleton receives the libraries.
MARKER = "<!-- LIBRARIES -->"
# What DVC replaces in a page template (dvc_render.html.HTML); a library holding one of these
# would be rewritten by DVC, and a script holding "</script" would end its element early.
FORBIDDEN_IN_SCRIPTS = ("{plot_divs}", "{scripts}", "{refresh_tag}", "</script", "<!--")


@dataclass(frozen=True)
class Library:
    """One npm package's browser build, pinned by its tarball's integrity and its file's sha256."""

    package: str
    version: str
    build: str  # the file inside the package's tarball, under package/
    integrity: str  # npm's dist.integrity of the tarball
    sha256: str  # of the build file, which is what template.html carries
    license_sha256: str  # of the package's LICENSE, kept in licenses/

    @property
    def tarball(self) -> str:
        """The file name `npm pack` gives the package's tarball."""
        return f"{self.package}-{self.version}.tgz"

    @property
    def license_file(self) -> Path:
        """Where the package's licence text is kept."""
        return LICENSES / f"{self.package}.txt"

    def header(self) -> str:
        """The comment before the library's script in template.html, naming it and its licence."""
        return (
            f"<!-- {self.package} {self.version}: {self.build} of the npm package, "
            f"BSD-3-Clause, see plots-page/licenses/{self.package}.txt -->"
        )


# The versions DVC's own page loads (dvc_render.vega.VegaRenderer.SCRIPTS in dvc-render 1.0):
# the specs DVC writes are made for them. Order matters: Vega-Lite and Vega-Embed need Vega.
LIBRARIES = (
    Library(
        "vega", "5.20.2", "build/vega.min.js",
        "sha512-qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw==",
        "4794d0169cb1f3ebad8117fe98ba5bd652dd725905ec0384e832391dbccb03be",
        "0af895a1dac4df349658e87c9605638d5b79f86bc8533dfb8e43a05c18dca92d",
    ),
    Library(
        "vega-lite", "5.2.0", "build/vega-lite.min.js",
        "sha512-Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw==",
        "d73157451b3978015ab31dacd55ff90d986ab8663fc0abed50f97b3cd90002cb",
        "f618900fd0d64046963b29f40590cdd1e341a2f41449f99110d82fd81fea808c",
    ),
    Library(
        "vega-embed", "6.18.2", "build/vega-embed.min.js",
        "sha512-wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg==",
        "1ba9826431ddc9805e815ad92acc811c819f2bfd32bda2a128b8c4b5070fab5e",
        "32df67148f0fc3db0eb9e263a7b75d07f1eb14c61955005a4a39c6918d10d137",
    ),
)


class BuildError(Exception):
    """A tarball, library or template that is not what the pins say."""


def integrity_of(data: bytes) -> str:
    """npm's integrity string (Subresource Integrity, sha512) of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def read_tarball(library: Library, path: Path) -> tuple[str, str]:
    """The build file and the licence text of ``library``'s tarball at ``path``, once its bytes
    match the pinned integrity."""
    data = path.read_bytes()
    if integrity_of(data) != library.integrity:
        raise BuildError(
            f"{path} is not {library.package}@{library.version} as pinned (integrity "
            f"{integrity_of(data)}, pinned {library.integrity}); fetch it again with "
            f"`npm pack {library.package}@{library.version}`, or update LIBRARIES"
        )
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        script = _member_text(archive, f"package/{library.build}", path)
        license_text = _member_text(archive, "package/LICENSE", path)
    return script, license_text


def _member_text(archive: tarfile.TarFile, name: str, path: Path) -> str:
    """The text of the regular file ``name`` in ``archive`` (read, never extracted)."""
    try:
        member = archive.getmember(name)
    except KeyError:
        raise BuildError(f"{path} holds no {name}") from None
    stream = archive.extractfile(member) if member.isfile() else None
    if stream is None:
        raise BuildError(f"{name} in {path} is not a regular file")
    try:
        return stream.read().decode("utf-8")
    except UnicodeDecodeError as error:
        raise BuildError(f"{name} in {path} is not UTF-8 text ({error})") from None


def check_script(library: Library, script: str) -> None:
    """Refuse a build file that is not the pinned one, or that the page would break."""
    digest = hashlib.sha256(script.encode("utf-8")).hexdigest()
    if digest != library.sha256:
        raise BuildError(
            f"{library.package} {library.build} has sha256 {digest}, pinned {library.sha256}"
        )
    for text in FORBIDDEN_IN_SCRIPTS:
        if text in script:
            raise BuildError(f"{library.package} {library.build} contains {text!r}")


def check_license(library: Library, text: str) -> None:
    """Refuse a licence text that is not the one the pinned package carries."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest != library.license_sha256:
        raise BuildError(f"the licence of {library.package} has sha256 {digest}, pinned "
                         f"{library.license_sha256}")


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BuildError(f"{path} is missing") from None


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 bytes, line endings untouched, through a temporary file beside it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(text.encode("utf-8"))
    temporary.replace(path)


def render(skeleton: str, scripts: dict[str, str]) -> str:
    """``skeleton`` with the libraries' scripts, by package name, in place of its marker."""
    if skeleton.count(MARKER) != 1:
        raise BuildError(f"{SKELETON} must hold {MARKER} exactly once")
    elements = [f"{library.header()}\n    <script>{scripts[library.package]}</script>"
                for library in LIBRARIES]
    return skeleton.replace(MARKER, "\n    ".join(elements))


def inlined_scripts(template: str) -> dict[str, str]:
    """The scripts :func:`render` put into ``template``, by package name."""
    scripts = {}
    for library in LIBRARIES:
        found = re.search(re.escape(library.header()) + r"\n    <script>(.*?)</script>",
                          template, flags=re.DOTALL)
        if found is None:
            raise BuildError(f"{TEMPLATE} holds no {library.package} {library.version}")
        scripts[library.package] = found.group(1)
    return scripts


def check_template() -> None:
    """Refuse a template.html that lacks a pinned library, or that was not built from today's
    skeleton, and a licence that is not the package's own."""
    template = _read_text(TEMPLATE)
    scripts = inlined_scripts(template)
    for library in LIBRARIES:
        check_script(library, scripts[library.package])
        check_license(library, _read_text(library.license_file))
    if render(_read_text(SKELETON), scripts) != template:
        raise BuildError(f"{TEMPLATE} is not built from {SKELETON}: run {Path(__file__).name}")


def build(tarballs: list[Path]) -> None:
    """Write template.html and the licences from the npm tarballs given; with none, rebuild
    template.html from today's skeleton and the libraries it already holds (checked against the
    pins), which is all an edit of the skeleton needs."""
    by_name = {path.name: path for path in tarballs}
    if by_name:
        scripts = {}
        licenses = {}
        for library in LIBRARIES:
            if library.tarball not in by_name:
                raise BuildError(f"no {library.tarball} among the tarballs given")
            script, licenses[library] = read_tarball(library, by_name[library.tarball])
            scripts[library.package] = script
            check_license(library, licenses[library])
    else:
        scripts = inlined_scripts(_read_text(TEMPLATE))
        licenses = {}
    for library in LIBRARIES:
        check_script(library, scripts[library.package])
    page = render(_read_text(SKELETON), scripts)
    # Everything checked before anything is written; the page first, which names the licences.
    _write_text(TEMPLATE, page)
    LICENSES.mkdir(exist_ok=True)
    for library, text in licenses.items():
        _write_text(library.license_file, text)


def main() -> int:
    """Build, or with ``--check`` verify, template.html; exit 1 with one line on any problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tarballs", nargs="*", type=Path,
                        help="the npm tarballs (npm pack); none: keep the template's libraries")
    parser.add_argument("--check", action="store_true", help="verify template.html, build nothing")
    args = parser.parse_args()
    try:
        if args.check:
            check_template()
            print(f"{TEMPLATE} holds the pinned libraries and today's skeleton")
        else:
            build(args.tarballs)
            print(f"wrote {TEMPLATE} and {LICENSES}/")
    except (BuildError, OSError) as error:
        print(f"build_template: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
