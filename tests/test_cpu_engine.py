"""The embedded CPU engine (serve/engines/cpu.py) with its real engine process on the hermes demo model: the
text it streams is the decoder's own (same seed, same tokens), a consumer that leaves or an `abort` stops the
generation (running or still queued) and the engine counts it, constraint and prompt errors are 400s, an engine
process that dies gives 503s, a model that cannot load fails `start`, and no engine process outlives its server
(closed, or killed)."""
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

os.environ.setdefault("TOOLGRAM_DEMO_CACHE", os.path.join(tempfile.gettempdir(), "toolgram-test-demo-models"))

pytest.importorskip("torch")
pytest.importorskip("transformers")

import toolgram  # noqa: E402
from toolgram.serve import demo_model  # noqa: E402
from toolgram.serve.engines.base import EngineConstraint, EngineError, EngineRequest  # noqa: E402
from toolgram.serve.engines.cpu import CPUEngine  # noqa: E402

LONG = EngineConstraint("lark", "start: /[a-z]{4000}/")        # keeps the model busy for thousands of tokens


@pytest.fixture(scope="module")
def model_path():
    return str(demo_model.for_grammar(toolgram.load("hermes")))


@pytest.fixture(scope="module")
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def engine(model_path, loop):
    e = CPUEngine(model_path, model_id="demo", eos_bias=4.0)
    loop.run_until_complete(e.start())
    yield e
    loop.run_until_complete(e.close())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                                  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def wait_until(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def request(engine, rid, prompt="Tell me the weather", grammar=None, **kw):
    ids = engine.tokenizer.encode(prompt, add_special_tokens=False)
    return EngineRequest(request_id=rid, prompt=prompt, prompt_ids=ids, grammar=grammar, **kw)


async def collect(engine, req):
    out = []
    async for d in engine.generate(req):
        out.append(d)
    return out


def test_streams_what_the_decoder_makes(engine, loop, model_path):
    from toolgram.runtime.decoding import Decoder
    g = toolgram.load("hermes")
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "string", "maxLength": 6}}, "required": ["a"]}}}]
    c = g.constraint(tools, "required", tokenizer=engine.tokenizer, max_calls=2)
    req = request(engine, "same", grammar=EngineConstraint("lark", c.text), max_tokens=120, seed=7, temperature=1.0)
    deltas = loop.run_until_complete(collect(engine, req))
    assert deltas[0].prompt_tokens == len(req.prompt_ids)
    assert all(d.finish_reason is None for d in deltas[:-1]) and deltas[-1].finish_reason in ("stop", "length")
    text = "".join(d.text for d in deltas)
    assert g.parse(text, tools=tools).tool_calls
    # the decoder in this process, same prompt, constraint, bias and seed: the same tokens, hence the same text
    dec = Decoder.from_pretrained(model_path)
    steps = list(dec.generate([req.prompt_ids], [c.text], max_new_tokens=120, seed=7, temperature=1.0,
                              logit_bias={e: 4.0 for e in dec.eos}))
    assert text == "".join(s.text for s in steps)
    assert sum(d.tokens for d in deltas) == sum(1 for s in steps if s.token >= 0)


def test_consumer_that_leaves_aborts(engine, loop):
    async def go():
        before = engine.stats["aborted"]
        gen = engine.generate(request(engine, "leaves", grammar=LONG, max_tokens=4000))
        got = ""
        async for d in gen:
            got += d.text
            if len(got) >= 3:
                break
        await gen.aclose()                                # the client went away
        deadline = time.monotonic() + 15
        while engine.stats["aborted"] == before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert engine.stats["aborted"] == before + 1
        t = time.monotonic()                              # and the engine is free at once
        out = await collect(engine, request(engine, "next", max_tokens=3))
        assert out[-1].finish_reason in ("stop", "length") and time.monotonic() - t < 10
    loop.run_until_complete(go())


def test_abort_running_and_queued(engine, loop):
    async def go():
        before = engine.stats["aborted"]
        running = asyncio.ensure_future(collect(engine, request(engine, "run", grammar=LONG, max_tokens=4000)))
        queued = asyncio.ensure_future(collect(engine, request(engine, "queued", grammar=LONG, max_tokens=4000)))
        await asyncio.sleep(0.3)
        await engine.abort("queued")                      # still waiting behind "run": skipped without running
        await engine.abort("run")
        r, q = await asyncio.wait_for(asyncio.gather(running, queued), 30)
        assert r[-1].finish_reason == "abort" and q[-1].finish_reason == "abort"
        assert sum(d.tokens for d in q) == 0
        assert engine.stats["aborted"] == before + 2
        assert engine.stats["active"] == 0
    loop.run_until_complete(go())


