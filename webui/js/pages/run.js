// @ts-check
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';
import { followJobs, jobCard, message, renderJobs } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';

/** The ComfyUI model folder each picker lists: what a refresh asks ComfyUI for (cheap /models/<folder>). */
const PICKER_FOLDERS = { checkpoint_picker: 'checkpoints', vae_picker: 'vae', lora_picker_dynamic: 'loras', lora_picker: 'loras' };

/**
 * Asks Studio to look at ComfyUI's model folders again (throttled there); true when a list changed,
 * so the form's choices must be fetched again.
 * @param {string[]} folders
 */
async function refreshModels(folders) {
  const answer = await api.post('/api/comfy/models/refresh', { folders });
  return Boolean(answer.changed);
}

/**
 * One form control for a manifest input. Every control carries `name` = the input id; image
 * inputs upload on selection and keep the stored name in a hidden field.
 * @param {any} spec @param {any} value @param {string[] | undefined} choices
 */
function control(spec, value, choices) {
  const id = `param-${spec.id}`;
  const common = { id, name: spec.id, 'data-type': spec.type };
  switch (spec.type) {
    case 'text':
      return h('textarea', { ...common, rows: spec.id.includes('negative') ? 2 : 4 }, value ?? '');
    case 'int': case 'float':
      return h('input', { ...common, type: 'number', value: value ?? '', min: spec.min, max: spec.max,
        step: spec.step ?? (spec.type === 'int' ? 1 : 'any') });
    case 'seed': {
      const input = h('input', { ...common, type: 'number', value: value ?? -1, min: -1, step: 1 });
      return h('div', { class: 'row' }, input, h('button', { type: 'button', class: 'link-button',
        onclick: () => { /** @type {HTMLInputElement} */ (input).value = '-1'; } }, 'Random'));
    }
    case 'boolean':
      return h('input', { ...common, type: 'checkbox', checked: Boolean(value) });
    case 'select': case 'checkpoint_picker': case 'vae_picker': {
      const options = spec.options ? spec.options.map((/** @type {any} */ o) => [o.value, o.label])
        : (choices || []).map((c) => [c, c]);
      if (value !== undefined && value !== null && !options.some(([v]) => v === value)) options.unshift([value, `${value} (not installed)`]);
      if (!spec.required && spec.type !== 'select') options.unshift([null, '— none —']);
      return h('select', common, options.map(([v, label]) => h('option', { value: JSON.stringify(v), selected: v === value }, label)));
    }
    case 'resolution_picker': {
      const presets = Object.values(spec.presets || {}).flat();
      const current = value || spec.default || { w: 512, h: 512 };
      const width = h('input', { type: 'number', name: `${spec.id}.w`, value: current.w, min: 64, max: 16384, step: 8 });
      const height = h('input', { type: 'number', name: `${spec.id}.h`, value: current.h, min: 64, max: 16384, step: 8 });
      const pick = h('select', { onchange: (/** @type {Event} */ e) => {
        const chosen = presets[Number(/** @type {HTMLSelectElement} */ (e.target).value)];
        if (chosen) { /** @type {HTMLInputElement} */ (width).value = chosen.w; /** @type {HTMLInputElement} */ (height).value = chosen.h; }
      } }, h('option', { value: '' }, 'Custom'), presets.map((p, i) => h('option', { value: i }, p.label)));
      return h('div', { class: 'row', id, 'data-type': spec.type }, pick, width, h('span', null, '×'), height);
    }
    case 'image': {
      const hidden = h('input', { type: 'hidden', name: spec.id, value: value ?? '' });
      const thumb = /** @type {HTMLImageElement} */ (h('img', { class: 'thumb', alt: '', hidden: true }));
      /** @param {string} name @param {string} [src] */
      const show = (name, src) => {
        /** @type {HTMLInputElement} */ (hidden).value = name;
        thumb.src = src || `/api/inputs/${name.split('/').pop()}`;
        thumb.hidden = !name;
      };
      if (value) show(value);
      const file = h('input', { id, type: 'file', accept: 'image/png,image/jpeg,image/webp', onchange: async (/** @type {Event} */ e) => {
        const chosen = /** @type {HTMLInputElement} */ (e.target).files?.[0];
        if (!chosen) return;
        const body = new FormData();
        body.append('image', chosen);
        try {
          show((await upload(body)).name, URL.createObjectURL(chosen));
        } catch (err) {
          toast(message(err), 'error');
        }
      } });
      const earlier = h('select', { class: 'earlier', 'aria-label': 'Or pick an earlier image', onchange: (/** @type {Event} */ e) => {
        const name = /** @type {HTMLSelectElement} */ (e.target).value;
        if (name) show(name);
      } }, h('option', { value: '' }, 'or pick an earlier image…'));
      api.get('/api/inputs').then(({ items }) => earlier.append(...items.map((/** @type {any} */ item) =>
        h('option', { value: item.name }, item.name.split('/').pop())))).catch(() => {});
      return h('div', { class: 'image-input' }, h('div', { class: 'row' }, file, earlier), hidden, thumb);
    }
    case 'lora_picker_dynamic': {
      const list = h('div', { class: 'lora-list', id, 'data-type': spec.type, 'data-name': spec.id });
      const max = spec.max_loras ?? 8;
      /** @param {{file?: string, strength?: number}} item */
      const addRow = (item) => {
        if (list.children.length >= max) return;
        const row = h('div', { class: 'row lora-row' },
          h('select', { class: 'lora-file', 'aria-label': 'LoRA' }, (choices || []).map((c) => h('option', { value: c, selected: c === item.file }, c))),
          h('input', { class: 'lora-strength', type: 'number', step: 0.05, min: -10, max: 10, value: item.strength ?? 1, 'aria-label': 'Strength' }),
          h('button', { type: 'button', class: 'link-button', 'aria-label': 'Remove', onclick: () => row.remove() }, '×'));
        list.append(row);
      };
      (Array.isArray(value) ? value : []).forEach(addRow);
      return h('div', null, list, h('button', { type: 'button', class: 'link-button', disabled: !(choices || []).length,
        onclick: () => addRow({}) }, (choices || []).length ? 'Add a LoRA' : 'No LoRAs installed'));
    }
    case 'lora_picker': {
      // WAN 2.2 LoRAs come in high/low-noise pairs: one choice here puts each half in its loader.
      const list = h('div', { class: 'lora-list', id, 'data-type': spec.type, 'data-name': spec.id });
      const max = spec.max_pairs ?? spec.max_loras ?? 4;
      const add = h('button', { type: 'button', class: 'link-button', disabled: true }, 'Loading LoRA pairs…');
      /** @type {any[]} */
      let pairs = [];
      /** @param {any} p */
      const usable = (p) => [p.high, p.low, p.both].filter(Boolean).every((m) => !choices || choices.includes(m.file));
      /** @param {{pair_id?: string, strength?: number}} item */
      const addRow = (item) => {
        if (list.children.length >= max) return;
        const row = h('div', { class: 'row lora-row' },
          h('select', { class: 'lora-pair', 'aria-label': 'LoRA pair' }, pairs.map((p) => h('option', {
            value: p.pair_id, selected: p.pair_id === item.pair_id, disabled: !usable(p) },
          `${p.name}${p.both ? '' : ' (high + low)'}${usable(p) ? '' : ' – not installed'}`))),
          h('input', { class: 'lora-strength', type: 'number', step: 0.05, min: -10, max: 10, value: item.strength ?? 1, 'aria-label': 'Strength' }),
          h('button', { type: 'button', class: 'link-button', 'aria-label': 'Remove', onclick: () => row.remove() }, '×'));
        list.append(row);
      };
      const base = spec.base_model;
      api.get(`/api/loras/pairs${base ? `?base_model=${encodeURIComponent(base)}` : ''}`).then(({ items }) => {
        pairs = items;
        (Array.isArray(value) ? value : []).forEach(addRow);
        const any = pairs.some(usable);
        add.textContent = any ? 'Add a LoRA pair' : `No LoRA pairs installed${base ? ` for ${base}` : ''}`;
        if (any) add.removeAttribute('disabled');
      }).catch((err) => { add.textContent = message(err); });
      add.addEventListener('click', () => addRow({ pair_id: pairs.find(usable)?.pair_id }));
      return h('div', null, list, add);
    }
    case 'scene_list': {
      const list = h('ol', { class: 'scene-list', id, 'data-name': spec.id });
      /** @param {{prompt?: string, duration?: number, seed?: number}} scene */
      const addScene = (scene) => {
        const row = h('li', { class: 'scene-row' },
          h('textarea', { class: 'scene-prompt', rows: 2, 'aria-label': 'Scene prompt', placeholder: 'What happens in this scene' }, scene.prompt ?? ''),
          h('div', { class: 'row' },
            h('label', null, 'Seconds', h('input', { class: 'scene-duration', type: 'number', min: 1, max: 30, step: 0.5, value: scene.duration ?? 5 })),
            h('label', null, 'Seed', h('input', { class: 'scene-seed', type: 'number', min: -1, step: 1, value: scene.seed ?? -1 })),
            h('button', { type: 'button', class: 'link-button', 'aria-label': 'Remove scene', onclick: () => row.remove() }, '×')));
        list.append(row);
      };
      (Array.isArray(value) && value.length ? value : [{}]).forEach(addScene);
      return h('div', null, list, h('button', { type: 'button', class: 'link-button', onclick: () => addScene({}) }, 'Add a scene'));
    }
    default:
      return h('textarea', { ...common, rows: 3 }, JSON.stringify(value ?? spec.default ?? null));
  }
}

