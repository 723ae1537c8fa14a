"""Dask mode: each batch of calls runs as one task on a Dask cluster (``distributed``).

Where the cluster comes from, in this order:

1. ``DaskExecutor(client)`` — a ``distributed.Client`` the caller made (synchronous,
   or asynchronous on the loop ``amap`` runs on), or ``DaskExecutor("tcp://host:8786")``
   — a scheduler address (a cluster object such as ``LocalCluster`` works too);
2. the ``DASK_SCHEDULER_ADDRESS`` environment variable (or Dask's
   ``scheduler-address`` setting), Dask's own convention;
3. an embedded ``LocalCluster``: worker processes on this machine, one per core
   with one thread each, on loopback only, started on first use and closed at exit.

Clients fanout makes itself (2, 3, and addresses) are shared by every executor
of the process and closed at exit. Every policy stays in the orchestrator: a
task is submitted with Dask's ``retries=0``, so attempts and backoff are fanout's.

How the pieces meet: a ``Client`` lives on an event loop (its own thread for a
synchronous client). Each batch is one coroutine run *on the client's loop*,
where Dask futures can be awaited; when the orchestrator runs on another loop
(the sync API's private loop, or ``amap`` with a synchronous client), the
coroutine is handed over with ``asyncio.run_coroutine_threadsafe`` and its
outcome comes back through ``asyncio.wrap_future`` — cancelling that await
cancels the coroutine, which cancels the Dask future.

Stops: cancelling a task that waits on the cluster means it never runs, but
Dask cannot interrupt a Python function already running in a worker thread (no
Python thread can be stopped): it runs on to its end, its result discarded, and
fanout cannot tell when it ends, so ``stopped()`` returns None and the call's
slot is freed at once (the worker's thread stays busy until the function returns).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar, cast

from fanout._errors import (
    ConfigError,
    FanoutError,
    NotPicklableError,
    WorkerCrashed,
)
from fanout.executors._base import Executor
from fanout.executors._calls import (
    Outcome,
    SyncRunner,
    concat,
    fail_unsendable,
    failed,
    short_repr,
    where,
)
from fanout.executors._worker import _portable

# Without the extra this module still imports, so that ``fanout.DaskExecutor`` exists
# (``from fanout import *`` takes every registered executor class); using it is the
# one-line error the registry gives for a missing backend (see DaskExecutor.__init__).
try:
    import cloudpickle
    import dask
    import dask.sizeof
    import distributed
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError
    from tornado.platform.asyncio import BaseAsyncIOLoop
except ImportError as _exc:
    _MISSING = f"it needs Dask's distributed scheduler ({_exc}): pip install 'fanout[dask]'"
else:
    _MISSING = ""

_T = TypeVar("_T")

#: an item (or a batch) estimated larger than this is scattered to the cluster once
#: and passed to its task by reference, instead of travelling inside the task
SCATTER_BYTES = 1 << 20
#: seconds the client's event loop gets to answer before a run gives up on it
LOOP_ANSWER_SECONDS = 5.0
#: scattered items kept for retries at most (oldest dropped first)
_SCATTER_CACHE = 64


# ----------------------------------------------------------- the worker side
_loaded: collections.OrderedDict[str, Callable[..., Any]] = collections.OrderedDict()
_loaded_lock = threading.Lock()


def _function(token: str, fn_bytes: bytes, where: str) -> Callable[..., Any]:
    """The run's function, unpickled once per worker process (and run)."""
    with _loaded_lock:
        fn = _loaded.get(token)
    if fn is not None:
        return fn
    try:
        fn = cast(Callable[..., Any], cloudpickle.loads(fn_bytes))
    except Exception as exc:
        raise ConfigError(
            f"a Dask worker could not load {where} ({type(exc).__name__}: {exc}): "
            "its module (and fanout) must be importable on the workers"
        ) from None
    with _loaded_lock:
        _loaded[token] = fn
        while len(_loaded) > 8:
            _loaded.popitem(last=False)
    return fn


