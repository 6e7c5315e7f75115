"""Relay a Unix socket to a TCP port on this network namespace's loopback.

Milvus 2.3.5 standalone binds every interface whatever its configuration says, so
milvus-netns.sh runs it in a network namespace with only loopback up; this relay, started in
the same namespace, is the one way in: clients outside connect to the Unix socket (a path in
the file system, which network namespaces do not separate) and never to any network address.
"""

import asyncio
import os
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _serve(socket_path: str, port: int) -> None:
    async def connect(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))

    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = await asyncio.start_unix_server(connect, path=socket_path)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], int(sys.argv[2])))
