"""The worker example: an MCP resource server on another port or machine."""
