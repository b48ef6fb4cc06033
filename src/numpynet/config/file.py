"""Reading ``params.yaml`` the way DVC reads it, with the limits DVC does not set.

DVC parses params.yaml with ruamel.yaml's safe loader (YAML 1.2; ``dvc.utils.serialize
.parse_yaml``) and ``dvc exp run -S`` writes it back with ruamel's round-trip dumper. Reading it
with the same loader means a value means the same thing to DVC and to the stages: ``1e-05``,
``1E3`` and ``.5`` are floats (YAML 1.1 readers such as PyYAML take the first two for strings),
``1_000`` is the int 1000, ``0x10`` the int 16, and ``yes``/``on`` are strings, not booleans.

On top of what ruamel does, a file is refused (with a :class:`ConfigError` naming the path and the
fix, never a traceback) when it

* holds more than :data:`MAX_VALUES` values once YAML anchors and aliases are expanded. An alias
  shares its anchor's node instead of copying it, so a few lines of nested aliases can stand for
  a billion values; every later walk over the tree (validation, an error message quoting a value,
  ruamel's own duplicate-key message) would then take forever. The nodes are counted as ruamel
  composes them, before anything is built, remembering each shared node's count by its identity:
  linear time in the file's length, whatever the aliases expand to. Every mapping, list, key and
  scalar counts as one value; the project's params.yaml holds about a hundred.
* has an alias inside the node it refers to (a recursive structure);
* repeats a key within one mapping (ruamel's DuplicateKeyError, reported with the key and line);
* is not a regular file (a FIFO, ``/dev/zero`` or another device, a link to one), refused before
  a byte is read: reading one would wait for a writer forever or never end;
* holds more than :data:`MAX_PARAMS_BYTES`, refused before it is read;
* cannot be read: missing, a directory, unreadable, not UTF-8.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import CollectionNode, MappingNode, Node

from numpynet.config.fields import show
from numpynet.errors import ConfigError
from numpynet.files import RefusedFileError, read_regular_file

MAX_VALUES = 100_000
# The project's params.yaml takes 5 KiB; fifty times that still parses in about a second
# (ruamel is pure Python: a MiB takes several), and a larger file is no params file.
MAX_PARAMS_BYTES = 256 << 10

# The longest piece of a parser's message quoted in ours.
_MAX_DETAIL = 200


def read_params_file(path: Path | str) -> Any:
    """Read the YAML file at ``path`` into plain dicts, lists and scalars, as DVC reads it.

    Raises :class:`ConfigError` when the file cannot be read, is not UTF-8, is not valid YAML, or
    breaks one of the limits in the module docstring.
    """
    path = Path(path)
    try:
        data = read_regular_file(
            path, MAX_PARAMS_BYTES,
            "MAX_PARAMS_BYTES in src/numpynet/config/file.py; raise it for a larger one",
        )
    except RefusedFileError as error:
        raise ConfigError(
            f"{error}; pass the params file itself with --params (a params file is a few KiB of "
            f"YAML; git checkout params.yaml restores the project's)"
        ) from None
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run from the project root or pass --params") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a directory: pass the params file itself (e.g. {path / 'params.yaml'})"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"{path} cannot be read: permission denied; make it readable (chmod u+r {path}) "
            f"or pass another --params"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"{path} cannot be read ({error.strerror or type(error).__name__}); "
            f"check the path passed with --params"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} on line {line}); "
            f"save it as UTF-8, the encoding DVC reads it in"
        ) from None
    return parse_params_text(text, str(path))


def parse_params_text(text: str, source: str = "params.yaml") -> Any:
    """Parse YAML ``text`` as :func:`read_params_file` does; ``source`` names it in errors."""
    yaml = YAML(typ="safe")  # what dvc.utils.serialize.parse_yaml uses
    with _yaml_errors_as_config_errors(text, source):
        # Composing builds the node graph, in which an alias is the very node it refers to.
        root = yaml.compose(text)
    _check_expanded_size(root, source)
    with _yaml_errors_as_config_errors(text, source, root):
        return yaml.load(text)


@contextmanager
def _yaml_errors_as_config_errors(text: str, source: str, root: Node | None = None):
    """Turn what ruamel raises while reading ``text`` into a ConfigError with the location."""
    try:
        yield
    except DuplicateKeyError as error:
        raise ConfigError(_duplicate_key_message(error, root, source)) from None
    except MarkedYAMLError as error:
        raise ConfigError(f"{source} is not valid YAML: {_marked_detail(error)}") from None
    except YAMLError as error:
        detail = _first_line(error)
        position = getattr(error, "position", None)
        if isinstance(position, int):
            detail += f" (line {text.count(chr(10), 0, position) + 1})"
        raise ConfigError(f"{source} is not valid YAML: {detail}") from None
    except RecursionError:
        raise ConfigError(
            f"{source} nests mappings and lists too deeply to read; params.yaml needs a few levels"
        ) from None
    except (ValueError, OverflowError) as error:
        # ruamel builds ints, floats and dates with Python's own constructors, which raise these.
        raise ConfigError(
            f"{source}: a value cannot be read as the type YAML gives it ({_first_line(error)}); "
            f"check its spelling, or quote it to make it a string"
        ) from None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, CollectionNode):
        return list(node.value)
    return []


def _check_expanded_size(root: Node | None, source: str) -> None:
    """Refuse a tree of more than MAX_VALUES values with aliases expanded, or a cyclic one.

    A depth-first walk without recursion (nesting depth is the file's to choose). Each
    collection's expanded size is 1 + its children's and is kept by ``id``, so a node shared by
    many aliases is walked once; the sum still counts it once per reference.
    """
    if root is None:
        return
    sizes: dict[int, int] = {}
    on_path: set[int] = set()  # collections whose walk has started and not finished
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finishing = stack.pop()
        if finishing:
            on_path.discard(id(node))
            size = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
            if size > MAX_VALUES:
                raise ConfigError(
                    f"{source}: YAML anchors/aliases expand to too many values: more than "
                    f"{MAX_VALUES:,} once every alias is replaced by what it refers to (the node "
                    f"at line {node.start_mark.line + 1} alone holds {_magnitude(size)}); "
                    f"params.yaml needs a few hundred, so remove the aliases that multiply it"
                )
            sizes[id(node)] = size
            continue
        if id(node) in sizes:
            continue
        if id(node) in on_path:
            anchor = getattr(node, "anchor", None)
            named = f"anchor {show(anchor)}" if anchor else "anchor"
            raise ConfigError(
                f"{source}: line {node.start_mark.line + 1}: an alias refers to the {named} "
                f"that contains it, which makes a recursive structure; params.yaml cannot hold "
                f"one: write the inner value out"
            )
        on_path.add(id(node))
        stack.append((node, True))
        children = _children(node)
        stack.extend((child, False) for child in children if isinstance(child, CollectionNode))


def _magnitude(count: int) -> str:
    """A count too large to print in full, as a power of ten."""
    return f"{count:,} values" if count < 10**12 else f"about 10^{len(str(count)) - 1} values"


def _duplicate_key_message(error: DuplicateKeyError, root: Node | None, source: str) -> str:
    """Name the repeated key (as written in the file) and its line; ruamel's text quotes values."""
    mark = error.problem_mark
    key = _key_written_at(root, mark.line, mark.column) if root is not None else None
    named = f"key {show(key)}" if key is not None else "a key"
    return (
        f"{source}: line {mark.line + 1}, column {mark.column + 1}: {named} is repeated in the "
        f"same mapping; YAML (and DVC) refuse duplicate keys: keep one of them"
    )


def _key_written_at(root: Node, line: int, column: int) -> str | None:
    """The text of the scalar key that starts at ``line``/``column`` of the file, if any."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key_node, _ in node.value:
                start = key_node.start_mark
                if (start.line, start.column) == (line, column) and isinstance(key_node.value, str):
                    return key_node.value
        stack.extend(child for child in _children(node) if isinstance(child, CollectionNode))
    return None


def _marked_detail(error: MarkedYAMLError) -> str:
    """'line L, column C: <what the parser found>', from a ruamel error with a position."""
    problem = ": ".join(part for part in (error.context, error.problem) if part)
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + _truncate(problem or type(error).__name__)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return _truncate(lines[0] if lines else type(error).__name__)


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."
