"""The runtime: incremental parsing of model output with compiled grammars (`parser.StreamingParser`),
the encoding blocks that scan argument syntaxes (`encodings`), schema typing of text values, and the result
and delta types."""
