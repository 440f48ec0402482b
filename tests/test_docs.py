"""The README and docs/ keep their promises: every variable the code reads is documented once,
in docs/configuration.md; every doc says what it is for; the README stays a short front door
whose commands, URLs and links all work."""
from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import tokenize
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest
import yaml

from feedsvc import create_app
from feedsvc.operations.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
LOCAL = "http://127.0.0.1:8000"
# Named in deploy/k8s/deployment.yaml's comments only: Kubernetes's own service links, which
# the Deployment turns off (enableServiceLinks: false). feedsvc never reads them.
NOT_OURS = {"FEEDSVC_PORT", "FEEDSVC_SERVICE_HOST"}
VARIABLE = re.compile(r"(?<![A-Za-z0-9_])(FEEDSVC_[A-Z0-9_]*[A-Z0-9]|PROMETHEUS_MULTIPROC_DIR)")
README_SECTIONS = ["Quick start", "Publishing a release", "URLs", "Configuration", "Deploying",
                   "Development", "Links"]


def docs() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def without_comments(path: Path) -> str:
    """Return the file's text without its comments (Python: by token; others: after `#`)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT)
    return "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in text.splitlines())


def variables_read() -> set[str]:
    """Return every FEEDSVC_ variable named outside a comment by the package, wsgi.py, the
    Makefile, deploy/ and bench/ (and PROMETHEUS_MULTIPROC_DIR, which config.py reads)."""
    files = [*(ROOT / "feedsvc").rglob("*.py"), ROOT / "wsgi.py", ROOT / "Makefile",
             *(p for p in (ROOT / "deploy").rglob("*") if p.is_file()),
             *(ROOT / "bench").rglob("*.py")]
    found = {name for path in files for name in VARIABLE.findall(without_comments(path))}
    return found - NOT_OURS


def defined_in(text: str) -> list[str]:
    """Return the variables a Markdown text defines: a table row or a heading that starts
    with the name."""
    return re.findall(r"^(?:\| |#+ )`(FEEDSVC_[A-Z0-9_]+|PROMETHEUS_MULTIPROC_DIR)`", text,
                      flags=re.M)


def defaults(text: str) -> dict[str, str]:
    """Return the default column of each variable's table row."""
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", text, flags=re.M)
    return {name: default.strip() for name, default in rows}


def test_every_variable_the_code_reads_is_documented_once_in_configuration() -> None:
    read = variables_read()
    assert {"FEEDSVC_DATA", "FEEDSVC_BIND", "FEEDSVC_HTTP_PORT", "PROMETHEUS_MULTIPROC_DIR"} <= read
    documented = Counter(defined_in(CONFIGURATION.read_text(encoding="utf-8")))
    assert sorted(read - set(documented)) == [], "read by the code, not in docs/configuration.md"
    assert sorted(set(documented) - read) == [], "documented, but nothing reads it"
    assert [name for name, count in documented.items() if count > 1] == []


def test_no_other_doc_defines_a_variable_and_every_name_is_real() -> None:
    known = variables_read()
    for path in docs():
        text = path.read_text(encoding="utf-8")
        if path != CONFIGURATION:
            assert defined_in(text) == [], f"{path.name} defines variables: link instead"
        assert set(VARIABLE.findall(text)) - known == set(), f"{path.name} names unknown variables"
    readme = README.read_text(encoding="utf-8")
    assert set(VARIABLE.findall(readme)) <= known
    essential = defined_in(readme)
    assert 0 < len(essential) <= 8, "the README names at most 8 variables, the rest are linked"
    full = defaults(CONFIGURATION.read_text(encoding="utf-8"))
    for name, default in defaults(readme).items():
        assert full[name].startswith(default), f"the README and configuration.md differ on {name}"
    assert "(docs/configuration.md)" in readme


def test_every_doc_says_what_it_is_for_in_its_first_line() -> None:
    names = {path.name for path in docs()}
    assert {"feeds.md", "dataset.md", "configuration.md", "operations.md", "embedding.md",
            "deploying.md", "performance.md", "reliability.md", "architecture.md"} <= names
    for path in docs():
        first = path.read_text(encoding="utf-8").splitlines()[0]
        title = re.fullmatch(r"# ([^:]+): (.+)", first)
        assert title, f"{path.name}: first line is `# Topic: what this doc is for`"
        assert len(title.group(2).split()) >= 4, f"{path.name}: say what it is for"


def test_no_issue_numbers_or_history_outside_their_place() -> None:
    for path in [README, *docs()]:
        text = path.read_text(encoding="utf-8")
        assert re.findall(r"\bissues? #?\d+", text, flags=re.I) == [], path.name
        assert "code before" not in text, path.name
        if path.name != "performance.md":
            assert "## Benchmarks" not in text and "## Scaling" not in text


def test_the_readme_is_a_short_front_door_in_order() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 200
    assert "make serve" in "\n".join(lines[:6]) and "make test" in "\n".join(lines[:6])
    assert re.findall(r"^## (.+)$", text, flags=re.M) == README_SECTIONS
    assert len(examples()) == 3


def examples() -> list[str]:
    """Return the example feed URLs of the README's opening."""
    opening = README.read_text(encoding="utf-8").split("## Quick start")[0]
    return re.findall(r"^- `(/feeds/[^`]+)`", opening, flags=re.M)


def shell_lines(text: str) -> Iterator[str]:
    """Yield each command line of the ```sh blocks, continuation lines joined."""
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        yield from (line for line in block.replace("\\\n", " ").splitlines() if line.strip())


