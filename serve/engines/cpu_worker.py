"""The CPU engine's own process: it loads the model, runs `toolgram.runtime.decoding.Decoder` and streams token
steps back to the server over a socket (as vLLM runs its EngineCore apart from the API server).

The server process (`serve/engines/cpu.py`) starts a fresh interpreter that runs `child_main`, and talks to it
with small tuples (`cpu_protocol` frames) over an inherited socket (one end of a socketpair):

server -> engine
    ``("gen", rid, prompt_ids, grammar, max_tokens, temperature, top_p, seed, logit_bias)``
        ``prompt_ids`` packed as ``array("i")`` bytes, ``grammar`` Lark text or None, ``logit_bias`` a list of
        ``(token, bias)`` pairs or None
    ``("abort", rid)``        the client went away: stop before the next token (or skip it while still queued)
    ``("stop",)``             shut down

engine -> server
    ``("ready", info)``       the model is loaded (``info``: ``max_model_len``, ``eos``, ``vocab``)
    ``("fail", message)``     the model could not be loaded (the process then exits)
    ``("t", rid, text, tokens, reason)``
        new text and the number of tokens it took; ``reason`` is None until the last message of a generation:
        ``"stop"``, ``"length"`` or ``"abort"``
    ``("x", rid, status, code, message)``   the generation failed (400 ``constraint_error`` for a DecodingError)
    ``("s", stats)``          the engine's counters (``active``, ``aborted``) after they changed

Generations run one at a time in arrival order, in the main thread; a reader thread takes messages off the
socket, so an abort reaches a running generation at once.  Token steps go out as they are made (one ``send`` of
a few microseconds), **batched when the server lags**: while the server has not yet read the previous message
(the socket's unread byte count, ``TIOCOUTQ``, where the platform has it), new text is held back and goes with the
next message once the server has caught up, so a busy server process is woken once for several tokens instead of
once per token; and at most one message every ``stream_interval`` seconds (the server sets it: 5 ms).  A
generation's first text and its last message (with the finish reason) always go at once.

The process exits when the server says ``stop``, when the socket closes (the server process is gone, however it
ended), or when its parent changes (no orphans).  It ignores SIGINT and SIGTERM: a Ctrl-C in a terminal or a
SIGTERM to the process group reaches it with the server, and the server, shutting down in order, lets the
running generations finish and then stops it.
"""
from __future__ import annotations

import array
import collections
import fcntl
import logging
import os
import select
import signal
import socket
import sys
import termios
import threading
import time

from toolgram.serve.engines.cpu_protocol import Frames, pack

log = logging.getLogger("toolgram.serve.cpu_engine")


class _Request:
    __slots__ = ("rid", "args", "aborted")

    def __init__(self, rid, args):
        self.rid = rid
        self.args = args
        self.aborted = False

    def is_aborted(self) -> bool:
        return self.aborted


