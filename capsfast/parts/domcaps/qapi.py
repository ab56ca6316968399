"""Pure queries (no I/O) of QEMU's QAPI schema, apart from ``decide`` as
a query language of their own, which ``decide``'s flags are asked in.

``query-qmp-schema``'s reply is queried as libvirt 9.0 queries it to tell
what a QEMU build offers: a path of slash-separated steps from a command
or event, ``arg-type``/``ret-type``, then ``member``, ``*member``
(optional), ``+variant``, and a last ``^enumvalue``, ``$feature`` or
``!jsontype``.  Arrays are looked through; an alternate
matches where any of its members does."""
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def schema(entries: "list[dict[str, Any]]") -> "dict[str, dict[str, Any]]":
    """``query-qmp-schema``'s entries by name."""
    schema: "dict[str, dict[str, Any]]" = {}
    for entry in entries:
        name = entry.get("name")
        if isinstance(name, str):
            schema.setdefault(name, entry)
    return schema


class _Walk:
    __slots__ = ("schema", "queries", "pos", "depth")

    def __init__(self, schema: "dict[str, dict[str, Any]]", queries: "list[str]") -> None:
        self.schema = schema
        self.queries = queries
        self.pos = 0
        self.depth = 0

    def next(self) -> str:
        self.pos += 1
        return self.queries[self.pos - 1]

    def more(self) -> bool:
        return self.pos < len(self.queries)


def has(schema: "dict[str, dict[str, Any]]", query: str) -> bool:
    """Does ``query`` name something in ``schema``?"""
    parts = query.split("/")
    if parts[0] not in schema:
        return False
    walk = _Walk(schema, parts)
    return _traverse(walk, walk.next()) == 1


def _traverse(walk: _Walk, name: "Any") -> int:
    # 1 found, 0 not found, negative: a malformed schema or query.
    # A loop in the schema: libvirt gives up after 1000 steps, Python's
    # stack would not last that long; real queries are a dozen steps deep.
    walk.depth += 1
    if walk.depth > 200:
        return -2
    cur = walk.schema.get(name) if isinstance(name, str) else None
    if cur is None:
        return -2
    if not walk.more():
        return 1
    meta = cur.get("meta-type")
    if not isinstance(meta, str):
        return -2
    step = _STEPS.get(meta)
    return step(walk, cur) if step is not None else 0


def _has_feature(feature: str, entry: "dict[str, Any]") -> int:
    features = entry.get("features")
    if not isinstance(features, list):
        return 0
    for f in features:
        if not isinstance(f, str):
            return -2
        if f == feature:
            return 1
    return 0


def _member(entry: "dict[str, Any]", field: str, name: str, key: str) -> "dict[str, Any] | None":
    members = entry.get(field)
    if isinstance(members, list):
        for m in members:
            if isinstance(m, dict) and m.get(key) == name:
                return m
    return None


def _split(query: str) -> "tuple[str, str]":
    modifier = query[:1]
    return (modifier, query if modifier.isascii() and modifier.isalpha() else query[1:])


def _object(walk: _Walk, cur: "dict[str, Any]") -> int:
    modifier, query = _split(walk.next())
    if modifier in ("^", "!"):
        return 0
    if modifier == "$":
        return -3 if walk.more() else _has_feature(query, cur)
    if modifier == "+":
        found = _member(cur, "variants", query, "case")
    else:
        found = _member(cur, "members", query, "name")
        if modifier == "*" and found is not None and "default" not in found:
            return 0
    if found is None:
        return 0
    return _traverse(walk, found.get("type"))


def _array(walk: _Walk, cur: "dict[str, Any]") -> int:
    element = cur.get("element-type")
    return _traverse(walk, element) if isinstance(element, str) else -2


def _command(walk: _Walk, cur: "dict[str, Any]") -> int:
    modifier, query = _split(walk.next())
    if modifier in ("^", "!", "+", "*"):
        return 0
    if modifier == "$":
        return -3 if walk.more() else _has_feature(query, cur)
    target = cur.get(query)
    return _traverse(walk, target) if isinstance(target, str) else 0


def _enum(walk: _Walk, cur: "dict[str, Any]") -> int:
    query = walk.next()
    if query[:1] != "^":
        return 0
    feature = None
    if walk.more():
        feature = walk.next()
        if feature[:1] != "$" or walk.more():
            return -3
        feature = feature[1:]
    query = query[1:]
    members = cur.get("members")
    if isinstance(members, list):  # QEMU 6.2 and later
        for m in members:
            if not isinstance(m, dict) or not isinstance(m.get("name"), str):
                return -2
            if m["name"] == query:
                return _has_feature(feature, m) if feature is not None else 1
        return 0
    if feature is not None:
        return 0
    values = cur.get("values")
    if not isinstance(values, list):
        return -2
    return 1 if query in [v for v in values if isinstance(v, str)] else 0


def _builtin(walk: _Walk, cur: "dict[str, Any]") -> int:
    query = walk.next()
    if query[:1] != "!":
        return 0
    if walk.more():
        return -3
    json_type = cur.get("json-type")
    if not isinstance(json_type, str):
        return -1
    return 1 if json_type == query[1:] else 0


def _alternate(walk: _Walk, cur: "dict[str, Any]") -> int:
    members = cur.get("members")
    if not isinstance(members, list):
        return -2
    pos, depth = walk.pos, walk.depth
    for m in members:
        if not isinstance(m, dict) or not isinstance(m.get("type"), str):
            continue
        walk.pos, walk.depth = pos, depth
        rc = _traverse(walk, m["type"])
        if rc != 0:
            return rc
    return 0


_STEPS = {"object": _object, "array": _array, "command": _command, "event": _command, "enum": _enum,
          "builtin": _builtin, "alternate": _alternate}
