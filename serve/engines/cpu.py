"""The embedded CPU engine: a transformers causal LM decoded by `toolgram.runtime.decoding.Decoder`, with
llguidance masks when the request has a constraint, in a process of its own.

The decoder runs in an engine process (`cpu_worker`, a fresh interpreter, as vLLM runs its EngineCore apart
from its API server): decoding and the server's event loop (HTTP, parsing, SSE) then never wait for each other's
GIL.  The server process keeps the tokenizer (chat template, marker ids, prompt tokens) and
sends each request over a socket (`cpu_protocol` frames): prompt ids, constraint, sampling options, token budget,
logit bias, seed.  The engine process streams token steps back; the event loop reads them when the socket is
readable (no thread, one ``recv`` for all that is there) and hands everything that arrived for a request since
its consumer last looked over as one delta.

Requests are **serialised**: the engine process runs one generation at a time (the decoder holds one KV cache,
and on a small CPU the matmuls of one sequence already use the cores; batching requests with different
sampling options, seeds and grammars would change what each one gets).  Waiting requests queue in arrival order
(bounded by the server's concurrency limit).  A consumer that goes away (client disconnect) sends an abort,
which the decoder checks before every token (``should_abort``); a queued request whose client left is skipped
without running.  ``stats["aborted"]`` (reported by the engine process) counts generations stopped that way.

Errors: a model that cannot be loaded fails `start` (the server does not start); a constraint llguidance refuses
is a 400; an engine process that dies answers 503 to the requests it had and to later ones.  The engine process
stops with the server (``close``), and by itself when the server process is gone (its socket closes).

``stream_interval`` (seconds, default 5 ms): after a generation's first text, the engine process sends its new
text at most every ``stream_interval``, and holds it back while the server has not read the previous message
(see `cpu_worker`).  A model that takes longer than that per token (any real model on a CPU) streams token by
token; the demo model makes a token in about a millisecond, and one message per token would wake the server (and
through it the client) for every token, taking the engine's CPU from it on a small machine.  0 sends every token.

``eos_bias`` adds a logit bias to the end-of-sequence tokens: a random-weight model (the demo) then ends its
free text within a few dozen tokens instead of running to ``max_tokens``.  It does not touch the grammar mask.
"""
from __future__ import annotations

import array
import asyncio
import atexit
import collections
import itertools
import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import AsyncIterator

from toolgram.serve.engines import cpu_worker
from toolgram.serve.engines.cpu_protocol import Frames, pack
from toolgram.serve.engines.base import Engine, EngineDelta, EngineError, EngineRequest, ModelInfo

log = logging.getLogger("toolgram.serve")

_children: set = set()          # engine processes of this server process, stopped at exit whatever happens


def _stop(proc: subprocess.Popen) -> None:
    """Kill an engine process that did not stop when asked (it ignores SIGTERM and SIGINT: see cpu_worker)."""
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("the cpu engine process %d did not exit", proc.pid)


@atexit.register
def _stop_children() -> None:
    for p in list(_children):
        _stop(p)


class _Stream:
    """What the engine process has sent for one request and the consumer has not taken yet."""

    __slots__ = ("buf", "ready")

    def __init__(self):
        self.buf: collections.deque = collections.deque()
        self.ready = asyncio.Event()


