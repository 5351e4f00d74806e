"""What the workflow pages need from ComfyUI (``/object_info`` and the model folders), asked once.

A ComfyUI that accepts connections and never answers must not hold a page for one timeout per
workflow, nor one request for several timeouts: the facts are fetched at most once per request (the
routes take one ``Facts`` and pass it on), by one fetch at a time for the whole process (every
request that needs them meanwhile waits for that same fetch), and never for longer than the client's
timeout. A failure is remembered for a few seconds, so the pages that follow answer at once that
ComfyUI cannot be asked; a fetch still under way when the wait ends goes on in the background and
fills the client's cache for the next request.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from studio.comfy import ComfyClient, ComfyError

log = logging.getLogger(__name__)

# How long a failure is believed before ComfyUI is asked again.
FAILURE_MEMORY_S = 3.0


@dataclass(frozen=True)
class Facts:
    """``object_info`` (None when ComfyUI could not be asked, ``problem`` then says why) and the model
    index (None also for a ComfyUI without ``/models``)."""

    object_info: dict[str, Any] | None
    model_index: dict[str, set[str]] | None
    problem: str | None = None


class _Fetch:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.done = threading.Event()
        self.object_info: dict[str, Any] | None = None  # as soon as it is known, before the model index
        self.facts: Facts | None = None


class ComfyFacts:
    """One per ComfyClient: the single fetch in flight and the last failure."""

    def __init__(self, comfy: ComfyClient) -> None:
        self.comfy = comfy
        self._lock = threading.Lock()
        self._fetch: _Fetch | None = None
        # The last failure: for which URL, until when it is believed, and what it leaves (the nodes,
        # when only the model folders did not answer).
        self._failure: tuple[str, float, Facts] | None = None

    def get(self) -> Facts:
        base_url = self.comfy.base_url
        with self._lock:
            failure = self._failure
            if failure is not None and failure[0] == base_url and time.monotonic() < failure[1]:
                return failure[2]
            fetch = self._fetch
            if fetch is None or fetch.base_url != base_url:  # a new ComfyUI URL: the old fetch is not its answer
                fetch = self._fetch = _Fetch(base_url)
                threading.Thread(target=self._run, args=(fetch,), name="comfy-facts", daemon=True).start()
        wait_s = max(0.1, float(self.comfy.timeout_s))
        if not fetch.done.wait(wait_s) or fetch.facts is None:
            if fetch.object_info is not None:  # the nodes are known; the model folders did not answer
                return self._failed(base_url, Facts(fetch.object_info, None))
            return self._failed(base_url, Facts(None, None, f"ComfyUI at {base_url} did not answer in time"))
        if fetch.facts.problem is not None:
            return self._failed(base_url, fetch.facts)
        return fetch.facts

    def _failed(self, base_url: str, facts: Facts) -> Facts:
        with self._lock:
            self._failure = (base_url, time.monotonic() + FAILURE_MEMORY_S, facts)
        return facts

    def _run(self, fetch: _Fetch) -> None:
        try:
            fetch.facts = self._ask(fetch)
        except Exception as err:  # noqa: BLE001 - whatever happens, the waiting requests get an answer
            log.exception("asking ComfyUI for its nodes failed")
            fetch.facts = Facts(None, None, f"asking ComfyUI failed ({type(err).__name__})")
        finally:
            with self._lock:
                if self._fetch is fetch:
                    self._fetch = None
                failure = self._failure
                if (fetch.facts is not None and fetch.facts.problem is None and failure is not None
                        and failure[0] == fetch.base_url):
                    self._failure = None  # it answered after all: believe the answer, not the timeout
            fetch.done.set()

    def _ask(self, fetch: _Fetch) -> Facts:
        try:
            object_info = fetch.object_info = self.comfy.object_info()
        except ComfyError as err:
            return Facts(None, None, str(err))
        try:
            model_index: dict[str, set[str]] | None = self.comfy.model_index()
        except ComfyError:  # a ComfyUI without /models: known loaders are still checked via object_info
            model_index = None
        return Facts(object_info, model_index)


_FACTS: weakref.WeakKeyDictionary[ComfyClient, ComfyFacts] = weakref.WeakKeyDictionary()
_FACTS_LOCK = threading.Lock()


def comfy_facts(comfy: ComfyClient) -> Facts:
    """``/object_info`` and the model index of ``comfy``: cached by the client once known, a failure
    remembered for ``FAILURE_MEMORY_S``, and never waited for longer than the client's timeout."""
    with _FACTS_LOCK:
        facts = _FACTS.get(comfy)
        if facts is None:
            facts = _FACTS[comfy] = ComfyFacts(comfy)
    return facts.get()
