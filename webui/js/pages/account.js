// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatTime } from '../lib/format.js';
import { toast } from '../lib/toast.js';

/** @param {unknown} err */
const message = (err) => (err instanceof ApiError ? err.message : String(err));

/**
 * Puts ``text`` on the clipboard; where the browser refuses (plain http, an old browser) the text is
 * selected instead, so Ctrl+C copies it. Says which happened.
 * @param {HTMLElement} shown @param {string} text @returns {Promise<string>}
 */
async function copyText(shown, text) {
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard here');
    await navigator.clipboard.writeText(text);
    return 'Copied';
  } catch {
    const range = document.createRange();
    range.selectNodeContents(shown);
    const selection = window.getSelection();
    selection?.removeAllRanges();
    selection?.addRange(range);
    return document.execCommand?.('copy') ? 'Copied' : 'Selected: press Ctrl+C (⌘C) to copy';
  }
}

/** @param {HTMLElement} main @param {{me: any}} context */
export function mount(main, context) {
  const tokenList = h('div');
  const created = h('div', { id: 'new-token' });

  const passwordForm = h('form', { id: 'password-form', class: 'stack', onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    const data = new FormData(/** @type {HTMLFormElement} */ (e.target));
    try {
      await api.post('/api/auth/password', {
        current_password: String(data.get('current_password')), new_password: String(data.get('new_password')) });
      /** @type {HTMLFormElement} */ (e.target).reset();
      toast('Password changed. Other sessions were signed out.', 'success');
    } catch (err) {
      toast(message(err), 'error');
    }
  } },
  h('div', { class: 'row' },
    h('label', null, 'Current password', h('input', { name: 'current_password', type: 'password', required: true,
      autocomplete: 'current-password' })),
    h('label', null, 'New password', h('input', { name: 'new_password', type: 'password', required: true,
      autocomplete: 'new-password', minlength: 10 }))),
  h('button', { class: 'button', type: 'submit' }, 'Change password'));

  const tokenForm = h('form', { id: 'token-form', class: 'stack', onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    const data = new FormData(/** @type {HTMLFormElement} */ (e.target));
    const expires = String(data.get('expires') || '');
    try {
      const token = await api.post('/api/auth/tokens', { name: String(data.get('name')), scope: String(data.get('scope')),
        expires_at: expires ? new Date(`${expires}T23:59:59`).toISOString() : null });
      const value = h('p', { class: 'secret-once', id: 'token-value' }, token.token);
      const copied = h('span', { class: 'small copy-state', role: 'status' });
      replace(created, h('p', null, 'Copy this token now; it is shown only once:'),
        h('div', { class: 'row token-once' }, value,
          h('button', { type: 'button', class: 'button secondary', id: 'copy-token',
            onclick: async () => { copied.textContent = await copyText(value, token.token); } }, 'Copy'), copied));
      /** @type {HTMLFormElement} */ (e.target).reset();
      loadTokens();
    } catch (err) {
      toast(message(err), 'error');
    }
  } },
  h('div', { class: 'row' },
    h('label', null, 'Name', h('input', { name: 'name', required: true, maxlength: 64, placeholder: 'telegram bot' })),
    h('label', null, 'Scope', h('select', { name: 'scope' },
      h('option', { value: 'full' }, 'full: everything I can do'),
      h('option', { value: 'run' }, 'run: run workflows and presets only'))),
    h('label', null, 'Expires (optional)', h('input', { name: 'expires', type: 'date' }))),
  h('button', { class: 'button', type: 'submit' }, 'Create token'));

  async function loadTokens() {
    try {
      const { items } = await api.get('/api/auth/tokens');
      replace(tokenList, items.length === 0 ? h('p', { class: 'muted' }, 'No API tokens yet.') : h('table', { class: 'list' },
        h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Token'), h('th', null, 'Scope'),
          h('th', { class: 'hide-narrow' }, 'Last used'), h('th', null, ''))),
        h('tbody', null, items.map((/** @type {any} */ t) => h('tr', { 'data-token': t.name },
          h('td', null, t.name), h('td', null, `${t.prefix}…`), h('td', null, t.scope),
          h('td', { class: 'hide-narrow' }, t.last_used_at ? formatTime(t.last_used_at) : 'never'),
          h('td', null, t.revoked ? 'revoked' : h('button', { class: 'link-button', onclick: async () => {
            try { await api.del(`/api/auth/tokens/${t.id}`); loadTokens(); } catch (err) { toast(message(err), 'error'); }
          } }, 'Revoke')))))));
    } catch (err) {
      replace(tokenList, h('p', { class: 'error-line' }, message(err)));
    }
  }

  replace(main, h('h1', null, 'Account'),
    h('div', { class: 'stack' },
      h('section', { class: 'card' }, h('h2', null, `Signed in as ${context.me?.user.username} (${context.me?.user.role})`),
        passwordForm),
      h('section', { class: 'card' }, h('h2', null, 'API tokens'),
        h('p', { class: 'muted' }, 'Send a token as "Authorization: Bearer <token>" or "X-API-Key: <token>".'),
        tokenForm, created, tokenList)));
  loadTokens();
}
