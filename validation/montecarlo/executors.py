"""Where the Monte Carlo draws of a validation run execute.

A validation run is a list of independent *draws* (row ``key``, draw index
``trial``).  A draw task is any picklable object with ``key``, ``trial``,
``blas_threads`` and a ``run()`` method returning the draw's metrics (ridge:
:class:`DrawTask`; convex losses and spectra define their own); :func:`run_draw`,
a plain module-level function that any process can execute, runs it with the
BLAS thread pools limited to ``blas_threads`` (default 1, whatever executes the
draw, so a draw's numbers are bit-identical in-process and on any number of
workers).  Three ways to run them:

- in-process, one after another (the default; needs nothing beyond NumPy);
- any :class:`concurrent.futures.Executor` (``ProcessPoolExecutor``,
  ``ThreadPoolExecutor``, ...);
- a Dask cluster through a ``distributed.Client``: an embedded
  ``LocalCluster`` (:func:`local_cluster`, ``rfq validate --workers N``) or
  an existing scheduler (:func:`connect`, ``--scheduler ADDRESS``).

:func:`execute` submits every task and calls ``on_done(task, result)`` in the
driver as each one finishes, in completion order; the driver alone writes the
result store.  The numbers of a draw depend only on ``(seed, trial)`` and the
row's sizes (see :func:`validation.montecarlo.simulate.trial_generators`), so
results are identical whatever runs them and in whatever order they finish.

Dask is optional (``pip install 'rfq-theory[dask]'``) and imported only when
a client or cluster is asked for.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from rfq_theory.checks import InputError

__all__ = [
    "DrawTask",
    "run_draw",
    "execute",
    "ExecutionInfo",
    "DASK_HINT",
    "require_dask",
    "local_cluster",
    "connect",
    "BLAS_ENV",
    "check_address",
    "probe_scheduler",
]

#: Message for a missing Dask installation.
DASK_HINT = "parallel runs need Dask: pip install 'rfq-theory[dask]'"

#: Environment variables that limit BLAS/OpenMP threads (set in every worker process).
BLAS_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

#: Times a Dask task may lose its worker (process death) before the run gives up.
ALLOWED_FAILURES = 3


@dataclass(frozen=True)
class DrawTask:
    """One Monte Carlo draw: draw ``trial`` of row ``key`` (everything a worker needs)."""

    key: str
    trial: int
    model: object  # rfq_theory.DeepRF with whole sizes
    samples: int
    ridge: float
    noise: float
    target: object
    seed: int
    test_samples: int
    backend: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"
    blas_threads: int | None = 1
    basis: str = "axis"

    def run(self) -> dict:
        """Test and train error of the draw (:func:`validation.montecarlo.simulate.simulate_trial`)."""
        from .simulate import simulate_trial

        test, train = simulate_trial(
            self.model,
            self.samples,
            self.ridge,
            self.noise,
            self.target,
            seed=self.seed,
            trial=self.trial,
            test_samples=self.test_samples,
            backend=self.backend,
            device=self.device,
            dtype=self.dtype,
            basis=self.basis,
        )
        return {"test_error": float(test), "train_error": float(train)}


def _limited(threads: int | None):
    """A context limiting BLAS/OpenMP threads to ``threads`` (no-op when ``None``).

    Uses threadpoolctl; without it the environment variables of
    :data:`BLAS_ENV` set for Dask workers still apply.
    """
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables set for the worker still apply
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def run_draw(task) -> dict:
    """Run one draw task: its metrics plus ``key``, ``trial``, ``seconds``, ``host`` and ``pid``."""
    t0 = time.perf_counter()
    with _limited(getattr(task, "blas_threads", 1)):
        metrics = task.run()
    return {
        **metrics,
        "key": task.key,
        "trial": task.trial,
        "seconds": time.perf_counter() - t0,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


@dataclass
class ExecutionInfo:
    """How a run's draws were executed: kind, number of workers, dashboard link."""

    kind: str = "in-process"
    workers: int = 1
    dashboard: str | None = None
    address: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _is_dask_client(obj) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("distributed") and hasattr(obj, "submit") and hasattr(obj, "scheduler_info")


def describe(executor) -> ExecutionInfo:
    """An :class:`ExecutionInfo` for ``executor`` (``None``, a ``distributed.Client`` or an Executor)."""
    if executor is None:
        return ExecutionInfo()
    if _is_dask_client(executor):
        try:
            n = len(executor.scheduler_info().get("workers", {}))
        except Exception:  # pragma: no cover - a scheduler that went away
            n = 0
        return ExecutionInfo(
            "dask",
            n,
            getattr(executor, "dashboard_link", None),
            getattr(executor.scheduler, "address", None) if executor.scheduler else None,
        )
    n = getattr(executor, "_max_workers", None) or 0
    return ExecutionInfo(type(executor).__name__, int(n))