/** Uploads go through fetch directly: api.js speaks JSON only. @param {FormData} body */
async function upload(body) {
  const me = await api.get('/api/auth/me');
  const response = await fetch('/api/inputs', { method: 'POST', body, headers: { 'X-CSRF-Token': me.csrf_token } });
  const data = await response.json();
  if (!response.ok) throw new ApiError(response.status, data.error.code, data.error.message, data.error.details);
  return data;
}

/** @param {HTMLFormElement} form @param {any[]} inputs */
function collect(form, inputs) {
  /** @type {Record<string, any>} */
  const params = {};
  for (const spec of inputs) {
    if (spec.type === 'lora_picker_dynamic') {
      params[spec.id] = [...form.querySelectorAll(`[data-name="${spec.id}"] .lora-row`)].map((row) => ({
        file: /** @type {HTMLSelectElement} */ (row.querySelector('.lora-file')).value,
        strength: Number(/** @type {HTMLInputElement} */ (row.querySelector('.lora-strength')).value),
      }));
      continue;
    }
    if (spec.type === 'lora_picker') {
      params[spec.id] = [...form.querySelectorAll(`[data-name="${spec.id}"] .lora-row`)].map((row) => ({
        pair_id: /** @type {HTMLSelectElement} */ (row.querySelector('.lora-pair')).value,
        strength: Number(/** @type {HTMLInputElement} */ (row.querySelector('.lora-strength')).value),
      }));
      continue;
    }
    if (spec.type === 'scene_list') {
      params[spec.id] = [...form.querySelectorAll(`[data-name="${spec.id}"] .scene-row`)].map((row) => ({
        prompt: /** @type {HTMLTextAreaElement} */ (row.querySelector('.scene-prompt')).value,
        duration: Number(/** @type {HTMLInputElement} */ (row.querySelector('.scene-duration')).value),
        seed: Number(/** @type {HTMLInputElement} */ (row.querySelector('.scene-seed')).value),
      }));
      continue;
    }
    if (spec.type === 'resolution_picker') {
      const w = /** @type {HTMLInputElement} */ (form.elements.namedItem(`${spec.id}.w`)).value;
      const hh = /** @type {HTMLInputElement} */ (form.elements.namedItem(`${spec.id}.h`)).value;
      params[spec.id] = { w: Number(w), h: Number(hh) };
      continue;
    }
    const field = /** @type {HTMLInputElement | null} */ (form.elements.namedItem(spec.id));
    if (!field) continue;
    if (spec.type === 'boolean') params[spec.id] = field.checked;
    else if (['int', 'float', 'seed'].includes(spec.type)) params[spec.id] = field.value === '' ? null : Number(field.value);
    else if (field.tagName === 'SELECT') params[spec.id] = field.value ? JSON.parse(field.value) : null;
    else params[spec.id] = field.value;
  }
  return params;
}

