// The object browser: a bucket's keys as folders (by `/`), uploads, downloads, deletes,
// previews, metadata, tags and share links.

import * as api from './api.js';
import { Uploads, droppedFiles } from './upload.js';
import {
  attempt, badge, button, clear, confirm, errorBox, errorText, field, fmtBytes, fmtDate, h, modal, table, tagEditor,
  toast,
} from './ui.js';

const IMAGE_EXT = /\.(png|jpe?g|gif|webp|bmp|svg|avif|ico)$/i;
const TEXT_EXT = /\.(txt|md|log|csv|tsv|json|xml|ya?ml|toml|ini|conf|cfg|js|mjs|ts|css|html?|rs|py|go|java|c|h|cpp|sh|sql)$/i;
const PREVIEW_IMAGE_MAX = 20 * 1024 * 1024;
const PREVIEW_TEXT_BYTES = 256 * 1024;
const SHARE_EXPIRIES = [
  [900, '15 minutes'], [3600, '1 hour'], [43200, '12 hours'], [86400, '1 day'], [604800, '7 days'],
];

function browseHref(bucket, prefix) {
  return `#/browse/${encodeURIComponent(bucket)}${prefix ? '/' + prefix.split('/').filter(Boolean).map(encodeURIComponent).join('/') + '/' : ''}`;
}

