// The console's entry: hash routes, the top bar, session expiry.

import { clearSession, getSession, loadConfig } from './api.js';
import { renderLogin } from './login.js';
import { renderBuckets, renderBucketSettings } from './buckets.js';
import { renderObjects } from './objects.js';
import { renderIdentity } from './identity.js';
import { renderCluster } from './cluster.js';
import { clear, errorBox, fmtDate, h } from './ui.js';

const main = document.getElementById('main');
let cleanup = null;
let expiryTimer = 0;

/** `#/a/b%2Fc` → ['a', 'b/c'] */
function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  return hash ? hash.split('/').map((s) => decodeURIComponent(s)) : [];
}

export function go(...segments) {
  location.hash = '#/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

function setNav(page) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

export function logout(message) {
  clearSession();
  clearTimeout(expiryTimer);
  document.getElementById('topbar').hidden = true;
  if (message) sessionStorage.setItem('coffer.notice', message);
  if (location.hash === '#/login') render();
  else location.hash = '#/login';
}

function showSession(session) {
  const bar = document.getElementById('topbar');
  bar.hidden = false;
  const who = document.getElementById('who');
  clear(who, h('span', { class: 'sr-only', text: 'Signed in as ' }), session.user,
    h('small', { text: ` · session until ${fmtDate(session.expiration)}` }));
  clearTimeout(expiryTimer);
  const left = Date.parse(session.expiration) - Date.now();
  expiryTimer = setTimeout(() => logout('Your session expired; please sign in again.'), Math.max(0, Math.min(left, 2 ** 31 - 1)));
}

async function render() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // ignore
    }
    cleanup = null;
  }
  const [page, ...rest] = route();
  const session = getSession();
  if (!session) {
    document.getElementById('topbar').hidden = true;
    setNav('');
    if (page !== 'login') {
      location.replace('#/login');
      return;
    }
    document.title = 'Sign in · Coffer console';
    cleanup = renderLogin(main, (s) => {
      showSession(s);
      go('buckets');
    });
    return;
  }
  showSession(session);
  if (!page || page === 'login') {
    location.replace('#/buckets');
    return;
  }
  const pages = {
    buckets: () => (rest.length ? renderBucketSettings(main, rest[0]) : renderBuckets(main)),
    browse: () => renderObjects(main, rest[0], rest.slice(1).join('/')),
    identity: () => renderIdentity(main, rest[0] || 'users'),
    cluster: () => renderCluster(main),
  };
  const render = pages[page];
  const nav = page === 'browse' ? 'buckets' : page;
  setNav(nav);
  if (!render) {
    clear(main, errorBox(new Error(`No page ${page}`)));
    return;
  }
  document.title = `${nav[0].toUpperCase()}${nav.slice(1)} · Coffer console`;
  try {
    cleanup = (await render()) || null;
  } catch (e) {
    clear(main, errorBox(e));
  }
  const heading = main.querySelector('h1');
  const active = document.activeElement;
  if (heading && (active === document.body || active === main || (active && active.closest('#topbar')))) {
    heading.focus({ preventScroll: true });
  }
}

document.getElementById('logout').addEventListener('click', () => logout('Signed out.'));
window.addEventListener('hashchange', render);
loadConfig().then(render);
