// @ts-check
import { api } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { message } from '../lib/jobs.js';

/** The library: what each workflow does and whether this ComfyUI can run it, in words. */
/** @param {HTMLElement} main */
export function mount(main) {
  const list = h('div', { class: 'grid', id: 'workflow-list' });
  (async () => {
    try {
      const { items, problems } = await api.get('/api/workflows');
      replace(list, items.map((/** @type {any} */ w) => h('section', { class: 'card', 'data-workflow': w.id },
        h('h2', null, w.name),
        h('p', { class: 'muted' }, w.description || ''),
        w.readiness.ready === true ? h('p', { class: 'ready' }, 'Ready')
          : h('ul', { class: 'error-line' }, w.readiness.problems.map((/** @type {string} */ p) => h('li', null, p))),
        h('div', { class: 'actions' }, h('a', { class: 'button', href: `/run?workflow=${w.id}`, 'data-link': true }, 'Run'))),
      ), problems.map((/** @type {any} */ p) => h('section', { class: 'card' }, h('h2', null, 'Not loaded'),
        h('p', { class: 'path' }, p.folder), h('p', { class: 'error-line' }, p.message))));
    } catch (err) {
      replace(list, h('p', { class: 'error-line' }, message(err)));
    }
  })();
  replace(main, h('h1', null, 'Workflows'), list);
}