def commands(kind: str) -> list[list[str]]:
    """Return the README's shell command lines whose program is `kind`, as argument lists
    (comments dropped; only the part before a pipe)."""
    found = []
    for line in shell_lines(README.read_text(encoding="utf-8")):
        words = shlex.split(line.split(" | ")[0], comments=True)
        if Path(words[0]).name == kind:
            found.append(words)
    return found


def test_every_readme_command_is_a_known_kind() -> None:
    kinds = Counter(Path(shlex.split(line, comments=True)[0]).name
                    for line in shell_lines(README.read_text(encoding="utf-8")))
    assert set(kinds) == {"make", "feedsvc", "curl"}
    assert kinds["make"] >= 5 and kinds["feedsvc"] >= 2 and kinds["curl"] >= 1


def test_every_make_target_of_the_readme_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    used = {word for words in commands("make") for word in words[1:] if "=" not in word}
    assert {"serve", "test", "flake", "bench"} <= used
    assert used - targets == set()


def test_every_feedsvc_line_of_the_readme_parses_with_the_cli() -> None:
    lines = commands("feedsvc")
    assert {words[1] for words in lines} >= {"new", "check-data"}
    for words in lines:
        _parser().parse_args(words[1:])  # an unknown subcommand or flag exits with status 2


def run_feedsvc(words: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedsvc", *words[1:]], cwd=cwd, text=True,
                          capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_publishing_as_the_readme_says_writes_its_example_and_a_reader_sees_it(
        tmp_path: Path, dataset_dir: Path) -> None:
    """Run the README's feedsvc lines in a folder holding a copy of data/, then read the feed."""
    assert dataset_dir == tmp_path / "data"
    new, check = commands("feedsvc")[:2]
    assert (new[1], check[1]) == ("new", "check-data")
    written = run_feedsvc(new, tmp_path)
    assert written.returncode == 0, written.stderr
    path = tmp_path / written.stdout.split(":")[0]
    example = re.search(r"^```yaml\n(.*?)^```", README.read_text(encoding="utf-8"),
                        flags=re.S | re.M)
    assert example
    assert path.name == "pr-2024-001.yaml" and f"`data/releases/{path.name}`" in README.read_text()
    assert yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) == \
        yaml.load(example.group(1), Loader=yaml.BaseLoader)
    checked = run_feedsvc(check, tmp_path)
    assert checked.returncode == 0 and "ok, 11 releases" in checked.stdout, checked.stderr
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": "https://f.example/"})
    feed = feedparser.parse(app.test_client().get("/feeds/countries/kh.atom").data)
    assert feed.entries[0].title == "Decent work for domestic workers"


def test_every_curl_line_of_the_readme_works_against_a_server(
        serve: Callable[..., str]) -> None:
    origin = serve(create_app({"FEEDSVC_BASE_URL": "https://feeds.example.org/"}), "127.0.0.1")
    lines = commands("curl")
    assert len(lines) >= 2
    for words in lines:
        urls = [w for w in words if w.startswith(LOCAL + "/")]
        assert len(urls) == 1, words
        argv = [origin + w.removeprefix(LOCAL) if w in urls else w for w in words]
        done = subprocess.run([*argv, "--fail", "--silent", "--show-error", "-o", os.devnull],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, (words, done.stderr)


def url_table() -> list[str]:
    """Return every path in the first column of the README's URL table."""
    section = README.read_text(encoding="utf-8").split("## URLs\n")[1].split("\n## ")[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `/")]
    return [path for row in rows for path in re.findall(r"`(/[^`]*)`", row)]


def expand(path: str) -> list[str]:
    """Fill a URL pattern with values of the test dataset: every format, one of each name."""
    values = {"code": "th", "slug": "social-security", "id": "pr-2004-001",
              "path": "photos/visit.jpg", "handle": "th"}
    path = re.sub(r"\{(code|slug|id|path|handle)\}", lambda m: values[m.group(1)], path)
    formats = re.search(r"\{([a-z,]+)\}", path)
    if formats is None:
        return [path]
    return [path.replace(formats.group(0), fmt) for fmt in formats.group(1).split(",")]


def test_every_url_of_the_readme_answers(dataset_dir: Path, tmp_path: Path) -> None:
    (dataset_dir / "media" / "photos").mkdir(parents=True)
    (dataset_dir / "media" / "photos" / "visit.jpg").write_bytes(b"\xff\xd8\xff\xe0 not much")
    with (dataset_dir / "releases" / "pr-2004-001.yaml").open("a", encoding="utf-8") as file:
        file.write("image: {src: photos/visit.jpg, alt: The visit}\n")
    client = create_app({"FEEDSVC_DATA": str(dataset_dir),
                         "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state"),
                         "FEEDSVC_BASE_URL": "https://feeds.example.org/"}).test_client()
    paths = [url for pattern in url_table() for url in expand(pattern)] + examples()
    assert len(paths) >= 20 and "/media/photos/visit.jpg" in paths
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path


def heading_anchors(text: str) -> set[str]:
    """Return the anchors GitHub gives the Markdown headings of a text."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M),
                              flags=re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", [README, *docs()], ids=lambda p: p.name)
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        name, _, anchor = target.partition("#")
        linked = (page.parent / name).resolve() if name else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in heading_anchors(linked.read_text(encoding="utf-8")), \
                f"{page.name}: {target}"
