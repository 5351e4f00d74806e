// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { toast } from '../lib/toast.js';
import { mountUpdates } from './settings-updates.js';

/** Field order, labels and input types of the Settings page. */
const FIELDS = [
  { key: 'comfyui_url', label: 'ComfyUI address', type: 'url', help: 'Where Studio finds ComfyUI, e.g. http://127.0.0.1:8188.' },
  // Studio's own ComfyUI (docs/comfyui.md): a change restarts it with the new command line.
  { key: 'comfyui_dir', label: 'ComfyUI folder (Studio runs it)', type: 'text',
    help: 'A ComfyUI checkout (with main.py) that Studio starts, supervises and talks to instead of the address above. Empty: as configured (COMFYUI_DIR).' },
  { key: 'comfyui_python', label: 'Python for ComfyUI', type: 'text',
    help: 'An absolute path; empty: the folder\u2019s venv or .venv, else Studio\u2019s own Python.' },
  { key: 'comfyui_args', label: 'Extra ComfyUI flags', type: 'text', help: 'E.g. --lowvram --fast. Studio sets --listen, --port and the folders itself.' },
  { key: 'comfyui_preview_method', label: 'ComfyUI previews', options: [['auto', 'Auto'], ['taesd', 'TAESD (better)'],
    ['latent2rgb', 'Latent to RGB (fast)'], ['none', 'None']] },
  { key: 'download_concurrency', label: 'Parallel downloads', type: 'number', min: 1, max: 8 },
  { key: 'trusted_proxies', label: 'Trusted proxies', type: 'text',
    help: 'IPs or networks, comma-separated, whose X-Forwarded-* headers are believed (e.g. the RunPod proxy).' },
  { key: 'session_idle_hours', label: 'Sign out after idle (hours)', type: 'number', min: 1, step: 'any' },
  { key: 'session_max_days', label: 'Sign out after (days)', type: 'number', min: 1, step: 'any' },
  { key: 'civitai_api_key', label: 'CivitAI API key', secret: true },
  { key: 'civitai_site', label: 'CivitAI site', options: [['com', 'civitai.com (safe for work only)'],
    ['red', 'civitai.red (everything)'], ['configured', 'CIVITAI_ENDPOINT as configured']],
  help: 'Where models, versions, images and downloads are asked for, and where the API key is sent: only to this site.' },
  { key: 'hf_token', label: 'Hugging Face token', secret: true },
  { key: 'telegram_bot_token', label: 'Telegram bot token', secret: true },
  { key: 'webhook_secret', label: 'Webhook secret', secret: true },
  { key: 'webhook_allowed_hosts', label: 'Webhook allowed hosts', type: 'text',
    help: 'Host names or IPs, comma-separated, that webhooks may reach although they are private or local (e.g. a LAN server).' },
  // The LLM (docs/llm.md): who holds the GPU, and how llama-server is started.
  { key: 'llm_gpu_policy', label: 'GPU: LLM and ComfyUI', options: [['take_turns', 'Take turns'], ['share', 'Share'],
    ['llm_never', 'LLM never during jobs']],
  help: 'Take turns: the LLM leaves before a job and loads again for the next chat. Share: both stay loaded (a GPU with '
    + 'room for both). LLM never: chats are refused while jobs run or wait.' },
  { key: 'llm_job_wait_s', label: 'A job waits for a chat at most (seconds)', type: 'number', min: 1, max: 3600, step: 'any',
    help: 'Then the LLM is stopped for the job anyway; a chat waits as long for ComfyUI’s queue.' },
  { key: 'llm_server_binary', label: 'llama-server binary', type: 'text',
    help: 'An absolute path; empty: /opt/llama-server, then llama-server on PATH, then a packaged CPU build.' },
  { key: 'llm_port', label: 'LLM port', type: 'number', min: 0, max: 65535, help: 'On 127.0.0.1; 0: any free port.' },
  { key: 'llm_load_timeout_s', label: 'LLM load timeout (seconds)', type: 'number', min: 5, max: 3600, step: 'any' },
];

