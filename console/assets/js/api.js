// The console's one client: S3, STS and the admin API, all SigV4-signed in the browser and sent
// to the console's own origin. Only temporary STS credentials are kept (sessionStorage).

import { encodePath, presign, sha256Bytes, sha256Hex, signRequest, uriEncode } from './sigv4.js';

const SESSION_KEY = 'coffer.session';
const ADMIN_PREFIX = '/coffer/admin/v1/';

let config = { region: 'us-east-1', s3_port: 9000, s3_scheme: 'http' };

export async function loadConfig() {
  try {
    const response = await fetch('/_console/config.json', { cache: 'no-store' });
    if (response.ok) config = Object.assign(config, await response.json());
  } catch {
    // keep the defaults
  }
  return config;
}

export function getConfig() {
  return config;
}

/** The S3 endpoint of this cluster as the browser would reach it (same host, the S3 port). */
export function defaultS3Endpoint() {
  return `${config.s3_scheme}://${location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname}:${config.s3_port}`;
}

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || `HTTP${status}`;
    this.requestId = requestId || '';
  }
  toString() {
    return `${this.code}: ${this.message}`;
  }
}

// --- session -------------------------------------------------------------------------------

export function getSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (session && Date.parse(session.expiration) > Date.now()) return session;
  } catch {
    // fall through
  }
  return null;
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

function credentials() {
  const session = getSession();
  if (!session) throw new ApiError(401, 'SessionExpired', 'Your session has ended; please sign in again.');
  return session;
}

// --- XML -----------------------------------------------------------------------------------

export function parseXml(text) {
  const doc = new DOMParser().parseFromString(text, 'application/xml');
  if (doc.getElementsByTagName('parsererror').length) throw new ApiError(0, 'BadResponse', 'unreadable XML answer');
  return doc;
}

/** Text of the first descendant element called `name` (namespaces ignored). */
export function xmlText(node, name) {
  const el = node.getElementsByTagNameNS('*', name)[0];
  return el ? el.textContent : '';
}

export function xmlAll(node, name) {
  return Array.from(node.getElementsByTagNameNS('*', name));
}

/** Direct children called `name`. */
function xmlChildren(node, name) {
  return Array.from(node.children).filter((c) => c.localName === name);
}

function childText(node, name) {
  const el = xmlChildren(node, name)[0];
  return el ? el.textContent : '';
}

function escapeXml(text) {
  return String(text).replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]);
}

async function errorOf(response) {
  const text = await response.text().catch(() => '');
  const requestId = response.headers.get('x-amz-request-id') || '';
  if (text.trim().startsWith('{')) {
    try {
      const json = JSON.parse(text);
      return new ApiError(response.status, json.Code, json.Message, requestId);
    } catch {
      // not JSON after all
    }
  }
  if (text.trim().startsWith('<')) {
    try {
      const doc = parseXml(text);
      return new ApiError(response.status, xmlText(doc, 'Code'), xmlText(doc, 'Message'), xmlText(doc, 'RequestId') || requestId);
    } catch {
      // fall through
    }
  }
  const names = { 403: 'AccessDenied', 404: 'NotFound', 409: 'Conflict' };
  return new ApiError(response.status, names[response.status], `${response.status} ${response.statusText}`, requestId);
}

// --- signed requests -------------------------------------------------------------------------

/**
 * Signs and sends one request to the console's origin.
 * opts: { query, headers, body (string|ArrayBuffer|Uint8Array), service, creds, signal }
 */
