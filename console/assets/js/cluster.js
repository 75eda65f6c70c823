// Cluster health from `GET /coffer/admin/v1/info`: nodes, disks, capacity, degraded stripes and
// repair progress, refreshed every few seconds, with small SVG charts.

import * as api from './api.js';
import { badge, clear, errorBox, fmtBytes, fmtDate, h, pageHeader, svg, table } from './ui.js';

const REFRESH_MS = 5000;
const HISTORY = 60;

function donut(used, total, label) {
  const r = 40;
  const c = 2 * Math.PI * r;
  const fraction = total > 0 ? Math.min(1, used / total) : 0;
  const pct = `${(fraction * 100).toFixed(1)}%`;
  return svg('svg', { viewBox: '0 0 100 100', class: 'donut', role: 'img', 'aria-label': `${label}: ${pct} used` },
    svg('circle', { cx: 50, cy: 50, r, class: 'donut-track' }),
    svg('circle', {
      cx: 50, cy: 50, r, class: fraction > 0.9 ? 'donut-value bad' : 'donut-value',
      'stroke-dasharray': `${(fraction * c).toFixed(2)} ${c.toFixed(2)}`, transform: 'rotate(-90 50 50)',
    }),
    svg('text', { x: 50, y: 54, 'text-anchor': 'middle', class: 'donut-label', text: pct }));
}

function diskBars(disks) {
  const rowH = 24;
  const width = 600;
  const labelW = 150;
  const barW = width - labelW - 60;
  const height = Math.max(rowH, disks.length * rowH);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'bars', role: 'img', 'aria-label': 'Used space per disk' });
  disks.forEach((d, i) => {
    const fraction = d.capacity_bytes > 0 ? Math.min(1, d.used_bytes / d.capacity_bytes) : 0;
    const y = i * rowH + 4;
    const name = d.path.split('/').filter(Boolean).pop() || d.disk_id.slice(0, 8);
    chart.append(
      svg('text', { x: 0, y: y + 12, class: 'bar-text', text: name.length > 20 ? `${name.slice(0, 19)}…` : name }),
      svg('rect', { x: labelW, y, width: barW, height: rowH - 8, rx: 3, class: 'bar-track' }),
      svg('rect', { x: labelW, y, width: (barW * fraction).toFixed(1), height: rowH - 8, rx: 3, class: d.healthy ? 'bar-value' : 'bar-value bad' }),
      svg('text', { x: labelW + barW + 8, y: y + 12, class: 'bar-text', text: `${(fraction * 100).toFixed(0)}%` }));
  });
  return chart;
}

