// The page: opens the GPU through recur's wasm module, then either trains
// and streams interactively, or (with ?test) runs the browser tests and
// leaves their result in window.__recur for the driver (ci/web.sh test).
import init, { Gpu, Trainer } from './pkg/recur_web.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TEXT_CHARS = 200000; // of the bundled corpus

function mean(xs) { return xs.reduce((a, b) => a + b, 0) / xs.length; }

function drawLoss(canvas, losses) {
  const g = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  g.clearRect(0, 0, w, h);
  g.font = '12px system-ui'; g.fillStyle = '#5b6670';
  if (losses.length < 2) { g.fillText('loss (nats/char) appears here while training', 12, 20); return; }
  const top = Math.max(...losses), bottom = Math.min(0, ...losses);
  const x = (i) => 40 + (i / (losses.length - 1)) * (w - 52);
  const y = (v) => 12 + (1 - (v - bottom) / (top - bottom || 1)) * (h - 36);
  g.strokeStyle = '#d5dbe0'; g.beginPath(); g.moveTo(40, 12); g.lineTo(40, h - 24); g.lineTo(w - 12, h - 24); g.stroke();
  g.fillText(top.toFixed(2), 4, 16); g.fillText(bottom.toFixed(1), 4, h - 24);
  g.fillText(`update ${losses.length}`, w - 90, h - 8);
  g.strokeStyle = '#0b62c4'; g.lineWidth = 1.5; g.beginPath();
  losses.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
  g.stroke();
}

async function corpus() {
  const r = await fetch('corpus.txt');
  if (!r.ok) throw new Error(`corpus.txt: HTTP ${r.status}`);
  return (await r.text()).slice(0, TEXT_CHARS);
}

// The browser tests: every kernel check, then for an LSTM and a minGRU 30
// updates whose loss must fall and a streamed sample; speeds in tokens
// (characters) per second, the first update and sample (which build the
// pipelines) untimed.
async function trainAndStream(gpu, text, model) {
  const config = { model, hidden: 64, embed: 32, batch: 8, window: 32, lr: 0.01 };
  const trainer = Trainer.create(gpu, text, JSON.stringify(config));
  const run = { model: `${trainer.model} (${trainer.numParameters} parameters)`, losses: [] };
  await trainer.trainStep();
  const t0 = performance.now();
  for (let i = 0; i < 30; i++) {
    run.losses.push(await trainer.trainStep());
    drawLoss($('loss'), run.losses);
  }
  run.train_tokens_per_s = (30 * trainer.tokensPerStep) / ((performance.now() - t0) / 1000);
  run.loss_falls = mean(run.losses.slice(-5)) < 0.8 * run.losses[0];
  await trainer.generate('the ', 2, 0.8, 7n, () => {});
  const g0 = performance.now();
  let streamed = '';
  const sample = await trainer.generate('the ', 64, 0.8, 7n, (c) => { streamed += c; $('sample').textContent = streamed; });
  run.stream_tokens_per_s = 64 / ((performance.now() - g0) / 1000);
  run.streamed_every_char = streamed === sample && sample.length === 64;
  run.sample = sample;
  run.losses = run.losses.map((l) => +l.toFixed(4));
  return run;
}

async function runTests(gpu, adapter) {
  $('tests').hidden = false;
  const result = { adapter, checks: [], runs: [], errors: [], ok: false };
  try {
    result.checks = JSON.parse(await gpu.checks());
    for (const c of result.checks) {
      const row = $('checks').tBodies[0].insertRow();
      row.insertCell().textContent = c.name;
      row.insertCell().textContent = c.max_abs_err.toExponential(2);
      row.insertCell().textContent = c.tolerance.toExponential(0);
      const v = row.insertCell(); v.textContent = c.ok ? 'ok' : 'FAIL'; v.className = c.ok ? 'ok' : 'bad';
    }
    const text = await corpus();
    for (const model of ['lstm', 'mingru']) result.runs.push(await trainAndStream(gpu, text, model));
  } catch (e) {
    result.errors.push(String(e && e.message || e));
  }
  result.ok = result.errors.length === 0 && result.checks.length > 0 && result.checks.every((c) => c.ok)
    && result.runs.length === 2 && result.runs.every((r) => r.loss_falls && r.streamed_every_char);
  const { checks, ...summary } = result;
  $('result').textContent = JSON.stringify(summary, null, 1);
  window.__recur = result;
}

