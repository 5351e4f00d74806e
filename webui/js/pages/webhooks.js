// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { toast } from '../lib/toast.js';

/** @param {unknown} err */
const message = (err) => (err instanceof ApiError ? err.message : String(err));

const LOG_REFRESH_MS = 5000;

/**
 * The event checkboxes of a form; `chosen` are ticked.
 * @param {{type: string, description: string}[]} kinds @param {string[]} chosen @param {string} prefix
 */
function eventChoices(kinds, chosen, prefix) {
  return h('fieldset', { class: 'stack webhook-events' }, h('legend', null, 'Events'),
    kinds.map((kind) => h('label', { class: 'checkbox' },
      h('input', { type: 'checkbox', name: 'events', value: kind.type, id: `${prefix}-${kind.type}`,
        checked: chosen.includes(kind.type) }),
      h('span', null, h('code', null, kind.type), ` · ${kind.description}`))));
}

/** @param {HTMLFormElement} form */
function formValues(form) {
  const data = new FormData(form);
  return { url: String(data.get('url') || '').trim(), events: data.getAll('events').map(String) };
}

/** Shows a secret once, with a line saying so. @param {HTMLElement} box @param {string} secret */
function showSecret(box, secret) {
  replace(box, h('p', null, 'Copy this signing secret now; it is shown only once:'),
    h('p', { class: 'secret-once', id: 'webhook-secret' }, secret),
    h('p', { class: 'muted small' }, 'Check each request: X-Studio-Signature is t=<unix time>,v1=<hex>, where hex is '
      + 'HMAC-SHA256(secret, "<t>.<body>").'));
}

/** One delivery and its attempts, newest first. @param {any} d */
function deliveryRow(d) {
  const attempts = d.log.map((/** @type {any} */ a) => `${formatTime(a.at)}: ${a.status_code ?? '—'}`
    + `${a.error ? ` (${a.error})` : ''}, ${a.duration_ms} ms`);
  const when = d.status === 'pending' && d.next_attempt_at ? `next try ${formatTime(d.next_attempt_at)}` : '';
  return h('tr', { 'data-delivery': d.id },
    h('td', null, formatTime(d.created_at)), h('td', null, h('code', null, d.type)),
    h('td', { 'data-status': d.status }, d.status, when ? h('span', { class: 'muted small' }, ` · ${when}`) : null),
    h('td', { class: 'small', style: { overflowWrap: 'anywhere' } }, attempts.length ? h('ul', null, attempts.map((/** @type {string} */ t) =>
      h('li', null, t))) : 'not tried yet'));
}

