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

// The browser tests: every kernel check, then 30 updates whose loss must
// fall, then a streamed sample; speeds in tokens (characters) per second.
async function runTests(gpu, adapter) {
  $('tests').hidden = false;
  const result = { adapter, checks: [], losses: [], errors: [], ok: false };
  try {
    result.checks = JSON.parse(await gpu.checks());
    for (const c of result.checks) {
      const row = $('checks').tBodies[0].insertRow();
      row.insertCell().textContent = c.name;
      row.insertCell().textContent = c.max_abs_err.toExponential(2);
      row.insertCell().textContent = c.tolerance.toExponential(0);
      const v = row.insertCell(); v.textContent = c.ok ? 'ok' : 'FAIL'; v.className = c.ok ? 'ok' : 'bad';
    }
    const config = { model: params.get('model') || 'lstm', hidden: 64, embed: 32, batch: 8, window: 32, lr: 0.01 };
    const trainer = Trainer.create(gpu, await corpus(), JSON.stringify(config));
    result.model = `${trainer.model} (${trainer.numParameters} parameters)`;
    await trainer.trainStep(); // the first update builds the pipelines: not timed
    result.losses = [];
    const t0 = performance.now();
    for (let i = 0; i < 30; i++) {
      result.losses.push(await trainer.trainStep());
      drawLoss($('loss'), result.losses);
    }
    const secs = (performance.now() - t0) / 1000;
    result.train_tokens_per_s = (30 * trainer.tokensPerStep) / secs;
    result.loss_falls = mean(result.losses.slice(-5)) < 0.8 * result.losses[0];
    const g0 = performance.now();
    let streamed = '';
    const text = await trainer.generate('the ', 64, 0.8, 7n, (c) => { streamed += c; $('sample').textContent = streamed; });
    result.stream_tokens_per_s = 64 / ((performance.now() - g0) / 1000);
    result.streamed_every_char = streamed === text && text.length === 64;
    result.sample = text;
  } catch (e) {
    result.errors.push(String(e && e.message || e));
  }
  result.ok = result.errors.length === 0 && result.checks.length > 0 && result.checks.every((c) => c.ok)
    && result.loss_falls === true && result.streamed_every_char === true;
  const { checks, losses, ...summary } = result;
  $('result').textContent = JSON.stringify({ ...summary, losses: losses.map((l) => +l.toFixed(3)) }, null, 1);
  window.__recur = result;
}

// Interactive: train until paused, streaming a sample every 40 updates.
async function interactive(gpu) {
  const text = await corpus();
  let trainer = null, running = false, losses = [];
  const stats = $('stats');
  const fresh = () => {
    const config = { model: $('model').value, hidden: Number($('hidden').value) };
    trainer = Trainer.create(gpu, text, JSON.stringify(config));
    losses = [];
    drawLoss($('loss'), losses);
    stats.textContent = `${trainer.model}: ${trainer.numParameters.toLocaleString()} parameters, vocabulary ${trainer.vocabSize}`;
  };
  const stream = async (prompt, n) => {
    let s = '';
    await trainer.generate(prompt, n, 0.8, BigInt(Date.now()), (c) => { s += c; $('sample').textContent = s; });
  };
  const loop = async () => {
    let t0 = performance.now(), done = 0;
    while (running) {
      const loss = await trainer.trainStep();
      losses.push(loss); done++;
      const rate = (done * trainer.tokensPerStep) / ((performance.now() - t0) / 1000);
      stats.textContent = `${trainer.model} · update ${losses.length} · loss ${loss.toFixed(3)} nats/char · ${rate.toFixed(0)} tokens/s`;
      drawLoss($('loss'), losses);
      if (losses.length % 40 === 0) { await stream('The ', 160); t0 = performance.now(); done = 0; }
    }
  };
  const fail = (e) => { running = false; $('train').textContent = 'Train'; stats.textContent = `error: ${e.message || e}`; };
  $('train').onclick = () => {
    running = !running;
    $('train').textContent = running ? 'Pause' : 'Train';
    if (running) loop().catch(fail);
  };
  $('reset').onclick = () => { if (!running) fresh(); };
  $('checkpoint').onchange = async (ev) => {
    const file = ev.target.files[0];
    if (!file || running) return;
    try {
      trainer = Trainer.fromCheckpoint(gpu, new Uint8Array(await file.arrayBuffer()));
      losses = []; drawLoss($('loss'), losses);
      stats.textContent = `${file.name}: ${trainer.model}, ${trainer.numParameters.toLocaleString()} parameters (sampling only)`;
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
