"""Every command of README.md (and docs/*.md) runs as written — on tiny inputs and random weights — or fails in
the documented way, so the README cannot rot. The rules per class of command, the fixtures and the allowlist are
in tests/readme_commands.py (its docstring); one failure message lists every failing command with its line.

Set BGM_README_KEEP=1 to keep the scratch folders (their path is printed) for a look at a failing command.
"""
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

import readme_commands as rc

TIMES = {}


@pytest.fixture(scope="module")
def outcomes():
    base = Path(tempfile.mkdtemp(prefix="readme_commands_"))
    started = time.monotonic()
    try:
        results, runner = rc.run_all(base)
        TIMES["total"] = time.monotonic() - started
        TIMES["fixtures"] = runner.fixtures.log
        yield results
    finally:
        if os.environ.get("BGM_README_KEEP"):
            print(f"\nscratch folders kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def test_extraction_joins_continuations_env_and_comments(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("text\n```bash\n# a comment\nA=1 B='x y' \\\n    python predict.py --src a.png \\\n"
                   "    --bgr b.png   # trailing\n\n./run.sh demo\n```\n```python\nprint('no')\n```\n"
                   "```console\n$ bgmatting convert …\noutput line\n```\n")
    commands = rc.extract(doc)
    assert [(c.line, c.env, c.argv) for c in commands] == [
        (4, {"A": "1", "B": "x y"}, ["python", "predict.py", "--src", "a.png", "--bgr", "b.png"]),
        (8, {}, ["./run.sh", "demo"]),
        (14, {}, ["bgmatting", "convert", "…"]),
    ]
    assert [rc.classify(c) for c in commands] == ["run", "run", "help"]


def test_elisions_take_the_previous_full_command_of_the_same_tool(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("```bash\npython predict.py --model-checkpoint m.pth --src a.png --output-dir out\n"
                   "python predict.py ... --src clip.mp4 --output-dir out2\n"
                   "python predict.py --model-checkpoint m.pth --src … --bgr …\n```\n")
    commands = rc.extract(doc)
    expanded = rc.expand(commands)
    assert expanded[id(commands[1])] == ["python", "predict.py", "--model-checkpoint", "m.pth",
                                         "--src", "clip.mp4", "--output-dir", "out2"]
    assert expanded[id(commands[2])][-4:] == ["--src", rc.FILL["--src"], "--bgr", rc.FILL["--bgr"]]


def test_documents_are_scanned():
    docs = rc.documents()
    assert rc.ROOT / "README.md" in docs
    assert all(d.suffix == ".md" for d in docs)
    assert rc.all_commands(), "no shell commands found in README.md"


def test_allowlist_entries_still_occur_in_the_documents():
    texts = {rc.normalise(" ".join(c.argv)) for c in rc.all_commands()}
    stale = [entry for entry in rc.ALLOWLIST if entry not in texts]
    assert not stale, f"allowlist entries no longer in README.md/docs: {stale} — remove them from ALLOWLIST"
    assert all(reason.strip() for reason in rc.ALLOWLIST.values())


def test_every_command_has_a_rule():
    unknown = [f"{c.where}: {c.text}" for c in rc.all_commands() if rc.classify(c) == "unknown"]
    assert not unknown, "commands no rule covers (add one in tests/readme_commands.py):\n" + "\n".join(unknown)


def test_every_readme_command_runs(outcomes):
    failed = [o for o in outcomes if not o.ok]
    summary = "\n".join(f"{o.command.where} {o.kind:<16} {o.seconds:5.1f} s  {'ok  ' if o.ok else 'FAIL'} "
                        f"{o.command.text[:90]}\n        {o.reason[:300]}" for o in outcomes)
    print(f"\n{summary}\ntotal {TIMES.get('total', 0):.0f} s; fixtures: {TIMES.get('fixtures')}")
    assert not failed, (f"{len(failed)} of {len(outcomes)} documented commands fail:\n"
                        + "\n".join(o.line() for o in failed))


def test_the_harness_catches_broken_commands(tmp_path):
    """Broken commands of each class fail, each reported with its document line."""
    doc = tmp_path / "README.md"
    doc.write_text("```bash\n"
                   "python eval.py --pred-dir p --gt-dir g\n"                                  # 2: runs
                   "python eval.py --pred-dir p --gt-dir g --no-such-flag\n"                   # 3: usage error
                   "VIDEOMATTE240K=/data/x ./run.sh stage1 --opts train.no_such_key=1\n"       # 4: not the dataset
                   "python tools/benchmark.py --no-such-flag\n"                                # 5: not in --help
                   "frobnicate --x\n"                                                          # 6: no rule
                   "curl http://127.0.0.1:8000/api/no-such-endpoint\n"                         # 7: 404
                   "curl http://127.0.0.1:8000/healthz\n"                                      # 8: answers
                   "```\n")
    results, _ = rc.run_all(tmp_path / "scratch", rc.extract(doc))
    verdict = {o.command.line: o.ok for o in results}
    assert verdict == {2: True, 3: False, 4: False, 5: False, 6: False, 7: False, 8: True}, \
        "\n".join(f"{o.line()} ok={o.ok}" for o in results)
    assert all(o.line().startswith(f"{doc}:{o.command.line}: ") for o in results)
