"""A loopback fake of the Hugging Face Hub HTTP API, for tests and benchmarks.

THIS IS A TEST DOUBLE OF A SMALL SUBSET OF THE HUB API, NOT A HUB. It exists so that the real
``huggingface_hub.HfApi`` can be exercised over real HTTP with no network: point ``HF_ENDPOINT``
(or ``HfApi(endpoint=...)``) at :attr:`FakeHubServer.url`.

What it serves (model repos only, all state in memory, one lock around every mutation):

- ``POST /api/validate-yaml`` (accepts any README metadata), ``GET /api/whoami-v2``; tokens are ``hf_<user>`` (any user, member of every org) unless a
  ``tokens`` mapping is given; a missing or unknown token is a 401 on writes and on whoami;
- ``POST /api/repos/create`` (makes the "initial commit" holding ``.gitattributes``, like the Hub);
- ``GET /api/models?author=ORG``, ``GET /api/models/{repo}[/revision/{rev}]`` (id, sha, siblings);
- ``POST .../preupload/{rev}``: always ``uploadMode: regular`` so files travel inline (no LFS),
  with the remote git oid of unchanged files so the client's no-op detection works;
- ``POST .../commit/{rev}``: the NDJSON body (header, file, deletedFile, deletedFolder); a
  ``parentCommit`` that is not the branch head is refused with 412, as the Hub does;
- ``GET .../commits/{rev}`` (newest first), ``GET .../refs``, ``POST .../tag/{rev}`` (409 if taken);
- ``GET .../tree/{rev}`` (always recursive, files only, with sizes, one page) and
  ``POST .../paths-info/{rev}`` (files and folders among the asked paths, with sizes);
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``;
- faults: ``lose_commit_responses = N`` applies the next N commits but answers 500;
  ``tag_exist_ok = True`` answers the creation of an existing tag with 200 and leaves it.

What it does not do: LFS or Xet uploads, pagination, branches other than ``main``, pull
requests, private/gated repos, datasets or spaces, rate limits, or any permission model beyond
"a valid token may write". Error responses carry the ``X-Error-Code`` headers (RepoNotFound,
RevisionNotFound, EntryNotFound) that ``huggingface_hub`` uses to pick its exception types.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from huggingface_hub import constants

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    """Git's object id for a blob: what the Hub reports as a regular file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclasses.dataclass(frozen=True)
class Commit:
    id: str
    parent: str | None
    tree: dict[str, bytes]
    title: str
    message: str
    author: str
    date: datetime


