// Browser tests of vexxy's web UI (the routes and selectors of the UI
// contract), driven in Debian's Chromium through playwright-core against a
// running `vexxy serve`. A plain sequential script: one line per step, and
// the first failure ends the run with a non-zero exit, a message naming
// what was expected, and a screenshot `failure.png`.
//
// crates/vexxy/tests/web_ui.rs prepares a server and runs this; by hand:
//   VEXXY_URL=http://127.0.0.1:8080 VEXXY_KEY=… VEXXY_KEY_B=… \
//   VEXXY_IMAGE_A=sha256:… VEXXY_IMAGE_B=sha256:… VEXXY_XSS_DIGEST=sha256:… \
//   VEXXY_SUBMIT_REF=oci:/path/oci:latest VEXXY_SUBMIT_REPORT=grype.json \
//   VEXXY_SCREENSHOTS=/tmp/shots node ui-tests/ui.test.mjs
// With VEXXY_UI_KEEP_GOING=1 a failed check the rest of the run does not
// build on (headers, CSP reports, axe, overflow at 390 px, markup the
// later steps do not use) is printed and the run goes on, failing at the
// end: every such finding of a run at once.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const required = [
  'VEXXY_URL',
  'VEXXY_KEY',
  'VEXXY_KEY_B',
  'VEXXY_IMAGE_A',
  'VEXXY_IMAGE_B',
  'VEXXY_SUBMIT_REF',
  'VEXXY_SUBMIT_REPORT',
  'VEXXY_XSS_DIGEST',
  'VEXXY_SCREENSHOTS',
];
const missing = required.filter((k) => !process.env[k]);
if (missing.length) {
  console.error(`ui.test: missing environment: ${missing.join(', ')}`);
  process.exit(2);
}
const env = process.env;
const BASE = env.VEXXY_URL.replace(/\/+$/, '');
const IMAGE_A = env.VEXXY_IMAGE_A;
const IMAGE_B = env.VEXXY_IMAGE_B;
const SHOTS = env.VEXXY_SCREENSHOTS;
const CHROMIUM = env.VEXXY_CHROMIUM || '/usr/bin/chromium';
const JOB_TIMEOUT_MS = 240_000;
const WIDE = { width: 1280, height: 900 };
const NARROW = { width: 390, height: 844 };
mkdirSync(SHOTS, { recursive: true });

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// ------------------------------------------------------------ reporting

const KEEP_GOING = ['1', 'true'].includes(env.VEXXY_UI_KEEP_GOING || '');
const deferred = [];
let current = 'start';
let activePage = null;
const t0 = Date.now();

let notes = [];

async function step(name, fn) {
  current = name;
  notes = [];
  const began = Date.now();
  await fn();
  console.log(`ok   ${name} (${((Date.now() - began) / 1000).toFixed(1)} s)`);
  flushNotes();
}

/// A detail of the running step, printed under its line.
function note(text) {
  notes.push(text);
}

function flushNotes() {
  for (const n of notes.splice(0)) console.log(`     ${n}`);
}

// ------------------------------------------------------------ the API

async function api(pathAndQuery, key = env.VEXXY_KEY) {
  const res = await fetch(BASE + pathAndQuery, {
    headers: { authorization: `Bearer ${key}` },
  });
  const body = await res.text();
  assert.equal(res.status, 200, `API GET ${pathAndQuery}: HTTP ${res.status} ${body.slice(0, 300)}`);
  return { json: JSON.parse(body), headers: res.headers };
}

// ------------------------------------------------------------ pages

/// A page that records, for every document it loads, the response (for
/// the header checks) and every CSP violation or script error it reports.
async function newPage(context, label) {
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.setDefaultNavigationTimeout(30_000);
  page.problems = [];
  page.documents = [];
  page.label = label;
  page.on('response', (res) => {
    const req = res.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      page.documents.push(res);
    }
  });
  page.on('response', (res) => {
    // a stylesheet, script or image the page asked for and did not get
    // (Chromium's own /favicon.ico request aside: the UI has no favicon)
    const req = res.request();
    if (!req.isNavigationRequest() && res.status() >= 400 && new URL(res.url()).pathname !== '/favicon.ico') {
      page.problems.push(`${req.resourceType()} ${res.url()}: HTTP ${res.status()}`);
    }
  });
  page.on('console', (msg) => {
    // "Failed to load resource" is reported above with its URL
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
      page.problems.push(`console error: ${msg.text()}`);
    }
  });
  page.on('pageerror', (err) => page.problems.push(`script error: ${err.message}`));
  activePage = page;
  return page;
}

