"""Reading scenario and campaign files: YAML with line numbers, pydantic validation, and one
message per problem naming the file, the line, the field and what is allowed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from avrobust.core.errors import ConfigError
from avrobust.core.resources import data_path

M = TypeVar("M", bound=BaseModel)


class ScenarioError(ConfigError):
    """A scenario or campaign file has problems; ``problems`` holds one line each."""

    def __init__(self, file: str | Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems) if len(problems) > 1 else problems[0])

    def format(self) -> str:  # the problems already name file, line and field
        return (
            self.message
            if len(self.problems) == 1
            else (f"{len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems))
        )


def library_dir() -> Path:
    """The scenario library: ``$AVROBUST_SCENARIOS`` or the shipped ``scenarios/``."""
    env = os.environ.get("AVROBUST_SCENARIOS")
    return Path(env) if env else data_path("scenarios")


# Limits checked before a scenario or campaign file is turned into data: library files are a
# few kilobytes and a few levels deep, so these leave room and stop hostile files early.
MAX_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 64
MAX_NODES = 200_000  # after aliases are expanded (a 500-byte alias bomb expands to billions)


def read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """The YAML document and the line of every mapping key and sequence item, by field path.

    Refused with one line naming the file: more than :data:`MAX_BYTES`, text that is not UTF-8,
    nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_NODES` values once aliases are
    expanded, and a key given twice in one mapping (YAML keeps the last one silently)."""
    if not path.is_file():
        raise ConfigError("no such file", file=path)
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(
            f"the file is {path.stat().st_size} bytes; scenario and campaign files may hold at "
            f"most {MAX_BYTES}",
            file=path,
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})", file=path
        ) from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path | str) -> tuple[Any, dict[tuple, int]]:
    """:func:`read_yaml` for text already read (``path`` names it in errors): the same depth,
    size and duplicate-key checks."""
    path = Path(path)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple, int] = {}
        if node is not None:
            _check_tree(path, node)
            _walk(node, (), lines, set())
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=path) from None
    except yaml.YAMLError as exc:  # from composing (syntax) or constructing (tags)
        mark = getattr(exc, "problem_mark", None)
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"not valid YAML: {what}", file=path, line=None if mark is None else mark.line + 1
        ) from None
    finally:
        loader.dispose()
    return data, lines


def _check_tree(path: Path, root: yaml.Node) -> None:
    """Depth, expanded size and duplicate keys, on the composed node graph. An alias is the same
    node object in several places, so sizes are counted once per node and multiplied, never
    walked out."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"nested deeper than {MAX_DEPTH} levels", file=path, line=n.start_mark.line + 1
            )
        if id(n) in sizes:
            return sizes[id(n)]
        total = 1
        if isinstance(n, yaml.MappingNode):
            first: dict[Any, int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    if k.value in first:
                        raise ConfigError(
                            f"key {k.value!r} given twice in one mapping (first on line "
                            f"{first[k.value]})",
                            file=path,
                            line=k.start_mark.line + 1,
                        )
                    first[k.value] = k.start_mark.line + 1
                total += size(k, depth + 1) + size(v, depth + 1)
        elif isinstance(n, yaml.SequenceNode):
            total += sum(size(v, depth + 1) for v in n.value)
        if total > MAX_NODES:
            raise ConfigError(
                f"the document expands to more than {MAX_NODES} values (through aliases?)",
                file=path,
                line=n.start_mark.line + 1,
            )
        sizes[id(n)] = total
        return total

    size(root, 0)


def _walk(n: yaml.Node, loc: tuple, lines: dict[tuple, int], seen: set[int]) -> None:
    """Record the line of every key and item; an aliased node is walked where it first
    stands only (its other places take the alias's line from the parent)."""
    if id(n) in seen:
        return
    seen.add(id(n))
    if isinstance(n, yaml.MappingNode):
        for k, v in n.value:
            lines[(*loc, k.value)] = k.start_mark.line + 1
            _walk(v, (*loc, k.value), lines, seen)
    elif isinstance(n, yaml.SequenceNode):
        for i, item in enumerate(n.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _walk(item, (*loc, i), lines, seen)


def _line_of(lines: dict[tuple, int], loc: tuple) -> int | None:
    for k in range(len(loc), 0, -1):
        if loc[:k] in lines:
            return lines[loc[:k]]
    return None


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at ``loc`` (for listing allowed fields)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in args or ():
        found = _inner_model(a)
        if found is not None:
            return found
    return None


def format_problems(
    path: Path, model: type[BaseModel], exc: ValidationError, lines: dict[tuple, int]
) -> list[str]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after", "function-before"))
        field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
        line = _line_of(lines, loc)
        msg = err["msg"].removeprefix("Value error, ")
        allowed = None
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            holder = _model_at(model, loc[:-1])
            if holder is not None:
                allowed = ", ".join(holder.model_fields)
        elif err["type"] == "missing":
            msg = "required field is missing"
        where = f"{path}:{line}" if line else str(path)
        text = f"{where}: {field}: {msg}" if field else f"{where}: {msg}"
        if allowed:
            text += f" (allowed: {allowed})"
        out.append(text)
    return out


def load_model(path: str | Path, model: type[M]) -> M:
    """Read and validate ``path`` as ``model``; raises :class:`ScenarioError` listing every
    problem."""
    path = Path(path)
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise ScenarioError(path, [f"{path}:1: the file must hold a mapping of fields"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(path, format_problems(path, model, exc, lines)) from None


def find_file(name_or_path: str | Path, folder: Path, kind: str) -> Path:
    """A file given by path, or by name in ``folder`` (``NAME.yaml``)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".xosc") and p.is_file():
        return p
    candidate = folder / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(f.stem for f in folder.glob("*.yaml")) if folder.is_dir() else []
    raise ConfigError(
        f"no {kind} named {str(name_or_path)!r}",
        field=kind,
        allowed=", ".join(known) or f"files in {folder}",
    )
