"""The one typed, validated view of ``params.yaml``.

Stage entry points call :func:`load_params` once and pass plain values from the result into the
library; nothing else reads ``params.yaml``. Validation happens before any work: every unknown
key, wrong type and out-of-range value is reported at once, each with its full key path and what
would be accepted.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from numpynet.data.catalog import (
    BUILTIN,
    IDX_FILE_NAMES,
    IDX_ROLES,
    DatasetSource,
    RemoteFile,
    is_hex_digest,
)
from numpynet.data.download import is_url
from numpynet.data.sources import ImageFolderSource
from numpynet.errors import ConfigError


def _check(predicate: Callable[[Any], bool], accepts: str) -> dict:
    """Field metadata: a range check and the phrase that tells the user what is accepted."""
    return {"check": predicate, "accepts": accepts}


def _positive(accepts="a number > 0"):
    return _check(lambda v: v > 0, accepts)


@dataclass(frozen=True)
class DownloadConfig:
    """How downloads behave. Not a DVC dependency: none of it changes the downloaded bytes."""

    timeout_s: float = field(metadata=_positive("a number of seconds > 0"))


@dataclass(frozen=True)
class PreprocessConfig:
    val_fraction: float = field(metadata=_check(lambda v: 0 < v < 1, "a number in (0, 1)"))
    seed: int = field(metadata=_check(lambda v: v >= 0, "an integer >= 0"))


@dataclass(frozen=True)
class TrainConfig:
    seed: int = field(metadata=_check(lambda v: v >= 0, "an integer >= 0"))
    hidden_sizes: list[int] = field(
        metadata=_check(
            lambda v: len(v) > 0 and all(n > 0 for n in v),
            "a non-empty list of positive integers (at least one hidden layer)",
        )
    )
    dropout: float = field(metadata=_check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    epochs: int = field(metadata=_positive("an integer > 0"))
    batch_size: int = field(metadata=_positive("an integer > 0"))
    optimizer: str = field(metadata=_check(lambda v: v in ("sgd", "adamw"), "'sgd' or 'adamw'"))
    lr: float = field(metadata=_positive())
    momentum: float = field(metadata=_check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    nesterov: bool = field(metadata={})
    betas: list[float] = field(
        metadata=_check(
            lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"
        )
    )
    eps: float = field(metadata=_positive())
    weight_decay: float = field(metadata=_check(lambda v: v >= 0, "a number >= 0"))
    schedule: str = field(
        metadata=_check(lambda v: v in ("cosine", "constant"), "'cosine' or 'constant'")
    )
    warmup_epochs: float = field(metadata=_check(lambda v: v >= 0, "a number of epochs >= 0"))
    min_lr: float = field(metadata=_check(lambda v: v >= 0, "a number >= 0"))


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = field(metadata=_positive("an integer > 0"))


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of ``datasets:``: where the data comes from, and its own training settings."""

    name: str
    source: DatasetSource | ImageFolderSource
    train_overrides: dict[str, Any]


@dataclass(frozen=True)
class Params:
    """Everything ``params.yaml`` says, validated."""

    datasets: dict[str, DatasetConfig]
    download: DownloadConfig
    preprocess: PreprocessConfig
    train: TrainConfig
    evaluate: EvaluateConfig

    def dataset(self, name: str) -> DatasetConfig:
        """The dataset called ``name``, or a ConfigError listing the configured ones."""
        if name not in self.datasets:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise ConfigError(
                f"dataset '{name}' is not configured in params.yaml (configured: {known}); "
                f"add it under 'datasets:'"
            )
        return self.datasets[name]

    def train_for(self, name: str) -> TrainConfig:
        """The shared ``train`` settings with dataset ``name``'s overrides applied."""
        return dataclasses.replace(self.train, **self.dataset(name).train_overrides)


_SECTIONS = {
    "download": DownloadConfig,
    "preprocess": PreprocessConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; raise ConfigError naming every problem found."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run from the project root or pass --params") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return parse_params(raw, source=str(path))


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-parsed params mapping (see :func:`load_params`)."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    allowed = {"datasets", *_SECTIONS}
    for key in sorted(set(raw) - allowed, key=str):
        problems.append(f"{key}: unknown section (accepted: {', '.join(sorted(allowed))})")

    sections = {}
    for name, cls in _SECTIONS.items():
        sections[name] = _parse_section(cls, raw.get(name), name, problems)
    datasets = _parse_datasets(raw.get("datasets"), problems)
    if sections["train"] is not None:
        _check_train_consistency(sections["train"], "train", problems)
        for dataset in datasets.values():
            if dataset.train_overrides:
                merged = dataclasses.replace(sections["train"], **dataset.train_overrides)
                _check_train_consistency(merged, f"datasets.{dataset.name}.train", problems)

    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{source} has {len(problems)} problem(s):\n{listing}")
    return Params(datasets=datasets, **sections)