@dataclasses.dataclass
class _Repo:
    commits: dict[str, Commit] = dataclasses.field(default_factory=dict)
    branches: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class FakeHub:
    """The in-memory state and the FastAPI app that serves it."""

    def __init__(
        self,
        *,
        orgs: tuple[str, ...] = ("fedem-test",),
        tokens: dict[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.orgs = tuple(orgs)  # every valid user is a member of each of these
        self.tokens = tokens
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.repos: dict[str, _Repo] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, path): lets tests count round trips
        # Fault injection: apply the next N commits but answer 500, as when a response is lost.
        self.lose_commit_responses = 0
        # Fault injection: answer the creation of an existing tag with 200 and leave it where it
        # was, which is all a client sees when `create_tag(exist_ok=True)` swallows the 409.
        self.tag_exist_ok = False
        self.app = self._build_app()

    def reset(self) -> None:
        """Forget every repo, request and fault (a fixture calls this between tests)."""
        with self.lock:
            self.repos.clear()
            self.requests.clear()
            self.lose_commit_responses = 0
            self.tag_exist_ok = False

    # -- state helpers ---------------------------------------------------------------------------
    def user_for(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if self.tokens is not None:
            return self.tokens.get(token)
        return token[3:] if token.startswith("hf_") and len(token) > 3 else None

    def _commit(
        self, repo: _Repo, parent: str | None, tree: dict[str, bytes], title: str, msg: str, who: str
    ):
        date = self.clock()
        seed = json.dumps([parent, sorted((p, git_blob_oid(b)) for p, b in tree.items()), title, msg, who])
        cid = hashlib.sha1(f"{seed}{date.isoformat()}{len(repo.commits)}".encode()).hexdigest()
        repo.commits[cid] = Commit(cid, parent, dict(tree), title, msg, who, date)
        repo.branches["main"] = cid
        return repo.commits[cid]

    def _resolve(self, repo: _Repo, rev: str) -> Commit | None:
        cid = repo.branches.get(rev) or repo.tags.get(rev) or rev
        return repo.commits.get(cid)

    def _lookup(self, repo_id: str, rev: str | None = None) -> tuple[_Repo, Commit | None] | JSONResponse:
        repo = self.repos.get(repo_id)
        if repo is None:
            return _error(404, f"Repository {repo_id} not found", "RepoNotFound")
        if rev is None:
            return repo, None
        commit = self._resolve(repo, rev)
        if commit is None:
            return _error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo, commit

    # -- the app ---------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:  # noqa: C901 - one flat table of routes reads best
        app = FastAPI()
        hub = self

        @app.middleware("http")
        async def record(request: Request, call_next):
            hub.requests.append((request.method, request.url.path))
            return await call_next(request)

        @app.get("/api/agent-harnesses")
        def harnesses():
            return {"harnesses": {}, "standardEnvVars": []}

        @app.post("/api/validate-yaml")
        def validate_yaml():  # README.md metadata: the fake accepts any
            return {"errors": [], "warnings": []}

        @app.get("/api/whoami-v2")
        def whoami(request: Request):
            user = hub.user_for(request)
            if user is None:
                return _error(401, "Invalid credentials in Authorization header")
            return {"type": "user", "name": user, "orgs": [{"name": o} for o in hub.orgs], "auth": {}}

        @app.post("/api/repos/create")
        async def create_repo(request: Request):
            user = hub.user_for(request)
            if user is None:
                return _error(401, "Invalid credentials in Authorization header")
            body = await request.json()
            owner = body.get("organization") or user
            if owner != user and owner not in hub.orgs:
                return _error(403, f"You don't have the rights to create a model under the namespace {owner}")
            repo_id = f"{owner}/{body['name']}"
            with hub.lock:
                if repo_id in hub.repos:
                    return _error(409, "You already created this model repo")
                repo = hub.repos[repo_id] = _Repo()
                hub._commit(repo, None, {".gitattributes": GITATTRIBUTES}, "initial commit", "", user)
            return {"url": f"{str(request.base_url).rstrip('/')}/{repo_id}", "name": repo_id}

        @app.get("/api/models")
        def list_models(author: str | None = None):
            with hub.lock:
                ids = sorted(r for r in hub.repos if author is None or r.split("/")[0] == author)
            return [{"id": r, "modelId": r, "private": False} for r in ids]

        @app.get("/api/models/{org}/{name}")
        @app.get("/api/models/{org}/{name}/revision/{rev}")
        def repo_info(org: str, name: str, rev: str = "main"):
            with hub.lock:
                found = hub._lookup(f"{org}/{name}", rev)
            if isinstance(found, JSONResponse):
                return found
            commit = found[1]
            siblings = [{"rfilename": p} for p in sorted(commit.tree)]
            return {"id": f"{org}/{name}", "sha": commit.id, "private": False, "siblings": siblings}

        @app.post("/api/models/{org}/{name}/preupload/{rev}")
        async def preupload(org: str, name: str, rev: str, request: Request):
            body = await request.json()
            with hub.lock:
                found = hub._lookup(f"{org}/{name}", rev)
            if isinstance(found, JSONResponse):
                return found
            tree = found[1].tree
            files = [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_oid(tree[f["path"]]) if f["path"] in tree else None,
                }
                for f in body["files"]
            ]
            return {"files": files}

        @app.post("/api/models/{org}/{name}/commit/{rev}")
        async def commit(org: str, name: str, rev: str, request: Request):
            user = hub.user_for(request)
            if user is None:
                return _error(401, "Invalid credentials in Authorization header")
            lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
            header = next((x["value"] for x in lines if x["key"] == "header"), None)
            if header is None:
                return _error(400, "missing header line")
            repo_id = f"{org}/{name}"
            with hub.lock:
                found = hub._lookup(repo_id, rev)
                if isinstance(found, JSONResponse):
                    return found
                repo, head = found
                if header.get("parentCommit") not in (None, head.id):
                    return _error(412, "A commit has happened since. Please refresh and try again.")
                tree = dict(head.tree)
                for item in lines:
                    key, value = item["key"], item["value"]
                    if key == "file":
                        tree[value["path"]] = base64.b64decode(value["content"])
                    elif key == "deletedFile":
                        if tree.pop(value["path"], None) is None:
                            return _error(404, "A file with this name doesn't exist", "EntryNotFound")
                    elif key == "deletedFolder":
                        prefix = value["path"].rstrip("/") + "/"
                        tree = {p: b for p, b in tree.items() if not p.startswith(prefix)}
                    elif key != "header":
                        return _error(400, f"fake hub does not support {key!r} operations")
                new = hub._commit(repo, head.id, tree, header["summary"], header.get("description", ""), user)
                if hub.lose_commit_responses > 0:
                    hub.lose_commit_responses -= 1
                    return _error(500, "Internal Error (injected after the commit was applied)")
            url = f"{str(request.base_url).rstrip('/')}/{repo_id}/commit/{new.id}"
            return {"commitUrl": url, "commitOid": new.id, "pullRequestUrl": None}

        @app.get("/api/models/{org}/{name}/commits/{rev}")
        def commits(org: str, name: str, rev: str):
            with hub.lock:
                found = hub._lookup(f"{org}/{name}", rev)
                if isinstance(found, JSONResponse):
                    return found
                repo, commit, out = found[0], found[1], []
                while commit is not None:
                    out.append(
                        {
                            "id": commit.id,
                            "title": commit.title,
                            "message": commit.message,
                            "date": commit.date.isoformat().replace("+00:00", "Z"),
                            "authors": [{"user": commit.author}],
                        }
                    )
                    commit = repo.commits.get(commit.parent) if commit.parent else None
            return out

        @app.get("/api/models/{org}/{name}/refs")
        def refs(org: str, name: str):
            with hub.lock:
                found = hub._lookup(f"{org}/{name}")
                if isinstance(found, JSONResponse):
                    return found
                repo = found[0]

                def ref(kind: str, n: str, target: str) -> dict:
                    return {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": target}

                return {
                    "branches": [ref("heads", n, t) for n, t in repo.branches.items()],
                    "tags": [ref("tags", n, t) for n, t in repo.tags.items()],
                    "converts": [],
                }

        @app.post("/api/models/{org}/{name}/tag/{rev}")
        async def tag(org: str, name: str, rev: str, request: Request):
            if hub.user_for(request) is None:
                return _error(401, "Invalid credentials in Authorization header")
            body = await request.json()
            with hub.lock:
                found = hub._lookup(f"{org}/{name}", rev)
                if isinstance(found, JSONResponse):
                    return found
                repo, commit = found
                if body["tag"] in repo.tags:
                    if hub.tag_exist_ok:  # answer as if create_tag(exist_ok=True): success, old target
                        return {}
                    return _error(409, f"Tag {body['tag']} already exists")
                repo.tags[body["tag"]] = commit.id
            return {}

        @app.get("/api/models/{org}/{name}/tree/{rev}")
        def tree(org: str, name: str, rev: str):
            with hub.lock:
                found = hub._lookup(f"{org}/{name}", rev)
            if isinstance(found, JSONResponse):
                return found
            return [
                {"type": "file", "path": p, "size": len(b), "oid": git_blob_oid(b)}
                for p, b in sorted(found[1].tree.items())
            ]

        @app.post("/api/models/{org}/{name}/paths-info/{rev}")
        async def paths_info(org: str, name: str, rev: str, request: Request):
            # A form body (paths=a&paths=b&expand=...); paths that do not exist are left out.
            paths = parse_qs((await request.body()).decode()).get("paths", [])
            with hub.lock:
                found = hub._lookup(f"{org}/{name}", rev)
            if isinstance(found, JSONResponse):
                return found
            tree, out = found[1].tree, []
            for p in paths:
                if p in tree:
                    out.append(
                        {"type": "file", "path": p, "size": len(tree[p]), "oid": git_blob_oid(tree[p])}
                    )
                elif any(f.startswith(p.rstrip("/") + "/") for f in tree):
                    out.append({"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest()})
            return out

        @app.api_route("/{org}/{name}/resolve/{rev}/{path:path}", methods=["GET", "HEAD"])
        def resolve(org: str, name: str, rev: str, path: str, request: Request):
            with hub.lock:
                found = hub._lookup(f"{org}/{name}", rev)
            if isinstance(found, JSONResponse):
                return found
            commit = found[1]
            if path not in commit.tree:
                return _error(404, "Entry not found", "EntryNotFound")
            data = commit.tree[path]
            headers = {"X-Repo-Commit": commit.id, "ETag": f'"{git_blob_oid(data)}"'}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(data))
                return Response(status_code=200, headers=headers)
            return Response(content=data, media_type="application/octet-stream", headers=headers)

        return app


class FakeHubServer:
    """Runs a :class:`FakeHub` with uvicorn on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, hub: FakeHub | None = None) -> None:
        self.hub = hub or FakeHub()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.hub.app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fakehub", daemon=True)

    def start(self) -> FakeHubServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake hub server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeHubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def hf_client_env(endpoint: str, home: str | os.PathLike, token: str = "hf_alice") -> Iterator[None]:
    """Point ``huggingface_hub`` at ``endpoint`` with its cache, token file and state under ``home``.

    Sets ``HF_HOME``/``HF_TOKEN``/``HF_ENDPOINT`` and the constants ``huggingface_hub`` reads at
    import time (offline flag, cache, token path), then restores everything on exit. It also
    seeds the agent-harness registry cache, which ``huggingface_hub`` would otherwise fetch from
    huggingface.co when it builds request headers.
    """
    home = os.fspath(home)
    os.makedirs(home, exist_ok=True)
    harnesses = os.path.join(home, ".agent_harnesses.json")
    with open(harnesses, "w") as f:
        json.dump({"harnesses": {}, "standardEnvVars": []}, f)
    env = {"HF_HOME": home, "HF_TOKEN": token, "HF_ENDPOINT": endpoint}
    consts = {
        "HF_HUB_OFFLINE": False,
        "HF_HUB_CACHE": os.path.join(home, "hub"),
        "HF_TOKEN_PATH": os.path.join(home, "token"),
        "AGENT_HARNESSES_PATH": harnesses,
    }
    old_env = {k: os.environ.get(k) for k in env}
    old_consts = {k: getattr(constants, k) for k in consts}
    os.environ.update(env)
    for k, v in consts.items():
        setattr(constants, k, v)
    try:
        yield
    finally:
        for k, v in old_consts.items():
            setattr(constants, k, v)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
