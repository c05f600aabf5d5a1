// tests/browser/dashboard.test.mjs — the admin dashboard in headless
// Chromium against a live `stagecoach run`.
//
// The operator logs in with the link `stagecoach admin-url` prints (the
// token generated in the spool, in the URL's fragment).
// A message is delivered to an smtp-sink that refuses every RCPT (5xx), so
// it dies; the dashboard must find it, show the refusal in the recipients
// table, and retry it once the sink accepts.  A second message's Subject is
// an HTML injection attempt that must render as text.  Last, a browser that
// asks for German (Accept-Language: de) sees the dashboard in German.
//
// Environment: STAGECOACH_BIN (set by meson), STAGECOACH_ARTIFACTS (where
// screenshots go; default tests/artifacts), CHROMIUM (default
// /usr/bin/chromium).  Run by tests/test-browser.sh; by hand:
//   STAGECOACH_BIN=build/stagecoach node tests/browser/dashboard.test.mjs
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.STAGECOACH_BIN || path.resolve(here, '../../build/stagecoach');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.STAGECOACH_ARTIFACTS || path.resolve(here, '../artifacts');
const SINK = '/usr/sbin/smtp-sink';
const XSS = '<img src=x onerror=alert(1)>';
const LIST = 'browser.example.org';

const started = [];   // every child process, killed by PID at the end
let tmp;
let step = 'setup';

function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(what, fn, timeoutMs = 30000, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
    await sleep(everyMs);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

function start(name, cmd, args, opts = {}) {
  const out = fs.openSync(path.join(tmp, name + '.log'), 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', out, out], env: opts.env || process.env });
  fs.closeSync(out);
  child.exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve({ code, sig })));
  child.label = name;
  started.push(child);
  log(`started ${name} (pid ${child.pid}): ${cmd} ${args.join(' ')}`);
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(child.pid, 'SIGTERM'); } catch { return; }
  const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, 10000);
  await child.exited;
  clearTimeout(t);
}

// Runs a command to completion; resolves with stdout, rejects on failure.
function run(cmd, args, { input, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env || process.env });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
    // a command that reads no input may exit before it is written: EPIPE
    // then is no failure (its exit code says how it went)
    child.stdin.on('error', (e) => { if (e.code !== 'EPIPE') reject(e); });
    child.stdin.end(input || '');
  });
}

