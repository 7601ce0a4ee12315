"""Built-in MCP tool ``whoami``: the token's subject, client and scopes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from app.models import TokenClaims


class WhoamiTool:
    """Answers who the access token speaks for (needs ``mcp:tools``, takes no arguments)."""

    name: ClassVar[str] = "whoami"
    description: ClassVar[str] = "Tell who the access token speaks for: its subject, client and scopes."
    required_scope: ClassVar[str] = "mcp:tools"
    input_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}, "additionalProperties": False}
    output_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "sub": {"type": "string"},
            "client_id": {"type": "string"},
            "scope": {"type": "string"},
        },
        "required": ["sub", "client_id", "scope"],
    }

    def __init__(self, config: Mapping[str, object]) -> None:
        self.config = config

    def call(self, arguments: Mapping[str, object], claims: TokenClaims) -> Mapping[str, object]:
        info = {"sub": claims.sub, "client_id": claims.client_id, "scope": " ".join(sorted(claims.scopes))}
        return {"content": [{"type": "text", "text": json.dumps(info)}], "structuredContent": info}
