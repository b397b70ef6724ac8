"""SigV4 signing for an API deployed with AuthMode=IAM (needs the ``sigv4`` extra: botocore).

from ab_testing_client.sigv4 import sigv4_signer
client = ABTestingClient(url, signer=sigv4_signer(url, region="eu-west-1"))
"""

from __future__ import annotations

from typing import Any

from ab_testing_client.transport import Signer


def sigv4_signer(base_url: str, region: str, credentials: Any = None) -> Signer:
    """A signer for execute-api; credentials default to botocore's usual chain."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.session import Session
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("SigV4 signing needs: pip install 'ab-testing-client[sigv4]'") from exc
    found = credentials or Session().get_credentials()
    if found is None:
        raise ValueError("no AWS credentials found for SigV4 signing")
    auth = SigV4Auth(found, "execute-api", region)
    base = base_url.rstrip("/")

    def sign(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        request = AWSRequest(method=method, url=base + path, data=body or b"", headers=headers)
        auth.add_auth(request)
        return dict(request.headers.items())

    return sign
