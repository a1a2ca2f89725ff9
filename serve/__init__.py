"""Serving: the OpenAI-compatible server, its engines (embedded CPU, vLLM, upstream), chat templates, and the
built-in demo model."""
