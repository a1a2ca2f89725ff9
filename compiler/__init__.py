"""The compiler: grammar files (YAML + Lark) to compiled grammars the runtime executes.

`registry.load` finds, compiles and caches a grammar; `build.compile_data` is the compilation itself;
`errors.GrammarError` is what every problem with a grammar file raises.
"""
from toolgram.compiler.errors import GrammarError

__all__ = ["GrammarError"]
