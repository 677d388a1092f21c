"""MCP tool servers as the agents' tools: the config file, the worker's connection pool and the activities."""

from activities.mcp_tools.activities import McpActivities
from activities.mcp_tools.config import McpConfigError, ServerConfig, load_servers, parse_servers
from activities.mcp_tools.pool import McpPool

__all__ = ["McpActivities", "McpConfigError", "McpPool", "ServerConfig", "load_servers", "parse_servers"]
