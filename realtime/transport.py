"""Fixes for the WebSocket server underneath (daphne on autobahn), applied when Django starts.

1. autobahn's `sendClose()` accepts only the application close codes 1000 and 3000–4999, so daphne
   raises (a traceback in the log, and no close frame for the client) when the application closes
   with a protocol code that SPEC §3.4 promises: 1009 for a frame over the size limit, 1001/1012
   when the server goes away or restarts. A server may send those codes (RFC 6455 §7.4.1): send
   the close frame itself, as autobahn does internally.
2. A frame over daphne's own transport cap (retrochat/serve.py keeps it well above
   RETROCHAT_MAX_FRAME_BYTES) never reaches the application, and autobahn then drops the TCP
   connection without a word. Answer it as the application answers any frame over the limit:
   the MESSAGE_TOO_LARGE error frame, then close 1009.
"""

# Codes a server may send that autobahn's public sendClose() refuses.
SERVER_PROTOCOL_CLOSE_CODES = frozenset({1001, 1009, 1011, 1012, 1013})
CLOSE_TOO_BIG = 1009


def allow_protocol_close_codes() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # served by something else: nothing to fix
        return
    if getattr(WebSocketProtocol, "retrochat_patched", False):
        return
    original_server_close = WebSocketProtocol.serverClose

    def serverClose(self, code=None):  # type: ignore[no-untyped-def]  # noqa: N802 (daphne's name)
        if code in SERVER_PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original_server_close(self, code)

    def _max_message_size_exceeded(self, msg_size, max_msg_size, reason):  # type: ignore[no-untyped-def]
        from django.conf import settings

        from realtime import protocol

        if self.state == self.STATE_OPEN and not self.failedByMe:
            self.failedByMe = True  # ignore the rest of the frame; wait for the client's close
            limit = settings.RETROCHAT_MAX_FRAME_BYTES
            text = protocol.error(protocol.MESSAGE_TOO_LARGE, f"Frames are limited to {limit} bytes.")
            self.sendMessage(text.encode(), isBinary=False)
            self.sendCloseFrame(code=CLOSE_TOO_BIG, isReply=False)
        self.message_data_total_length = 0

    WebSocketProtocol.serverClose = serverClose
    WebSocketProtocol._max_message_size_exceeded = _max_message_size_exceeded
    WebSocketProtocol.retrochat_patched = True
