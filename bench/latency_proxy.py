"""A TCP proxy on loopback that delays each direction by half a round trip.

Stands in for a mail server tens of milliseconds away: every chunk of bytes is forwarded
``rtt / 2`` seconds after it arrived, in order, in both directions, so a TLS handshake, a
login and every command cost the round trips they cost on a real network. It listens on
127.0.0.1 only and forwards to a loopback upstream.

    python bench/latency_proxy.py --upstream-port 993 --rtt-ms 50   # prints its port

Run as its own process (``start``) so its work does not share an interpreter lock with the
benchmark that measures through it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

_CHUNK = 64 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds late, order kept."""
    loop = asyncio.get_running_loop()

    def send(data: bytes) -> None:
        if not writer.is_closing():
            writer.write(data)

    def close() -> None:
        if not writer.is_closing():
            with contextlib.suppress(OSError):
                writer.write_eof()
            writer.close()

    try:
        while data := await reader.read(_CHUNK):
            # call_later with one delay keeps arrival order: the loop runs timers by due time.
            loop.call_later(delay, send, data)
    except (ConnectionError, OSError):
        pass
    loop.call_later(delay, close)


async def _serve(upstream_port: int, rtt: float, ready: asyncio.Future[int]) -> None:
    async def handle(client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1",
                                                                         upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, server_writer, rtt / 2),
                             _pump(server_reader, client_writer, rtt / 2))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    ready.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    options = parser.parse_args(argv)

    async def run() -> None:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(_serve(options.upstream_port, options.rtt_ms / 1000, ready))
        print(await ready, flush=True)
        await task

    asyncio.run(run())


def start(upstream_port: int, rtt_ms: float) -> tuple[subprocess.Popen[bytes], int]:
    """Start the proxy as a child process; it and the port it listens on."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--upstream-port", str(upstream_port),
         "--rtt-ms", str(rtt_ms)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, port


if __name__ == "__main__":
    main()