def _check_train_consistency(train: TrainConfig, path: str, problems: list[str]) -> None:
    """Rules that involve more than one key (``path`` says where the settings came from)."""
    if train.min_lr > train.lr:
        problems.append(
            f"{path}.min_lr: got {train.min_lr}, above lr ({train.lr}); expected a value <= lr"
        )
    if train.optimizer == "sgd" and train.nesterov and train.momentum == 0:
        problems.append(
            f"{path}.nesterov: true needs momentum > 0; set a momentum or nesterov: false"
        )


def _parse_section(cls, raw: Any, path: str, problems: list[str]):
    """A whole section: every field of ``cls`` must be present and valid."""
    if raw is None:
        problems.append(f"{path}: section is missing")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a mapping, got {_describe(raw)}")
        return None
    values = _parse_fields(cls, raw, path, problems, required=True)
    return cls(**values) if len(values) == len(dataclasses.fields(cls)) else None


def _parse_fields(cls, raw: dict, path: str, problems: list[str], required: bool) -> dict:
    """Check the keys of ``raw`` against the fields of ``cls``; return the valid values."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in sorted(set(raw) - set(fields), key=str):
        problems.append(f"{path}.{key}: unknown key (accepted: {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        key_path = f"{path}.{name}"
        if name not in raw:
            if required:
                problems.append(f"{key_path}: missing (expected {_expected(spec)})")
            continue
        value, error = _coerce(raw[name], spec.type)
        if error is None and "check" in spec.metadata and not spec.metadata["check"](value):
            error = f"got {raw[name]!r}"
        if error is not None:
            problems.append(f"{key_path}: {error}; expected {_expected(spec)}")
            continue
        values[name] = value
    return values


def _expected(spec: dataclasses.Field) -> str:
    return spec.metadata.get("accepts") or _TYPE_NAMES[spec.type]


_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list[int]": "a list of integers",
    "list[float]": "a list of numbers",
}


def _coerce(value: Any, type_name: str) -> tuple[Any, str | None]:
    """Check ``value`` against a field's annotation; return (value, None) or (None, problem)."""
    wrong = f"wrong type {_describe(value)}"
    if type_name == "bool":
        return (value, None) if isinstance(value, bool) else (None, wrong)
    if type_name == "int":
        # YAML reads `true` as a bool, which Python would happily treat as 1.
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if ok else (None, wrong)
    if type_name == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            return None, f"got {value!r}, which is not finite"
        return (float(value), None) if ok else (None, wrong)
    if type_name == "str":
        return (value, None) if isinstance(value, str) else (None, wrong)
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return None, wrong
        items = []
        for i, item in enumerate(value):
            item_value, error = _coerce(item, type_name[5:-1])
            if error is not None:
                return None, f"item {i}: {error}"
            items.append(item_value)
        return items, None
    raise AssertionError(f"no coercion for annotation {type_name}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _parse_datasets(raw: Any, problems: list[str]) -> dict[str, DatasetConfig]:
    if raw is None:
        problems.append(
            "datasets: section is missing "
            "(e.g. 'datasets: {mnist: {data: {format: idx}, train: {}}}')"
        )
        return {}
    if not isinstance(raw, dict) or not raw:
        problems.append(f"datasets: expected a non-empty mapping of names, got {_describe(raw)}")
        return {}
    datasets = {}
    for name, entry in raw.items():
        path = f"datasets.{name}"
        if not isinstance(entry, dict):
            problems.append(
                f"{path}: expected a mapping with 'data' and 'train', got {_describe(entry)}"
            )
            continue
        for key in sorted(set(entry) - {"data", "train"}, key=str):
            problems.append(f"{path}.{key}: unknown key (accepted: data, train)")
        before = len(problems)
        source = _parse_data(str(name), entry.get("data"), f"{path}.data", problems)
        overrides = entry.get("train")
        if not isinstance(overrides, dict):
            # DVC tracks datasets.<name>.train for each train stage, so it must exist, even empty.
            problems.append(
                f"{path}.train: expected a mapping of overrides of the 'train' section "
                f"({{}} for none), got {_describe(overrides)}"
            )
        else:
            overrides = _parse_fields(
                TrainConfig, overrides, f"{path}.train", problems, required=False
            )
        if len(problems) == before:
            datasets[str(name)] = DatasetConfig(str(name), source, overrides)
    return datasets


def _parse_data(name: str, data: Any, path: str, problems: list[str]):
    """Where a dataset comes from and how to read it: a built-in, idx files or an image folder."""
    if not isinstance(data, dict):
        problems.append(
            f"{path}: expected a mapping such as {{format: idx}}, got {_describe(data)}"
        )
        return None
    builtin = BUILTIN.get(name)
    fmt = data.get("format", builtin.format if builtin else None)
    if fmt not in FORMATS:
        problems.append(f"{path}.format: got {fmt!r}; expected one of {', '.join(FORMATS)}")
        return None
    allowed = FORMATS[fmt]
    for key in sorted(set(data) - set(allowed), key=str):
        problems.append(
            f"{path}.{key}: unknown key for format {fmt} (accepted: {', '.join(allowed)})"
        )
    if fmt == "image-folder":
        return _parse_image_folder(name, data, path, problems)
    if builtin is not None and builtin.format != fmt:
        problems.append(
            f"{path}.format: the built-in {name} has format {builtin.format!r}, got {fmt!r}"
        )
        return None
    return _parse_remote_files(name, fmt, builtin, data, path, problems)


# The keys each format accepts under datasets.<name>.data.
FORMATS = {
    "idx": ("format", "urls", "sha256"),
    "cifar10-binary": ("format", "urls"),
    "image-folder": ("format", "source", "sha256", "mode", "size", "test_fraction", "split_seed"),
}


def _parse_remote_files(name, fmt, builtin, data, path, problems):
    urls = data.get("urls", list(builtin.urls) if builtin else [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        problems.append(f"{path}.urls: wrong type {_describe(urls)}; expected a list of base URLs")
        return None
    sha256 = data.get("sha256")
    if sha256 is None:
        if builtin is None:
            problems.append(
                f"{path}: '{name}' is not a built-in dataset "
                f"(built-in: {', '.join(sorted(BUILTIN))}); "
                f"to use your own idx files give {path}.sha256 with one checksum per file "
                f"({', '.join(IDX_ROLES)}), or use format: image-folder"
            )
            return None
        return dataclasses.replace(builtin, urls=tuple(urls))
    if not isinstance(sha256, dict) or set(sha256) != set(IDX_ROLES):
        problems.append(f"{path}.sha256: expected a mapping with exactly {', '.join(IDX_ROLES)}")
        return None
    if not all(is_hex_digest(v, "sha256") for v in sha256.values()):
        problems.append(f"{path}.sha256: every value must be 64 hexadecimal digits")
        return None
    files = {role: RemoteFile(IDX_FILE_NAMES[role], sha256=sha256[role]) for role in IDX_ROLES}
    return DatasetSource(name=name, format=fmt, files=files, urls=tuple(urls))


def _parse_image_folder(name, data, path, problems):
    before = len(problems)
    location = data.get("source")
    if not isinstance(location, str) or not location:
        problems.append(
            f"{path}.source: expected a directory, a .tar.gz/.zip archive or a URL, got "
            f"{_describe(location)}"
        )
    sha256 = data.get("sha256")
    if sha256 is not None and not is_hex_digest(sha256, "sha256"):
        problems.append(f"{path}.sha256: expected 64 hexadecimal digits (sha256sum of the archive)")
    elif sha256 is None and isinstance(location, str) and is_url(location):
        problems.append(f"{path}.sha256: required for a URL source, so the download is verified")
    mode = data.get("mode")
    if mode not in (None, "L", "RGB"):
        problems.append(
            f"{path}.mode: got {mode!r}; expected 'L' (grayscale), 'RGB' or null (inferred)"
        )
    size = data.get("size")
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)
    ):
        problems.append(f"{path}.size: got {size!r}; expected [height, width] in pixels, or null")
    test_fraction = data.get("test_fraction", 0.2)
    if not (_is_number(test_fraction) and 0 < test_fraction < 1):
        problems.append(f"{path}.test_fraction: got {test_fraction!r}; expected a number in (0, 1)")
    split_seed = data.get("split_seed", 0)
    if not (_is_int(split_seed) and split_seed >= 0):
        problems.append(f"{path}.split_seed: got {split_seed!r}; expected an integer >= 0")
    if len(problems) > before:
        return None
    return ImageFolderSource(
        name=name,
        location=location,
        sha256=sha256.lower() if sha256 else None,
        mode=mode,
        size=tuple(size) if size else None,
        test_fraction=float(test_fraction),
        split_seed=split_seed,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
