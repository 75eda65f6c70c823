// AWS Signature Version 4 with WebCrypto: header signing for requests and query signing for
// presigned URLs. Paths are built already URI-encoded (see encodePath), and signed exactly as sent.

const encoder = new TextEncoder();
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function toHex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

function bytesOf(data) {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

// WebCrypto exists only in secure contexts (HTTPS, or http://localhost). A console reached over plain
// HTTP from another machine signs with this small SHA-256 instead.
const subtle = globalThis.isSecureContext && globalThis.crypto ? globalThis.crypto.subtle : undefined;

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 in plain JavaScript (FIPS 180-4). */
export function sha256Js(input) {
  const data = bytesOf(input);
  const len = data.length;
  const padded = new Uint8Array(((len + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[len] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(len / 0x20000000));
  view.setUint32(padded.length - 4, (len << 3) >>> 0);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const W = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) W[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const a = W[i - 15];
      const b = W[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    H[0] += a;
    H[1] += b;
    H[2] += c;
    H[3] += d;
    H[4] += e;
    H[5] += f;
    H[6] += g;
    H[7] += h;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setUint32(i * 4, H[i]);
  return out;
}

/** HMAC-SHA256 in plain JavaScript (RFC 2104). */
export function hmacJs(keyInput, message) {
  let key = bytesOf(keyInput);
  if (key.length > 64) key = sha256Js(key);
  const inner = new Uint8Array(64 + bytesOf(message).length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = (key[i] || 0) ^ 0x36;
    outer[i] = (key[i] || 0) ^ 0x5c;
  }
  inner.set(bytesOf(message), 64);
  outer.set(sha256Js(inner), 64);
  return sha256Js(outer);
}

/** SHA-256 of bytes or text, as bytes. */
export async function sha256Bytes(data) {
  const bytes = bytesOf(data);
  return subtle ? new Uint8Array(await subtle.digest('SHA-256', bytes)) : sha256Js(bytes);
}

export async function sha256Hex(data) {
  if (data === undefined || data === null) return EMPTY_SHA256;
  return toHex(await sha256Bytes(data));
}

async function hmac(key, message) {
  if (!subtle) return hmacJs(key, message);
  const k = await subtle.importKey('raw', bytesOf(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return subtle.sign('HMAC', k, encoder.encode(message));
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ is percent-encoded. */
export function uriEncode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** `/bucket/some/key` with every segment encoded and the slashes of the key kept. */
export function encodePath(bucket, key) {
  let path = '/';
  if (bucket) path += uriEncode(bucket);
  if (key !== undefined && key !== null) path += '/' + key.split('/').map(uriEncode).join('/');
  return path;
}

export function amzDate(date = new Date()) {
  return date.toISOString().replace(/[:-]/g, '').replace(/\.\d{3}/, '');
}

function canonicalQuery(query) {
  return Object.entries(query || {})
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => [uriEncode(k), uriEncode(String(v))])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

async function signingKey(secret, day, region, service) {
  const kDate = await hmac('AWS4' + secret, day);
  const kRegion = await hmac(kDate, region);
  const kService = await hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

/**
 * Signs a request. Returns the headers to send (without `host`, which the browser sets from the URL)
 * and the query string (without '?').
 * opts: { method, host, path (encoded), query: {}, headers: {lowercase: value}, payloadHash,
 *         credentials: {accessKeyId, secretAccessKey, sessionToken?}, region, service, date? }
 */
export async function signRequest(opts) {
  const { method, host, path, credentials, region, service } = opts;
  const date = amzDate(opts.date);
  const day = date.slice(0, 8);
  const headers = {};
  for (const [k, v] of Object.entries(opts.headers || {})) headers[k.toLowerCase()] = String(v).trim();
  headers['host'] = host;
  headers['x-amz-date'] = date;
  const payloadHash = opts.payloadHash || EMPTY_SHA256;
  if (service === 's3') headers['x-amz-content-sha256'] = payloadHash;
  if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n].replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const query = canonicalQuery(opts.query);
  const canonical = [method, path, query, canonicalHeaders, signedHeaders, payloadHash].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', date, scope, await sha256Hex(canonical)].join('\n');
  const key = await signingKey(credentials.secretAccessKey, day, region, service);
  const signature = toHex(await hmac(key, toSign));
  headers['authorization'] =
    `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  delete headers['host'];
  return { headers, query };
}

/**
 * A presigned URL: `base` is `scheme://host[:port]`, the URL's host is what gets signed.
 * opts: { method, base, path (encoded), query, credentials, region, expires (seconds) }
 */
export async function presign(opts) {
  const { method, base, path, credentials, region } = opts;
  const host = new URL(base).host;
  const date = amzDate(opts.date);
  const day = date.slice(0, 8);
  const scope = `${day}/${region}/s3/aws4_request`;
  const query = Object.assign({}, opts.query || {}, {
    'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
    'X-Amz-Credential': `${credentials.accessKeyId}/${scope}`,
    'X-Amz-Date': date,
    'X-Amz-Expires': String(opts.expires),
    'X-Amz-SignedHeaders': 'host',
  });
  if (credentials.sessionToken) query['X-Amz-Security-Token'] = credentials.sessionToken;
  const canonicalQ = canonicalQuery(query);
  const canonical = [method, path, canonicalQ, `host:${host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', date, scope, await sha256Hex(canonical)].join('\n');
  const key = await signingKey(credentials.secretAccessKey, day, region, 's3');
  const signature = toHex(await hmac(key, toSign));
  return `${base.replace(/\/$/, '')}${path}?${canonicalQ}&X-Amz-Signature=${signature}`;
}
