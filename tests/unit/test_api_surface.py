import pytest

import fanout
from fanout import ConfigError, Result


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in dir(fanout) if not name.startswith("_")}
    modules = {"cli", "executors", "http", "mock", "bench"}
    assert set(fanout.__all__) == public - modules
    for name in fanout.__all__:
        assert getattr(fanout, name) is not None


def test_every_registered_mode_publishes_its_executor_class() -> None:
    from fanout.executors import MODES

    for mode in MODES:
        if mode == "auto":
            continue
        cls = next(getattr(fanout, n) for n in fanout.__all__
                   if n.endswith("Executor") and n != "Executor"
                   and getattr(fanout, n).mode == mode)
        assert issubclass(cls, fanout.Executor)
    with pytest.raises(AttributeError):
        fanout.NoSuchExecutor  # noqa: B018


def test_result_fields_and_unwrap() -> None:
    good = Result(0, "a", value=1, attempts=2, elapsed=0.5)
    assert (good.index, good.item, good.ok, good.value, good.error) == (0, "a", True, 1, None)
    assert good.unwrap() == 1 and good.attempts == 2 and good.elapsed == 0.5
    err = ValueError("boom")
    bad = Result(1, "b", error=err)
    assert not bad.ok
    with pytest.raises(ValueError, match="boom"):
        bad.unwrap()
    assert "ValueError" in repr(bad)


def test_unknown_mode_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError, match=r"mode 'proces' is not known.*did you mean 'process'"):
        fanout.map(abs, [1], mode="proces")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"concurrency": 0}, "concurrency=0"), ({"timeout": -1}, "timeout=-1"),
     ({"rate": "0/s"}, "rate='0/s'"), ({"errors": "ignore"}, "errors='ignore'"),
     ({"retries": -2}, "retries=-2")],
)
def test_bad_arguments_fail_before_anything_runs(kwargs: dict[str, object], needle: str) -> None:
    calls: list[int] = []
    with pytest.raises(ConfigError) as info:
        fanout.map(calls.append, [1, 2], **kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert calls == []


def test_passing_a_coroutine_instead_of_a_function_is_explained() -> None:
    async def f(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match=r"write fanout\.map"):
        fanout.map(f(1), [1])  # type: ignore[arg-type]