function sparkline(values, label) {
  const w = 300;
  const hgt = 60;
  const max = Math.max(1, ...values);
  if (values.length === 1) values = [values[0], values[0]];
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(hgt - 4 - ((hgt - 8) * v) / max).toFixed(1)}`).join(' ');
  return svg('svg', { viewBox: `0 0 ${w} ${hgt}`, class: 'spark', role: 'img', preserveAspectRatio: 'none',
    'aria-label': `${label}: now ${values[values.length - 1] ?? 0}, peak ${max}` },
  svg('polyline', { points: points || `0,${hgt - 4} ${w},${hgt - 4}`, class: 'spark-line' }));
}

function stat(label, value, kind = '') {
  return h('div', { class: `stat ${kind}` }, h('span', { class: 'stat-value', text: value }), h('span', { class: 'stat-label', text: label }));
}

export async function renderCluster(main) {
  const body = h('div', {}, h('p', { class: 'loading', text: 'Loading…' }));
  const updated = h('span', { class: 'muted', 'aria-live': 'off' });
  clear(main, pageHeader('Cluster', updated), body);
  const history = { degraded: [], used: [] };
  let timer = 0;
  let stopped = false;

  const draw = (info) => {
    const disks = info.nodes.flatMap((n) => n.disks.map((d) => Object.assign({ node: n.node_id, address: n.address }, d)));
    const r = info.repair;
    history.degraded.push(r.degraded_stripes);
    history.used.push(info.used_bytes);
    for (const k of Object.keys(history)) if (history[k].length > HISTORY) history[k].shift();
    const aliveNodes = info.nodes.filter((n) => n.alive).length;
    const healthy = info.disks_healthy === info.disks_total && aliveNodes === info.nodes.length && r.degraded_stripes === 0;
    clear(body,
      h('section', { class: 'stats', 'aria-label': 'Summary' },
        stat('Health', healthy ? 'Healthy' : 'Degraded', healthy ? 'ok' : 'warn'),
        stat('Nodes alive', `${aliveNodes} / ${info.nodes.length}`, aliveNodes === info.nodes.length ? 'ok' : 'warn'),
        stat('Disks healthy', `${info.disks_healthy} / ${info.disks_total}`, info.disks_healthy === info.disks_total ? 'ok' : 'warn'),
        stat('Used', `${fmtBytes(info.used_bytes)} of ${fmtBytes(info.capacity_bytes)}`),
        stat('Degraded stripes', String(r.degraded_stripes), r.degraded_stripes ? 'warn' : 'ok')),
      h('div', { class: 'grid' },
        h('section', { class: 'card', 'aria-labelledby': 'cap-h' }, h('h2', { id: 'cap-h', text: 'Capacity' }),
          h('div', { class: 'chart-row' }, donut(info.used_bytes, info.capacity_bytes, 'Cluster capacity'),
            h('dl', { class: 'meta' },
              h('dt', { text: 'Used' }), h('dd', { text: fmtBytes(info.used_bytes) }),
              h('dt', { text: 'Free' }), h('dd', { text: fmtBytes(Math.max(0, info.capacity_bytes - info.used_bytes)) }),
              h('dt', { text: 'Total' }), h('dd', { text: fmtBytes(info.capacity_bytes) }))),
          h('h3', { text: 'Used space over time' }), sparkline(history.used, 'Used bytes')),
        h('section', { class: 'card', 'aria-labelledby': 'rep-h' }, h('h2', { id: 'rep-h', text: 'Repair' }),
          h('dl', { class: 'meta' },
            h('dt', { text: 'Degraded stripes' }), h('dd', { text: String(r.degraded_stripes) }),
            h('dt', { text: 'Degraded columns' }), h('dd', { text: String(r.degraded_columns) }),
            h('dt', { text: 'Blocked columns' }), h('dd', { text: String(r.blocked_columns) }),
            h('dt', { text: 'Lost disks' }), h('dd', { text: String(r.lost_disks) }),
            h('dt', { text: 'Columns repaired' }), h('dd', { text: String(r.columns_repaired) }),
            h('dt', { text: 'Bytes repaired' }), h('dd', { text: fmtBytes(r.bytes_repaired) })),
          h('h3', { text: 'Degraded stripes over time' }), sparkline(history.degraded, 'Degraded stripes'))),
      h('section', { class: 'card', 'aria-labelledby': 'disks-h' }, h('h2', { id: 'disks-h', text: 'Disks' }),
        disks.length ? diskBars(disks) : null,
        table({ text: 'Disks' }, [{ label: 'Disk' }, { label: 'Node' }, { label: 'Path' }, { label: 'Used', class: 'num' }, { label: 'Capacity', class: 'num' }, { label: 'Health' }],
          disks.map((d) => [h('code', { text: d.disk_id.slice(0, 8), title: d.disk_id }), h('code', { text: d.node.slice(0, 8), title: d.node }), d.path,
            fmtBytes(d.used_bytes), fmtBytes(d.capacity_bytes), d.healthy ? badge('healthy', 'ok') : badge('unhealthy', 'bad')]),
          'No disks registered.')),
      h('section', { class: 'card', 'aria-labelledby': 'nodes-h' }, h('h2', { id: 'nodes-h', text: 'Nodes' }),
        table({ text: 'Nodes' }, [{ label: 'Node' }, { label: 'Address' }, { label: 'State' }, { label: 'Admin' }, { label: 'Disks', class: 'num' }, { label: 'Last heartbeat' }],
          info.nodes.map((n) => [h('code', { text: n.node_id }), n.address, n.alive ? badge('alive', 'ok') : badge('down', 'bad'),
            n.admin, String(n.disks.length), n.last_heartbeat_unix_ms ? fmtDate(new Date(n.last_heartbeat_unix_ms).toISOString()) : '—']),
          'No nodes registered.')));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  };

  const tick = async () => {
    try {
      draw(await api.admin('GET', 'info'));
    } catch (e) {
      clear(body, errorBox(e, 'Cannot read the cluster state'));
    }
    // Stops by itself once the page is left, even before the router got the cleanup function.
    if (!stopped && body.isConnected) timer = setTimeout(tick, REFRESH_MS);
  };
  await tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
