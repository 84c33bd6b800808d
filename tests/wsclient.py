"""A websocket client as small as the tests need (RFC 6455: the opening handshake, masked
text frames out, unmasked frames in), so the e2e tier speaks to nginx as a browser does."""

import base64
import hashlib
import os
import socket
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    """The server closed the connection (a close frame, or the socket ended)."""


class WebSocket:
    def __init__(self, address, port, host, path, timeout=10):
        self.sock = socket.create_connection((address, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Closed(f"no handshake answer: {head!r}")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if self.status != 101 or headers.get("sec-websocket-accept") != accept:
            raise Closed(f"not upgraded: {lines[0]}")

    def send(self, text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0xFE, n)
        try:
            self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        except OSError as exc:  # reset or broken pipe: the server is gone
            raise Closed(str(exc)) from None

    def _read(self, n):
        while len(self.buffer) < n:
            try:
                chunk = self.sock.recv(4096)
            except ConnectionError as exc:
                raise Closed(str(exc)) from None
            if not chunk:
                raise Closed("the connection ended")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def receive(self):
        """The next text message; Closed when the server closes."""
        first, second = self._read(2)
        n = second & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        payload = self._read(n)
        if first & 0x0F == 0x8:
            raise Closed("a close frame")
        return payload.decode()

    def close(self):
        self.sock.close()