/// The headers every page response carries (contract: "Every page
/// response has Content-Security-Policy …").
function checkDocuments(page) {
  for (const res of page.documents.splice(0)) {
    if (res.status() >= 300 && res.status() < 400) continue; // a redirect has no page
    const type = res.headers()['content-type'] || '';
    if (!type.startsWith('text/html')) continue;
    const csp = res.headers()['content-security-policy'];
    assert.ok(csp, `${res.url()} (HTTP ${res.status()}): no Content-Security-Policy header`);
    const scriptSrc = csp
      .split(';')
      .map((d) => d.trim())
      .find((d) => d.startsWith('script-src'));
    assert.ok(
      scriptSrc && scriptSrc.includes("'self'"),
      `${res.url()}: the CSP has no script-src 'self': ${csp}`,
    );
    assert.ok(
      !/'unsafe-inline'|'unsafe-eval'/.test(scriptSrc),
      `${res.url()}: the CSP's script-src allows inline or eval: ${csp}`,
    );
  }
}

/// What the page reported since the last check: a blocked inline script
/// or style (CSP) or a script error is a broken page.
function checkProblems(page) {
  const problems = page.problems.splice(0);
  assert.deepEqual(problems, [], `${page.url()}: the page reported problems`);
}

/// axe-core on the page as it is: a serious or critical violation fails.
///
/// How axe gets in: `page.addScriptTag({path})` inserts an inline
/// <script> with the file's text, which the UI's CSP (script-src 'self',
/// no 'unsafe-inline') blocks, and `bypassCSP` would change the very pages
/// under test. `page.evaluate(source)` runs the source through the
/// DevTools protocol (Runtime.evaluate) in the page's main world; CSP
/// governs what the page loads and runs, not what the debugger evaluates,
/// so axe defines `window.axe` under the real policy. Nothing is added to
/// the DOM and no CSP violation is reported.
async function axeCheck(page) {
  const loaded = await page.evaluate(() => typeof window.axe === 'object');
  if (!loaded) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => `${n.target.join(' ')} ${n.html.replace(/\s+/g, ' ').slice(0, 160)}`),
    }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of violations.filter((v) => !bad.includes(v))) {
    note(`axe (${v.impact}, tolerated) ${v.id}: ${v.help} [${v.targets.slice(0, 3).join(', ')}]`);
  }
  assert.deepEqual(
    bad.map((v) => `${v.impact} ${v.id}: ${v.help} — at ${v.targets.slice(0, 3).join(' | ')}`),
    [],
    `${page.url()}: axe found serious or critical accessibility violations`,
  );
}

/// A page check: fatal, or with KEEP_GOING printed and counted.
async function check(fn) {
  try {
    await fn();
  } catch (e) {
    if (!KEEP_GOING || !(e instanceof assert.AssertionError)) throw e;
    console.log(`FAIL ${current} (going on): ${e.message}`);
    deferred.push(`${current}: ${e.message.split('\n')[0]}`);
  }
}

/// The checks of every visited page: headers, reported problems, axe.
async function checkPage(page) {
  await check(() => checkDocuments(page));
  await check(() => axeCheck(page));
  await check(() => checkProblems(page));
}

/// `<name>-1280.png` and `<name>-390.png` (full page); at 390 px wide the
/// page must not scroll sideways.
async function screenshots(page, name) {
  await page.setViewportSize(WIDE);
  await page.screenshot({ path: path.join(SHOTS, `${name}-1280.png`), fullPage: true });
  await page.setViewportSize(NARROW);
  await page.waitForTimeout(50); // a layout pass at the new width
  const overflow = await page.evaluate(() => {
    const width = window.innerWidth;
    const scroll = document.documentElement.scrollWidth;
    if (scroll <= width + 1) return null;
    // where to look: the outermost elements that stick out and are not
    // clipped by a scrolling box that fits (an absolutely positioned one
    // is clipped only by boxes around its containing block)
    const clipped = (el) => {
      const pos = getComputedStyle(el).position;
      if (pos === 'fixed') return false;
      let inBlock = pos !== 'absolute';
      for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
        const cs = getComputedStyle(a);
        if (!inBlock && cs.position !== 'static') inBlock = true;
        if (inBlock && cs.overflowX !== 'visible' && a.getBoundingClientRect().right <= width + 1) return true;
      }
      return false;
    };
    const wide = [];
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.right > width + 1 && !wide.some((w) => w.contains(el)) && !clipped(el)) wide.push(el);
    }
    const describe = (el) =>
      el.tagName.toLowerCase() +
      (el.id ? `#${el.id}` : '') +
      (typeof el.className === 'string' && el.className
        ? `.${el.className.trim().split(/\s+/).join('.')}`
        : '') +
      ` (right edge ${Math.round(el.getBoundingClientRect().right)} px)`;
    return { width, scroll, culprits: wide.slice(0, 6).map(describe) };
  });
  await page.screenshot({ path: path.join(SHOTS, `${name}-390.png`), fullPage: true });
  await page.setViewportSize(WIDE);
  await check(() => {
    if (overflow) {
      assert.fail(
        `${page.url()}: at 390 px the page is ${overflow.scroll} px wide (horizontal overflow); ` +
          `widest: ${overflow.culprits.join(', ')}`,
      );
    }
  });
}

