// Uploads with per-file progress and cancel: one signed PUT for small files, multipart above
// MULTIPART_THRESHOLD (parts of PART_SIZE, several in flight per file). XMLHttpRequest is used
// because fetch reports no upload progress.

import * as api from './api.js';
import { encodePath } from './sigv4.js';
import { button, errorText, fmtBytes, h, toast } from './ui.js';

export const MULTIPART_THRESHOLD = 16 * 1024 * 1024;
const PART_SIZE = 8 * 1024 * 1024;
const MAX_PARTS = 10000;
const FILES_AT_ONCE = 2;
const PARTS_AT_ONCE = 3;

class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}

function guessType(file) {
  return file.type || 'application/octet-stream';
}

/** Sends a signed request with XMLHttpRequest; onProgress(loadedBytes). Resolves with the xhr. */
function xhrSend(item, method, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    if (item.cancelled) {
      reject(new Cancelled());
      return;
    }
    const xhr = new XMLHttpRequest();
    item.requests.add(xhr);
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress && onProgress(e.loaded);
    xhr.onload = async () => {
      item.requests.delete(xhr);
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr);
        return;
      }
      const response = new Response(xhr.responseText || null, {
        status: xhr.status,
        statusText: xhr.statusText,
        headers: { 'x-amz-request-id': xhr.getResponseHeader('x-amz-request-id') || '' },
      });
      reject(await api.errorFromResponse(response));
    };
    xhr.onerror = () => {
      item.requests.delete(xhr);
      reject(new api.ApiError(0, 'NetworkError', 'the upload was interrupted'));
    };
    xhr.onabort = () => {
      item.requests.delete(xhr);
      reject(new Cancelled());
    };
    xhr.send(body);
  });
}

async function putSingle(item) {
  const body = await item.file.arrayBuffer();
  const path = encodePath(item.bucket, item.key);
  const signed = await api.signedHeaders('PUT', path, {}, { 'content-type': guessType(item.file) }, body);
  await xhrSend(item, 'PUT', signed.url, signed.headers, body, (loaded) => item.progress(loaded));
}

async function putMultipart(item) {
  const size = item.file.size;
  const partSize = Math.max(PART_SIZE, Math.ceil(size / MAX_PARTS));
  const count = Math.ceil(size / partSize);
  const path = encodePath(item.bucket, item.key);
  item.uploadId = await api.createMultipartUpload(item.bucket, item.key, guessType(item.file));
  const loaded = new Array(count).fill(0);
  const etags = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count && !item.cancelled) {
      const index = next++;
      const start = index * partSize;
      const body = await item.file.slice(start, Math.min(size, start + partSize)).arrayBuffer();
      const query = { partNumber: String(index + 1), uploadId: item.uploadId };
      const signed = await api.signedHeaders('PUT', path, query, {}, body);
      const xhr = await xhrSend(item, 'PUT', signed.url, signed.headers, body, (n) => {
        loaded[index] = n;
        item.progress(loaded.reduce((a, b) => a + b, 0));
      });
      loaded[index] = body.byteLength;
      etags[index] = xhr.getResponseHeader('ETag') || '';
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARTS_AT_ONCE, count) }, worker));
  if (item.cancelled) throw new Cancelled();
  await api.completeMultipartUpload(item.bucket, item.key, item.uploadId,
    etags.map((etag, i) => ({ number: i + 1, etag })));
}

/** The upload list shown on the objects page. */
export class Uploads {
  constructor(onFinished) {
    this.onFinished = onFinished;
    this.queue = [];
    this.running = 0;
    this.list = h('ul', { class: 'uploads', 'aria-label': 'Uploads' });
    this.el = h('section', { class: 'card uploads-card', hidden: true, 'aria-labelledby': 'uploads-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'uploads-h', text: 'Uploads' }),
        button('Clear finished', () => this.clearFinished(), 'small')),
      this.list);
  }

  add(bucket, key, file) {
    const status = h('span', { class: 'upload-status', text: 'Waiting' });
    const bar = h('progress', { max: Math.max(1, file.size), value: 0, 'aria-label': `Upload progress of ${key}` });
    const cancel = button('Cancel', () => this.cancel(item), 'small', { 'aria-label': `Cancel upload of ${key}` });
    const row = h('li', { class: 'upload' },
      h('div', { class: 'upload-name' }, h('span', { class: 'key', text: key }), h('span', { class: 'muted', text: fmtBytes(file.size) })),
      bar, h('div', { class: 'upload-foot' }, status, cancel));
    const item = {
      bucket, key, file, row, status, bar, cancel, requests: new Set(), cancelled: false, done: false, uploadId: '',
      progress: (n) => {
        bar.value = Math.min(n, file.size);
        status.textContent = `${file.size > MULTIPART_THRESHOLD ? 'Multipart: ' : ''}${Math.floor((100 * n) / Math.max(1, file.size))}%`;
      },
    };
    this.list.append(row);
    this.el.hidden = false;
    this.queue.push(item);
    this.pump();
    return item;
  }

  cancel(item) {
    if (item.done) return;
    item.cancelled = true;
    for (const xhr of item.requests) xhr.abort();
    item.status.textContent = 'Cancelling…';
  }

  clearFinished() {
    for (const row of Array.from(this.list.children)) if (row.dataset.done) row.remove();
    if (!this.list.children.length) this.el.hidden = true;
  }

  pump() {
    while (this.running < FILES_AT_ONCE && this.queue.length) {
      const item = this.queue.shift();
      this.running += 1;
      this.run(item).finally(() => {
        this.running -= 1;
        this.pump();
        if (!this.running && !this.queue.length && this.onFinished) this.onFinished();
      });
    }
  }

  async run(item) {
    const finish = (text, kind) => {
      item.done = true;
      item.row.dataset.done = '1';
      item.row.classList.add(kind);
      item.status.textContent = text;
      item.cancel.remove();
    };
    if (item.cancelled) {
      finish('Cancelled', 'cancelled');
      return;
    }
    item.status.textContent = 'Starting…';
    try {
      if (item.file.size > MULTIPART_THRESHOLD) await putMultipart(item);
      else await putSingle(item);
      item.progress(item.file.size);
      finish('Uploaded', 'ok');
    } catch (e) {
      if (item.uploadId) api.abortMultipartUpload(item.bucket, item.key, item.uploadId).catch(() => {});
      if (e instanceof Cancelled || e.name === 'Cancelled') {
        finish('Cancelled', 'cancelled');
        return;
      }
      const text = `Failed — ${errorText(e)}`;
      finish(text, 'failed');
      item.status.setAttribute('role', 'alert');
      toast(`Upload of ${item.key} failed — ${errorText(e)}`, 'error');
    }
  }
}

/** Every file below a dropped directory entry, with its relative path. */
async function walkEntry(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ path: prefix + entry.name, file });
    return;
  }
  if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walkEntry(child, `${prefix}${entry.name}/`, out);
    }
  }
}

/** Files of a drop event, folders included (paths relative to the drop). */
export async function droppedFiles(dataTransfer) {
  const out = [];
  const entries = Array.from(dataTransfer.items || [])
    .filter((i) => i.kind === 'file')
    .map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (entries.length && entries.every(Boolean)) {
    for (const entry of entries) await walkEntry(entry, '', out);
    return out;
  }
  for (const file of Array.from(dataTransfer.files || [])) out.push({ path: file.name, file });
  return out;
}
