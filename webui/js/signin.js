// @ts-check
import { api, ApiError } from './lib/api.js';

/** The sign-in and first-run setup pages: one form each, no navigation, no live socket. */
const main = /** @type {HTMLElement} */ (document.querySelector('main'));
const mode = main.dataset.mode;
const form = /** @type {HTMLFormElement} */ (document.getElementById('signin-form'));
const errorLine = /** @type {HTMLElement} */ (document.getElementById('form-error'));

/** Only same-site paths: `next` must never send someone to another site after signing in. */
function nextPath() {
  const next = new URLSearchParams(location.search).get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  errorLine.textContent = '';
  const data = new FormData(form);
  const username = String(data.get('username') || '').trim();
  const password = String(data.get('password') || '');
  if (mode === 'setup' && password !== String(data.get('password2') || '')) {
    errorLine.textContent = 'The two passwords differ.';
    return;
  }
  const button = /** @type {HTMLButtonElement} */ (form.querySelector('button'));
  button.disabled = true;
  try {
    await api.post(mode === 'setup' ? '/api/auth/setup' : '/api/auth/login', { username, password });
    location.assign(nextPath());
  } catch (err) {
    errorLine.textContent = err instanceof ApiError ? err.message : String(err);
    button.disabled = false;
  }
});