/// Waits for the navigation a click starts and returns its response.
async function clickAndWait(page, selector, urlTest) {
  const [res] = await Promise.all([
    page.waitForNavigation({ url: urlTest }),
    page.locator(selector).first().click(),
  ]);
  return res;
}

async function go(page, pathAndQuery) {
  const res = await page.goto(BASE + pathAndQuery);
  assert.ok(res, `GET ${pathAndQuery}: no response`);
  return res;
}

function pathOf(page) {
  return new URL(page.url()).pathname;
}

async function signIn(page, key) {
  await page.locator('#login #api-key').fill(key);
  return clickAndWait(page, '#login [type=submit]', (u) => u.pathname !== '/login');
}

async function metrics(page, within = '') {
  return page.$$eval(`${within} [data-metric]`.trim(), (els) =>
    els.map((e) => [e.getAttribute('data-metric'), e.getAttribute('data-value')]),
  );
}

function sameNumber(shown, want, what) {
  if (want === null || want === undefined) {
    assert.ok(
      shown === null || ['', 'null', 'none', '-'].includes(shown),
      `${what}: the API has no value but the page says data-value=${JSON.stringify(shown)}`,
    );
    return;
  }
  assert.ok(shown !== null, `${what}: no data-value attribute (the API says ${want})`);
  assert.ok(
    Number(shown) === Number(want),
    `${what}: the page says data-value=${JSON.stringify(shown)}, the API says ${JSON.stringify(want)}`,
  );
}