// Interactive: train until paused, streaming a sample every `every`
// updates (?model=, ?hidden=, ?every= preset the controls). What it does
// is mirrored in window.__recur_ui for the driver.
async function interactive(gpu) {
  const text = await corpus();
  let trainer = null, running = false, losses = [];
  const stats = $('stats');
  const every = Number(params.get('every') || 40);
  const ui = (window.__recur_ui = { updates: 0, running: false, samples: 0, loaded: null, streamed: 0, error: null });
  for (const key of ['model', 'hidden']) {
    const want = params.get(key);
    if (want && ![...$(key).options].some((o) => o.value === want)) $(key).add(new Option(want, want));
    if (want) $(key).value = want;
  }
  const fresh = () => {
    const config = { model: $('model').value, hidden: Number($('hidden').value) };
    trainer = Trainer.create(gpu, text, JSON.stringify(config));
    losses = [];
    drawLoss($('loss'), losses);
    stats.textContent = `${trainer.model}: ${trainer.numParameters.toLocaleString()} parameters, vocabulary ${trainer.vocabSize}`;
  };
  const stream = async (prompt, n) => {
    let s = '';
    await trainer.generate(prompt, n, 0.8, BigInt(Date.now()), (c) => { s += c; ui.streamed = s.length; $('sample').textContent = s; });
    ui.samples++;
  };
  const loop = async () => {
    let t0 = performance.now(), done = 0;
    while (running) {
      const loss = await trainer.trainStep();
      losses.push(loss); done++; ui.updates = losses.length;
      const rate = (done * trainer.tokensPerStep) / ((performance.now() - t0) / 1000);
      stats.textContent = `${trainer.model} · update ${losses.length} · loss ${loss.toFixed(3)} nats/char · ${rate.toFixed(0)} tokens/s`;
      drawLoss($('loss'), losses);
      if (losses.length % every === 0) { await stream('The ', 160); t0 = performance.now(); done = 0; }
    }
    ui.running = false;
  };
  const fail = (e) => {
    running = ui.running = false;
    $('train').textContent = 'Train';
    stats.textContent = ui.error = `error: ${e.message || e}`;
  };
  $('train').onclick = () => {
    running = !running;
    $('train').textContent = running ? 'Pause' : 'Train';
    if (running) { ui.running = true; loop().catch(fail); }
  };
  $('reset').onclick = () => { if (!running) fresh(); };
  $('checkpoint').onchange = async (ev) => {
    const file = ev.target.files[0];
    if (!file || running) return;
    try {
      trainer = Trainer.fromCheckpoint(gpu, new Uint8Array(await file.arrayBuffer()));
      losses = []; drawLoss($('loss'), losses);
      stats.textContent = `${file.name}: ${trainer.model}, ${trainer.numParameters.toLocaleString()} parameters (sampling only)`;
      ui.loaded = `${file.name}: ${trainer.model}`;
      await stream('The ', 400);
    } catch (e) { fail(e); }
  };
  $('save').onclick = async () => {
    if (running) return;
    const bytes = await trainer.checkpoint();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([bytes]));
    a.download = 'recur_web.safetensors';
    a.click();
  };
  fresh();
}

async function main() {
  await init();
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
  const gpu = await Gpu.open();
  const adapter = JSON.parse(gpu.adapter());
  $('adapter').textContent = `GPU: ${adapter.name || '(unnamed)'} via ${adapter.backend}`;
  if (params.has('test')) return runTests(gpu, adapter);
  return interactive(gpu);
}

main().catch((e) => {
  $('adapter').textContent = `error: ${e.message || e}`;
  window.__recur = { ok: false, errors: [String(e && e.message || e)] };
});