/** @param {HTMLElement} main */
export function mount(main) {
  const query = new URLSearchParams(location.search);
  const picker = h('select', { id: 'workflow-picker', 'aria-label': 'Workflow' });
  const formBox = h('div');
  const mine = h('div', { id: 'session-jobs', class: 'job-list' });
  // Jobs started here, and their retries, stay in view and follow along live.
  const stops = [followJobs(mine, (job) => Boolean(mine.querySelector(`[data-job="${job.id}"]`))
    || Boolean(job.retry_of && mine.querySelector(`[data-job="${job.retry_of}"]`)))];

  let loading = 0;
  // Workflows whose model lists were refreshed since this page opened: once each, on opening.
  const refreshed = new Set();

  /**
   * Refreshes the model lists behind `folders`; when one changed, the form is built again with the
   * values already chosen. @param {string} workflowId @param {string[]} folders @param {() => Record<string, any>} current @param {boolean} [announce]
   */
  async function refreshFor(workflowId, folders, current, announce = false) {
    try {
      if (await refreshModels(folders)) {
        if (announce) toast('Model list updated.', 'success');
        await load(workflowId, current());
      } else if (announce) {
        toast('The model list is up to date.', 'success');
      }
    } catch (err) {
      if (announce) toast(message(err), 'error');
    }
  }

  /** @param {string} workflowId @param {Record<string, any>} [prefill] */
  async function load(workflowId, prefill = {}) {
    const ticket = ++loading;
    try {
      const wf = await api.get(`/api/workflows/${workflowId}`);
      if (ticket !== loading) return; // another workflow was picked meanwhile
      const inputs = wf.manifest.inputs.filter((/** @type {any} */ s) => !s.hidden);
      const current = () => collect(form, inputs);
      const folderOf = (/** @type {any} */ spec) => /** @type {Record<string, string>} */ (PICKER_FOLDERS)[spec.type];
      const field = (/** @type {any} */ spec) => h('div', { class: 'field', 'data-field': spec.id },
        spec.type === 'resolution_picker' ? h('span', { class: 'label' }, spec.name) : h('label', { for: `param-${spec.id}` }, spec.name),
        control({ ...spec, base_model: spec.base_model ?? wf.manifest.base_model }, prefill[spec.id] ?? wf.manifest.defaults?.[spec.id] ?? spec.default, wf.choices?.[spec.id]),
        folderOf(spec) ? h('button', { type: 'button', class: 'link-button small refresh-models', 'data-folder': folderOf(spec),
          title: 'Look for models added to ComfyUI since this page opened', 'aria-label': `Refresh the ${spec.name} list`,
          onclick: () => refreshFor(workflowId, [folderOf(spec)], current, true) }, '↻ refresh') : null,
        spec.description ? h('p', { class: 'muted small' }, spec.description) : null,
        h('p', { class: 'error-line field-error' }));
      const errorLine = h('p', { class: 'error-line', role: 'alert' });
      const count = h('input', { id: 'run-count', type: 'number', min: 1, max: 100, value: 1 });
      const form = /** @type {HTMLFormElement} */ (h('form', { id: 'run-form', class: 'stack', novalidate: true },
        inputs.filter((/** @type {any} */ s) => !s.advanced).map(field),
        inputs.some((/** @type {any} */ s) => s.advanced)
          ? h('details', null, h('summary', null, 'Advanced'), inputs.filter((/** @type {any} */ s) => s.advanced).map(field)) : null,
        wf.readiness.ready === false ? h('p', { class: 'error-line' }, `Not ready: ${wf.readiness.problems.join('; ')}.`) : null,
        errorLine,
        h('div', { class: 'row run-bar' }, h('label', { for: 'run-count' }, 'Generate'), count,
          h('button', { class: 'button', type: 'submit', id: 'run-button' }, 'Run'))));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        form.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
        errorLine.textContent = '';
        try {
          const params = collect(form, inputs);
          const answer = await api.post(`/api/workflows/${workflowId}/run`, { params, count: Number(/** @type {HTMLInputElement} */ (count).value) || 1 });
          mine.querySelector('.empty-line')?.remove();
          for (const job of answer.items) mine.prepend(jobCard(job, { onChange: () => {} }));
        } catch (err) {
          if (err instanceof ApiError) {
            for (const [key, text] of Object.entries(err.fields)) {
              const slot = form.querySelector(`[data-field="${key}"] .field-error`);
              if (slot) slot.textContent = String(text);
            }
          }
          errorLine.textContent = message(err);
        }
      });
      replace(formBox, h('p', { class: 'muted' }, wf.description), form);
      const folders = [...new Set(inputs.map(folderOf).filter(Boolean))];
      if (folders.length && !refreshed.has(workflowId)) {
        refreshed.add(workflowId); // a model added to ComfyUI since the lists were cached shows up now
        refreshFor(workflowId, folders, current);
      }
    } catch (err) {
      replace(formBox, h('p', { class: 'error-line' }, message(err)));
    }
  }

  (async () => {
    try {
      const { items } = await api.get('/api/workflows');
      replace(picker, items.map((/** @type {any} */ w) => h('option', { value: w.id }, w.name)));
      let prefill = {};
      let chosen = query.get('workflow') || items[0]?.id;
      if (query.get('from')) {
        const job = await api.get(`/api/jobs/${query.get('from')}`);
        chosen = job.workflow_id;
        prefill = job.params;
      }
      /** @type {HTMLSelectElement} */ (picker).value = chosen;
      picker.addEventListener('change', () => load(/** @type {HTMLSelectElement} */ (picker).value));
      if (chosen) load(chosen, prefill);
    } catch (err) {
      replace(formBox, h('p', { class: 'error-line' }, message(err)));
    }
  })();

  renderJobs(mine, []);
  replace(main, h('h1', null, 'Run'), h('div', { class: 'run-layout' },
    h('section', { class: 'card' }, h('div', { class: 'row' }, h('label', { for: 'workflow-picker' }, 'Workflow'), picker), formBox),
    h('section', { class: 'card' }, h('h2', null, 'Your jobs from this page'), mine)));
  return () => stops.forEach((stop) => stop());
}
