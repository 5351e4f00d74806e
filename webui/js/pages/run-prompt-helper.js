// @ts-check
/**
 * The Run form's prompt helper: the running LLM improves a prompt, writes variations of it, or (a vision
 * model) describes a picture as a prompt. What is sent is exactly the system prompt shown (editable, or
 * chosen from the presets) plus the field's text or the picture; an answer lands in the field only when
 * the person presses "Use this".
 */
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';

const ASK = {
  improve: 'You improve prompts for an image generator. Rewrite the prompt the user sends as one richer, '
    + 'concrete prompt (subject, setting, lighting, style, composition), at most 60 words. Answer with the prompt only.',
  vary: 'You write prompts for an image generator. Write one new variation of the prompt the user sends: '
    + 'keep its subject, change the setting, mood or style. At most 60 words. Answer with the prompt only.',
  describe: 'Describe the picture the user sends as one prompt for an image generator: subject, setting, lighting, '
    + 'colours, style, composition, at most 70 words. Answer with the prompt only.',
};
/** Which presets a task offers first (the rest follow). */
const USE = { improve: 'improve', vary: 'variations', describe: 'describe' };

/** A file as a data: URL (the server scales it down). @param {Blob} blob @returns {Promise<string>} */
function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Error('The picture could not be read.'));
    reader.readAsDataURL(blob);
  });
}

/** The Run form's input picture, if it has one, drawn as it shows (the page's own picture, so the
 * canvas may read it; the page's security policy lets it fetch nothing else). @returns {Promise<string | null>} */
async function formPicture() {
  const thumb = /** @type {HTMLImageElement | null} */ (document.querySelector('#run-form .image-input img.thumb:not([hidden])'));
  if (!thumb?.src) return null;
  if (!thumb.complete) await thumb.decode();
  const canvas = document.createElement('canvas');
  canvas.width = thumb.naturalWidth;
  canvas.height = thumb.naturalHeight;
  const context = canvas.getContext('2d');
  if (!context || !canvas.width) throw new Error('The input picture could not be read.');
  context.drawImage(thumb, 0, 0);
  return canvas.toDataURL('image/png');
}
const VARIATIONS = 3;

