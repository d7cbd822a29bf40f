"""A WebSocket client made by hand over a plain TCP socket, for peers no library would be:
one with a tiny receive buffer that stops reading, one that never answers a ping, one that resets
the TCP connection in the middle of a conversation.

Blocking sockets with timeouts; async tests call these through `asyncio.to_thread`.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.frames import Frame, Opcode

ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING = 0x1, 0x8, 0x9


@dataclass
class Received:
    """What a raw client read: complete frames as (opcode, payload), and how the stream ended."""

    frames: list[tuple[int, bytes]] = field(default_factory=list)
    ended: str | None = None  # "eof", "reset", or None while the connection is up
    rest: bytes = b""  # an incomplete frame at the end of what was read

    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(payload) for opcode, payload in self.frames if opcode == OP_TEXT]

    def close_code(self) -> int | None:
        """The code of the server's close frame, if one arrived."""
        for opcode, payload in self.frames:
            if opcode == OP_CLOSE:
                return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
        return None


class RawWebSocket:
    def __init__(self, port: int, key: str, *, receive_buffer: int | None = None) -> None:
        self.port = port
        self.key = key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            # Before connect: the window advertised in the handshake follows the buffer.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(5)
        self.received = Received()
        self._buffer = b""
        self._taken = 0  # text frames read_frames() has returned

    # --- handshake ---------------------------------------------------------------------------
    def send_upgrade(self) -> str:
        """Connect and send the upgrade request; the nonce, to check the answer with."""
        self.sock.connect(("127.0.0.1", self.port))
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {self.key}\r\n\r\n"
            ).encode()
        )
        return nonce

    def read_upgrade(self, nonce: str) -> None:
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1((nonce + ACCEPT_GUID).encode()).digest())
        headers = [line.split(b":", 1) for line in head.split(b"\r\n")[1:]]
        assert [b"sec-websocket-accept", accept] in [[name.strip().lower(), value.strip()] for name, value in headers], head
        # What came with the answer (the `connected` frame, often) is the start of the frame stream.
        frames, self._buffer = parse_server_frames(self._buffer)
        self.received.frames.extend(frames)

    def open(self) -> "RawWebSocket":
        self.read_upgrade(self.send_upgrade())
        return self

    # --- frames ------------------------------------------------------------------------------
    def send_json(self, frame: dict[str, Any]) -> None:
        self.sock.sendall(Frame(Opcode.TEXT, json.dumps(frame).encode()).serialize(mask=True))

    def send_close(self, code: int) -> None:
        self.sock.sendall(Frame(Opcode.CLOSE, struct.pack(">H", code)).serialize(mask=True))

    def read_frames(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next `count` text frames, reading until they arrived (control frames are kept in `received`)."""
        start = self._taken
        deadline = time.monotonic() + timeout
        while len(self.received.texts()) - start < count:
            assert time.monotonic() < deadline, f"only {self.received.texts()[start:]} within {timeout}s"
            assert self._read_some(deadline), f"the connection ended: {self.received}"
        self._taken += count
        return self.received.texts()[start : start + count]

    def read_until_ended(self, timeout: float, *, answer_close: bool = True) -> Received:
        """Read everything until the server ends the TCP connection (EOF or reset), answering its
        close frame as a client does. `received.ended` stays None if it did not end in time."""
        deadline = time.monotonic() + timeout
        answered = False
        while time.monotonic() < deadline and self._read_some(deadline):
            if answer_close and not answered and self.received.close_code() is not None:
                answered = True
                self.send_close(self.received.close_code() or 1000)
        return self.received

    def _read_some(self, deadline: float) -> bool:
        """One recv into `received`; False once the connection ended."""
        self.sock.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        except ConnectionResetError:
            self.received.ended = "reset"
            return False
        if not chunk:
            self.received.ended = "eof"
            return False
        self._buffer += chunk
        frames, self._buffer = parse_server_frames(self._buffer)
        self.received.frames.extend(frames)
        self.received.rest = self._buffer
        return True

    # --- ending ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Close with SO_LINGER 0: the kernel sends RST and discards what is unsent or unread."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def parse_server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """(opcode, payload) of the complete, unmasked frames at the start of `data`, and the rest."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, length, start = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
        if length == 126:
            if start + 2 > len(data):
                break
            (length,) = struct.unpack(">H", data[start : start + 2])
            start += 2
        elif length == 127:
            if start + 8 > len(data):
                break
            (length,) = struct.unpack(">Q", data[start : start + 8])
            start += 8
        if start + length > len(data):
            break
        frames.append((opcode, data[start : start + length]))
        i = start + length
    return frames, data[i:]
