"""Reading params.yaml as DVC does (ruamel.yaml, YAML 1.2), the limits on top of it (a regular
file, of bounded size, with bounded aliases), and files damaged at random (hypothesis, through the
validate stage)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.project import shipped_params, temporary_stage_project
from helpers.properties import EXAMPLES, SHIPPED_TEXT, check_validate
from helpers.special_files import SPECIAL_KINDS, make_special, within
from helpers.stages import assert_refused, run_stage_in_process
from numpynet.config import load_params
from numpynet.config import file as params_file
from numpynet.config.file import parse_params_text, read_params_file
from numpynet.errors import ConfigError


@pytest.fixture
def shipped(tmp_path):
    return shipped_params(tmp_path / "shipped.yaml")

# Every spelling of a number DVC may meet, and what ruamel's safe loader (YAML 1.2) makes of it.
# PyYAML (YAML 1.1) read the first two as strings and `yes`/`on` as True.
SCALARS = [
    ("1e-05", 1e-05),
    ("1E3", 1000.0),
    (".5", 0.5),
    ("1.0e-08", 1e-08),
    ("1_000", 1000),  # the underscore is a digit separator, and the result an int
    ("0x10", 16),
    ("0o17", 15),
    ("017", 17),  # decimal in YAML 1.2, not octal
    ("yes", "yes"),
    ("on", "on"),
    ("True", True),
]


def dvc_serialize():
    return pytest.importorskip("dvc.utils.serialize")


@pytest.mark.parametrize("written, expected", SCALARS)
def test_scalars_read_as_yaml_1_2(written, expected):
    value = parse_params_text(f"value: {written}\n")["value"]
    assert value == expected and type(value) is type(expected)


def test_scalars_read_the_same_as_dvc_reads_them():
    text = "".join(f"k{i}: {written}\n" for i, (written, _) in enumerate(SCALARS))
    assert parse_params_text(text) == dvc_serialize().parse_yaml(text, "params.yaml")


def test_project_params_read_the_same_as_dvc_reads_them(shipped):
    assert read_params_file(shipped) == dvc_serialize().load_yaml(str(shipped))


def test_numbers_written_by_dvc_exp_run_set_param_stay_numbers(tmp_path, shipped):
    # `dvc exp run -S train.eps=1e-8` rewrites params.yaml through this round-trip writer.
    path = tmp_path / "params.yaml"
    path.write_bytes(shipped.read_bytes())
    with dvc_serialize().modify_yaml(str(path)) as data:
        data["train"].update(lr=1e-05, eps=1e-08, min_lr=1e-300, epochs=1_000)
    train = load_params(path).train
    assert (train.lr, train.eps, train.min_lr, train.epochs) == (1e-05, 1e-08, 1e-300, 1000)


def test_duplicate_key_names_the_key_and_line():
    with pytest.raises(ConfigError) as caught:
        parse_params_text("train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n", "p.yaml")
    message = str(caught.value)
    assert "key 'lr'" in message and "line 4" in message and message.startswith("p.yaml")


def nested_alias_bomb(levels: int, fan_out: int = 10) -> str:
    """'Billion laughs': each level an anchored list of ``fan_out`` aliases of the one before."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * fan_out) + "]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*l{level - 1}"] * fan_out)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


@pytest.mark.hostile
def test_alias_bomb_is_refused_quickly():
    text = nested_alias_bomb(levels=10)  # 10^10 values once expanded
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        parse_params_text(text)
    assert time.perf_counter() - started < 0.5
    message = str(caught.value)
    assert "anchors/aliases expand to too many values" in message
    assert f"{params_file.MAX_VALUES:,}" in message and len(message) < 400


def test_limit_counts_every_alias_as_a_copy(monkeypatch):
    monkeypatch.setattr(params_file, "MAX_VALUES", 49)

    def document(copies: int) -> str:
        # The root, keys a and b, list a and its 4 items, list b: 9 values; each alias 5 more.
        return "a: &a [1, 2, 3, 4]\nb: [" + ", ".join(["*a"] * copies) + "]\n"

    assert parse_params_text(document(8))["b"] == [[1, 2, 3, 4]] * 8  # 49 values
    with pytest.raises(ConfigError, match="more than 49"):
        parse_params_text(document(9))  # 54 values


def test_anchors_within_the_limit_are_expanded():
    text = "a: &betas [0.9, 0.999]\nb: {betas: *betas, eps: 1e-8}\n"
    assert parse_params_text(text) == {"a": [0.9, 0.999], "b": {"betas": [0.9, 0.999], "eps": 1e-8}}


@pytest.mark.hostile
@pytest.mark.parametrize("text", ["a: &x [1, *x]\n", "m: &m {inner: *m}\n"])
def test_recursive_alias_is_refused(text):
    with pytest.raises(ConfigError, match="recursive structure"):
        parse_params_text(text)


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("train: [unclosed\n", ["not valid YAML", "line 2"]),
        ("train:\n\t- 1\n", ["not valid YAML", "line 2, column 1", "'\\t'"]),
        ("a: 1\n---\nb: 2\n", ["not valid YAML", "single document"]),
        ("a: *nowhere\n", ["not valid YAML", "line 1, column 4", "undefined alias"]),
        ("a: !!python/object:os.system x\n", ["not valid YAML", "line 1"]),
        ("a: \x01\n", ["not valid YAML", "line 1"]),
        ("a: !!int x\n", ["cannot be read as the type YAML gives it"]),
        ("a: " + "9" * 5000 + "\n", ["cannot be read as the type YAML gives it"]),
        ("[" * 600 + "]" * 600, ["too deeply"]),
    ],
)
def test_parse_errors_are_config_errors_with_a_location(text, fragments):
    with pytest.raises(ConfigError) as caught:
        parse_params_text(text, "p.yaml")
    message = str(caught.value)
    assert message.startswith("p.yaml") and len(message) < 500
    for fragment in fragments:
        assert fragment in message, message


