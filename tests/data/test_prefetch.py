"""src/data/prefetch.py: ordered background map."""
import pytest

from src.data.prefetch import Prefetcher


def test_prefetcher_keeps_order_and_raises_at_the_failing_item():
    with Prefetcher(lambda x: x * x, range(20), workers=2, depth=3) as items:
        assert list(items) == [x * x for x in range(20)]

    def fail_at_5(x):
        if x == 5:
            raise ValueError("item 5")
        return x
    seen = []
    with pytest.raises(ValueError, match="item 5"):
        with Prefetcher(fail_at_5, range(20), workers=2) as items:
            for x in items:
                seen.append(x)
    assert seen == [0, 1, 2, 3, 4]