/** @param {HTMLElement} main */
export function mount(main) {
  const form = h('form', { id: 'settings-form', class: 'stack', novalidate: true });
  const errorLine = h('p', { class: 'error-line', role: 'alert' });

  /** @type {any} */
  let loaded = {};

  /** @param {any} settings */
  function render(settings) {
    loaded = settings;
    replace(form, FIELDS.map((field) => {
      const current = settings[field.key];
      const attrs = field.secret
        ? { type: 'password', autocomplete: 'off', placeholder: current.set ? `saved: ${current.value}` : 'not set' }
        : { type: field.type, value: current.value ?? '', min: field.min, max: field.max, step: field.step };
      return h('div', { class: 'setting', 'data-key': field.key },
        h('label', { for: `setting-${field.key}` }, field.label,
          h('span', { class: 'muted small' }, ` · from the ${current.source}`)),
        h('div', { class: 'row' },
          field.options
            ? h('select', { id: `setting-${field.key}`, name: field.key }, field.options.map(([value, text]) =>
              h('option', { value, selected: value === current.value }, text)))
            : h('input', { id: `setting-${field.key}`, name: field.key, ...attrs }),
          field.secret && current.set ? h('button', { type: 'button', class: 'link-button', onclick: () => save({ [field.key]: '' }) },
            'Clear') : null),
        field.help ? h('p', { class: 'muted small' }, field.help) : null,
        field.key === 'comfyui_url' ? h('p', { class: 'small comfyui-check', role: 'status' }) : null,
        h('p', { class: 'error-line field-error' }));
    }), errorLine, h('button', { class: 'button', type: 'submit' }, 'Save'));
  }

  /** @param {Record<string, any>} changes */
  async function save(changes) {
    errorLine.textContent = '';
    form.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
    try {
      const answer = await api.put('/api/settings', changes);
      render(answer.settings);
      const check = answer.comfyui_check;
      if (check) {
        // Saved either way (ComfyUI may be starting); the line says what answered at the address.
        const line = form.querySelector('[data-key="comfyui_url"] .comfyui-check');
        if (line) {
          line.textContent = check.message;
          line.className = `small comfyui-check ${check.answered === 'comfyui' ? 'ok-line' : 'warn-line'}`;
          line.setAttribute('data-answered', check.answered);
        }
        toast(check.answered === 'comfyui' ? `Saved. ${check.message}` : `Saved, but: ${check.message}`,
          check.answered === 'comfyui' ? 'success' : 'error');
      } else {
        toast('Settings saved and applied.', 'success');
      }
    } catch (err) {
      if (err instanceof ApiError) {
        for (const [key, text] of Object.entries(err.fields)) {
          const slot = form.querySelector(`[data-key="${key}"] .field-error`);
          if (slot) slot.textContent = String(text);
        }
        errorLine.textContent = err.message;
      } else {
        errorLine.textContent = String(err);
      }
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    /** @type {Record<string, any>} */
    const changes = {};
    for (const field of FIELDS) {
      const input = /** @type {HTMLInputElement} */ (form.querySelector(`[name="${field.key}"]`));
      // An emptied field (not a secret) goes back to the configured value: sent as null.
      const emptied = !field.secret && input.value === '' && (loaded[field.key]?.value ?? '') !== '';
      const number = field.type === 'number' && input.value !== '' ? Number(input.value) : input.value;
      const value = emptied ? null : number;
      // Only what the person changed is saved: untouched fields keep following the configuration.
      if (field.secret ? value !== '' : value !== (loaded[field.key]?.value ?? '')) changes[field.key] = value;
    }
    if (Object.keys(changes).length === 0) {
      toast('Nothing changed.', 'info');
      return;
    }
    save(changes);
  });

  replace(main, h('h1', null, 'Settings'), h('section', { class: 'card' },
    h('p', { class: 'muted' }, 'Saved values take effect at once and win over the environment and settings.toml. '
      + 'Secrets are kept on the server and never shown again.'), form), mountUpdates());
  api.get('/api/settings').then((answer) => render(answer.settings))
    .catch((err) => replace(form, h('p', { class: 'error-line' }, err instanceof ApiError ? err.message : String(err))));
}