def run_batch(token: str, fn_bytes: bytes, where: str, items: list[Any]) -> Outcome:
    """A Dask task: run the function on each item; the outcome as in every mode."""
    runner = SyncRunner(_function(token, fn_bytes, where))
    try:
        values, elapsed, errors = runner.run_batch(items)
    finally:
        runner.close()
    if errors:
        errors = {i: _portable(exc) for i, exc in errors.items()}
    return _sendable(values, elapsed, errors)


def _sendable(
    values: list[Any], elapsed: Sequence[float], errors: dict[int, BaseException] | None
) -> Outcome:
    """The outcome with each return value that cannot be pickled back recorded as a
    failure (Dask would drop the worker's connection trying to send it)."""
    try:
        cloudpickle.dumps(values, buffer_callback=_no_copy)  # large buffers: not copied
        return values, elapsed, errors
    except Exception:
        pass
    return values, elapsed, fail_unsendable(
        values, errors, lambda v: cloudpickle.dumps(v, buffer_callback=_no_copy),
        "the Dask worker")


def _no_copy(buffer: Any) -> None:
    """A pickle ``buffer_callback`` that keeps large buffers out of band (uncopied)."""


# ----------------------------------------------------------- the clusters
_shared_lock = threading.Lock()
_shared: dict[str, distributed.Client] = {}  # address ("" for the embedded cluster)
_embedded: list[distributed.LocalCluster] = []
_atexit_registered = False


def configured_address() -> str | None:
    """The scheduler address from ``DASK_SCHEDULER_ADDRESS`` or Dask's settings."""
    address = os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get(
        "scheduler-address", None
    )
    return str(address) if address else None


def shared_client(address: str | None) -> distributed.Client:
    """The process-wide client for ``address`` (None: the embedded cluster),
    connected or started on first use and closed at exit."""
    global _atexit_registered
    key = address or ""
    with _shared_lock:
        client = _shared.get(key)
        if client is not None and client.status == "running":
            return client
        if not _atexit_registered:
            atexit.register(close_shared)
            _atexit_registered = True
        client = _connect(address) if address else _start_embedded()
        _shared[key] = client
        return client


def _connect(address: str) -> distributed.Client:
    try:
        return distributed.Client(address, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise FanoutError(
            f"cannot connect to the Dask scheduler at {address} ({type(exc).__name__}: "
            f"{exc}): check the address and that the scheduler is running"
        ) from None


def _start_embedded() -> distributed.Client:
    # allowed-failures 0: a task lost with a dead worker fails at once
    # (KilledWorker), and fanout's retry policy alone decides what happens next.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=os.cpu_count() or 2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # the scheduler serves HTTP (health, metrics, the dashboard when bokeh is
            # installed) in any case: on loopback, on a free port (client.dashboard_link)
            dashboard_address="127.0.0.1:0",
        )
    _embedded.append(cluster)
    return distributed.Client(cluster, set_as_default=False)


def close_shared() -> None:
    """Close the clients fanout made and the embedded cluster (run at exit)."""
    with _shared_lock:
        clients = list(_shared.values())
        _shared.clear()
        clusters = list(_embedded)
        _embedded.clear()
    for client in clients:
        client.close()
    for cluster in clusters:
        cluster.close()


