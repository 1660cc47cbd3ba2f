"""The entity a project's predictions are made for: its id column checked (types, one row per id
and time), and the Feast ``Entity`` chosen, reusing one the feature repo defines already.

The feature repo's modules are read with :mod:`ast`, never imported: init must work on a repo
whose definitions do not import yet.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.core.errors import ConfigError, DataError
from modelops.services.project_init.columns import to_numpy
from modelops.services.project_init.layout import Layout

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


@dataclass(frozen=True)
class Definition:
    kind: str  # the called name: Entity, FeatureView, FileSource, ...
    name: str
    module: str
    variable: str | None
    join_keys: tuple[str, ...] = ()
    value_type: str | None = None


@dataclass(frozen=True)
class Entity:
    join_key: str
    name: str
    variable: str
    value_type: str  # INT64 / STRING
    reused_from: str | None  # module name


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def existing_definitions(feature_repo: Path, skip: Path | None = None) -> list[Definition]:
    """Named Feast objects defined in the repo's modules, read without importing them."""
    found: list[Definition] = []
    for path in sorted(feature_repo.rglob("*.py")):
        if path == skip or "data" in path.relative_to(feature_repo).parts[:1]:
            continue
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            raise ConfigError(f"{path}: cannot be parsed ({exc})") from exc
        module = ".".join(path.relative_to(feature_repo).with_suffix("").parts)
        found += _module_definitions(tree, module)
    return found


def _module_definitions(tree: ast.Module, module: str) -> list[Definition]:
    variables: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            target = node.targets[0]
            if isinstance(target, ast.Name):
                variables[id(node.value)] = target.id
    found: list[Definition] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        name = _string(keywords.get("name"))
        if name is None:
            continue
        keys: tuple[str, ...] = ()
        joined = keywords.get("join_keys")
        if isinstance(joined, ast.List | ast.Tuple):
            keys = tuple(s for s in (_string(e) for e in joined.elts) if s)
        value_type = keywords.get("value_type")
        found.append(
            Definition(
                kind=_called(node),
                name=name,
                module=module,
                variable=variables.get(id(node)),
                join_keys=keys,
                value_type=value_type.attr if isinstance(value_type, ast.Attribute) else None,
            )
        )
    return found


def choose_entity(
    definitions: list[Definition], layout: Layout, join_key: str, value_type: str, where: str
) -> Entity:
    """The repo's entity joining on ``join_key`` when there is one, else a new one named after
    the key (prefixed with the project when the name is taken)."""
    for definition in definitions:
        if definition.kind == "Entity" and definition.join_keys == (join_key,):
            if definition.value_type and definition.value_type != value_type:
                raise DataError(
                    f"{where}: entity column '{join_key}' holds {value_type} values, but entity "
                    f"'{definition.name}' (feature_repo/{definition.module.replace('.', '/')}.py) "
                    f"joins on {definition.value_type}; convert the column or rename it"
                )
            if definition.variable is None:
                continue
            return Entity(
                join_key, definition.name, definition.variable, value_type, definition.module
            )
    taken = {d.name for d in definitions if d.kind == "Entity"}
    name = join_key.removesuffix("_id") if join_key.endswith("_id") else join_key
    if name in taken or name in (layout.source_name, layout.view_name, layout.service_name):
        name = f"{layout.name}_{name}"
    return Entity(join_key, name, name, value_type, None)


def check_names(definitions: list[Definition], layout: Layout, entity: Entity) -> None:
    """Refuses when another module already defines a name this project's objects take."""
    ours = {layout.source_name, layout.view_name, layout.service_name}
    if entity.reused_from is None:
        ours.add(entity.name)
    for definition in definitions:
        if definition.name in ours and definition.kind != "Entity":
            raise ConfigError(
                f"feature_repo/{definition.module.replace('.', '/')}.py already defines "
                f"{definition.kind} '{definition.name}'; choose another project name"
            )


def entity_values(table: pa.Table, column: str, source: Path) -> tuple[pa.ChunkedArray, str]:
    """The id column as int64 or string, and its Feast value type (INT64 / STRING)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = table.column(column)
    where = f"{source}: --entity '{column}'"
    if values.null_count:
        raise DataError(f"{where}: {values.null_count:,} row(s) have no id")
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.cast(kind.value_type), kind.value_type
    if pa.types.is_integer(kind):
        return values.cast(pa.int64()), "INT64"
    if pa.types.is_floating(kind):
        if pc.all(pc.equal(pc.floor(values), values)).as_py():
            return values.cast(pa.int64()), "INT64"
        raise DataError(f"{where}: holds fractional numbers; ids are integers or text")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return values.cast(pa.string()), "STRING"
    raise DataError(f"{where}: holds {kind} values; ids are integers or text")


def entity_ids(table: pa.Table, column: str | None, source: Path) -> tuple[pa.ChunkedArray, str]:
    """The ids of the ``--entity`` column, or one per row (1..rows) with ``--synthesize-ids``;
    and their Feast value type."""
    import numpy as np
    import pyarrow as pa

    if column is not None:
        return entity_values(table, column, source)
    return pa.chunked_array([np.arange(1, table.num_rows + 1, dtype=np.int64)]), "INT64"


def check_unique(entity: pa.ChunkedArray, event_us: np.ndarray, column: str, source: Path) -> None:
    """One row per entity and time; refuses naming the first repeat."""
    import numpy as np
    import pyarrow as pa

    codes = entity.combine_chunks()
    if pa.types.is_string(codes.type):
        codes = codes.dictionary_encode().indices
    ids = np.asarray(to_numpy(codes), dtype=np.int64)
    order = np.lexsort((ids, event_us))
    repeats = (ids[order][1:] == ids[order][:-1]) & (event_us[order][1:] == event_us[order][:-1])
    if not repeats.any():
        return
    duplicated = np.zeros(len(ids), dtype=bool)
    duplicated[order[1:][repeats]] = True
    first = int(np.argmax(duplicated))
    key = entity[first].as_py()
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(event_us[first]))
    raise DataError(
        f"{source}: {int(duplicated.sum()):,} row(s) repeat an earlier ('{column}', time) "
        f"pair (e.g. {key!r} at {when.isoformat()}); one row per entity and time, or "
        "the join cannot tell which features a prediction saw"
    )
