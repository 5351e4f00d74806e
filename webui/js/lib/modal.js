// What every full-screen dialog (the History lightbox, the Gallery's, its comparison) does the same way:
// focus stays inside while it is open, and closing it gives focus back to whatever opened it.

const FOCUSABLE = 'a[href], button, input, select, textarea, video[controls], audio[controls]';

/**
 * Keeps Tab and Shift+Tab cycling through the dialog's visible controls.
 * @param {KeyboardEvent} event a Tab keydown
 * @param {HTMLElement} dialog
 */
export function trapFocus(event, dialog) {
  const focusable = /** @type {HTMLElement[]} */ ([...dialog.querySelectorAll(FOCUSABLE)])
    .filter((el) => !el.hidden && el.offsetParent !== null);
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  const active = document.activeElement;
  if (event.shiftKey && (active === first || !dialog.contains(active))) { event.preventDefault(); last.focus(); }
  else if (!event.shiftKey && (active === last || !dialog.contains(active))) { event.preventDefault(); first.focus(); }
}

/**
 * Shows ``dialog`` over the page with ``onKey`` listening first, and returns its ``close``, which may be
 * called any number of times: the first call removes it, runs ``cleanups``, gives focus back to the
 * opener and calls ``onClose``.
 * @param {HTMLElement} dialog
 * @param {{ onKey: (event: KeyboardEvent) => void, onClose?: () => void, cleanups?: Array<() => void> }} options
 * @returns {() => void}
 */
export function showModal(dialog, options) {
  const opener = /** @type {HTMLElement | null} */ (document.activeElement);
  let closed = false;
  function close() {
    if (closed) return;
    closed = true;
    (options.cleanups || []).forEach((cleanup) => cleanup());
    document.removeEventListener('keydown', options.onKey, true);
    dialog.remove();
    document.body.classList.remove('lightbox-open');
    if (opener && opener.isConnected) opener.focus();
    options.onClose?.();
  }
  document.addEventListener('keydown', options.onKey, true);
  document.body.classList.add('lightbox-open');
  document.body.append(dialog);
  return close;
}
