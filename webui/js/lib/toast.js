// @ts-check
import { h } from './dom.js';

/**
 * A short message in the corner. Errors stay until dismissed; others fade after a while.
 * @param {string} message
 * @param {'info' | 'success' | 'error'} [kind]
 */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', null, message),
    h('button', { class: 'toast-close', 'aria-label': 'Dismiss', onclick: () => item.remove() }, '×'));
  box.appendChild(item);
  if (kind !== 'error') setTimeout(() => item.remove(), 5000);
}
