"""Drive `heiwa mcp` with the official MCP Python SDK, over stdio or streamable
HTTP, and print what it saw as one JSON object (the Rust test asserts on it).

    mcp_client.py stdio HEIWA_BINARY
    mcp_client.py http URL
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


async def exercise(read, write):
    async with ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        ok = await session.call_tool("run_python", {"code": "print(6*7)"})
        failing = await session.call_tool("run_python", {"code": "raise SystemExit(3)"})
        return {
            "tools": [tool.name for tool in tools],
            "schema": tools[0].input_schema if tools else None,
            "ok": {"is_error": ok.is_error, "text": [c.text for c in ok.content]},
            "failing": {"is_error": failing.is_error, "text": [c.text for c in failing.content]},
        }


async def main():
    mode, target = sys.argv[1], sys.argv[2]
    if mode == "stdio":
        params = StdioServerParameters(command=target, args=["mcp"], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            seen = await exercise(read, write)
    else:
        async with streamable_http_client(target) as (read, write):
            seen = await exercise(read, write)
    print(json.dumps(seen))


asyncio.run(main())
