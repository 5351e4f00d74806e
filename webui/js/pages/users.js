// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { toast } from '../lib/toast.js';

/** @param {unknown} err */
const message = (err) => (err instanceof ApiError ? err.message : String(err));

/** @param {HTMLElement} main @param {{me: any}} context */
export function mount(main, context) {
  const list = h('div');

  /** @param {() => Promise<any>} action @param {string} done */
  async function act(action, done) {
    try {
      await action();
      toast(done, 'success');
      load();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  async function load() {
    try {
      const { items } = await api.get('/api/users');
      replace(list, h('table', { class: 'list' },
        h('thead', null, h('tr', null, h('th', null, 'User'), h('th', null, 'Role'), h('th', null, 'State'), h('th', null, ''))),
        h('tbody', null, items.map((/** @type {any} */ u) => h('tr', { 'data-user': u.username },
          h('td', null, u.username), h('td', null, u.role), h('td', null, u.disabled ? 'disabled' : 'active'),
          h('td', { class: 'row' }, u.id === context.me?.user.id ? h('span', { class: 'muted' }, 'you') : [
            h('button', { class: 'link-button', onclick: () => act(() => api.patch(`/api/users/${u.id}`,
              { role: u.role === 'admin' ? 'user' : 'admin' }), `${u.username} is now ${u.role === 'admin' ? 'a user' : 'an admin'}.`) },
            u.role === 'admin' ? 'Make user' : 'Make admin'),
            h('button', { class: 'link-button', onclick: () => act(() => api.patch(`/api/users/${u.id}`,
              { disabled: !u.disabled }), `${u.username} ${u.disabled ? 'enabled' : 'disabled'}.`) },
            u.disabled ? 'Enable' : 'Disable'),
            h('button', { class: 'link-button', onclick: () => {
              const password = prompt(`New password for ${u.username} (at least 10 characters):`);
              if (password) act(() => api.post(`/api/users/${u.id}/password`, { password }), 'Password reset; their sessions ended.');
            } }, 'Reset password'),
            h('button', { class: 'link-button', onclick: () => act(() => api.post(`/api/users/${u.id}/revoke-sessions`),
              `${u.username} was signed out everywhere.`) }, 'Sign out everywhere'),
            h('button', { class: 'link-button', onclick: () => {
              if (confirm(`Delete ${u.username}?`)) act(() => api.del(`/api/users/${u.id}`), `${u.username} deleted.`);
            } }, 'Delete'),
          ]))))));
    } catch (err) {
      replace(list, h('p', { class: 'error-line' }, message(err)));
    }
  }

  const form = h('form', { id: 'new-user', class: 'stack', onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    const target = /** @type {HTMLFormElement} */ (e.target);
    const data = new FormData(target);
    await act(() => api.post('/api/users', { username: String(data.get('username')), password: String(data.get('password')),
      role: String(data.get('role')) }), `User ${data.get('username')} created.`);
    target.reset();
  } },
  h('div', { class: 'row' },
    h('label', null, 'User name', h('input', { name: 'username', required: true, maxlength: 64, autocomplete: 'off' })),
    h('label', null, 'Password', h('input', { name: 'password', type: 'password', required: true, minlength: 10,
      autocomplete: 'new-password' })),
    h('label', null, 'Role', h('select', { name: 'role' }, h('option', { value: 'user' }, 'user'),
      h('option', { value: 'admin' }, 'admin')))),
  h('button', { class: 'button', type: 'submit' }, 'Add user'));

  replace(main, h('h1', null, 'Users'), h('div', { class: 'stack' },
    h('section', { class: 'card' }, h('h2', null, 'Add a user'), form),
    h('section', { class: 'card' }, h('h2', null, 'Everyone'), list)));
  load();
}
