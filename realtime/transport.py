"""Fixes for the WebSocket servers underneath (daphne on autobahn; uvicorn on websockets), applied
when Django starts, so that they hold whichever server `retrochat.serve` runs.

1. daphne: autobahn's `sendClose()` accepts only the application close codes 1000 and 3000–4999,
   so daphne raises (a traceback in the log, and no close frame for the client) when the
   application closes with a protocol code that the protocol promises: 1009 for a frame over the size
   limit, 1001/1012 when the server goes away or restarts. A server may send those codes (RFC 6455
   §7.4.1): send the close frame itself, as autobahn does internally.
2. Both: the application cannot see or abort the socket through ASGI, yet a peer that never reads
   must not hold server memory or a file descriptor for ever (realtime/outbox.py). Each WebSocket
   scope gets `scope["extensions"]["retrochat.transport"]`: the bytes waiting in the server's own
   write buffer, and `abort()`.
3. Both: the kernel's send buffer of a WebSocket is fixed at SOCKET_SEND_BUFFER. Linux grows it
   on its own (tcp_wmem, up to 4 MB) for a peer that does not read, and bytes there are invisible
   to the outbox: a slow consumer held about 3 MB of server memory before a single frame counted
   against RETROCHAT_MAX_PENDING_BYTES, and the age limit never saw a queued frame at all.
4. Both: a frame over the server's own transport cap (retrochat/serve.py keeps it well above
   RETROCHAT_MAX_FRAME_BYTES) never reaches the application, and the server then closes on its own
   (autobahn even drops the TCP connection without a close frame). Answer it as the application
   answers any frame over the limit: the MESSAGE_TOO_LARGE error frame, then close 1009.
5. uvicorn: what each open WebSocket keeps for its life (bench/notes.md, memory per connection).
   Its ASGI receive queue and `writable` event become the light ones of realtime/aio.py (an
   asyncio.Queue and Event allocate ≈3.7 KiB of deques up front); the handshake request and
   response (with their headers, and the scope's copy of them), which uvicorn keeps after the
   handshake, are let go once the application says it is done with them (`release_handshake()`);
   and the HTTP protocol object that handled the upgrade request, which uvicorn leaves in a
   reference cycle with its parser, is freed at once instead of by the cyclic garbage collector.
6. uvicorn: an upgrade request that websockets refuses to parse (a header line over 8 KiB, too
   many headers) makes websockets queue its answer (431 Request Header Fields Too Large) and
   stop, but uvicorn never writes that answer nor closes: the client waited until its own timeout.
   Write the answer and close the connection.
"""

import socket
import struct
from typing import Any

from websockets.protocol import State

from realtime.aio import Flag, ReceiveQueue
from realtime.outbox import HIGH_WATER as _DAPHNE_HIGH_WATER

# Codes a server may send that autobahn's public sendClose() refuses.
SERVER_PROTOCOL_CLOSE_CODES = frozenset({1001, 1009, 1011, 1012, 1013})
CLOSE_TOO_BIG = 1009  # realtime.protocol.CLOSE_TOO_BIG; repeated: this module loads before Django


TRANSPORT_EXTENSION = "retrochat.transport"
_WS_OPEN = State.OPEN

# Asked of the kernel per WebSocket (Linux doubles it for its bookkeeping): setting it also turns
# off the autotuning. About 128 KiB in flight still carries 1 MB/s per socket at a 100 ms round
# trip, far above what a chat connection needs.
SOCKET_SEND_BUFFER = 64 * 1024


def limit_send_buffer(sock: object) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)  # type: ignore[attr-defined]
    except (AttributeError, OSError):  # no socket underneath (a test transport), or already closed
        pass


