// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { downloadProgress } from '../lib/download-progress.js';
import { message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';
import { installPackButton } from './comfyui-nodes.js';
import { mappingEditor } from './mapping.js';

/** The library: what each workflow does, whether this ComfyUI can run it, import and mapping. */
/** @param {HTMLElement} main @param {{me: any}} context */
export function mount(main, context) {
  const list = h('div', { class: 'grid', id: 'workflow-list' });
  const editorBox = h('div', { id: 'mapping-box' });
  const hiddenBox = h('div', { id: 'hidden-workflows' });
  const admin = context.me?.user.role === 'admin';

  async function load() {
    try {
      const { items, problems, hidden } = await api.get('/api/workflows');
      replace(hiddenBox, admin && hidden?.length ? h('section', { class: 'card', style: { marginTop: '1rem' } },
        h('h2', null, 'Hidden bundled workflows'),
        h('ul', null, hidden.map((/** @type {any} */ w) => h('li', { 'data-hidden-workflow': w.id }, w.name, ' ',
          h('button', { class: 'link-button', 'data-action': 'restore-workflow', onclick: () => restore(w.id, w.name) }, 'Restore'))))) : null);
      replace(list, items.map((/** @type {any} */ w) => h('section', { class: 'card', 'data-workflow': w.id },
        h('h2', null, w.name),
        h('p', { class: 'muted' }, w.description || ''),
        w.readiness.ready === true ? h('p', { class: 'ready' }, 'Ready')
          : h('ul', { class: 'error-line' }, w.readiness.problems.map((/** @type {string} */ p) => h('li', null, p))),
        h('div', { class: 'actions' },
          h('a', { class: 'button', href: `/run?workflow=${w.id}`, 'data-link': true }, 'Run'),
          w.readiness.missing_models?.length || w.readiness.missing_nodes?.length ? h('button', { class: 'link-button',
            'data-action': 'install-missing', onclick: () => installMissing(w.id) }, 'What is missing?') : null,
          admin && !w.bundled ? h('button', { class: 'link-button', 'data-action': 'edit-mapping',
            onclick: () => openEditor(w.id) }, 'Edit form') : null,
          admin ? h('button', { class: 'link-button danger-text', 'data-action': 'delete-workflow',
            onclick: () => remove(w) }, w.bundled ? 'Hide' : 'Delete') : null))),
      problems.map((/** @type {any} */ p) => h('section', { class: 'card' }, h('h2', null, 'Not loaded'),
        h('p', { class: 'path' }, p.folder), h('p', { class: 'error-line' }, p.message))));
    } catch (err) {
      replace(list, h('p', { class: 'error-line' }, message(err)));
    }
  }

  /** A user's workflow is deleted for good; a bundled one is only hidden, and can be restored.
   * @param {{id: string, name: string, bundled: boolean}} w */
  async function remove(w) {
    const question = w.bundled
      ? `Hide “${w.name}”? It ships with Studio: you can restore it from this page.`
      : `Delete “${w.name}”? Its files are removed; jobs that ran it stay in History.`;
    if (!confirm(question)) return;
    try {
      await api.del(`/api/workflows/${encodeURIComponent(w.id)}`);
      list.querySelector(`[data-workflow="${CSS.escape(w.id)}"]`)?.remove();
      toast(w.bundled ? `“${w.name}” hidden.` : `“${w.name}” deleted.`, 'success');
      await load();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  /** @param {string} id @param {string} name */
  async function restore(id, name) {
    try {
      await api.post(`/api/workflows/${encodeURIComponent(id)}/restore`);
      toast(`“${name}” restored.`, 'success');
      await load();
    } catch (err) {
      toast(message(err), 'error');
    }
  }

  const VIA = { catalog: 'catalog', workflow: "the workflow's own link", civitai_hash: 'CivitAI (by hash)', civitai_name: 'CivitAI (by name)' };

  /** Shows what would be downloaded, from where, what cannot be found, and which node packs are missing.
   * @param {string} id */
  async function installMissing(id) {
    const card = list.querySelector(`[data-workflow="${CSS.escape(id)}"]`);
    if (!card) return;
    card.querySelector('.plan')?.remove();
    const panel = h('div', { class: 'plan', 'data-plan': id }, h('p', { class: 'muted' }, 'Looking for the missing models…'));
    card.appendChild(panel);
    try {
      const plan = await api.get(`/api/workflows/${id}/missing`);
      const size = `${plan.total_gb} GB${plan.unknown_size.length ? ' + files of unknown size' : ''}`;
      const go = h('button', { class: 'button', 'data-action': 'confirm-install', onclick: async () => {
        go.setAttribute('disabled', '');
        try {
          const answer = await api.post(`/api/workflows/${id}/install-missing`);
          replace(panel, h('p', { class: 'ready' }, `${answer.queued.length} queued:`), downloadProgress(answer.queued),
            answer.refused.map((/** @type {any} */ r) => h('p', { class: 'error-line' }, `${r.file}: ${r.message}`)));
        } catch (err) {
          go.removeAttribute('disabled');
          toast(message(err), 'error');
        }
      } }, `Download ${plan.resolvable.length} (${size})`);
      replace(panel,
        plan.resolvable.length ? [h('h3', null, 'Can be downloaded'), h('ul', null, plan.resolvable.map((/** @type {any} */ m) =>
          h('li', null, h('strong', null, m.file), ` → ${m.dest || '.'} · ${m.size_gb ? `${m.size_gb} GB` : 'size unknown'} · from ${VIA[/** @type {keyof VIA} */ (m.via)] || m.via}`)))] : null,
        plan.unknown.length ? [h('h3', null, 'Not found anywhere'), h('ul', { class: 'error-line' }, plan.unknown.map((/** @type {string} */ n) => h('li', null, n))),
          h('p', { class: 'muted small' }, 'Add them to a catalog, or download them from a URL on the Models page.')] : null,
        plan.nodes.length ? [h('h3', null, 'Missing custom nodes'), h('ul', null, plan.nodes.map((/** @type {any} */ n) => h('li', { 'data-missing-node': n.class_type }, h('strong', null, n.class_type),
          n.repository ? [' · ', h('a', { href: n.repository, target: '_blank', rel: 'noopener noreferrer' }, n.aux_id || n.cnr_id)] : ' · no repository named',
          admin && n.install ? installPackButton(n.install, load) : null))),
        h('p', { class: 'muted small' }, 'Install them with ComfyUI-Manager or into ComfyUI/custom_nodes, then restart ComfyUI.')] : null,
        h('div', { class: 'actions' }, plan.resolvable.length ? go : null,
          h('button', { class: 'link-button', onclick: () => panel.remove() }, 'Close')));
    } catch (err) {
      replace(panel, h('p', { class: 'error-line' }, message(err)));
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
    editorBox, list, hiddenBox);
  load();
  const stops = [live.on('workflows/changed', () => load())];
  return () => stops.forEach((stop) => stop());
}
