"""The ``toolgram`` command line: compile, parse, check and list grammars; serve an OpenAI-compatible endpoint.

Exit codes: 0 success, 1 a check failed, 2 bad input (a grammar file error, an unknown name, bad tools).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from toolgram import corpus
from toolgram.api import load
from toolgram.compiler import registry
from toolgram.errors import GrammarError


def _read_tools(path: str | None):
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise GrammarError(f"cannot read tools: {e}", path) from None
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    if not isinstance(data, list):
        raise GrammarError("tools must be a JSON list (the request's 'tools')", path)
    return data


def _reasoning_arg(args):
    if getattr(args, "no_reasoning_grammar", False):
        return None
    return args.reasoning if args.reasoning else registry.DEFAULT


def cmd_compile(args) -> int:
    from toolgram.compiler.build import read
    data, lines = read(args.file)
    if data.get("kind") == "reasoning":
        from toolgram.compiler.build import reasoning_spec
        spec = reasoning_spec(data, lines)
        print(f"{args.file}: reasoning grammar {spec.name!r} OK")
        return 0
    g = load(args.file, _reasoning_arg(args))
    c = g.compiled
    if args.lark:
        print(c.lark)
        return 0
    roles = {n: (s.kind, s.block or s.role, "name" if s.takes_name else "", "id" if s.takes_id else "")
             for n, s in c.terminals.items() if not n.startswith("__")}
    print(json.dumps({
        "file": args.file, "name": c.name, "reasoning": c.reasoning.name if c.reasoning else None,
        "states": len(c.tables.actions), "triggers": list(c.triggers),
        "terminals": {n: " ".join(x for x in v if x) for n, v in sorted(roles.items())},
        "policies": c.policies,
    }, indent=2, ensure_ascii=False))
    return 0


def cmd_parse(args) -> int:
    g = load(args.name, _reasoning_arg(args))
    tools = _read_tools(args.tools)
    if args.example:
        text = g.compiled.example
        if not text:
            raise GrammarError(f"grammar {g.name!r} has no example", g.compiled.file)
    elif args.input:
        with open(args.input, encoding="utf-8") as f:
            text = f.read()
    else:
        text = sys.stdin.read()
    prompt = _read_prompt(args.prompt)
    if args.stream:
        p = g.stream(tools, reasoning=not args.reasoning_off, prompt=prompt)
        size = max(1, args.chunk)
        for i in range(0, len(text), size):
            for d in p.feed(text[i:i + size]):
                print(json.dumps(d, ensure_ascii=False))
        for d in p.close():
            print(json.dumps(d, ensure_ascii=False))
        return 0
    r = g.parse(text, tools, reasoning=not args.reasoning_off, prompt=prompt)
    out = r.to_dict()
    if args.segments:
        out["segments"] = r.segments
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _read_prompt(path: str | None) -> str | None:
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def cmd_constraint(args) -> int:
    from toolgram.errors import ConstraintError
    g = load(args.name, _reasoning_arg(args))
    tools = _read_tools(args.tools) or []
    choice = args.choice
    if choice not in ("auto", "required", "none"):
        choice = {"type": "function", "function": {"name": choice}}
    tokenizer = None
    if args.tokenizer:
        try:
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        except Exception as e:                      # noqa: BLE001 - report any loading problem plainly
            raise GrammarError(f"cannot load tokenizer: {e}", args.tokenizer) from None
    try:
        c = g.constraint(tools, choice, parallel_tool_calls=not args.single, syntax=args.syntax,
                         tokenizer=tokenizer, dialect=args.dialect, reasoning=not args.reasoning_off,
                         prompt=_read_prompt(args.prompt))
    except ConstraintError as e:
        print(f"toolgram: {e}", file=sys.stderr)
        return 2
    if args.check:
        return _check_output(c, tokenizer, args.check)
    if args.vllm:
        print(json.dumps({"structured_outputs": c.structured_outputs()}, ensure_ascii=False))
    else:
        sys.stdout.write(c.text if c.text.endswith("\n") else c.text + "\n")
    return 0


def _check_output(c, tokenizer, path: str) -> int:
    """Whether the constraint accepts the output in ``path``, tokenized by ``tokenizer`` (a transformers
    tokenizer; without one, byte by byte: no marker is a token).  Exit 0 accepted, 1 rejected."""
    import llguidance
    if c.syntax != "lark" or c.dialect != "llguidance":
        raise GrammarError("--check needs --syntax lark --dialect llguidance (it runs an llguidance matcher)")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if tokenizer is not None:
        import llguidance.hf
        lt = llguidance.hf.from_tokenizer(tokenizer)
        ids = tokenizer.encode(text, add_special_tokens=False)
        how = "the given tokenizer"
    else:
        lt = llguidance.LLTokenizer.from_tiktoken(encoder={bytes([i]): i for i in range(256)},
                                                  special_tokens={"<|end|>": 256}, pattern=r"(?s:.)",
                                                  eos_token=256, n_vocab=None, slices=None)
        ids = list(text.encode("utf-8"))
        how = "bytes (no tokenizer given: every marker spelled byte by byte)"
    from toolgram.runtime.decoding import llguidance_limits
    m = llguidance.LLMatcher(lt, c.text, log_level=0, limits=llguidance_limits())
    if m.is_error():
        print(f"grammar error: {m.get_error()}")
        return 2
    for i, t in enumerate(ids):
        if not m.consume_token(t):
            print(f"rejected ({how}): token {i} of {len(ids)}")
            print(f"accepted prefix: {lt.decode_str(ids[:i])!r}")
            print(f"first refused token: {t} {lt.decode_str([t])!r}")
            return 1
    if not (m.is_accepting() or m.is_stopped()):
        print(f"rejected ({how}): the output is accepted so far but cannot end there")
        print(f"accepted prefix: {text!r}")
        return 1
    print(f"accepted ({how}): {len(ids)} tokens")
    return 0


def cmd_check(args) -> int:
    names = args.names or registry.grammar_names()
    for n in names:
        load(n)               # a grammar (file) that does not compile: file:line, exit 2 (not "0 cases passed")
    report = corpus.check(names)
    failed = 0
    total = 0
    for name, results in report.items():
        bad = [(c, p) for c, p in results if p]
        total += len(results)
        failed += len(bad)
        status = "ok" if not bad else f"{len(bad)} FAILED"
        print(f"{name:16} {len(results):3} cases  {status}")
        for case, problems in bad:
            for problem in problems:
                print(f"    {case.name}: {problem}")
    print(f"{total - failed}/{total} cases passed")
    return 1 if failed else 0


def cmd_new(args) -> int:
    from toolgram import draft
    src = Path(args.from_template)
    try:
        source = src.read_text(encoding="utf-8")
    except OSError as e:
        print(f"toolgram: cannot read the template: {e}", file=sys.stderr)
        return 2
    d = draft.draft(source, args.name or draft.name_for(src.stem), src.stem)
    gpath, cpath = draft.write(d, Path(args.out))
    print(f"wrote {gpath} and {cpath}")
    for line in d.found:
        print(f"  inferred: {line}")
    results = draft.check(gpath) if d.encoding else []
    bad = [(n, p) for n, p in results if p]
    print(f"check: {len(results) - len(bad)}/{len(results)} rendered cases pass")
    for n, problems in bad:
        for problem in problems:
            print(f"    {n}: {problem}")
    for line in d.unknown:
        print(f"  could not infer: {line}")
    return 0 if d.encoding and not bad else 1


def cmd_list(args) -> int:
    if args.aliases:
        # peers' parser names (Dynamo --dyn-tool-call-parser / --dyn-reasoning-parser, vLLM --tool-call-parser /
        # --reasoning-parser) that are not a bundled grammar's own name; a grammar's own name works as is
        for title, table in (("tool-call parser", registry.alias_table()),
                             ("reasoning parser", registry.reasoning_alias_table())):
            print(f"{title} names:")
            for alias, name in sorted(table.items()):
                print(f"  {alias:24} {name}")
        return 0
    if args.reasoning_grammars:
        for name, models in registry.reasoning_table():
            print(f"{name:16} {', '.join(models)}")
        return 0
    for name, models in registry.model_table():
        print(f"{name:16} {', '.join(models)}")
    return 0


def cmd_serve(args) -> int:
    from toolgram.serve.server import Options, ServeError, run
    opts = Options(**{k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__})
    try:
        return run(opts)
    except ServeError as e:
        print(f"toolgram: {e}", file=sys.stderr)
        return 2


def cmd_vllm_plugin_path(args) -> int:
    from pathlib import Path
    from toolgram import serve                     # (the plugin itself imports vLLM: only vLLM loads it)
    print((Path(serve.__file__).parent / "vllm_plugin.py").resolve())
    return 0


def _add_serve(sub) -> None:
    from toolgram.serve.server import Options as D    # (the server's defaults, in one place; a light import)
    s = sub.add_parser("serve", help="serve an OpenAI-compatible endpoint (tool calls parsed and constrained)",
                       description="An OpenAI-compatible server whose tool calls come out right for any model with "
                                   "a grammar. With no --model it serves a built-in demo model (random weights). "
                                   "See docs/serving.md.")
    s.add_argument("--engine", default=D.engine, choices=["cpu", "vllm", "upstream"],
                   help="cpu: embedded transformers engine (default); vllm: vLLM in-process; "
                        "upstream: OpenAI-compatible servers given with --upstream")
    s.add_argument("--model", help="a local model directory (cpu, upstream: tokenizer and chat template) or a "
                                   "model vLLM can load; none: the built-in demo model")
    s.add_argument("--served-model-name", action="append", default=[], help="the model name clients use "
                   "(repeatable; also used to choose the grammar)")
    s.add_argument("--tool-call-parser", help="grammar name or file (default: chosen from the model name)")
    s.add_argument("--reasoning-parser", help="reasoning grammar name or file, or 'none'")
    s.add_argument("--chat-template", help="a Jinja chat template file overriding the model's own")
    s.add_argument("--constrain-auto", action="store_true",
                   help="tool_choice auto: apply the lazy constraint (free text, well-formed calls)")
    s.add_argument("--max-calls", type=int, help="cap on tool calls per constrained response (demo default 3)")
    s.add_argument("--max-reasoning", type=int,
                   help="cap on reasoning characters in a constrained response (demo default 200)")
    s.add_argument("--eos-bias", type=float, help="cpu engine: logit bias on end-of-sequence (demo default 4)")
    s.add_argument("--threads", type=int, help="cpu engine: torch threads")
    s.add_argument("--upstream", action="append", default=[], metavar="URL",
                   help="upstream server base URL (repeatable; requests go to the least loaded)")
    s.add_argument("--upstream-kind", default=D.upstream_kind, choices=["vllm", "llamacpp", "sglang"],
                   help="how constraints are sent upstream (vllm: structured_outputs; also for toolgram)")
    s.add_argument("--upstream-model", help="model name sent upstream (default: the upstream's first model)")
    s.add_argument("--upstream-api-key", help="bearer token for the upstream servers")
    s.add_argument("--tokenizer", help="upstream engine: local tokenizer directory (default: --model)")
    s.add_argument("--connect-timeout", type=float, default=D.connect_timeout,
                   help="upstream connect timeout, s (default %(default)s)")
    s.add_argument("--read-timeout", type=float, default=D.read_timeout,
                   help="upstream: longest wait between two stream reads, s (default %(default)s)")
    s.add_argument("--max-model-len", type=int, help="vllm engine: context length")
    s.add_argument("--vllm-dtype", default=D.vllm_dtype, help="vllm engine: dtype (default %(default)s)")
    s.add_argument("--vllm-args", type=json.loads, default=None, metavar="JSON",
                   help='vllm engine: more AsyncEngineArgs as a JSON object, e.g. \'{"enforce_eager": true}\'')
    s.add_argument("--host", default=D.host, help="address to bind (default %(default)s)")
    s.add_argument("--port", type=int, default=D.port, help="port (default %(default)s)")
    s.add_argument("--api-key", default=os.environ.get("TOOLGRAM_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $TOOLGRAM_API_KEY; none: open)")
    s.add_argument("--max-body-bytes", type=int, default=D.max_body_bytes,
                   help="request body limit (413 above; default %(default)s)")
    s.add_argument("--max-tools", type=int, default=D.max_tools, help="tools per request (400 above; default %(default)s)")
    s.add_argument("--max-schema-depth", type=int, default=D.max_schema_depth,
                   help="JSON nesting of one tool's parameters schema (400 above; default %(default)s)")
    s.add_argument("--max-messages", type=int, default=D.max_messages,
                   help="messages per request (400 above; default %(default)s)")
    s.add_argument("--max-tokens", type=int, default=D.max_tokens,
                   help="the most max_tokens a request may ask (default %(default)s)")
    s.add_argument("--default-max-tokens", type=int, default=D.default_max_tokens,
                   help="max_tokens when a request sets none (default %(default)s)")
    s.add_argument("--max-concurrency", type=int, default=D.max_concurrency,
                   help="generation requests in flight (served or queued); more get 429 (default %(default)s)")
    s.add_argument("--request-timeout", type=float, default=D.request_timeout,
                   help="seconds for one non-streamed request (default %(default)s)")
    s.add_argument("--log-level", default=D.log_level, choices=["debug", "info", "warning", "error"])
    s.add_argument("--try", dest="try_", action="store_true",
                   help="serve on a free local port, send one streamed tools request with the openai client, "
                        "print the answer, and stop (exit status 0 when a schema-valid tool call came back)")
    s.set_defaults(func=cmd_serve)

    v = sub.add_parser("vllm-plugin-path", help="print the path of toolgram's vLLM tool-parser plugin",
                       description="Print the file to pass to vLLM: vllm serve MODEL --enable-auto-tool-choice "
                                   "--tool-parser-plugin $(toolgram vllm-plugin-path) "
                                   "--tool-call-parser toolgram-NAME")
    v.set_defaults(func=cmd_vllm_plugin_path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toolgram", description="Tool-call grammars for LLM serving.")
    sub = p.add_subparsers(dest="command", required=True)
    from toolgram import template_cli
    template_cli.add_commands(sub)       # export, check-template (response templates)

    c = sub.add_parser("compile", help="validate and compile a grammar file; print its summary",
                       description="Validate and compile a grammar file. Problems are reported as file:line.")
    c.add_argument("file", help="a grammar .yaml file (or a bundled name)")
    c.add_argument("--reasoning", help="compose this reasoning grammar (name or file)")
    c.add_argument("--no-reasoning-grammar", action="store_true", help="compose no reasoning grammar")
    c.add_argument("--lark", action="store_true", help="print the composed Lark grammar")
    c.set_defaults(func=cmd_compile)

    q = sub.add_parser("parse", help="parse model output (stdin) and print the result as JSON",
                       description="Parse model output read from stdin (or --input/--example).")
    q.add_argument("name", help="a bundled grammar name or a grammar file")
    q.add_argument("--tools", help="JSON file with the request's tools list")
    q.add_argument("--stream", action="store_true", help="print the streamed deltas, one JSON per line")
    q.add_argument("--chunk", type=int, default=4, help="characters per delta with --stream (default 4)")
    q.add_argument("--input", help="read the output from this file instead of stdin")
    q.add_argument("--example", action="store_true", help="parse the grammar's bundled example")
    q.add_argument("--segments", action="store_true", help="also print the segments")
    q.add_argument("--reasoning", help="compose this reasoning grammar")
    q.add_argument("--no-reasoning-grammar", action="store_true", help="compose no reasoning grammar")
    q.add_argument("--prompt", metavar="FILE",
                   help="the rendered prompt (or its tail): decides whether the output starts inside reasoning")
    q.add_argument("--reasoning-off", action="store_true",
                   help="the request turned reasoning off (output does not start inside reasoning)")
    q.set_defaults(func=cmd_parse)

    cs = sub.add_parser("constraint", help="print the decoding constraint for a request's tools",
                        description="Print the constraint that makes a model call the given tools in this "
                                    "grammar's own syntax.")
    cs.add_argument("name", help="a bundled grammar name or a grammar file")
    cs.add_argument("--tools", required=True, help="JSON file with the request's tools list")
    cs.add_argument("--choice", default="required",
                    help="required | auto | none | the name of one tool (default required)")
    cs.add_argument("--single", action="store_true", help="parallel_tool_calls=false: at most one call")
    cs.add_argument("--syntax", default="lark", choices=["lark", "gbnf", "structural_tag"])
    cs.add_argument("--dialect", default="llguidance", choices=["llguidance", "xgrammar"],
                    help="Lark dialect (xgrammar has no regex intersections)")
    cs.add_argument("--tokenizer", help="a local tokenizer directory: markers that are single tokens become tokens")
    cs.add_argument("--vllm", action="store_true", help="print vLLM's structured_outputs request field")
    cs.add_argument("--check", metavar="OUTPUT_FILE",
                    help="say whether the constraint accepts this output (tokenized by --tokenizer, else byte by "
                         "byte); when rejected, the accepted prefix and the first refused token")
    cs.add_argument("--reasoning", help="compose this reasoning grammar")
    cs.add_argument("--no-reasoning-grammar", action="store_true", help="compose no reasoning grammar")
    cs.add_argument("--reasoning-off", action="store_true", help="the request turned reasoning off")
    cs.add_argument("--prompt", metavar="FILE",
                    help="the rendered prompt (or its tail): decides whether the output starts inside reasoning")
    cs.set_defaults(func=cmd_constraint)

    k = sub.add_parser("check", help="run grammar corpora", description="Run the corpora of the named grammars "
                       "(default: all): one-shot, streamed in chunks, 1-char and whole deltas.")
    k.add_argument("names", nargs="*")
    k.set_defaults(func=cmd_check)

    nw = sub.add_parser("new", help="draft a grammar file from a chat template",
                        description="Render probe conversations through a chat template, infer the call syntax "
                                    "and write a draft grammar plus a corpus of the renderings; then check it "
                                    "and print what could not be inferred.")
    nw.add_argument("--from-template", required=True, metavar="TEMPLATE.jinja", help="the chat template file")
    nw.add_argument("--name", help="grammar name (default: from the file name)")
    nw.add_argument("--out", default=".", help="folder to write NAME.yaml and corpus/NAME.yaml into")
    nw.set_defaults(func=cmd_new)

    li = sub.add_parser("list", help="list bundled grammars and their model globs")
    li.add_argument("--reasoning-grammars", action="store_true", help="list reasoning grammars instead")
    li.add_argument("--aliases", action="store_true",
                    help="list the peers' parser names (Dynamo, vLLM) each grammar answers to")
    li.set_defaults(func=cmd_list)

    _add_serve(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GrammarError as e:
        print(f"toolgram: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
