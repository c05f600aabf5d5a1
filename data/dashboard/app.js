// stagecoach admin dashboard: a single page over the admin API v1
// (doc/admin-api.md).  No framework, no network assets.
//
// Safety rule: every string that comes from a message, a list, a mailer or
// the server is inserted as text (textContent, text nodes, attribute values
// set through the DOM).  Nothing here assigns innerHTML.
'use strict';

(function () {
  const STATES = ['queued', 'active', 'deferred', 'held', 'done', 'dead'];
  const POLL_MS = 2000;
  const OVERVIEW_POLL_MS = 5000;
  const PAGE_SIZE = 50;

  const view = document.getElementById('view');
  const flashBox = document.getElementById('flash');

  // ---- translations ------------------------------------------------------

  // The server's catalogue (po/*.po, compiled) for the language it chose
  // from Accept-Language: GET /i18n.json (doc/admin-api.md) gives
  // {msgid: msgstr}, a plural entry as [singular form, plural form].
  // English needs none.  xgettext extracts _() and ngettext() from this
  // file into po/stagecoach.pot; "%s" and "%d" are filled in order by fmt().
  let strings = {};

  function _(msgid) {
    const t = strings[msgid];
    if (typeof t === 'string' && t) return t;
    if (Array.isArray(t) && t[0]) return t[0];
    return msgid;
  }

  // The server offers only catalogues whose plural rule is n != 1.
  function ngettext(one, many, n) {
    const t = strings[one];
    const i = n === 1 ? 0 : 1;
    if (Array.isArray(t) && t[i]) return t[i];
    return i ? many : one;
  }

  function fmt(template, ...args) {
    let i = 0;
    return template.replace(/%([sd%])/g, (m, c) => (c === '%' ? '%' : String(args[i++])));
  }

  async function loadStrings() {
    try {
      const res = await fetch('/i18n.json', { credentials: 'same-origin', cache: 'no-store' });
      if (!res.ok) return;
      const data = await res.json();
      strings = data && typeof data.strings === 'object' && data.strings ? data.strings : {};
      if (data && typeof data.language === 'string') document.documentElement.lang = data.language;
    } catch (e) {
      strings = {};
    }
  }

  // index.html's own text, by element id
  function translatePage() {
    const byId = {
      'nav-overview': _('Overview'),
      'nav-messages': _('Messages'),
      'nav-mailers': _('Mailers'),
      'nav-notifications': _('Notifications'),
      'nav-audit': _('Audit log'),
      'loading': _('Loading…'),
      'confirm-title': _('Are you sure?'),
      'confirm-input-caption': _('Reason'),
      'confirm-cancel': _('Cancel'),
      'confirm-ok': _('OK'),
    };
    for (const [id, value] of Object.entries(byId)) {
      const el = document.getElementById(id);
      if (el) el.textContent = value;
    }
    const nav = document.getElementById('nav');
    if (nav) nav.setAttribute('aria-label', _('Sections'));
  }

  // ---- DOM helpers -------------------------------------------------------

  // h('a', {href: '#/', class: 'x', dataset: {id: 1}, onclick: fn}, 'text', node, [more])
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden') el[k] = Boolean(v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') el.setAttribute('class', v);
      else el.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c instanceof Node) el.appendChild(c);
      else if (c !== null && c !== undefined) el.appendChild(document.createTextNode(String(c)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function text(v, empty) {
    if (v === null || v === undefined || v === '') return empty === undefined ? '—' : empty;
    return String(v);
  }

  // "2026-11-23T13:21:47.907032Z" -> <time> "2026-11-23 13:21:47" (UTC), full value as title.
  function time(iso) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    const str = String(iso);
    const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(str);
    return h('time', { datetime: str, title: str + ' (' + ago(str) + ')' }, m ? m[1] + ' ' + m[2] : str);
  }

  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '';
    let d = Math.round((Date.now() - t) / 1000);
    const future = d < 0;
    d = Math.abs(d);
    let out;
    if (d < 60) out = d + ' s';
    else if (d < 3600) out = Math.round(d / 60) + ' min';
    else if (d < 86400) out = Math.round(d / 3600) + ' h';
    else out = Math.round(d / 86400) + ' d';
    // TRANSLATORS: %s is a span of time such as "5 min"
    return future ? fmt(_('in %s'), out) : fmt(_('%s ago'), out);
  }

  function duration(a, b) {
    const t0 = Date.parse(a), t1 = Date.parse(b);
    if (Number.isNaN(t0) || Number.isNaN(t1)) return '—';
    const ms = t1 - t0;
    if (ms < 1000) return ms + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    return Math.round(ms / 60000) + ' min';
  }

  function bytes(n) {
    if (n === null || n === undefined) return '—';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1024 / 1024).toFixed(1) + ' MiB';
  }

  function badge(state) {
    const v = text(state, '?');
    return h('span', { class: 'badge badge-' + v.replace(/[^a-z0-9_-]/gi, '') }, v);
  }

  function messageHref(id) {
    return '#/message/' + encodeURIComponent(id);
  }

  function table(headers, rows, attrs) {
    return h('div', { class: 'table-wrap' },
      h('table', attrs || {},
        h('thead', null, h('tr', null, headers.map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, rows)));
  }

  // A <td> with a data-label (the narrow-screen layout shows it as a caption).
  function td(label, ...content) {
    return h('td', { 'data-label': label }, h('div', { class: 'cell' }, ...content));
  }

  function flash(msg, kind) {
    flashBox.textContent = msg;
    flashBox.className = 'flash flash-' + (kind || 'info');
    flashBox.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { flashBox.hidden = true; }, kind === 'error' ? 10000 : 4000);
  }

  // ---- API ---------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let csrfToken = null;

  async function csrf(refresh) {
    if (csrfToken && !refresh) return csrfToken;
    const r = await api('/api/v1/csrf');
    csrfToken = r && r.token;
    return csrfToken;
  }

  async function api(path, opts) {
    opts = opts || {};
    const method = opts.method || 'GET';
    const headers = { Accept: 'application/json' };
    let body;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    const changing = method !== 'GET' && method !== 'HEAD';
    for (let attempt = 0; ; attempt++) {
      if (changing) headers['X-CSRF-Token'] = await csrf(attempt > 0);
      let res;
      try {
        res = await fetch(path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
      } catch (e) {
        throw new ApiError(0, _('cannot reach the stagecoach admin server'));
      }
      // The token is per server process: after a restart fetch it again, once.
      if (res.status === 403 && changing && attempt === 0) continue;
      const type = res.headers.get('Content-Type') || '';
      let data = null;
      if (type.includes('json')) {
        try { data = await res.json(); } catch (e) { data = null; }
      } else {
        const t = await res.text();
        data = t ? { error: t } : null;
      }
      if (!res.ok) {
        const msg = data && data.error ? _(String(data.error)) : res.status + ' ' + res.statusText;
        throw new ApiError(res.status, msg);
      }
      return data;
    }
  }

  function qs(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== '') p.set(k, v);
    }
    const str = p.toString();
    return str ? '?' + str : '';
  }

  // ---- routing -----------------------------------------------------------

  // Every navigation bumps the generation; async work of an older page
  // checks it before touching the DOM, and its timers stop.
  let generation = 0;
  let timers = [];

  function current(gen) {
    return gen === generation;
  }

  function every(gen, ms, fn) {
    const id = setInterval(() => {
      if (!current(gen) || document.hidden) return;
      fn();
    }, ms);
    timers.push(id);
  }

  function parseHash() {
    let hash = location.hash.replace(/^#/, '');
    if (!hash.startsWith('/')) hash = '/' + hash;
    const qi = hash.indexOf('?');
    const path = qi >= 0 ? hash.slice(0, qi) : hash;
    const params = new URLSearchParams(qi >= 0 ? hash.slice(qi + 1) : '');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { parts, params };
  }

  const routes = {
    '': overviewPage,
    messages: messagesPage,
    message: messagePage,
    mailers: mailersPage,
    notifications: notificationsPage,
    audit: auditPage,
  };

  function route() {
    generation++;
    timers.forEach(clearInterval);
    timers = [];
    const { parts, params } = parseHash();
    const name = parts[0] || '';
    const page = routes[name] || notFoundPage;
    for (const a of document.querySelectorAll('#nav a')) {
      const active = a.dataset.route === (name === '' ? 'overview' : name === 'message' ? 'messages' : name);
      if (active) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const gen = generation;
    clear(view);
    view.dataset.page = name || 'overview';
    Promise.resolve(page(gen, parts.slice(1), params)).catch((e) => {
      if (current(gen)) showError(e);
    });
  }

  function showError(e) {
    clear(view);
    if (e instanceof ApiError && e.status === 401) {
      loginPage();
      return;
    }
    view.appendChild(h('div', { class: 'error-box', id: 'error' },
      h('h1', null, e instanceof ApiError && e.status === 404 ? _('Not found') : _('Error')),
      h('p', null, e.message || String(e))));
  }

  function loginPage() {
    document.title = _('Sign in') + ' · stagecoach';
    view.appendChild(h('section', { class: 'card login' },
      h('h1', null, _('Sign in')),
      h('p', null, _('This admin server needs a token. On the server, `stagecoach admin-url` prints a login link.')),
      h('form', { method: 'post', action: '/login' },
        h('label', null, _('Token') + ' ', h('input', { type: 'password', name: 'token', required: true, autocomplete: 'current-password' })),
        h('button', { type: 'submit', class: 'primary' }, _('Sign in')))));
  }

  function notFoundPage() {
    view.appendChild(h('p', null, _('No such page.') + ' ', h('a', { href: '#/' }, _('Overview'))));
  }

  // ---- confirmation dialog (a <dialog>, not window.confirm) ------------

  function ask(title, message, opts) {
    opts = opts || {};
    const dlg = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = message;
    const label = document.getElementById('confirm-input-label');
    const input = document.getElementById('confirm-input');
    label.hidden = !opts.input;
    input.value = '';
    if (opts.input) document.getElementById('confirm-input-caption').textContent = opts.input;
    const ok = document.getElementById('confirm-ok');
    ok.textContent = opts.ok || _('OK');
    ok.className = opts.danger ? 'danger' : 'primary';
    return new Promise((resolve) => {
      dlg.addEventListener('close', function onClose() {
        dlg.removeEventListener('close', onClose);
        resolve(dlg.returnValue === 'ok' ? { value: input.value } : null);
      });
      dlg.returnValue = '';
      if (typeof dlg.showModal === 'function') dlg.showModal();
      else dlg.setAttribute('open', '');
      (opts.input ? input : ok).focus();
    });
  }

  // ---- overview ----------------------------------------------------------

  // Backlog samples (queued + deferred + active) taken while the page is open.
  const backlogSamples = [];

  async function overviewPage(gen) {
    document.title = _('Overview') + ' · stagecoach';
    const counts = h('section', { class: 'card', id: 'overview-counts' }, h('h2', null, _('Messages')));
    const lists = h('section', { class: 'card', id: 'overview-lists' }, h('h2', null, _('Per list')));
    const chart = h('section', { class: 'card wide', id: 'overview-chart' }, h('h2', null, _('Throughput and backlog')));
    const mailers = h('section', { class: 'card wide', id: 'overview-mailers' }, h('h2', null, _('Mailers')));
    view.appendChild(h('h1', null, _('Overview')));
    view.appendChild(h('div', { class: 'grid' }, counts, lists, chart, mailers));

    async function refresh() {
      const [status, mailerList] = await Promise.all([
        api('/api/v1/status'),
        api('/api/v1/mailers').catch((e) => e),
      ]);
      if (!current(gen)) return;
      backlogSamples.push({ at: new Date().toISOString(),
        n: (status.queued || 0) + (status.deferred || 0) + (status.active || 0) });
      if (backlogSamples.length > 360) backlogSamples.shift();
      renderCounts(counts, status);
      renderLists(lists, status);
      renderChart(chart, status.throughput || [], backlogSamples);
      renderMailerHealth(mailers, mailerList);
    }
    await refresh();
    every(gen, OVERVIEW_POLL_MS, () => refresh().catch((e) => flash(e.message, 'error')));
  }

  function keepHeading(section) {
    const head = section.firstChild;
    clear(section);
    section.appendChild(head);
  }

  function renderCounts(section, status) {
    keepHeading(section);
    const ul = h('ul', { class: 'counts' });
    for (const st of STATES.concat(['total'])) {
      const n = status[st] || 0;
      const href = st === 'total' ? '#/messages' : '#/messages' + qs({ state: st });
      ul.appendChild(h('li', { class: 'count count-' + st + (n && (st === 'dead' || st === 'held') ? ' alert' : ''), dataset: { state: st } },
        h('a', { href },
          h('span', { class: 'count-n' }, String(n)),
          // the states are the CLI's and the API's words; the sum is a label
          h('span', { class: 'count-label' }, st === 'total' ? _('total') : st))));
    }
    section.appendChild(ul);
  }

  function renderLists(section, status) {
    keepHeading(section);
    const lists = status.lists || {};
    const names = Object.keys(lists).sort();
    if (!names.length) {
      section.appendChild(h('p', { class: 'muted' }, _('No messages yet.')));
      return;
    }
    const rows = names.map((name) => h('tr', { dataset: { list: name } },
      h('th', { scope: 'row', 'data-label': _('List') }, h('a', { href: '#/messages' + qs({ list: name }) }, name)),
      STATES.map((st) => {
        const n = lists[name][st] || 0;
        return td(st, n ? h('a', { href: '#/messages' + qs({ list: name, state: st }), class: 'num' }, String(n))
          : h('span', { class: 'muted num' }, '0'));
      })));
    section.appendChild(table([_('List')].concat(STATES), rows, { class: 'compact' }));
  }

  function renderChart(section, throughput, backlog) {
    keepHeading(section);
    const W = 900, H = 180, PAD_L = 36, PAD_B = 20, PAD_T = 10, PAD_R = 36;
    const plotW = W - PAD_L - PAD_R, plotH = H - PAD_T - PAD_B;
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', id: 'throughput-chart',
      'aria-label': _('Messages done and failed per minute over the last hour, and the backlog') });
    const points = throughput.slice(-60);
    const maxBar = Math.max(1, ...points.map((p) => (p.done || 0) + (p.failed || 0)));
    const barW = plotW / Math.max(points.length, 1);
    // Axes and grid.
    svg.appendChild(s('line', { x1: PAD_L, y1: PAD_T + plotH, x2: PAD_L + plotW, y2: PAD_T + plotH, class: 'axis' }));
    svg.appendChild(s('line', { x1: PAD_L, y1: PAD_T, x2: PAD_L + plotW, y2: PAD_T, class: 'grid-line' }));
    svg.appendChild(s('text', { x: PAD_L - 4, y: PAD_T + 4, class: 'tick', 'text-anchor': 'end' }, String(maxBar)));
    svg.appendChild(s('text', { x: PAD_L - 4, y: PAD_T + plotH, class: 'tick', 'text-anchor': 'end' }, '0'));
    points.forEach((p, i) => {
      const done = p.done || 0, failed = p.failed || 0;
      const x = PAD_L + i * barW + barW * 0.1, w = Math.max(barW * 0.8, 1);
      const hd = (done / maxBar) * plotH, hf = (failed / maxBar) * plotH;
      // TRANSLATORS: a minute of the chart: its time, then the counts
      const g = s('g', {}, s('title', {}, fmt(_('%s: %d done, %d failed'), text(p.at, ''), done, failed)));
      if (done) g.appendChild(s('rect', { x, y: PAD_T + plotH - hd, width: w, height: hd, class: 'bar-done' }));
      if (failed) g.appendChild(s('rect', { x, y: PAD_T + plotH - hd - hf, width: w, height: hf, class: 'bar-failed' }));
      svg.appendChild(g);
    });
    if (points.length) {
      const label = (p) => { const m = /T(\d\d:\d\d)/.exec(String(p.at || '')); return m ? m[1] : ''; };
      svg.appendChild(s('text', { x: PAD_L, y: H - 4, class: 'tick' }, label(points[0])));
      svg.appendChild(s('text', { x: PAD_L + plotW, y: H - 4, class: 'tick', 'text-anchor': 'end' }, label(points[points.length - 1]) + ' UTC'));
    }
    // Backlog line, own scale on the right, spread over the plot width.
    if (backlog.length > 1) {
      const maxB = Math.max(1, ...backlog.map((b) => b.n));
      const step = plotW / (backlog.length - 1);
      const d = backlog.map((b, i) => `${i ? 'L' : 'M'}${(PAD_L + i * step).toFixed(1)},${(PAD_T + plotH - (b.n / maxB) * plotH).toFixed(1)}`).join(' ');
      svg.appendChild(s('path', { d, class: 'backlog-line' }));
      svg.appendChild(s('text', { x: PAD_L + plotW + 4, y: PAD_T + 4, class: 'tick tick-backlog' }, String(maxB)));
    }
    const last = backlog.length ? backlog[backlog.length - 1].n : 0;
    const sum = (k) => points.reduce((a, p) => a + (p[k] || 0), 0);
    section.appendChild(svg);
    section.appendChild(h('p', { class: 'legend' },
      h('span', { class: 'key key-done' }), fmt(_('done %d'), sum('done')), ' ',
      h('span', { class: 'key key-failed' }), fmt(_('failed %d'), sum('failed')), ' ' + _('(last hour, per minute)') + ' ',
      h('span', { class: 'key key-backlog' }), fmt(_('backlog %d (since this page opened)'), last)));
  }

  function renderMailerHealth(section, mailers) {
    keepHeading(section);
    if (mailers instanceof Error) {
      section.appendChild(h('p', { class: 'error' }, mailers.message));
      return;
    }
    if (!mailers || !mailers.length) {
      section.appendChild(h('p', { class: 'muted' }, _('No mailers configured.')));
      return;
    }
    const ul = h('ul', { class: 'mailer-health' });
    for (const m of mailers) {
      ul.appendChild(h('li', { class: 'mailer circuit-' + (m.circuit === 'open' ? 'open' : 'closed'), dataset: { mailer: text(m.name, '') } },
        h('strong', null, text(m.name)), ' ', badge(m.circuit === 'open' ? 'open' : 'ok'),
        h('span', { class: 'muted' }, ' ' + fmt(ngettext('%d transaction', '%d transactions', m.transactions || 0), m.transactions || 0) +
          ', ' + fmt(ngettext('%d failure', '%d failures', m.failures || 0), m.failures || 0)),
        m.circuit === 'open' && m.open_until ? h('span', null, ' ' + _('until') + ' ', time(m.open_until)) : null,
        m.last_error ? h('div', { class: 'error small' }, text(m.last_error)) : null));
    }
    section.appendChild(ul);
  }

  // ---- message search ----------------------------------------------------

  async function messagesPage(gen, _parts, params) {
    document.title = _('Messages') + ' · stagecoach';
    const f = {
      state: params.get('state') || '',
      list: params.get('list') || '',
      stage: params.get('stage') || '',
      q: params.get('q') || '',
    };
    const listSelect = h('select', { id: 'filter-list', name: 'list' }, h('option', { value: '' }, _('any list')));
    if (f.list) listSelect.appendChild(h('option', { value: f.list }, f.list));
    listSelect.value = f.list;
    const form = h('form', { class: 'filters', id: 'filters', role: 'search' },
      h('label', null, h('span', null, _('State')),
        h('select', { id: 'filter-state', name: 'state' }, h('option', { value: '' }, _('any state')),
          STATES.map((st) => h('option', { value: st, selected: st === f.state }, st)))),
      h('label', null, h('span', null, _('List')), listSelect),
      h('label', null, h('span', null, _('Stage')),
        h('input', { id: 'filter-stage', name: 'stage', type: 'text', value: f.stage, placeholder: _('e.g. deliver'), list: 'stage-names', autocomplete: 'off' })),
      h('datalist', { id: 'stage-names' }, ['decorate', 'archive', 'deliver'].map((n) => h('option', { value: n }))),
      h('label', { class: 'grow' }, h('span', null, _('Search')),
        h('input', { id: 'q', name: 'q', type: 'search', value: f.q, placeholder: _('subject, sender, Message-ID, error'), autocomplete: 'off' })),
      h('button', { id: 'search', type: 'submit', class: 'primary' }, _('Search')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const next = '#/messages' + qs({
        state: form.elements.state.value, list: form.elements.list.value,
        stage: form.elements.stage.value.trim(), q: form.elements.q.value.trim(),
      });
      if (location.hash === next) route();
      else location.hash = next;
    });

    const bulk = h('div', { class: 'bulk', id: 'bulk' });
    const tbody = h('tbody', { id: 'results' });
    const more = h('button', { id: 'more', type: 'button', hidden: true }, _('More'));
    const summary = h('p', { class: 'muted', id: 'result-count' }, _('Searching…'));
    view.appendChild(h('h1', null, _('Messages')));
    view.appendChild(form);
    view.appendChild(bulk);
    view.appendChild(summary);
    view.appendChild(h('div', { class: 'table-wrap' },
      h('table', { class: 'messages responsive', id: 'message-table' },
        h('thead', null, h('tr', null,
          [_('State'), _('Subject'), _('List'), _('Sender'), _('Last error'), _('Fails'), _('Updated')].map((c) => h('th', { scope: 'col' }, c)))),
        tbody)));
    view.appendChild(h('div', { class: 'pager' }, more));

    // The list names for the select come from the status counts.
    api('/api/v1/status').then((st) => {
      if (!current(gen)) return;
      for (const name of Object.keys(st.lists || {}).sort()) {
        if (name !== f.list) listSelect.appendChild(h('option', { value: name }, name));
      }
    }).catch(() => {});

    renderBulk(bulk, f);

    let cursor = null;
    let shown = 0;
    async function load() {
      more.disabled = true;
      const page = await api('/api/v1/messages' + qs({ ...f, after: cursor, limit: PAGE_SIZE }));
      if (!current(gen)) return;
      for (const m of page.messages || []) tbody.appendChild(messageRow(m));
      shown += (page.messages || []).length;
      cursor = page.next || null;
      more.hidden = !cursor;
      more.disabled = false;
      summary.textContent = shown === 0 ? _('No messages match.')
        : cursor ? fmt(ngettext('%d message shown, more available.', '%d messages shown, more available.', shown), shown)
          : fmt(ngettext('%d message shown.', '%d messages shown.', shown), shown);
    }
    more.addEventListener('click', () => load().catch((e) => { more.disabled = false; flash(e.message, 'error'); }));
    await load();
  }

  function messageRow(m) {
    const href = messageHref(m.id);
    return h('tr', { class: 'message-row', dataset: { id: text(m.id, ''), state: text(m.state, '') } },
      td(_('State'), badge(m.state)),
      td(_('Subject'), h('a', { href, class: 'subject-link' }, text(m.subject, _('(no subject)'))),
        h('div', { class: 'muted small mono' }, text(m.id, ''))),
      td(_('List'), text(m.list)),
      td(_('Sender'), text(m.sender, '<>')),
      td(_('Last error'), m.hold_reason ? h('span', null, _('held:') + ' ', m.hold_reason) : h('span', { class: 'error small' }, text(m.last_error, ''))),
      td(_('Fails'), String(m.failures || 0)),
      td(_('Updated'), time(m.updated_at)));
  }

  function renderBulk(box, f) {
    clear(box);
    const retryable = f.state === 'dead' || f.state === 'deferred';
    const btn = h('button', { type: 'button', id: 'bulk-retry', disabled: !retryable },
      !retryable ? _('Retry all…')
        // TRANSLATORS: %s is a state (dead, deferred), then a list's name
        : f.list ? fmt(_('Retry all %s messages of %s…'), f.state, f.list)
          : fmt(_('Retry all %s messages…'), f.state));
    box.appendChild(btn);
    if (!retryable) {
      box.appendChild(h('span', { class: 'muted small' }, ' ' + _('Bulk retry works on the state filter dead or deferred.')));
      return;
    }
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        const body = { state: f.state, dry_run: true };
        if (f.list) body.list = f.list;
        if (f.stage) body.stage = f.stage;
        if (f.q) body.q = f.q;
        const dry = await api('/api/v1/retry', { method: 'POST', body });
        const n = dry.count || 0;
        if (!n) {
          flash(fmt(_('No %s messages to retry.'), f.state), 'info');
          return;
        }
        // TRANSLATORS: a count, a state (dead, deferred)[, a list's name]
        let msg = (f.list ? fmt(ngettext('Retry %d %s message of list %s?', 'Retry %d %s messages of list %s?', n), n, f.state, f.list)
          : fmt(ngettext('Retry %d %s message?', 'Retry %d %s messages?', n), n, f.state)) +
          ' ' + _('Each starts a new cycle and becomes due now.');
        if (f.q || f.stage) msg += ' ' + _('Only messages matching the current search are retried.');
        const ok = await ask(fmt(ngettext('Retry %d message?', 'Retry %d messages?', n), n), msg, { ok: fmt(_('Retry %d'), n) });
        if (!ok) return;
        body.dry_run = false;
        const res = await api('/api/v1/retry', { method: 'POST', body });
        flash(fmt(ngettext('%d message queued for retry.', '%d messages queued for retry.', res.count || 0), res.count || 0), 'ok');
        route();
      } catch (e) {
        flash(e.message, 'error');
      } finally {
        btn.disabled = false;
      }
    });
  }

  // ---- message page ------------------------------------------------------

  async function messagePage(gen, parts) {
    const id = parts[0] || '';
    const base = '/api/v1/messages/' + encodeURIComponent(id);
    let last = null;
    let retryStage = '';
    const box = h('div', { id: 'message' });
    view.appendChild(box);

    async function refresh(force) {
      const m = await api(base);
      if (!current(gen)) return;
      const json = JSON.stringify(m);
      if (!force && json === last) return;
      last = json;
      const sel = document.getElementById('retry-stage');
      if (sel) retryStage = sel.value;
      clear(box);
      renderMessage(box, m, base, retryStage, () => refresh(true));
    }
    await refresh(true);
    every(gen, POLL_MS, () => refresh(false).catch((e) => {
      if (e instanceof ApiError && e.status === 404) {
        clear(box);
        box.appendChild(h('p', null, _('This message no longer exists.') + ' ', h('a', { href: '#/messages' }, _('Messages'))));
        generation++;
      }
    }));
  }

  function renderMessage(box, m, base, retryStage, reload) {
    document.title = text(m.subject, _('(no subject)')) + ' · stagecoach';
    box.dataset.id = text(m.id, '');
    box.appendChild(h('p', { class: 'crumbs' }, h('a', { href: '#/messages' }, _('Messages')), ' / ', h('span', { class: 'mono' }, text(m.id))));
    box.appendChild(h('h1', { id: 'subject' }, text(m.subject, _('(no subject)'))));

    // Summary.
    const dl = h('dl', { class: 'facts' });
    const fact = (k, ...v) => dl.append(h('dt', null, k), h('dd', null, ...v));
    fact(_('State'), h('span', { id: 'message-state', class: 'badge badge-' + text(m.state, '').replace(/[^a-z]/g, '') }, text(m.state)));
    fact(_('List'), m.list ? h('a', { href: '#/messages' + qs({ list: m.list }) }, m.list) : '—');
    fact(_('Sender'), text(m.sender, '<>'));
    fact(_('Message-ID'), h('span', { class: 'mono' }, text(m.message_id)));
    fact(_('Pipeline'), (m.pipeline || []).join(' → ') || '—');
    fact(_('Created'), time(m.created_at));
    fact(_('Updated'), time(m.updated_at));
    fact(_('Next attempt'), time(m.next_attempt_at));
    fact(_('Failures'), String(m.failures || 0), ' ' + fmt(_('in cycle %d'), m.cycle || 1));
    fact(_('Size'), bytes(m.size));
    if (m.hold_reason) fact(_('Held because'), text(m.hold_reason));
    if (m.last_error) fact(_('Last error'), h('span', { class: 'error', id: 'last-error' }, text(m.last_error)));
    box.appendChild(h('section', { class: 'card' }, dl));

    box.appendChild(renderActions(m, base, retryStage, reload));
    box.appendChild(renderDownloads(m, base));
    box.appendChild(renderTimeline(m));
    box.appendChild(renderRecipients(m));
    box.appendChild(renderAttempts(m));
    box.appendChild(renderHeaders(m));
  }

  function renderActions(m, base, retryStage, reload) {
    // the server's table of what this state allows (sc_message_state_allows)
    const allows = (action) => (m.actions || []).includes(action);
    const section = h('section', { class: 'card actions', id: 'actions' }, h('h2', null, _('Actions')));

    async function act(label, path, body, method) {
      try {
        await api(base + path, { method: method || 'POST', body });
        flash(label, 'ok');
        await reload();
      } catch (e) {
        flash(e.message, 'error');
      }
    }

    const retry = h('button', { id: 'retry', type: 'button', class: 'primary', disabled: !allows('retry') }, _('Retry'));
    retry.addEventListener('click', () => act(_('Retry queued: the message is due now in a new cycle.'), '/retry', {}));

    const stages = m.pipeline || [];
    const stageSelect = h('select', { id: 'retry-stage', 'aria-label': _('Stage to retry from') },
      stages.map((st) => h('option', { value: st, selected: st === retryStage }, st)));
    const retryFrom = h('button', { id: 'retry-from', type: 'button', disabled: !allows('retry-from-stage') || !stages.length }, _('Retry from stage'));
    retryFrom.addEventListener('click', async () => {
      const st = stageSelect.value;
      // TRANSLATORS: %s is a stage's name (decorate, archive, deliver)
      const ok = await ask(fmt(_('Retry from %s?'), st),
        fmt(_('The records of %s and every later stage are forgotten and the message runs again from %s.'), st, st),
        { ok: fmt(_('Retry from %s'), st) });
      if (ok) act(fmt(_('Retry from %s queued.'), st), '/retry', { from_stage: st });
    });

    const hold = h('button', { id: 'hold', type: 'button', disabled: !allows('hold') }, _('Hold'));
    hold.addEventListener('click', async () => {
      const ok = await ask(_('Hold this message?'), _('It will not be processed until it is released.'), { input: _('Reason (optional)'), ok: _('Hold') });
      if (ok) act(_('Message held.'), '/hold', ok.value ? { reason: ok.value } : {});
    });
    const release = h('button', { id: 'release', type: 'button', disabled: !allows('release') }, _('Release'));
    release.addEventListener('click', () => act(_('Message released.'), '/release', {}));

    const del = h('button', { id: 'delete', type: 'button', class: 'danger', disabled: !allows('delete') }, _('Delete'));
    del.addEventListener('click', async () => {
      const ok = await ask(_('Delete this message?'),
        // TRANSLATORS: the subject, then the queue id
        fmt(_('“%s” (%s) and all its records are removed from the spool. This cannot be undone.'), text(m.subject, _('(no subject)')), text(m.id)),
        { ok: _('Delete'), danger: true });
      if (!ok) return;
      try {
        await api(base, { method: 'DELETE' });
        flash(_('Message deleted.'), 'ok');
        location.hash = '#/messages';
      } catch (e) {
        flash(e.message, 'error');
      }
    });

    section.appendChild(h('div', { class: 'buttons' }, retry,
      h('span', { class: 'joined' }, stageSelect, retryFrom), hold, release, del));
    if (m.state === 'active') section.appendChild(h('p', { class: 'muted small' }, _('A runner is working on this message right now.')));
    return section;
  }

  function renderDownloads(m, base) {
    const links = [h('a', { href: base + '/raw', download: text(m.id, 'message') + '.eml', id: 'download-raw', class: 'button' }, _('Raw message'))];
    for (const st of m.stages || []) {
      if (st.output_size === null || st.output_size === undefined) continue;
      const name = text(st.stage, '');
      links.push(h('a', {
        href: base + '/stages/' + encodeURIComponent(name) + '/output',
        download: `${text(m.id, 'message')}-${name}.eml`, class: 'button',
        id: name === 'decorate' ? 'download-decorated' : null,
        dataset: { stage: name },
      }, name === 'decorate' ? _('Decorated message') : fmt(_('Output of %s'), name), h('span', { class: 'muted small' }, ' ' + bytes(st.output_size))));
    }
    return h('section', { class: 'card', id: 'downloads' }, h('h2', null, _('Downloads')), h('div', { class: 'buttons' }, links));
  }

  function renderTimeline(m) {
    const done = new Map((m.stages || []).map((st) => [st.stage, st]));
    const attempts = m.attempts || [];
    const ol = h('ol', { class: 'timeline', id: 'timeline' });
    ol.appendChild(h('li', { class: 'tl-done' }, h('strong', null, 'accepted'), ' ', time(m.created_at)));
    for (const name of m.pipeline || []) {
      const mine = attempts.filter((a) => a.stage === name);
      const lastA = mine[mine.length - 1];
      const rec = done.get(name);
      let cls, status;
      if (rec) { cls = 'tl-done'; status = 'done'; }
      else if (lastA && lastA.outcome && lastA.outcome !== 'ok') { cls = 'tl-failed'; status = lastA.outcome; }
      else if (m.state === 'active' && (!lastA || !lastA.finished_at)) { cls = 'tl-pending'; status = 'pending'; }
      else { cls = 'tl-pending'; status = 'pending'; }
      ol.appendChild(h('li', { class: cls, dataset: { stage: name } },
        h('strong', null, name), ' ', badge(status), ' ',
        rec ? time(rec.completed_at) : lastA ? time(lastA.finished_at || lastA.started_at) : null,
        mine.length ? h('span', { class: 'muted small' }, ' ' + fmt(ngettext('%d attempt', '%d attempts', mine.length), mine.length)) : null,
        rec && rec.note ? h('div', { class: 'small' }, text(rec.note)) : null,
        !rec && lastA && lastA.error ? h('div', { class: 'error small' }, text(lastA.error)) : null));
    }
    if (m.state === 'done') ol.appendChild(h('li', { class: 'tl-done' }, h('strong', null, 'done'), ' ', time(m.updated_at)));
    if (m.state === 'dead') ol.appendChild(h('li', { class: 'tl-failed' }, h('strong', null, 'dead'), ' ', time(m.updated_at)));
    return h('section', { class: 'card' }, h('h2', null, _('Stages')), ol);
  }

  function renderRecipients(m) {
    const rcpts = m.recipients || [];
    const rows = rcpts.map((r) => h('tr', { class: 'recipient-row', dataset: { status: text(r.status, '') } },
      td(_('Recipient'), h('span', { class: 'mono' }, text(r.address))),
      td(_('Status'), badge(r.status)),
      td(_('Code'), r.code === null || r.code === undefined ? '—' : String(r.code)),
      td(_('SMTP reply'), h('span', { class: 'mono reply' }, text(r.reply))),
      td(_('Mailer'), text(r.mailer)),
      td(_('Updated'), time(r.updated_at))));
    const counts = {};
    for (const r of rcpts) counts[r.status] = (counts[r.status] || 0) + 1;
    const summary = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ');
    return h('section', { class: 'card wide' },
      h('h2', null, fmt(_('Recipients (%d)'), rcpts.length)),
      summary ? h('p', { class: 'muted small' }, summary) : null,
      rcpts.length ? table([_('Recipient'), _('Status'), _('Code'), _('SMTP reply'), _('Mailer'), _('Updated')], rows, { id: 'recipients', class: 'responsive' })
        : h('table', { id: 'recipients', hidden: true }), 
      rcpts.length ? null : h('p', { class: 'muted' }, _('No recipient has been tried yet.')));
  }

  function renderAttempts(m) {
    const attempts = (m.attempts || []).slice().reverse();
    const rows = attempts.map((a) => h('tr', { class: 'attempt-row outcome-' + text(a.outcome, '').replace(/[^a-z]/g, '') },
      td(_('Cycle'), String(a.cycle || '')),
      td(_('Stage'), text(a.stage)),
      td(_('Outcome'), badge(a.outcome || 'running')),
      td(_('Mailer'), text(a.mailer)),
      td(_('Started'), time(a.started_at)),
      td(_('Took'), a.finished_at ? duration(a.started_at, a.finished_at) : _('running')),
      td(_('Error'), h('span', { class: 'error small' }, text(a.error, '')))));
    return h('section', { class: 'card wide' }, h('h2', null, fmt(_('Attempts (%d)'), attempts.length)),
      attempts.length ? table([_('Cycle'), _('Stage'), _('Outcome'), _('Mailer'), _('Started'), _('Took'), _('Error')], rows, { id: 'attempts', class: 'responsive' })
        : h('p', { class: 'muted' }, _('No attempts yet.')));
  }

  function renderHeaders(m) {
    const headers = m.headers || [];
    const rows = headers.map((hd) => h('tr', null,
      h('th', { scope: 'row', class: 'mono' }, text(hd.name, '')),
      h('td', { class: 'mono header-value' }, text(hd.value, ''))));
    return h('section', { class: 'card wide' },
      h('details', { id: 'headers', open: headers.length <= 12 },
        h('summary', null, fmt(_('Headers (%d)'), headers.length)),
        headers.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'headers' }, h('tbody', null, rows)))
          : h('p', { class: 'muted' }, _('No headers.'))));
  }

  // ---- mailers -----------------------------------------------------------

  async function mailersPage(gen) {
    document.title = _('Mailers') + ' · stagecoach';
    const box = h('div');
    view.appendChild(h('h1', null, _('Mailers')));
    view.appendChild(box);
    async function refresh() {
      const mailers = await api('/api/v1/mailers');
      if (!current(gen)) return;
      clear(box);
      if (!mailers.length) {
        box.appendChild(h('p', { class: 'muted' }, _('No mailers configured.')));
        return;
      }
      const rows = mailers.map((m) => h('tr', { class: 'mailer-row', dataset: { mailer: text(m.name, ''), circuit: text(m.circuit, '') } },
        td(_('Name'), h('strong', null, text(m.name))),
        td(_('URL'), h('span', { class: 'mono' }, text(m.url))),
        td(_('Priority'), text(m.priority)),
        td(_('Circuit'), badge(m.circuit === 'open' ? 'open' : 'closed'), m.circuit === 'open' && m.open_until ? h('span', null, ' ' + _('until') + ' ', time(m.open_until)) : null),
        td(_('Transactions'), text(m.transactions, '0')),
        td(_('Connections'), text(m.connections, '0')),
        td(_('Failures'), text(m.failures, '0')),
        td(_('Last error'), h('span', { class: 'error small' }, text(m.last_error, '')))));
      box.appendChild(table([_('Name'), _('URL'), _('Priority'), _('Circuit'), _('Transactions'), _('Connections'), _('Failures'), _('Last error')], rows,
        { id: 'mailers', class: 'responsive' }));
    }
    await refresh();
    every(gen, OVERVIEW_POLL_MS, () => refresh().catch((e) => flash(e.message, 'error')));
  }

  // ---- notifications and audit log (keyset pages) ------------------------

  async function pagedPage(gen, opts) {
    document.title = opts.title + ' · stagecoach';
    const tbody = h('tbody');
    const more = h('button', { id: 'more', type: 'button', hidden: true }, _('More'));
    const empty = h('p', { class: 'muted', hidden: true }, opts.empty);
    view.appendChild(h('h1', null, opts.title));
    view.appendChild(h('div', { class: 'table-wrap' },
      h('table', { id: opts.id, class: 'responsive' },
        h('thead', null, h('tr', null, opts.headers.map((c) => h('th', { scope: 'col' }, c)))), tbody)));
    view.appendChild(empty);
    view.appendChild(h('div', { class: 'pager' }, more));
    let cursor = null;
    let shown = 0;
    async function load() {
      more.disabled = true;
      const page = await api(opts.path + qs({ after: cursor, limit: PAGE_SIZE }));
      if (!current(gen)) return;
      const items = page[opts.key] || [];
      for (const it of items) tbody.appendChild(opts.row(it));
      shown += items.length;
      cursor = page.next || null;
      more.hidden = !cursor;
      more.disabled = false;
      empty.hidden = shown > 0;
    }
    more.addEventListener('click', () => load().catch((e) => { more.disabled = false; flash(e.message, 'error'); }));
    await load();
  }

  function queueLink(id) {
    return id ? h('a', { href: messageHref(id), class: 'mono' }, String(id)) : '—';
  }

  function notificationsPage(gen) {
    return pagedPage(gen, {
      title: _('Notifications'), id: 'notifications', key: 'notifications', path: '/api/v1/notifications',
      empty: _('No notifications.'),
      headers: [_('Created'), _('Kind'), _('Message'), _('Detail'), _('State'), _('Attempts'), _('Sent'), _('Last error')],
      row: (n) => h('tr', { class: 'notification-row', dataset: { id: text(n.id, '') } },
        td(_('Created'), time(n.created_at)),
        td(_('Kind'), text(n.kind)),
        td(_('Message'), queueLink(n.queue_id)),
        td(_('Detail'), h('span', { class: 'small' }, text(n.detail, ''))),
        td(_('State'), badge(n.state)),
        td(_('Attempts'), text(n.attempts, '0')),
        td(_('Sent'), time(n.sent_at)),
        td(_('Last error'), h('span', { class: 'error small' }, text(n.last_error, '')))),
    });
  }

  function auditPage(gen) {
    return pagedPage(gen, {
      title: _('Audit log'), id: 'audit', key: 'entries', path: '/api/v1/audit',
      empty: _('Nothing has been done through the admin interfaces yet.'),
      headers: [_('When'), _('Actor'), _('From'), _('Action'), _('Message'), _('Detail')],
      row: (e) => h('tr', { class: 'audit-row', dataset: { id: text(e.id, '') } },
        td(_('When'), time(e.at)),
        td(_('Actor'), text(e.actor)),
        td(_('From'), h('span', { class: 'mono small' }, text(e.remote))),
        td(_('Action'), h('strong', null, text(e.action))),
        td(_('Message'), queueLink(e.queue_id)),
        td(_('Detail'), h('span', { class: 'small' }, text(e.detail, '')))),
    });
  }

  // ---- start -------------------------------------------------------------

  // The login link (`stagecoach admin-url`) carries the token in the
  // fragment, which browsers send to no server: take it out of the address
  // bar and the history at once, then trade it for the session cookie.
  async function loginFromFragment() {
    const m = /^#token=([^&]*)/.exec(location.hash);
    if (!m) return;
    history.replaceState(null, '', location.pathname + '#/');
    const token = decodeURIComponent(m[1]);
    try {
      const res = await fetch('/login', {
        method: 'POST',
        body: new URLSearchParams({ token }),
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (!res.ok) flash(res.status === 429 ? _('Too many failed logins: wait a little.') : _('That login link is not valid (any more).'), 'error');
    } catch (e) {
      flash(_('cannot reach the stagecoach admin server'), 'error');
    }
  }

  // a login link opened on a page already shown changes only the fragment
  function start() {
    loginFromFragment().finally(() => {
      translatePage();
      if (!location.hash) history.replaceState(null, '', '#/');
      route();
    });
  }

  window.addEventListener('hashchange', () => (/^#token=/.test(location.hash) ? start() : route()));
  // the strings first: every page is rendered in the negotiated language
  loadStrings().finally(start);
})();
