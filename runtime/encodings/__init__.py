"""Argument encodings: generic value syntaxes a grammar names for a terminal with ``block: <name>``.

`registry` holds them; each is one module with its options, first characters, streaming scanner and
constraint side (see `registry.Encoding`).  The bundled ones register when this package is imported:

============  =====================================================================================
json          arguments as a JSON object (optionally a JSON string holding one); as a value: any JSON
json_call     a whole call as one JSON object: name, arguments and id keys configurable
literal       a Python (or relaxed, JS-like) literal converted to JSON: pythonic calls, Gemma values
text          argument values as raw text typed by the tool's schema (text runs, not a block)
xml_tree      an argument value as nested tags (text, or elements: keys an object, an item tag an array)
============  =====================================================================================

A new encoding is a module that calls `registry.register`; nothing else needs editing.
"""
from toolgram.runtime.encodings import json_args, json_call, literal, text_value, xml_tree  # noqa: F401  (they register)
from toolgram.runtime.encodings.registry import ConstraintContext, Encoding, get, names, register

__all__ = ["ConstraintContext", "Encoding", "get", "names", "register"]
