// @ts-check
/**
 * Trained words in the Run form: when a LoRA slot has a LoRA chosen and CivitAI lists words it was
 * trained with, they show as chips under the slot; a click inserts one into the prompt where the caret
 * was (the prompt last typed in, else the first one that is not a negative prompt). Nothing is ever
 * added without that click: a LoRA chosen, a draft restored or a preset loaded changes no prompt.
 * The words come from Studio (GET /api/civitai/trained-words, fetched once per page), never from CivitAI.
 */
import { api } from '../lib/api.js';
import { h } from '../lib/dom.js';

/** @type {Promise<Record<string, string[]>> | null} */
let known = null;

/** Studio's list, fetched once; a failure means no chips, never a broken form. */
function wordsByFile() {
  known ??= api.get('/api/civitai/trained-words').then((answer) => answer.items || {}).catch(() => {
    known = null; // asked again next time a LoRA is chosen
    return {};
  });
  return known;
}

/** The words for a chosen file: by its exact name, else by the file name alone (another folder).
 * @param {Record<string, string[]>} all @param {string} file */
function wordsFor(all, file) {
  if (!file) return [];
  if (all[file]) return all[file];
  const base = file.split(/[\\/]/).pop();
  const other = Object.keys(all).find((name) => name.split(/[\\/]/).pop() === base);
  return other ? all[other] : [];
}

/** @type {WeakMap<HTMLFormElement, HTMLTextAreaElement>} */
const lastPrompt = new WeakMap();

/** The prompt a chip writes into. @param {HTMLFormElement} form */
function promptOf(form) {
  const typed = lastPrompt.get(form);
  if (typed?.isConnected) return typed;
  const prompts = /** @type {HTMLTextAreaElement[]} */ ([...form.querySelectorAll('textarea[data-type="text"]')]);
  return prompts.find((t) => !/negative/i.test(t.name)) || prompts[0] || null;
}

/** Remembers which prompt was typed in last, once per form. @param {HTMLFormElement} form */
function followPrompts(form) {
  if (form.dataset.trainedWords) return;
  form.dataset.trainedWords = 'on';
  form.addEventListener('focusin', (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (target instanceof HTMLTextAreaElement && target.dataset.type === 'text') lastPrompt.set(form, target);
  });
}

/** Puts `word` at the prompt's caret (replacing a selection), with a comma where one is needed.
 * @param {HTMLTextAreaElement} prompt @param {string} word */
export function insertAtCaret(prompt, word) {
  const start = prompt.selectionStart ?? prompt.value.length;
  const end = prompt.selectionEnd ?? start;
  const before = prompt.value.slice(0, start);
  const after = prompt.value.slice(end);
  // Prompts are comma-separated phrases: "a cat|" becomes "a cat, word", "a cat,|" "a cat, word".
  const lead = !before.trim() || /\s$/.test(before) ? '' : /,$/.test(before) ? ' ' : ', ';
  const trail = after && !/^[\s,]/.test(after) ? ', ' : '';
  const text = `${lead}${word}${trail}`;
  prompt.value = before + text + after;
  const caret = before.length + lead.length + word.length;
  prompt.focus();
  prompt.setSelectionRange(caret, caret);
  prompt.dispatchEvent(new Event('input', { bubbles: true })); // drafts and the prompt helper see it
}

/**
 * Offers the chosen LoRA's trained words in one LoRA slot (a `.lora-row` with a `.lora-file` select, or a
 * `.lora-pair` one: then `filesOf` names the pair's files, whose words are offered together), now and
 * whenever another LoRA is chosen in it.
 * @param {HTMLElement} row @param {(value: string) => string[]} [filesOf]
 */
export function offerTrainedWords(row, filesOf) {
  const select = /** @type {HTMLSelectElement | null} */ (row.querySelector('.lora-file, .lora-pair'));
  if (!select) return;
  const chips = h('div', { class: 'trained-words run-trained-words', hidden: true });
  row.append(chips);
  const show = async () => {
    const file = select.value;
    const all = await wordsByFile();
    const words = [...new Set((filesOf ? filesOf(file) : [file]).flatMap((name) => wordsFor(all, name)))];
    if (select.value !== file) return; // another LoRA was chosen meanwhile
    const form = row.closest('form');
    if (form) followPrompts(form);
    chips.replaceChildren(...(words.length ? [h('span', { class: 'muted small' }, 'Trained words:')] : []),
      ...words.map((word) => h('button', { type: 'button', class: 'chip trained-word', title: 'Insert into the prompt at the caret',
        onclick: () => {
          const target = form ? promptOf(form) : null;
          if (target) insertAtCaret(target, word);
        } }, word)));
    chips.hidden = !words.length;
  };
  select.addEventListener('change', show);
  show();
}
