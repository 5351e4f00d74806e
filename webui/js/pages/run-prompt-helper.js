// @ts-check
/**
 * The Run form's prompt helper: the running LLM improves a prompt or writes variations of it. What is
 * sent is exactly the system prompt shown (and editable) plus the field's text; an answer lands in
 * the field only when the person presses "Use this".
 */
import { api, ApiError } from '../lib/api.js';
import { h, replace } from '../lib/dom.js';

const ASK = {
  improve: 'You improve prompts for an image generator. Rewrite the prompt the user sends as one richer, '
    + 'concrete prompt (subject, setting, lighting, style, composition), at most 60 words. Answer with the prompt only.',
  vary: 'You write prompts for an image generator. Write one new variation of the prompt the user sends: '
    + 'keep its subject, change the setting, mood or style. At most 60 words. Answer with the prompt only.',
};
const VARIATIONS = 3;

/** @param {string} text */
const clean = (text) => text.trim().replace(/^["'“”]+|["'“”]+$/g, '').trim();

/** The helper under one prompt field. @param {string} fieldId the textarea's id */
export function promptHelper(fieldId) {
  const panel = h('div', { class: 'stack prompt-helper', hidden: true, 'data-helper-for': fieldId });
  const system = /** @type {HTMLTextAreaElement} */ (h('textarea', { rows: 3, maxlength: 4000, class: 'prompt-helper-system',
    'aria-label': 'System prompt the LLM gets' }));
  const results = h('div', { class: 'stack prompt-helper-results', 'aria-live': 'polite' });
  let mode = /** @type {'improve' | 'vary'} */ ('improve');

  /** Switching what to do shows that task's instructions; pressing the same again keeps any edit.
   * @param {'improve' | 'vary'} which */
  function choose(which) {
    if (which === mode) return;
    mode = which;
    system.value = ASK[which];
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
        `${VARIATIONS} variations`)),
    h('details', null, h('summary', { class: 'small' }, 'What the LLM is told'), system,
      h('p', { class: 'muted small' }, 'Sent as it is, with your prompt and nothing else. Edit it, then press a button.')),
    results);
  const toggle = h('button', { type: 'button', class: 'link-button small', 'aria-expanded': 'false',
    onclick: () => {
      panel.hidden = !panel.hidden;
      toggle.setAttribute('aria-expanded', String(!panel.hidden));
    } }, 'Prompt helper (LLM)');
  return [toggle, panel];
}
