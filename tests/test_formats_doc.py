"""docs/formats.md is generated from the grammar files and must be regenerated when they change."""
from toolgram import formats_doc


def test_formats_doc_is_up_to_date():
    assert formats_doc.PAGE.read_text(encoding="utf-8") == formats_doc.render(), \
        "docs/formats.md is stale: run python -m toolgram.formats_doc"