class CPUEngine(Engine):
    kind = "cpu"
    syntax = "lark"

    def __init__(self, model_path: str | Path, *, model_id: str, eos_bias: float = 0.0, threads: int | None = None,
                 notes: dict | None = None, stream_interval: float = 0.005):
        super().__init__()
        self.path = Path(model_path)
        self.eos_bias = float(eos_bias)
        self.stream_interval = float(stream_interval)
        self.threads = threads
        self.info = ModelInfo(id=model_id, notes=dict(notes or {}))
        self.vocab: int | None = None
        self._proc = None
        self._sock: socket.socket | None = None
        self._frames = Frames()
        self._out = bytearray()                        # what the socket did not take yet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: dict[int, _Stream] = {}
        self._ids: dict[str, int] = {}                 # request_id -> the engine process's request number
        self._counter = itertools.count(1)
        self._lost: str | None = None                  # why the engine process is gone

    # -- life cycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        parent, child = socket.socketpair()
        # a fresh interpreter (not fork: torch and the event loop's threads do not survive a fork) with this
        # process's import path, so that it imports the same toolgram; the connection is the inherited socket
        code = (f"import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
                f"from {cpu_worker.__spec__.name} import child_main; child_main()")
        config = {"fd": child.fileno(), "model": str(self.path), "threads": self.threads, "eos_bias": self.eos_bias,
                  "stream_interval": self.stream_interval}
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(sys.path), json.dumps(config)],
                                          pass_fds=[child.fileno()], stdin=subprocess.DEVNULL)
        finally:
            child.close()
        _children.add(self._proc)
        self._sock = parent
        loop = self._loop = asyncio.get_running_loop()
        try:
            # the tokenizer loads here while the engine process loads the model (the engine's error first)
            info, tokenizer = await asyncio.gather(loop.run_in_executor(None, self._wait_ready),
                                                   loop.run_in_executor(None, self._load_tokenizer),
                                                   return_exceptions=True)
            for x in (info, tokenizer):
                if isinstance(x, BaseException):
                    raise x
        except BaseException:
            self._terminate()
            raise
        self.tokenizer = tokenizer
        self.info.max_model_len = info.get("max_model_len")
        self.vocab = info.get("vocab")
        parent.setblocking(False)
        loop.add_reader(parent.fileno(), self._on_readable)

    def _load_tokenizer(self):
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(self.path)

    def _wait_ready(self) -> dict:
        """The engine process's first message (blocking; run in a thread while the socket is still blocking)."""
        self._sock.settimeout(0.2)
        frames = self._frames
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except socket.timeout:
                if self._proc.poll() is not None:
                    data = b""
                else:
                    continue
            if not data:
                raise RuntimeError(f"the cpu engine process exited (code {self._proc.wait(5)}) while loading "
                                   f"{self.path}")
            msgs = frames.feed(data)
            if msgs:
                msg = msgs[0]
                break
        if msg[0] == "fail":
            raise RuntimeError(f"the cpu engine cannot load {self.path}: {msg[1]}")
        return msg[1]

    async def close(self) -> None:
        if self._proc is None:
            return
        if self._loop is not None and self._lost is None:
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())
            try:
                self._sock.setblocking(True)
                self._sock.settimeout(1.0)
                self._sock.sendall(bytes(self._out) + pack(("stop",)))
            except OSError:
                pass
        self._fail_all("the server is shutting down", code="engine_stopped")
        deadline = time.monotonic() + 5
        while self._proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._terminate()

    def _terminate(self) -> None:
        if self._proc is not None:
            _stop(self._proc)
            _children.discard(self._proc)
        if self._sock is not None:
            self._sock.close()
        self._lost = self._lost or "the cpu engine is stopped"

    def health(self) -> dict:
        h = {"engine": self.kind, "model": str(self.path), "queued_or_running": len(self._streams)}
        if self._lost is not None:
            h.update(status="error", engine_error=self._lost)
        return h

    # -- messages from the engine process (on the event loop) ---------------------------------------
    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        try:
            msgs = self._frames.feed(data) if data else None
        except ValueError:                     # (a corrupt stream: treated as a lost engine)
            msgs = None
        if msgs is None:
            self._engine_lost()
            return
        streams = self._streams
        for msg in msgs:
            if msg[0] == "s":
                self.stats.update(msg[1])
                continue
            st = streams.get(msg[1])
            if st is not None:                 # (else its consumer is gone: nothing waits for it)
                st.buf.append(msg)
                st.ready.set()

    def _engine_lost(self) -> None:
        fd = self._sock.fileno()
        self._loop.remove_reader(fd)
        self._loop.remove_writer(fd)
        code = self._proc.poll() if self._proc is not None else None
        self._lost = "the cpu engine process is gone" + (f" (exit code {code})" if code is not None else "")
        log.error("%s; requests get 503 from now on", self._lost)
        self._fail_all(self._lost)

    def _write(self, msg) -> None:
        """Send a message without blocking the event loop (what the socket does not take now goes later)."""
        if self._lost is not None:
            raise EngineError(503, self._lost, code="engine_unavailable")
        data = pack(msg)
        if not self._out:
            try:
                n = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._engine_lost()
                raise EngineError(503, self._lost, code="engine_unavailable") from None
            if n == len(data):
                return
            data = data[n:]
            self._loop.add_writer(self._sock.fileno(), self._flush)
        self._out += data

    def _flush(self) -> None:
        try:
            n = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._engine_lost()
            return
        del self._out[:n]
        if not self._out:
            self._loop.remove_writer(self._sock.fileno())

    def _fail_all(self, message: str, code: str = "engine_unavailable") -> None:
        for st in self._streams.values():
            st.buf.append(("x", None, 503, code, message))
            st.ready.set()

    # -- requests -------------------------------------------------------------------------------------
    async def abort(self, request_id: str) -> None:
        rid = self._ids.get(request_id)
        if rid is not None:
            self._send_abort(rid)

    def _send_abort(self, rid: int) -> None:
        if self._lost is None:
            try:
                self._write(("abort", rid))
            except EngineError:
                pass

    def _check(self, request: EngineRequest) -> list[int]:
        if self._sock is None:
            raise EngineError(503, "the engine is not started", code="engine_not_ready")
        if self._lost is not None:
            raise EngineError(503, self._lost, code="engine_unavailable")
        if request.grammar is not None and request.grammar.syntax != "lark":
            raise EngineError(400, f"the cpu engine takes Lark constraints, not {request.grammar.syntax}")
        ids = request.prompt_ids
        if ids is None:
            ids = self.tokenizer.encode(request.prompt, add_special_tokens=False)
        if not ids:
            raise EngineError(400, "the prompt is empty", code="invalid_prompt")
        if self.vocab and (min(ids) < 0 or max(ids) >= self.vocab):
            raise EngineError(400, f"a prompt token id is outside the model's vocabulary (0..{self.vocab - 1})",
                              code="invalid_prompt")
        return ids

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineDelta]:
        ids = self._check(request)
        rid = next(self._counter)
        st = _Stream()
        self._streams[rid] = st
        self._ids[request.request_id] = rid
        self.stats["requests"] += 1
        bias = [(int(k), float(v)) for k, v in request.logit_bias.items()] if request.logit_bias else None
        finished = False
        try:
            self._write(("gen", rid, array.array("i", ids).tobytes(),
                         request.grammar.text if request.grammar is not None else None,
                         int(request.max_tokens), float(request.temperature), float(request.top_p),
                         request.seed, bias))
            first = True
            buf = st.buf
            while True:
                while not buf:
                    st.ready.clear()
                    await st.ready.wait()
                text, tokens, reason = [], 0, None
                while buf:
                    msg = buf.popleft()
                    if msg[0] == "x":
                        finished = True
                        self.stats["errors"] += 1
                        raise EngineError(msg[2], msg[4], code=msg[3])
                    text.append(msg[2])
                    tokens += msg[3]
                    if msg[4] is not None:
                        reason = msg[4]
                        break
                d = EngineDelta(text="".join(text), tokens=tokens, finish_reason=reason)
                if first:
                    d.prompt_tokens = len(ids)
                    first = False
                if reason is not None:
                    finished = True
                    yield d
                    return
                yield d
        finally:
            self._streams.pop(rid, None)
            self._ids.pop(request.request_id, None)
            if not finished:                   # the consumer is gone: the engine stops at the next token
                self._send_abort(rid)
