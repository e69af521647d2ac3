#!/usr/bin/env python3
"""Userspace delay proxy on 127.0.0.1 for benchmark (c): every piece of data (TCP read or UDP
datagram) is forwarded after DELAY_MS in each direction, so one application round trip costs
2 x DELAY_MS more. TCP: listen_port -> target_port. UDP (TFTP): one client at a time; the
proxy follows the server's transfer port (TID) and always answers from listen_port.

usage: delay_proxy.py tcp|udp LISTEN_PORT TARGET_PORT DELAY_MS
"""
import asyncio
import sys

HOST = "127.0.0.1"


async def tcp_main(listen, target, delay):
    loop = asyncio.get_running_loop()

    async def pipe(reader, writer):
        try:
            while data := await reader.read(1 << 16):
                loop.call_later(delay, writer.write, data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            loop.call_later(delay, writer.close)

    async def handle(cr, cw):
        sr, sw = await asyncio.open_connection(HOST, target)
        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))

    server = await asyncio.start_server(handle, HOST, listen)
    async with server:
        await server.serve_forever()


class Udp(asyncio.DatagramProtocol):
    def __init__(self, target, delay):
        self.target, self.delay = target, delay
        self.client = None
        self.server = (HOST, target)

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        later = asyncio.get_running_loop().call_later
        if data[:2] in (b"\x00\x01", b"\x00\x02"):  # RRQ or WRQ: a new client
            self.client, self.server = addr, (HOST, self.target)
            later(self.delay, self.transport.sendto, data, self.server)
        elif addr == self.client:
            later(self.delay, self.transport.sendto, data, self.server)
        elif self.client is not None:
            self.server = addr  # the server's transfer port (TID)
            later(self.delay, self.transport.sendto, data, self.client)


async def udp_main(listen, target, delay):
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Udp(target, delay), local_addr=(HOST, listen))
    await asyncio.Event().wait()


if __name__ == "__main__":
    kind, listen, target, delay_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    main = tcp_main if kind == "tcp" else udp_main
    asyncio.run(main(listen, target, delay_ms / 1000.0))
