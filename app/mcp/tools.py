"""MCP tool plugins (entry-point group ``mcp_oauth.tools``): loading, listing, argument checks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from app import contracts
from app.contracts import Tool
from app.errors import ConfigurationError

# MCP 2025-11-25: tool names are 1-128 characters from this set.
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")


@dataclass(frozen=True)
class LoadedTool:
    """A tool instance with its metadata checked and its argument validator compiled."""

    tool: Tool
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    required_scope: str
    validator: Validator

    def argument_errors(self, arguments: Mapping[str, Any]) -> list[str]:
        """Human-readable schema violations of ``arguments`` (empty when they are valid)."""
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        out = []
        for e in errors[:5]:
            where = "/".join(str(p) for p in e.absolute_path)
            out.append(f"{where}: {e.message}" if where else e.message)
        return out

    def describe(self, structured_output: bool) -> dict[str, Any]:
        """The ``tools/list`` entry (outputSchema only where the protocol version knows it)."""
        entry: dict[str, Any] = {"name": self.name, "description": self.description, "inputSchema": self.input_schema}
        if structured_output and self.output_schema is not None:
            entry["outputSchema"] = self.output_schema
        return entry


def _compile(schema: object, what: str) -> Validator:
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ConfigurationError(f"{what} must be a JSON Schema object with type 'object'")
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as e:
        raise ConfigurationError(f"{what} is not a valid JSON Schema: {e.message}") from e
    validator: Validator = cls(schema)
    return validator


def check_tool(tool: Tool) -> LoadedTool:
    """Validate a tool's declared metadata. Raises ConfigurationError naming what is wrong."""
    label = type(tool).__name__
    name = getattr(tool, "name", None)
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise ConfigurationError(f"tool {label}: name must be 1-128 of A-Z a-z 0-9 _ . -")
    description = getattr(tool, "description", None)
    if not isinstance(description, str) or not description:
        raise ConfigurationError(f"tool {name!r}: description must be a non-empty string")
    scope = getattr(tool, "required_scope", None)
    if not isinstance(scope, str) or not scope or " " in scope:
        raise ConfigurationError(f"tool {name!r}: required_scope must be one scope")
    input_schema = getattr(tool, "input_schema", None)
    validator = _compile(input_schema, f"tool {name!r}: input_schema")
    output_schema = getattr(tool, "output_schema", None)
    if output_schema is not None:
        _compile(output_schema, f"tool {name!r}: output_schema")
    if not callable(getattr(tool, "call", None)):
        raise ConfigurationError(f"tool {name!r}: has no call(arguments, claims) method")
    assert isinstance(input_schema, dict)
    return LoadedTool(tool, name, description, input_schema, output_schema, scope, validator)


def load_tools(names: Iterable[str], config: Mapping[str, object]) -> list[Tool]:
    """Instantiate the ``mcp_oauth.tools`` plugins named in ``names`` (MCP_TOOLS)."""
    out: list[Tool] = []
    for name in names:
        cls = contracts.load(contracts.TOOLS, name, Tool)
        try:
            out.append(cls(config))
        except Exception as e:  # a plugin that cannot start must fail start-up, with its name
            raise ConfigurationError(f"tool plugin {name!r} failed to start: {e!r}") from e
    return out


def tool_table(tools: Iterable[Tool]) -> dict[str, LoadedTool]:
    """Checked tools by name; two tools with one name is a configuration error."""
    table: dict[str, LoadedTool] = {}
    for tool in tools:
        loaded = check_tool(tool)
        if loaded.name in table:
            raise ConfigurationError(f"two tools are named {loaded.name!r}")
        table[loaded.name] = loaded
    return table
