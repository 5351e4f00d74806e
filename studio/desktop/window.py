"""The window itself: one pywebview window per process (Qt allows one ``webview.start()``), on
the local Studio, a remote one, or the "Connect to a remote Studio" screen.

``run`` returns when the window closes, after the local Studio and its children stopped. Choosing
another remote in the window ends this process's window and starts the launcher again for that
remote (``Outcome.relaunch``): its cookies live in a browser profile of its own, fixed per process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from studio.desktop import pages, remote
from studio.desktop.userfiles import Geometry, UserFiles

log = logging.getLogger(__name__)

TITLE = "ComfyUI Studio"
MIN_SIZE = (380, 600)


@dataclass
class LaunchOptions:
    remote: str | None = None  # an address typed by a person: normalized before use
    connect: bool = False  # open the connection screen instead of a Studio
    token: str | None = None  # remote mode: an API token instead of a sign-in


@dataclass
class Outcome:
    exit_code: int = 0
    relaunch: LaunchOptions | None = None


@dataclass
class Session:
    """What a running window is showing; handed to ``run``'s ``ready`` callback (tests drive the
    window through it: ``session.window.evaluate_js``, ``session.close()``)."""

    window: Any
    mode: str  # "local", "remote" or "connect"
    url: str | None = None  # the Studio shown, once it is shown
    problem: str | None = None  # the code of the problem page shown instead
    outcome: Outcome = field(default_factory=Outcome)
    local_page: bool = True  # one of pages.py's pages is shown: DesktopApi answers only then
    _keep: list[Any] = field(default_factory=list)

    def close(self) -> None:
        self.window.destroy()


class DesktopApi:
    """What the window's own pages may ask of the launcher. A remote page shown in the same window
    gets the same ``window.pywebview.api`` object, so every method refuses unless one of the
    window's own pages is shown."""

    def __init__(self, desktop: Desktop) -> None:
        self._desktop = desktop

    def _allowed(self) -> bool:
        session = self._desktop.session
        return session is not None and session.local_page

    def connect(self, url: str, token: str = "") -> dict[str, str]:
        if not self._allowed() or not isinstance(url, str) or not isinstance(token, str):
            return {"error": "Not available on this page."}
        token = token.strip()
        if len(token) > 512:
            return {"error": "That token is too long to be a Studio token."}
        try:
            studio = remote.probe(url, token=token or None)
        except remote.RemoteProblem as problem:
            return {"error": problem.message}
        self._desktop.switch_to(studio.origin, token or None)
        return {"ok": studio.origin}

    def show_connect(self) -> None:
        if self._allowed():
            self._desktop.show_connect()

    def retry(self) -> None:
        if self._allowed():
            threading.Thread(target=self._desktop.open_remote, name="desktop-retry", daemon=True).start()

    def quit(self) -> None:
        if self._allowed() and self._desktop.session is not None:
            self._desktop.session.close()


