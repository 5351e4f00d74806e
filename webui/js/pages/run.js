// @ts-check
/**
 * Run: where a signed-in person lands. It opens on their last workflow with their last values
 * (`/run/<id>` names it), the form beside a large stage where the live preview grows into the
 * result, and a strip of this session's results that open in the lightbox.
 */
import { api, ApiError } from '../lib/api.js';
import { downloadProgress } from '../lib/download-progress.js';
import { h, replace } from '../lib/dom.js';
import { followJobs, jobCard, message } from '../lib/jobs.js';
import { live } from '../lib/live.js';
import { toast } from '../lib/toast.js';
import { collect, control, upload } from './run-form.js';
import { Drafts, sharedRole } from './run-drafts.js';
import { savePreset } from './run-preset.js';
import { promptHelper } from './run-prompt-helper.js';
import { Stage } from './run-stage.js';

/** The ComfyUI model folder each picker type lists: what a refresh asks ComfyUI for. */
const PICKER_FOLDERS = { checkpoint_picker: 'checkpoints', vae_picker: 'vae', lora_picker_dynamic: 'loras', lora_picker: 'loras' };
const FIRST_WORKFLOW = 'sd15-txt2img';

/** @param {any} spec @returns {string | undefined} */
const folderOf = (spec) => spec.picker || /** @type {Record<string, string>} */ (PICKER_FOLDERS)[spec.type];

/**
 * The value a picker shows: the one asked for when installed, else the last one used from that
 * folder, else the first installed file, so "Ready" is true of what is on screen.
 * @param {any} spec @param {any} value @param {string[] | undefined} choices @param {Drafts} drafts
 */
function installedChoice(spec, value, choices, drafts) {
  if (!choices || !choices.length || spec.type.startsWith('lora')) return value;
  if (choices.includes(value)) return value;
  const last = drafts.lastModel(spec.picker || spec.type);
  return choices.includes(last) ? last : choices[0];
}

/** Query keys Run reads itself; any other one presets the input with that id (`presetFrom`). */
const RESERVED = new Set(['workflow', 'from_job', 'from', 'input', 'preset']);

/** `/run/<id>?<input id>=<value>` (the Models page's "Use in Run"): the values to preset once. @param {URLSearchParams} query */
function presetFrom(query) {
  return Object.fromEntries([...query].filter(([key]) => !RESERVED.has(key)));
}

/** A preset as the input holds it: a LoRA list gains the file, a number stays a number. @param {any} spec @param {string} raw @param {any} current */
function presetValue(spec, raw, current) {
  if (spec.type === 'lora_picker_dynamic') {
    return [...(Array.isArray(current) ? current.filter((/** @type {any} */ item) => item.file !== raw) : []), { file: raw, strength: 1 }];
  }
  return typeof spec.default === 'number' ? Number(raw) : raw;
}