/** @param {HTMLElement} main */
export function mount(main) {
  const created = h('div', { id: 'new-webhook-secret' });
  const list = h('div', { class: 'stack', id: 'webhook-list' });
  const errorLine = h('p', { class: 'error-line', role: 'alert' });
  /** @type {{type: string, description: string}[]} */
  let kinds = [];
  /** @type {Map<number, () => Promise<void>>} open delivery logs, refreshed while the page shows */
  const openLogs = new Map();

  const createForm = h('form', { id: 'webhook-form', class: 'stack', novalidate: true });

  function renderCreateForm() {
    replace(createForm,
      h('label', { for: 'webhook-url' }, 'URL'),
      h('input', { id: 'webhook-url', name: 'url', type: 'url', required: true, maxlength: 2048,
        placeholder: 'https://example.com/studio-hook' }),
      eventChoices(kinds, ['job.completed', 'job.failed'], 'new'),
      errorLine,
      h('button', { class: 'button', type: 'submit' }, 'Add webhook'));
  }

  createForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    errorLine.textContent = '';
    try {
      const made = await api.post('/api/webhooks', formValues(createForm));
      showSecret(created, made.secret);
      createForm.reset();
      await load();
    } catch (err) {
      errorLine.textContent = message(err);
    }
  });

  /** @param {any} hook @param {HTMLElement} box */
  function openLog(hook, box) {
    const refresh = async () => {
      try {
        const { items } = await api.get(`/api/webhooks/${hook.id}/deliveries?limit=20`);
        replace(box, items.length === 0 ? h('p', { class: 'muted' }, 'No deliveries yet.') : h('div', { class: 'table-scroll' },
          h('table', { class: 'list' }, h('caption', { class: 'muted small' }, 'The last 20 deliveries'),
            h('thead', null, h('tr', null, h('th', null, 'When'), h('th', null, 'Event'), h('th', null, 'Status'),
              h('th', null, 'Attempts'))),
            h('tbody', null, items.map(deliveryRow)))));
      } catch (err) {
        replace(box, h('p', { class: 'error-line' }, message(err)));
      }
    };
    openLogs.set(hook.id, refresh);
    refresh();
  }

  /** @param {any} hook */
  function card(hook) {
    const logBox = h('div', { class: 'webhook-log' });
    const secretBox = h('div');
    const editBox = h('div');
    /** @param {string} path @param {any} [body] @param {string} [done] */
    const act = async (path, body, done) => {
      try {
        const answer = await api.post(`/api/webhooks/${hook.id}${path}`, body || {});
        if (done) toast(done, 'success');
        return answer;
      } catch (err) {
        toast(message(err), 'error');
        return null;
      }
    };
    const logButton = h('button', { type: 'button', class: 'button secondary', 'aria-expanded': 'false',
      onclick: () => {
        const open = !openLogs.has(hook.id);
        logButton.setAttribute('aria-expanded', String(open));
        if (open) openLog(hook, logBox);
        else { openLogs.delete(hook.id); replace(logBox); }
      } }, 'Delivery log');
    const edit = () => {
      const form = h('form', { class: 'stack', novalidate: true },
        h('label', { for: `webhook-url-${hook.id}` }, 'URL'),
        h('input', { id: `webhook-url-${hook.id}`, name: 'url', type: 'url', value: hook.url, maxlength: 2048 }),
        eventChoices(kinds, hook.events, `edit-${hook.id}`),
        h('div', { class: 'row' }, h('button', { class: 'button', type: 'submit' }, 'Save'),
          h('button', { class: 'button secondary', type: 'button', onclick: () => replace(editBox) }, 'Cancel')));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          await api.put(`/api/webhooks/${hook.id}`, formValues(/** @type {HTMLFormElement} */ (form)));
          toast('Webhook saved.', 'success');
          await load();
        } catch (err) {
          toast(message(err), 'error');
        }
      });
      replace(editBox, form);
    };
    const section = h('section', { class: 'card webhook', 'data-webhook': hook.id },
      h('h2', { style: { overflowWrap: 'anywhere' } }, hook.url),
      h('p', { class: 'muted small' }, `${hook.enabled ? 'Enabled' : 'Disabled'} · ${hook.events.join(', ')}`),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'button secondary', onclick: async () => {
          if (await act('/test', {}, 'Test delivery queued.') && !openLogs.has(hook.id)) logButton.click();
          setTimeout(() => openLogs.get(hook.id)?.(), 1500);
        } }, 'Send test'),
        logButton,
        h('button', { type: 'button', class: 'button secondary', onclick: async () => {
          try {
            await api.put(`/api/webhooks/${hook.id}`, { enabled: !hook.enabled });
            await load();
          } catch (err) { toast(message(err), 'error'); }
        } }, hook.enabled ? 'Disable' : 'Enable'),
        h('button', { type: 'button', class: 'link-button', onclick: edit }, 'Edit'),
        h('button', { type: 'button', class: 'link-button', onclick: async () => {
          if (!window.confirm('Replace the signing secret? The receiver must get the new one.')) return;
          const answer = await act('/secret', {});
          if (answer) showSecret(secretBox, answer.secret);
        } }, 'New secret'),
        h('button', { type: 'button', class: 'link-button danger-text', onclick: async () => {
          if (!window.confirm(`Delete the webhook to ${hook.url} and its delivery log?`)) return;
          try { await api.del(`/api/webhooks/${hook.id}`); openLogs.delete(hook.id); await load(); }
          catch (err) { toast(message(err), 'error'); }
        } }, 'Delete')),
      secretBox, editBox, logBox);
    if (openLogs.has(hook.id)) {
      logButton.setAttribute('aria-expanded', 'true');
      openLog(hook, logBox);
    }
    return section;
  }

  async function load() {
    try {
      const answer = await api.get('/api/webhooks');
      const first = kinds.length === 0;
      kinds = answer.event_types;
      if (first) renderCreateForm();
      replace(list, answer.items.length === 0 ? h('p', { class: 'muted' }, 'No webhooks yet.') : answer.items.map(card));
    } catch (err) {
      replace(list, h('p', { class: 'error-line' }, message(err)));
    }
  }

  replace(main, h('h1', null, 'Webhooks'),
    h('div', { class: 'stack' },
      h('section', { class: 'card' }, h('h2', null, 'Add a webhook'),
        h('p', { class: 'muted' }, 'Studio POSTs a signed JSON body {id, type, created_at, data} to the URL when one of '
          + 'your jobs, downloads or schedules does what you chose. Failed deliveries are retried for 24 hours.'),
        createForm, created),
      list));
  load();
  const timer = setInterval(() => { for (const refresh of openLogs.values()) refresh(); }, LOG_REFRESH_MS);
  return () => clearInterval(timer);
}
