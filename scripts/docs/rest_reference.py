"""MkDocs hook: ``reference/rest.md``, the REST API reference, made at build time from the OpenAPI document.

The document is the app's own: ``t2v.api.create_app(settings, start_workers=False).openapi()`` over a
throwaway ``T2V_HOME`` (a SQLite file there; no server runs, no worker starts, nothing is fetched), which is what
a running server serves at ``/openapi.json``. Every operation becomes a section (parameters, request body,
responses) and every schema a table of its fields, with links between them. Nothing generated is kept in the
repository. ``python scripts/docs/rest_reference.py`` prints the page.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from mdtext import add_page, cell, first_sentence, paragraphs  # scripts/docs/mdtext.py (MkDocs puts a hook's folder on sys.path)

PAGE = "reference/rest.md"
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
INTRO = """# REST API reference

Every route of `t2v serve`, made from the server's own OpenAPI document when this site is built. A running
server serves the same document at `/openapi.json` (Swagger UI at `/docs`). How to use the API, with curl
examples, API keys, webhooks and the security model, is in the [REST API guide](../api.md); the Python client
that speaks it is [`t2v.client`](../client.md).

Once the server has an API key, every route but `/healthz`, `/readyz` and `/metrics` needs
`Authorization: Bearer <key>`. Errors are JSON: `{"detail": "..."}`, or for a bad field
`{"detail": [{"loc": ["body", "FIELD"], "msg": "...", "type": "value_error"}]}` with status 422.
"""


def openapi() -> dict:
    """The app's OpenAPI document, built over a throwaway home with every optional service left out."""
    from t2v.api import create_app
    from t2v.settings import Settings

    with tempfile.TemporaryDirectory(prefix="t2v-openapi-") as home:
        settings = Settings(home=Path(home), database_url=None, storage_url=None, records_url=None,
                            executor="threads", offline=True)
        return create_app(settings, start_workers=False).openapi()


class Schemas:
    """The document's named schemas: its components, ``$defs`` found anywhere, and titled inline bodies."""

    def __init__(self, spec: dict):
        self.named: dict[str, dict] = dict(spec.get("components", {}).get("schemas", {}))
        self._collect(spec.get("paths", {}))
        for item in spec.get("paths", {}).values():  # an inline body with a title (VideoCreate) is named too
            for op in item.values():
                for content in ((op.get("requestBody") or {}).get("content") or {}).values() if isinstance(op, dict) else ():
                    body = content.get("schema", {})
                    if body.get("title") and body.get("properties") and "$ref" not in body:
                        self.named.setdefault(body["title"], body)

    def _collect(self, node) -> None:
        if isinstance(node, dict):
            for name, schema in (node.get("$defs") or {}).items():
                self.named.setdefault(name, schema)
            for value in node.values():
                self._collect(value)
        elif isinstance(node, list):
            for value in node:
                self._collect(value)

    def resolve(self, schema: dict) -> tuple[str | None, dict]:
        """(name, schema) for a ``$ref`` (by its last segment), else (None, schema)."""
        ref = schema.get("$ref")
        if not ref:
            return None, schema
        name = ref.rsplit("/", 1)[-1]
        return name, self.named.get(name, {})

    def link(self, name: str) -> str:
        return f"[{name}](#{anchor(name)})"

    def type_of(self, schema: dict) -> str:
        """A schema's type in a few words, with links to named schemas."""
        if not schema:
            return "any"
        name, target = self.resolve(schema)
        if name:
            return self.link(name)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                kinds = [s for s in schema[key] if s.get("type") != "null"]
                text = " or ".join(dict.fromkeys(self.type_of(s) for s in kinds)) or "null"
                return text + (", or null" if len(kinds) < len(schema[key]) else "")
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.type_of(schema["allOf"][0])
        if "enum" in schema:
            return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
        if "const" in schema:
            return f"`{json.dumps(schema['const'])}`"
        kind = schema.get("type", "object" if "properties" in schema else "any")
        if kind == "array":
            return f"array of {self.type_of(schema.get('items', {}))}"
        if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            return f"object of {self.type_of(schema['additionalProperties'])}"
        if kind == "object" and schema.get("title") and schema.get("properties") and schema["title"] in self.named:
            return self.link(schema["title"])
        if kind == "string" and schema.get("format") == "binary":
            return "file"
        return f"{kind}{limits(schema)}"


