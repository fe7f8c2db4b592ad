"""wss:// interop: Python `websockets` over Python's ssl module (OpenSSL),
a TLS stack independent of lariat's rustls, against the demo's /echo.

Usage: python python_wss.py wss://localhost:PORT/echo CA_CERT_PEM
"""
import asyncio
import ssl
import sys

from websockets.asyncio.client import connect


async def main(url, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    async with connect(url, ssl=ctx, open_timeout=10, close_timeout=10) as ws:
        version = ws.transport.get_extra_info("ssl_object").version()
        for m in ["over tls", "é" * 1000, bytes(range(256)) * 100]:
            await asyncio.wait_for(ws.send(m), 10)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == m, f"echo differs for a {type(m).__name__} of {len(m)}"
        await ws.close()
        assert ws.close_code == 1000, ws.close_code
    print(f"wss interop ok ({version}, {ssl.OPENSSL_VERSION})")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
