"""The documentation's examples work as written."""
import re
from pathlib import Path

import toolgram

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_tutorial_grammar(tmp_path):
    text = (DOCS / "grammar-format.md").read_text(encoding="utf-8")
    yaml_src = re.search(r"Write `acme.yaml`:\n\n```yaml\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "acme.yaml"
    path.write_text(yaml_src, encoding="utf-8")
    g = toolgram.load(str(path))
    out = ('Sure, checking.<function_call>get_weather\n{"city": "Paris"}</function_call>'
           '<function_call>get_time\n{"tz": "CET"}</function_call>')
    r = g.parse(out)
    assert r.content == "Sure, checking."
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("get_weather", '{"city": "Paris"}'),
                                                             ("get_time", '{"tz": "CET"}')]


ROOT = DOCS.parent


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(block) == 2, "the README opens with exactly two commands"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in block:
        assert command in ci


def test_every_linked_image_and_document_exists():
    """Relative links in README.md and docs/*.md point at files that are in the repository."""
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        text = re.sub(r"```.*?```|`[^`\n]*`", "", page.read_text(encoding="utf-8"), flags=re.S)   # code is not links
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"
