"""Compiles the flag evaluator, flags/_evaluation.py, with Cython; the rest is pyproject.toml.

The source is copied to build/cython/ with the SHA-256 of its text appended as SOURCE_SHA256,
so flags/evaluation.py can tell a build made from the current source from an old one. The
extension is optional: without a C compiler, or with ROLLOUT_COMPILE=0, nothing is compiled and
the source is used as it is. Annotations are not used as C types (annotation_typing off): the
compiled module keeps Python's semantics exactly.
"""

import hashlib
import os
import sys
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "flags" / "_evaluation.py"
STAMPED = ROOT / "build" / "cython" / "flags" / "_evaluation_compiled.py"
GENERATED_C = ROOT / "build" / "cython-c" / "build" / "cython" / "flags" / "_evaluation_compiled.c"


def stamped_copy() -> Path:
    text = SOURCE.read_text(encoding="utf-8")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    stamped = f'{text}\n\nSOURCE_SHA256 = "{digest}"\n'
    STAMPED.parent.mkdir(parents=True, exist_ok=True)
    # Rewritten only when it changes: an unchanged source is not compiled again.
    if not STAMPED.exists() or STAMPED.read_text(encoding="utf-8") != stamped:
        STAMPED.write_text(stamped, encoding="utf-8")
    return STAMPED


def in_tree_build_is_current() -> bool:
    """An editable install already holds a build of the current source.

    setuptools compiles editable extensions in a fresh temporary directory every time (ten
    seconds here); the generated C carries the stamp, and a library newer than it was built
    from it.
    """
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    if not GENERATED_C.exists() or digest not in GENERATED_C.read_text(encoding="utf-8"):
        return False
    built = GENERATED_C.stat().st_mtime
    return any(so.stat().st_mtime > built for so in SOURCE.parent.glob("_evaluation_compiled*.so"))


def extensions() -> list[Extension]:
    if os.environ.get("ROLLOUT_COMPILE", "1") == "0":
        return []
    if "editable_wheel" in sys.argv and in_tree_build_is_current():
        return []
    from Cython.Build import cythonize

    extension = Extension(
        "flags._evaluation_compiled",
        [str(stamped_copy().relative_to(ROOT))],
        optional=True,
    )
    return cythonize(
        [extension],
        build_dir="build/cython-c",
        compiler_directives={"language_level": 3, "annotation_typing": False},
        quiet=True,
    )


setup(ext_modules=extensions())