def execute(tasks: list[DrawTask], on_done: Callable[[DrawTask, dict], None], executor=None, retries: int = 2) -> None:
    """Run ``tasks`` and call ``on_done(task, result)`` in the caller as each finishes.

    ``executor``: ``None`` (in-process, in order), a ``distributed.Client``
    (tasks are submitted with ``retries`` retries after an error; a task whose
    worker dies is re-run by the scheduler up to ``distributed.scheduler.allowed-failures``
    times) or any :class:`concurrent.futures.Executor`.  An exception from a
    task or from ``on_done`` cancels the tasks still pending and propagates.
    """
    if executor is None:
        for task in tasks:
            on_done(task, run_draw(task))
        return
    if not tasks:
        return
    if _is_dask_client(executor):
        from distributed import as_completed

        futures = {}
        for task in tasks:
            fut = executor.submit(
                run_draw,
                task,
                key=f"rfq-draw-{task.key}-{task.trial}-{os.getpid()}-{id(tasks)}",
                retries=retries,
                pure=False,
            )
            futures[fut] = task
        try:
            for fut in as_completed(list(futures)):
                on_done(futures[fut], fut.result())
        finally:
            executor.cancel([f for f in futures if not f.done()])
        return
    import concurrent.futures as cf

    futures = {executor.submit(run_draw, task): task for task in tasks}
    try:
        for fut in cf.as_completed(futures):
            on_done(futures[fut], fut.result())
    finally:
        for fut in futures:
            fut.cancel()


# --------------------------------------------------------------------------
# Dask clusters
# --------------------------------------------------------------------------


def require_dask():
    """Import ``distributed``; raise :class:`InputError` with the install hint when missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InputError(DASK_HINT) from None
    return distributed


def _worker_blas_env(threads: int = 1) -> None:
    """Dask config so that worker processes start with BLAS limited to ``threads`` threads."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env.update({name: str(threads) for name in BLAS_ENV})
    dask.config.set(
        {"distributed.nanny.pre-spawn-environ": env, "distributed.scheduler.allowed-failures": ALLOWED_FAILURES}
    )


def local_cluster(workers: int, dashboard: bool = True, memory_limit="auto"):
    """Start an embedded ``LocalCluster`` and return ``(client, cluster)``.

    ``workers`` processes with one thread each and BLAS limited to one thread
    per process (so ``workers`` draws never oversubscribe the cores).
    """
    require_dask()
    import logging

    from distributed import Client, LocalCluster

    _worker_blas_env(1)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0" if dashboard else None,
        silence_logs=logging.ERROR,
        memory_limit=memory_limit,
    )
    client = Client(cluster)
    return client, cluster


def check_address(address) -> str:
    text = str(address or "").strip()
    if not text:
        raise InputError("--scheduler must be a scheduler address such as tcp://host:8786, got an empty string")
    proto, sep, rest = text.partition("://")
    if not sep:
        proto, rest = "tcp", text
    if proto not in ("tcp", "tls", "inproc", "ucx", "ws", "wss"):
        raise InputError(f"--scheduler: unknown protocol {proto!r} in {text!r} (use tcp://host:port)")
    if proto in ("tcp", "tls", "ws", "wss"):
        host, colon, port = rest.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InputError(f"--scheduler must look like tcp://host:port with a port 1..65535, got {text!r}")
    return f"{proto}://{rest}"


def probe_scheduler(address: str, timeout: float = 5.0) -> None:
    """Refuse (:class:`InputError`, one line) a TCP address that is not a Dask scheduler, within ``timeout``.

    A Dask scheduler sends its handshake message as soon as a connection is
    accepted; a port that accepts connections but stays silent (an HTTP
    server, another service) or closes the connection is not one.  Other
    protocols are left to the client.
    """
    proto, _, rest = address.partition("://")
    if proto != "tcp":
        return
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            first = sock.recv(8)
    except TimeoutError:
        raise InputError(
            f"--scheduler: {address!r} accepts connections but sent no Dask handshake within {timeout:g} s; "
            "it is not a Dask scheduler"
        ) from None
    except OSError as exc:
        raise InputError(f"--scheduler: cannot reach {address!r} ({exc.strerror or type(exc).__name__})") from None
    if not first:
        raise InputError(f"--scheduler: {address!r} closed the connection; it is not a Dask scheduler")


def connect(address, timeout: float = 10.0):
    """A ``distributed.Client`` connected to the scheduler at ``address`` within ``timeout`` seconds.

    Raises :class:`InputError` (one line) for a malformed or unreachable
    address, or one that is not a Dask scheduler (:func:`probe_scheduler`).
    """
    require_dask()
    import logging

    from distributed import Client

    text = check_address(address)
    probe_scheduler(text, timeout=min(timeout, 3.0))
    for name in ("distributed.client", "distributed.core", "distributed.comm", "distributed.utils"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return Client(text, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise InputError(
            f"--scheduler: cannot reach a Dask scheduler at {text!r} within {timeout:g} s ({type(exc).__name__})"
        ) from None
    except ValueError as exc:
        raise InputError(f"--scheduler: {text!r} is not a usable address ({str(exc).splitlines()[0]})") from None
