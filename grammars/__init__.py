"""Bundled grammar files (package data): <name>.yaml tool-call grammars, reasoning/<name>.yaml reasoning
grammars, corpus/<name>.yaml example corpora."""
