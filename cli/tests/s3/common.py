"""Shared helpers of the `objseal serve` client tests (see ../serve_s3.rs)."""

import base64
import hashlib
import os
import subprocess
import sys

import boto3
import botocore
from botocore.config import Config

ENDPOINT = os.environ["S3_ENDPOINT"]
CHECKS = [0]


def client(access=None, secret=None, verify=None, **cfg):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        verify=verify,
        aws_access_key_id=access or os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=secret or os.environ["S3_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            signature_version="s3v4",
            **cfg,
        ),
    )


def check(cond, what):
    CHECKS[0] += 1
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def eq(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def expect_error(fn, code, status, what):
    """Runs fn(); asserts it fails with S3 error `code` and HTTP `status`."""
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        got_code = e.response.get("Error", {}).get("Code")
        got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        check(
            (got_code, got_status) == (code, status),
            f"{what}: got {got_code} {got_status}, want {code} {status}",
        )
        return e
    check(False, f"{what}: succeeded, want {code} {status}")


def md5_hex(b):
    return hashlib.md5(b).hexdigest()


def sse_c_key(seed):
    """A 32-byte customer key and the boto3 arguments for it."""
    key = hashlib.sha256(seed.encode()).digest()
    return key, {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def objseal(*args):
    return subprocess.run(
        [os.environ["OBJSEAL_BIN"], *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def done(name):
    print(f"{name}: {CHECKS[0]} checks passed")
