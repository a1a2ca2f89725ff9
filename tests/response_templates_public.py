"""The public response templates toolgram is tested against, read from the installed packages that ship them:
transformers' serving fallbacks (``transformers/cli/serving/utils.py``) and TRL's
(``trl/chat_template_utils.py``).  Keys read ``source:name``."""
from __future__ import annotations

import copy


def transformers_templates() -> dict:
    from transformers.cli.serving import utils
    out = {}
    for types, template in utils._RESPONSE_TEMPLATE_FALLBACKS.items():
        out[f"transformers:{types[0]}"] = copy.deepcopy(template)
    return out


def trl_templates() -> dict:
    try:
        from trl import chat_template_utils as c
    except ImportError:          # the dev extra installs trl; without it only transformers' templates run
        return {}
    return {f"trl:{k[:-len('_template')]}": copy.deepcopy(getattr(c, k)) for k in sorted(dir(c))
            if k.endswith("_template") and isinstance(getattr(c, k), dict) and "fields" in getattr(c, k)}


def public_templates() -> dict:
    return {**transformers_templates(), **trl_templates()}
