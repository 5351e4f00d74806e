// @ts-check
/**
 * The CivitAI page: look up a model, version or image by address or id; import an image (pasted
 * address, or a dropped file with its metadata) and see what it needs: each model here or missing,
 * with sizes; "Download missing", "Save as preset", "Run now". Nothing is kept on the server between
 * these steps: each one sends the image again (the server's CivitAI cache makes that cheap).
 */
import { ApiError, api, getCsrfToken } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { formatBytes } from '../lib/format.js';
import { message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';
import { modelImages } from './gallery-civitai.js';

/** @typedef {{image?: string, file?: File}} Source */

/**
 * One import action: JSON for an address, multipart for a file.
 * @param {string} action @param {Source} source @param {Record<string, any>} options
 */
async function send(action, source, options) {
  if (!source.file) return api.post(`/api/civitai/import/${action}`, { image: source.image, ...options });
  const form = new FormData();
  form.append('file', source.file, source.file.name);
  for (const [key, value] of Object.entries(options)) if (value !== undefined && value !== null) form.append(key, String(value));
  let response;
  try {
    response = await fetch(`/api/civitai/import/${action}/file`, { method: 'POST', body: form, credentials: 'same-origin',
      headers: { 'X-CSRF-Token': getCsrfToken(), Accept: 'application/json' } });
  } catch {
    throw new ApiError(0, 'network_error', 'Studio cannot be reached. Check that it is running.');
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error;
    throw new ApiError(response.status, error?.code || 'http_error', error?.message || `Studio answered ${response.status}.`,
      error?.details);
  }
  return data;
}

/** @param {number | null | undefined} bytes */
const size = (bytes) => (bytes ? formatBytes(bytes) : '—');

/** @param {any} item */
function resourceRow(item) {
  const where = item.status === 'present' ? item.path
    : item.file ? `${item.folder}/${item.file}${item.in_catalog ? ' · in a catalog' : ''}` : item.note || '';
  return h('tr', { class: `resource status-${item.status}`, 'data-role': item.role, 'data-name': item.name },
    h('td', null, item.role), h('td', null, h('strong', null, item.name), item.weight !== null && item.weight !== undefined
      ? h('span', { class: 'muted' }, ` × ${item.weight}`) : null),
    h('td', null, h('span', { class: `badge resource-state ${item.status}` }, item.status)),
    h('td', { class: 'muted small cv-where' }, where), h('td', { class: 'cv-size' }, item.status === 'present' ? '' : size(item.size_bytes)));
}

/** @param {any} gen */
function generationFacts(gen) {
  const rows = [['Prompt', gen.prompt], ['Negative', gen.negative_prompt], ['Seed', gen.seed], ['Steps', gen.steps],
    ['CFG', gen.cfg], ['Sampler', [gen.sampler, gen.scheduler].filter(Boolean).join(' · ')
      + (gen.comfy_sampler ? ` → ${gen.comfy_sampler} · ${gen.comfy_scheduler || 'normal'}` : '')],
    ['Size', gen.width && gen.height ? `${gen.width}×${gen.height}` : null], ['Clip skip', gen.clip_skip],
    ['Denoise', gen.denoise]].filter(([, value]) => value !== null && value !== undefined && value !== '');
  return h('dl', { class: 'facts cv-facts' }, rows.map(([label, value]) => [h('dt', null, label), h('dd', null, String(value))]));
}

/** @param {HTMLElement} main @param {{me: any, query: URLSearchParams}} ctx */
export function mount(main, ctx) {
  const admin = ctx.me?.user?.role === 'admin';
  /** @type {Source | null} */
  let source = null;
  /** @type {string | null} */
  let chosenWorkflow = null;
  const result = h('section', { class: 'card cv-result', id: 'cv-result', 'aria-live': 'polite' });
  result.hidden = true;
  const lookupResult = h('section', { class: 'card', id: 'cv-lookup-result' });
  lookupResult.hidden = true;

  /** @param {any} plan */
  function showPlan(plan) {
    result.hidden = false;
    const missing = plan.resources.filter((/** @type {any} */ r) => r.status !== 'present');
    const select = h('select', { id: 'cv-workflow', 'aria-label': 'Workflow' },
      plan.candidates.map((/** @type {any} */ c) => h('option', { value: c.id, selected: plan.workflow?.id === c.id }, c.name)));
    select.addEventListener('change', () => { chosenWorkflow = /** @type {HTMLSelectElement} */ (select).value; analyze(); });
    const downloadLabel = `Download missing (${missing.length}${plan.missing_bytes ? `, ${formatBytes(plan.missing_bytes)}` : ''})`;
    replace(result,
      h('h2', null, plan.source.civitai_image_id ? `CivitAI image ${plan.source.civitai_image_id}` : plan.source.file_name || 'Dropped image'),
      h('p', { class: 'muted', id: 'cv-kind' }, `${plan.kind}${plan.base_model ? ` · ${plan.base_model}` : ''} — ${plan.kind_reason}.`),
      h('div', { class: 'row cv-workflow-row' }, h('label', null, 'Workflow ', select),
        h('p', { class: 'muted small', id: 'cv-reason' }, plan.workflow ? `Why: ${plan.workflow.reason}.` : 'No workflow in the library fits.')),
      generationFacts(plan.generation),
      h('h3', null, 'Models'),
      plan.resources.length ? h('div', { class: 'cv-table-wrap' }, h('table', { class: 'list', id: 'cv-resources' },
        h('thead', null, h('tr', null, h('th', null, 'Kind'), h('th', null, 'Name'), h('th', null, 'State'), h('th', null, 'Where'),
          h('th', null, 'Size'))),
        h('tbody', null, plan.resources.map(resourceRow)))) : h('p', { class: 'muted' }, 'It names no model.'),
      plan.left_out.length ? h('div', { class: 'cv-left-out' }, h('p', { class: 'muted small' }, 'Not taken by this workflow:'),
        h('ul', { class: 'small' }, plan.left_out.map((/** @type {string} */ note) => h('li', null, note)))) : null,
      h('div', { class: 'actions cv-actions' },
        h('button', { class: 'button', id: 'cv-download', disabled: !missing.length, onclick: () => act('download') }, downloadLabel),
        h('button', { class: 'button', id: 'cv-preset', onclick: () => act('preset') }, 'Save as preset'),
        h('button', { class: 'button', id: 'cv-run', disabled: !plan.ready, title: plan.ready ? '' : 'Every model must be here first',
          onclick: () => act('run') }, 'Run now')),
      h('p', { class: 'error-line', id: 'cv-error', role: 'alert' }));
  }

  /** @param {unknown} err */
  function fail(err) {
    const line = result.querySelector('#cv-error');
    if (line && !result.hidden) line.textContent = message(err); else toast(message(err), 'error');
  }

  async function analyze() {
    if (!source) return;
    try {
      const answer = await send('plan', source, chosenWorkflow ? { workflow_id: chosenWorkflow } : {});
      showPlan(answer.plan);
    } catch (err) {
      result.hidden = false;
      replace(result, h('p', { class: 'error-line', role: 'alert', id: 'cv-error' }, message(err)));
    }
  }

  /** @param {'download' | 'preset' | 'run'} action */
  async function act(action) {
    if (!source) return;
    /** @type {Record<string, any>} */
    const options = chosenWorkflow ? { workflow_id: chosenWorkflow, as_workflow: false } : {};
    try {
      const answer = await send(action, source, options);
      if (action === 'download') {
        const refused = answer.refused.map((/** @type {any} */ r) => `${r.name}: ${r.message}`);
        toast(answer.queued.length ? `Queued ${answer.queued.length} download(s), ${formatBytes(answer.total_bytes)}.`
          : `Nothing queued. ${refused.join(' ')}`, answer.queued.length ? 'success' : 'error');
        if (answer.queued.length && refused.length) toast(refused.join(' '), 'error');
      } else if (action === 'preset') {
        toast(`Saved the preset “${answer.preset.name}”.`, 'success');
      } else {
        toast(`Queued ${answer.jobs.length} job(s).`, 'success');
      }
      showPlan(answer.plan);
    } catch (err) {
      fail(err);
    }
  }

  const address = h('input', { id: 'cv-image', type: 'text', placeholder: 'https://civitai.com/images/… or an image id',
    'aria-label': 'CivitAI image address or id', maxlength: 2000 });
  const fileInput = h('input', { id: 'cv-file', type: 'file', accept: 'image/png,image/jpeg,image/webp,.json',
    'aria-label': 'An image file with its metadata' });
  /** @param {File} file */
  const useFile = (file) => { source = { file }; chosenWorkflow = null; analyze(); };
  fileInput.addEventListener('change', () => {
    const file = /** @type {HTMLInputElement} */ (fileInput).files?.[0];
    if (file) useFile(file);
  });
  const drop = h('div', { class: 'cv-drop', id: 'cv-drop' }, 'Drop an image here (PNG with A1111 or ComfyUI metadata), or ',
    h('label', { class: 'link-button' }, 'choose a file', fileInput));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const file = /** @type {DragEvent} */ (e).dataTransfer?.files?.[0];
    if (file) useFile(file);
  });
  const importForm = h('form', { class: 'stack', id: 'cv-import', onsubmit: (/** @type {Event} */ e) => {
    e.preventDefault();
    const value = /** @type {HTMLInputElement} */ (address).value.trim();
    if (!value) return;
    source = { image: value };
    chosenWorkflow = null;
    analyze();
  } }, h('div', { class: 'row' }, address, h('button', { class: 'button', type: 'submit' }, 'Import')), drop);

  /** @param {any} version */
  function versionRow(version) {
    const state = version.problem ? version.problem : version.present ? `here: ${version.present}`
      : version.in_catalog ? 'in a catalog, not downloaded' : 'not here';
    return h('tr', { 'data-version': version.id },
      h('td', null, version.name), h('td', null, version.base_model || ''), h('td', { class: 'small' }, version.file ? `${version.folder}/${version.file}` : ''),
      h('td', null, size(version.size_bytes)), h('td', { class: 'small' }, state),
      h('td', null, admin && !version.problem && !version.in_catalog ? h('button', { class: 'link-button', onclick: async () => {
        try {
          const added = await api.post('/api/civitai/catalog', { ref: `version:${version.id}` });
          toast(`Added ${added.entry.name} to the ${added.kind} catalog.`, 'success');
          lookup(`version:${version.id}`);
        } catch (err) { toast(message(err), 'error'); }
      } }, 'Add to catalog') : null));
  }

  /** @param {string} ref */
  async function lookup(ref) {
    try {
      const found = await api.get(`/api/civitai/lookup?ref=${encodeURIComponent(ref)}`);
      if (found.kind === 'image') {
        lookupResult.hidden = true;
        source = { image: `image:${found.id}` };
        chosenWorkflow = null;
        analyze();
        return;
      }
      lookupResult.hidden = false;
      replace(lookupResult, h('h2', null, `${found.name || 'Model'} ${found.type ? `(${found.type})` : ''}`),
        h('div', { class: 'cv-table-wrap' }, h('table', { class: 'list', id: 'cv-versions' },
          h('thead', null, h('tr', null, ['Version', 'Base model', 'File', 'Size', 'Here?', ''].map((t) => h('th', null, t)))),
          h('tbody', null, found.versions.map(versionRow)))),
        found.kind === 'model' || found.model_id ? modelImages(found.kind === 'model' ? found.id : found.model_id) : null);
    } catch (err) {
      lookupResult.hidden = false;
      replace(lookupResult, h('p', { class: 'error-line', role: 'alert' }, message(err)));
    }
  }
  const lookupInput = h('input', { id: 'cv-ref', type: 'text', maxlength: 2000, 'aria-label': 'CivitAI model, version or image',
    placeholder: 'https://civitai.com/models/… , version:123 or image:456' });
  const lookupForm = h('form', { class: 'row', id: 'cv-lookup', onsubmit: (/** @type {Event} */ e) => {
    e.preventDefault();
    const value = /** @type {HTMLInputElement} */ (lookupInput).value.trim();
    if (value) lookup(value);
  } }, lookupInput, h('button', { class: 'link-button', type: 'submit' }, 'Look up'));

  replace(main, h('h1', null, 'CivitAI'),
    h('section', { class: 'card' }, h('h2', null, 'Import an image'),
      h('p', { class: 'muted' }, 'Turn an image into a preset: Studio reads how it was made, picks a workflow, and shows which models are here.'),
      importForm),
    result,
    h('section', { class: 'card' }, h('h2', null, 'Look up a model'), lookupForm), lookupResult);
  const preset = ctx.query.get('image');
  if (preset) { /** @type {HTMLInputElement} */ (address).value = preset; source = { image: preset }; analyze(); }
  return () => {};
}
