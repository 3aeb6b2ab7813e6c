"""The collector settings a running bot uses (`bot.bootstrap.settle_gc`, called by `serve` once it is up)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bot.bootstrap import GC_YOUNG, settle_gc


@pytest.fixture
def restored() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.unfreeze()
    gc.set_threshold(*before)


class Node:
    link: Node | None = None


def test_what_is_loaded_is_frozen_and_garbage_is_still_collected_without_asking(restored: tuple[int, int, int]) -> None:
    settle_gc()
    assert gc.get_freeze_count() > 1_000  # the libraries and modules loaded so far
    assert gc.get_threshold() == (GC_YOUNG, *restored[1:])
    # A reference cycle made afterwards is freed by the collector on its own, once enough is allocated.
    node = Node()
    node.link = node
    gone = weakref.ref(node)
    del node
    assert gone() is not None
    junk = [[] for _ in range(GC_YOUNG * 2)]
    assert gone() is None, "the collector never ran"
    del junk