function baseName(key) {
  const trimmed = key.endsWith('/') ? key.slice(0, -1) : key;
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

function contentDisposition(name) {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${api.uriEncodeName(name)}`;
}

/** Downloads through a presigned GET on the console's origin, streamed by the browser. */
async function download(bucket, key, versionId) {
  const query = { 'response-content-disposition': contentDisposition(baseName(key)) };
  if (versionId) query.versionId = versionId;
  const url = await api.presignGet(bucket, key, 300, location.origin, query);
  const a = h('a', { href: url, download: baseName(key), class: 'sr-only' });
  document.body.append(a);
  a.click();
  a.remove();
}

async function listAll(bucket, prefix) {
  const keys = [];
  let token;
  do {
    const page = await api.listObjects(bucket, { prefix, delimiter: '', token });
    keys.push(...page.objects.map((o) => o.key));
    token = page.truncated ? page.token : undefined;
  } while (token);
  return keys;
}

function crumbs(bucket, prefix) {
  const nav = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    h('a', { href: '#/buckets', text: 'Buckets' }), ' / ',
    h('a', { href: browseHref(bucket, ''), text: bucket }));
  let acc = '';
  for (const part of prefix.split('/').filter(Boolean)) {
    acc += `${part}/`;
    nav.append(' / ', h('a', { href: browseHref(bucket, acc), text: part }));
  }
  const last = nav.lastElementChild;
  if (last) last.setAttribute('aria-current', 'page');
  return nav;
}

async function preview(bucket, key, info) {
  const box = h('div', { class: 'preview' });
  const isImage = info.contentType.startsWith('image/') || IMAGE_EXT.test(key);
  const isText = info.contentType.startsWith('text/') || /json|xml|yaml|javascript/.test(info.contentType) || TEXT_EXT.test(key);
  if (isImage && info.size <= PREVIEW_IMAGE_MAX) {
    try {
      const blob = await (await api.getObject(bucket, key)).blob();
      const typed = blob.type.startsWith('image/') ? blob : new Blob([blob], { type: info.contentType || 'image/*' });
      const url = URL.createObjectURL(typed);
      box.append(h('img', { src: url, alt: `Preview of ${baseName(key)}`, on: { load: () => URL.revokeObjectURL(url) } }));
    } catch (e) {
      box.append(errorBox(e, 'Cannot load the preview'));
    }
    return box;
  }
  if (isText) {
    try {
      const response = await api.getObject(bucket, key, { range: `bytes=0-${PREVIEW_TEXT_BYTES - 1}` });
      const text = new TextDecoder('utf-8', { fatal: false }).decode(await response.arrayBuffer());
      box.append(h('pre', { class: 'text-preview', tabindex: '0', 'aria-label': `Contents of ${baseName(key)}`, text }));
      if (info.size > PREVIEW_TEXT_BYTES) box.append(h('p', { class: 'muted', text: `Showing the first ${fmtBytes(PREVIEW_TEXT_BYTES)}.` }));
    } catch (e) {
      box.append(errorBox(e, 'Cannot load the preview'));
    }
    return box;
  }
  box.append(h('p', { class: 'muted', text: 'No preview for this type of object.' }));
  return box;
}

function shareBox(bucket, key) {
  const session = api.getSession();
  const expiry = h('select', {}, SHARE_EXPIRIES.map(([s, label]) => h('option', { value: String(s), text: label })));
  expiry.value = '3600';
  const endpoint = h('input', { type: 'url', value: api.defaultS3Endpoint(), spellcheck: 'false' });
  const out = h('div', { class: 'share-out' });
  const make = async () => {
    clear(out);
    let base;
    try {
      base = new URL(endpoint.value.trim()).origin;
    } catch {
      out.append(h('p', { class: 'error-box', role: 'alert', text: 'Enter an endpoint such as http://host:9000.' }));
      return;
    }
    const seconds = Number(expiry.value);
    const url = await api.presignGet(bucket, key, seconds, base);
    const link = h('input', { type: 'text', readonly: true, value: url, 'aria-label': 'Share link', class: 'share-link' });
    const ends = new Date(Date.now() + seconds * 1000);
    const sessionEnds = new Date(session.expiration);
    out.append(field('Share link', link),
      h('div', { class: 'actions' }, button('Copy link', async () => {
        link.select();
        try {
          await navigator.clipboard.writeText(url);
          toast('Link copied');
        } catch {
          toast('Press Ctrl+C (⌘C) to copy the selected link');
        }
      }, 'small')),
      h('p', { class: 'muted', text: ends > sessionEnds
        ? `Signed with your session: the link stops working when the session ends (${sessionEnds.toLocaleString()}), before the chosen expiry.`
        : `Valid until ${ends.toLocaleString()}.` }));
    link.focus();
    link.select();
  };
  return h('div', { class: 'share' },
    h('div', { class: 'row' }, field('Expires after', expiry), field('S3 endpoint for the link', endpoint)),
    button('Create share link', make, 'primary'), out);
}

async function showObject(bucket, key, onChanged) {
  const body = h('div', { class: 'object-details' }, h('p', { class: 'loading', text: 'Loading…' }));
  const opened = modal(baseName(key), body, [
    { label: 'Download', value: 'download', onClick: () => download(bucket, key).then(() => true) },
    { label: 'Delete', kind: 'danger', value: 'delete', onClick: async () => {
      if (!(await confirm('Delete object', `Delete ${key}?`))) return false;
      const ok = await attempt(() => api.deleteObject(bucket, key).then(() => true), 'Delete');
      if (ok) {
        toast(`Deleted ${key}`);
        onChanged();
      }
      return ok === true;
    } },
    { label: 'Close' },
  ]);
  let info;
  try {
    info = await api.headObject(bucket, key);
  } catch (e) {
    clear(body, errorBox(e, 'Cannot read the object'));
    return opened;
  }
  const meta = [
    ['Key', key], ['Size', `${fmtBytes(info.size)} (${info.size} bytes)`], ['Content type', info.contentType || '—'],
    ['Last modified', fmtDate(info.modified)], ['ETag', info.etag], ['Storage class', info.storageClass],
  ];
  if (info.cacheControl) meta.push(['Cache-Control', info.cacheControl]);
  if (info.contentDisposition) meta.push(['Content-Disposition', info.contentDisposition]);
  if (info.contentEncoding) meta.push(['Content-Encoding', info.contentEncoding]);
  for (const [k, v] of Object.entries(info.meta)) meta.push([`x-amz-meta-${k}`, v]);
  const tagsBox = h('div', {}, h('p', { class: 'loading', text: 'Loading tags…' }));
  clear(body,
    h('section', { 'aria-labelledby': 'meta-h' }, h('h3', { id: 'meta-h', text: 'Metadata' }),
      h('dl', { class: 'meta' }, meta.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]))),
    h('section', { 'aria-labelledby': 'preview-h' }, h('h3', { id: 'preview-h', text: 'Preview' }), await preview(bucket, key, info)),
    h('section', { 'aria-labelledby': 'otags-h' }, h('h3', { id: 'otags-h', text: 'Tags' }), tagsBox),
    h('section', { 'aria-labelledby': 'share-h' }, h('h3', { id: 'share-h', text: 'Share' }), shareBox(bucket, key)),
    h('section', { 'aria-labelledby': 'versions-h' }, h('h3', { id: 'versions-h', text: 'Versions' }),
      h('p', { class: 'muted', text: 'In a versioned bucket, "Show versions" in the object list lists every version of this key.' })));
  try {
    const editor = tagEditor(await api.getObjectTags(bucket, key), 10, 'Object tags');
    clear(tagsBox, editor.el, h('div', { class: 'actions' }, button('Save tags', async () => {
      const ok = await attempt(() => api.putObjectTags(bucket, key, editor.value()).then(() => true), 'Saving tags');
      if (ok) toast('Tags saved');
    }, 'primary small')));
  } catch (e) {
    clear(tagsBox, errorBox(e, 'Cannot read the tags'));
  }
  return opened;
}

export async function renderObjects(main, bucket, rawPrefix) {
  const prefix = rawPrefix ? rawPrefix.replace(/\/*$/, '/') : '';
  const selected = new Set();
  let pages = [];
  let token;
  let versionPages = [];
  let versionMarker;
  const showVersions = h('input', { type: 'checkbox', id: 'show-versions' });
  const versionsToggle = h('label', { class: 'toggle', for: 'show-versions', hidden: true }, showVersions, 'Show versions');
  const versioningBadge = badge('Versioning: …', 'muted');
  const listing = h('div', { class: 'listing' }, h('p', { class: 'loading', text: 'Loading…' }));
  const deleteSelected = button('Delete selected', () => removeSelected(), 'danger', { disabled: true });
  const filter = h('input', { type: 'search', placeholder: 'Filter this folder', 'aria-label': 'Filter by name' });
  const uploads = new Uploads(() => refresh());
  const fileInput = h('input', { type: 'file', multiple: true, class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
  const folderInput = h('input', { type: 'file', multiple: true, webkitdirectory: true, class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
  const queue = (files) => {
    for (const { path, file } of files) uploads.add(bucket, prefix + path, file);
  };
  fileInput.addEventListener('change', () => {
    queue(Array.from(fileInput.files).map((file) => ({ path: file.name, file })));
    fileInput.value = '';
  });
  folderInput.addEventListener('change', () => {
    queue(Array.from(folderInput.files).map((file) => ({ path: file.webkitRelativePath || file.name, file })));
    folderInput.value = '';
  });

  const updateSelection = () => {
    deleteSelected.disabled = selected.size === 0;
    deleteSelected.textContent = selected.size ? `Delete selected (${selected.size})` : 'Delete selected';
  };

  const drawVersions = () => {
    const needle = filter.value.trim().toLowerCase();
    const match = (name) => !needle || name.toLowerCase().includes(needle);
    const folders = versionPages.flatMap((p) => p.prefixes).filter((p) => match(baseName(p)));
    const entries = versionPages.flatMap((p) => p.entries).filter((v) => v.key !== prefix && match(baseName(v.key)));
    const rows = [
      ...folders.map((p) => [
        h('a', { href: browseHref(bucket, p), class: 'folder' }, h('span', { class: 'icon-folder', 'aria-hidden': 'true' }), baseName(p) + '/'),
        '—', '—', '—', '—',
        h('div', { class: 'row-actions' }, h('a', { class: 'button small', href: browseHref(bucket, p), text: 'Open', 'aria-label': `Open folder ${baseName(p)}` })),
      ]),
      ...entries.map((v) => {
        const name = baseName(v.key);
        const label = `${name} version ${v.versionId}`;
        return [
          h('span', { class: 'object-name' }, h('span', { class: v.deleteMarker ? '' : 'icon-file', 'aria-hidden': 'true' }), name),
          h('span', { class: 'version-id', text: v.versionId }),
          h('span', {}, v.latest ? badge('latest', '') : null, v.deleteMarker ? badge('delete marker', 'muted') : null),
          v.deleteMarker ? '—' : fmtBytes(v.size),
          fmtDate(v.modified),
          h('div', { class: 'row-actions' },
            v.deleteMarker ? null : button('Download', () => attempt(() => download(bucket, v.key, v.versionId), 'Download'), 'small', { 'aria-label': `Download ${label}` }),
            button('Delete version', async () => {
              const what = v.deleteMarker ? `the delete marker ${v.versionId} of ${v.key}` : `version ${v.versionId} of ${v.key}`;
              if (!(await confirm('Delete version permanently', `Permanently delete ${what}? This cannot be undone.`))) return;
              const ok = await attempt(() => api.deleteObjectVersion(bucket, v.key, v.versionId).then(() => true), 'Delete version');
              if (ok) {
                toast(`Deleted ${what}`);
                refresh();
              }
            }, 'small danger', { 'aria-label': `Delete ${label} permanently` })),
        ];
      }),
    ];
    clear(listing, table({ text: `Versions in ${bucket}/${prefix}` },
      [{ label: 'Name' }, { label: 'Version ID' }, { label: 'State' }, { label: 'Size', class: 'num' }, { label: 'Last modified', class: 'hide-sm' }, { label: 'Actions' }],
      rows, needle ? 'Nothing matches the filter.' : 'No versions in this folder.'),
    versionMarker ? button('Load more', () => loadVersions(true), '', { class: 'more' }) : null);
  };

  const loadVersions = async (more = false) => {
    try {
      const page = await api.listObjectVersions(bucket, {
        prefix,
        keyMarker: more && versionMarker ? versionMarker.keyMarker : undefined,
        versionIdMarker: more && versionMarker ? versionMarker.versionIdMarker : undefined,
      });
      versionPages = more ? [...versionPages, page] : [page];
      versionMarker = page.truncated ? { keyMarker: page.keyMarker, versionIdMarker: page.versionIdMarker } : undefined;
      drawVersions();
    } catch (e) {
      clear(listing, errorBox(e, 'Cannot list the versions'));
    }
  };

  const draw = () => {
    if (showVersions.checked) {
      drawVersions();
      return;
    }
    const needle = filter.value.trim().toLowerCase();
    const match = (name) => !needle || name.toLowerCase().includes(needle);
    const folders = pages.flatMap((p) => p.prefixes).filter((p) => match(baseName(p)));
    const objects = pages.flatMap((p) => p.objects).filter((o) => o.key !== prefix && match(baseName(o.key)));
    const all = [...folders, ...objects.map((o) => o.key)];
    const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select all', checked: all.length > 0 && all.every((k) => selected.has(k)) });
    selectAll.addEventListener('change', () => {
      for (const k of all) (selectAll.checked ? selected.add(k) : selected.delete(k));
      draw();
      updateSelection();
    });
    const check = (key, label) => {
      const box = h('input', { type: 'checkbox', 'aria-label': `Select ${label}`, checked: selected.has(key) });
      box.addEventListener('change', () => {
        if (box.checked) selected.add(key);
        else selected.delete(key);
        updateSelection();
      });
      return box;
    };
    const rows = [
      ...folders.map((p) => [
        check(p, baseName(p)),
        h('a', { href: browseHref(bucket, p), class: 'folder' }, h('span', { class: 'icon-folder', 'aria-hidden': 'true' }), baseName(p) + '/'),
        '—', '—',
        h('div', { class: 'row-actions' }, h('a', { class: 'button small', href: browseHref(bucket, p), text: 'Open', 'aria-label': `Open folder ${baseName(p)}` })),
      ]),
      ...objects.map((o) => [
        check(o.key, baseName(o.key)),
        h('button', { type: 'button', class: 'link object-name', on: { click: () => showObject(bucket, o.key, refresh) } },
          h('span', { class: 'icon-file', 'aria-hidden': 'true' }), baseName(o.key)),
        fmtBytes(o.size),
        fmtDate(o.modified),
        h('div', { class: 'row-actions' },
          button('Download', () => attempt(() => download(bucket, o.key), 'Download'), 'small', { 'aria-label': `Download ${baseName(o.key)}` }),
          button('Share', () => modal(`Share ${baseName(o.key)}`, shareBox(bucket, o.key)), 'small', { 'aria-label': `Share ${baseName(o.key)}` })),
      ]),
    ];
    const tableEl = table({ text: `Objects in ${bucket}/${prefix}` },
      [{ label: '' , class: 'select' }, { label: 'Name' }, { label: 'Size', class: 'num' }, { label: 'Last modified', class: 'hide-sm' }, { label: 'Actions' }],
      rows, needle ? 'Nothing matches the filter.' : 'This folder is empty. Drop files here or use Upload.');
    tableEl.querySelector('th.select').append(selectAll);
    clear(listing, tableEl,
      token ? button('Load more', () => load(true), '', { class: 'more' }) : null);
  };

  const load = async (more = false) => {
    try {
      const page = await api.listObjects(bucket, { prefix, token: more ? token : undefined });
      pages = more ? [...pages, page] : [page];
      token = page.truncated ? page.token : undefined;
      draw();
    } catch (e) {
      clear(listing, errorBox(e, 'Cannot list the objects'));
    }
  };

  const refresh = () => {
    selected.clear();
    updateSelection();
    return showVersions.checked ? loadVersions(false) : load(false);
  };
  showVersions.addEventListener('change', () => {
    deleteSelected.hidden = showVersions.checked;
    clear(listing, h('p', { class: 'loading', text: 'Loading…' }));
    refresh();
  });
  api.getBucketVersioning(bucket).then((status) => {
    versioningBadge.textContent = `Versioning: ${status === 'Enabled' ? 'enabled' : status === 'Suspended' ? 'suspended' : 'off'}`;
    versionsToggle.hidden = !status;
  }, () => {
    versioningBadge.textContent = 'Versioning: unknown';
  });

  const removeSelected = async () => {
    const items = Array.from(selected);
    const folders = items.filter((k) => k.endsWith('/'));
    let keys = items.filter((k) => !k.endsWith('/'));
    try {
      for (const f of folders) keys = keys.concat(await listAll(bucket, f));
    } catch (e) {
      toast(`Cannot list the folders to delete — ${errorText(e)}`, 'error');
      return;
    }
    if (!keys.length) {
      toast('Nothing to delete');
      return;
    }
    if (!(await confirm('Delete objects', `Delete ${keys.length} object${keys.length === 1 ? '' : 's'}${folders.length ? ` (including everything in ${folders.length} folder${folders.length === 1 ? '' : 's'})` : ''}?`))) return;
    const failed = await attempt(() => api.deleteObjects(bucket, keys), 'Delete');
    if (failed === undefined) return;
    if (failed.length) toast(`${failed.length} could not be deleted — ${failed[0].code}: ${failed[0].message}`, 'error');
    else toast(`Deleted ${keys.length} object${keys.length === 1 ? '' : 's'}`);
    refresh();
  };

  const newFolder = async () => {
    const name = h('input', { type: 'text', required: true, spellcheck: 'false' });
    const problem = h('div', { class: 'form-message' });
    await modal('New folder', h('div', {}, field('Folder name', name, 'A folder is a key prefix; an empty marker object keeps it visible.'), problem), [
      { label: 'Cancel' },
      { label: 'Create', kind: 'primary', submit: true, onClick: async () => {
        clear(problem);
        const value = name.value.trim().replace(/^\/+|\/+$/g, '');
        if (!value) {
          problem.append(h('p', { class: 'error-box', role: 'alert', text: 'Enter a name.' }));
          return false;
        }
        try {
          await api.putObject(bucket, `${prefix}${value}/`, new Uint8Array(0));
        } catch (e) {
          problem.append(errorBox(e, 'Cannot create the folder'));
          return false;
        }
        location.hash = browseHref(bucket, `${prefix}${value}/`);
        return true;
      } },
    ]);
  };

  const drop = h('section', { class: 'dropzone', 'aria-label': 'Objects' }, listing,
    h('p', { class: 'drop-hint', text: `Drop files or folders here to upload them to ${bucket}/${prefix}` }));
  let depth = 0;
  drop.addEventListener('dragenter', (e) => {
    e.preventDefault();
    depth += 1;
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  drop.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) drop.classList.remove('dragging');
  });
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove('dragging');
    queue(await droppedFiles(e.dataTransfer));
  });
  filter.addEventListener('input', draw);

  clear(main,
    crumbs(bucket, prefix),
    h('div', { class: 'page-header' },
      h('h1', { tabindex: '-1' }, prefix ? baseName(prefix) : bucket, prefix ? h('small', { class: 'muted', text: ` in ${bucket}` }) : null),
      h('div', { class: 'actions' },
        button('Upload files', () => fileInput.click(), 'primary'),
        button('Upload folder', () => folderInput.click()),
        button('New folder', newFolder),
        deleteSelected,
        button('Refresh', () => refresh()),
        h('a', { class: 'button', href: `#/buckets/${encodeURIComponent(bucket)}`, text: 'Bucket settings' }))),
    h('div', { class: 'toolbar' }, filter, versionsToggle, versioningBadge),
    fileInput, folderInput,
    uploads.el,
    drop);
  await load(false);
}
