"""plugins/module_utils/batch.py: one failing item, every item failing, repeated names."""

import pytest
from ansible_collections.webhosting.pods.plugins.module_utils.batch import (
    Batch,
    BatchError,
    run_batch,
    summary,
)


class ItemError(Exception):
    pass


def converge(item):
    if item.get("bad"):
        raise ItemError(f"{item['name']} is bad")
    return {"changed": item.get("change", False), "value": item["name"].upper()}


def test_one_failing_item_is_reported_by_name_and_the_others_go_on():
    items = [{"name": "a", "change": True}, {"name": "b", "bad": True}, {"name": "c"}]
    batch = run_batch(items, converge, ItemError, "groups")
    assert batch.results == {
        "a": {"changed": True, "value": "A"},
        "b": {"changed": False, "failed": True, "msg": "b is bad"},
        "c": {"changed": False, "value": "C"},
    }
    assert list(batch.results) == ["a", "b", "c"]  # the items' order
    assert batch.failures == {"b": "b is bad"}
    assert batch.changed is True and batch.all_failed is False


def test_every_item_failing():
    items = [{"name": "b", "bad": True}, {"name": "a", "bad": True}]
    batch = run_batch(items, converge, ItemError, "users")
    assert batch.all_failed is True and batch.changed is False
    assert list(batch.failures) == ["b", "a"]
    assert summary("every group failed: ", batch.failures) == (
        "every group failed: b: b is bad; a: a is bad"
    )


@pytest.mark.parametrize(
    "items, changed",
    [([], False), ([{"name": "a"}], False), ([{"name": "a", "change": True}], True)],
)
def test_nothing_failed(items, changed):
    batch = run_batch(items, converge, ItemError, "renders")
    assert batch.failures == {} and batch.all_failed is False and batch.changed is changed


def test_repeated_names_stop_the_batch_before_any_item_runs():
    ran = []

    def one(item):
        ran.append(item["name"])
        return {}

    items = [{"name": n} for n in ("b", "a", "b", "c", "a")]
    with pytest.raises(BatchError, match=r"^renders: duplicate names: a, b$"):
        run_batch(items, one, ItemError, "renders")
    assert ran == []


def test_failure_shapes_the_entry_and_several_error_types_are_caught():
    def one(item):
        if item["name"] == "io":
            raise OSError("disk full")
        return converge(item)

    def failure(item, exc):
        return {"changed": False, "dest": f"/x/{item['name']}", "msg": f"{type(exc).__name__}"}

    items = [{"name": "io"}, {"name": "bad", "bad": True}, {"name": "ok"}]
    batch = run_batch(items, one, (ItemError, OSError), "renders", failure)
    assert batch.results["io"] == {"changed": False, "dest": "/x/io", "msg": "OSError"}
    assert batch.failures == {"io": "OSError", "bad": "ItemError"}
    assert batch.results["ok"] == {"changed": False, "value": "OK"}


def test_other_errors_go_through():
    def one(item):
        raise KeyError("not an item error")

    with pytest.raises(KeyError):
        run_batch([{"name": "a"}], one, ItemError, "groups")


def test_batch_is_a_plain_tuple():
    assert Batch({}, {}).all_failed is False
