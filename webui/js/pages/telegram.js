// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { toast } from '../lib/toast.js';

/** @param {unknown} err */
const message = (err) => (err instanceof ApiError ? err.message : String(err));

const REFRESH_MS = 5000;

/** Settings → Telegram (admins): the token, the bot's status, pending requests and allowed chats. */
/** @param {HTMLElement} main */
export function mount(main) {
  const tokenBox = h('section', { class: 'card stack', id: 'telegram-token' });
  const statusBox = h('section', { class: 'card stack', id: 'telegram-status', 'aria-live': 'polite' });
  const pendingBox = h('section', { class: 'card stack', id: 'telegram-pending' });
  const allowedBox = h('section', { class: 'card stack', id: 'telegram-allowed' });
  const policyBox = h('section', { class: 'card stack', id: 'telegram-policy' });
  const errorLine = h('p', { class: 'error-line', role: 'alert' });

  async function renderToken() {
    try {
      const answer = await api.get('/api/settings');
      const token = answer.settings.telegram_bot_token;
      const input = h('input', { id: 'telegram-token-input', type: 'password', autocomplete: 'off', maxlength: 512,
        placeholder: token.set ? `${token.value} (saved)` : '123456789:AA…' });
      const form = h('form', { class: 'stack', novalidate: true },
        h('label', { for: 'telegram-token-input' }, 'Bot token (from @BotFather)'), input, errorLine,
        h('div', { class: 'row' },
          h('button', { class: 'button', type: 'submit' }, 'Save token'),
          token.set ? h('button', { type: 'button', class: 'button secondary', onclick: () => save('') },
            'Remove token') : null));
      form.addEventListener('submit', (e) => { e.preventDefault(); save(/** @type {HTMLInputElement} */ (input).value.trim()); });
      replace(tokenBox, h('h2', null, 'Token'),
        h('p', { class: 'muted' }, 'Saving a new token restarts only the bot; Studio keeps running.'), form);
    } catch (err) {
      replace(tokenBox, h('p', { class: 'error-line' }, message(err)));
    }
  }

  /** @param {string} value */
  async function save(value) {
    errorLine.textContent = '';
    try {
      await api.put('/api/settings', { telegram_bot_token: value });
      toast(value ? 'Token saved: the bot restarts.' : 'Token removed: the bot stopped.');
      await renderToken();
      setTimeout(load, 1500);
    } catch (err) { errorLine.textContent = message(err); }
  }

  /** @param {any} chat @param {any[]} users */
  function pendingRow(chat, users) {
    const select = h('select', { 'aria-label': `Studio user for chat ${chat.chat_id}` },
      users.map((u) => h('option', { value: String(u.id) }, u.username)));
    return h('tr', { 'data-chat': chat.chat_id },
      h('td', null, chat.title || '—', chat.is_group ? h('span', { class: 'muted small' }, ' (group)') : null),
      h('td', null, chat.username ? `@${chat.username}` : '—'), h('td', null, h('code', null, String(chat.chat_id))),
      h('td', null, formatTime(chat.first_message_at)),
      h('td', null, h('div', { class: 'row' }, select,
        h('button', { type: 'button', class: 'button', onclick: () => act(chat, 'approve',
          { user_id: Number(/** @type {HTMLSelectElement} */ (select).value) }) }, 'Approve'),
        h('button', { type: 'button', class: 'button secondary', onclick: () => act(chat, 'deny', {}) }, 'Deny'))));
  }

  /** @param {any} chat */
  function allowedRow(chat) {
    return h('tr', { 'data-chat': chat.chat_id },
      h('td', null, chat.title || '—', chat.is_group ? h('span', { class: 'muted small' }, ' (group)') : null),
      h('td', null, chat.username ? `@${chat.username}` : '—'), h('td', null, chat.user || '—'),
      h('td', null, notices(chat)),
      h('td', null, h('button', { type: 'button', class: 'link-button danger-text', onclick: () => {
        if (window.confirm(`Revoke ${chat.title || chat.chat_id}? Its next message gets no answer.`)) act(chat, 'deny', {});
      } }, 'Revoke')));
  }

  /** What an allowed chat hears besides its own jobs. @param {any} chat */
  const notices = (chat) => [chat.notify && 'finished jobs', chat.notify_downloads && 'downloads',
    chat.notify_start && 'Studio starting'].filter(Boolean).join(', ') || 'its own jobs only';

  /** The group policy as a choice, saved as the ``telegram_groups`` setting. @param {string} policy */
  function groupPolicy(policy) {
    const select = /** @type {HTMLSelectElement} */ (h('select', { id: 'telegram-groups' },
      h('option', { value: 'ask', selected: policy === 'ask' }, 'Listed here as a request, like any chat'),
      h('option', { value: 'ignore', selected: policy === 'ignore' }, 'Ignored: no answer, not listed')));
    select.addEventListener('change', async () => {
      try {
        await api.put('/api/settings', { telegram_groups: select.value });
        toast(select.value === 'ignore' ? 'Groups not allowed yet are now ignored.' : 'Groups may now ask.', 'success');
      } catch (err) { toast(message(err), 'error'); }
    });
    return h('div', { class: 'field' }, h('label', { for: 'telegram-groups' }, 'Group chats not allowed yet'), select,
      h('p', { class: 'muted small' }, 'A group acts only once you approve it here; everyone in an approved group '
        + 'acts as the linked user. Groups approved before keep working either way.'));
  }

  /** @param {any} chat @param {string} verb @param {object} body */
  async function act(chat, verb, body) {
    try { await api.post(`/api/telegram/chats/${chat.chat_id}/${verb}`, body); await load(); }
    catch (err) { toast(message(err), 'error'); }
  }

  /** @param {string[]} heads @param {HTMLElement[]} rows */
  const table = (heads, rows) => h('div', { class: 'table-scroll' }, h('table', { class: 'list' },
    h('thead', null, h('tr', null, heads.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', null, rows)));

  async function load() {
    try {
      const answer = await api.get('/api/telegram');
      const s = answer.status;
      replace(statusBox, h('h2', null, 'Status'),
        h('p', { 'data-running': String(s.running) }, !s.token_set ? 'No token: the bot is off.'
          : s.running ? `Running${s.username ? ` as @${s.username}` : ''}.` : 'Stopped.'),
        h('p', { class: 'muted' }, `Last poll: ${s.last_poll_at ? formatTime(s.last_poll_at) : 'never'}`),
        s.last_error ? h('p', { class: 'error-line' }, s.last_error) : null);
      const pending = answer.chats.filter((/** @type {any} */ c) => c.status === 'pending');
      const allowed = answer.chats.filter((/** @type {any} */ c) => c.status === 'allowed');
      // Drawn once: the 5-second refresh must not close the list under a person's pointer.
      if (!policyBox.childElementCount) replace(policyBox, h('h2', null, 'Groups'), groupPolicy(answer.group_policy));
      replace(pendingBox, h('h2', null, 'Pending requests'),
        pending.length ? table(['Name', 'Username', 'Chat id', 'First message', 'Link to user'],
          pending.map((/** @type {any} */ c) => pendingRow(c, answer.users))) : h('p', { class: 'muted' }, 'None.'));
      replace(allowedBox, h('h2', null, 'Allowed chats'),
        allowed.length ? table(['Name', 'Username', 'Acts as', 'Hears about', ''], allowed.map(allowedRow))
          : h('p', { class: 'muted' }, 'None yet.'));
    } catch (err) {
      replace(statusBox, h('p', { class: 'error-line' }, message(err)));
    }
  }

  replace(main, h('h1', null, 'Telegram'),
    h('p', { class: 'muted' }, 'Run presets from a phone. See docs/telegram.md for creating a bot with @BotFather.'),
    h('div', { class: 'stack' }, tokenBox, statusBox, pendingBox, allowedBox, policyBox));
  renderToken();
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}
