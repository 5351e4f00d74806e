"""The window's own pages (splash, a start that failed, a remote that cannot be used, the
"Connect to a remote Studio" screen): self-contained HTML the window loads itself, so they show
even when no Studio answers. Every text from outside (log lines, messages, addresses) is escaped.

Their buttons call the launcher through ``window.pywebview.api`` (``DesktopApi``), which answers
only while one of these pages is the one shown.
"""

from __future__ import annotations

from html import escape

STYLE = """
:root { color-scheme: light dark; --bg: #101418; --fg: #e7ecf1; --muted: #9aa7b4; --accent: #4f9dff;
        --panel: #1a2027; --bad: #ff7a7a; }
@media (prefers-color-scheme: light) { :root { --bg: #f6f8fa; --fg: #15191e; --muted: #56606b;
        --panel: #ffffff; --accent: #0b63ce; --bad: #b3261e; } }
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; background: var(--bg); color: var(--fg);
       font: 16px/1.5 system-ui, "DejaVu Sans", sans-serif; display: grid; place-items: center; }
main { width: min(44rem, 100% - 2rem); padding: 2rem 0; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
p { margin: .5rem 0; }
.muted { color: var(--muted); }
.problem { color: var(--bad); font-weight: 600; }
pre { background: var(--panel); padding: .75rem; border-radius: 8px; overflow: auto; max-height: 45vh;
      font-size: .8rem; white-space: pre-wrap; word-break: break-word; }
code { word-break: break-all; }
button { font: inherit; padding: .5rem 1rem; border-radius: 8px; border: 1px solid var(--accent);
         background: var(--accent); color: #fff; cursor: pointer; margin: .5rem .5rem 0 0; }
button.secondary { background: transparent; color: var(--accent); }
label { display: block; margin-top: 1rem; font-weight: 600; }
input { font: inherit; width: 100%; padding: .5rem; border-radius: 8px; border: 1px solid var(--muted);
        background: var(--panel); color: var(--fg); }
ul { padding: 0; list-style: none; }
li button { width: 100%; text-align: left; background: var(--panel); color: var(--fg);
            border-color: var(--muted); margin: .25rem 0; }
.spinner { width: 2.5rem; height: 2.5rem; border: 4px solid var(--panel); border-top-color: var(--accent);
           border-radius: 50%; animation: spin 1s linear infinite; margin-bottom: 1rem; }
@keyframes spin { to { transform: rotate(360deg); } }
"""

# Buttons: data-call names a DesktopApi method. The page waits for pywebview's bridge first.
SCRIPT = """
function api() { return (window.pywebview && window.pywebview.api) || {}; }
// The bridge fills window.pywebview.api one method at a time, then sends pywebviewready.
function ready(name, run) {
  if (typeof api()[name] === 'function') { run(); return; }
  window.addEventListener('pywebviewready', run, { once: true });
}
document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-call]');
  if (button) { ready(button.dataset.call, () => api()[button.dataset.call]()); }
});
"""

CONNECT_SCRIPT = """
const form = document.getElementById('connect');
const status = document.getElementById('status');
function show(message, bad) { status.textContent = message; status.className = bad ? 'problem' : 'muted'; }
function go(url) {
  show('Checking ' + url + '…', false);
  const token = document.getElementById('token').value;
  ready('connect', () => api().connect(url, token).then((answer) => {
    if (answer && answer.error) { show(answer.error, true); }
  }));
}
form.addEventListener('submit', (event) => { event.preventDefault(); go(document.getElementById('url').value); });
document.querySelectorAll('button[data-url]').forEach((button) => {
  button.addEventListener('click', () => go(button.dataset.url));
});
"""


def _page(title: str, body: str, script: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
            f'<body data-desktop-page="{escape(title)}"><main>{body}</main>'
            f"<script>{SCRIPT}{script}</script></body></html>")


def splash(what: str) -> str:
    return _page("Starting · ComfyUI Studio",
                 f'<div class="spinner" role="progressbar" aria-label="{escape(what)}"></div>'
                 f'<h1>{escape(what)}</h1><p class="muted">This takes a few seconds.</p>')


def start_failed(message: str, log_file: str, lines: list[str]) -> str:
    tail = "\n".join(lines) if lines else "(the log is empty)"
    return _page("Studio did not start · ComfyUI Studio",
                 "<h1>Studio did not start</h1>"
                 f'<p class="problem" id="problem">{escape(message)}</p>'
                 f'<p>The whole log: <code id="log-file">{escape(log_file)}</code></p>'
                 f'<pre id="log-tail" aria-label="The last lines of the log">{escape(tail)}</pre>'
                 '<button type="button" data-call="quit">Close</button>'
                 '<button type="button" class="secondary" data-call="show_connect">'
                 "Connect to a remote Studio instead</button>",
                 # The newest lines say most: the tail opens scrolled to its end.
                 "const tail = document.getElementById('log-tail'); tail.scrollTop = tail.scrollHeight;")


def remote_problem(origin: str, code: str, message: str) -> str:
    return _page("Cannot open this Studio · ComfyUI Studio",
                 f"<h1>Cannot open {escape(origin)}</h1>"
                 f'<p class="problem" id="problem" data-code="{escape(code)}">{escape(message)}</p>'
                 '<button type="button" data-call="retry">Try again</button>'
                 '<button type="button" class="secondary" data-call="show_connect">Choose another Studio</button>')


def connect(recent: list[str], message: str = "") -> str:
    items = "".join(f'<li><button type="button" data-url="{escape(url)}">{escape(url)}</button></li>'
                    for url in recent)
    recent_html = (f'<h2>Recent</h2><ul id="recent">{items}</ul>' if recent else "")
    return _page("Connect to a remote Studio · ComfyUI Studio",
                 "<h1>Connect to a remote Studio</h1>"
                 '<p class="muted">The address of a Studio running elsewhere, such as a RunPod pod '
                 "(https://&lt;pod&gt;-8000.proxy.runpod.net). You sign in on its own page; the window "
                 "remembers the sign-in for next time.</p>"
                 '<form id="connect"><label for="url">Address</label>'
                 '<input id="url" name="url" type="url" inputmode="url" autocomplete="url" required '
                 'maxlength="2048" placeholder="https://…">'
                 '<label for="token">API token <span class="muted">(optional, instead of signing in)</span></label>'
                 '<input id="token" name="token" type="password" autocomplete="off" maxlength="512">'
                 '<button type="submit">Connect</button></form>'
                 f'<p id="status" role="status" class="problem">{escape(message)}</p>{recent_html}',
                 CONNECT_SCRIPT)
