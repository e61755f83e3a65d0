"""What the fn CLI (fnproject/cli 0.6.63) and `docker build` do with this tree, reimplemented for tests.

No fn CLI or Docker engine runs on the project's machines, so the tests that keep `fn deploy --all`
and `fn build` honest use these faithful copies of the rules that matter:

* `walk_func_files(root)`: which func files `fn deploy --all` deploys (cli `common/walker.go`).
* `DockerIgnore`: which files of a function folder reach the image (`.dockerignore`, Docker's rules).
* `GENERATED_DOCKERFILE`: the Dockerfile `fn build` writes for `runtime: python3.11` (cli
  `common/common.go` `writeTmpDockerfileV20180708` + `langs/python.go`), and
  `context_files_needed()`: the build-context files its ADD/COPY lines name.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# cli common/funcfile.go `validFuncfileNames`; IsFuncFile compares the base name only.
FUNC_FILE_NAMES = ("func.yaml", "func.yml", "func.json")


def walk_func_files(root: Path) -> Iterator[Path]:
    """Yield every func file `fn deploy --all` run in `root` would deploy, in the CLI's order.

    cli `WalkFuncsV20180708` is Go's `filepath.Walk(root)` with no skip rule at all:
    - every directory at every depth is entered, hidden ones (`.git`, `.venv`, `.local`) included;
    - entries are visited in lexical (byte) order of their names (`filepath.Walk` sorts `readDirNames`);
    - entries are `os.Lstat`ed, so a symlink to a directory is not entered, while a symlink *named*
      `func.yaml` counts as a func file (IsFuncFile sees a non-directory);
    - a file counts when its base name is one of `FUNC_FILE_NAMES` (`IsFuncFile`), whatever it holds:
      each one is parsed, and one that does not parse aborts the whole deploy;
    - an unreadable directory aborts the walk (the walk func returns the error), so it raises here too.
    """
    for name in sorted(os.listdir(root), key=os.fsencode):
        path = root / name
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            yield from walk_func_files(path)
        elif name in FUNC_FILE_NAMES:
            yield path


# --- .dockerignore ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _translate(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (moby/patternmatcher): Go `filepath.Match` plus `**` for any depth."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` : zero or more whole directories
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise ValueError(f"bad .dockerignore pattern {pattern!r}")
            body = pattern[i + 1:end]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class DockerIgnore:
    """A parsed `.dockerignore`; `excludes(path)` says whether `ADD .`/`COPY .` leave `path` out."""

    patterns: tuple[_Pattern, ...]

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        """Read it as moby's `ignorefile.ReadAll`: `#` comments, trimmed lines, `!` exceptions,
        each pattern `filepath.Clean`ed (so `dir/` becomes `dir`) with a leading `/` dropped."""
        patterns = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            cleaned = os.path.normpath(line).lstrip("/") or "."
            patterns.append(_Pattern(cleaned, exclusion, _translate(cleaned)))
        return cls(tuple(patterns))

    @classmethod
    def of(cls, context: Path) -> DockerIgnore:
        """The `.dockerignore` of a build context (none: nothing excluded)."""
        path = context / ".dockerignore"
        return cls.parse(path.read_text() if path.is_file() else "")

    def excludes(self, relpath: str) -> bool:
        """patternmatcher `MatchesOrParentMatches`: the last pattern matching the path or one of its
        parent directories decides; a pattern without `**` matches from the context root only."""
        parts = relpath.split("/")
        candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        excluded = False
        for pattern in self.patterns:
            if any(pattern.regex.match(candidate) for candidate in candidates):
                excluded = not pattern.exclusion
        return excluded

    def shipped(self, context: Path) -> set[str]:
        """Relative paths of the context's files that `ADD . /function/` copies into the image."""
        found = set()
        for dirpath, _dirs, files in os.walk(context):
            for name in files:
                rel = (Path(dirpath) / name).relative_to(context).as_posix()
                if not self.excludes(rel):
                    found.add(rel)
        return found


# --- the Dockerfile fn build generates -----------------------------------------------------------

GENERATED_DOCKERFILE = """\
FROM fnproject/python:3.11-dev as build-stage
WORKDIR /function
ADD requirements.txt /function/
RUN pip3 install --target /python/ --no-cache --no-cache-dir -r requirements.txt &&\\
\t\t\t    rm -fr ~/.cache/pip /tmp* requirements.txt func.yaml Dockerfile .venv &&\\
\t\t\t    chmod -R o+r /python
ADD . /function/
RUN rm -fr /function/.pip_cache
FROM fnproject/python:3.11
WORKDIR /function
COPY --from=build-stage /python /python
COPY --from=build-stage /function /function
RUN chmod -R o+r /function
ENV PYTHONPATH=/function:/python
ENTRYPOINT ["/python/bin/fdk", "/function/func.py", "handler"]
"""
"""The fn CLI 0.6.63's output, verbatim: `runtime: python3.11` with a requirements.txt, no `.pip_cache/`, no
`setup.py` (either would add lines) and no Dockerfile of the function's own."""

OFFLINE_DOCKERFILE = GENERATED_DOCKERFILE.replace(
    "ADD requirements.txt /function/\nRUN pip3 install --target /python/ --no-cache --no-cache-dir -r",
    "ADD .pip_cache /function/.pip_cache\nADD requirements.txt /function/\n"
    "RUN pip3 install --target /python/ --no-cache --no-cache-dir --no-index --find-links /function/.pip_cache -r",
)
"""The same with a `.pip_cache/` folder (cli `langs/python.go` `DockerfileBuildCmds`: `ADD .pip_cache
/function/.pip_cache` first, and pip gets `--no-index --find-links /function/.pip_cache`): offline, from
the folder's own wheels only. `RUN rm -fr /function/.pip_cache` keeps them out of the final image."""


def generated_dockerfile(fn_dir: Path) -> str:
    """The Dockerfile `fn build` generates for this function folder."""
    return OFFLINE_DOCKERFILE if (fn_dir / ".pip_cache").is_dir() else GENERATED_DOCKERFILE


def context_files_needed(dockerfile: str = GENERATED_DOCKERFILE) -> set[str]:
    """Build-context files named by ADD/COPY (not `--from=` stages, not `.`): each must not be excluded,
    or `docker build` fails with "file not found in build context or excluded by .dockerignore"."""
    needed = set()
    for line in dockerfile.splitlines():
        words = line.split()
        if not words or words[0] not in ("ADD", "COPY") or any(w.startswith("--from=") for w in words):
            continue
        needed.update(src.rstrip("/") for src in words[1:-1] if src not in (".", "./"))
    return needed
