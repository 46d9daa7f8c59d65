// dom.js - building the page: elements, labelled fields, tables, error display, copy.
// No markup is ever parsed from a string: every text goes in as a text node, so no API value
// can inject markup.

/** h('button', {class: 'x', onclick: f}, 'text', child) -> an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace everything inside `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A unique id for label/input pairs. */
export function newId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled form field. `name` is the API's field name: an error naming that field is
 * shown in the slot under the input (see showError).
 */
export function field(label, name, input, hint) {
  const id = input.id || newId(name.replace(/[^a-z0-9]/gi, '-'));
  input.id = id;
  if (!input.name) input.name = name;
  const err = h('p', { class: 'field-error', id: `${id}-error`, dataset: { errorFor: name }, role: 'alert' });
  input.setAttribute('aria-describedby', `${id}-error`);
  const wrap = input.type === 'checkbox'
    ? h('div', { class: 'field field-check' }, input, h('label', { for: id }, label), hint && h('p', { class: 'hint' }, hint), err)
    : h('div', { class: 'field' }, h('label', { for: id }, label), hint && h('p', { class: 'hint' }, hint), input, err);
  return wrap;
}

export const input = (attrs = {}) => h('input', { type: 'text', ...attrs });
export const checkbox = (name, checked) => h('input', { type: 'checkbox', name, checked });
export const textarea = (attrs = {}, value = '') => { const t = h('textarea', attrs); t.value = value ?? ''; return t; };

/** <select> of [value, label] pairs with `selected` chosen. */
export function select(name, options, selected) {
  const s = h('select', { name });
  for (const [value, label] of options) {
    const o = h('option', { value: String(value) }, label);
    if (String(value) === String(selected ?? '')) o.selected = true;
    s.append(o);
  }
  return s;
}

/** Clear the error slots of `root` (a form or a section). */
export function clearErrors(root) {
  for (const e of root.querySelectorAll('.field-error, .form-error')) e.textContent = '';
  for (const i of root.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
}

/**
 * Show an API error next to what caused it: in the slot of the field it names, else in the
 * form's own error slot (created at the top of `root` when missing). Never swallowed.
 */
export function showError(root, err) {
  const text = err && err.message ? err.message : String(err);
  const named = err && err.field && root.querySelector(`[data-error-for="${CSS.escape(err.field)}"]`);
  if (named) {
    named.textContent = text;
    const inputEl = root.querySelector(`[name="${CSS.escape(err.field)}"]`);
    if (inputEl) inputEl.setAttribute('aria-invalid', 'true');
    return named;
  }
  let slot = root.querySelector(':scope > .form-error') || root.querySelector('.form-error');
  if (!slot) {
    slot = h('p', { class: 'form-error', role: 'alert' });
    root.prepend(slot);
  }
  slot.textContent = err && err.code ? `${text} (${err.code})` : text;
  return slot;
}

/** A form with an error slot on top; `onsubmit(form)` runs with errors cleared first. */
export function form(attrs, children, onsubmit) {
  const f = h('form', { ...attrs, novalidate: true }, h('p', { class: 'form-error', role: 'alert' }), children);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(f);
    const buttons = f.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await onsubmit(f, ev.submitter);
    } catch (err) {
      showError(f, err);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
  return f;
}

/** A table with a caption; `columns` = [[heading, row => cell]]. */
export function table(caption, columns, rows, empty = 'Nothing yet.') {
  if (!rows.length) return h('p', { class: 'empty' }, `${caption}: ${empty}`);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, columns.map(([title]) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, columns.map(([, cell]) => h('td', {}, cell(r))))))));
}

/** A read-only block of text with a copy button; the copied text is `text` exactly. */
export function copyBlock(label, text, name) {
  const id = newId('copy');
  const pre = h('pre', { id, class: 'copy-text', tabindex: '0', dataset: { copy: name } }, text);
  const status = h('span', { class: 'copy-status', role: 'status' });
  const btn = h('button', {
    type: 'button',
    class: 'secondary',
    'aria-describedby': id,
    dataset: { copyButton: name },
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        status.textContent = 'Copied.';
      } catch (e) {
        // Without clipboard permission, select the text so Ctrl+C copies it.
        const range = document.createRange();
        range.selectNodeContents(pre);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        status.textContent = `Could not copy (${e.message}); the text is selected: press Ctrl+C.`;
      }
    },
  }, `Copy ${label.toLowerCase()}`);
  return h('div', { class: 'copy-block' }, h('h3', {}, label), pre, h('div', { class: 'row' }, btn, status));
}

/** A short date-time in the browser's zone. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** A link inside the console. */
export const link = (hash, text, attrs = {}) => h('a', { href: `#${hash}`, ...attrs }, text);

/** A status line that announces itself to screen readers. */
export const status = (text = '') => h('p', { class: 'status', role: 'status' }, text);
