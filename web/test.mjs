// The browser test driver: opens the page's test mode in headless Chromium
// with WebGPU, waits for its result, prints it, saves a screenshot, and
// exits non-zero on any failed check, page error or timeout.
// Usage: node test.mjs URL SCREENSHOT.png [TIMEOUT_S]
import { chromium } from 'playwright-core';

const [url, shot, timeoutS = '600'] = process.argv.slice(2);
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
  await page.goto(url);
  await page.waitForFunction(() => window.__recur !== undefined, null, { timeout: Number(timeoutS) * 1000 });
  const r = await page.evaluate(() => window.__recur);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`adapter: ${JSON.stringify(r.adapter)}`);
  for (const c of r.checks || []) {
    console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: max |gpu - cpu| ${c.max_abs_err} (tolerance ${c.tolerance})${c.detail ? ` [${c.detail}]` : ''}`);
  }
  if (r.losses) console.log(`${r.model}: 30 updates, loss ${r.losses[0]?.toFixed(3)} -> ${r.losses.at(-1)?.toFixed(3)} (falls: ${r.loss_falls})`);
  if (r.train_tokens_per_s) console.log(`training ${r.train_tokens_per_s.toFixed(0)} tokens/s; streaming ${r.stream_tokens_per_s.toFixed(1)} tokens/s; sample ${JSON.stringify(r.sample)}`);
  for (const e of [...(r.errors || []), ...pageErrors]) console.log(`error: ${e}`);
  const n = (r.checks || []).length;
  const bad = (r.checks || []).filter((c) => !c.ok).length + (r.loss_falls ? 0 : 1) + (r.streamed_every_char ? 0 : 1);
  console.log(`browser: ${n + 2 - bad} passed, ${bad} failed`);
  failed = !r.ok || pageErrors.length > 0;
} catch (e) {
  console.log(`error: ${e}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