class Desktop:
    def __init__(self, options: LaunchOptions, files: UserFiles | None = None,
                 ready: Callable[[Session], None] | None = None) -> None:
        self.options = options
        self.files = files or UserFiles()
        self.ready = ready
        self.session: Session | None = None
        self.origin: str | None = None  # remote mode: the Studio this process's profile belongs to
        self._geometry: dict[str, int] = {}

    # -- the window ---------------------------------------------------------------------------------

    def _create(self, mode: str, title: str, html: str) -> Session:
        import webview

        geometry = self.files.geometry("local" if mode == "local" else "remote")
        self._geometry = {"width": geometry.width, "height": geometry.height}
        if geometry.x is not None and geometry.y is not None:
            self._geometry.update(x=geometry.x, y=geometry.y)
        window = webview.create_window(title, html=html, js_api=DesktopApi(self), width=geometry.width,
                                       height=geometry.height, x=geometry.x, y=geometry.y, min_size=MIN_SIZE,
                                       background_color="#f6f8fa", text_select=True, menu=self._menu())
        assert window is not None
        window.events.resized += self._resized
        window.events.moved += self._moved
        self.session = Session(window, mode)
        return self.session

    def _menu(self) -> list[Any]:
        """The way to the connection screen from any Studio the window shows."""
        from webview.menu import Menu, MenuAction

        return [Menu("Studio", [MenuAction("Connect to a remote Studio…", self.show_connect),
                                MenuAction("Close", lambda: self.session.close() if self.session else None)])]

    def _resized(self, width: int, height: int) -> None:
        self._geometry.update(width=int(width), height=int(height))

    def _moved(self, x: int, y: int) -> None:
        self._geometry.update(x=int(x), y=int(y))

    def _save_geometry(self, mode: str) -> None:
        geometry = Geometry.parse(self._geometry)
        try:
            self.files.save_geometry("local" if mode == "local" else "remote", geometry)
        except OSError as err:
            log.warning("desktop: the window's size was not saved: %s", err)

    def show_html(self, html: str, problem: str | None = None) -> None:
        assert self.session is not None
        self.session.local_page = True
        self.session.problem = problem
        self.session.window.load_html(html)

    def show_url(self, url: str) -> None:
        assert self.session is not None
        self.session.local_page = False  # before the remote page can run any script
        self.session.problem = None
        self.session.url = url
        self.session.window.load_url(url)

    def focus(self) -> None:
        """A second launch asked for this window."""
        if self.session is not None:
            self.session.window.restore()
            self.session.window.show()

    def _start(self, storage: str, func: Callable[[], None]) -> None:
        import webview

        def guarded() -> None:
            try:
                func()
            finally:
                if self.ready is not None and self.session is not None:
                    self.ready(self.session)

        webview.start(guarded, gui="qt", private_mode=False, storage_path=storage)

    # -- remote mode and the connection screen -------------------------------------------------------

    def run_remote(self) -> Outcome:
        assert self.options.remote is not None
        try:
            self.origin = remote.normalize(self.options.remote)
        except remote.RemoteProblem as problem:
            sys.stderr.write(f"studio desktop: {problem.message}\n")
            return Outcome(2)
        host = urlsplit(self.origin).netloc
        session = self._create("remote", f"{TITLE} — {host}", pages.splash(f"Connecting to {host}…"))
        if self.options.token:
            session.window.events.before_show += self._install_token
        self._start(str(self.files.profile_dir(self.origin)), self.open_remote)
        self._save_geometry("remote")
        return session.outcome

    def _install_token(self, window: Any) -> None:
        from studio.desktop import token

        assert self.session is not None
        assert self.origin is not None
        assert self.options.token is not None
        self.session._keep.append(token.install(window.native, self.origin, self.options.token))

    def open_remote(self) -> None:
        assert self.origin is not None
        try:
            studio = remote.probe(self.origin, token=self.options.token)
        except remote.RemoteProblem as problem:
            log.warning("desktop: %s: %s", self.origin, problem.message)
            self.show_html(pages.remote_problem(self.origin, problem.code, problem.message), problem.code)
            return
        try:
            self.files.remember_remote(studio.origin)
        except OSError as err:
            log.warning("desktop: the recent remotes were not saved: %s", err)
        self.show_url(studio.origin + "/")

    def run_connect(self) -> Outcome:
        session = self._create("connect", f"{TITLE} — connect", pages.connect(self.files.recent_remotes()))
        self._start(str(self.files.profile_dir(None)), lambda: None)
        self._save_geometry("remote")
        return session.outcome

    def show_connect(self) -> None:
        self.show_html(pages.connect(self.files.recent_remotes()))

    def switch_to(self, origin: str, token: str | None) -> None:
        """The connection screen chose ``origin``: shown here if this window's profile is its own,
        else the window closes and the launcher starts again on it."""
        assert self.session is not None
        if origin == self.origin and token == self.options.token:
            threading.Thread(target=self.open_remote, name="desktop-open", daemon=True).start()
            return
        self.session.outcome.relaunch = LaunchOptions(remote=origin, token=token)
        self.session.close()

    # -- local mode ------------------------------------------------------------------------------------

    def run_local(self) -> Outcome:
        from pydantic import ValidationError

        from studio.config import load_settings
        from studio.desktop.instance import AlreadyRunning, InstanceLock
        from studio.desktop.local import LocalStudio, StartFailed
        from studio.logs import configure_logging
        from studio.paths import DataDir

        try:
            settings = load_settings()
        except (ValidationError, ValueError) as err:
            sys.stderr.write(f"studio desktop: invalid settings:\n{err}\n")
            return Outcome(2)
        data_dir = DataDir(settings.studio_dir)
        data_dir.ensure()
        configure_logging(settings, data_dir.logs)
        lock = InstanceLock(data_dir.root, self.focus)
        try:
            lock.acquire()
        except AlreadyRunning as running:
            if running.holder.focus():
                sys.stdout.write(f"Studio's window is already open for {settings.studio_dir}: brought it to the "
                                 "front.\n")
                return Outcome(0)
            sys.stderr.write(f"studio desktop: Studio's window (pid {running.holder.pid}) holds {lock.path} but "
                             "does not answer. Close it, or end that process.\n")
            return Outcome(1)
        studio = LocalStudio(settings)

        def start() -> None:
            try:
                url = studio.start()
            except StartFailed as failed:
                self.show_html(pages.start_failed(str(failed), str(studio.log_file), studio.last_log_lines()),
                               "start_failed")
                return
            self.show_url(url + "/")

        try:
            self._create("local", f"{TITLE} — local", pages.splash("Starting Studio…"))
            self._start(str(self.files.profile_dir(None)), start)
            self._save_geometry("local")
        finally:
            log.info("desktop: the window closed; stopping Studio")
            studio.stop()
            lock.release()
            log.info("desktop: stopped")
        assert self.session is not None
        return self.session.outcome


def run(options: LaunchOptions, files: UserFiles | None = None,
        ready: Callable[[Session], None] | None = None) -> Outcome:
    desktop = Desktop(options, files, ready)
    if options.remote:
        return desktop.run_remote()
    if options.connect:
        return desktop.run_connect()
    return desktop.run_local()


def qt_environment() -> None:
    """Qt WebEngine refuses to run as root with its sandbox (containers, CI)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