export async function send(method, path, opts = {}) {
  const creds = opts.creds || credentials();
  const body = opts.body;
  const payloadHash = await sha256Hex(body);
  const { headers, query } = await signRequest({
    method,
    host: location.host,
    path,
    query: opts.query,
    headers: opts.headers,
    payloadHash,
    credentials: creds,
    region: config.region,
    service: opts.service || 's3',
  });
  const url = path + (query ? '?' + query : '');
  let response;
  try {
    response = await fetch(url, { method, headers, body, signal: opts.signal, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'NetworkError', `cannot reach the server: ${e.message}`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** The headers (including authorization) for a request sent by XMLHttpRequest (uploads). */
export async function signedHeaders(method, path, query, headers, body) {
  const signed = await signRequest({
    method,
    host: location.host,
    path,
    query,
    headers,
    payloadHash: await sha256Hex(body),
    credentials: credentials(),
    region: config.region,
    service: 's3',
  });
  return { url: path + (signed.query ? '?' + signed.query : ''), headers: signed.headers };
}

export { errorOf as errorFromResponse, uriEncode as uriEncodeName };

// --- STS -----------------------------------------------------------------------------------

/** Exchanges long-term keys for temporary credentials and keeps only those. */
export async function login(accessKey, secretKey, durationSeconds = 3600) {
  const body = `Action=AssumeRole&Version=2011-06-15&DurationSeconds=${durationSeconds}` +
    `&RoleArn=${uriEncode('arn:aws:iam::000000000000:role/console')}&RoleSessionName=console`;
  const response = await send('POST', '/', {
    body,
    service: 'sts',
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    creds: { accessKeyId: accessKey, secretAccessKey: secretKey },
  });
  const doc = parseXml(await response.text());
  const arn = xmlText(doc, 'Arn');
  const parts = arn.split('/');
  const session = {
    accessKeyId: xmlText(doc, 'AccessKeyId'),
    secretAccessKey: xmlText(doc, 'SecretAccessKey'),
    sessionToken: xmlText(doc, 'SessionToken'),
    expiration: xmlText(doc, 'Expiration'),
    user: parts.length >= 3 ? parts.slice(1, -1).join('/') : accessKey,
  };
  if (!session.accessKeyId || !session.sessionToken) throw new ApiError(0, 'BadResponse', 'AssumeRole returned no credentials');
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

// --- admin API -----------------------------------------------------------------------------

export async function admin(method, subpath, body) {
  const path = ADMIN_PREFIX + subpath.split('/').map(uriEncode).join('/');
  const opts = {};
  if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers = { 'content-type': 'application/json' };
  }
  const response = await send(method, path, opts);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// --- S3 ------------------------------------------------------------------------------------

export async function listBuckets() {
  const doc = parseXml(await (await send('GET', '/')).text());
  return xmlAll(doc, 'Bucket').map((b) => ({ name: childText(b, 'Name'), created: childText(b, 'CreationDate') }));
}

export async function deleteBucket(name) {
  await send('DELETE', encodePath(name));
}

/** One page of ListObjectsV2. */
export async function listObjects(bucket, { prefix = '', delimiter = '/', token, maxKeys = 1000 } = {}) {
  const query = { 'list-type': '2', prefix, 'max-keys': String(maxKeys) };
  if (delimiter) query.delimiter = delimiter;
  if (token) query['continuation-token'] = token;
  const doc = parseXml(await (await send('GET', encodePath(bucket), { query })).text());
  const root = doc.documentElement;
  return {
    objects: xmlChildren(root, 'Contents').map((c) => ({
      key: childText(c, 'Key'),
      size: Number(childText(c, 'Size') || 0),
      modified: childText(c, 'LastModified'),
      etag: childText(c, 'ETag'),
    })),
    prefixes: xmlChildren(root, 'CommonPrefixes').map((p) => childText(p, 'Prefix')),
    truncated: childText(root, 'IsTruncated') === 'true',
    token: childText(root, 'NextContinuationToken'),
  };
}

export async function headObject(bucket, key) {
  const response = await send('HEAD', encodePath(bucket, key));
  const meta = {};
  response.headers.forEach((value, name) => {
    if (name.startsWith('x-amz-meta-')) meta[name.slice(11)] = value;
  });
  return {
    size: Number(response.headers.get('content-length') || 0),
    contentType: response.headers.get('content-type') || '',
    etag: response.headers.get('etag') || '',
    modified: response.headers.get('last-modified') || '',
    cacheControl: response.headers.get('cache-control') || '',
    contentDisposition: response.headers.get('content-disposition') || '',
    contentEncoding: response.headers.get('content-encoding') || '',
    storageClass: response.headers.get('x-amz-storage-class') || 'STANDARD',
    meta,
  };
}

export async function getObject(bucket, key, { range, signal } = {}) {
  const headers = range ? { range } : undefined;
  return send('GET', encodePath(bucket, key), { headers, signal });
}

export async function putObject(bucket, key, body, contentType) {
  await send('PUT', encodePath(bucket, key), { body, headers: contentType ? { 'content-type': contentType } : undefined });
}

export async function deleteObject(bucket, key) {
  await send('DELETE', encodePath(bucket, key));
}

/** DeleteObjects in batches of 1000; returns the keys that failed with their errors. */
export async function deleteObjects(bucket, keys) {
  const failed = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const xml = '<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>' +
      batch.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join('') + '</Delete>';
    const bytes = new TextEncoder().encode(xml);
    const checksum = btoa(String.fromCharCode(...(await sha256Bytes(bytes))));
    const response = await send('POST', encodePath(bucket), {
      query: { delete: '' },
      body: bytes,
      headers: { 'content-type': 'application/xml', 'x-amz-checksum-sha256': checksum },
    });
    const doc = parseXml(await response.text());
    for (const e of xmlAll(doc, 'Error')) {
      failed.push({ key: childText(e, 'Key'), code: childText(e, 'Code'), message: childText(e, 'Message') });
    }
  }
  return failed;
}

function tagsXml(tags) {
  return '<?xml version="1.0" encoding="UTF-8"?><Tagging><TagSet>' +
    tags.map((t) => `<Tag><Key>${escapeXml(t.key)}</Key><Value>${escapeXml(t.value)}</Value></Tag>`).join('') +
    '</TagSet></Tagging>';
}

function parseTags(text) {
  return xmlAll(parseXml(text), 'Tag').map((t) => ({ key: childText(t, 'Key'), value: childText(t, 'Value') }));
}

export async function getObjectTags(bucket, key) {
  return parseTags(await (await send('GET', encodePath(bucket, key), { query: { tagging: '' } })).text());
}

export async function putObjectTags(bucket, key, tags) {
  if (!tags.length) {
    await send('DELETE', encodePath(bucket, key), { query: { tagging: '' } });
    return;
  }
  await send('PUT', encodePath(bucket, key), {
    query: { tagging: '' },
    body: tagsXml(tags),
    headers: { 'content-type': 'application/xml' },
  });
}

export async function getBucketTags(bucket) {
  try {
    return parseTags(await (await send('GET', encodePath(bucket), { query: { tagging: '' } })).text());
  } catch (e) {
    if (e.code === 'NoSuchTagSet' || e.code === 'NoSuchTagSetError') return [];
    throw e;
  }
}

export async function putBucketTags(bucket, tags) {
  if (!tags.length) {
    await send('DELETE', encodePath(bucket), { query: { tagging: '' } });
    return;
  }
  await send('PUT', encodePath(bucket), {
    query: { tagging: '' },
    body: tagsXml(tags),
    headers: { 'content-type': 'application/xml' },
  });
}

// --- multipart -----------------------------------------------------------------------------

export async function createMultipartUpload(bucket, key, contentType) {
  const response = await send('POST', encodePath(bucket, key), {
    query: { uploads: '' },
    headers: contentType ? { 'content-type': contentType } : undefined,
  });
  return xmlText(parseXml(await response.text()), 'UploadId');
}

export async function completeMultipartUpload(bucket, key, uploadId, parts) {
  const xml = '<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload>' +
    parts.map((p) => `<Part><PartNumber>${p.number}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`).join('') +
    '</CompleteMultipartUpload>';
  const response = await send('POST', encodePath(bucket, key), {
    query: { uploadId },
    body: xml,
    headers: { 'content-type': 'application/xml' },
  });
  // CompleteMultipartUpload can fail with 200 and an error document.
  const doc = parseXml(await response.text());
  if (doc.documentElement.localName === 'Error') {
    throw new ApiError(200, xmlText(doc, 'Code'), xmlText(doc, 'Message'));
  }
}

export async function abortMultipartUpload(bucket, key, uploadId) {
  await send('DELETE', encodePath(bucket, key), { query: { uploadId } });
}

// --- presigned URLs ------------------------------------------------------------------------

/** A presigned GET for `base` (an S3 endpoint, or the console's origin). */
export async function presignGet(bucket, key, expires, base = location.origin, query = {}) {
  return presign({
    method: 'GET',
    base,
    path: encodePath(bucket, key),
    query,
    credentials: credentials(),
    region: config.region,
    expires,
  });
}

// --- versioning ----------------------------------------------------------------------------

/** 'Enabled', 'Suspended', or '' for a bucket that was never versioned. */
export async function getBucketVersioning(bucket) {
  const doc = parseXml(await (await send('GET', encodePath(bucket), { query: { versioning: '' } })).text());
  return xmlText(doc, 'Status');
}

export async function putBucketVersioning(bucket, status) {
  await send('PUT', encodePath(bucket), {
    query: { versioning: '' },
    body: '<?xml version="1.0" encoding="UTF-8"?><VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      `<Status>${escapeXml(status)}</Status></VersioningConfiguration>`,
    headers: { 'content-type': 'application/xml' },
  });
}

/** One page of ListObjectVersions: versions and delete markers in key order. */
export async function listObjectVersions(bucket, { prefix = '', delimiter = '/', keyMarker, versionIdMarker, maxKeys = 1000 } = {}) {
  const query = { versions: '', prefix, 'max-keys': String(maxKeys) };
  if (delimiter) query.delimiter = delimiter;
  if (keyMarker) query['key-marker'] = keyMarker;
  if (versionIdMarker) query['version-id-marker'] = versionIdMarker;
  const doc = parseXml(await (await send('GET', encodePath(bucket), { query })).text());
  const root = doc.documentElement;
  const entries = Array.from(root.children)
    .filter((c) => c.localName === 'Version' || c.localName === 'DeleteMarker')
    .map((c) => ({
      deleteMarker: c.localName === 'DeleteMarker',
      key: childText(c, 'Key'),
      versionId: childText(c, 'VersionId'),
      latest: childText(c, 'IsLatest') === 'true',
      size: Number(childText(c, 'Size') || 0),
      modified: childText(c, 'LastModified'),
      etag: childText(c, 'ETag'),
    }));
  return {
    entries,
    prefixes: xmlChildren(root, 'CommonPrefixes').map((p) => childText(p, 'Prefix')),
    truncated: childText(root, 'IsTruncated') === 'true',
    keyMarker: childText(root, 'NextKeyMarker'),
    versionIdMarker: childText(root, 'NextVersionIdMarker'),
  };
}

/** Deletes one version (or delete marker) for good. */
export async function deleteObjectVersion(bucket, key, versionId) {
  await send('DELETE', encodePath(bucket, key), { query: { versionId } });
}

// --- bucket policy -------------------------------------------------------------------------

/** The bucket's policy as text, or '' when it has none. */
export async function getBucketPolicy(bucket) {
  try {
    return await (await send('GET', encodePath(bucket), { query: { policy: '' } })).text();
  } catch (e) {
    if (e.code === 'NoSuchBucketPolicy') return '';
    throw e;
  }
}

export async function putBucketPolicy(bucket, json) {
  await send('PUT', encodePath(bucket), { query: { policy: '' }, body: json, headers: { 'content-type': 'application/json' } });
}

export async function deleteBucketPolicy(bucket) {
  await send('DELETE', encodePath(bucket), { query: { policy: '' } });
}
