"""Engines behind one small interface (`base.Engine`): the embedded CPU engine, vLLM in-process, and upstream
OpenAI-compatible servers."""