/** @param {string} text */
const clean = (text) => text.trim().replace(/^["'“”]+|["'“”]+$/g, '').trim();

/** The helper under one prompt field. @param {string} fieldId the textarea's id */
export function promptHelper(fieldId) {
  const panel = h('div', { class: 'stack prompt-helper', hidden: true, 'data-helper-for': fieldId });
  const system = /** @type {HTMLTextAreaElement} */ (h('textarea', { rows: 3, maxlength: 4000, class: 'prompt-helper-system',
    'aria-label': 'System prompt the LLM gets' }));
  const results = h('div', { class: 'stack prompt-helper-results', 'aria-live': 'polite' });
  let mode = /** @type {'improve' | 'vary' | 'describe'} */ ('improve');
  /** @type {any[]} */
  let presets = [];
  const presetPick = /** @type {HTMLSelectElement} */ (h('select', { class: 'prompt-helper-preset', 'aria-label': 'System prompt preset',
    onchange: () => {
      const chosen = presets.find((p) => p.id === presetPick.value);
      if (chosen) system.value = chosen.system_prompt;
    } }));
  const pictureFile = /** @type {HTMLInputElement} */ (h('input', { type: 'file', accept: 'image/png,image/jpeg,image/webp',
    class: 'prompt-helper-picture', 'aria-label': 'A picture to describe (else the form’s input picture)' }));

  function showPresets() {
    const use = USE[mode];
    const ordered = [...presets.filter((p) => p.use === use), ...presets.filter((p) => p.use !== use)];
    replace(presetPick, h('option', { value: '' }, 'Presets…'),
      ordered.map((p) => h('option', { value: p.id }, p.bundled ? p.name : `${p.name} (yours)`)));
  }

  /** Switching what to do shows that task's instructions; pressing the same again keeps any edit.
   * @param {'improve' | 'vary' | 'describe'} which */
  function choose(which) {
    if (which === mode) return;
    mode = which;
    system.value = ASK[which];
    showPresets();
  }

  async function describe() {
    replace(results, h('p', { class: 'muted' }, 'Asking the LLM…'));
    try {
      const file = pictureFile.files?.[0];
      const url = file ? await dataUrl(file) : await formPicture();
      if (!url) { replace(results, h('p', { class: 'error-line' }, 'Choose a picture, or set the form’s input picture first.')); return; }
      const answer = await api.post('/api/llm/v1/chat/completions', {
        messages: [{ role: 'system', content: system.value }, { role: 'user', content: [{ type: 'image_url', image_url: { url } }] }],
        temperature: 0.4, max_tokens: 200 });
      const text = clean(answer.choices?.[0]?.message?.content || '');
      replace(results, text ? suggestion(text) : h('p', { class: 'muted' }, 'The LLM answered nothing.'));
    } catch (err) {
      replace(results, h('p', { class: 'error-line' }, err instanceof ApiError || err instanceof Error ? err.message : String(err)));
    }
  }

  /** @param {string} text */
  function suggestion(text) {
    const field = /** @type {HTMLTextAreaElement | null} */ (document.getElementById(fieldId));
    return h('div', { class: 'prompt-suggestion' }, h('p', { class: 'prompt-suggestion-text' }, text),
      h('button', { type: 'button', class: 'button secondary small', onclick: () => {
        if (!field) return;
        field.value = text;
        field.dispatchEvent(new Event('input', { bubbles: true }));  // the draft keeps it, as if typed
        field.focus();
      } }, 'Use this'));
  }

  async function ask() {
    const field = /** @type {HTMLTextAreaElement | null} */ (document.getElementById(fieldId));
    const prompt = field?.value.trim() || '';
    if (!prompt) { replace(results, h('p', { class: 'error-line' }, 'Write a prompt first: the helper starts from it.')); return; }
    replace(results, h('p', { class: 'muted' }, 'Asking the LLM…'));
    const runs = mode === 'vary' ? VARIATIONS : 1;
    try {
      const answers = await Promise.all(Array.from({ length: runs }, (_, i) => api.post('/api/llm/v1/chat/completions', {
        messages: [{ role: 'system', content: system.value }, { role: 'user', content: prompt }],
        temperature: mode === 'vary' ? 0.9 : 0.4, seed: i + 1, max_tokens: 160 })));
      const texts = answers.map((a) => clean(a.choices?.[0]?.message?.content || '')).filter(Boolean);
      replace(results, texts.length ? texts.map(suggestion) : h('p', { class: 'muted' }, 'The LLM answered nothing.'));
    } catch (err) {
      replace(results, h('p', { class: 'error-line' }, err instanceof ApiError ? err.message : String(err)));
    }
  }

  system.value = ASK.improve;
  replace(panel,
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'button small', onclick: () => { choose('improve'); ask(); } }, 'Improve'),
      h('button', { type: 'button', class: 'button secondary small', onclick: () => { choose('vary'); ask(); } },
        `${VARIATIONS} variations`),
      h('button', { type: 'button', class: 'button secondary small', onclick: () => { choose('describe'); describe(); } },
        'Describe picture → prompt')),
    h('details', null, h('summary', { class: 'small' }, 'What the LLM is told'), presetPick, system,
      h('p', { class: 'muted small' }, 'Sent as it is, with your prompt (or the picture) and nothing else. Edit it, then press a button.'),
      h('label', { class: 'small' }, 'Picture to describe (empty: the form’s input picture) ', pictureFile)),
    results);
  api.get('/api/llm/presets').then(({ items }) => { presets = items; showPresets(); }).catch(() => {});
  const toggle = h('button', { type: 'button', class: 'link-button small', 'aria-expanded': 'false',
    onclick: () => {
      panel.hidden = !panel.hidden;
      toggle.setAttribute('aria-expanded', String(!panel.hidden));
    } }, 'Prompt helper (LLM)');
  return [toggle, panel];
}
