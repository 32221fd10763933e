"""hf:// only: the HF mapping (root commit, hub-side author, lost responses) on the fake server, and
error paths (401/403/404/429/5xx, retry then success, exhaustion) through an injected transport."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, constants, set_client_factory
from huggingface_hub.utils import _http

from fedem.errors import ConflictError, HubError
from fedem.hub import open_hub
from fedem.hub.hfhub import HfHub

from ._util import make_folder, read_folder

A = {"adapter_model.safetensors": b"A" * 2048, "adapter_config.json": b'{"r": 4}'}
B = {"adapter_model.safetensors": b"B" * 2048, "adapter_config.json": b'{"r": 4}'}


# -- the mapping, against the fake server over real HTTP ------------------------------------------
def test_root_commit_is_not_a_revision(make_hf_hub, hf_env, tmp_path):
    hub = make_hf_hub()
    hub.create_repo("ad")
    api = HfApi(endpoint=hf_env.url)
    commits = api.list_repo_commits("fedem-test/ad")
    assert [c.title for c in commits] == ["initial commit"]
    assert hub.revisions("ad") == []
    r1 = hub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None)
    assert r1.parent is None
    commits = api.list_repo_commits("fedem-test/ad")
    assert [c.commit_id for c in commits] == [r1.id, commits[-1].commit_id]
    # The root's .gitattributes stays on the hub but never reaches a download.
    hub.download("ad", None, tmp_path / "d")
    assert read_folder(tmp_path / "d") == A


def test_author_is_the_hubs_identity(make_hf_hub, tmp_path):
    hub = make_hf_hub()
    hub.create_repo("ad")
    rev = hub.publish(
        "ad", make_folder(tmp_path / "a", A), message="title\nbody", parent=None, author="mallory"
    )
    assert rev.author == "alice"  # the token's user, not the claim
    assert rev.message == "title\nbody"  # fedem's trailers are not part of the message


def test_lost_commit_response_returns_own_revision(make_hf_hub, hf_env, tmp_path):
    hub = make_hf_hub()
    hub.create_repo("ad")
    hf_env.hub.lose_commit_responses = 1  # applied, then answered 500: the retry sees 412
    rev = hub.publish("ad", make_folder(tmp_path / "a", A), message="m", parent=None)
    assert [r.id for r in hub.revisions("ad")] == [rev.id]
    hub.publish("ad", make_folder(tmp_path / "b", B), message="m", parent=rev.id)


def test_org_rules_and_init(make_hf_hub, hf_env):
    assert "alice" in make_hf_hub().init()
    with pytest.raises(HubError, match="not a member"):
        make_hf_hub("other-org").init()
    hub = make_hf_hub()
    assert hub.repo_id("x") == "fedem-test/x" == hub.repo_id("fedem-test/x")
    with pytest.raises(HubError, match="not in org"):
        hub.repo_id("elsewhere/x")
    with pytest.raises(HubError, match="no org"):
        make_hf_hub("").list_repos()
    assert isinstance(open_hub("hf://fedem-test"), HfHub)
    assert open_hub("hf://fedem-test").endpoint == hf_env.url  # HF_ENDPOINT


def test_offline_mode_is_one_line(make_hf_hub, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        make_hf_hub().revisions("ad")


def test_bad_token_is_one_line(make_hf_hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "not-a-token")
    with pytest.raises(HubError) as err:
        make_hf_hub().create_repo("ad")
    assert "401" in str(err.value) and "\n" not in str(err.value)


# -- error paths through an injected transport (no sockets) ---------------------------------------
Handler = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture
def transport(hf_env, monkeypatch) -> Iterator[Callable[[Handler], list[httpx2.Request]]]:
    """Route every huggingface_hub request to ``handler`` via ``set_client_factory``."""
    # huggingface_hub's own backoff (listing, preupload) sleeps with time.sleep: skip the waiting.
    monkeypatch.setattr(_http, "time", type("T", (), {"sleep": staticmethod(lambda s: None)}))
    seen: list[httpx2.Request] = []

    def install(handler: Handler) -> list[httpx2.Request]:
        def record(request: httpx2.Request) -> httpx2.Response:
            seen.append(request)
            return handler(request)

        set_client_factory(
            lambda: httpx2.Client(
                transport=httpx2.MockTransport(record),
                event_hooks={"request": [_http.hf_request_event_hook]},
                follow_redirects=True,
            )
        )
        return seen

    yield install
    set_client_factory(_http.default_client_factory)


def status(code: int, **headers: str) -> Handler:
    return lambda request: httpx2.Response(code, json={"error": f"status {code}"}, headers=headers)


def sequence(*responses: httpx2.Response) -> Handler:
    queue = list(responses)
    return lambda request: queue.pop(0) if len(queue) > 1 else queue[0]


WHOAMI = httpx2.Response(200, json={"name": "alice", "orgs": [{"name": "fedem-test"}]})


def test_retry_then_success_with_jittered_backoff(make_hf_hub, transport):
    delays: list[float] = []
    seen = transport(sequence(httpx2.Response(503), httpx2.Response(429), WHOAMI))
    hub = make_hf_hub(sleep=delays.append, rng=lambda: 1.0, base_delay=0.5)
    assert "alice" in hub.init()
    assert len(seen) == 3
    assert delays == [0.5, 1.0]


def test_retry_exhaustion_is_bounded(make_hf_hub, transport):
    delays: list[float] = []
    seen = transport(status(502))
    hub = make_hf_hub(sleep=delays.append, rng=lambda: 0.0, max_attempts=6, base_delay=1.0, max_delay=4.0)
    with pytest.raises(HubError) as err:
        hub.init()
    assert "after 6 attempts" in str(err.value) and "502" in str(err.value) and "\n" not in str(err.value)
    assert len(seen) == 6
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]  # halved by jitter (rng=0), capped at max_delay


def test_connection_errors_are_retried(make_hf_hub, transport):
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    seen = transport(refuse)
    with pytest.raises(HubError, match="unavailable after 3 attempts"):
        make_hf_hub(max_attempts=3).tag("ad", "0" * 40, "t")
    assert len(seen) >= 3


@pytest.mark.parametrize(
    ("code", "headers", "expected"),
    [
        (
            401,
            {"X-Error-Message": "Invalid credentials in Authorization header"},
            "authentication failed (401)",
        ),
        (403, {}, "permission denied (403)"),
        (404, {"X-Error-Code": "RepoNotFound"}, "repo not found"),
        (404, {"X-Error-Code": "RevisionNotFound"}, "revision not found"),
    ],
)
def test_client_errors_are_one_line_and_not_retried(make_hf_hub, transport, code, headers, expected):
    seen = transport(status(code, **headers))
    with pytest.raises(HubError) as err:
        make_hf_hub().revisions("ad")
    text = str(err.value)
    assert expected in text and "fedem-test/ad" in text and "\n" not in text
    assert len(seen) == 1


def test_stale_parent_from_server_is_conflict(make_hf_hub, transport, tmp_path):
    root, head = "r" * 40, "a" * 40
    commits = [
        {
            "id": head.replace("r", "a"),
            "title": "m",
            "message": "",
            "date": "2026-01-01T00:00:00Z",
            "authors": [],
        },
        {
            "id": root.replace("r", "b"),
            "title": "init",
            "message": "",
            "date": "2026-01-01T00:00:00Z",
            "authors": [],
        },
    ]

    def hub_api(request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if "/commits/" in path:
            return httpx2.Response(200, json=commits)
        if "/tree/" in path:
            return httpx2.Response(200, json=[])
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            return httpx2.Response(
                200,
                json={
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]
                },
            )
        if "/commit/" in path:
            return httpx2.Response(412, json={"error": "A commit has happened since"})
        if path.endswith("/refs"):
            return httpx2.Response(200, json={"branches": [], "tags": [], "converts": []})
        return httpx2.Response(404)

    transport(hub_api)
    with pytest.raises(ConflictError, match="stale parent"):
        make_hf_hub().publish("ad", make_folder(tmp_path / "a", A), message="m", parent=commits[0]["id"])


def test_download_error_names_file(make_hf_hub, transport, tmp_path: Path):
    commits = [
        {
            "id": "c" * 40,
            "title": "m",
            "message": "",
            "date": "2026-01-01T00:00:00Z",
            "authors": [{"user": "a"}],
        },
        {"id": "d" * 40, "title": "init", "message": "", "date": "2026-01-01T00:00:00Z", "authors": []},
    ]

    transport(_history_api(commits, 503))
    with pytest.raises(HubError) as err:
        make_hf_hub(max_attempts=2).read_file("ad", "adapter_config.json")
    text = str(err.value)
    assert "adapter_config.json" in text and "c" * 40 in text and "\n" not in text


@pytest.mark.parametrize("bad_id", ["../../../../victim", "c" * 64, "C" * 40, "c" * 39])
def test_commit_ids_that_are_not_40_hex_are_refused(make_hf_hub, transport, tmp_path, bad_id):
    commits = [
        {"id": bad_id, "title": "m", "message": "", "date": "2026-01-01T00:00:00Z", "authors": []},
        {"id": "d" * 40, "title": "init", "message": "", "date": "2026-01-01T00:00:00Z", "authors": []},
    ]

    transport(_history_api(commits, 404))
    hub = make_hf_hub()
    for call in (lambda: hub.revisions("ad"), lambda: hub.download("ad", None, tmp_path / "out")):
        with pytest.raises(HubError) as err:
            call()
        text = str(err.value)
        assert "fedem-test/ad" in text and "not a commit id" in text and "\n" not in text
    assert not (tmp_path / "out").exists()


def test_claimed_author_never_becomes_the_author(make_hf_hub, transport):
    """A commit the hub attributes to nobody has an unknown author, whatever its trailer claims."""
    trailer = "Fedem-Nonce: 0123\nFedem-Claimed-Author: mallory"
    commits = [
        {"id": "a" * 40, "title": "m", "message": trailer, "date": "2026-01-01T00:00:00Z", "authors": []},
        {"id": "d" * 40, "title": "init", "message": "", "date": "2026-01-01T00:00:00Z", "authors": []},
    ]

    transport(_history_api(commits, 404))
    (rev,) = make_hf_hub().revisions("ad")
    assert rev.author == ""
    assert "mallory" not in rev.message and rev.message == "m"


def _history_api(commits: list[dict], other_status: int):
    """A Hub stand-in that serves ``commits`` as main's history, no refs, and ``other_status`` else."""

    def hub_api(request: httpx2.Request) -> httpx2.Response:
        if "/commits/" in request.url.path:
            return httpx2.Response(200, json=commits)
        if request.url.path.endswith("/refs"):
            return httpx2.Response(200, json={"branches": [], "tags": [], "converts": []})
        return httpx2.Response(other_status)

    return hub_api