// ------------------------------------------------------------ the run

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
try {
  await run();
  if (deferred.length) {
    console.error(`FAIL ${deferred.length} page check(s) failed:`);
    for (const d of deferred) console.error(`     ${d}`);
    process.exitCode = 1;
  } else {
    console.log(`ui.test: all steps passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
} catch (e) {
  flushNotes();
  console.error(`FAIL ${current}: ${e.message}`);
  if (activePage && !activePage.isClosed()) {
    console.error(`     at ${activePage.url()}`);
    try {
      await activePage.screenshot({ path: path.join(SHOTS, 'failure.png'), fullPage: true });
      console.error(`     screenshot: ${path.join(SHOTS, 'failure.png')}`);
      const text = await activePage.evaluate(() =>
        (document.querySelector('main') || document.body || document.documentElement).innerText,
      );
      console.error(`     page text: ${text.replace(/\s+/g, ' ').slice(0, 600)}`);
    } catch {
      // the page is gone: the message says enough
    }
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function run() {
  const ctxA = await browser.newContext({ viewport: WIDE });
  const page = await newPage(ctxA, 'org A');
  let statementPageId = null;
  let override = null; // { id, was, to }

  await step('login page: bad key refused with .error, 401', async () => {
    const res = await go(page, '/login');
    assert.equal(res.status(), 200, `GET /login: HTTP ${res.status()}`);
    await checkPage(page);
    await screenshots(page, 'login');
    await page.locator('#login #api-key').fill('vx_not_a_key');
    const bad = await clickAndWait(page, '#login [type=submit]', () => true);
    assert.equal(bad.status(), 401, `a bad key: HTTP ${bad.status()}, expected 401`);
    await page.locator('.error').first().waitFor({ state: 'visible' });
    assert.equal(await page.locator('.error').first().getAttribute('role'), 'alert', '.error has no role=alert');
    checkDocuments(page);
    page.problems.splice(0);
  });

  await step('sign in with the form, land on the dashboard', async () => {
    await go(page, '/login');
    const res = await signIn(page, env.VEXXY_KEY);
    assert.equal(pathOf(page), '/', `signed in, landed on ${page.url()}`);
    assert.equal(res.status(), 200);
    const org = (await page.locator('#org-name').innerText()).trim();
    assert.ok(org.length > 0, '#org-name is empty');
    for (const sel of [
      'a.skip-link[href="#main"]',
      'nav[aria-label="Main"] a[href="/"]',
      'nav[aria-label="Main"] a[href="/images"]',
      'nav[aria-label="Main"] a[href="/review"]',
      'nav[aria-label="Main"] a[href="/submit"]',
      'nav[aria-label="Main"] a[href="/compare"]',
      'form#sign-out[method=post][action="/logout"] button[type=submit]',
      'main#main',
    ]) {
      assert.equal(await page.locator(sel).count(), 1, `the dashboard has no ${sel}`);
    }
    note(`organisation: ${org}`);
  });

  await step('dashboard numbers equal GET /api/v1/dashboard', async () => {
    const { json: dash } = await api('/api/v1/dashboard');
    const shown = await metrics(page);
    const names = shown.map(([n]) => n);
    for (const want of [
      'images_seen',
      'images_analysed',
      'images_with_vex',
      'vex_coverage',
      'findings',
      'noise_reduction',
      'backlog',
      'decisions',
    ]) {
      assert.ok(names.includes(want), `no [data-metric="${want}"] on the dashboard (has: ${names.join(', ')})`);
    }
    for (const [name, value] of shown) {
      assert.ok(name in dash, `[data-metric="${name}"] is not a field of /api/v1/dashboard`);
      if (name.endsWith('_age_secs') && dash[name] !== null) {
        // an age moves on between the page and the API call
        assert.ok(Math.abs(Number(value) - dash[name]) <= 5, `${name}: page ${value}, API ${dash[name]}`);
      } else {
        sameNumber(value, dash[name], `[data-metric="${name}"]`);
      }
    }
    const counts = await page.$$eval('[data-status-count]', (els) =>
      els.map((e) => [e.getAttribute('data-status-count'), e.getAttribute('data-value')]),
    );
    const shownStatus = Object.fromEntries(counts);
    for (const [status, n] of Object.entries(dash.by_status)) {
      assert.ok(status in shownStatus, `no [data-status-count="${status}"] (the API counts ${n})`);
    }
    for (const [status, value] of counts) {
      sameNumber(value, dash.by_status[status] ?? 0, `[data-status-count="${status}"]`);
    }
    const chart = page.locator('svg#weekly-chart[role=img]');
    assert.equal(await chart.count(), 1, 'no svg#weekly-chart[role=img]');
    assert.ok((await chart.locator('title').count()) >= 1, '#weekly-chart has no <title>');
    note(`${shown.length} metrics, ${counts.length} status counts`);
    await checkPage(page);
    await screenshots(page, 'dashboard');
  });

  await step('images: lists both, search narrows, open image A', async () => {
    await clickAndWait(page, 'nav[aria-label="Main"] a[href="/images"]', (u) => u.pathname === '/images');
    for (const d of [IMAGE_A, IMAGE_B]) {
      const row = page.locator(`#images tr[data-digest="${d}"]`);
      assert.equal(await row.count(), 1, `#images has no row tr[data-digest="${d}"]`);
      assert.equal(await row.locator(`a[href="/images/${d}"]`).count(), 1, `the row of ${d} has no a[href="/images/${d}"]`);
    }
    assert.ok((await page.locator('#compliance tr[data-repository]').count()) >= 1, 'no #compliance tr[data-repository]');
    await checkPage(page);
    await screenshots(page, 'images');
    // the search matches a substring of the digest: image A's alone
    const needle = IMAGE_A.slice('sha256:'.length, 'sha256:'.length + 16);
    await page.locator('#image-search #search').fill(needle);
    await Promise.all([
      page.waitForNavigation({ url: (u) => u.searchParams.get('search') === needle }),
      page.locator('#image-search #search').press('Enter'),
    ]);
    const digests = await page.$$eval('#images tr[data-digest]', (rows) => rows.map((r) => r.dataset.digest));
    assert.deepEqual(digests, [IMAGE_A], `searching ${needle}: the rows are not image A's alone`);
    checkDocuments(page);
    await clickAndWait(page, `#images a[href="/images/${IMAGE_A}"]`, (u) => u.pathname === `/images/${IMAGE_A}`);
  });

  await step('image A: statements; the first one\'s evidence expands', async () => {
    assert.ok((await page.locator('h1').first().innerText()).trim(), 'the image page has an empty <h1>');
    const n = await page.locator('article.statement').count();
    assert.ok(n > 0, 'image A shows no article.statement');
    const first = page.locator('article.statement').first();
    for (const attr of ['id', 'data-statement-id', 'data-status', 'data-vulnerability', 'data-package']) {
      assert.ok(await first.getAttribute(attr), `the first article.statement has no ${attr}`);
    }
    for (const sel of ['#profile', '#sbom', '#downloads', '#history']) {
      assert.equal(await page.locator(sel).count(), 1, `the image page has no ${sel}`);
    }
    assert.ok((await page.locator('#downloads a[download]').count()) >= 1, 'no #downloads a[download]');
    assert.ok((await page.locator('#history tr[data-version]').count()) >= 1, 'no #history tr[data-version]');
    const details = first.locator('details.evidence').first();
    assert.equal(await details.count(), 1, 'the first statement has no details.evidence');
    assert.equal(await details.evaluate((d) => d.open), false, 'the evidence is open before a click');
    const summaryText = await details.locator('summary').innerText();
    await details.locator('summary').click();
    assert.equal(await details.evaluate((d) => d.open), true, 'clicking the summary did not open the evidence');
    const shown = await details.innerText();
    assert.ok(
      shown.trim().length > summaryText.trim().length,
      'the opened evidence shows nothing beyond its summary',
    );
    note(`${n} statements; evidence of ${await first.getAttribute('data-vulnerability')} opened`);
    await checkPage(page);
    await screenshots(page, 'image');
  });

  await step('XSS: a description with markup is shown as text and never runs', async () => {
    const res = await go(page, `/images/${env.VEXXY_XSS_DIGEST}`);
    assert.equal(res.status(), 200, `GET /images/${env.VEXXY_XSS_DIGEST}: HTTP ${res.status()}`);
    const marker = '<script>window.__xss=1</script>';
    // the literal markup is text in the DOM (escaped by the template); the
    // evidence may be closed, so textContent rather than what is shown
    const ids = await page.$$eval(
      'article.statement',
      (arts, m) => arts.filter((a) => a.textContent.includes(m)).map((a) => a.getAttribute('data-statement-id')),
      marker,
    );
    assert.ok(
      ids.length > 0,
      'no article.statement has the text <script>window.__xss=1</script> (not shown, or parsed as HTML)',
    );
    for (const id of ids) {
      const art = page.locator(`#st-${id}`);
      const details = art.locator('details.evidence').first();
      if (!(await details.evaluate((d) => d.open))) await details.locator('summary').click();
      const text = await art.innerText();
      assert.ok(text.includes(marker), `#st-${id}: the expanded statement does not show ${marker} as text`);
    }
    const state = await page.evaluate(() => ({
      xss: typeof window.__xss,
      img: document.querySelectorAll('img[src="x"], img[onerror]').length,
      scripts: [...document.scripts].filter((s) => s.textContent.includes('__xss')).length,
    }));
    assert.deepEqual(state, { xss: 'undefined', img: 0, scripts: 0 }, 'the description\'s markup became live');
    // and on the statement's own page
    const id = ids[0];
    await clickAndWait(page, `#st-${id} a.decide`, (u) => u.pathname === `/statements/${id}`);
    assert.ok((await page.locator('main').innerText()).includes(marker), `/statements/${id} does not show ${marker} as text`);
    const again = await page.evaluate(() => ({
      xss: typeof window.__xss,
      img: document.querySelectorAll('img[src="x"], img[onerror]').length,
    }));
    assert.deepEqual(again, { xss: 'undefined', img: 0 }, `/statements/${id}: the markup became live`);
    note(`${ids.length} statement(s) carry the markup`);
    checkDocuments(page);
    page.problems.splice(0);
  });

  await step('override: an empty reason is refused naming reason', async () => {
    await go(page, `/images/${IMAGE_A}`);
    const pick = page
      .locator('article.statement[data-status="affected"], article.statement[data-status="not_affected"]')
      .filter({ has: page.locator('a.decide') });
    assert.ok((await pick.count()) > 0, 'image A has no affected or not_affected statement with a.decide');
    // an affected statement overridden to not_affected needs only a
    // justification (the form has no action statement an affected one needs)
    const affected = page.locator('article.statement[data-status="affected"]');
    const target = (await affected.count()) > 0 ? affected.first() : pick.first();
    statementPageId = await target.getAttribute('data-statement-id');
    const was = await target.getAttribute('data-status');
    override = {
      id: statementPageId,
      was,
      to: was === 'affected' ? 'not_affected' : 'under_investigation',
    };
    await clickAndWait(page, `#st-${statementPageId} a.decide`, (u) => u.pathname === `/statements/${statementPageId}`);
    for (const sel of [
      `form#decision[method=post][action="/statements/${statementPageId}/decide"]`,
      '#decision select#action',
      '#decision select#status',
      '#decision select#justification',
      '#decision textarea#reason',
      '#decision input[type=hidden][name=expected_version]',
      '#decision input[type=hidden][name=_csrf]',
    ]) {
      assert.equal(await page.locator(sel).count(), 1, `the statement page has no ${sel}`);
    }
    await checkPage(page);
    await screenshots(page, 'statement');
    await fillDecision(page, override, '');
    // the browser's own validation (a `required` reason) would stop the
    // request: this checks the server's answer
    await page.locator('#decision').evaluate((f) => {
      f.noValidate = true;
    });
    await page.locator('#decision [type=submit]').click();
    const error = page.locator('.error').first();
    await error.waitFor({ state: 'visible' });
    const text = await error.innerText();
    assert.match(text, /reason/i, `the error does not name the reason: ${JSON.stringify(text)}`);
    assert.equal(await error.getAttribute('role'), 'alert', '.error has no role=alert');
    const { json: st } = await api(`/api/v1/statements/${statementPageId}`);
    assert.equal(st.status, was, 'a refused decision changed the statement');
    checkDocuments(page);
    page.problems.splice(0);
  });

  await step('override: recorded, new VEX version on the image page and in the API', async () => {
    const { id, was, to } = override;
    await go(page, `/images/${IMAGE_A}`);
    const before = Number(await page.locator('[data-metric="vex_version"]').first().getAttribute('data-value'));
    assert.ok(Number.isInteger(before) && before >= 1, `[data-metric="vex_version"] is ${before}`);
    await go(page, `/statements/${id}`);
    await fillDecision(page, override, 'browser test: the vulnerable code path is not loaded by this image');
    const res = await clickAndWait(
      page,
      '#decision [type=submit]',
      (u) => u.pathname === `/images/${IMAGE_A}`,
    );
    assert.equal(res.status(), 200);
    assert.equal(new URL(page.url()).searchParams.get('decided'), id, `landed on ${page.url()}, expected ?decided=${id}`);
    const flash = page.locator('#flash[data-vex-version]');
    assert.equal(await flash.count(), 1, 'no #flash[data-vex-version] after the decision');
    assert.equal(await flash.getAttribute('role'), 'status', '#flash has no role=status');
    const after = Number(await flash.getAttribute('data-vex-version'));
    assert.ok(after > before, `#flash says VEX version ${after}, not above ${before}`);
    const { headers } = await api(`/api/v1/images/${IMAGE_A}/vex`);
    assert.equal(Number(headers.get('x-vex-version')), after, 'the API\'s x-vex-version differs from #flash');
    const { json: st } = await api(`/api/v1/statements/${id}`);
    assert.equal(st.status, to, `the API says statement ${id} is ${st.status}`);
    if (to === 'not_affected') {
      assert.equal(st.justification, 'vulnerable_code_not_in_execute_path');
    }
    const row = page.locator(`#st-${id}`);
    assert.equal(await row.getAttribute('data-status'), to, `#st-${id} still shows ${await row.getAttribute('data-status')}`);
    note(`statement ${id}: ${was} -> ${to}; VEX version ${before} -> ${after}`);
    await checkPage(page);
  });

  await step('review queue: rows as in the API, j moves focus', async () => {
    await clickAndWait(page, 'nav[aria-label="Main"] a[href="/review"]', (u) => u.pathname === '/review');
    const { json: q } = await api('/api/v1/review/queue?limit=1000');
    const rows = await page.locator('#queue tr[data-statement-id]').count();
    const table = page.locator('table#queue');
    const total = await table.getAttribute('data-total');
    const limit = await table.getAttribute('data-limit');
    if (total !== null) {
      assert.equal(Number(total), q.total, `table#queue[data-total=${total}], the API's queue total is ${q.total}`);
    }
    // all of it, or a full first page when the UI pages (data-limit)
    const want = limit !== null ? Math.min(q.total, Number(limit)) : q.total;
    assert.equal(rows, want, `#queue has ${rows} rows, the API's queue holds ${q.total}` + (limit ? ` (page size ${limit})` : ''));
    for (const sel of ['form#filters', 'form#bulk', 'select#bulk-action', 'textarea#bulk-reason']) {
      assert.equal(await page.locator(sel).count(), 1, `the review page has no ${sel}`);
    }
    if (rows > 0) {
      const id = await page.locator('#queue tr[data-statement-id]').first().getAttribute('data-statement-id');
      const box = page.locator(`#queue tr[data-statement-id="${id}"] input[name=ids]`);
      const value = (await box.count()) === 1 ? await box.getAttribute('value') : null;
      // `id@version`: a bulk decision is refused when a row changed since it was shown
      await check(() => assert.ok(value && value.startsWith(`${id}@`), `the first row's input[name=ids] has value ${value}, not ${id}@<version>`));
    }
    await checkPage(page);
    await screenshots(page, 'review');
    if (rows > 0) {
      await page.locator('body').evaluate(() => document.activeElement && document.activeElement.blur());
      const focusedRow = () =>
        page.evaluate(() => {
          const tr = document.activeElement && document.activeElement.closest('tr[data-statement-id]');
          return tr ? tr.getAttribute('data-statement-id') : null;
        });
      await page.keyboard.press('j');
      const first = await focusedRow();
      assert.ok(first, 'after j the focus is not in a tr[data-statement-id] of #queue');
      if (rows > 1) {
        await page.keyboard.press('j');
        const second = await focusedRow();
        assert.ok(second && second !== first, 'a second j did not move the focus to another row');
        await page.keyboard.press('k');
        assert.equal(await focusedRow(), first, 'k did not move the focus back');
      }
    }
    note(`${rows} rows (API total ${q.total})`);
  });

  await step('submit an image with a report from the form', async () => {
    await clickAndWait(page, 'nav[aria-label="Main"] a[href="/submit"]', (u) => u.pathname === '/submit');
    for (const sel of [
      'form#submit[method=post][action="/submit"][enctype="multipart/form-data"]',
      '#submit #image-ref[name=image_ref]',
      '#submit #report[type=file][name=report]',
      '#submit select#duration[name=duration_secs]',
      '#submit #option-sign[type=checkbox][name=sign]',
    ]) {
      assert.equal(await page.locator(sel).count(), 1, `the submit page has no ${sel}`);
    }
    await checkPage(page);
    await screenshots(page, 'submit');
    await page.locator('#image-ref').fill(env.VEXXY_SUBMIT_REF);
    await page.locator('#report').setInputFiles(env.VEXXY_SUBMIT_REPORT);
    const durations = await page.$$eval('#duration option', (os) => os.map((o) => o.value));
    const shortest = durations
      .filter((v) => v !== '' && Number.isFinite(Number(v)))
      .sort((a, b) => Number(a) - Number(b))[0];
    assert.ok(shortest, `#duration has no numeric option: ${durations.join(', ')}`);
    await page.locator('#duration').selectOption(shortest);
    const res = await clickAndWait(page, '#submit [type=submit]', (u) => u.pathname !== '/submit');
    assert.match(pathOf(page), /^\/jobs\/[^/]+$/, `the submission landed on ${page.url()} (HTTP ${res.status()})`);
    note(`${env.VEXXY_SUBMIT_REF} for ${shortest} s`);
  });

  await step('job page updates itself until complete', async () => {
    const jobPath = pathOf(page);
    for (const sel of ['#job-status[data-status]', 'progress#job-progress', '#job-phase']) {
      assert.equal(await page.locator(sel).count(), 1, `the job page has no ${sel}`);
    }
    // a marker in this document: gone if anything reloads the page
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
    const seen = [];
    const record = async () => {
      const s = await page.locator('#job-status').getAttribute('data-status');
      if (seen[seen.length - 1] !== s) seen.push(s);
      return s;
    };
    await record();
    await checkPage(page);
    await screenshots(page, 'job');
    const began = Date.now();
    let status = await record();
    while (!['complete', 'failed', 'cancelled'].includes(status)) {
      assert.ok(Date.now() - began < JOB_TIMEOUT_MS, `the job is still ${status} after ${JOB_TIMEOUT_MS / 1000} s (seen: ${seen.join(' -> ')})`);
      await page.waitForTimeout(100);
      status = await record();
    }
    note(`statuses seen: ${seen.join(' -> ')}`);
    assert.equal(status, 'complete', `the job ended ${status}: ${await page.locator('main').innerText()}`);
    assert.equal(await page.evaluate(() => window.__sameDocument === true), true, 'the job page reloaded itself instead of updating');
    await screenshots(page, 'job-done');
    assert.equal(pathOf(page), jobPath);
    assert.ok(seen.length > 1, `the page never showed the job before it was complete (seen: ${seen.join(' -> ')})`);
    const link = page.locator('a#job-image');
    await link.waitFor({ state: 'visible' });
    const href = await link.getAttribute('href');
    assert.match(href, /^\/images\/sha256:[0-9a-f]{64}$/, `a#job-image links to ${href}`);
    const res = await clickAndWait(page, 'a#job-image', (u) => u.pathname === href);
    assert.equal(res.status(), 200, `${href}: HTTP ${res.status()}`);
    assert.ok((await page.locator('h1').first().innerText()).trim(), `${href} has an empty <h1>`);
    await checkPage(page);
  });

  await step('compare image A with image B: counts as in the API', async () => {
    await clickAndWait(page, 'nav[aria-label="Main"] a[href="/compare"]', (u) => u.pathname === '/compare');
    checkDocuments(page);
    await page.locator('#compare select#a').selectOption(IMAGE_A);
    await page.locator('#compare select#b').selectOption(IMAGE_B);
    await clickAndWait(page, '#compare [type=submit]', (u) => u.pathname === '/compare' && u.searchParams.has('a'));
    const shown = Object.fromEntries(await metrics(page, '#diff'));
    const { json: diff } = await api(`/api/v1/compare?a=${encodeURIComponent(IMAGE_A)}&b=${encodeURIComponent(IMAGE_B)}`);
    // VerdictDiff has the lists added, removed, changed; unchanged is the
    // keys both sides share with the same verdict: each side's key count
    // (one per vulnerability × package, crates/vexxy-report/src/diff.rs)
    // less what differs.
    const keysA = vexKeys((await api(`/api/v1/images/${IMAGE_A}/vex`)).json);
    const keysB = vexKeys((await api(`/api/v1/images/${IMAGE_B}/vex`)).json);
    const unchangedA = keysA - diff.removed.length - diff.changed.length;
    const unchangedB = keysB - diff.added.length - diff.changed.length;
    assert.equal(unchangedA, unchangedB, `the test's own key count is off: ${keysA} and ${keysB} keys`);
    const want = {
      added: diff.added.length,
      removed: diff.removed.length,
      changed: diff.changed.length,
      unchanged: unchangedA,
    };
    for (const [name, n] of Object.entries(want)) {
      await check(() => {
        assert.ok(name in shown, `#diff has no [data-metric="${name}"]`);
        sameNumber(shown[name], n, `#diff [data-metric="${name}"]`);
      });
    }
    note(`added ${want.added}, removed ${want.removed}, changed ${want.changed}, unchanged ${want.unchanged}`);
    await checkPage(page);
    await screenshots(page, 'compare');
  });

  await step('isolation: org B is sent to sign in, then gets 404 for image A', async () => {
    const ctxB = await browser.newContext({ viewport: WIDE });
    const pageB = await newPage(ctxB, 'org B');
    await go(pageB, `/images/${IMAGE_A}`);
    const login = new URL(pageB.url());
    assert.equal(login.pathname, '/login', `signed out, /images/… went to ${pageB.url()}`);
    assert.equal(login.searchParams.get('next'), `/images/${IMAGE_A}`, `the login page's next is ${login.searchParams.get('next')}`);
    const res = await signIn(pageB, env.VEXXY_KEY_B);
    assert.equal(pathOf(pageB), `/images/${IMAGE_A}`, `org B signed in, landed on ${pageB.url()}`);
    assert.equal(res.status(), 404, `org B sees image A: HTTP ${res.status()}`);
    const st = await go(pageB, `/statements/${statementPageId}`);
    assert.equal(st.status(), 404, `org B sees a statement of org A: HTTP ${st.status()}`);
    checkDocuments(pageB);
    pageB.problems.splice(0);
    await ctxB.close();
    activePage = page;
  });

  await step('sign out: the session ends, its cookie is refused', async () => {
    const cookies = await ctxA.cookies(BASE);
    const session = cookies.find((c) => c.name === 'vexxy_session');
    assert.ok(session, `no vexxy_session cookie (have: ${cookies.map((c) => c.name).join(', ')})`);
    assert.equal(session.httpOnly, true, 'vexxy_session is not HttpOnly');
    assert.equal(session.sameSite, 'Strict', `vexxy_session is SameSite=${session.sameSite}`);
    await go(page, '/');
    await clickAndWait(page, '#sign-out [type=submit]', (u) => u.pathname === '/login');
    checkDocuments(page);
    await go(page, '/');
    assert.equal(pathOf(page), '/login', `after signing out, / shows ${page.url()}`);
    const replay = await browser.newContext({ viewport: WIDE });
    await replay.addCookies([session]);
    const pageR = await newPage(replay, 'replayed cookie');
    await go(pageR, '/');
    assert.equal(pathOf(pageR), '/login', `the signed-out session's cookie still opens ${pageR.url()}`);
    checkDocuments(pageR);
    await replay.close();
    activePage = page;
  });

  await ctxA.close();
}