def test_errors_never_quote_a_huge_value():
    huge = "x" * 100_000
    with pytest.raises(ConfigError) as caught:
        parse_params_text(f"lr: {huge}\nlr: {huge}\n")  # ruamel's own message quotes both
    message = str(caught.value)
    assert "key 'lr'" in message and "duplicate" in message and len(message) < 400


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="params.yaml not found: run from the project root"):
        load_params(tmp_path / "params.yaml")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_params(tmp_path)
    assert str(tmp_path) in str(caught.value) and "is a directory" in str(caught.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"train:\n  lr: 0.1 # caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    message = str(caught.value)
    assert str(path) in message and "not UTF-8" in message and "0xe9 on line 2" in message


def test_unreadable_file(tmp_path, monkeypatch, shipped):
    path = tmp_path / "params.yaml"
    path.write_bytes(shipped.read_bytes())

    # chmod 000 does not stop root, which these tests may run as: refuse the open instead.
    real_open = os.open

    def refuse(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert str(path) in str(caught.value) and "chmod u+r" in str(caught.value)


@pytest.mark.hostile
@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_a_params_file_that_is_no_regular_file_is_refused_at_once(tmp_path, kind):
    path = make_special(tmp_path / "params.yaml", kind)
    with pytest.raises(ConfigError) as caught:
        within(lambda: load_params(path))
    message = str(caught.value)
    assert str(path) in message and "not a regular file" in message, message
    assert "pass the params file itself with --params" in message, message
    # The validate stage, as DVC runs it: exit 2, one paragraph, nothing written.
    with temporary_stage_project() as project:
        make_special(project / "params.yaml", kind)
        code, stderr = within(lambda: run_stage_in_process(
            project, "validate", "--out", "data/params-valid"))
        assert_refused(code, stderr, "params.yaml", "not a regular file",
                       output=project / "data" / "params-valid")


@pytest.mark.hostile
def test_a_params_file_past_its_bound_is_refused_before_it_is_read(tmp_path, shipped,
                                                                      monkeypatch):
    size = len(shipped.read_bytes())
    monkeypatch.setattr(params_file, "MAX_PARAMS_BYTES", size)
    assert load_params(shipped)  # exactly the bound passes
    monkeypatch.setattr(params_file, "MAX_PARAMS_BYTES", size - 1)
    with pytest.raises(ConfigError) as caught:
        load_params(shipped)
    message = str(caught.value)
    assert str(shipped) in message and f"holds {size:,} bytes" in message, message
    assert "MAX_PARAMS_BYTES in src/numpynet/config/file.py" in message, message
    monkeypatch.undo()
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as stream:  # sparse: a terabyte of zeros on no disk space
        stream.truncate(1 << 40)
    with pytest.raises(ConfigError, match="1,099,511,627,776 bytes"):
        within(lambda: load_params(huge))


def test_empty_file_is_not_a_params_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_params(path)


@pytest.mark.parametrize(
    "key, value, changed",
    [
        ("lr", 0.003, ["  lr: 0.003"]),
        ("hidden_sizes", [2048, 1024], ["  - 2048", "  - 1024"]),
    ],
)
def test_dvc_set_param_rewrites_only_the_changed_lines(shipped, key, value, changed):
    """`dvc exp run -S` rewrites the whole file: the shipped one is written the way DVC writes,
    so that the rewrite changes nothing but the value (flow lists would be reflowed)."""
    before = shipped.read_text(encoding="utf-8").splitlines()
    with dvc_serialize().modify_yaml(str(shipped)) as data:
        data["train"][key] = value
    after = shipped.read_text(encoding="utf-8").splitlines()
    assert len(after) == len(before)
    differing = [new for old, new in zip(before, after) if old != new]
    assert [line.split("#")[0].rstrip() for line in differing] == changed


# ---------------------------------------------------------------------------------------------
# Damaged params text, as the validate stage meets it (hypothesis)
# ---------------------------------------------------------------------------------------------


@st.composite
def damaged_params_text(draw):
    """The shipped file's bytes cut short, with bytes overwritten or inserted, or random bytes."""
    how = draw(st.sampled_from(["truncate", "overwrite", "insert", "random"]))
    data = bytearray(SHIPPED_TEXT)
    if how == "random":
        return draw(st.binary(max_size=300))
    at = draw(st.integers(0, len(data)))
    if how == "truncate":
        return bytes(data[:at])
    chunk = draw(st.one_of(
        st.binary(min_size=1, max_size=8),
        st.sampled_from([b"\t", b":", b"- ", b"&a ", b"*a", b"{", b"]", b"'", b"\xff", b"!!python/object:os.system"]),
    ))
    if how == "overwrite":
        data[at : at + len(chunk)] = chunk
    else:
        data[at:at] = chunk
    return bytes(data)


@pytest.mark.hostile
@EXAMPLES
@given(damaged_params_text())
def test_damaged_params_text_passes_or_is_refused_with_the_file(data):
    with temporary_stage_project() as project:
        params_file = project / "params.yaml"
        params_file.write_bytes(data)
        check_validate(project, params_file, must_fail=False)
