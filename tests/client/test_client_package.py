"""The package stands alone: standard library only, no server layer, optional SigV4."""

from __future__ import annotations

import subprocess
import sys

from botocore.credentials import Credentials

from ab_testing_client.sigv4 import sigv4_signer


def test_importing_the_client_loads_no_scientific_aws_or_server_package() -> None:
    code = (
        "import sys, ab_testing_client; "
        "print(sorted(m for m in ('scipy', 'numpy', 'boto3', 'botocore', 'ab_testing', "
        "'pydantic') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == "[]"


def test_the_sigv4_signer_adds_an_execute_api_signature() -> None:
    sign = sigv4_signer(
        "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
        region="eu-west-1",
        credentials=Credentials("AKIDEXAMPLE", "secret"),
    )
    headers = sign("POST", "/api/v1/experiments/get-variant", b"{}", {"Content-Type": "x"})
    assert "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" in headers["Authorization"]
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert "X-Amz-Date" in headers
