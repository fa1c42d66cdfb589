"""Repository selection against a local fake of the GitHub search API."""
from __future__ import annotations

import csv
import io
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from miners.select import GitHubClient, SelectConfig, SelectError, select_repositories
from repopeftbench.cli import main


def repo(name: str, stars: int, created: str, fork: bool = False, lic: str = "MIT") -> dict:
    return {"full_name": name, "clone_url": f"https://example.invalid/{name}.git",
            "stargazers_count": stars, "created_at": created, "pushed_at": "2025-01-01T00:00:00Z",
            "fork": fork, "license": {"spdx_id": lic}}


ID_REPOS = [repo(f"id/r{i}", 300 + i, "2020-01-01T00:00:00Z") for i in range(150)]
ID_REPOS.append(repo("id/fork", 5000, "2020-01-01T00:00:00Z", fork=True))
OOD_REPOS = [repo("new/a", 5, "2025-06-01T00:00:00Z"), repo("new/b", 50, "2025-07-01T00:00:00Z", lic="Apache-2.0")]
NO_TESTS = {"id/r3", "new/a"}


class FakeGitHub(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server API)
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        FakeGitHub.seen.append({"path": url.path, "q": q, "auth": self.headers.get("Authorization")})
        if url.path == "/search/repositories":
            query = q["q"][0]
            pool = OOD_REPOS if "created:>=" in query else ID_REPOS
            if "license:apache-2.0" in query:
                pool = [r for r in pool if r["license"]["spdx_id"] == "Apache-2.0"]
            elif "license:mit" in query:
                pool = [r for r in pool if r["license"]["spdx_id"] == "MIT"]
            page, per = int(q["page"][0]), int(q["per_page"][0])
            return self._send(200, {"total_count": len(pool), "items": pool[(page - 1) * per:page * per]})
        if url.path.startswith("/repos/") and url.path.endswith("/contents/"):
            name = url.path[len("/repos/"):-len("/contents/")]
            listing = [{"name": "README.md"}] + ([] if name in NO_TESTS else [{"name": "tests"}])
            return self._send(200, listing)
        return self._send(404, {"message": "Not Found"})


@pytest.fixture()
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeGitHub.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_select_paginates_filters_and_marks_ood(api):
    client = GitHubClient(api_url=api, token="secret")
    rows = select_repositories(client, SelectConfig())
    ids = [r["repo_id"] for r in rows]
    assert "id/fork" not in ids and "id/r3" not in ids and "new/a" not in ids
    assert len([r for r in rows if r["split"] == ""]) == 149  # 150 minus the one without tests
    assert [r["repo_id"] for r in rows if r["split"] == "ood"] == ["new/b"]
    assert ids[:149] == sorted(ids[:149])
    pages = [s["q"]["page"][0] for s in FakeGitHub.seen if s["path"] == "/search/repositories"]
    assert "2" in pages  # the second page of 100 was fetched
    assert all(s["auth"] == "Bearer secret" for s in FakeGitHub.seen)
    first_query = next(s["q"]["q"][0] for s in FakeGitHub.seen if s["path"] == "/search/repositories")
    assert "license:mit" in first_query and "fork:false" in first_query and "stars:>=300" in first_query


def test_select_cli_writes_a_list_build_reads(api, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_TOKEN", "tok")
    out = tmp_path / "repos.csv"
    assert main(["select", "--out", str(out), "--api-url", api, "--max-repos", "5",
                 "--no-progress"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 6 and rows[-1] == {
        "repo_id": "new/b", "url": "https://example.invalid/new/b.git", "license": "Apache-2.0",
        "stars": "50", "created_at": "2025-07-01T00:00:00Z", "pushed_at": "2025-01-01T00:00:00Z",
        "split": "ood"}
    from miners.repolist import read_repo_list
    good, bad = read_repo_list(out)
    assert len(good) == 6 and not bad and good[-1].split == "ood"
    assert "5 in-distribution and 1 ood" in capsys.readouterr().out


def test_select_reports_http_errors_clearly(api):
    client = GitHubClient(api_url=api + "/nothing-here", token="")
    with pytest.raises(SelectError, match="HTTP 404"):
        select_repositories(client, SelectConfig(check_tests=False))
