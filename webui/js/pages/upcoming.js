// @ts-check
import { h, replace } from '../lib/dom.js';

/** Pages whose features are still being built say so plainly instead of pretending. */
/** @param {HTMLElement} main @param {{title: string}} context */
export function mount(main, context) {
  replace(main,
    h('h1', null, context.title),
    h('section', { class: 'card empty' },
      h('p', null, `${context.title} is not built yet in this version of Studio.`),
      h('p', { class: 'muted' }, 'Make images on ', h('a', { href: '/run', 'data-link': true }, 'Run'),
        '; System shows ComfyUI and the machine live.')));
}
