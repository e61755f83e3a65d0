"""The embedded object store behaves like S3 where fn-vision depends on it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from fnvision_common.s3client import S3Settings, is_precondition_failed, make_client

pytestmark = pytest.mark.integration


def test_conditional_put_refuses_second_write(s3, new_bucket):
    bucket = new_bucket("cond")
    s3.put_object(Bucket=bucket, Key="a.json", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="a.json", Body=b"second", IfNoneMatch="*")
    assert is_precondition_failed(info.value)
    assert s3.get_object(Bucket=bucket, Key="a.json")["Body"].read() == b"first"


def test_wrong_secret_is_rejected(seaweed):
    env = dict(seaweed.env(), S3_SECRET_ACCESS_KEY="wrong", S3_MAX_ATTEMPTS="1")
    client = make_client(S3Settings.from_env(env))
    with pytest.raises(ClientError) as info:
        client.list_buckets()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_non_empty_bucket_is_not_deleted(s3, new_bucket):
    bucket = new_bucket("keep")
    s3.put_object(Bucket=bucket, Key="x", Body=b"1")
    with pytest.raises(ClientError):
        s3.delete_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="x")["Body"].read() == b"1"


def test_put_into_a_missing_bucket_fails_instead_of_creating_it(s3):
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket="no-such-bucket-here", Key="x", Body=b"1")
    assert info.value.response["Error"]["Code"] == "NoSuchBucket"


def test_many_buckets_each_accept_writes(s3, new_bucket):
    # Each bucket is a SeaweedFS collection with volumes of its own; the test session creates one per
    # test, so the server must have slots for far more than the ~70 buckets a session makes today.
    buckets = [new_bucket("many") for _ in range(150)]
    for bucket in buckets:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert all(s3.get_object(Bucket=b, Key="k")["Body"].read() == b"v" for b in buckets)
