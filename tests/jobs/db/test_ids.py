"""Run and message ids drawn in bulk must be as good as uuid.uuid4()'s."""

from __future__ import annotations

import itertools
import uuid

from jobs.ids import random_uuid_strings, random_uuids


def test_bulk_uuids_are_random_version_4_and_distinct() -> None:
    ids = list(itertools.islice(random_uuids(), 5000))  # several reads of the random source
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)
    # Every bit that is not fixed by the version and variant varies.
    varying = 0
    for i in ids:
        varying |= i.int ^ ids[0].int
    assert bin(varying).count("1") == 122


def test_bulk_uuid_strings_parse_as_the_same_kind_of_uuid() -> None:
    texts = list(itertools.islice(random_uuid_strings(), 5000))
    parsed = [uuid.UUID(t) for t in texts]
    assert [str(p) for p in parsed] == texts
    assert all(p.version == 4 and p.variant == uuid.RFC_4122 for p in parsed)
    assert len(set(texts)) == len(texts)


def test_two_streams_do_not_repeat_each_other() -> None:
    first = set(itertools.islice(random_uuids(), 300))
    second = set(itertools.islice(random_uuids(), 300))
    assert not first & second
