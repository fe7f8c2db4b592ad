"""Interop check of lariat's /echo with Python `websockets`, an independent
client that compresses by default (permessage-deflate, RFC 7692).

Usage: python python_websockets.py ws://127.0.0.1:PORT/echo
Prints one line per scenario and exits non-zero at the first mismatch.
"""
import asyncio
import os
import sys

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


async def scenario(url, name, factory, expect_header):
    kwargs = {"max_size": 8 * 1024 * 1024, "open_timeout": 10, "close_timeout": 10}
    if factory is None:
        kwargs["compression"] = None
    elif factory != "default":
        kwargs["extensions"] = [factory]
        kwargs["compression"] = None
    async with connect(url, **kwargs) as ws:
        header = ws.response.headers.get("Sec-WebSocket-Extensions")
        if expect_header is None:
            assert header is None, f"{name}: unexpected extension header {header!r}"
        else:
            assert header is not None and header.startswith(expect_header), f"{name}: header {header!r}"
        messages = [
            "hello",
            "x" * 70,
            "κόσμε " * 5000,
            os.urandom(1000),
            bytes(1 << 20),
            ("lariat " * 150000)[: 1 << 20],
            b"",
            "",
        ]
        for m in messages:
            await asyncio.wait_for(ws.send(m), 10)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == m, f"{name}: echo differs for a {type(m).__name__} of {len(m)}"
        await ws.close()
        assert ws.close_code == 1000, f"{name}: close code {ws.close_code}"
    print(f"ok {name}: {header}")


async def main(url):
    await scenario(url, "default offer", "default", "permessage-deflate")
    await scenario(url, "no compression", None, None)
    await scenario(
        url,
        "client_max_window_bits=10",
        ClientPerMessageDeflateFactory(client_max_window_bits=10),
        "permessage-deflate",
    )
    await scenario(
        url,
        "server_max_window_bits=9",
        ClientPerMessageDeflateFactory(server_max_window_bits=9),
        "permessage-deflate",
    )
    await scenario(
        url,
        "server_no_context_takeover + client_no_context_takeover",
        ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    )
    print("python websockets interop: all scenarios ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
