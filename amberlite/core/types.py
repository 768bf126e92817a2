"""What a feature's Arrow output type means for queries, read from its text form.

A feature's output type is recorded in the catalog as Arrow's text (``str(pa.float32())`` is
``float``, a 512-float vector ``fixed_size_list<item: float>[512]``), so planning and reading
need no pyarrow: these functions read the text.

Example:
    >>> aql_kind("double"), aql_kind("string"), aql_kind("fixed_size_list<item: float>[8]")
    ('num', 'str', 'vec')
    >>> float_vector_dim("fixed_size_list<item: float>[8]"), duck_array_type("double")
    (8, None)
    >>> duck_array_type("fixed_size_list<item: float not null>[512]")
    'FLOAT[512]'
"""

from __future__ import annotations

import re

_NUM = frozenset("int8 int16 int32 int64 uint8 uint16 uint32 uint64 halffloat float double".split())
_FLOATS = frozenset({"halffloat", "float", "double"})
_DUCK = {
    "float": "FLOAT",
    "double": "DOUBLE",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "UTINYINT",
    "bool": "BOOLEAN",
}
_FIXED = re.compile(r"fixed_size_list<[^:<>]+: (\w+)(?: not null)?>\[(\d+)\]")


def aql_kind(type_text: str) -> str:
    """``num``, ``str``, ``bool``, ``vec`` (any list) or ``other``."""
    t = type_text.strip()
    if t in _NUM or t.startswith(("decimal", "int", "uint")):
        return "num"
    if t == "bool":
        return "bool"
    if t in ("string", "large_string", "utf8", "large_utf8"):
        return "str"
    if t.startswith(("list<", "large_list<", "fixed_size_list<")):
        return "vec"
    return "other"


def float_vector_dim(type_text: str) -> int | None:
    """The dimension of a fixed-size float vector type, else None."""
    m = _FIXED.fullmatch(type_text.strip())
    return int(m.group(2)) if m and m.group(1) in _FLOATS else None


def duck_array_type(type_text: str) -> str | None:
    """The DuckDB ARRAY type for a fixed-size list of scalars (``FLOAT[512]``), else None."""
    m = _FIXED.fullmatch(type_text.strip())
    if m and m.group(1) in _DUCK:
        return f"{_DUCK[m.group(1)]}[{m.group(2)}]"
    return None