# ----------------------------------------------------------- the executor
class DaskExecutor(Executor):
    """Each batch of calls runs as one task on a Dask cluster.

    ``cluster``: a ``distributed.Client``, a scheduler address such as
    ``"tcp://10.0.0.5:8786"``, or a cluster object (``LocalCluster``,
    ``KubeCluster``, ``SLURMCluster``...); None: ``DASK_SCHEDULER_ADDRESS``,
    else an embedded ``LocalCluster`` on this machine.

    A worker that dies fails only the items it held (``fanout.WorkerCrashed``
    naming the worker), or they are retried as ``retries=`` says. A call past its
    deadline is cancelled on the cluster; if it had started, Dask cannot stop it:
    it runs on in its worker thread, its result discarded, and its fanout slot is
    freed at once (see the module docstring).
    """

    mode = "dask"
    stops = "abandon"
    # A Dask task costs about a millisecond of scheduler time, and a round trip of
    # 20 ms or more (the client sends every 10 ms, the scheduler every 2-5 ms): short
    # calls travel in batches of about 100 ms, the task size Dask's guide recommends.
    batch_target = 0.1
    max_batch = 8192
    calls_run_here = False

    def __init__(self, cluster: distributed.Client | str | Any = None) -> None:
        if _MISSING:
            raise ConfigError(f"mode 'dask' is not available: {_MISSING}")
        self._given: distributed.Client | None = None
        self._address: str | None = None
        if isinstance(cluster, distributed.Client):
            self._given = cluster
        elif isinstance(cluster, str):
            if not cluster.strip():
                raise ConfigError(
                    "DaskExecutor needs a scheduler address such as 'tcp://host:8786' "
                    f"(got {cluster!r})"
                )
            self._address = cluster.strip()
        elif cluster is not None:
            address = getattr(cluster, "scheduler_address", None)
            if not isinstance(address, str):
                raise ConfigError(
                    "DaskExecutor takes a distributed.Client, a scheduler address such as "
                    f"'tcp://host:8786', or a Dask cluster object (got {cluster!r})"
                )
            self._address = address
        self._client: distributed.Client | None = None
        self._client_lock = threading.Lock()
        self._token = ""
        self._fn_bytes = b""
        #: a large function (a closure over big data) is scattered once per run
        self._fn_scattered: asyncio.Future[list[distributed.Future[Any]]] | None = None
        self._where = ""
        #: the client's loop answered this run (see _check_loop)
        self._answering = False
        # run state, touched only on the client's loop
        self._live: set[distributed.Future[Any]] = set()
        self._scattered: collections.OrderedDict[
            int, tuple[Any, distributed.Future[Any]]
        ] = collections.OrderedDict()

    def default_concurrency(self) -> int:
        """Twice the cluster's worker threads: one task running and one waiting on
        each thread, so no thread idles between tasks. Known for a synchronous
        ``Client`` given to it; otherwise twice this machine's cores (the embedded
        cluster's size): on another cluster, pass ``concurrency=`` about twice its
        worker threads.
        """
        client = self._given
        if client is not None and not client.asynchronous:
            with contextlib.suppress(Exception):  # the cluster did not answer: the default
                threads: int = sum(client.nthreads().values())
                if threads:
                    return 2 * threads
        return 2 * (os.cpu_count() or 2)

    def __repr__(self) -> str:
        if self._given is not None:
            return f"DaskExecutor({self._given!r})"
        return f"DaskExecutor({self._address!r})" if self._address else "DaskExecutor()"

    # ------------------------------------------------------------ set-up
    def prepare(self, fn: Callable[..., Any], concurrency: int, timeout: float | None) -> None:
        self._where = where(fn)
        try:
            self._fn_bytes = cloudpickle.dumps(fn)
        except Exception as exc:
            raise NotPicklableError(
                f"dask mode needs a function cloudpickle can send to the workers, but "
                f"{self._where} is not ({type(exc).__name__}: {exc}): "
                "define it at module level, or use mode='thread'"
            ) from None
        self._token = uuid.uuid4().hex
        self._fn_scattered = None
        self._answering = False
        given = self._given
        if given is not None and given.status not in ("running", "connecting"):
            raise ConfigError(
                f"the Dask client {given!r} is {given.status}: pass a connected client "
                "(an asynchronous one must be awaited first)"
            )

    def check_item(self, item: Any) -> None:
        """Raise NotPicklableError before anything runs if ``item`` can't go to a worker."""
        try:
            cloudpickle.dumps(item)
        except Exception as exc:
            raise NotPicklableError(
                f"dask mode needs items cloudpickle can send to the workers, but the "
                f"first item {short_repr(item)} is not ({type(exc).__name__}: {exc}): "
                "pass plain data, or use mode='thread'"
            ) from None

    def _get_client(self) -> distributed.Client:
        """The client, connecting (or starting the embedded cluster) on first use."""
        if self._given is not None:
            return self._given
        with self._client_lock:
            client = self._client
            if client is None or client.status != "running":
                client = self._client = shared_client(self._address or configured_address())
            return client

    async def _client_now(self) -> distributed.Client:
        client = self._given or self._client
        if client is None or client.status != "running":
            # connecting or starting a cluster blocks: not on the orchestrator's loop
            client = await asyncio.to_thread(self._get_client)
        if not self._answering:
            await self._check_loop(client)
            self._answering = True
        return client

    async def _check_loop(self, client: distributed.Client) -> None:
        """Fail clearly, rather than hang, when the client's event loop is not being
        run: an asynchronous client whose loop is blocked in ``fanout.map``."""
        client_loop = _loop_of(client).asyncio_loop
        if client_loop is asyncio.get_running_loop():
            return
        answer = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), client_loop)
        try:
            await asyncio.wait_for(asyncio.wrap_future(answer), LOOP_ANSWER_SECONDS)
        except TimeoutError:
            raise ConfigError(
                f"the event loop of the Dask client {client!r} did not answer within "
                f"{LOOP_ANSWER_SECONDS:g}s: an asynchronous client serves fanout.amap/aimap "
                "on its own loop; with fanout.map/imap use a synchronous Client"
            ) from None

    async def _on_client_loop(
        self, client: distributed.Client, coro: Coroutine[Any, Any, _T]
    ) -> _T:
        """Run ``coro`` on the client's event loop and wait for it here."""
        client_loop = _loop_of(client).asyncio_loop
        if client_loop is asyncio.get_running_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, client_loop))

    # ------------------------------------------------------------ running
    def submit(self, items: list[Any]) -> Awaitable[Outcome]:
        return self._submit(items)

    async def _submit(self, items: list[Any]) -> Outcome:
        client = await self._client_now()
        return await self._on_client_loop(client, self._run(client, items))

    async def _run(self, client: distributed.Client, items: list[Any]) -> Outcome:
        """On the client's loop: one task for the batch; on a lost worker, each item alone."""
        try:
            return await self._task(client, items)
        except _Lost as lost:
            if len(items) == 1:
                return failed(lost.error)
        # Find the culprit: every item of the batch in a task of its own.
        parts = await asyncio.gather(*(self._run(client, [item]) for item in items))
        return concat(list(parts))

    async def _task(self, client: distributed.Client, items: list[Any]) -> Outcome:
        scattered_key = None
        arg: Any = items
        if dask.sizeof.sizeof(items) > SCATTER_BYTES:
            arg, scattered_key = await self._scatter(client, items)
        try:
            future = client.submit(
                run_batch, self._token, await self._function_arg(client), self._where, arg,
                key=f"fanout-{self._token[:8]}-{uuid.uuid4().hex}", pure=False, retries=0,
            )
        except Exception as exc:
            root: BaseException = exc
            while (inner := root.__cause__ or root.__context__) is not None:
                root = inner  # the pickling error underneath Dask's
            reason = f"{type(root).__name__}: {str(root).strip().partition(chr(10))[0]}"
            raise _Unsendable(NotPicklableError(
                f"dask mode needs items cloudpickle can send to the workers, but "
                f"{short_repr(items[0])} is not ({reason}): pass plain "
                "data, or use mode='thread'"
            )) from None
        self._live.add(future)
        keep = False  # a scattered item stays for a retry only after the call failed
        try:
            # Never ``await future``: a failed future raises its stored exception with
            # this frame in its traceback, and that frame holds the future, which then
            # never releases its task on the scheduler.
            got = await client.gather([future], errors="skip")
            if got:
                outcome: Outcome = got[0]
                keep = bool(outcome[2])
                return outcome
            error = await future.exception()
        finally:
            self._live.discard(future)
            if not future.done():  # cancelled here (a deadline, a stop): and on the cluster
                _loop_of(client).add_callback(client.cancel, [future], reason="fanout cancelled")
            if scattered_key is not None and not keep:
                self._scattered.pop(scattered_key, None)
        raise self._task_error(error)

    def _task_error(self, error: BaseException) -> Exception:
        """What a task that failed on the cluster (not in the user's code) means."""
        if isinstance(error, KilledWorker):
            deaths = error.allowed_failures + 1
            times = f", the {deaths}th worker to die running it" if deaths > 1 else ""
            return _Lost(WorkerCrashed(
                f"the Dask worker {error.last_worker.address} holding this item died{times}; "
                "the batch goes on on the other workers"
            ))
        if isinstance(error, FutureCancelledError):
            return _Lost(WorkerCrashed(
                f"the cluster cancelled this item's Dask task (reason: {error.reason}): "
                "a worker holding its data died, or the cluster restarted"
            ))
        if isinstance(error, ConfigError):  # raised by run_batch: the function won't load
            return ConfigError(str(error))
        return FanoutError(
            f"a Dask worker could not run fanout's task for {self._where} "
            f"({type(error).__name__}: {error}): fanout and the function's module must "
            "be installed on the workers, and the items must unpickle there"
        )

    async def _function_arg(self, client: distributed.Client) -> Any:
        """The pickled function, or a reference to it on every worker when it is large
        (a closure over big data), sent once for the run."""
        if len(self._fn_bytes) <= SCATTER_BYTES:
            return self._fn_bytes
        if self._fn_scattered is None:
            self._fn_scattered = asyncio.ensure_future(
                client.scatter([self._fn_bytes], broadcast=True, hash=False)
            )
        [future] = await asyncio.shield(self._fn_scattered)
        return future

    async def _scatter(
        self, client: distributed.Client, items: list[Any]
    ) -> tuple[Any, int | None]:
        """Send a large item (or batch) to the cluster once: a retry of a single
        item reuses the copy already there."""
        if len(items) > 1:
            [future] = await client.scatter([items], hash=False)
            return future, None
        key = id(items[0])
        cached = self._scattered.get(key)
        if cached is not None and cached[0] is items[0] and cached[1].status == "finished":
            self._scattered.move_to_end(key)
            return [cached[1]], key
        [future] = await client.scatter([items[0]], hash=False)
        self._scattered[key] = (items[0], future)
        while len(self._scattered) > _SCATTER_CACHE:
            self._scattered.popitem(last=False)
        return [future], key

    async def aclose(self, cancel: bool = False) -> None:
        client = self._given or self._client
        if client is None or client.status != "running" or not self._answering:
            return  # nothing was submitted in this run
        await self._on_client_loop(client, self._end_run(client, cancel))

    async def _end_run(self, client: distributed.Client, cancel: bool) -> None:
        live = list(self._live)
        self._live.clear()
        self._scattered.clear()
        self._fn_scattered = None
        if cancel and live:
            await client.cancel(live, reason="fanout run cancelled")


def _loop_of(client: distributed.Client) -> BaseAsyncIOLoop:
    """The tornado loop a client runs on (an asyncio loop underneath)."""
    loop = client.loop
    assert isinstance(loop, BaseAsyncIOLoop), loop
    return loop


class _Lost(Exception):
    """A batch's task was lost with its worker; ``error`` is what an item records."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Unsendable(_Lost):
    """A batch could not be pickled for the cluster."""