def websocket_text_frame(payload: bytes) -> bytes:
    """A complete, unmasked, uncompressed WebSocket text frame (RFC 6455 §5.2), as a server sends it:
    the same bytes for every recipient, so the hub builds it once per event."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class UvicornTransport:
    __slots__ = ("_protocol",)

    def __init__(self, protocol: object) -> None:
        self._protocol = protocol

    def release_handshake(self) -> None:
        """The application has read what it needs of the handshake: let its objects go. uvicorn
        reads them only before the handshake completes; the headers of the request are cleared in
        place because the websockets parser, suspended for the connection's life, still refers to
        the request object."""
        protocol = self._protocol
        if not protocol.handshake_complete:  # type: ignore[attr-defined]
            return
        request = getattr(protocol, "request", None)
        if request is not None:
            request.headers.clear()
            protocol.request = None  # type: ignore[attr-defined]
        protocol.response = None  # type: ignore[attr-defined]
        scope = protocol.scope  # type: ignore[attr-defined]
        if scope.get("headers"):
            scope["headers"] = []

    def buffered_bytes(self) -> int:
        return self._protocol.transport.get_write_buffer_size()  # type: ignore[attr-defined]

    def closing(self) -> bool:
        return self._protocol.transport.is_closing()  # type: ignore[attr-defined]

    def write_frame(self, frame: bytes) -> bool:
        # What uvicorn's send() does for `websocket.send` once the transport is writable, minus the
        # framing (done once per event) and the await. Only while the connection is open with no
        # extension (no permessage-deflate: retrochat/serve.py turns it off) and no fragmented
        # message of ours in progress, so the websockets state machine sees nothing it would not.
        protocol = self._protocol
        conn = protocol.conn  # type: ignore[attr-defined]
        if (
            protocol.close_sent  # type: ignore[attr-defined]
            or protocol.disconnected  # type: ignore[attr-defined]
            or not protocol.writable.is_set()  # type: ignore[attr-defined]
            or conn.state is not _WS_OPEN
            or conn.expect_continuation_frame
            or conn.extensions
        ):
            return False
        protocol.transport.write(frame)  # type: ignore[attr-defined]
        return True

    def abort(self) -> None:
        self._protocol.transport.abort()  # type: ignore[attr-defined]


class DaphneTransport:
    __slots__ = ("_protocol",)

    def __init__(self, protocol: object) -> None:
        self._protocol = protocol

    def release_handshake(self) -> None:
        """Nothing: daphne is supported, but uvicorn is the server whose memory is tuned."""

    def buffered_bytes(self) -> int:
        # Twisted's FileDescriptor keeps unsent bytes in dataBuffer (from `offset`) and _tempDataBuffer.
        transport = getattr(self._protocol, "transport", None)
        if transport is None or not getattr(transport, "connected", False):
            return 0
        unsent = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
        return unsent + getattr(transport, "_tempDataLen", 0)

    def closing(self) -> bool:
        transport = getattr(self._protocol, "transport", None)
        return transport is not None and bool(getattr(transport, "disconnecting", False))

    def write_frame(self, frame: bytes) -> bool:
        # autobahn's sendPreparedMessage for an uncompressed connection: the frame as it is.
        protocol = self._protocol
        if (
            protocol.state != protocol.STATE_OPEN  # type: ignore[attr-defined]
            or protocol._perMessageCompress is not None  # type: ignore[attr-defined]
            or self.buffered_bytes() > _DAPHNE_HIGH_WATER
        ):
            return False
        protocol.sendData(frame)  # type: ignore[attr-defined]
        return True

    def abort(self) -> None:
        transport = getattr(self._protocol, "transport", None)
        if transport is not None and getattr(transport, "connected", False):
            transport.abortConnection()


def _add_extension(scope: Any, control: object) -> None:  # daphne's dict or uvicorn's TypedDict
    scope.setdefault("extensions", {})
    if scope["extensions"] is None:
        scope["extensions"] = {}
    scope["extensions"][TRANSPORT_EXTENSION] = control


def too_large_error() -> bytes:
    """The error frame's text for a frame over the limit: the same words the consumer uses."""
    from django.conf import settings

    from realtime import protocol

    limit = settings.RETROCHAT_MAX_FRAME_BYTES
    return protocol.error(protocol.MESSAGE_TOO_LARGE, f"Frames are limited to {limit} bytes.").encode()