async function startSink(port, refuseRcpt) {
  const args = [];
  if (process.getuid && process.getuid() === 0) args.push('-u', 'nobody');
  if (refuseRcpt) args.push('-f', 'rcpt');
  args.push('-c', `127.0.0.1:${port}`, '64');
  // The port was just released by the previous sink: try a few times.
  for (let i = 0; ; i++) {
    const sink = start(refuseRcpt ? 'sink-refusing' : 'sink', SINK, args);
    const up = await Promise.race([
      waitFor(`smtp-sink on ${port}`, () => canConnect(port), 10000, 100).then(() => true, () => false),
      sink.exited.then(() => false),
    ]);
    if (up && sink.exitCode === null) return sink;
    await stop(sink);
    if (i >= 5) throw new Error(`smtp-sink did not start on port ${port}`);
    await sleep(500);
  }
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(none)';
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

async function main() {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'stagecoach-browser-'));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const adminPort = await freePort();
  const sinkPort = await freePort();
  const config = path.join(tmp, 'stagecoach.conf');
  const mock = process.env.SC_TEST_ADMIN_MOCK; // development only: a stand-in admin server
  fs.writeFileSync(config, [
    '[stagecoach]',
    'spool=spool',
    'workers=2',
    '',
    '[retry]',
    'initial=1s',
    'max-delay=2s',
    '',
    mock ? '' : `[admin]\nlisten=127.0.0.1:${adminPort}\n`,
    '[mailer:sink]',
    `url=smtp://127.0.0.1:${sinkPort}`,
    'starttls=off',
    'timeout=10s',
    '',
    `[list:${LIST}]`,
    'name=browser',
    'pipeline=decorate;deliver',
    `bounces=browser-bounces@${LIST}`,
    'subject-prefix=[browser]',
    '',
  ].join('\n'));
  const env = { ...process.env, STAGECOACH_CONFIG: config, LC_ALL: 'C.UTF-8' };
  const cli = (...args) => run(BIN, args, { env });

  step = 'start the refusing smtp-sink';
  let sink = await startSink(sinkPort, true);

  step = 'inject';
  const token = `dash${process.pid}x${Date.now().toString(36)}`;
  const subject = `Browser test ${token}`;
  const inject = async (subj, mid) => (await run(BIN, ['inject', '-l', LIST, '-f', `browser-bounces@${LIST}`,
    'alice@example.net', 'bob@example.net'], {
    env,
    input: `From: Owner <owner@example.org>\r\nTo: ${LIST}\r\nSubject: ${subj}\r\n` +
      `Message-ID: <${mid}@example.org>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHello from the browser test.\r\n`,
  })).trim();
  const id = await inject(subject, token);
  const xssId = await inject(XSS, `xss.${Date.now()}`);
  log(`injected ${id} and ${xssId}`);

  step = 'start the daemon';
  const daemon = start('daemon', BIN, ['run'], { env });
  if (mock) start('mock-admin', process.execPath, [mock, String(adminPort)], { env });
  const daemonLog = path.join(tmp, 'daemon.log');

  step = 'wait until both messages are dead';
  await waitFor('both messages dead', async () => {
    if (daemon.exitCode !== null) throw new Error(`daemon exited ${daemon.exitCode}`);
    const st = JSON.parse(await cli('status', '--json'));
    return st.dead >= 2;
  }, 60000, 300);
  const shown = JSON.parse(await cli('show', '--json', id));
  const reply = shown.recipients.map((r) => r.reply).find((r) => r && /^5\d\d/.test(r));
  assert(reply, `a 5xx reply recorded for ${id}: ${JSON.stringify(shown.recipients)}`);

  step = 'wait for the admin server';
  const base = `http://127.0.0.1:${adminPort}`;
  await waitFor('the admin server', async () => (await fetch(base + '/healthz')).ok, 30000, 200);
  const csp = (await fetch(base + '/')).headers.get('content-security-policy') || '';
  assert(/script-src 'self'/.test(csp), `a CSP header on /: "${csp}"`);

  step = 'launch Chromium';
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'stagecoach-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'],
    viewport: { width: 1280, height: 900 },
  });
  const dialogs = [];
  const problems = [];
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(20000);
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push('console: ' + m.text());
    });

    step = 'anonymous: the login form';
    await page.goto(base + '/');
    await page.locator('section.login').waitFor();

    step = 'log in with the link `stagecoach admin-url` prints';
    const loginUrl = (await cli('admin-url')).trim();
    assert(loginUrl.startsWith(base + '/#token='), `a login link with the token in the fragment: ${loginUrl.replace(/token=.*/, 'token=…')}`);
    await page.goto(loginUrl);

    step = 'overview';
    await page.locator('#overview-counts li[data-state="dead"] .count-n').filter({ hasText: /^2$/ }).waitFor();
    await page.locator('#overview-lists').getByText(LIST).first().waitFor();
    await page.locator('#throughput-chart').waitFor();
    assert(!page.url().includes('token='), 'the token is gone from the address bar');
    await page.screenshot({ path: path.join(ARTIFACTS, 'overview.png'), fullPage: true });

    step = 'search by subject';
    await page.locator('#nav a[data-route="messages"]').click();
    await page.locator('#q').fill(token);
    await page.locator('#search').click();
    await waitFor('one search result', async () => (await page.locator('.message-row').count()) === 1 &&
      (await page.locator('.message-row').first().getAttribute('data-id')) === id);
    assert((await page.locator('.message-row').first().innerText()).includes(subject), 'the result shows the subject');

    step = 'open the message';
    await page.locator(`.message-row a[href="#/message/${id}"]`).first().click();
    await page.locator('#message-state').filter({ hasText: 'dead' }).waitFor();
    assert((await page.locator('#subject').textContent()).includes(subject), '#subject shows the subject');
    await page.locator('#recipients').filter({ hasText: reply }).waitFor();
    const rcptText = await page.locator('#recipients').innerText();
    assert(/\b5\d\d\b/.test(rcptText) && rcptText.includes('alice@example.net'), `#recipients shows the 5xx reply: ${rcptText}`);
    // the buttons are the server's table for "dead" (the message's "actions")
    assert(await page.locator('#release').isDisabled(), 'a dead message offers no release');
    assert(!(await page.locator('#hold').isDisabled()), 'a dead message can be held');
    assert(!(await page.locator('#retry').isDisabled()), 'a dead message can be retried');
    await page.screenshot({ path: path.join(ARTIFACTS, 'message.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'message-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    step = 'restart the sink accepting';
    await stop(sink);
    sink = await startSink(sinkPort, false);

    step = 'retry from the message page';
    await page.locator('#retry').click();
    await page.locator('#message-state').filter({ hasText: /^done$/ }).waitFor({ timeout: 60000 });
    const after = JSON.parse(await cli('show', '--json', id));
    assert(after.state === 'done', `the spool says done, not ${after.state}`);
    assert(await page.locator('#retry').isDisabled(), 'a done message offers retry from a stage only');
    assert(!(await page.locator('#retry-from').isDisabled()), 'a done message can run a stage again');

    step = 'the injected subject renders as text';
    await page.goto(base + '/#/messages?q=' + encodeURIComponent('onerror'));
    await page.locator(`.message-row[data-id="${xssId}"]`).waitFor();
    await page.locator(`.message-row a[href="#/message/${xssId}"]`).first().click();
    await page.locator('#message-state').waitFor();
    assert((await page.locator('#subject').textContent()) === XSS, '#subject is the literal subject');
    assert((await page.locator('body').innerText()).includes(XSS), 'the page text contains the literal subject');
    assert((await page.locator('img[src="x"]').count()) === 0, 'no <img src=x> in the page');

    step = 'English without Accept-Language: de';
    await page.goto(base + '/#/');
    await page.locator('#overview-chart h2').filter({ hasText: 'Throughput and backlog' }).waitFor();
    assert((await page.locator('#nav-overview').textContent()) === 'Overview', 'the nav is English');
    assert((await page.evaluate(() => document.documentElement.lang)) === 'en', '<html lang="en">');

    step = 'German with Accept-Language: de';
    await german(base, loginUrl, id, problems);

    await sleep(500);
    assert(dialogs.length === 0, `no dialog fired: ${JSON.stringify(dialogs)}`);
    assert(problems.length === 0, `no page errors or CSP violations: ${problems.join('; ')}`);
  } catch (e) {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
    log(`daemon log (last lines):\n${tail(daemonLog)}`);
    throw e;
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  log('ok: overview, search, message page, retry, escaping, German per Accept-Language');
}

// The dashboard in a browser that asks for German (a context with the
// de-DE locale and Accept-Language: de): the strings come from po/de.po
// through GET /i18n.json, index.html's and app.js's alike.
async function german(base, loginUrl, id, problems) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
  try {
    const context = await browser.newContext({
      locale: 'de-DE',
      extraHTTPHeaders: { 'Accept-Language': 'de' },
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    page.on('pageerror', (e) => problems.push('page error (de): ' + e.message));

    const strings = await (await fetch(base + '/i18n.json', { headers: { 'Accept-Language': 'de-DE,de;q=0.9' } })).json();
    assert(strings.language === 'de' && strings.strings.Overview === 'Übersicht', `GET /i18n.json in German: ${strings.language}`);

    // before logging in: the login form
    await page.goto(base + '/');
    await page.locator('section.login h1').filter({ hasText: 'Anmelden' }).waitFor();
    assert((await page.locator('section.login button').textContent()) === 'Anmelden', 'the sign-in button is German');

    await page.goto(loginUrl);
    await page.locator('#overview-chart h2').filter({ hasText: 'Durchsatz und Rückstau' }).waitFor();
    assert((await page.evaluate(() => document.documentElement.lang)) === 'de', '<html lang="de">');
    const nav = await page.locator('#nav').innerText();
    for (const word of ['Übersicht', 'Nachrichten', 'Mailer', 'Benachrichtigungen', 'Audit-Log']) {
      assert(nav.includes(word), `the nav shows ${word}: ${nav}`);
    }
    assert((await page.locator('#view h1').textContent()) === 'Übersicht', 'the overview heading is German');
    await page.locator('#overview-lists h2').filter({ hasText: 'Je Liste' }).waitFor();
    // the states stay the CLI's words (queued, dead …); their sum is a German label
    await page.locator('#overview-counts li[data-state="total"] .count-label').filter({ hasText: /^gesamt$/ }).waitFor();
    let text = await page.locator('body').innerText();
    for (const english of ['Overview', 'Throughput and backlog', 'Per list', 'Notifications', 'Audit log', 'last hour']) {
      assert(!text.includes(english), `no English "${english}" on the German overview`);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'overview-de.png'), fullPage: true });

    await page.locator('#nav a[data-route="messages"]').click();
    await page.locator('#search').filter({ hasText: 'Suchen' }).waitFor();
    await page.locator('#result-count').filter({ hasText: /Nachrichten? angezeigt/ }).waitFor();
    const heads = await page.locator('#message-table thead').innerText();
    assert(heads.includes('Betreff') && heads.includes('Absender') && !heads.includes('Subject'), `German column heads: ${heads}`);

    await page.goto(base + '/#/message/' + encodeURIComponent(id));
    await page.locator('#retry').filter({ hasText: 'Erneut versuchen' }).waitFor();
    text = await page.locator('#view').innerText();
    for (const word of ['Aktionen', 'Empfänger (2)', 'Stufen', 'Kopfzeilen', 'Rohe Nachricht']) {
      assert(text.includes(word), `the message page shows "${word}"`);
    }
    for (const english of ['Actions', 'Recipients (', 'Raw message', 'Next attempt']) {
      assert(!text.includes(english), `no English "${english}" on the German message page`);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'message-de.png'), fullPage: true });
    await context.close();
  } finally {
    await browser.close().catch(() => {});
  }
}

async function cleanup() {
  for (const child of started.reverse()) await stop(child);
  if (tmp && !process.env.SC_TEST_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
}

const guard = setTimeout(() => {
  console.error(`FAIL: timed out during "${step}"`);
  for (const c of started) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
  process.exit(1);
}, 280000);

let status = 0;
try {
  await main();
} catch (e) {
  console.error(`FAIL during "${step}": ${e.stack || e}`);
  status = 1;
}
await cleanup();
clearTimeout(guard);
process.exit(status);
