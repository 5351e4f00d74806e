// @ts-check
import { api, ApiError } from './lib/api.js';

/** The sign-in and first-run setup pages: one form each, no navigation, no live socket. */
const main = /** @type {HTMLElement} */ (document.querySelector('main'));
const mode = main.dataset.mode;
const form = /** @type {HTMLFormElement} */ (document.getElementById('signin-form'));
const errorLine = /** @type {HTMLElement} */ (document.getElementById('form-error'));

/**
 * Where to go after signing in: `next` exactly as the browser itself would resolve it, accepted
 * only when that lands on this origin. Prefix checks on the raw text are not enough: browsers drop
 * tabs and newlines and read `\` as `/`, so `/%09/evil.example/` would leave the site.
 */
export function nextPath(next = new URLSearchParams(location.search).get('next') || '/') {
  let target;
  try {
    target = new URL(next, location.origin);
  } catch {
    return '/';
  }
  if (target.origin !== location.origin) return '/';
  return target.pathname + target.search + target.hash;
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