def test_errors_are_the_clients(engine, loop):
    bad = request(engine, "bad-grammar", grammar=EngineConstraint("lark", "start: ( /unclosed"), max_tokens=5)
    with pytest.raises(EngineError) as e:
        loop.run_until_complete(collect(engine, bad))
    assert e.value.status == 400 and "constraint" in str(e.value)
    for ids in ([], [0, engine.vocab + 5], [-1]):
        req = EngineRequest(request_id="ids", prompt="", prompt_ids=ids, max_tokens=3)
        with pytest.raises(EngineError) as e:
            loop.run_until_complete(collect(engine, req))
        assert e.value.status == 400
    with pytest.raises(EngineError) as e:
        loop.run_until_complete(collect(engine, request(engine, "gbnf", grammar=EngineConstraint("gbnf", 'root ::= "a"'))))
    assert e.value.status == 400
    # a seed beyond 64 bits is taken modulo 2**64 (as torch takes -1), not an engine failure
    out = loop.run_until_complete(collect(engine, request(engine, "seed", max_tokens=3, seed=2 ** 70 + 3)))
    assert out[-1].finish_reason in ("stop", "length")
    assert engine.health()["queued_or_running"] == 0


def test_dead_engine_process_is_503(model_path):
    loop = asyncio.new_event_loop()
    e = CPUEngine(model_path, model_id="demo")
    try:
        loop.run_until_complete(e.start())
        pid = e._proc.pid

        async def go():
            gen = e.generate(request(e, "doomed", grammar=LONG, max_tokens=4000))
            first = await gen.__anext__()
            assert first.prompt_tokens
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(EngineError) as err:
                async for _ in gen:
                    pass
            assert err.value.status == 503
            with pytest.raises(EngineError) as err:
                await collect(e, request(e, "after", max_tokens=3))
            assert err.value.status == 503
        loop.run_until_complete(go())
        assert e.health()["status"] == "error"
    finally:
        loop.run_until_complete(e.close())
        loop.close()


def test_model_that_cannot_load_fails_start(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    e = CPUEngine(tmp_path, model_id="nothing")
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(Exception) as err:
            loop.run_until_complete(e.start())
        assert str(tmp_path) in str(err.value) or "config" in str(err.value).lower()
        assert e._proc is not None and wait_until(lambda: e._proc.poll() is not None, 10)
    finally:
        loop.close()


def test_close_stops_the_engine_process(model_path):
    loop = asyncio.new_event_loop()
    e = CPUEngine(model_path, model_id="demo")
    try:
        loop.run_until_complete(e.start())
        pid = e._proc.pid
        assert alive(pid)
        loop.run_until_complete(e.close())
        assert e._proc.returncode is not None and not alive(pid)
    finally:
        loop.close()


def test_no_orphan_when_the_server_process_dies(model_path, tmp_path):
    # a server process that starts an engine and then dies without any cleanup (SIGKILL): the engine process
    # sees its socket close and exits by itself
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, sys, time
        sys.path[:0] = {sys.path!r}
        from toolgram.serve.engines.cpu import CPUEngine
        async def main():
            e = CPUEngine({model_path!r}, model_id="demo")
            await e.start()
            print(e._proc.pid, flush=True)
            time.sleep(600)
        asyncio.run(main())
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        engine_pid = int(p.stdout.readline())
        assert alive(engine_pid)
        p.kill()
        p.wait(10)
        assert wait_until(lambda: not alive(engine_pid), 15), "the engine process outlived its server"
    finally:
        if p.poll() is None:
            p.kill()


@pytest.mark.parametrize("name", ["harmony", "harmony_llmjp"])
def test_capped_reasoning_stays_within_the_matchers_lexer_limits(name):
    """With reasoning capped (``max_reasoning``, the demo server's 64) a mask can need more lexer building than
    llguidance's default per-step fuel (at 200k, 9 of these 20 harmony walks failed with "too many expressions
    constructed"); toolgram's matchers run with `decoding.STEP_LEXER_FUEL`: random walks over the demo
    tokenizer, every allowed token equally likely, never meet the limit."""
    import random
    import numpy as np
    import llguidance
    import llguidance.numpy as lnp
    from toolgram.runtime.decoding import llguidance_limits
    from toolgram.serve.demo_model import build_tokenizer, markers_of
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    g = toolgram.load(name)
    tok = build_tokenizer(markers_of(g))
    lt = llguidance.LLTokenizer(tok.to_str(), eos_token=0)
    mask = lnp.allocate_token_bitmask(1, lt.vocab_size)
    walked = 0
    for mode in ("auto", "required"):
        text = g.constraint([weather], mode, tokenizer=tok, max_reasoning=64).text
        for seed in range(10):
            rng = random.Random(seed)
            m = llguidance.LLMatcher(lt, text, log_level=0, limits=llguidance_limits())
            for _ in range(400):
                lnp.fill_next_token_bitmask(m, mask, 0)
                assert not m.is_error(), (mode, seed, m.get_error()[:200])
                allowed = np.flatnonzero(np.unpackbits(mask[0].view(np.uint8), bitorder="little")[:lt.vocab_size])
                if m.is_stopped() or not len(allowed):
                    break
                assert m.consume_token(int(rng.choice(allowed))), (mode, seed, m.get_error()[:200])
                walked += 1
    assert walked > 1000
