// @ts-check
/**
 * LLM: a Chat tab (anyone signed in: a streamed answer, Stop, Copy, the system prompt in view) and a
 * Server tab (admins: the catalog and its downloads, the launch settings, the running server, its
 * log). The model's text is only ever put into the page as text: nothing it writes becomes HTML.
 */
import { api, ApiError, streamPost } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatBytes, formatTime } from '../lib/format.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';
import { gpuCard } from './home-gpu.js';

/** @param {unknown} err */
const message = (err) => (err instanceof ApiError ? err.message : String(err));
const SYSTEM = 'You are a helpful assistant. Answer briefly and clearly.';

/** Text with ``` code fences as <pre> blocks, everything as text nodes. @param {string} text */
export function renderAnswer(text) {
  const parts = text.split(/```[^\n]*\n?/);
  return parts.map((part, i) => (i % 2 ? h('pre', { class: 'llm-code' }, h('code', null, part))
    : h('div', { class: 'llm-text' }, part)));
}

/** Server-sent events from a streamed chat answer, one `delta.content` at a time; an `error` event (the
 * server stopped mid-answer, e.g. for a ComfyUI job) ends it with its message.
 * @param {Response} response @param {(piece: string) => void} onPiece */
async function readStream(response, onPiece) {
  if (!response.body) return;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    const lines = buffered.split('\n');
    buffered = lines.pop() || '';
    for (const line of lines) {
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      /** @type {any} */
      let event = null;
      try { event = JSON.parse(line.slice(6)); } catch { /* a partial or foreign line: skipped */ }
      if (event?.error) throw new ApiError(503, event.error.code || 'llm_stopped', String(event.error.message || 'The answer was cut off.'));
      const piece = event?.choices?.[0]?.delta?.content;
      if (piece) onPiece(piece);
    }
  }
}

/** A picture file as a data: URL (Studio scales it down before the model sees it). @param {Blob} file @returns {Promise<string>} */
function fileAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Error('The picture could not be read.'));
    reader.readAsDataURL(file);
  });
}

/** @param {HTMLElement} main @param {{me: any}} context */
export function mount(main, context) {
  const admin = context.me?.user.role === 'admin';
  const stateLine = h('p', { id: 'llm-state', 'aria-live': 'polite' });
  const log = h('div', { id: 'llm-messages', class: 'stack llm-messages', 'aria-live': 'polite' });
  const list = h('ul', { id: 'llm-conversations', class: 'llm-conversations' });
  const input = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'llm-input', rows: 3, maxlength: 20000,
    placeholder: 'Ask for a prompt, or to improve one…' }));
  const system = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'llm-system', rows: 2, maxlength: 8000,
    'aria-label': 'System prompt' }));
  system.value = SYSTEM;
  const presetBox = h('div', { class: 'row llm-presets' });
  /** @type {string[]} */
  let pictures = [];
  const pictureRow = h('div', { class: 'row llm-pictures', id: 'llm-pictures' });
  const pictureInput = /** @type {HTMLInputElement} */ (h('input', { type: 'file', id: 'llm-image', multiple: true,
    accept: 'image/png,image/jpeg,image/webp', onchange: async () => {
      for (const file of Array.from(pictureInput.files || []).slice(0, 4 - pictures.length)) {
        try { pictures.push(await fileAsDataUrl(file)); } catch (err) { toast(message(err), 'error'); }
      }
      pictureInput.value = '';
      showPictures();
    } }));
  function showPictures() {
    replace(pictureRow, pictures.map((url, i) => h('span', { class: 'llm-picture' },
      h('img', { src: url, alt: `Picture ${i + 1} to send` }),
      h('button', { type: 'button', class: 'link-button small', 'aria-label': `Remove picture ${i + 1}`,
        onclick: () => { pictures.splice(i, 1); showPictures(); } }, '×'))));
  }
  const send = h('button', { class: 'button', type: 'submit', id: 'llm-send' }, 'Send');
  const stop = h('button', { class: 'button secondary', type: 'button', id: 'llm-stop', hidden: true }, 'Stop');
  /** @type {AbortController | null} */
  let running = null;
  /** @type {{id: string, system_prompt: string} | null} */
  let current = null;
  let ready = false;

  /** @param {string} role @param {string} text @param {any} [meta] @param {string[]} [images] */
  function bubble(role, text, meta, images) {
    const body = h('div', { class: 'llm-body' }, renderAnswer(text),
      images?.length ? h('div', { class: 'row llm-pictures' }, images.map((url) => h('span', { class: 'llm-picture' }, h('img', { src: url, alt: 'Sent picture' })))) : null);
    const copy = h('button', { type: 'button', class: 'link-button small', onclick: async () => {
      try { await navigator.clipboard.writeText(item.dataset.text || ''); toast('Copied.', 'success'); }
      catch { toast('The browser did not allow copying.', 'error'); }
    } }, 'Copy');
    const item = h('div', { class: `llm-message llm-${role}`, 'data-role': role },
      h('div', { class: 'row llm-meta' }, h('strong', null, role === 'user' ? 'You' : 'LLM'), role === 'user' ? null : copy),
      body, meta?.stopped ? h('p', { class: 'muted small' }, 'Stopped.') : null,
      meta?.completion_tokens ? h('p', { class: 'muted small llm-figures' }, `${meta.completion_tokens} tokens`
        + (meta.first_token_ms != null ? ` · first after ${Math.round(meta.first_token_ms)} ms` : '')) : null);
    item.dataset.text = text;
    log.append(item);
    return { item, body };
  }

  async function loadList() {
    try {
      const { items } = await api.get('/api/llm/conversations');
      replace(list, items.map((/** @type {any} */ c) => h('li', { 'data-conversation': c.id, class: current?.id === c.id ? 'current' : '' },
        h('button', { type: 'button', class: 'link-button', onclick: () => open(c.id) }, c.title),
        h('button', { type: 'button', class: 'link-button small danger-text', 'aria-label': `Delete ${c.title}`, onclick: async () => {
          if (!window.confirm(`Delete "${c.title}"?`)) return;
          try { await api.del(`/api/llm/conversations/${c.id}`); if (current?.id === c.id) fresh(); loadList(); }
          catch (err) { toast(message(err), 'error'); }
        } }, '×'))));
    } catch (err) { replace(list, h('li', { class: 'error-line' }, message(err))); }
  }

  /** @param {string} id */
  async function open(id) {
    try {
      const c = await api.get(`/api/llm/conversations/${id}`);
      current = { id: c.id, system_prompt: c.system_prompt };
      system.value = c.system_prompt;
      replace(log);
      for (const m of c.messages) bubble(m.role, m.content, m);
      loadList();
    } catch (err) { toast(message(err), 'error'); }
  }

  /** @type {any[]} */
  let presets = [];
  async function loadPresets(/** @type {string} */ chosenId = '') {
    try { presets = (await api.get('/api/llm/presets')).items; } catch (err) { replace(presetBox, h('span', { class: 'error-line' }, message(err))); return; }
    const pick = /** @type {HTMLSelectElement} */ (h('select', { id: 'llm-preset', onchange: () => {
      const chosen = presets.find((p) => p.id === pick.value);
      if (chosen) system.value = chosen.system_prompt;
      remove.hidden = !chosen || chosen.bundled;
    } }, h('option', { value: '' }, 'Presets…'), presets.map((p) => h('option', { value: p.id, selected: p.id === chosenId },
      p.bundled ? p.name : `${p.name} (yours)`))));
    const name = /** @type {HTMLInputElement} */ (h('input', { id: 'llm-preset-name', maxlength: 100, placeholder: 'Name',
      'aria-label': 'Name for a new preset' }));
    const remove = h('button', { type: 'button', class: 'link-button small danger-text', hidden: !chosenId, onclick: async () => {
      try { await api.del(`/api/llm/presets/${pick.value}`); toast('Preset deleted.', 'success'); loadPresets(); }
      catch (err) { toast(message(err), 'error'); }
    } }, 'Delete preset');
    replace(presetBox, h('label', { for: 'llm-preset', class: 'small' }, 'Preset'), pick, remove, name,
      h('button', { type: 'button', class: 'button secondary small', onclick: async () => {
        if (!name.value.trim()) { name.focus(); toast('Name the preset first.', 'error'); return; }
        try {
          const made = await api.post('/api/llm/presets', { name: name.value, system_prompt: system.value, use: 'chat' });
          toast(`Saved “${made.name}”.`, 'success');
          loadPresets(made.id);
        } catch (err) { toast(message(err), 'error'); }
      } }, 'Save as preset'));
  }

  function fresh() {
    current = null;
    system.value = SYSTEM;
    replace(log);
    loadList();
  }

  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'stack', id: 'llm-chat-form', novalidate: true },
    h('details', null, h('summary', null, 'System prompt (sent with every message)'), presetBox, system),
    h('label', { for: 'llm-input' }, 'Message'), input,
    h('div', { class: 'row' }, h('label', { for: 'llm-image', class: 'small' }, 'Pictures (vision models)'), pictureInput),
    pictureRow, h('div', { class: 'row' }, send, stop,
      h('button', { type: 'button', class: 'link-button', onclick: fresh }, 'New chat'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || running) return;
    running = new AbortController();
    send.toggleAttribute('disabled', true);
    stop.hidden = false;
    let written = '';
    /** @type {{item: HTMLElement, body: HTMLElement} | null} */
    let answer = null;
    try {
      if (!current) {
        const made = await api.post('/api/llm/conversations', { system_prompt: system.value });
        current = { id: made.id, system_prompt: made.system_prompt };
      } else if (current.system_prompt !== system.value) {
        await api.patch(`/api/llm/conversations/${current.id}`, { system_prompt: system.value });
        current.system_prompt = system.value;
      }
      const images = pictures;
      bubble('user', text, null, images);
      input.value = '';
      pictures = [];
      showPictures();
      answer = bubble('assistant', '');
      const response = await streamPost(`/api/llm/conversations/${current.id}/messages`,
        { content: text, temperature: 0.7, ...(images.length ? { images } : {}) }, running.signal);
      const shown = answer;
      await readStream(response, (piece) => {
        written += piece;
        shown.item.dataset.text = written;
        replace(shown.body, renderAnswer(written));
      });
    } catch (err) {
      const where = answer ? answer.body : log;
      where.append(err instanceof DOMException && err.name === 'AbortError'
        ? h('p', { class: 'muted small' }, 'Stopped.') : h('p', { class: 'error-line' }, message(err)));
    } finally {
      running = null;
      send.toggleAttribute('disabled', !ready);
      stop.hidden = true;
      loadList();
    }
  });
  stop.addEventListener('click', () => running?.abort());
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  const chatPanel = h('section', { class: 'card llm-chat-layout', id: 'llm-chat', role: 'tabpanel', 'aria-labelledby': 'llm-tab-chat' },
    h('nav', { class: 'stack llm-side', 'aria-label': 'Conversations' }, h('h2', null, 'Conversations'), list),
    h('div', { class: 'stack llm-main' }, stateLine, log, form));

  // -- the server (admins) --------------------------------------------------------------------------
  const serverBox = h('div', { class: 'stack', id: 'llm-server' });
  const catalogBox = h('div', { class: 'stack', id: 'llm-catalog' });
  const logBox = h('pre', { class: 'llm-log', id: 'llm-log' });
  const serverPanel = h('section', { class: 'card stack', role: 'tabpanel', 'aria-labelledby': 'llm-tab-server',
    hidden: true }, serverBox, gpuCard(), catalogBox,
    h('details', null, h('summary', null, 'Log'), h('button', { type: 'button', class: 'link-button', onclick: () => loadLog() },
      'Refresh'), logBox));

  /** @param {any} s */
  function showState(s) {
    const words = { stopped: 'No model is running.', starting: `Loading ${s.model}…`, ready: `${s.model} is ready.`,
      crashed: 'The LLM server crashed.', restarting: 'The LLM server crashed and is restarting…', stopping: 'Stopping…' };
    const unloaded = s.state === 'stopped' && s.resume_model;
    replace(stateLine, h('span', { class: `badge llm-state-${s.state}`, 'data-state': s.state }, s.state), ' ',
      unloaded ? `${s.resume_model} was unloaded to give ComfyUI the GPU: it loads again with your next message.`
        : /** @type {Record<string, string>} */ (words)[s.state] || s.state,
      s.phase === 'waiting_for_comfyui' ? ' Waiting for ComfyUI’s queue to finish before loading…' : null,
      s.last_error ? h('span', { class: 'error-line small' }, ` ${s.last_error}`) : null,
      s.state === 'stopped' && admin && !unloaded ? ' Start one on the Server tab.' : null);
    ready = s.state === 'ready' || Boolean(unloaded);
    send.toggleAttribute('disabled', !ready || Boolean(running));
  }

  /** @param {any} s */
  function showServer(s) {
    const models = (s.models || []).filter((/** @type {any} */ m) => m.role === 'model');
    const projectors = (s.models || []).filter((/** @type {any} */ m) => m.role === 'mmproj');
    const c = s.config || {};
    /** @param {string} id @param {string} label @param {any} value @param {number} min @param {number} max */
    const number = (id, label, value, min, max) => h('div', { class: 'field' }, h('label', { for: id }, label),
      h('input', { id, type: 'number', min, max, value: String(value) }));
    const launch = /** @type {HTMLFormElement} */ (h('form', { class: 'stack', id: 'llm-launch', novalidate: true },
      h('div', { class: 'field' }, h('label', { for: 'llm-model' }, 'Model'),
        h('select', { id: 'llm-model' }, models.map((/** @type {any} */ m) => h('option', { value: m.file, selected: m.file === c.model },
          `${m.file} (${formatBytes(m.size)})`)))),
      h('div', { class: 'field' }, h('label', { for: 'llm-mmproj' }, 'Vision projector (for images)'),
        h('select', { id: 'llm-mmproj' }, h('option', { value: '' }, 'None'),
          projectors.map((/** @type {any} */ m) => h('option', { value: m.file, selected: m.file === c.mmproj }, m.file)))),
      h('div', { class: 'row llm-numbers' }, number('llm-ctx', 'Context (tokens)', c.ctx_size ?? 4096, 256, 1048576),
        number('llm-ngl', 'GPU layers', c.gpu_layers ?? 99, 0, 10000), number('llm-parallel', 'Parallel chats', c.parallel ?? 1, 1, 64)),
      h('div', { class: 'row' }, h('button', { class: 'button', type: 'submit', disabled: !models.length }, s.state === 'stopped' ? 'Start' : 'Restart'),
        s.state !== 'stopped' ? h('button', { class: 'button secondary', type: 'button', onclick: () => act('/api/llm/server/stop', {}) }, 'Stop') : null)));
    launch.addEventListener('submit', (event) => {
      event.preventDefault();
      /** @param {string} id */
      const v = (id) => /** @type {HTMLInputElement} */ (launch.querySelector(`#${id}`)).value;
      act('/api/llm/server/start', { model: v('llm-model'), mmproj: v('llm-mmproj') || null, ctx_size: Number(v('llm-ctx')),
        gpu_layers: Number(v('llm-ngl')), parallel: Number(v('llm-parallel')) });
    });
    replace(serverBox, h('h2', null, 'Server'),
      h('p', { class: 'muted' }, s.binary ? `llama-server ${s.binary.version || ''} at ${s.binary.path}` : 'llama-server was not found: set LLM_SERVER_BINARY.'),
      s.state !== 'stopped' ? h('p', { class: 'muted small' }, `pid ${s.pid ?? '—'} · port ${s.port ?? '—'}${s.adopted ? ' · adopted after a restart' : ''}`
        + `${s.ready_at ? ` · ready since ${formatTime(s.ready_at)}` : ''}`) : null,
      models.length ? launch : h('p', { class: 'muted' }, 'No GGUF model on disk yet: download one below.'));
  }

  /** @param {string} path @param {object} body */
  async function act(path, body) {
    try { showServer(await api.post(path, body)); } catch (err) { toast(message(err), 'error'); }
  }

  async function loadCatalog() {
    try {
      const data = await api.get('/api/models');
      const entries = data.catalogs.llm?.entries || [];
      replace(catalogBox, h('h2', null, 'Catalog'), h('div', { class: 'table-scroll' }, h('table', { class: 'list' },
        h('tbody', null, entries.map((/** @type {any} */ e) => h('tr', { 'data-file': e.file },
          h('td', null, e.name, h('div', { class: 'muted small' }, e.tags.join(', '))), h('td', null, `${e.size_gb} GB`),
          h('td', null, e.status === 'missing' ? h('button', { type: 'button', class: 'button secondary', onclick: async () => {
            try { await api.post('/api/downloads', { catalog_file: e.file }); toast(`${e.name}: downloading.`, 'success'); loadCatalog(); }
            catch (err) { toast(message(err), 'error'); }
          } }, 'Download') : h('span', { class: `badge model-${e.status}` }, e.status))))))));
    } catch (err) { replace(catalogBox, h('p', { class: 'error-line' }, message(err))); }
  }

  async function loadLog() {
    try { logBox.textContent = (await api.get('/api/llm/server/logs?lines=300')).lines.join('\n'); }
    catch (err) { logBox.textContent = message(err); }
  }

  async function load() {
    try {
      const s = await api.get('/api/llm/server');
      showState(s);
      if (admin) showServer(s);
    } catch (err) { replace(stateLine, h('span', { class: 'error-line' }, message(err))); }
  }

  /** @param {string} which */
  function choose(which) {
    for (const [name, tab, panel] of [['chat', chatTab, chatPanel], ['server', serverTab, serverPanel]]) {
      /** @type {HTMLElement} */ (tab).setAttribute('aria-selected', String(name === which));
      /** @type {HTMLElement} */ (panel).hidden = name !== which;
    }
    if (which === 'server') { loadCatalog(); loadLog(); }
  }
  const chatTab = h('button', { role: 'tab', id: 'llm-tab-chat', type: 'button', 'aria-selected': 'true', onclick: () => choose('chat') }, 'Chat');
  const serverTab = h('button', { role: 'tab', id: 'llm-tab-server', type: 'button', 'aria-selected': 'false', onclick: () => choose('server') }, 'Server');

  replace(main, h('h1', null, 'LLM'),
    admin ? h('div', { role: 'tablist', class: 'row llm-tabs', 'aria-label': 'LLM' }, chatTab, serverTab) : null,
    chatPanel, admin ? serverPanel : null);
  load();
  loadList();
  loadPresets();
  const off = [live.on('llm/server', () => load()), live.on('downloads/finished', () => { if (admin) load(); })];
  return () => off.forEach((stopListening) => stopListening());
}
