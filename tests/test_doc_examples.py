"""Every curl example in README.md and docs/api.md runs as written (issue 14, point 10).

The examples are taken from the ```bash blocks of both files (continuation lines joined), their
placeholders filled in ($TOKEN: a client token, $ADMIN_TOKEN, $INGEST_TOKEN, $PLAN_ID: the demo
release plan), the base URL http://127.0.0.1:8000 pointed at a gunicorn started here on the
demo data, and each is run with the real `curl` in the order the documents give them: each must
answer 2xx. A doc example that lacks a Content-Type header, sends a timestamp outside retention
or leaves something out (`...`) fails here."""

import io
import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from phases.models import RolloutPlan
from rollout_control.dashboard.demo import RELEASE
from tests.processes import ROOT, child_env, free_port, gunicorn, running, wait_http

DOCS = [ROOT / "README.md", ROOT / "docs" / "api.md"]
BASE = "http://127.0.0.1:8000"
_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def curl_examples(path: Path) -> list[str]:
    """The curl commands of a Markdown file's bash blocks, one string each."""
    commands = []
    for block in _BLOCK.findall(path.read_text()):
        joined = re.sub(r"\\\n", " ", block)
        commands += [
            line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")
        ]
    return commands


def test_curl_examples__found_in_both_files() -> None:
    found = {path.name: curl_examples(path) for path in DOCS}
    assert len(found["README.md"]) >= 2 and len(found["api.md"]) >= 10, found
    for command in itertools.chain(*found.values()):
        assert "..." not in command and "…" not in command, f"not runnable as written: {command}"
        assert "127.0.0.1:8000" in command, f"no base URL to point at the server: {command}"


def _tokens(output: str) -> dict[str, str]:
    found = dict(re.findall(r"(client|ingest|admin) API token:\s+(\S+)", output))
    return {
        "TOKEN": found["client"],
        "INGEST_TOKEN": found["ingest"],
        "ADMIN_TOKEN": found["admin"],
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_curl_examples__run_against_a_live_server_on_the_demo__each_2xx(tmp_path: Path) -> None:
    assert shutil.which("curl"), "curl is needed"
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    placeholders = _tokens(out.getvalue()) | {
        "PLAN_ID": str(RolloutPlan.objects.get(name=RELEASE).pk)
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    body = tmp_path / "body"
    failures = []
    with running(gunicorn(port), env=child_env(), log=tmp_path / "gunicorn.log") as server:
        wait_http(f"{base}/healthz", 60, server)
        for path in DOCS:
            for command in curl_examples(path):
                # Status and body captured; placed first so a trailing `# comment` stays one.
                runnable = command.replace(BASE, base).replace(
                    "curl ", f"curl -sS -o {body} -w '%{{http_code}}' ", 1
                )
                result = subprocess.run(
                    ["bash", "-c", runnable],
                    env=os.environ | placeholders,
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                status = result.stdout.strip()[-3:]
                if not status.startswith("2"):
                    answer = body.read_text()[:300] if body.exists() else result.stderr
                    failures.append(f"{path.name}: {command}\n  -> {status} {answer}")
    assert not failures, "\n".join(failures)
