"""The compiler: grammar files (YAML + Lark) to the plain-data IR (`toolgram.ir`) the runtime executes and the
constraint builder specialises per request.

`registry.load` finds, compiles and caches a grammar; `build.compile_data` is the compilation itself;
`constraint.build_constraint` makes a request's decoding constraint.  Every problem with a grammar file is a
`toolgram.errors.GrammarError`.  May import: toolgram.ir, toolgram.errors, toolgram.request, the encoding
registry (toolgram.runtime.encodings), lark.  Never serve/.
"""