def patch_daphne() -> None:
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not installed: nothing to fix
        return
    if getattr(WebSocketProtocol, "retrochat_patched", False):
        return
    original_server_close = WebSocketProtocol.serverClose

    def serverClose(self: WebSocketProtocol, code: int | None = None) -> None:  # daphne's method name
        if code in SERVER_PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original_server_close(self, code)

    def _max_message_size_exceeded(self: WebSocketProtocol, msg_size: int, max_msg_size: int, reason: str) -> None:
        if self.state == self.STATE_OPEN and not self.failedByMe:
            self.failedByMe = True  # ignore the rest of the frame; wait for the client's close
            self.sendMessage(too_large_error(), isBinary=False)
            self.sendCloseFrame(code=CLOSE_TOO_BIG, isReply=False)
        self.message_data_total_length = 0

    original_create_application = Server.create_application

    def create_application(self: Server, protocol: object, scope: dict) -> object:
        if isinstance(protocol, WebSocketProtocol):
            _add_extension(scope, DaphneTransport(protocol))
            limit_send_buffer(getattr(protocol.transport, "socket", None))
        return original_create_application(self, protocol, scope)

    WebSocketProtocol.serverClose = serverClose
    WebSocketProtocol._max_message_size_exceeded = _max_message_size_exceeded
    Server.create_application = create_application
    WebSocketProtocol.retrochat_patched = True


def patch_uvicorn() -> None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )
        from websockets.exceptions import PayloadTooBig
        from websockets.frames import Frame, Opcode
    except ImportError:  # not installed: nothing to fix
        return
    if getattr(WebSocketsSansIOProtocol, "retrochat_patched", False):
        return
    original = WebSocketsSansIOProtocol.handle_parser_exception

    def handle_parser_exception(self: WebSocketsSansIOProtocol) -> None:
        # websockets has queued its close 1009 but not written it yet: the error frame goes first.
        if isinstance(self.conn.parser_exc, PayloadTooBig) and not self.transport.is_closing():
            self.transport.write(Frame(Opcode.TEXT, too_large_error()).serialize(mask=False))
        original(self)

    original_data_received = WebSocketsSansIOProtocol.data_received

    def data_received(self: WebSocketsSansIOProtocol, data: bytes) -> None:
        original_data_received(self, data)
        if self.conn.handshake_exc is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    original_run_asgi = WebSocketsSansIOProtocol.run_asgi

    async def run_asgi(self: WebSocketsSansIOProtocol) -> None:
        _add_extension(self.scope, UvicornTransport(self))
        limit_send_buffer(self.transport.get_extra_info("socket"))
        await original_run_asgi(self)

    original_init = WebSocketsSansIOProtocol.__init__

    def __init__(self: WebSocketsSansIOProtocol, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        # Fresh and unused here: nothing has been queued or awaited yet.
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        writable = Flag()
        writable.set()
        self.writable = writable  # type: ignore[assignment]

    original_upgrade = HttpToolsProtocol.handle_websocket_upgrade

    def handle_websocket_upgrade(self: HttpToolsProtocol) -> None:
        original_upgrade(self)
        # The transport now belongs to the WebSocket protocol and this object is done; its parser
        # refers back to it, which would keep both (and the request's scope) for the cyclic GC.
        self.parser = None  # type: ignore[assignment]

    WebSocketsSansIOProtocol.__init__ = __init__  # type: ignore[method-assign]  # the patch
    WebSocketsSansIOProtocol.handle_parser_exception = handle_parser_exception  # type: ignore[method-assign]  # the patch
    WebSocketsSansIOProtocol.run_asgi = run_asgi  # type: ignore[method-assign]  # the patch
    WebSocketsSansIOProtocol.data_received = data_received  # type: ignore[method-assign]  # the patch
    HttpToolsProtocol.handle_websocket_upgrade = handle_websocket_upgrade  # type: ignore[method-assign]  # the patch
    WebSocketsSansIOProtocol.retrochat_patched = True  # type: ignore[attr-defined]  # our marker


def allow_protocol_close_codes() -> None:
    patch_daphne()
    patch_uvicorn()