class Worker:
    """The engine loop on one end of a connection."""

    def __init__(self, sock: socket.socket, decoder, eos_bias: float = 0.0, stream_interval: float = 0.0):
        self.sock = sock
        self.stream_interval = float(stream_interval)
        self.decoder = decoder
        self.eos_bias = float(eos_bias)
        self.stats = {"active": 0, "aborted": 0}
        self.queue: collections.deque = collections.deque()
        self.known: dict = {}                      # rid -> _Request, queued or running
        self.cond = threading.Condition()
        self.stopping = False
        self._outq = array.array("i", [0])
        self._lag = hasattr(termios, "TIOCOUTQ")

    # -- messages ------------------------------------------------------------------------------------
    def server_lags(self) -> bool:
        """Whether the server has not yet read everything sent to it."""
        if self._lag:
            try:
                fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, self._outq, True)
                return self._outq[0] > 0
            except OSError:
                self._lag = False              # (not for this kind of socket here: send every step)
        return False

    def send(self, msg) -> None:
        self.sock.sendall(pack(msg))               # (only the main thread sends)

    def read_loop(self, parent_pid: int | None = None) -> None:
        """Take messages off the socket until ``stop`` or the socket closes (run in a thread)."""
        frames = Frames()
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        try:
            while True:
                if not poller.poll(1000):
                    if parent_pid is not None and os.getppid() != parent_pid:
                        break                      # the server died without closing the socket
                    continue
                data = self.sock.recv(1 << 16)
                if not data:
                    break
                if self._dispatch(frames.feed(data)):
                    break
        except (OSError, ValueError):
            pass
        finally:
            with self.cond:
                self.stopping = True
                for r in self.known.values():
                    r.aborted = True
                self.cond.notify()

    def _dispatch(self, msgs: list) -> bool:
        """Act on messages from the server; True on ``stop``."""
        for msg in msgs:
            kind = msg[0]
            if kind == "gen":
                r = _Request(msg[1], msg[2:])
                with self.cond:
                    self.known[r.rid] = r
                    self.queue.append(r)
                    self.cond.notify()
            elif kind == "abort":
                r = self.known.get(msg[1])
                if r is not None:
                    r.aborted = True
            elif kind == "stop":
                return True
        return False

    def run(self) -> None:
        """Serve queued generations one at a time until stopped."""
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                r = self.queue.popleft()
            try:
                self._generate(r)
            except OSError:
                return                             # the server is gone
            finally:
                self.known.pop(r.rid, None)

    # -- one generation ------------------------------------------------------------------------------
    def _generate(self, r: _Request) -> None:
        from toolgram.runtime.decoding import DecodingError
        rid = r.rid
        if r.aborted:
            self._finish(("t", rid, "", 0, "abort"), aborted=True)
            return
        packed, grammar, max_tokens, temperature, top_p, seed, logit_bias = r.args
        ids = array.array("i")
        ids.frombytes(packed)
        bias = dict(logit_bias or ())
        if self.eos_bias:
            for e in self.decoder.eos:
                bias[e] = bias.get(e, 0.0) + self.eos_bias
        self.stats["active"] += 1
        self.send(("s", dict(self.stats)))
        send, lags = self.send, self.server_lags
        clock, interval, due = time.perf_counter, self.stream_interval, 0.0
        reason, first = None, True
        try:
            text, tokens = "", 0
            for step in self.decoder.generate(
                    [ids.tolist()], [grammar] if grammar is not None else None, max_new_tokens=max_tokens,
                    temperature=temperature, top_p=top_p, seed=seed, should_abort=r.is_aborted,
                    logit_bias=bias or None):
                text += step.text
                tokens += 1 if step.token >= 0 else 0
                if step.finished:
                    reason = step.reason
                    break
                if text:                           # (a token that ends inside a character waits for the next)
                    if not first:
                        if lags():
                            continue
                        if interval:
                            now = clock()
                            if now < due:
                                continue
                            due = now + interval
                    send(("t", rid, text, tokens, None))
                    text, tokens, first = "", 0, False
            if reason is None:                     # the decoder ends silently when the mask allows nothing more
                reason = "abort" if r.aborted else "stop"
            last = ("t", rid, text, tokens, reason)
        except DecodingError as e:
            last = ("x", rid, 400, "constraint_error", str(e))
        except OSError:
            raise
        except Exception as e:                     # noqa: BLE001 - reported to the client as an engine error
            log.exception("cpu engine failure")
            last = ("x", rid, 500, "engine_error", f"engine failure: {type(e).__name__}: {e}")
        self.stats["active"] -= 1
        self._finish(last, aborted=reason == "abort")

    def _finish(self, last: tuple, aborted: bool) -> None:
        """A generation's last message, after the counters it changed (so the server has both together)."""
        if aborted:
            self.stats["aborted"] += 1
        self.send(("s", dict(self.stats)))
        self.send(last)


def child_main() -> None:
    """The entry point of the engine process: ``sys.argv[2]`` is its JSON config (``fd``, and `main`'s
    options); the server set ``sys.path`` from ``sys.argv[1]``."""
    import json
    config = json.loads(sys.argv[2])
    sock = socket.socket(fileno=config.pop("fd"))
    sock.setblocking(True)
    main(sock, **config)


def main(sock: socket.socket, model: str, threads: int | None = None, eos_bias: float = 0.0,
         stream_interval: float = 0.0) -> None:
    """Load the model and serve the socket until told to stop or the server is gone; never returns."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parent = os.getppid()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from toolgram.runtime.decoding import Decoder
        decoder = Decoder.from_pretrained(model, threads=threads)
        decoder.ll_tokenizer                       # built once, before the first request
        cfg = decoder.model.config
        info = {"max_model_len": int(getattr(cfg, "max_position_embeddings", 0) or 0) or None,
                "eos": list(decoder.eos), "vocab": decoder.vocab}
    except BaseException as e:                     # noqa: BLE001 - the server reports it and does not start
        log.exception("the cpu engine could not load %s", model)
        try:
            sock.sendall(pack(("fail", f"{type(e).__name__}: {e}")))
        except OSError:
            pass
        os._exit(1)
    w = Worker(sock, decoder, eos_bias, stream_interval)
    reader = threading.Thread(target=w.read_loop, args=(parent,), name="toolgram-cpu-reader", daemon=True)
    reader.start()
    try:
        w.send(("ready", info))
        w.run()
    except OSError:
        pass
    finally:
        sock.close()
    # leave at once: nothing is left to save, and a parent that died must not wait for interpreter teardown
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":                         # pragma: no cover
    raise SystemExit("started by toolgram serve (serve/engines/cpu.py), not on its own")
