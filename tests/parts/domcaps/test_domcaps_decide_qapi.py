"""QEMU's QAPI schema queried as libvirt queries it, on a small schema
that has each kind of step; a schema that loops ends, as libvirt's does."""
from capsfast.parts.domcaps import qapi


def test_schema_queries():
    schema = qapi.schema([
        {"name": "query-display-options", "meta-type": "command", "arg-type": "0", "ret-type": "1"},
        {"name": "0", "meta-type": "object", "members": []},
        {"name": "1", "meta-type": "object", "members": [{"name": "type", "type": "2"}],
         "variants": [{"case": "sdl", "type": "3"}, {"case": "dbus", "type": "3"}]},
        {"name": "2", "meta-type": "enum", "values": ["none", "sdl", "dbus"]},
        {"name": "3", "meta-type": "object", "members": [{"name": "gl", "type": "4", "default": None}],
         "features": ["deprecated"]},
        {"name": "4", "meta-type": "alternate", "members": [{"type": "5"}, {"type": "2"}]},
        {"name": "5", "meta-type": "builtin", "json-type": "boolean"},
    ])
    has = lambda q: qapi.has(schema, q)  # noqa: E731
    assert has("query-display-options/ret-type/+sdl")
    assert not has("query-display-options/ret-type/+egl-headless")
    assert has("query-display-options/ret-type/type/^dbus")
    assert not has("query-display-options/ret-type/type/^gtk")
    assert has("query-display-options/ret-type/+sdl/$deprecated")
    assert has("query-display-options/ret-type/+sdl/*gl")
    assert has("query-display-options/ret-type/+sdl/gl/!boolean")
    assert has("query-display-options/ret-type/+sdl/gl/^sdl")  # through the alternate
    assert not has("query-display-options/ret-type/+sdl/gl/!string")
    assert not has("query-gone/ret-type")
    assert not has("query-display-options/ret-type/+sdl/$deprecated/more")  # a feature ends a query


def test_a_schema_that_loops_is_not_a_hang():
    schema = qapi.schema([{"name": "a", "meta-type": "array", "element-type": "a"}])
    assert not qapi.has(schema, "a/x")