/// Fills the decision form: override to `to` (with the justification a
/// not_affected verdict needs, none otherwise) and `reason`.
async function fillDecision(page, { to }, reason) {
  await page.locator('#decision select#action').selectOption('override');
  await page.locator('#decision select#status').selectOption(to);
  const justification = page.locator('#decision select#justification');
  if (to === 'not_affected') {
    await justification.selectOption('vulnerable_code_not_in_execute_path');
  } else if ((await justification.locator('option[value=""]').count()) > 0) {
    await justification.selectOption('');
  }
  await page.locator('#decision textarea#reason').fill(reason);
}

/// How many (vulnerability, package) keys an OpenVEX document has, as
/// vexxy-report's DiffSide counts them: one per subcomponent purl without
/// version, qualifiers or subpath, or one for the image when a statement
/// names no subcomponent.
function vexKeys(doc) {
  const keys = new Set();
  const bare = (purl) => {
    let p = purl.split('#')[0].split('?')[0];
    const at = p.lastIndexOf('@');
    if (at > p.lastIndexOf('/')) p = p.slice(0, at);
    return p;
  };
  for (const s of doc.statements || []) {
    const vuln = s.vulnerability && (s.vulnerability.name || s.vulnerability['@id']);
    for (const product of s.products || []) {
      const subs = product.subcomponents || [];
      if (subs.length === 0) keys.add(`${vuln}|image`);
      for (const sub of subs) keys.add(`${vuln}|${bare(sub['@id'])}`);
    }
  }
  return keys.size;
}
