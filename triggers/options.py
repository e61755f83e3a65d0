"""Options shared by the trigger command lines, read from the same environment names as the functions.

| option | env | default |
|---|---|---|
| `--bucket` | `INPUT_BUCKET` | `images` |
| `--invoke-url` | `VISION_PREPROCESS_URL` | — (preprocess's invoke endpoint or HTTP trigger) |
| `--auth-token` | `AUTH_TOKEN` | — (sent as `Authorization: Bearer ...`; preprocess checks the same key) |
| `--results-bucket` / `--results-prefix` | `RESULTS_BUCKET` / `RESULTS_PREFIX` | `results` / empty |

Storage comes from the `S3_*` variables (docs/contracts.md §7), exactly as in the functions.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

INPUT_BUCKET = "INPUT_BUCKET"
RESULTS_BUCKET = "RESULTS_BUCKET"
RESULTS_PREFIX = "RESULTS_PREFIX"
AUTH_TOKEN = "AUTH_TOKEN"
PREPROCESS_URL = "VISION_PREPROCESS_URL"


def add_common_options(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Add --bucket, --invoke-url, --auth-token, --results-bucket and --results-prefix."""
    parser.add_argument("--bucket", default=env.get(INPUT_BUCKET, "images"), help=f"env {INPUT_BUCKET}")
    parser.add_argument("--invoke-url", default=env.get(PREPROCESS_URL),
                        help=f"preprocess invoke endpoint or HTTP trigger (env {PREPROCESS_URL})")
    parser.add_argument("--auth-token", default=env.get(AUTH_TOKEN),
                        help=f"sent as 'Authorization: Bearer ...' to a trigger that checks it (env {AUTH_TOKEN})")
    parser.add_argument("--results-bucket", default=env.get(RESULTS_BUCKET, "results"), help=f"env {RESULTS_BUCKET}")
    parser.add_argument("--results-prefix", default=env.get(RESULTS_PREFIX, ""), help=f"env {RESULTS_PREFIX}")


def auth_headers(args: argparse.Namespace) -> dict[str, str]:
    """The Authorization header for `--auth-token`, if one was given."""
    return {"Authorization": f"Bearer {args.auth_token}"} if args.auth_token else {}


def s3_client(env: Mapping[str, str]) -> Any:
    """A boto3 S3 client from the S3_* environment."""
    from fnvision_common.s3client import S3Settings, make_client

    return make_client(S3Settings.from_env(env))