/** @param {HTMLElement} main @param {{me?: any, path?: string, query?: URLSearchParams}} [ctx] */
export function mount(main, ctx = {}) {
  const query = ctx.query || new URLSearchParams(location.search);
  const path = ctx.path || location.pathname;
  const drafts = new Drafts(ctx.me);
  const picker = /** @type {HTMLSelectElement} */ (h('select', { id: 'workflow-picker' }));
  const hint = h('p', { class: 'hint', id: 'run-hint', hidden: true });
  const formBox = h('div', { class: 'run-form-box' });
  const stage = new Stage();
  const mine = h('div', { id: 'session-jobs', class: 'job-list' });
  const comfyLine = h('p', { class: 'warn-line small', id: 'comfy-wait', role: 'status', hidden: true },
    'ComfyUI is not answering: new jobs will wait in the queue until it is back.');
  /** @type {Set<string>} */
  const session = new Set();
  const stops = [
    followJobs(mine, (job) => session.has(job.id) || Boolean(job.retry_of && session.has(job.retry_of))),
    stage.follow(),
    live.on('comfy/connection', (p) => setComfy(Boolean(p.connected))),
  ];
  let loading = 0;
  const refreshed = new Set();
  /** @type {string | null} */
  let current = null;
  /** @type {Record<string, string>} values from the address, kept until the model lists are fresh */
  let preset = {};
  /** Redraws only the model pickers of the form on show, so a refresh never takes the caret from a
   * field being typed in; false when the whole form must be drawn again (another workflow, or its
   * readiness changed). @type {((workflowId: string) => Promise<boolean>) | null} */
  let repick = null;

  /** @param {boolean} up */
  function setComfy(up) {
    comfyLine.hidden = up;
    const button = main.querySelector('#run-button');
    if (button) button.textContent = up ? 'Run' : 'Run (will wait)';
  }

  /** Jobs this page started: on the stage, in the strip when done, as cards below. @param {any[]} jobs */
  function started(jobs) {
    mine.querySelector('.empty-line')?.remove();
    for (const job of jobs) { session.add(job.id); mine.prepend(jobCard(job)); }
    if (jobs[0]) stage.show(jobs, (more) => started(more));
  }

  /** @param {string} workflowId @param {string[]} folders @param {() => Record<string, any>} values @param {boolean} [announce] */
  async function refreshFor(workflowId, folders, values, announce = false) {
    try {
      const answer = await api.post('/api/comfy/models/refresh', { folders });
      if (answer.changed) {
        if (announce) toast('Model list updated.', 'success');
        if (!(await repick?.(workflowId))) await load(workflowId, values());
      } else if (announce) toast('The model list is up to date.', 'success');
    } catch (err) {
      if (announce) toast(message(err), 'error');
    }
  }

  /** Says inline that the workflow's own model is absent, with its download. @param {any} spec @param {any} wf */
  function missingNote(spec, wf) {
    const wanted = wf.manifest.defaults?.[spec.id] ?? spec.default;
    const choices = wf.choices?.[spec.id];
    if (typeof wanted !== 'string' || !wanted || !choices || choices.includes(wanted)) return null;
    const note = h('p', { class: 'small missing-model', 'data-missing': wanted },
      `This workflow's model ${wanted} is not installed${choices.length ? ': another installed one is chosen above.' : '.'} `);
    api.get('/api/models').then((models) => {
      const entry = Object.values(models.catalogs || {}).flatMap((c) => /** @type {any} */ (c).entries || [])
        .find((e) => e.file === wanted);
      if (!entry) return;
      note.append(h('button', { type: 'button', class: 'link-button', 'data-action': 'download-model', onclick: async () => {
        try {
          note.append(downloadProgress([await api.post('/api/downloads', { catalog_file: wanted })])); // live, here
          toast(`${wanted} queued.`, 'success');
        } catch (err) { toast(message(err), 'error'); }
      } }, `Download (${entry.size_gb ? `${entry.size_gb} GB` : 'size unknown'})`), ' or choose another.');
    }).catch(() => {});
    return note;
  }

  /** "What is missing?": the models that can be fetched, with their sizes, and one button for all. @param {string} workflowId */
  function whatIsMissing(workflowId) {
    const box = h('div', { class: 'missing-box small' });
    const ask = h('button', { type: 'button', class: 'link-button', id: 'what-is-missing', onclick: async () => {
      try {
        const answer = await api.get(`/api/workflows/${encodeURIComponent(workflowId)}/missing?civitai=false`);
        const install = h('button', { type: 'button', class: 'button secondary', onclick: async () => {
          try {
            const done = await api.post(`/api/workflows/${encodeURIComponent(workflowId)}/install-missing`);
            toast(`${done.queued.length} download(s) queued${done.refused.length ? `, ${done.refused.length} refused` : ''}.`, 'success');
            box.append(downloadProgress(done.queued));
          } catch (err) { toast(message(err), 'error'); }
        } }, `Download all (${answer.total_gb} GB)`);
        replace(box, h('ul', null,
          answer.nodes.map((/** @type {any} */ n) => h('li', { 'data-missing-node': n.class_type }, `Node ${n.class_type}: install its node pack`,
            n.repository ? [' (', h('a', { href: n.repository, target: '_blank', rel: 'noopener noreferrer' }, n.aux_id || n.cnr_id), ')'] : null,
            ' in ComfyUI, then restart it')),
          answer.resolvable.map((/** @type {any} */ m) => h('li', null, `${m.file} (${m.size_gb ? `${m.size_gb} GB` : 'size unknown'})`)),
          answer.unknown.map((/** @type {string} */ f) => h('li', null, `${f}: not found in the catalogs`))),
        answer.resolvable.length ? install : null);
      } catch (err) { replace(box, h('p', { class: 'error-line' }, message(err))); }
    } }, 'What is missing?');
    return h('div', null, ask, box);
  }

  /** The samplers and schedulers beyond the workflow's own kind, in every list, while Advanced is open.
   * @param {HTMLElement} form @param {boolean} open */
  function showMore(form, open) {
    form.querySelectorAll('optgroup.more-options').forEach((group) => {
      const chosen = /** @type {HTMLOptGroupElement} */ (group).querySelector('option:checked');
      /** @type {HTMLOptGroupElement} */ (group).hidden = !open && !chosen;
      /** @type {HTMLOptGroupElement} */ (group).disabled = !open && !chosen;
    });
  }

  /** @param {string} workflowId @param {Record<string, any> | null} [prefill] */
  async function load(workflowId, prefill = null) {
    const ticket = ++loading;
    try {
      const wf = await api.get(`/api/workflows/${encodeURIComponent(workflowId)}`);
      if (ticket !== loading) return; // another workflow was picked meanwhile
      current = workflowId;
      picker.value = workflowId;
      const inputs = wf.manifest.inputs.filter((/** @type {any} */ s) => !s.hidden);
      const saved = prefill ?? drafts.valuesFor(workflowId) ?? {};
      const shared = prefill ? {} : drafts.shared();
      /** @param {any} spec */
      const valueOf = (spec) => {
        let value = saved[spec.id];
        const role = sharedRole(spec);
        if (value === undefined && role && shared[role] !== undefined) value = shared[role];
        if (value === undefined) value = wf.manifest.defaults?.[spec.id] ?? spec.default;
        if (Object.hasOwn(preset, spec.id)) value = presetValue(spec, preset[spec.id], value);
        return folderOf(spec) ? installedChoice(spec, value, wf.choices?.[spec.id], drafts) : value;
      };
      const values = () => collect(form, inputs);
      const field = (/** @type {any} */ spec, value = valueOf(spec)) => h('div', { class: 'field', 'data-field': spec.id },
        ['resolution_picker', 'seed'].includes(spec.type) ? h('span', { class: 'label', id: `label-${spec.id}` }, spec.name)
          : h('label', { for: `param-${spec.id}` }, spec.name),
        control({ ...spec, base_model: spec.base_model ?? wf.manifest.base_model }, value, wf.choices?.[spec.id]),
        folderOf(spec) ? h('button', { type: 'button', class: 'link-button small refresh-models', 'data-folder': folderOf(spec),
          title: 'Look for models added to ComfyUI since this page opened', 'aria-label': `Refresh the ${spec.name} list`,
          onclick: () => refreshFor(workflowId, [folderOf(spec) || ''], values, true) }, '↻ refresh') : null,
        folderOf(spec) ? missingNote(spec, wf) : null,
        spec.description ? h('p', { class: 'muted small' }, spec.description) : null,
        spec.type === 'text' && /prompt/.test(spec.id) && !/negative/.test(spec.id) ? promptHelper(`param-${spec.id}`) : null,
        h('p', { class: 'error-line field-error' }));
      const errorLine = h('p', { class: 'error-line', role: 'alert' });
      const count = h('input', { id: 'run-count', type: 'number', min: 1, max: 100, value: 1 });
      const ready = wf.readiness.ready;
      const saving = savePreset(workflowId, inputs, values, wf.name);
      const form = /** @type {HTMLFormElement} */ (h('form', { id: 'run-form', class: 'stack', novalidate: true },
        inputs.filter((/** @type {any} */ s) => !s.advanced).map((/** @type {any} */ s) => field(s)),
        inputs.some((/** @type {any} */ s) => s.advanced)
          ? h('details', { ontoggle: (/** @type {Event} */ e) => showMore(form, /** @type {HTMLDetailsElement} */ (e.target).open) },
            h('summary', null, 'Advanced'), inputs.filter((/** @type {any} */ s) => s.advanced).map((/** @type {any} */ s) => field(s))) : null,
        h('p', { class: ready === false ? 'error-line readiness' : 'muted small readiness', 'data-ready': String(ready) },
          ready === false ? `Not ready: ${wf.readiness.problems.join('; ')}.` : ready ? 'Ready' : wf.readiness.problems.join('; ')),
        ready === false ? whatIsMissing(workflowId) : null,
        errorLine,
        h('div', { class: 'row run-bar' }, h('label', { for: 'run-count' }, 'Images'), count,
          h('button', { class: 'button', type: 'submit', id: 'run-button', title: 'Run (Ctrl+Enter)' }, comfyLine.hidden ? 'Run' : 'Run (will wait)'),
          h('button', { type: 'button', class: 'link-button small', id: 'reset-defaults', onclick: async () => {
            await drafts.reset(workflowId);
            const defaults = Object.fromEntries(inputs.map((/** @type {any} */ s) => [s.id, wf.manifest.defaults?.[s.id] ?? s.default]));
            await load(workflowId, defaults);
          } }, 'Reset to defaults'), saving.button),
        saving.panel,
        comfyLine));
      repick = async (id) => {
        const fresh = await api.get(`/api/workflows/${encodeURIComponent(id)}`);
        if (id !== workflowId || current !== workflowId || !form.isConnected) return false;
        if (fresh.readiness.ready !== wf.readiness.ready) return false;
        const now = values();
        wf.choices = fresh.choices;
        for (const spec of inputs.filter(folderOf)) {
          const old = form.querySelector(`[data-field="${CSS.escape(spec.id)}"]`);
          if (!old) continue;
          const active = old.contains(document.activeElement) ? document.activeElement : null;
          const redrawn = field(spec, installedChoice(spec, now[spec.id], wf.choices?.[spec.id], drafts));
          old.replaceWith(redrawn);
          if (active) { // the caret stays where it was: on the list itself, or on its refresh button
            const again = active.id ? redrawn.querySelector(`#${CSS.escape(active.id)}`) : redrawn.querySelector('.refresh-models');
            /** @type {HTMLElement | null} */ (again)?.focus();
          }
        }
        const more = /** @type {HTMLDetailsElement | null} */ (form.querySelector(':scope > details'));
        showMore(form, Boolean(more?.open));
        keep();
        return true;
      };
      const keep = () => drafts.save(workflowId, values(), inputs);
      form.addEventListener('input', keep);
      form.addEventListener('change', keep);
      form.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
      });
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        form.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
        errorLine.textContent = '';
        const params = values();
        drafts.save(workflowId, params, inputs);
        try {
          const answer = await api.post(`/api/workflows/${encodeURIComponent(workflowId)}/run`, { params, count: Number(/** @type {HTMLInputElement} */ (count).value) || 1 });
          started(answer.items);
        } catch (err) {
          if (err instanceof ApiError) {
            for (const [key, text] of Object.entries(err.fields)) {
              const name = inputs.find((/** @type {any} */ s) => s.id === key)?.name || key;
              const slot = form.querySelector(`[data-field="${CSS.escape(key)}"] .field-error`);
              if (slot) slot.textContent = String(text).startsWith(name) ? String(text) : `${name} ${text}`;
            }
          }
          errorLine.textContent = message(err);
        }
      });
      replace(formBox, wf.description ? h('p', { class: 'muted small' }, wf.description) : null, form);
      if (prefill || inputs.some((/** @type {any} */ s) => Object.hasOwn(preset, s.id))) keep();
      const folders = [...new Set(inputs.map(folderOf).filter(Boolean))];
      if (folders.length && !refreshed.has(workflowId)) {
        refreshed.add(workflowId); // a model added to ComfyUI since the lists were cached shows up now
        refreshFor(workflowId, /** @type {string[]} */ (folders), values).finally(() => { preset = {}; });
      } else preset = {};
    } catch (err) {
      replace(formBox, h('p', { class: 'error-line' }, message(err)));
    }
  }

  /** `?input=<job>:<n>`: that output, uploaded again as this workflow's image input. @param {string} spec @param {any[]} items */
  async function inputFrom(spec, items) {
    const [jobId, index] = spec.split(':');
    const job = await api.get(`/api/jobs/${encodeURIComponent(jobId)}`);
    const output = job.outputs?.[Number(index) || 0];
    if (!output) throw new Error('That result has no output to use.');
    const blob = await (await fetch(output.url)).blob();
    const body = new FormData();
    body.append('image', blob, output.filename || 'input.png');
    const uploaded = await upload(body);
    let target = path.startsWith('/run/') ? decodeURIComponent(path.slice(5)) : null;
    const details = await Promise.all(items.map((w) => api.get(`/api/workflows/${encodeURIComponent(w.id)}`).catch(() => null)));
    const takesImage = details.filter((d) => d?.manifest.inputs.some((/** @type {any} */ s) => s.type === 'image'));
    const chosen = takesImage.find((d) => d.id === target) || takesImage[0];
    if (!chosen) throw new Error('No workflow here takes an image.');
    target = chosen.id;
    const imageSpec = chosen.manifest.inputs.find((/** @type {any} */ s) => s.type === 'image');
    const carried = { ...(drafts.valuesFor(chosen.id) || {}), [imageSpec.id]: uploaded.name };
    if (job.summary?.prompt) {
      const prompt = chosen.manifest.inputs.find((/** @type {any} */ s) => sharedRole(s) === 'prompt');
      if (prompt && carried[prompt.id] === undefined) carried[prompt.id] = job.summary.prompt;
    }
    return { id: target, values: carried };
  }

  /** @param {string} id */
  function name(id) { history.replaceState(null, '', `/run/${encodeURIComponent(id)}`); }

  (async () => {
    try {
      const [{ items }, status] = await Promise.all([api.get('/api/workflows'), api.get('/api/status').catch(() => null), drafts.loadServer()]);
      if (status) setComfy(status.comfyui?.socket === 'connected');
      replace(picker, items.map((/** @type {any} */ w) => h('option', { value: w.id }, w.name)));
      const known = (/** @type {string | null} */ id) => Boolean(id && items.some((/** @type {any} */ w) => w.id === id));
      /** @type {string | null} */
      let chosen = path.startsWith('/run/') ? decodeURIComponent(path.slice(5)) : query.get('workflow');
      /** @type {Record<string, any> | null} */
      let prefill = null;
      const fromJob = query.get('from_job') || query.get('from'); // `from`: links made before /run/<id>
      if (fromJob) {
        const job = await api.get(`/api/jobs/${encodeURIComponent(fromJob)}`);
        chosen = job.workflow_id;
        prefill = job.params;
      } else if (query.get('preset')) { // a preset's values, questions and all, to try or change here
        const found = await api.get(`/api/presets/${encodeURIComponent(query.get('preset') || '')}`);
        chosen = found.workflow_id;
        prefill = found.params;
      } else if (query.get('input')) {
        const found = await inputFrom(query.get('input') || '', items);
        chosen = found.id;
        prefill = found.values;
      } else if (known(chosen)) {
        preset = presetFrom(query); // applied once: the address below drops the query
      }
      if (!known(chosen)) chosen = drafts.lastWorkflow();
      if (!known(chosen)) {
        chosen = known(FIRST_WORKFLOW) ? FIRST_WORKFLOW : items[0]?.id ?? null;
        const where = matchMedia('(max-width: 900px)').matches ? 'below the form' : 'on the right'; // run.css stacks them
        hint.textContent = `New here? Describe the picture you want in the prompt and press Run: it appears ${where} as it renders.`;
        hint.hidden = false;
      }
      picker.addEventListener('change', () => {
        hint.hidden = true;
        preset = {};
        name(picker.value);
        load(picker.value);
      });
      // The landing page keeps its address `/`; from /run on, the address names the workflow.
      if (chosen && path !== '/') name(chosen);
      if (chosen) await load(chosen, prefill);
    } catch (err) {
      replace(formBox, h('p', { class: 'error-line' }, message(err)));
    }
  })();

  replace(main, h('div', { class: 'run-layout' },
    h('section', { class: 'card run-panel', 'aria-label': 'Workflow and values' },
      h('h1', { class: 'run-title' }, 'Run'),
      h('div', { class: 'row' }, h('label', { for: 'workflow-picker' }, 'Workflow'), picker), hint, formBox),
    h('section', { class: 'run-main', 'aria-label': 'Results' }, stage.element,
      h('section', { class: 'card run-jobs' }, h('h2', null, 'Jobs from this page'), mine))));
  return () => { drafts.flush(); stops.forEach((stop) => stop()); if (current) loading++; };
}
