// The web demo in a real browser (Debian's Chromium, headless): load the page and the default
// model, rank the example documents for a query, compare with the Node package's ranking
// (the same engine, checked against PyLate by parity.test.mjs), save a screenshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, loadPackage, modelDir, readFolder } from './helpers.mjs';
import { launchChromium, newPage } from './browser.mjs';
import { startServer } from '../../web-demo/serve.mjs';

const TOLERANCE = 1e-5;
const QUERY = 'how do bees make honey?';
const SCREENSHOT = join(ROOT, 'target', 'artifacts', 'web-demo.png');

const lines = (file) =>
  readFileSync(join(ROOT, 'examples', 'data', file), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);

function expectedRanking() {
  const pkg = globalThis.latebirdPkg;
  const model = pkg.ColBERT.fromFiles(readFolder(modelDir('minilm-colbert')));
  const documents = model.encode(lines('documents.txt'), false);
  const [query] = model.encode([QUERY], true);
  const ranking = pkg.topK(query, documents, documents.length);
  model.free();
  return ranking;
}

test('web demo ranks the example documents like the engine, on threads in headless Chromium', { timeout: 240_000 }, async (t) => {
  globalThis.latebirdPkg = await loadPackage();
  const expected = expectedRanking();
  assert.equal(expected.length, lines('documents.txt').length);

  const server = await startServer({ port: 0 });
  t.after(() => server.close());
  const chrome = await launchChromium();
  t.after(() => chrome.close());
  console.log(`Chromium ${chrome.version} (pid ${chrome.pid}) on ${server.url}`);

  const { page, problems } = await newPage(chrome);
  await page.setViewportSize({ width: 1280, height: 900 });

  const t0 = Date.now();
  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="true"]');
  const engine = await page.textContent('#engine');
  assert.match(engine, /SIMD/, engine);
  assert.match(engine, /; cross-origin isolated/, `COOP/COEP headers: ${engine}`);
  // Cross-origin isolated, the demo runs a threaded build on every core.
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  if (cores > 1) {
    assert.match(await page.getAttribute('body', 'data-build'), /^threads/, engine);
    assert.equal(await page.getAttribute('body', 'data-threads'), String(Math.min(cores, 16)), engine);
  }
  // The model buttons: the test model and its smaller copies, with their sizes.
  const buttons = await page.$$eval('#model-buttons button', (b) => b.map((x) => x.textContent));
  assert.match(buttons[0], /^Load minilm-colbert \(float32, \d+\.\d MB\)$/, buttons.join(' | '));
  assert.ok(buttons.some((b) => /minilm-colbert-float16 \(float16, /.test(b)), buttons.join(' | '));

  await page.click('#load-default');
  await page.waitForSelector('#model-status.ok');
  const modelStatus = await page.textContent('#model-status');
  assert.match(modelStatus, /Loaded minilm-colbert/);

  await page.click('#load-examples');
  await page.waitForFunction(() => document.getElementById('documents').value.length > 0);
  await page.fill('#queries', QUERY);
  await page.fill('#top-k', String(expected.length));
  await page.click('#rank');
  await page.waitForSelector('#rank-status.ok');
  await page.waitForSelector('#explain-section:not([hidden]) .heatmap table');

  const got = await page.$$eval('.query-block[data-query="0"] li', (items) =>
    items.map((li) => ({ id: Number(li.dataset.doc), score: Number(li.dataset.score) })),
  );
  assert.deepEqual(
    got.map((r) => r.id),
    expected.map((r) => r.id),
    'ranking differs from the engine run in Node',
  );
  got.forEach((r, i) => assert.ok(Math.abs(r.score - expected[i].score) <= TOLERANCE, `rank ${i}: ${r.score}`));

  // The token-match view: one row per query token (32 with expansion), each with one best cell.
  const heat = await page.$$eval('#heatmap tr', (rows) =>
    rows.slice(1).map((tr) => tr.querySelectorAll('td.best').length),
  );
  assert.equal(heat.length, 32);
  assert.ok(heat.every((n) => n === 1));
  const firstMatch = await page.textContent('#matches .match .token.q');
  assert.equal(firstMatch, '[CLS]');

  mkdirSync(join(ROOT, 'target', 'artifacts'), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`ranked ${got.length} documents in ${Date.now() - t0} ms; screenshot ${SCREENSHOT}`);
  assert.deepEqual(problems, []);
});
