// The browser test driver: opens the page's test mode in headless Chromium
// with WebGPU, waits for its result, prints it, saves a screenshot, and
// exits non-zero on any failed check, page error or timeout.
// Then the interactive page: it trains until paused, streams a sample, and
// loads a char_lm checkpoint from its file input and streams from it.
// Usage: node test.mjs BASE_URL SHOT_DIR CHECKPOINT [TIMEOUT_S]
// (WEB_UPDATES=N trains N updates before the page's screenshot; 6 by default.)
import { chromium } from 'playwright-core';

const [base, shots, checkpoint, timeoutS = '600'] = process.argv.slice(2);
const timeout = Number(timeoutS) * 1000;
const updates = Number(process.env.WEB_UPDATES || 6);
const args = [
  '--headless=new', '--no-sandbox', '--disable-gpu-sandbox',
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=native', '--ignore-gpu-blocklist',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic',
];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: false, // '--headless=new' above: the full browser, which has WebGPU
  args,
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 1200 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  await page.goto(`${base}/index.html?test`);
  await page.waitForFunction(() => window.__recur !== undefined, null, { timeout });
  const r = await page.evaluate(() => window.__recur);
  await page.screenshot({ path: `${shots}/tests.png`, fullPage: true });
  console.log(`adapter: ${JSON.stringify(r.adapter)}`);
  for (const c of r.checks || []) {
    console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: max |gpu - cpu| ${c.max_abs_err} (tolerance ${c.tolerance})${c.detail ? ` [${c.detail}]` : ''}`);
  }
  let bad = (r.checks || []).filter((c) => !c.ok).length;
  for (const run of r.runs || []) {
    const ok = run.loss_falls && run.streamed_every_char;
    bad += ok ? 0 : 1;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${run.model}: 30 updates, loss ${run.losses[0]} -> ${run.losses.at(-1)} (falls: ${run.loss_falls}); `
      + `training ${run.train_tokens_per_s.toFixed(0)} tokens/s, streaming ${run.stream_tokens_per_s.toFixed(1)} tokens/s; sample ${JSON.stringify(run.sample)}`);
  }
  if ((r.runs || []).length !== 2) bad += 1;
  const n = (r.checks || []).length + 2;

  // The interactive page, as a user drives it.
  const ui = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  ui.on('pageerror', (e) => pageErrors.push(String(e)));
  await ui.goto(`${base}/index.html?model=lstm&hidden=128&every=${Math.max(5, Math.floor(updates / 5))}`);
  await ui.waitForFunction(() => window.__recur_ui !== undefined, null, { timeout });
  await ui.click('#train');
  const trained = await ui.waitForFunction(
    (n) => window.__recur_ui.error || (window.__recur_ui.updates >= n && window.__recur_ui.samples >= 1),
    updates, { timeout }).then(() => ui.evaluate(() => window.__recur_ui));
  await ui.click('#train'); // pause
  await ui.waitForFunction(() => !window.__recur_ui.running, null, { timeout });
  await ui.screenshot({ path: `${shots}/page.png` });
  const trainsOk = !trained.error && trained.streamed > 0;
  console.log(`${trainsOk ? 'ok  ' : 'FAIL'} the page trains (${trained.updates} updates) and streams (${trained.streamed} characters)${trained.error ? `: ${trained.error}` : ''}`);
  await ui.setInputFiles('#checkpoint', checkpoint);
  const loaded = await ui.waitForFunction(
    () => window.__recur_ui.error || (window.__recur_ui.loaded && window.__recur_ui.streamed >= 400),
    null, { timeout }).then(() => ui.evaluate(() => window.__recur_ui));
  const loadOk = !loaded.error && loaded.loaded !== null;
  console.log(`${loadOk ? 'ok  ' : 'FAIL'} the page loads ${loaded.loaded} and streams ${loaded.streamed} characters${loaded.error ? `: ${loaded.error}` : ''}`);
  bad += (trainsOk ? 0 : 1) + (loadOk ? 0 : 1);
  for (const e of [...(r.errors || []), ...pageErrors]) console.log(`error: ${e}`);
  console.log(`browser: ${n + 2 - bad} passed, ${bad} failed`);
  failed = !r.ok || bad > 0 || pageErrors.length > 0;
} catch (e) {
  console.log(`error: ${e}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