def limits(schema: dict) -> str:
    """The range a schema allows, e.g. `` (1..512)``, `` (> 0)``, `` (at most 4096 characters)``."""
    parts = []
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        parts.append(f"{'' if low is None else low}..{'' if high is None else high}")
    if schema.get("exclusiveMinimum") is not None:
        parts.append(f"> {schema['exclusiveMinimum']}")
    if schema.get("exclusiveMaximum") is not None:
        parts.append(f"< {schema['exclusiveMaximum']}")
    if schema.get("minLength"):
        parts.append(f"at least {schema['minLength']} characters")
    if schema.get("maxLength") is not None:
        parts.append(f"at most {schema['maxLength']} characters")
    if schema.get("pattern"):
        parts.append(f"matching `{schema['pattern']}`")
    return f" ({', '.join(parts)})" if parts else ""


def anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def op_anchor(method: str, path: str) -> str:
    return f"{method}-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def default_of(schema: dict) -> str:
    if "default" not in schema:
        return ""
    return "`" + json.dumps(schema["default"]).replace("|", "\\|") + "`"


def fields_table(schemas: Schemas, schema: dict) -> list[str]:
    _, schema = schemas.resolve(schema)
    properties = schema.get("properties") or {}
    if not properties:
        return []
    required = set(schema.get("required", []))
    rows = ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for name, prop in properties.items():
        rows.append(f"| `{name}` | {schemas.type_of(prop)} | {'yes' if name in required else ''} | "
                    f"{default_of(prop)} | {cell(prop.get('description', ''))} |")
    return [*rows, ""]


def operation(schemas: Schemas, method: str, path: str, op: dict) -> list[str]:
    lines = [f"### {method.upper()} `{path}` {{ #{op_anchor(method, path)} }}", ""]
    if op.get("summary"):
        lines += [f"**{cell(op['summary'])}**", ""]
    if op.get("description"):
        lines += [paragraphs(op["description"]), ""]
    params = op.get("parameters") or []
    if params:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for p in params:
            schema = p.get("schema", {})
            lines.append(f"| `{p['name']}` | {p['in']} | {schemas.type_of(schema)}{_default_note(schema)} | "
                         f"{'yes' if p.get('required') else ''} | {cell(p.get('description', ''))} |")
        lines.append("")
    body = op.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            schema = content.get("schema", {})
            lines += [f"Request body (`{media}`{', required' if body.get('required') else ''}): "
                      f"{schemas.type_of(schema)}", ""]
            if not schemas.resolve(schema)[0] and schema.get("title") not in schemas.named:
                lines += fields_table(schemas, schema)  # an untitled inline body: its fields here
    lines += ["| status | meaning | body |", "|---|---|---|"]
    for status, response in op.get("responses", {}).items():
        kinds = [f"`{media}`" + (f": {schemas.type_of(c['schema'])}" if c.get("schema") else "")
                 for media, c in (response.get("content") or {}).items()]
        lines.append(f"| {status} | {cell(response.get('description', ''))} | {'; '.join(kinds)} |")
    return [*lines, ""]


def _default_note(schema: dict) -> str:
    return f", default {default_of(schema)}" if "default" in schema else ""


def markdown(spec: dict | None = None) -> str:
    """The whole reference page."""
    spec = spec or openapi()
    schemas = Schemas(spec)
    ops = [(method, path, op) for path, item in spec.get("paths", {}).items()
           for method, op in item.items() if method in METHODS]
    tags: dict[str, list] = {}
    for method, path, op in ops:
        tags.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    info = spec.get("info", {})
    lines = [INTRO, f"OpenAPI {spec.get('openapi', '')}, API version {info.get('version', '')}.", "",
             "## Routes", "", "| method | path | what it does |", "|---|---|---|"]
    for method, path, op in ops:
        what = cell(op.get("summary", "")) or first_sentence(op.get("description", ""))
        lines.append(f"| {method.upper()} | [`{path}`](#{op_anchor(method, path)}) | {what} |")
    lines.append("")
    for tag, tagged in tags.items():
        lines += [f"## {tag.capitalize()}", ""]
        for method, path, op in tagged:
            lines += operation(schemas, method, path, op)
    lines += ["## Schemas", ""]
    for name in sorted(schemas.named):
        schema = schemas.named[name]
        lines += [f"### {name} {{ #{anchor(name)} }}", ""]
        if schema.get("description"):
            lines += [paragraphs(schema["description"]), ""]
        table = fields_table(schemas, schema)
        lines += table or [f"Type: {schemas.type_of({k: v for k, v in schema.items() if k != 'title'})}", ""]
    return "\n".join(lines).rstrip() + "\n"


def on_files(files, config, **kwargs):
    return add_page(files, config, PAGE, markdown())


if __name__ == "__main__":
    print(markdown(), end="")
