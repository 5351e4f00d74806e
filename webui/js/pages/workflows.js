// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';
import { mappingEditor } from './mapping.js';

/** The library: what each workflow does, whether this ComfyUI can run it, import and mapping. */
/** @param {HTMLElement} main @param {{me: any}} context */
export function mount(main, context) {
  const list = h('div', { class: 'grid', id: 'workflow-list' });
  const editorBox = h('div', { id: 'mapping-box' });
  const admin = context.me?.user.role === 'admin';

  async function load() {
    try {
      const { items, problems } = await api.get('/api/workflows');
      replace(list, items.map((/** @type {any} */ w) => h('section', { class: 'card', 'data-workflow': w.id },
        h('h2', null, w.name),
        h('p', { class: 'muted' }, w.description || ''),
        w.readiness.ready === true ? h('p', { class: 'ready' }, 'Ready')
          : h('ul', { class: 'error-line' }, w.readiness.problems.map((/** @type {string} */ p) => h('li', null, p))),
        h('div', { class: 'actions' },
          h('a', { class: 'button', href: `/run?workflow=${w.id}`, 'data-link': true }, 'Run'),
          w.readiness.missing_models?.length ? h('button', { class: 'link-button', 'data-action': 'install-missing',
            onclick: () => installMissing(w.id) }, 'Install missing models') : null,
          admin && !w.bundled ? h('button', { class: 'link-button', 'data-action': 'edit-mapping',
            onclick: () => openEditor(w.id) }, 'Edit form') : null))),
      problems.map((/** @type {any} */ p) => h('section', { class: 'card' }, h('h2', null, 'Not loaded'),
        h('p', { class: 'path' }, p.folder), h('p', { class: 'error-line' }, p.message))));
    } catch (err) {
      replace(list, h('p', { class: 'error-line' }, message(err)));
    }
  }

  /** Shows what would be downloaded (and what no catalog knows), then queues it. @param {string} id */
  async function installMissing(id) {
    try {
      const plan = await api.get(`/api/workflows/${id}/missing`);
      if (!plan.resolvable.length) {
        toast(`No catalog knows where to get: ${plan.unknown.join(', ')}.`, 'error');
        return;
      }
      const names = plan.resolvable.map((/** @type {any} */ m) => m.name).join(', ');
      const unknown = plan.unknown.length ? `\nNo catalog has: ${plan.unknown.join(', ')}.` : '';
      if (!confirm(`Download ${names} (${plan.total_gb} GB)?${unknown}`)) return;
      await api.post(`/api/workflows/${id}/install-missing`);
      toast('Queued: see Downloads.', 'success');
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  /** @param {string} id */
  async function openEditor(id) {
    replace(editorBox, await mappingEditor(id, { onSaved: load, onClose: () => replace(editorBox) }));
    editorBox.scrollIntoView({ behavior: 'smooth' });
  }

  const importError = h('p', { class: 'error-line', role: 'alert' });
  const importForm = h('form', { id: 'import-form', class: 'stack', onsubmit: async (/** @type {Event} */ e) => {
    e.preventDefault();
    importError.textContent = '';
    const form = /** @type {HTMLFormElement} */ (e.target);
    try {
      const me = await api.get('/api/auth/me');
      const response = await fetch('/api/workflows', { method: 'POST', body: new FormData(form),
        headers: { 'X-CSRF-Token': me.csrf_token } });
      const data = await response.json();
      if (!response.ok) throw new ApiError(response.status, data.error.code, data.error.message, data.error.details);
      toast(`Imported “${data.name}”.`, 'success');
      form.reset();
      await load();
      openEditor(data.id);
    } catch (err) {
      importError.textContent = message(err);
    }
  } },
  h('p', { class: 'muted' }, 'A workflow saved from ComfyUI (UI or API format JSON), or a PNG/WebP made by ComfyUI.'),
  h('div', { class: 'row' },
    h('label', null, 'File', h('input', { type: 'file', name: 'file', id: 'import-file', required: true,
      accept: '.json,application/json,image/png,image/webp' })),
    h('label', null, 'Name (optional)', h('input', { name: 'name', id: 'import-name', maxlength: 100 })),
    h('label', { class: 'checkbox' }, h('input', { type: 'checkbox', name: 'replace', value: '1' }), 'Replace a workflow with the same id')),
  importError,
  h('button', { class: 'button', type: 'submit' }, 'Import'));

  replace(main, h('h1', null, 'Workflows'),
    admin ? h('section', { class: 'card', id: 'import-card' }, h('h2', null, 'Import a workflow'), importForm) : null,
    editorBox, list);
  load();
}
