#!/usr/bin/env python3
"""Run the guide's flow against a deployed stack (or the local API) and check every answer.

    python3 scripts/smoke.py "$API_URL" --api-key "$KEY"      # AuthMode=API_KEY
    python3 scripts/smoke.py "$API_URL" --auth iam             # AuthMode=IAM
    python3 scripts/smoke.py http://127.0.0.1:8000 --no-sign   # `make run`

Admin calls (create, start, analyze, summary, list, get, stop, archive) are signed with
SigV4 (service execute-api) from the caller's AWS credentials, as boto3 finds them
(environment, profile, SSO, instance role). Data calls (get-variant, record-result(s)) carry
the API key, or are signed too with --auth iam. --no-sign sends admin calls unsigned (the
local API), with --admin-key as their x-api-key if the local API asks for one.

Each run creates its own experiment ("smoke <time>"), takes it through its lifecycle and
archives it. Needs botocore (it comes with boto3) unless --no-sign. Exit code 0 when every
step answered as the guide says, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Any

PREFIX = "/api/v1/experiments"
TIMEOUT = 30


class Failed(Exception):
    pass


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.url = args.url.rstrip("/")
        self.api_key: str | None = args.api_key
        self.admin_key: str | None = args.admin_key
        self.sign_data = args.auth == "iam"
        self.sign_admin = not args.no_sign
        self.region = args.region or region_of(self.url)
        self.credentials: Any = None
        if self.sign_admin or self.sign_data:
            import botocore.session

            self.credentials = botocore.session.Session().get_credentials()
            if self.credentials is None:
                raise Failed("no AWS credentials found to sign admin calls (or use --no-sign)")

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        key = None if self.sign_admin else self.admin_key
        return self.send(method, path, body, sign=self.sign_admin, key=key)

    def data(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.send(method, path, body, sign=self.sign_data, key=self.api_key)

    def send(
        self, method: str, path: str, body: Any, *, sign: bool, key: str | None
    ) -> tuple[int, Any]:
        url = self.url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if key:
            headers["x-api-key"] = key
        if sign:
            headers = self.signed(method, url, data, headers)
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text or b"null")
            except json.JSONDecodeError:
                return error.code, text.decode(errors="replace")

    def signed(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(
            request
        )
        return dict(request.headers.items())


def region_of(url: str) -> str:
    found = re.search(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com", url)
    return found.group(1) if found else "us-east-1"


def expect(step: str, answer: tuple[int, Any], status: int) -> Any:
    code, body = answer
    if code != status:
        raise Failed(f"{step}: expected {status}, got {code}: {body}")
    print(f"ok   {step} ({code})")
    return body


def experiment_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Smoke test of a deployed stack",
        "experiment_type": "prompt",
        "primary_metric": "resolution_rate",
        "secondary_metrics": ["satisfaction_score", "response_time"],
        "variants": [
            {"name": "Control", "is_control": True, "traffic_allocation": 50.0,
             "config": {"system_prompt": "You are an AI assistant...", "include_examples": False}},
            {"name": "Treatment", "is_control": False, "traffic_allocation": 50.0,
             "config": {"system_prompt": "You are an AI assistant...", "include_examples": True}},
        ],
        "target_percentage": 100.0,
        "min_sample_size": 10,
        "confidence_level": 0.95,
    }  # fmt: skip


def run(client: Client, users: int) -> None:
    name = f"smoke {time.strftime('%Y%m%dT%H%M%S')} {time.time_ns() % 10**6}"
    created = expect("create", client.admin("POST", f"{PREFIX}/", experiment_body(name)), 201)
    eid = created["id"]
    expect("start", client.admin("POST", f"{PREFIX}/{eid}/start"), 200)
    expect("start again is refused", client.admin("POST", f"{PREFIX}/{eid}/start"), 409)
    seen = set()
    for user in range(users):
        body = {"experiment_name": name, "user_id": user}
        answer = expect(f"get-variant user {user}", client.data("POST", f"{PREFIX}/get-variant",
                                                                body), 200)  # fmt: skip
        seen.add(answer["variant"]["name"])
        result = {**body, "metric_name": "resolution_rate", "metric_value": float(user % 2),
                  "idempotency_key": f"smoke-{user}"}  # fmt: skip
        expect(f"record-result user {user}",
               client.data("POST", f"{PREFIX}/record-result", result), 201)  # fmt: skip
    again = client.data("POST", f"{PREFIX}/record-result", result)
    if expect("the same idempotency key again", again, 200).get("duplicate") is not True:
        raise Failed(f"a repeated idempotency key was not reported as a duplicate: {again}")
    satisfaction = {"experiment_name": name, "metric_name": "satisfaction_score", "metric_value": 4}
    batch = {"results": [{**satisfaction, "user_id": u} for u in range(users)]}
    answer = expect("record-results", client.data("POST", f"{PREFIX}/record-results", batch), 200)
    if answer["recorded"] != users:
        raise Failed(f"record-results recorded {answer['recorded']} of {users}: {answer}")
    analysis = expect("analyze", client.admin("GET", f"{PREFIX}/{eid}/analyze"), 200)
    for field in ("variant_stats", "p_value", "is_significant", "recommended_winner_id"):
        if field not in analysis:
            raise Failed(f"analyze: no {field} in {sorted(analysis)}")
    expect("summary", client.admin("GET", f"{PREFIX}/{eid}/summary"), 200)
    listed = expect("list", client.admin("GET", f"{PREFIX}/?status=running"), 200)
    if name not in json.dumps(listed):
        raise Failed("list: the running experiment is missing")
    expect("get", client.admin("GET", f"{PREFIX}/{eid}"), 200)
    expect("stop", client.admin("POST", f"{PREFIX}/{eid}/stop?declare_winner=true"), 200)
    expect("archive", client.admin("POST", f"{PREFIX}/{eid}/archive"), 200)
    print(f"smoke passed: experiment {eid}, variants served {sorted(seen)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the stack's ApiUrl output, or http://127.0.0.1:8000")
    parser.add_argument("--auth", choices=("api-key", "iam"), default="api-key",
                        help="how data calls authenticate (the stack's AuthMode)")  # fmt: skip
    parser.add_argument("--api-key", help="x-api-key for data calls (AuthMode=API_KEY)")
    parser.add_argument("--no-sign", action="store_true",
                        help="send admin calls unsigned (the local API)")  # fmt: skip
    parser.add_argument("--admin-key", help="x-api-key for admin calls with --no-sign")
    parser.add_argument("--region", help="SigV4 region (default: from the URL)")
    parser.add_argument("--users", type=int, default=6)
    args = parser.parse_args(argv)
    try:
        run(Client(args), args.users)
    except Failed as failure:
        print(f"FAIL {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
