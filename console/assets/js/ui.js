// DOM helpers. User data only ever goes into the page as text (textContent, attribute values),
// never as HTML.

/**
 * h('button', {class: 'primary', on: {click}, type: 'button'}, 'Text', child...)
 * Props: class, text, on (event handlers), dataset, and everything else as an attribute
 * (false/null/undefined are left out, true is an empty attribute).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = value;
    else if (name === 'on') for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'value') el.value = value;
    else if (name === 'checked') el.checked = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'text') el.textContent = value;
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

export function fmtBytes(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function fmtDate(text) {
  if (!text) return '—';
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? text : d.toLocaleString();
}

/** A message in the page's live region (errors are announced assertively). */
export function toast(message, kind = 'info') {
  // A modal dialog is in the top layer: messages go inside it, or nobody would see them.
  const dialog = Array.from(document.querySelectorAll('dialog[open]')).pop();
  let region = document.getElementById(kind === 'error' ? 'alerts' : 'status');
  if (dialog) {
    const cls = kind === 'error' ? 'dialog-alerts' : 'dialog-status';
    region = dialog.querySelector(`.${cls}`);
    if (!region) {
      region = h('div', { class: `dialog-messages ${cls}`, role: kind === 'error' ? 'alert' : 'status' });
      dialog.querySelector('form').prepend(region);
    }
  }
  while (region.children.length >= 3) region.firstElementChild.remove();
  const item = h('div', { class: `toast ${kind}` }, h('span', { text: message }),
    h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', on: { click: () => item.remove() } }, '×'));
  region.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 15000 : 5000);
}

export function errorText(e) {
  if (!e) return 'Unknown error';
  if (e.code && e.message && e.code !== e.message) return `${e.code}: ${e.message}`;
  return e.message || String(e);
}

/** A visible, announced error box inside `container`. */
export function errorBox(e, prefix = '') {
  return h('div', { class: 'error-box', role: 'alert' }, prefix ? `${prefix}: ${errorText(e)}` : errorText(e));
}

/** Runs `fn`, showing its error as a toast; returns its result or undefined. */
export async function attempt(fn, what) {
  try {
    return await fn();
  } catch (e) {
    toast(what ? `${what} failed — ${errorText(e)}` : errorText(e), 'error');
    return undefined;
  }
}

/**
 * A modal dialog. `build(close)` returns the body; buttons: [{label, kind, value, onClick?}].
 * Resolves with the clicked button's value (or undefined on Escape).
 */
export function modal(title, body, buttons = [{ label: 'Close', value: undefined }]) {
  return new Promise((resolve) => {
    const id = `dlg-${Math.random().toString(36).slice(2)}`;
    const dialog = h('dialog', { 'aria-labelledby': id });
    const close = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    const form = h('form', { method: 'dialog', on: { submit: (e) => e.preventDefault() } });
    const actions = h('div', { class: 'actions' });
    for (const b of buttons) {
      const button = h('button', { type: b.submit ? 'submit' : 'button', class: b.kind || '' }, b.label);
      button.addEventListener('click', async (event) => {
        event.preventDefault();
        if (b.onClick) {
          button.disabled = true;
          try {
            const ok = await b.onClick();
            if (ok === false) return;
          } finally {
            button.disabled = false;
          }
        }
        close(b.value);
      });
      actions.append(button);
    }
    form.append(h('h2', { id, text: title }), body, actions);
    dialog.append(form);
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      close(undefined);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector('input, textarea, select');
    if (first) first.focus();
  });
}

export async function confirm(title, message, label = 'Delete') {
  const ok = await modal(title, h('p', { text: message }), [
    { label: 'Cancel', value: false },
    { label, kind: 'danger', value: true },
  ]);
  return ok === true;
}

/** A labelled form field; returns {field, input}. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const hintEl = hint ? h('small', { id: `${id}-hint`, class: 'hint', text: hint }) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), input, hintEl);
}

/**
 * A table. columns: [{label, class?}], rows: arrays of cells (Node or text). Wrapped for
 * horizontal scrolling on small screens.
 */
export function table(caption, columns, rows, empty = 'Nothing here yet.') {
  const thead = h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class, text: c.label }))));
  const tbody = h('tbody', {});
  for (const row of rows) {
    tbody.append(h('tr', {}, row.map((cell, i) => h('td', { class: columns[i] && columns[i].class }, cell))));
  }
  if (!rows.length) tbody.append(h('tr', {}, h('td', { colspan: columns.length, class: 'empty', text: empty })));
  return h('div', { class: 'table-wrap' },
    h('table', {}, h('caption', { class: caption.visible ? '' : 'sr-only', text: caption.text || caption }), thead, tbody));
}

export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}`, text });
}

export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', { text: title, tabindex: '-1' }), h('div', { class: 'actions' }, actions));
}

export function button(label, onClick, kind = '', extra = {}) {
  return h('button', Object.assign({ type: 'button', class: kind, on: { click: onClick } }, extra), label);
}

/** Editable key/value list (tags); returns {el, value()}. */
export function tagEditor(tags, max, label = 'Tags') {
  const list = h('div', { class: 'tag-list', role: 'group', 'aria-label': label });
  const addRow = (key = '', value = '') => {
    const row = h('div', { class: 'tag-row' });
    const k = h('input', { type: 'text', value: key, maxlength: 128, 'aria-label': 'Tag key', placeholder: 'key' });
    const v = h('input', { type: 'text', value, maxlength: 256, 'aria-label': 'Tag value', placeholder: 'value' });
    row.append(k, v, button('Remove', () => row.remove(), 'small', { 'aria-label': 'Remove tag' }));
    list.append(row);
    return k;
  };
  for (const t of tags) addRow(t.key, t.value);
  const add = button('Add tag', () => {
    if (list.children.length >= max) {
      toast(`At most ${max} tags`, 'error');
      return;
    }
    addRow().focus();
  }, 'small');
  return {
    el: h('div', {}, list, add),
    value: () => Array.from(list.children)
      .map((row) => {
        const [k, v] = row.querySelectorAll('input');
        return { key: k.value.trim(), value: v.value };
      })
      .filter((t) => t.key),
  };
}

export function unavailable(name, why = 'Not available in Coffer yet.') {
  return h('div', { class: 'unavailable' }, h('strong', { text: name }), ' ', badge('unavailable', 'muted'), h('p', { text: why }));
}
