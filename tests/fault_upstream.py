"""A misbehaving OpenAI-compatible upstream for fault tests: a real HTTP server (asyncio sockets, no framework,
so it can break the protocol at any byte) whose ``POST /v1/completions`` answers as the request's prompt says.

The prompt (rendered by the front toolgram from the user's message) may hold ``FAULT:<mode>`` and
``REPLAY:<base64 of UTF-8 text>``; the text (default ``hello world``) is what the "model" writes, streamed in
small chunks.  Modes:

==============  ===================================================================================
ok              the text, finish_reason stop, usage, ``[DONE]``
http500         HTTP 500 with an OpenAI error object (the upstream refuses)
http400         HTTP 400 with an OpenAI error object
garbage         HTTP 200, then an event that is not JSON
stall_headers   reads the request, never answers
stall_mid       two chunks, then silence (the connection stays open)
die_mid         two chunks, then the connection is reset
no_finish       the text and ``[DONE]`` without a finish_reason
error_event     one chunk, then ``data: {"error": ...}``
slow            the text one character every 50 ms (a long generation, for disconnects)
==============  ===================================================================================

``GET /health`` answers 200; ``GET /v1/models`` lists ``fault``; ``GET /stats`` returns counters: requests per
mode and ``client_gone`` (streams whose reader went away before the end: proof that a front aborted).

    python tests/fault_upstream.py --port 8123
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import socket
import struct

STATS: dict = {"requests": {}, "client_gone": 0, "finished": 0}


def _event(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _chunk(text: str, finish=None) -> dict:
    return {"id": "cmpl-fault", "object": "text_completion", "model": "fault",
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}


async def _read_request(reader) -> tuple[str, str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def _plain(writer, status: int, obj) -> None:
    body = json.dumps(obj).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}.get(status, "X")
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)


async def _stream(writer, events, delay: float = 0.0) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                 b"Connection: close\r\n\r\n")
    for ev in events:
        if ev is None:                              # stall: keep the connection open, say nothing
            await asyncio.sleep(3600)
        if ev == "RESET":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        writer.write(ev)
        await writer.drain()
        if delay:
            await asyncio.sleep(delay)


def _pieces(text: str, size: int = 3) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


async def handle(reader, writer) -> None:
    try:
        method, path, body = await _read_request(reader)
        if path == "/health":
            return _plain(writer, 200, {"status": "ok"})
        if path == "/stats":
            return _plain(writer, 200, STATS)
        if path == "/v1/models":
            return _plain(writer, 200, {"object": "list", "data": [{"id": "fault", "object": "model"}]})
        if path != "/v1/completions" or method != "POST":
            return _plain(writer, 404, {"error": {"message": "no route", "type": "not_found", "code": None}})
        req = json.loads(body or b"{}")
        prompt = req.get("prompt") or ""
        prompt = prompt if isinstance(prompt, str) else ""
        m = re.search(r"FAULT:([a-z_0-9]+)", prompt)
        mode = m.group(1) if m else "ok"
        m = re.search(r"REPLAY:([A-Za-z0-9+/=]+)", prompt)
        text = base64.b64decode(m.group(1)).decode("utf-8") if m else ("x" * 2000 if mode == "slow" else "hello world")
        STATS["requests"][mode] = STATS["requests"].get(mode, 0) + 1
        usage = {"prompt_tokens": 7, "completion_tokens": len(_pieces(text)), "total_tokens": 7 + len(_pieces(text))}
        done = [_event({**_chunk("", "stop"), "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}),
                _event({"id": "cmpl-fault", "object": "text_completion", "model": "fault", "choices": [],
                        "usage": usage}), b"data: [DONE]\n\n"]
        body_events = [_event(_chunk(p)) for p in _pieces(text, 1 if mode == "slow" else 3)]
        if mode == "http500":
            return _plain(writer, 500, {"error": {"message": "upstream refuses", "type": "server_error",
                                                  "code": None}})
        if mode == "http400":
            return _plain(writer, 400, {"error": {"message": "upstream says no", "type": "invalid_request_error",
                                                  "code": None}})
        if mode == "stall_headers":
            await asyncio.sleep(3600)
        plans = {
            "ok": body_events + done,
            "slow": body_events + done,
            "garbage": body_events[:1] + [b"data: {this is not json\n\n"],
            "stall_mid": body_events[:2] + [None],
            "die_mid": body_events[:2] + ["RESET"],
            "no_finish": body_events + [b"data: [DONE]\n\n"],
            "error_event": body_events[:1] + [_event({"error": {"message": "the model fell over", "type": "x"}})],
        }
        try:
            await _stream(writer, plans.get(mode, plans["ok"]), delay=0.05 if mode == "slow" else 0.0)
            STATS["finished"] += 1
        except (ConnectionError, OSError):
            STATS["client_gone"] += 1
    except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
        pass
    finally:
        try:
            writer.close()
        except Exception:                                   # noqa: BLE001
            pass


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    asyncio.run(serve(ap.parse_args().port))
