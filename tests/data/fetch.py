"""Test-setup step: fetch the real-world test data from package registries into a cache (run it once; CI does).

    python tests/data/fetch.py            # -> .cache/testdata/ (or $TOOLGRAM_TESTDATA)

What it takes, and only that (provenance is written to PROVENANCE.json beside the files):

* llama-cpp-python's sdist: llama.cpp's real chat templates (``vendor/llama.cpp/models/templates/*.jinja``)
  and its vocab-only GGUF tokenizers (``vendor/llama.cpp/models/ggml-vocab-*.gguf``).  The archive also holds
  llama.cpp's own test suites; they are never extracted.
* mistral-common's wheel: the tekken and SentencePiece tokenizer files (``mistral_common/data/``).
* openai-whisper's sdist: the tiktoken files (``whisper/assets/*.tiktoken``).

Downloads go through pip (the only network use of the project's tests) and are pinned, so the data is the
same on every machine.  Nothing is downloaded at run time by toolgram itself or by a test.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    # name: (pinned version, pip flags, {member regex: folder in the cache})
    "llama-cpp-python": ("0.3.36", ["--no-binary", ":all:"], {
        r"^[^/]+/vendor/llama\.cpp/models/templates/[^/]+\.jinja$": "templates",
        r"^[^/]+/vendor/llama\.cpp/models/ggml-vocab-[^/]+\.gguf$": "vocab/gguf",
    }),
    "mistral-common": ("1.13.1", ["--only-binary", ":all:"], {
        r"^mistral_common/data/(tekken_[^/]+\.json|[^/]*tokenizer[^/]*\.model[^/]*)$": "vocab/mistral",
    }),
    "openai-whisper": ("20250625", ["--no-binary", ":all:"], {
        r"^[^/]+/whisper/assets/[^/]+\.tiktoken$": "vocab/tiktoken",
    }),
}


def cache_dir() -> Path:
    return Path(os.environ.get("TOOLGRAM_TESTDATA") or ROOT / ".cache" / "testdata")


def _members(archive: Path):
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        z = zipfile.ZipFile(archive)
        for name in z.namelist():
            yield name, (lambda n=name: z.read(n))
    else:
        t = tarfile.open(archive)
        for m in t.getmembers():
            if m.isfile():
                yield m.name, (lambda m=m: t.extractfile(m).read())


def fetch(package: str, out: Path) -> list[dict]:
    version, flags, wanted = PACKAGES[package]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *flags,
                        "-d", tmp, f"{package}=={version}"], check=True)
        archive = next(Path(tmp).iterdir())
        got = []
        for name, read in _members(archive):
            for pattern, folder in wanted.items():
                if re.match(pattern, name):
                    dest = out / folder / name.rsplit("/", 1)[1]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(read())
                    got.append({"file": str(dest.relative_to(out)), "package": package, "version": version,
                                "archive": archive.name, "path": name})
        return got


def main() -> int:
    out = cache_dir()
    prov_file = out / "PROVENANCE.json"
    have = json.loads(prov_file.read_text()) if prov_file.exists() else {}
    for package, (version, _, _) in PACKAGES.items():
        if have.get(package, {}).get("version") == version:
            print(f"{package} {version}: cached", file=sys.stderr)
            continue
        files = fetch(package, out)
        have[package] = {"version": version, "files": files}
        print(f"{package} {version}: {len(files)} files", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        prov_file.write_text(json.dumps(have, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
