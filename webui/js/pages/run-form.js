// @ts-check
/**
 * The Run form's controls: one per manifest input, each labelled, each carrying `name` = the input
 * id so that `collect` reads the form back as the parameters a run sends (and a draft keeps).
 */
import { api, ApiError } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { message } from '../lib/jobs.js';
import { toast } from '../lib/toast.js';
import { offerTrainedWords } from './run-trained-words.js';

/**
 * One form control for a manifest input. Every control carries `name` = the input id; image
 * inputs upload on selection and keep the stored name in a hidden field.
 * @param {any} spec @param {any} value @param {string[] | undefined} choices
 */
export function control(spec, value, choices) {
  const id = `param-${spec.id}`;
  const common = { id, name: spec.id, 'data-type': spec.type };
  // A file name typed as text but known to be a model (a `picker` key) is chosen from a list too.
  const kind = spec.picker && spec.type === 'text' && choices ? 'select' : spec.type;
  switch (kind) {
    case 'text':
      return h('textarea', { ...common, rows: spec.id.includes('negative') ? 2 : 4 }, value ?? '');
    case 'int': case 'float':
      return h('input', { ...common, type: 'number', value: value ?? '', min: spec.min, max: spec.max,
        step: spec.step ?? (spec.type === 'int' ? 1 : 'any') });
    case 'seed': {
      // -1 means "a new random seed each run": shown as a switch, so nobody reads -1 as a seed.
      const random = value === undefined || value === null || Number(value) < 0;
      const input = /** @type {HTMLInputElement} */ (h('input', { ...common, type: 'number', value: random ? '' : value,
        min: 0, step: 1, disabled: random, 'aria-label': spec.name, placeholder: random ? 'random' : null }));
      const box = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', class: 'seed-random', id: `${id}-random`,
        'data-random-for': spec.id, checked: random }));
      const said = h('span', { class: 'muted small seed-said' }, random ? 'Random: a new seed each run' : 'Fixed: the same seed each run');
      box.addEventListener('change', () => {
        input.disabled = box.checked;
        input.placeholder = box.checked ? 'random' : '';
        if (!box.checked && input.value === '') input.value = String(Math.floor(Math.random() * 2 ** 32));
        said.textContent = box.checked ? 'Random: a new seed each run' : 'Fixed: the same seed each run';
      });
      return h('div', { class: 'row seed-row' }, input, h('label', { for: `${id}-random`, class: 'inline' }, box, ' Random'), said);
    }
    case 'boolean':
      return h('input', { ...common, type: 'checkbox', checked: Boolean(value) });
    case 'select': case 'checkpoint_picker': case 'vae_picker': {
      // A model picker lists what ComfyUI has now (`choices`), ahead of options stored at import.
      const options = spec.picker && choices ? choices.map((c) => [c, c])
        : spec.options ? spec.options.map((/** @type {any} */ o) => [o.value, o.label]) : (choices || []).map((c) => [c, c]);
      if (value !== undefined && value !== null && !options.some(([v]) => v === value)) options.unshift([value, `${value} (not installed)`]);
      if (!spec.required && kind !== 'select') options.unshift([null, '— none —']);
      // Samplers and schedulers the workflow's kind of model is not used with: listed with Advanced open.
      const more = new Set((spec.options || []).filter((/** @type {any} */ o) => o.advanced).map((/** @type {any} */ o) => o.value));
      const option = (/** @type {any[]} */ [v, label]) => h('option', { value: JSON.stringify(v), selected: v === value }, label);
      const shown = more.has(value);
      return h('select', common, options.filter(([v]) => !more.has(v)).map(option),
        more.size ? h('optgroup', { label: 'More (Advanced)', class: 'more-options', hidden: !shown, disabled: !shown },
          options.filter(([v]) => more.has(v)).map(option)) : null);
    }
    case 'resolution_picker': {
      const presets = Object.values(spec.presets || {}).flat();
      const current = value || spec.default || { w: 512, h: 512 };
      const width = h('input', { type: 'number', name: `${spec.id}.w`, value: current.w, min: 64, max: 16384, step: 8,
        'aria-label': `${spec.name}: width` });
      const height = h('input', { type: 'number', name: `${spec.id}.h`, value: current.h, min: 64, max: 16384, step: 8,
        'aria-label': `${spec.name}: height` });
      const match = presets.findIndex((p) => p.w === current.w && p.h === current.h);
      const pick = h('select', { 'aria-label': `${spec.name}: preset`, class: 'size-preset', onchange: (/** @type {Event} */ e) => {
        const chosen = presets[Number(/** @type {HTMLSelectElement} */ (e.target).value)];
        if (chosen) { /** @type {HTMLInputElement} */ (width).value = chosen.w; /** @type {HTMLInputElement} */ (height).value = chosen.h; }
        width.dispatchEvent(new Event('input', { bubbles: true }));
      } }, h('option', { value: '' }, 'Custom'), presets.map((p, i) => h('option', { value: i, selected: i === match }, p.label)));
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
        offerTrainedWords(row); // chips of the chosen LoRA's trained words, inserted only on a click
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
        offerTrainedWords(row, (id) => [pairs.find((p) => p.pair_id === id)].flatMap((p) => (p ? [p.high, p.low, p.both] : []))
          .filter(Boolean).map((m) => m.file)); // a pair's words: both halves
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
export async function upload(body) {
  const me = await api.get('/api/auth/me');
  const response = await fetch('/api/inputs', { method: 'POST', body, headers: { 'X-CSRF-Token': me.csrf_token } });
  const data = await response.json();
  if (!response.ok) throw new ApiError(response.status, data.error.code, data.error.message, data.error.details);
  return data;
}

/** @param {HTMLFormElement} form @param {any[]} inputs */
export function collect(form, inputs) {
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
    const random = /** @type {HTMLInputElement | null} */ (form.querySelector(`[data-random-for="${spec.id}"]`));
    if (spec.type === 'seed' && random?.checked) { params[spec.id] = -1; continue; }
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

